//! Replication-level facts about the instance: `IDENTIFY_SYSTEM` over a replication connection, timeline
//! history, system identifier from `pg_control`, oldest WAL segment, LSN parsing.
//!
//! tokio-postgres 0.7 cannot open a replication connection (it has no way to send the `replication`
//! startup parameter), so `IDENTIFY_SYSTEM` runs through `psql "replication=true"` (physical replication, so the `replication` pg_hba rules apply) from the PostgreSQL
//! binaries, as the replication user over the local socket (password in the child's environment only). The
//! timeline history is read from `pg_wal/<timeline>.history`, the very file a `TIMELINE_HISTORY` command
//! would send.

use std::path::Path;

use super::config::SOCKET_DIR;
use super::error::{PgError, PgResult};
use super::process::PgProcess;
use crate::cluster::PostgresTimelineHistory;

/// What `IDENTIFY_SYSTEM` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// System identifier (decimal).
    pub system_id: String,
    /// Current timeline (replay timeline on a standby).
    pub timeline: u64,
    /// Current WAL position (flush position on a primary; on a standby the received position, which keeps
    /// advancing while replay is paused).
    pub xlog_pos: u64,
}

/// Parses an LSN `X/Y` (hex) into `X << 32 | Y`.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Parses psql's unaligned `IDENTIFY_SYSTEM` row: `systemid|timeline|xlogpos|dbname`.
pub fn parse_identify_system(out: &str) -> PgResult<SystemIdentity> {
    let bad = || PgError::Parse { what: "IDENTIFY_SYSTEM output", detail: out.trim().to_string() };
    let line = out.lines().find(|l| !l.trim().is_empty()).ok_or_else(bad)?;
    let mut f = line.split('|');
    let system_id = f.next().filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())).ok_or_else(bad)?;
    let timeline = f.next().and_then(|t| t.trim().parse().ok()).ok_or_else(bad)?;
    let xlog_pos = f.next().and_then(parse_lsn).ok_or_else(bad)?;
    Ok(SystemIdentity { system_id: system_id.to_string(), timeline, xlog_pos })
}

/// Quotes a libpq connection-string value.
pub fn conninfo_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Runs `IDENTIFY_SYSTEM` on the local instance as the replication user.
pub async fn identify_system(
    pg: &PgProcess,
    port: u16,
    repl_user: &str,
    repl_password: Option<&str>,
) -> PgResult<SystemIdentity> {
    identify_system_at(pg, SOCKET_DIR, &port.to_string(), repl_user, repl_password).await
}

/// Runs `IDENTIFY_SYSTEM` on the instance at `host`:`port` (a socket directory or a network address) as the
/// replication user.
pub async fn identify_system_at(
    pg: &PgProcess,
    host: &str,
    port: &str,
    repl_user: &str,
    repl_password: Option<&str>,
) -> PgResult<SystemIdentity> {
    let conninfo = format!(
        "host={} port={} user={} dbname=postgres replication=true connect_timeout=5",
        conninfo_value(host),
        conninfo_value(port),
        conninfo_value(repl_user)
    );
    let mut cmd = pg.command("psql");
    cmd.args(["-X", "-A", "-t", "-q", "-F", "|", "-d", &conninfo, "-c", "IDENTIFY_SYSTEM"]);
    cmd.env_remove("PGPASSFILE").env("PGCONNECT_TIMEOUT", "5");
    match repl_password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    let out = pg.run_quiet("psql", cmd).await?;
    parse_identify_system(&out)
}

/// Parses a timeline history file (`<tli>\t<lsn>\t<reason>` lines; comments and blanks skipped).
pub fn parse_timeline_history(content: &str) -> PgResult<Vec<PostgresTimelineHistory>> {
    let mut out = Vec::new();
    for line in content.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut f = l.splitn(3, '\t');
        let bad = || PgError::Parse { what: "timeline history line", detail: l.to_string() };
        let tl = f.next().and_then(|t| t.trim().parse().ok()).ok_or_else(bad)?;
        let lsn = f.next().and_then(parse_lsn).ok_or_else(bad)?;
        let reason = f.next().unwrap_or("").trim().to_string();
        out.push(PostgresTimelineHistory { timeline_id: tl, switch_point: lsn, reason });
    }
    Ok(out)
}

/// The history of `timeline` (> 1) read from `pg_wal`, keeping the last 2 entries as stolon does.
pub fn timeline_history(pgdata: &Path, timeline: u64) -> PgResult<Vec<PostgresTimelineHistory>> {
    if timeline <= 1 {
        return Ok(Vec::new());
    }
    let path = pgdata.join("pg_wal").join(format!("{timeline:08X}.history"));
    let content = std::fs::read_to_string(&path).map_err(|e| PgError::io("read", &path, e))?;
    let mut h = parse_timeline_history(&content)?;
    let skip = h.len().saturating_sub(2);
    Ok(h.split_off(skip))
}

/// The system identifier stored in `global/pg_control` (first 8 bytes, little endian), as a decimal string.
pub fn control_system_id(pgdata: &Path) -> PgResult<String> {
    let path = pgdata.join("global").join("pg_control");
    let bytes = std::fs::read(&path).map_err(|e| PgError::io("read", &path, e))?;
    let first: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| PgError::Parse { what: "pg_control", detail: format!("{} is too short", path.display()) })?;
    Ok(u64::from_le_bytes(first).to_string())
}

/// Name of the oldest WAL segment in `pg_wal` (24 hex characters, sorted first). Any valid segment size
/// (a power of two from 1 MiB to 1 GiB) is accepted; stolon required 16 MiB (reference 10 item 11).
pub fn oldest_wal_file(pgdata: &Path) -> PgResult<Option<String>> {
    let dir = pgdata.join("pg_wal");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| PgError::io("list", &dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24 && n.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    names.sort();
    let Some(first) = names.into_iter().next() else { return Ok(None) };
    let path = dir.join(&first);
    let size = std::fs::metadata(&path).map_err(|e| PgError::io("stat", &path, e))?.len();
    if !(size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size)) {
        return Err(PgError::Parse {
            what: "WAL segment size",
            detail: format!("{} has {size} bytes", path.display()),
        });
    }
    Ok(Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_and_identify_system() {
        assert_eq!(parse_lsn("0/1500790"), Some(0x1500790));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("x"), None);
        let id = parse_identify_system("7712797406130419281|3|0/1500790|postgres\n").unwrap();
        assert_eq!(id, SystemIdentity { system_id: "7712797406130419281".into(), timeline: 3, xlog_pos: 0x1500790 });
        assert!(parse_identify_system("").is_err());
        assert!(parse_identify_system("abc|1|0/1|").is_err());
    }

    #[test]
    fn history_files_keep_the_last_two_entries() {
        let h = parse_timeline_history("1\t0/3000060\tno recovery target specified\n\n2\t0/5000000\tx\n").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].timeline_id, 1);
        assert_eq!(h[0].switch_point, 0x3000060);
        assert_eq!(h[0].reason, "no recovery target specified");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pg_wal")).unwrap();
        std::fs::write(dir.path().join("pg_wal/00000004.history"), "1\t0/1\ta\n2\t0/2\tb\n3\t0/3\tc\n").unwrap();
        let h = timeline_history(dir.path(), 4).unwrap();
        assert_eq!(h.iter().map(|e| e.timeline_id).collect::<Vec<_>>(), [2, 3]);
        assert!(timeline_history(dir.path(), 1).unwrap().is_empty());
        assert!(timeline_history(dir.path(), 5).is_err());
        assert!(parse_timeline_history("x\t0/1\n").is_err());
    }

    #[test]
    fn control_file_and_wal_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("global")).unwrap();
        std::fs::create_dir_all(dir.path().join("pg_wal")).unwrap();
        std::fs::write(dir.path().join("global/pg_control"), 42u64.to_le_bytes()).unwrap();
        assert_eq!(control_system_id(dir.path()).unwrap(), "42");
        assert_eq!(oldest_wal_file(dir.path()).unwrap(), None);
        let f = std::fs::File::create(dir.path().join("pg_wal/000000010000000000000002")).unwrap();
        f.set_len(16 << 20).unwrap();
        std::fs::write(dir.path().join("pg_wal/00000002.history"), "").unwrap();
        assert_eq!(oldest_wal_file(dir.path()).unwrap().as_deref(), Some("000000010000000000000002"));
        let f = std::fs::File::create(dir.path().join("pg_wal/000000010000000000000001")).unwrap();
        f.set_len(1000).unwrap();
        assert!(oldest_wal_file(dir.path()).is_err());
        assert_eq!(conninfo_value("a'b\\"), "'a\\'b\\\\'");
    }
}
