//! Re-creating a standby's data from another instance: pg_basebackup (with the standby's slot) and
//! pg_rewind. Passwords travel through a temporary `PGPASSFILE`, never on a command line.

use std::path::Path;

use super::config::remove_auto_conf_symlink;
use super::error::PgResult;
use super::process::PgProcess;
use super::replication::conninfo_value;
use super::secret_file::SecretFile;

/// Where and as whom to connect for a resync.
#[derive(Clone)]
pub struct ResyncSource {
    /// Host (advertised address of the source DB).
    pub host: String,
    /// Port (advertised port of the source DB).
    pub port: String,
    /// User name (replication user for base backups, superuser for pg_rewind).
    pub user: String,
    /// Password (`None` with trust auth).
    pub password: Option<String>,
}

impl std::fmt::Debug for ResyncSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResyncSource")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ResyncSource {
    /// A libpq connection string without password; `synchronous_commit` is off so that a temporary table or
    /// backup never waits for a synchronous standby.
    pub fn conninfo(&self, dbname: Option<&str>, application_name: Option<&str>) -> String {
        let mut s = format!(
            "host={} port={} user={} sslmode=prefer options={}",
            conninfo_value(&self.host),
            conninfo_value(&self.port),
            conninfo_value(&self.user),
            conninfo_value("-c synchronous_commit=off"),
        );
        if let Some(d) = dbname {
            s.push_str(&format!(" dbname={}", conninfo_value(d)));
        }
        if let Some(a) = application_name {
            s.push_str(&format!(" application_name={}", conninfo_value(a)));
        }
        s
    }

    fn passfile(&self, dir: &Path, pg: &PgProcess) -> PgResult<Option<SecretFile>> {
        match &self.password {
            Some(p) => Some(SecretFile::create(dir, "pgpass", &SecretFile::pgpass_line(&self.user, p), pg.os_user()))
                .transpose(),
            None => Ok(None),
        }
    }
}

/// Replaces PGDATA with a base backup of `source` (refuses while postgres runs). `slot` is the standby's
/// replication slot on the source.
pub async fn base_backup(
    pg: &PgProcess,
    source: &ResyncSource,
    slot: Option<&str>,
    application_name: &str,
) -> PgResult<()> {
    pg.remove_pgdata().await?;
    pg.create_pgdata()?;
    let parent = pg.pgdata().parent().unwrap_or(Path::new("/tmp")).to_path_buf();
    let passfile = source.passfile(&parent, pg)?;
    let mut cmd = pg.command("pg_basebackup");
    cmd.arg("-R").arg("-v").arg("-X").arg("stream").arg("-c").arg("fast").arg("-D").arg(pg.pgdata());
    cmd.arg("-d").arg(source.conninfo(None, Some(application_name)));
    if let Some(s) = slot {
        cmd.arg("--slot").arg(s);
    }
    cmd.env_remove("PGPASSWORD");
    match &passfile {
        Some(f) => cmd.env("PGPASSFILE", f.path()),
        None => cmd.env_remove("PGPASSFILE"),
    };
    tracing::info!(host = %source.host, port = %source.port, slot = ?slot, "running pg_basebackup");
    let res = pg.run("pg_basebackup", cmd).await;
    drop(passfile);
    if res.is_err() {
        // A partial backup is useless; the next attempt starts from scratch.
        let _ = std::fs::remove_dir_all(pg.pgdata());
    }
    res.map(|_| ())
}

/// What a successful pg_rewind did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewind {
    /// It copied what differed from the source.
    Rewound,
    /// It found the target on the source's timeline (or an ancestor before the fork) and changed nothing.
    NotRequired,
}

/// Rewinds PGDATA (cleanly stopped) onto `source` (a superuser connection to the current master).
pub async fn rewind(pg: &PgProcess, source: &ResyncSource) -> PgResult<Rewind> {
    remove_auto_conf_symlink(pg.pgdata())?;
    let parent = pg.pgdata().parent().unwrap_or(Path::new("/tmp")).to_path_buf();
    let passfile = source.passfile(&parent, pg)?;
    let mut cmd = pg.command("pg_rewind");
    cmd.arg("-D").arg(pg.pgdata()).arg(format!("--source-server={}", source.conninfo(Some("postgres"), None)));
    cmd.env_remove("PGPASSWORD");
    match &passfile {
        Some(f) => cmd.env("PGPASSFILE", f.path()),
        None => cmd.env_remove("PGPASSFILE"),
    };
    tracing::info!(host = %source.host, port = %source.port, "running pg_rewind");
    let res = pg.run("pg_rewind", cmd).await;
    drop(passfile);
    res.map(|out| if out.contains("no rewind required") { Rewind::NotRequired } else { Rewind::Rewound })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_quotes_every_value_and_has_no_password() {
        let s = ResyncSource {
            host: "10.0.0.1".into(),
            port: "5432".into(),
            user: "re'pl".into(),
            password: Some("secret".into()),
        };
        let c = s.conninfo(Some("postgres"), Some("stolon_ab"));
        assert_eq!(
            c,
            "host='10.0.0.1' port='5432' user='re\\'pl' sslmode=prefer options='-c synchronous_commit=off' dbname='postgres' application_name='stolon_ab'"
        );
        assert!(!c.contains("secret"));
        assert!(!format!("{s:?}").contains("secret"));
    }
}
