//! Short-lived files holding a secret (initdb `--pwfile`, `PGPASSFILE`), private to the PostgreSQL OS user
//! and removed when dropped.

use std::path::{Path, PathBuf};

use super::config::write_atomic;
use super::error::PgResult;
use super::os_user::OsUser;

/// A 0600 file removed on drop.
#[derive(Debug)]
pub struct SecretFile {
    path: PathBuf,
}

impl SecretFile {
    /// Writes `content` to a fresh file named after `purpose` in `dir`, owned by `owner` when given.
    pub fn create(dir: &Path, purpose: &str, content: &str, owner: Option<&OsUser>) -> PgResult<SecretFile> {
        let path = dir.join(format!(".stolon-{purpose}-{}", crate::cluster::new_uid()));
        write_atomic(&path, content.as_bytes(), owner)?;
        Ok(SecretFile { path })
    }

    /// A libpq password file line for every host, port and database: `*:*:*:user:password` (`:` and `\`
    /// escaped as libpq requires).
    pub fn pgpass_line(user: &str, password: &str) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        format!("*:*:*:{}:{}\n", esc(user), esc(password))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = SecretFile::create(dir.path(), "pgpass", &SecretFile::pgpass_line("u:x", "p\\w"), None).unwrap();
        let p = f.path().to_path_buf();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "*:*:*:u\\:x:p\\\\w\n");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        drop(f);
        assert!(!p.exists());
    }
}
