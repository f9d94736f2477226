//! stolon's `updateCluster` table behaviours (reference §9.3) as named tests over the pure decision:
//! initialisation, failover, standby replacement, spec propagation, and the fixed stolon weaknesses
//! (synchronous replication in `sentinel_table_sync.rs`, active proxies in `sentinel_table_proxies.rs`).
//! Conventions as in stolon's tests: new DB UIDs are `db<N+1>`, random picks return 0, and convergence
//! timers are aged by 1000 hours so any unconverged DB counts as convergence-failed. Each test states its
//! expected output as edits of its input.

use std::collections::BTreeMap;

use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::sentinel::*;
use stolon_core::time::Timestamp;

#[path = "common/sentinel_fixtures.rs"]
mod sentinel_fixtures;
use sentinel_fixtures::*;
#[path = "common/sentinel_table_helpers.rs"]
mod sentinel_table_helpers;
use sentinel_table_helpers::*;

fn bump(cd: &mut ClusterData, uid: &str) {
    dbm(cd, uid).generation += 1;
}

fn expected_initial_db(keeper_uid: &str) -> Db {
    let mut d = db("db1", keeper_uid, None);
    d.spec.init_mode = Some(DbInitMode::New);
    d.spec.include_config = true;
    d.status = DbStatus::default();
    d
}

#[test]
fn t00_init_without_keepers_is_an_error() {
    let err = run(&init_cluster(&[])).unwrap_err();
    assert_eq!(err.to_string(), "cannot choose initial master: no keepers registered");
}

#[test]
fn t01_init_with_one_keeper_creates_the_master_db() {
    let cd = init_cluster(&["keeper1"]);
    let mut want = cd.clone();
    want.dbs.insert("db1".into(), expected_initial_db("keeper1"));
    want.cluster.status.master = "db1".into();
    assert_cd(&run(&cd).unwrap(), &want);
}

#[test]
fn t02_init_with_several_keepers_uses_the_first_sorted_keeper() {
    let cd = init_cluster(&["keeper2", "keeper1", "keeper3"]);
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.keeper_uid, "keeper1");
    assert_eq!(got.cluster.status.master, "db1");
}

#[test]
fn t02b_initial_master_honours_can_be_master() {
    let mut cd = init_cluster(&["keeper1", "keeper2"]);
    cd.keepers.get_mut("keeper1").unwrap().status.can_be_master = Some(false);
    assert_eq!(run(&cd).unwrap().dbs["db1"].spec.keeper_uid, "keeper2");
    cd.keepers.get_mut("keeper2").unwrap().status.can_be_master = Some(false);
    assert!(matches!(run(&cd), Err(DecideError::NoInitialMaster(_))));
}

#[test]
fn t03_init_db_that_failed_to_converge_is_dropped() {
    let mut cd = init_cluster(&["keeper1"]);
    cd.dbs.insert("db1".into(), expected_initial_db("keeper1"));
    cd.cluster.status.master = "db1".into();
    let mut want = cd.clone();
    want.dbs.clear();
    want.cluster.status.master.clear();
    assert_cd(&run(&cd).unwrap(), &want);
}

#[test]
fn t03b_init_completes_when_the_master_converges_healthy() {
    let mut cd = init_cluster(&["keeper1"]);
    let mut d = expected_initial_db("keeper1");
    d.status = DbStatus { healthy: true, current_generation: 1, ..DbStatus::default() };
    d.status.pg_parameters.insert("max_connections".into(), "100".into());
    cd.dbs.insert("db1".into(), d);
    cd.cluster.status.master = "db1".into();
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.phase, Some(ClusterPhase::Normal));
    assert_eq!(got.dbs["db1"].spec.init_mode, Some(DbInitMode::None));
    assert!(!got.dbs["db1"].spec.include_config);
    assert_eq!(got.cluster.spec.pg_parameters.as_ref().unwrap()["max_connections"], "100");
    assert_eq!(got.dbs["db1"].generation, 2);
}

#[test]
fn t04_healthy_master_and_standby_change_nothing() {
    let cd = normal(2, 1);
    assert_cd(&run(&cd).unwrap(), &cd);
}

#[test]
fn t05_unhealthy_master_elects_standby() {
    let mut cd = normal(2, 1);
    sick_keeper(&mut cd, "keeper1");
    let mut want = cd.clone();
    want.cluster.status.master = "db2".into();
    dbm(&mut want, "db1").spec.followers = Some(vec![]);
    bump(&mut want, "db1");
    let d2 = dbm(&mut want, "db2");
    d2.spec.role = Some(DbRole::Master);
    d2.spec.follow_config = None;
    d2.generation += 1;
    want.proxy.spec.master_db_uid.clear();
    want.proxy.generation = 2;
    assert_cd(&run(&cd).unwrap(), &want);
}

#[test]
fn t06_converged_new_master_removes_old_master_and_resyncs_its_keeper() {
    let cd = after_failover();
    let got = run(&cd).unwrap();
    assert!(!got.dbs.contains_key("db1"), "old master db removed");
    let db3 = &got.dbs["db3"];
    assert_eq!(db3.spec.keeper_uid, "keeper1");
    assert_eq!(db3.spec.init_mode, Some(DbInitMode::Resync));
    assert_eq!(db3.spec.role, Some(DbRole::Standby));
    assert_eq!(db3.spec.follow_config.as_ref().unwrap().db_uid, "db2");
    assert_eq!(db3.generation, 1);
    assert_eq!(got.dbs["db2"].spec.followers, Some(s(&["db3"])));
    assert_eq!(got.dbs["db2"].generation, 2);
    assert_eq!(got.proxy.spec.master_db_uid, "db2");
    assert_eq!(got.proxy.generation, 3);
}

#[test]
fn t07_unhealthy_master_with_unconverged_standby_changes_nothing() {
    let mut cd = normal(2, 1);
    sick_keeper(&mut cd, "keeper1");
    dbm(&mut cd, "db2").generation = 2;
    assert_cd(&run(&cd).unwrap(), &cd);
}

#[test]
fn t08_healthy_but_unconverged_master_fails_over() {
    let mut cd = normal(2, 1);
    dbm(&mut cd, "db1").generation = 2;
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db2");
    assert_eq!(got.dbs["db2"].spec.role, Some(DbRole::Master));
    assert_eq!(got.dbs["db1"].spec.role, Some(DbRole::Master), "the old master keeps its role");
    assert_eq!(got.dbs["db1"].generation, 3);
}

#[test]
fn t09_good_standby_and_free_keeper_add_no_db() {
    let cd = normal(3, 1);
    assert_cd(&run(&cd).unwrap(), &cd);
}

#[test]
fn t10_standby_that_failed_to_converge_gets_a_replacement_on_a_free_keeper() {
    let mut cd = normal(3, 1);
    dbm(&mut cd, "db2").generation = 2;
    let got = run(&cd).unwrap();
    assert!(got.dbs.contains_key("db2"), "the failed standby is kept while no good one exists");
    assert_eq!(got.dbs["db3"].spec.keeper_uid, "keeper3");
    assert_eq!(got.dbs["db1"].spec.followers, Some(s(&["db2", "db3"])));
}

#[test]
fn t11_converged_replacement_removes_the_failed_standby() {
    let mut cd = normal(3, 2);
    dbm(&mut cd, "db2").generation = 2;
    let mut want = cd.clone();
    want.dbs.remove("db2");
    dbm(&mut want, "db1").spec.followers = Some(s(&["db3"]));
    bump(&mut want, "db1");
    assert_cd(&run(&cd).unwrap(), &want);
}

#[test]
fn t12_no_free_keeper_creates_nothing() {
    let mut cd = normal(2, 1);
    dbm(&mut cd, "db2").generation = 2;
    assert_cd(&run(&cd).unwrap(), &cd);
}

/// Beyond stolon: a standby is only placed on a keeper of the master's PostgreSQL major version.
#[test]
fn free_keeper_of_another_major_gets_no_standby() {
    let set_major = |cd: &mut ClusterData, uid: &str, maj: i64| {
        cd.keepers.get_mut(uid).unwrap().status.postgres_binary_version = PostgresBinaryVersion { maj, min: 0 };
    };
    let mut cd = normal(3, 1);
    dbm(&mut cd, "db2").generation = 2;
    set_major(&mut cd, "keeper1", 16);
    set_major(&mut cd, "keeper3", 17);
    assert_cd(&run(&cd).unwrap(), &cd);
    set_major(&mut cd, "keeper3", 16);
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db3"].spec.keeper_uid, "keeper3", "same major: the replacement standby is placed");
}

#[test]
fn t13_dead_keeper_without_db_is_removed() {
    let mut cd = normal(3, 1);
    let k3 = cd.keepers.get_mut("keeper3").unwrap();
    k3.status.healthy = false;
    k3.status.last_healthy_time = Timestamp::from_datetime(wall().as_datetime() - chrono::Duration::hours(49));
    let mut want = cd.clone();
    want.keepers.remove("keeper3");
    assert_cd(&run(&cd).unwrap(), &want);
    // A dead keeper that still has a DB is kept.
    sick_keeper(&mut cd, "keeper2");
    cd.keepers.get_mut("keeper2").unwrap().status.last_healthy_time = wall();
    let k2 = cd.keepers.get_mut("keeper2").unwrap();
    k2.status.last_healthy_time = Timestamp::from_datetime(wall().as_datetime() - chrono::Duration::hours(49));
    assert!(run(&cd).unwrap().keepers.contains_key("keeper2"));
}

#[test]
fn t14_spec_changes_are_propagated_to_db_specs() {
    let mut cd = normal(2, 1);
    let sp = &mut cd.cluster.spec;
    sp.request_timeout = Some(GoDuration::from_secs(20));
    sp.max_standbys = Some(5);
    sp.use_pgrewind = Some(true);
    sp.pg_parameters = Some(BTreeMap::from([("work_mem".to_string(), "8MB".to_string())]));
    sp.additional_wal_senders = Some(7);
    sp.additional_master_replication_slots = Some(s(&["backup"]));
    sp.pg_hba = Some(s(&["host all all 10.0.0.0/8 md5"]));
    let got = run(&cd).unwrap();
    for uid in ["db1", "db2"] {
        let d = &got.dbs[uid];
        assert_eq!(d.spec.request_timeout, GoDuration::from_secs(20));
        assert_eq!(d.spec.max_standbys, 5);
        assert!(d.spec.use_pgrewind);
        assert_eq!(d.spec.pg_parameters["work_mem"], "8MB");
        assert_eq!(d.spec.additional_wal_senders, 7);
        assert_eq!(d.spec.pg_hba, Some(s(&["host all all 10.0.0.0/8 md5"])));
        assert_eq!(d.generation, 2, "{uid} generation bumped");
    }
    assert_eq!(got.dbs["db1"].spec.additional_replication_slots, Some(s(&["backup"])));
    assert_eq!(got.dbs["db2"].spec.additional_replication_slots, None);
}
// ---- Fixed stolon weaknesses (reference §10) ----

#[test]
fn fix05_the_most_advanced_eligible_standby_is_elected() {
    let mut cd = normal(3, 2);
    dbm(&mut cd, "db1").status.x_log_pos = 1000;
    dbm(&mut cd, "db2").status.x_log_pos = 900;
    dbm(&mut cd, "db3").status.x_log_pos = 950;
    sick_keeper(&mut cd, "keeper1");
    assert_eq!(run(&cd).unwrap().cluster.status.master, "db3");
    // Ties break on the smallest UID.
    dbm(&mut cd, "db2").status.x_log_pos = 950;
    assert_eq!(run(&cd).unwrap().cluster.status.master, "db2");
}

#[test]
fn fix06_standby_beyond_max_standby_lag_is_not_elected() {
    let mut cd = normal(2, 1);
    dbm(&mut cd, "db1").status.x_log_pos = 10 * 1024 * 1024;
    dbm(&mut cd, "db2").status.x_log_pos = 10 * 1024 * 1024 - 1024 * 1024 - 1;
    sick_keeper(&mut cd, "keeper1");
    assert_eq!(run(&cd).unwrap().cluster.status.master, "db1", "1 MiB + 1 byte behind");
    dbm(&mut cd, "db2").status.x_log_pos += 1;
    assert_eq!(run(&cd).unwrap().cluster.status.master, "db2", "exactly 1 MiB behind");
}

#[test]
fn fix08_lowered_max_standbys_per_sender_does_not_wrap_and_resyncing_dbs_count() {
    let mut cd = normal(4, 2);
    cd.cluster.spec.max_standbys_per_sender = Some(1);
    dbm(&mut cd, "db3").generation = 2;
    // db2 good, db3 failed: good (1) >= max (1): db3 removed, nothing created on keeper4.
    let got = run(&cd).unwrap();
    assert!(!got.dbs.contains_key("db3"));
    assert_eq!(got.dbs.len(), 2);
    // A standby still resyncing (generation 1, never reported) counts: no extra DB on keeper3/keeper4.
    let mut cd = normal(4, 1);
    cd.cluster.spec.max_standbys_per_sender = Some(1);
    cd.cluster.spec.sync_timeout = Some(GoDuration::ZERO); // resync may take as long as it needs
    let d2 = dbm(&mut cd, "db2");
    d2.spec.init_mode = Some(DbInitMode::Resync);
    d2.status = DbStatus::default();
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs.len(), 2, "no over-provisioning during a base backup");
}

#[test]
fn fix12_disabling_sync_repl_unblocks_an_election() {
    let mut cd = normal(2, 1);
    master_sync(&mut cd, &[], &[]);
    sick_keeper(&mut cd, "keeper1");
    // Cluster spec: synchronous replication now disabled; the master DB spec still says synchronous.
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db2");
    assert!(!got.dbs["db2"].spec.synchronous_replication);
    // With the cluster spec still synchronous, the empty confirmed set blocks the election.
    sync_on(&mut cd, 1, 1);
    assert_eq!(run(&cd).unwrap().cluster.status.master, "db1");
}

#[test]
fn fix15_proxies_get_the_new_master_only_once_it_converged() {
    let mut cd = after_failover();
    dbm(&mut cd, "db2").generation = 2; // promotion not applied yet
    let mut hist = Histories::new_term();
    hist.refresh_convergence(&cd, now().mono);
    let got = update_cluster(&cd, &BTreeMap::new(), &hist, now(), &mut SequentialUids::after(2)).unwrap();
    assert_eq!(got.proxy.spec.master_db_uid, "", "not routed before the promotion converged");
    assert_eq!(got.cluster.status.master, "db2");
}

#[test]
fn invalid_db_role_is_an_error() {
    let mut cd = normal(2, 1);
    dbm(&mut cd, "db2").spec.role = Some(DbRole::Undefined);
    assert!(matches!(run(&cd), Err(DecideError::InvalidDbRole { .. })));
}

#[test]
fn standby_cluster_failover_gives_the_new_head_the_external_follow_config() {
    let mut cd = normal(2, 1);
    cd.cluster.spec.role = Some(ClusterRole::Standby);
    cd.cluster.spec.standby_config = Some(StandbyConfig {
        standby_settings: Some(StandbySettings { primary_conninfo: "host=ext".into(), ..Default::default() }),
        archive_recovery_settings: None,
    });
    let ext = FollowConfig {
        follow_type: Some(FollowType::External),
        standby_settings: cd.cluster.spec.standby_config.as_ref().unwrap().standby_settings.clone(),
        ..FollowConfig::default()
    };
    let m = dbm(&mut cd, "db1");
    m.spec.role = Some(DbRole::Standby);
    m.spec.follow_config = Some(ext.clone());
    sick_keeper(&mut cd, "keeper1");
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db2");
    assert_eq!(got.dbs["db2"].spec.role, Some(DbRole::Standby));
    assert_eq!(got.dbs["db2"].spec.follow_config, Some(ext));
}
