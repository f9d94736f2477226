//! Two keeper decisions that take idle seconds out of a failover under synchronous replication (issue 14
//! item 5), both pure:
//!
//! - [`repoint_by_reload`]: a standby told to follow another DB moves by a configuration reload instead of a
//!   restart when only `primary_conninfo` and `primary_slot_name` change (PostgreSQL 13 and later reload
//!   them and restart the WAL receiver at once). It streams from the new master a few hundred milliseconds
//!   sooner, and under synchronous replication the new master's commits wait for exactly that.
//! - [`sync_waiters_to_release`]: a master whose `synchronous_standby_names` a reload changed must make its
//!   synchronous standbys send a status reply. PostgreSQL releases a waiting commit only when a
//!   synchronous standby's reply reports it flushed; a commit that a standby flushed before the reload (while
//!   it was not yet listed, e.g. the first commits of a new master) otherwise waits for the standby's next
//!   reply, which comes with new WAL or after `wal_receiver_status_interval` (10 s by default). The keeper
//!   then writes one tiny record committed locally (see
//!   [`release_sync_waiters`](crate::postgres::sync_release::release_sync_waiters)): the standbys flush it and
//!   reply, and PostgreSQL releases every commit up to it. Nothing is acknowledged to a client by that:
//!   waiting commits are released only by a reply of a listed standby, as always.
//! - [`interruptible`] and [`db_assignment`]: a pass that only does routine work (slots, the pending-restart
//!   check, recording the generation) is cut short when the sentinel changes this keeper's DB or a
//!   switchover's directive for it (a fence) meanwhile, and the next pass starts at once. Such a pass takes a second or two on a loaded machine (each query opens a
//!   connection); a standby told to follow a new master during it otherwise waits for its end, and under
//!   synchronous replication the new master's commits wait for that standby.

use super::plan::{Action, Plan};
use crate::cluster::{ClusterData, PgParameters};
use crate::ops::keeper::{Directive, directive};
use crate::postgres::config::{RecoveryMode, RecoveryOptions};
use crate::time::Timestamp;

/// The oldest PostgreSQL major version that reloads `primary_conninfo` and `primary_slot_name`.
pub const RELOADABLE_UPSTREAM_MAJOR: u32 = 13;

/// Recovery parameters a running standby picks up on reload (PostgreSQL 13 and later).
const RELOADABLE_RECOVERY: &[&str] = &["primary_conninfo", "primary_slot_name"];

/// The parameter naming the synchronous standbys.
const SYNC_NAMES: &str = "synchronous_standby_names";

/// Whether a standby running with `running` recovery options reaches `wanted` by a reload: both standby
/// mode, a PostgreSQL that reloads the upstream settings, and no other recovery parameter differing.
pub fn repoint_by_reload(major: Option<u32>, running: &RecoveryOptions, wanted: &RecoveryOptions) -> bool {
    if major.is_none_or(|m| m < RELOADABLE_UPSTREAM_MAJOR)
        || running.mode != RecoveryMode::Standby
        || wanted.mode != RecoveryMode::Standby
        || running == wanted
    {
        return false;
    }
    let keys = running.parameters.keys().chain(wanted.parameters.keys());
    keys.filter(|k| !RELOADABLE_RECOVERY.contains(&k.as_str()))
        .all(|k| running.parameters.get(k) == wanted.parameters.get(k))
}

/// The standbys (application names) whose replies release the commits waiting on a master that is about to
/// reload from `applied` to `wanted` parameters: the names of the new `synchronous_standby_names` when it
/// changed and is not empty, else nothing to do.
pub fn sync_waiters_to_release(applied: Option<&PgParameters>, wanted: &PgParameters) -> Option<Vec<String>> {
    let new = wanted.get(SYNC_NAMES).map(String::as_str).unwrap_or_default();
    let old = applied.and_then(|p| p.get(SYNC_NAMES)).map(String::as_str).unwrap_or_default();
    if new == old || new.is_empty() {
        return None;
    }
    Some(standby_names(new))
}

/// Whether `plan` may be abandoned between or during its actions when the keeper's DB assignment changes:
/// only routine actions, each repeated by every pass and harmless when cut (slot refresh, the
/// pending-restart check without an automatic restart, recording the generation).
pub fn interruptible(plan: &Plan) -> bool {
    plan.actions.iter().all(|a| {
        matches!(
            a,
            Action::RefreshSlots { .. }
                | Action::CheckPendingRestart { automatic: false, .. }
                | Action::SaveGeneration(_)
        )
    })
}

/// The DB assigned to `keeper_uid` in `cd`, its generation and the operations' directive for it at `now`:
/// the sentinel bumps the generation whenever it changes the DB's spec (another upstream, other synchronous
/// standbys, a promotion), and a switchover fences a master through the directive alone (the old master
/// then shuts down without waiting for the end of a routine pass).
pub fn db_assignment(cd: &ClusterData, keeper_uid: &str, now: Timestamp) -> Option<(String, i64, Directive)> {
    cd.db_of_keeper(keeper_uid).map(|db| (db.uid.clone(), db.generation, directive(cd, &db.uid, now)))
}

/// The names listed in a `synchronous_standby_names` value as the keeper writes it (`name`, or
/// `N (a,b,...)`).
fn standby_names(value: &str) -> Vec<String> {
    let list = match (value.find('('), value.rfind(')')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    list.split(',').map(|n| n.trim().trim_matches('"').to_string()).filter(|n| !n.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(conninfo: &str, slot: &str, extra: &[(&str, &str)]) -> RecoveryOptions {
        let mut r = RecoveryOptions { mode: RecoveryMode::Standby, ..RecoveryOptions::default() };
        r.parameters.insert("primary_conninfo".into(), conninfo.into());
        r.parameters.insert("primary_slot_name".into(), slot.into());
        r.parameters.insert("recovery_target_timeline".into(), "latest".into());
        for (k, v) in extra {
            r.parameters.insert(k.to_string(), v.to_string());
        }
        r
    }

    fn plan_of(actions: Vec<Action>) -> Plan {
        Plan { actions, outcome: crate::keeper::plan::Outcome::Converged, target_role: None, local_role: None }
    }

    #[test]
    fn only_routine_passes_are_interruptible() {
        let slots = Action::RefreshSlots { wanted: Default::default(), must_succeed: false };
        let config = crate::keeper::plan::ConfigSet {
            parameters: PgParameters::new(),
            hba: Vec::new(),
            recovery: RecoveryOptions::default(),
        };
        let check = |automatic| Action::CheckPendingRestart { automatic, config: config.clone() };
        assert!(interruptible(&plan_of(vec![slots.clone(), check(false), Action::SaveGeneration(3)])));
        assert!(interruptible(&plan_of(Vec::new())));
        assert!(!interruptible(&plan_of(vec![slots.clone(), check(true)])), "an automatic restart runs to its end");
        assert!(!interruptible(&plan_of(vec![Action::Repoint { config: config.clone() }, slots.clone()])));
        assert!(!interruptible(&plan_of(vec![Action::Reload { config: config.clone() }, check(false)])));
        assert!(!interruptible(&plan_of(vec![Action::Promote { config }])));
    }

    #[test]
    fn the_assignment_is_the_db_and_its_generation() {
        let mut cd = ClusterData::default();
        let mut db = crate::cluster::Db { uid: "db1".into(), generation: 4, ..Default::default() };
        db.spec.keeper_uid = "k1".into();
        cd.dbs.insert("db1".into(), db);
        let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(db_assignment(&cd, "k1", now), Some(("db1".to_string(), 4, Directive::None)));
        assert_eq!(db_assignment(&cd, "k2", now), None);
        let before = db_assignment(&cd, "k1", now);
        cd.dbs.get_mut("db1").unwrap().generation = 5;
        assert_ne!(db_assignment(&cd, "k1", now), before);
    }

    #[test]
    fn a_switchover_fencing_this_master_changes_the_assignment() {
        let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let mut cd = ClusterData::default();
        let mut db = crate::cluster::Db { uid: "db1".into(), generation: 4, ..Default::default() };
        db.spec.keeper_uid = "k1".into();
        cd.dbs.insert("db1".into(), db);
        let before = db_assignment(&cd, "k1", now);
        cd.operations.switchover = Some(crate::cluster::Switchover {
            from_db: "db1".into(),
            to_db: "db2".into(),
            phase: crate::cluster::SwitchoverPhase::Fencing,
            ..Default::default()
        });
        let fenced = db_assignment(&cd, "k1", now);
        assert_eq!(fenced.as_ref().map(|a| a.2), Some(Directive::Fence));
        assert_ne!(fenced, before, "the generation is the same, the directive is not");
    }

    #[test]
    fn a_new_upstream_is_reloaded_from_postgresql_13() {
        let old = standby("host=a port=5432", "stolon_c", &[]);
        let new = standby("host=b port=5433", "stolon_c", &[]);
        assert!(repoint_by_reload(Some(13), &old, &new));
        assert!(repoint_by_reload(Some(17), &old, &new));
        assert!(!repoint_by_reload(Some(12), &old, &new), "PostgreSQL 12 restarts for primary_conninfo");
        assert!(!repoint_by_reload(None, &old, &new), "unknown version: restart");
        assert!(!repoint_by_reload(Some(15), &old, &old), "nothing to change");
    }

    #[test]
    fn other_recovery_changes_restart() {
        let old = standby("host=a", "stolon_c", &[]);
        let delayed = standby("host=b", "stolon_c", &[("recovery_min_apply_delay", "1min")]);
        assert!(!repoint_by_reload(Some(15), &old, &delayed));
        let archive = standby("host=a", "stolon_c", &[("restore_command", "cp %f %p")]);
        assert!(!repoint_by_reload(Some(15), &old, &archive));
        let mut primary = old.clone();
        primary.mode = RecoveryMode::None;
        assert!(!repoint_by_reload(Some(15), &old, &primary), "promotion is not a reload");
        assert!(!repoint_by_reload(Some(15), &primary, &old), "a primary does not become a standby by reload");
    }

    fn params(names: &str) -> PgParameters {
        [("synchronous_standby_names".to_string(), names.to_string()), ("work_mem".into(), "4MB".into())].into()
    }

    #[test]
    fn changed_synchronous_standbys_are_released() {
        assert_eq!(
            sync_waiters_to_release(Some(&params("stolonfakestandby")), &params("stolon_c")),
            Some(vec!["stolon_c".to_string()])
        );
        assert_eq!(
            sync_waiters_to_release(Some(&params("stolon_b")), &params("2 (stolon_b,stolon_c)")),
            Some(vec!["stolon_b".to_string(), "stolon_c".to_string()])
        );
        assert_eq!(sync_waiters_to_release(None, &params("stolon_c")), Some(vec!["stolon_c".to_string()]));
    }

    #[test]
    fn unchanged_or_cleared_names_release_nothing() {
        assert_eq!(sync_waiters_to_release(Some(&params("stolon_c")), &params("stolon_c")), None);
        // Cleared: PostgreSQL itself releases every waiter when no synchronous standby is defined any more.
        assert_eq!(sync_waiters_to_release(Some(&params("stolon_c")), &params("")), None);
        assert_eq!(sync_waiters_to_release(Some(&PgParameters::new()), &PgParameters::new()), None);
    }
}
