//! The keeper's local state files in `<data-dir>`: `keeperstate` and `dbstate` (stolon's JSON shapes),
//! written atomically (temporary file, fsync, mode 0600, rename).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::{DbLocalState, KeeperLocalState, decode_json};
use crate::postgres::config::write_atomic;
use crate::postgres::error::{PgError, PgResult};

/// File name of the keeper state.
pub const KEEPER_STATE_FILE: &str = "keeperstate";
/// File name of the DB state.
pub const DB_STATE_FILE: &str = "dbstate";

/// Access to the state files of one data directory.
#[derive(Debug, Clone)]
pub struct StateFiles {
    dir: PathBuf,
}

impl StateFiles {
    /// State files in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StateFiles { dir: data_dir.into() }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn load<T: DeserializeOwned>(&self, name: &str, what: &'static str) -> PgResult<Option<T>> {
        let path = self.dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PgError::io("read", path, e)),
        };
        decode_json(what, &bytes)
            .map(Some)
            .map_err(|e| PgError::Parse { what: "local state file", detail: format!("{}: {e}", path.display()) })
    }

    fn save<T: Serialize>(&self, name: &str, value: &T) -> PgResult<()> {
        let path = self.dir.join(name);
        let bytes = serde_json::to_vec(value)
            .map_err(|e| PgError::Parse { what: "local state", detail: format!("{}: {e}", path.display()) })?;
        write_atomic(&path, &bytes, None)
    }

    /// Reads `keeperstate` (`None` if absent; a corrupt file is an error naming it).
    pub fn load_keeper_state(&self) -> PgResult<Option<KeeperLocalState>> {
        self.load(KEEPER_STATE_FILE, "keeperstate")
    }

    /// Writes `keeperstate`.
    pub fn save_keeper_state(&self, s: &KeeperLocalState) -> PgResult<()> {
        self.save(KEEPER_STATE_FILE, s)
    }

    /// Reads `dbstate` (`None` if absent; a corrupt file is an error naming it).
    pub fn load_db_state(&self) -> PgResult<Option<DbLocalState>> {
        self.load(DB_STATE_FILE, "dbstate")
    }

    /// Writes `dbstate`.
    pub fn save_db_state(&self, s: &DbLocalState) -> PgResult<()> {
        self.save(DB_STATE_FILE, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_stolon_shapes_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFiles::new(dir.path());
        assert_eq!(f.load_db_state().unwrap(), None);
        let db = DbLocalState {
            uid: "d1".into(),
            generation: 3,
            initializing: false,
            init_pg_parameters: None,
            ..DbLocalState::default()
        };
        f.save_db_state(&db).unwrap();
        assert_eq!(f.load_db_state().unwrap(), Some(db));
        let raw = std::fs::read_to_string(dir.path().join(DB_STATE_FILE)).unwrap();
        assert_eq!(raw, r#"{"UID":"d1","Generation":3,"Initializing":false,"InitPGParameters":null}"#);
        std::fs::write(dir.path().join(KEEPER_STATE_FILE), r#"{"UID":"k1","ClusterUID":"c1"}"#).unwrap();
        assert_eq!(f.load_keeper_state().unwrap().unwrap().cluster_uid, "c1");
        std::fs::write(dir.path().join(KEEPER_STATE_FILE), "{not json").unwrap();
        let err = f.load_keeper_state().unwrap_err().to_string();
        assert!(err.contains("keeperstate"), "{err}");
    }
}
