//! The keeper's pure planner, case by case over reference 5.2.

use std::collections::BTreeSet;

use stolon_core::cluster::{
    ClusterData, ClusterSpec, DbInitMode, DbLocalState, DbRole, DbStatus, FollowConfig, FollowType, NewConfig,
    PitrConfig, PostgresTimelineHistory, StandbySettings,
};
use stolon_core::keeper::db_config::{db_hba, db_parameters, slot_changes, standby_recovery};
use stolon_core::keeper::plan::{
    Action, Applied, ConfigSet, KeeperSettings, Observed, Outcome, Plan, PlanInput, different_timeline_branch, plan,
};
use stolon_core::postgres::AuthMethod;
use stolon_core::postgres::config::RecoveryMode;
use stolon_core::time::Timestamp;

#[path = "common/keeper_fixtures.rs"]
mod keeper_fixtures;
use keeper_fixtures::*;

struct Case {
    s: KeeperSettings,
    cd: ClusterData,
    local: DbLocalState,
    obs: Observed,
    applied: Applied,
    after_init: bool,
    boot: String,
}

impl Case {
    fn new(cd: ClusterData, local: DbLocalState, obs: Observed) -> Case {
        Case { s: settings(), cd, local, obs, applied: Applied::default(), after_init: false, boot: BOOT.into() }
    }

    fn plan(&self) -> Plan {
        plan(&PlanInput {
            settings: &self.s,
            boot_uuid: &self.boot,
            cd: &self.cd,
            local: &self.local,
            observed: &self.obs,
            applied: &self.applied,
            after_init: self.after_init,
            now: stolon_core::time::Timestamp::now(),
        })
    }

    /// The configuration the keeper would apply for d1 now.
    fn config(&self, restricted: bool, recovery_mode: RecoveryMode) -> ConfigSet {
        let d = &self.cd.dbs["d1"];
        let recovery = match recovery_mode {
            RecoveryMode::Standby => standby_recovery(&self.s, &self.cd, d).expect("standby recovery"),
            _ => Default::default(),
        };
        ConfigSet {
            parameters: db_parameters(&self.s, d, &self.local, true),
            hba: db_hba(&self.s, &self.cd, d, restricted),
            recovery,
        }
    }
}

fn has(p: &Plan, f: impl Fn(&Action) -> bool) -> bool {
    p.actions.iter().any(f)
}

fn destructive(p: &Plan) -> bool {
    has(p, |a| {
        matches!(a, Action::RemovePgdata | Action::Initdb { .. } | Action::Resync(_) | Action::RestoreBackup { .. })
    })
}

#[test]
fn waits_until_the_keeper_is_in_cluster_data() {
    let mut c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::New)),
        local("", 0),
        observed(DbRole::Undefined, false),
    );
    c.cd.keepers.remove("k1");
    let p = c.plan();
    assert!(p.actions.is_empty());
    assert!(matches!(p.outcome, Outcome::Waiting(_)));
}

#[test]
fn no_assigned_db_stops_postgres() {
    let mut c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None)),
        local("d1", 3),
        observed(DbRole::Master, true),
    );
    c.cd.dbs.clear();
    let p = c.plan();
    assert_eq!(p.actions, [Action::StopPostgres]);
    assert!(matches!(p.outcome, Outcome::Waiting(_)));
}

#[test]
fn a_different_boot_uuid_keeps_postgres_stopped() {
    let mut c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None)),
        local("d1", 3),
        observed(DbRole::Master, true),
    );
    c.boot = "boot-2".into();
    let p = c.plan();
    assert_eq!(p.actions, [Action::StopPostgres]);
    assert!(matches!(p.outcome, Outcome::Waiting(ref r) if r == stolon_core::keeper::messages::BOOT_UUID_DIFFERS));
}

#[test]
fn init_new_runs_initdb_roles_then_replans() {
    let mut d1 = db("d1", "k1", DbRole::Master, DbInitMode::New);
    d1.spec.new_config = Some(NewConfig { locale: "C".into(), encoding: "UTF8".into(), data_checksums: true });
    d1.spec.include_config = true;
    let c = Case::new(cd_with(d1), local("", 0), observed(DbRole::Undefined, false));
    let p = c.plan();
    assert_eq!(p.outcome, Outcome::Replan);
    let kinds: Vec<&str> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::SaveDbState(s) if s.initializing && s.uid == "d1" => "save-initializing",
            Action::SetRestrictedHba(false) => "unrestrict",
            Action::StopPostgres => "stop",
            Action::RemovePgdata => "remove",
            Action::Initdb { locale, encoding, data_checksums: true } if locale == "C" && encoding == "UTF8" => {
                "initdb"
            }
            Action::Start { temporary: true, config } if config.recovery.mode == RecoveryMode::None => "start-temp",
            Action::WaitReady { .. } => "ready",
            Action::CaptureInitParameters => "capture",
            Action::CreateRoles => "roles",
            Action::MarkInitialized => "initialized",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "save-initializing",
            "unrestrict",
            "stop",
            "remove",
            "initdb",
            "start-temp",
            "ready",
            "capture",
            "roles",
            "stop",
            "initialized"
        ]
    );
}

#[test]
fn init_existing_keeps_the_data() {
    let c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::Existing)),
        local("", 0),
        observed(DbRole::Master, false),
    );
    let p = c.plan();
    assert_eq!(p.outcome, Outcome::Replan);
    assert!(!destructive(&p));
    assert!(has(&p, |a| matches!(a, Action::SaveDbState(s) if s.uid == "d1" && !s.initializing)));
    assert!(!has(&p, |a| matches!(a, Action::CreateRoles | Action::CaptureInitParameters)));
}

#[test]
fn init_pitr_restores_and_waits_for_recovery_end() {
    let mut d1 = db("d1", "k1", DbRole::Master, DbInitMode::Pitr);
    d1.spec.pitr_config = Some(PitrConfig { data_restore_command: "restore %d".into(), ..Default::default() });
    let c = Case::new(cd_with(d1), local("", 0), observed(DbRole::Undefined, false));
    let p = c.plan();
    assert!(has(&p, |a| matches!(a, Action::RestoreBackup { command } if command == "restore %d")));
    assert!(has(
        &p,
        |a| matches!(a, Action::Start { config, temporary: true } if config.recovery.mode == RecoveryMode::Recovery)
    ));
    assert!(has(&p, |a| matches!(a, Action::WaitRecoveryEnd { .. })));
    // The head of a standby cluster restores into standby mode and does not wait for recovery to end.
    let mut d1 = db("d1", "k1", DbRole::Standby, DbInitMode::Pitr);
    d1.spec.follow_config = Some(FollowConfig {
        follow_type: Some(FollowType::External),
        standby_settings: Some(StandbySettings { primary_conninfo: "host=ext".into(), ..Default::default() }),
        ..Default::default()
    });
    let mut cd = ClusterData::new_initial("c", ClusterSpec::default(), Timestamp::now());
    cd.keepers = cd_with(db("x", "k9", DbRole::Master, DbInitMode::None)).keepers;
    cd.dbs.insert("d1".into(), d1);
    let p = Case::new(cd, local("", 0), observed(DbRole::Undefined, false)).plan();
    assert!(has(&p, |a| matches!(a, Action::Start { config, .. } if config.recovery.mode == RecoveryMode::Standby
        && config.recovery.parameters["primary_conninfo"] == "host=ext")));
    assert!(!has(&p, |a| matches!(a, Action::WaitRecoveryEnd { .. })));
}

fn resync_case(use_pgrewind: bool) -> Case {
    let mut d1 = db("d1", "k1", DbRole::Standby, DbInitMode::Resync);
    d1.spec.use_pgrewind = use_pgrewind;
    Case::new(cd_with(d1), local("old", 7), observed(DbRole::Master, false))
}

fn rewind_source(p: &Plan) -> Option<Option<(String, String)>> {
    p.actions.iter().find_map(|a| match a {
        Action::Resync(r) => Some(r.rewind_from.clone()),
        _ => None,
    })
}

/// Beyond stolon: a keeper never follows a master whose keeper runs another PostgreSQL major version.
#[test]
fn a_standby_of_a_master_of_another_major_is_refused() {
    let mut c = resync_case(true);
    c.cd.keepers.get_mut("k0").unwrap().status.postgres_binary_version.maj = 16;
    c.s.pg_major = Some(17);
    let p = c.plan();
    assert_eq!(p.actions, vec![Action::StopPostgres]);
    let Outcome::Failed(reason) = &p.outcome else { panic!("expected a refusal, got {:?}", p.outcome) };
    assert!(
        reason.contains("PostgreSQL 16") && reason.contains("PostgreSQL 17") && reason.contains("\"k0\""),
        "{reason}"
    );
    // Same major, or a master keeper that reported no version: the resync goes ahead.
    for maj in [17, 0] {
        c.cd.keepers.get_mut("k0").unwrap().status.postgres_binary_version.maj = maj;
        assert_eq!(c.plan().outcome, Outcome::Replan, "master major {maj}");
    }
    // A master keeps its role whatever its followers run.
    let m = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None)),
        local("d1", 3),
        observed(DbRole::Master, true),
    );
    assert!(!matches!(m.plan().outcome, Outcome::Failed(_)));
}

#[test]
fn init_resync_tries_pg_rewind_only_when_it_can_work() {
    let c = resync_case(true);
    let p = c.plan();
    assert_eq!(p.outcome, Outcome::Replan);
    assert_eq!(rewind_source(&p), Some(Some(("10.0.0.9".into(), "5432".into()))));
    let r =
        p.actions.iter().find_map(|a| if let Action::Resync(r) = a { Some(r.clone()) } else { None }).expect("resync");
    assert_eq!(r.slot, "stolon_d1");
    assert_eq!(r.config.recovery.parameters["primary_slot_name"], "stolon_d1");
    assert!(r.config.recovery.parameters["primary_conninfo"].contains("host='10.0.0.9'"));
    assert_eq!(p.actions.last(), Some(&Action::MarkInitialized));
    assert!(!has(&p, |a| matches!(a, Action::RemovePgdata)), "the resync itself decides what to delete");

    assert_eq!(rewind_source(&resync_case(false).plan()), Some(None), "usePgrewind off");
    let mut c = resync_case(true);
    c.obs.system_id = Some("43".into());
    assert_eq!(rewind_source(&c.plan()), Some(None), "another system id");
    let mut c = resync_case(true);
    c.obs = observed(DbRole::Undefined, false);
    assert_eq!(rewind_source(&c.plan()), Some(None), "no data");
    let mut c = resync_case(true);
    c.s.su_password = None;
    assert_eq!(rewind_source(&c.plan()), Some(None), "md5 without a superuser password");
    c.s.su_auth = AuthMethod::Trust;
    assert!(matches!(rewind_source(&c.plan()), Some(Some(_))), "trust needs no password");
    let mut c = resync_case(true);
    c.cd.cluster.status.master.clear();
    assert_eq!(rewind_source(&c.plan()), Some(None), "no master");
    let mut c = resync_case(true);
    c.cd.dbs.remove("d0");
    assert!(matches!(c.plan().outcome, Outcome::Failed(_)), "followed DB missing");
}

#[test]
fn init_mode_none_with_another_db_is_an_error_and_touches_nothing() {
    let c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None)),
        local("d9", 2),
        observed(DbRole::Master, true),
    );
    let p = c.plan();
    assert!(matches!(p.outcome, Outcome::Failed(ref r) if r.contains("init mode is none")));
    assert!(p.actions.is_empty());
}

#[test]
fn an_interrupted_init_is_wiped_first_but_not_within_the_same_pass() {
    let mut l = local("d1", 0);
    l.initializing = true;
    let mut c =
        Case::new(cd_with(db("d1", "k1", DbRole::Standby, DbInitMode::Resync)), l, observed(DbRole::Standby, true));
    c.cd.dbs.get_mut("d1").expect("d1").spec.use_pgrewind = true;
    let p = c.plan();
    assert_eq!(
        &p.actions[..3],
        [Action::StopPostgres, Action::RemovePgdata, Action::SaveDbState(DbLocalState::default())]
    );
    assert!(has(&p, |a| matches!(a, Action::Resync(_))));
    assert_eq!(rewind_source(&p), Some(None), "wiped data cannot be rewound");
    c.after_init = true;
    let p = c.plan();
    assert!(!has(&p, |a| matches!(a, Action::RemovePgdata)));
}

#[test]
fn master_target_needs_initialized_data() {
    let c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None)),
        local("d1", 2),
        observed(DbRole::Undefined, false),
    );
    let p = c.plan();
    assert!(matches!(p.outcome, Outcome::Failed(_)));
    assert!(!destructive(&p));
}

#[test]
fn stopped_master_starts_creates_slots_and_converges() {
    let mut d1 = db("d1", "k1", DbRole::Master, DbInitMode::None);
    d1.spec.followers = Some(vec!["d2".into(), "d1".into()]);
    d1.spec.additional_replication_slots = Some(vec!["extra".into()]);
    let c = Case::new(cd_with(d1), local("d1", 2), observed(DbRole::Master, false));
    let p = c.plan();
    assert_eq!(p.outcome, Outcome::Converged);
    let cfg = c.config(false, RecoveryMode::None);
    let wanted: BTreeSet<String> = ["stolon_d2".to_string(), "stolon_extra".to_string()].into();
    assert_eq!(
        p.actions,
        [
            Action::Start { config: cfg.clone(), temporary: false },
            Action::WaitReady { timeout: Some(std::time::Duration::from_secs(60)) },
            Action::RefreshSlots { wanted, must_succeed: true },
            Action::CheckPendingRestart { automatic: false, config: cfg },
            Action::SaveGeneration(3),
        ]
    );
    assert_eq!(p.target_role, Some(DbRole::Master));
}

#[test]
fn restart_protection_withholds_client_rules_until_sync_standbys_are_in_sync() {
    let mut d1 = db("d1", "k1", DbRole::Master, DbInitMode::None);
    d1.spec.synchronous_replication = true;
    d1.spec.synchronous_standbys = Some(vec!["d2".into()]);
    let c = Case::new(cd_with(d1), local("d1", 2), observed(DbRole::Master, false));
    let p = c.plan();
    assert_eq!(p.actions[0], Action::SetRestrictedHba(true));
    let Action::Start { config, .. } = &p.actions[1] else { panic!("start expected: {p:?}") };
    assert!(!config.hba.iter().any(|l| l.contains("all all")), "no client rules: {:?}", config.hba);
    assert_eq!(config.parameters["synchronous_standby_names"], "stolon_d2");

    // Running and restricted: kept while d2 is not in sync, lifted (with a reload) once it is.
    let mut c = c;
    c.obs = observed(DbRole::Master, true);
    c.applied = Applied {
        restricted_hba: true,
        parameters: Some(c.config(true, RecoveryMode::None).parameters),
        hba: Some(c.config(true, RecoveryMode::None).hba),
        recovery: Some(Default::default()),
    };
    c.obs.in_sync_standbys = Some(vec![]);
    let p = c.plan();
    assert!(!has(&p, |a| matches!(a, Action::SetRestrictedHba(false) | Action::Reload { .. })));
    c.obs.in_sync_standbys = Some(vec!["d2".into()]);
    let p = c.plan();
    assert!(has(&p, |a| matches!(a, Action::SetRestrictedHba(false))));
    assert!(has(&p, |a| matches!(a, Action::Reload { config } if config.hba.iter().any(|l| l.contains("all all")))));
}

#[test]
fn a_standby_assigned_master_is_promoted() {
    let c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None)),
        local("d1", 2),
        observed(DbRole::Standby, true),
    );
    let mut c = c;
    c.applied.recovery = Some(Default::default());
    let p = c.plan();
    assert!(!has(&p, |a| matches!(a, Action::Start { .. })));
    assert!(has(&p, |a| matches!(a, Action::Promote { config } if config.recovery.mode == RecoveryMode::None)));
    // Stopped: started as the standby it is, then promoted (never started as a primary directly).
    c.obs.running = false;
    let p = c.plan();
    let start = p
        .actions
        .iter()
        .position(|a| matches!(a, Action::Start { config, .. } if config.recovery.mode == RecoveryMode::Standby));
    let promote = p.actions.iter().position(|a| matches!(a, Action::Promote { .. }));
    assert!(start.is_some() && promote.is_some() && start < promote, "{p:?}");
}

#[test]
fn a_superseded_master_assignment_is_not_promoted() {
    // d1 was elected, then a later election chose d0: d1 keeps its master role but is no longer the master.
    let mut cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    cd.dbs.insert("d0".into(), db("d0", "k0", DbRole::Master, DbInitMode::None));
    cd.cluster.status.master = "d0".into();
    let mut c = Case::new(cd, local("d1", 2), observed(DbRole::Standby, true));
    c.applied.recovery = Some(Default::default());
    let p = c.plan();
    assert!(!has(&p, |a| matches!(a, Action::Promote { .. })), "{p:?}");
    assert!(matches!(p.outcome, Outcome::Waiting(ref r) if r.contains("not promoting")), "{p:?}");
    // A primary that is no longer the cluster's master is left as it is (fenced by the proxies), as stolon does.
    c.obs = observed(DbRole::Master, true);
    let p = c.plan();
    assert!(!matches!(p.outcome, Outcome::Failed(_)), "{p:?}");
}

#[test]
fn a_master_is_never_demoted_in_place() {
    let c = Case::new(
        cd_with(db("d1", "k1", DbRole::Standby, DbInitMode::None)),
        local("d1", 2),
        observed(DbRole::Master, true),
    );
    let p = c.plan();
    assert!(matches!(p.outcome, Outcome::Failed(ref r) if r.contains("cannot move from master role to standby role")));
    assert!(p.actions.is_empty());
}

#[test]
fn a_stopped_standby_starts_following_its_db_and_drops_slots() {
    let c = Case::new(
        cd_with(db("d1", "k1", DbRole::Standby, DbInitMode::None)),
        local("d1", 2),
        observed(DbRole::Standby, false),
    );
    let p = c.plan();
    let cfg = c.config(false, RecoveryMode::Standby);
    assert_eq!(p.actions[0], Action::Start { config: cfg.clone(), temporary: false });
    let conninfo = &cfg.recovery.parameters["primary_conninfo"];
    assert!(conninfo.contains("host='10.0.0.9'") && conninfo.contains("application_name='stolon_d1'"), "{conninfo}");
    assert!(conninfo.contains("password='replpw'"));
    assert!(has(&p, |a| matches!(a, Action::RefreshSlots { wanted, must_succeed: false } if wanted.is_empty())));
    assert_eq!(p.outcome, Outcome::Converged);
}

#[test]
fn a_running_standby_moves_upstream_only_when_its_recovery_options_change() {
    let mut c = Case::new(
        cd_with(db("d1", "k1", DbRole::Standby, DbInitMode::None)),
        local("d1", 2),
        observed(DbRole::Standby, true),
    );
    let cfg = c.config(false, RecoveryMode::Standby);
    c.applied = Applied {
        parameters: Some(cfg.parameters.clone()),
        hba: Some(cfg.hba.clone()),
        recovery: Some(cfg.recovery.clone()),
        restricted_hba: false,
    };
    let p = c.plan();
    assert!(!has(&p, |a| matches!(a, Action::Restart { .. } | Action::Reload { .. } | Action::Start { .. })));
    // The followed DB moved: PostgreSQL 13 and later reload the new primary_conninfo, older ones restart.
    c.cd.dbs.get_mut("d0").expect("d0").status.listen_address = "10.0.0.8".into();
    let moved = |config: &ConfigSet| config.recovery.parameters["primary_conninfo"].contains("10.0.0.8");
    let p = c.plan();
    assert!(has(&p, |a| matches!(a, Action::Repoint { config } if moved(config))), "{p:?}");
    assert!(!has(&p, |a| matches!(a, Action::Restart { .. } | Action::Reload { .. })), "{p:?}");
    c.s.pg_major = Some(12);
    let p = c.plan();
    assert!(has(&p, |a| matches!(a, Action::Restart { config } if moved(config))), "{p:?}");
    assert!(!has(&p, |a| matches!(a, Action::Repoint { .. })), "{p:?}");
}

#[test]
fn a_running_master_that_lists_new_synchronous_standbys_releases_their_waiting_commits() {
    let mut d1 = db("d1", "k1", DbRole::Master, DbInitMode::None);
    d1.spec.synchronous_replication = true;
    d1.spec.external_synchronous_standbys = Some(vec!["stolonfakestandby".into()]);
    let mut c = Case::new(cd_with(d1), local("d1", 2), observed(DbRole::Master, true));
    let cfg = c.config(false, RecoveryMode::None);
    c.applied = Applied {
        parameters: Some(cfg.parameters.clone()),
        hba: Some(cfg.hba.clone()),
        recovery: Some(Default::default()),
        restricted_hba: false,
    };
    assert!(!has(&c.plan(), |a| matches!(a, Action::ReleaseSyncWaiters { .. })), "nothing changed");
    let d1 = c.cd.dbs.get_mut("d1").expect("d1");
    d1.spec.synchronous_standbys = Some(vec!["d2".into()]);
    d1.spec.external_synchronous_standbys = Some(vec![]);
    let p = c.plan();
    let reload = p.actions.iter().position(|a| matches!(a, Action::Reload { .. }));
    let release = p
        .actions
        .iter()
        .position(|a| matches!(a, Action::ReleaseSyncWaiters { standbys } if standbys == &["stolon_d2".to_string()]));
    assert!(reload.is_some() && release > reload, "the release follows the reload: {p:?}");
    // Another parameter alone: no release.
    let mut c2 = Case::new(c.cd.clone(), local("d1", 2), observed(DbRole::Master, true));
    c2.applied = Applied { parameters: Some(c.config(false, RecoveryMode::None).parameters), ..c.applied.clone() };
    c2.cd.dbs.get_mut("d1").expect("d1").spec.pg_parameters.insert("work_mem".into(), "8MB".into());
    let p = c2.plan();
    assert!(
        has(&p, |a| matches!(a, Action::Reload { .. })) && !has(&p, |a| matches!(a, Action::ReleaseSyncWaiters { .. }))
    );
    // Just started (no waiting commit can exist): no release.
    c.obs.running = false;
    assert!(!has(&c.plan(), |a| matches!(a, Action::ReleaseSyncWaiters { .. })));
}

#[test]
fn parameter_and_hba_changes_reload_and_restart_follows_the_spec() {
    let mut c = Case::new(
        cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None)),
        local("d1", 2),
        observed(DbRole::Master, true),
    );
    let cfg = c.config(false, RecoveryMode::None);
    c.applied = Applied {
        parameters: Some(cfg.parameters.clone()),
        hba: Some(cfg.hba.clone()),
        recovery: Some(Default::default()),
        restricted_hba: false,
    };
    assert!(!has(&c.plan(), |a| matches!(a, Action::Reload { .. })));
    c.cd.dbs.get_mut("d1").expect("d1").spec.pg_parameters.insert("work_mem".into(), "8MB".into());
    let p = c.plan();
    assert!(has(&p, |a| matches!(a, Action::Reload { config } if config.parameters["work_mem"] == "8MB")));
    c.cd.dbs.get_mut("d1").expect("d1").spec.pg_parameters.clear();
    c.cd.dbs.get_mut("d1").expect("d1").spec.pg_hba = Some(vec!["host all app 10.1.0.0/16 md5".into()]);
    assert!(has(
        &c.plan(),
        |a| matches!(a, Action::Reload { config } if config.hba.last().is_some_and(|l| l.contains("app")))
    ));
    c.cd.cluster.spec.automatic_pg_restart = Some(true);
    assert!(has(&c.plan(), |a| matches!(a, Action::CheckPendingRestart { automatic: true, .. })));
}

#[test]
fn slots_are_diffed_without_touching_foreign_ones() {
    let existing: BTreeSet<String> = ["stolon_a", "stolon_b", "other"].iter().map(|s| s.to_string()).collect();
    let wanted: BTreeSet<String> = ["stolon_b", "stolon_c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(slot_changes(&existing, &wanted), (vec!["stolon_a".to_string()], vec!["stolon_c".to_string()]));
}

#[test]
fn timeline_branches() {
    let followed = DbStatus {
        timeline_id: 3,
        timelines_history: vec![
            PostgresTimelineHistory { timeline_id: 1, switch_point: 100, reason: String::new() },
            PostgresTimelineHistory { timeline_id: 2, switch_point: 200, reason: String::new() },
        ],
        ..Default::default()
    };
    assert!(!different_timeline_branch(&followed, 3, 999));
    assert!(different_timeline_branch(&followed, 4, 0));
    assert!(!different_timeline_branch(&followed, 2, 150));
    assert!(different_timeline_branch(&followed, 2, 250));
    assert!(different_timeline_branch(&followed, 1, 101));
}

#[test]
fn a_standby_cluster_head_keeps_slots_for_its_cascading_standbys() {
    // d1 follows an external primary (standby cluster master) and is followed by d2.
    let mut d1 = db("d1", "k1", DbRole::Standby, DbInitMode::None);
    d1.spec.follow_config = Some(FollowConfig {
        follow_type: Some(FollowType::External),
        standby_settings: Some(StandbySettings { primary_conninfo: "host=10.9.9.9".into(), ..Default::default() }),
        ..Default::default()
    });
    d1.spec.followers = Some(vec!["d2".into()]);
    let mut cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    cd.dbs.insert("d1".into(), d1);
    let c = Case::new(cd, local("d1", 2), observed(DbRole::Standby, true));
    let p = c.plan();
    let want: BTreeSet<String> = ["stolon_d2".to_string()].into();
    assert!(has(&p, |a| matches!(a, Action::RefreshSlots { wanted, must_succeed: false } if *wanted == want)), "{p:?}");
}
