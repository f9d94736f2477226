//! What `pg_controldata` says about a stopped data directory: the timeline and WAL positions a keeper
//! compares with another instance's before deciding how a resync may proceed.

use super::error::{PgError, PgResult};
use super::process::PgProcess;
use super::replication::parse_lsn;

/// The fields of `pg_controldata` the keeper uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlData {
    /// `Latest checkpoint's TimeLineID`.
    pub timeline: u64,
    /// `Latest checkpoint location`.
    pub checkpoint: u64,
    /// `Minimum recovery ending location` (0 when none).
    pub min_recovery_end: u64,
}

impl ControlData {
    /// A position the local WAL certainly reaches: the later of the last checkpoint and the minimum
    /// recovery point (the real end may be further).
    pub fn wal_reached(&self) -> u64 {
        self.checkpoint.max(self.min_recovery_end)
    }
}

/// Parses `pg_controldata` output (run with `LC_ALL=C`).
pub fn parse_control_data(out: &str) -> PgResult<ControlData> {
    let field = |name: &str| {
        out.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == name).map(|(_, v)| v.trim()))
    };
    let bad = |name: &str| PgError::Parse { what: "pg_controldata output", detail: format!("no valid {name:?}") };
    let lsn = |name: &str| field(name).and_then(parse_lsn).ok_or_else(|| bad(name));
    let timeline_name = "Latest checkpoint's TimeLineID";
    Ok(ControlData {
        timeline: field(timeline_name).and_then(|v| v.parse().ok()).ok_or_else(|| bad(timeline_name))?,
        checkpoint: lsn("Latest checkpoint location")?,
        min_recovery_end: lsn("Minimum recovery ending location")?,
    })
}

/// Runs `pg_controldata` on the (stopped) data directory.
pub async fn control_data(pg: &PgProcess) -> PgResult<ControlData> {
    let mut cmd = pg.command("pg_controldata");
    cmd.arg("-D").arg(pg.pgdata()).env("LC_ALL", "C");
    parse_control_data(&pg.run_quiet("pg_controldata", cmd).await?)
}

/// Whether the (stopped) data directory's `pg_wal` holds a valid WAL record of `timeline` at or after
/// `pos` (`pg_waldump --start`, first record only). "No valid record" and a missing segment are `false`;
/// an error only when `pg_waldump` cannot run.
pub async fn wal_record_at(pg: &PgProcess, timeline: u64, pos: u64) -> PgResult<bool> {
    let mut cmd = pg.command("pg_waldump");
    cmd.arg("--path").arg(pg.pgdata().join("pg_wal"));
    cmd.arg("--timeline").arg(timeline.to_string());
    cmd.arg("--start").arg(format!("{:X}/{:X}", pos >> 32, pos & 0xffff_ffff));
    cmd.arg("--limit").arg("1").env("LC_ALL", "C");
    match pg.run_quiet("pg_waldump", cmd).await {
        Ok(out) => Ok(waldump_found_record(&out)),
        Err(PgError::Command { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `pg_waldump` output shows a record (`rmgr: ... lsn: ...`).
pub fn waldump_found_record(out: &str) -> bool {
    out.lines().any(|l| l.starts_with("rmgr:") && l.contains("lsn:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "pg_control version number:            1300
Database cluster state:               shut down
Latest checkpoint location:           0/5000060
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
";

    #[test]
    fn fields_of_a_stopped_primary_and_of_a_standby() {
        let c = parse_control_data(SAMPLE).unwrap();
        assert_eq!(c, ControlData { timeline: 2, checkpoint: 0x500_0060, min_recovery_end: 0 });
        assert_eq!(c.wal_reached(), 0x500_0060);
        let standby = SAMPLE.replace("ending location:     0/0", "ending location:     1/20");
        assert_eq!(parse_control_data(&standby).unwrap().wal_reached(), 0x1_0000_0020);
        assert!(parse_control_data("Latest checkpoint location: x").is_err());
        assert!(parse_control_data(&SAMPLE.replace("TimeLineID:       2", "TimeLineID: two")).is_err());
    }

    #[test]
    fn a_waldump_record_line_is_a_record() {
        let line = "rmgr: Heap        len (rec/tot):     54/    54, tx:        735, lsn: 0/07021A70, prev 0/07021A38, \
                    desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/5/16384 blk 0";
        assert!(waldump_found_record(line));
        assert!(!waldump_found_record(""));
        assert!(!waldump_found_record("pg_waldump: error: could not find a valid record after 0/7021A70"));
    }
}
