//! Facts read from `global/pg_control` without running PostgreSQL: whether the instance was shut down
//! cleanly and where its last checkpoint is.
//!
//! The fields read sit at the same offsets in every supported version (PostgreSQL 10 and later):
//! `system_identifier` (u64 at 0), `pg_control_version` (u32 at 8), `catalog_version_no` (u32 at 12),
//! `state` (i32 at 16), `time` (i64 at 24) and `checkPoint` (u64 at 32), little endian on the platforms we
//! run on.

use std::path::Path;

use super::error::{PgError, PgResult};

/// `DBState` values of `pg_control` (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlState {
    /// `shut down`: a clean shutdown of a primary (or of a standby promoted since).
    ShutDown,
    /// `shut down in recovery`: a clean shutdown of a standby.
    ShutDownInRecovery,
    /// Any other state (running, crashed, starting...), with its raw value.
    Other(i32),
}

/// What `pg_control` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlFacts {
    /// The cluster state.
    pub state: ControlState,
    /// Location of the latest checkpoint record.
    pub checkpoint: u64,
}

/// Decodes the leading bytes of `pg_control`.
pub fn parse_control(bytes: &[u8]) -> Option<ControlFacts> {
    let state = i32::from_le_bytes(bytes.get(16..20)?.try_into().ok()?);
    let checkpoint = u64::from_le_bytes(bytes.get(32..40)?.try_into().ok()?);
    let state = match state {
        1 => ControlState::ShutDown,
        2 => ControlState::ShutDownInRecovery,
        other => ControlState::Other(other),
    };
    Some(ControlFacts { state, checkpoint })
}

/// Reads `<pgdata>/global/pg_control`.
pub fn read_control(pgdata: &Path) -> PgResult<ControlFacts> {
    let path = pgdata.join("global").join("pg_control");
    let bytes = std::fs::read(&path).map_err(|e| PgError::io("read", &path, e))?;
    parse_control(&bytes)
        .ok_or_else(|| PgError::Parse { what: "pg_control", detail: format!("{} is too short", path.display()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_checkpoint() {
        let mut b = vec![0u8; 64];
        b[16..20].copy_from_slice(&1i32.to_le_bytes());
        b[32..40].copy_from_slice(&0x0000_0001_0000_0028u64.to_le_bytes());
        assert_eq!(parse_control(&b), Some(ControlFacts { state: ControlState::ShutDown, checkpoint: 0x1_0000_0028 }));
        b[16..20].copy_from_slice(&6i32.to_le_bytes());
        assert_eq!(parse_control(&b).map(|c| c.state), Some(ControlState::Other(6)));
        assert_eq!(parse_control(&b[..30]), None);
    }
}
