//! What the keeper observes of its instance: data-directory facts and the PostgresState of reference 5.8.

use std::path::Path;

use super::config::{MANAGED_PARAMETERS, STANDBY_SIGNAL};
use super::error::PgResult;
use super::process::PgProcess;
use super::query::LocalConn;
use super::replication::{identify_system, oldest_wal_file, timeline_history};
use crate::cluster::{DbRole, PgParameters, PostgresState};

/// Whether PGDATA holds an initialised PostgreSQL (>= 10 layout) data directory.
pub fn pgdata_initialized(pgdata: &Path) -> bool {
    ["PG_VERSION", "base", "global", "pg_wal", "pg_xact", "global/pg_control"].iter().all(|p| pgdata.join(p).exists())
}

/// The role the data directory starts in: undefined when not initialised, standby when `standby.signal`
/// exists, otherwise master.
pub fn local_role(pgdata: &Path) -> DbRole {
    if !pgdata_initialized(pgdata) {
        DbRole::Undefined
    } else if pgdata.join(STANDBY_SIGNAL).exists() {
        DbRole::Standby
    } else {
        DbRole::Master
    }
}

/// `parameters` without the keeper-managed ones.
pub fn filter_managed(parameters: PgParameters) -> PgParameters {
    parameters.into_iter().filter(|(k, _)| !MANAGED_PARAMETERS.contains(&k.as_str())).collect()
}

/// DB UIDs from `application_name`s: only `stolon_`-prefixed names, prefix removed, sorted.
pub fn stolon_standby_uids(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().filter_map(|n| n.strip_prefix("stolon_")).map(str::to_string).collect();
    v.sort();
    v.dedup();
    v
}

/// The checkpoint location of a primary shut down cleanly (`pg_control` state `shut down`), if it is.
pub fn clean_shutdown_checkpoint(pgdata: &Path) -> Option<u64> {
    let facts = super::control::read_control(pgdata).ok()?;
    (facts.state == super::control::ControlState::ShutDown).then_some(facts.checkpoint)
}

/// Identity and addresses reported with every PostgresState.
#[derive(Clone)]
pub struct ObserveContext {
    /// DB UID from dbstate.
    pub db_uid: String,
    /// Applied generation from dbstate.
    pub generation: i64,
    /// `--pg-advertise-address`.
    pub advertise_address: String,
    /// `--pg-advertise-port`.
    pub advertise_port: String,
    /// Local port.
    pub port: u16,
    /// Replication user.
    pub repl_user: String,
    /// Replication password (`None` with trust).
    pub repl_password: Option<String>,
    /// The rolling restart this keeper last restarted PostgreSQL for (reported as `restartedFor`).
    pub restarted_for: String,
}

/// An observation: the state, and why it is incomplete when it is.
#[derive(Debug)]
pub struct Observation {
    /// The PostgresState (`healthy` false when `failure` is set).
    pub state: PostgresState,
    /// The first error of an incomplete observation.
    pub failure: Option<super::error::PgError>,
}

/// Collects the PostgresState. `healthy` is true only when the file parameters, in-sync standbys, system
/// identity and timeline history were all read (the oldest WAL file is best effort).
pub async fn observe(pg: &PgProcess, conn: &LocalConn, ctx: &ObserveContext) -> Observation {
    let mut st = PostgresState {
        uid: ctx.db_uid.clone(),
        generation: ctx.generation,
        listen_address: ctx.advertise_address.clone(),
        port: ctx.advertise_port.clone(),
        synchronous_standbys: Some(Vec::new()),
        restarted_for: ctx.restarted_for.clone(),
        ..Default::default()
    };
    if !pgdata_initialized(pg.pgdata()) {
        return Observation { state: st, failure: None };
    }
    let failure = match collect(pg, conn, ctx, &mut st).await {
        Ok(()) => {
            st.healthy = true;
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "postgres state incomplete");
            Some(e)
        }
    };
    if !st.healthy {
        st.shutdown_checkpoint = clean_shutdown_checkpoint(pg.pgdata()).unwrap_or(0);
    }
    match oldest_wal_file(pg.pgdata()) {
        Ok(w) => st.older_wal_file = w.unwrap_or_default(),
        Err(e) => tracing::debug!(error = %e, "oldest WAL file unknown"),
    }
    Observation { state: st, failure }
}

async fn collect(pg: &PgProcess, conn: &LocalConn, ctx: &ObserveContext, st: &mut PostgresState) -> PgResult<()> {
    st.pg_parameters = filter_managed(conn.file_settings().await?);
    st.synchronous_standbys = Some(stolon_standby_uids(&conn.sync_standby_names().await?));
    // Before IDENTIFY_SYSTEM, so that the replayed position is never ahead of the received one.
    let replay = conn.replay_positions().await?;
    st.replay_x_log_pos = replay.replayed;
    st.upstream_x_log_pos = replay.upstream_end;
    let id = identify_system(pg, ctx.port, &ctx.repl_user, ctx.repl_password.as_deref()).await?;
    st.system_id = id.system_id;
    st.timeline_id = id.timeline;
    st.x_log_pos = id.xlog_pos;
    st.timelines_history = timeline_history(pg.pgdata(), id.timeline)?;
    // Best effort: a failed read reports nothing pending (only `restart --pending-only` reads it).
    match conn.pending_restart().await {
        Ok(pending) => st.pending_restart = pending,
        Err(e) => tracing::debug!(error = %e, "pending restart unknown"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_directory_facts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(local_role(d), DbRole::Undefined);
        for sub in ["base", "global", "pg_wal", "pg_xact"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("PG_VERSION"), "15\n").unwrap();
        assert!(!pgdata_initialized(d));
        std::fs::write(d.join("global/pg_control"), [0u8; 8]).unwrap();
        assert_eq!(local_role(d), DbRole::Master);
        std::fs::write(d.join(STANDBY_SIGNAL), "").unwrap();
        assert_eq!(local_role(d), DbRole::Standby);
    }

    #[test]
    fn reported_parameters_and_standbys() {
        let p: PgParameters = [("port".to_string(), "1".to_string()), ("work_mem".into(), "4MB".into())].into();
        assert_eq!(filter_managed(p).into_keys().collect::<Vec<_>>(), ["work_mem"]);
        let names = ["stolon_b".to_string(), "walreceiver".into(), "stolon_a".into()];
        assert_eq!(stolon_standby_uids(&names), ["a", "b"]);
    }
}
