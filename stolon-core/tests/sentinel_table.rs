//! stolon's `updateCluster` table behaviours (reference §9.3) and the active-proxies behaviours, as named
//! tests over the pure decision. Conventions as in stolon's tests: new DB UIDs are `db<N+1>`, random
//! picks return 0, and convergence timers are aged by 1000 hours so any unconverged DB counts as
//! convergence-failed. Each test states its expected output as edits of its input.

use std::collections::BTreeMap;
use std::time::Duration;

use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::sentinel::*;
use stolon_core::time::Timestamp;

#[path = "common/sentinel_fixtures.rs"]
mod sentinel_fixtures;
use sentinel_fixtures::*;

fn now() -> Now {
    Now { mono: MonoTime::from_duration(1000 * HOUR), wall: wall() }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn dbm<'a>(cd: &'a mut ClusterData, uid: &str) -> &'a mut Db {
    cd.dbs.get_mut(uid).expect("db in fixture")
}

fn sync_on(cd: &mut ClusterData, min: u16, max: u16) {
    cd.cluster.spec.synchronous_replication = Some(true);
    cd.cluster.spec.min_synchronous_standbys = Some(min);
    cd.cluster.spec.max_synchronous_standbys = Some(max);
}

fn master_sync(cd: &mut ClusterData, spec: &[&str], status: &[&str]) {
    let m = dbm(cd, "db1");
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(s(spec));
    m.spec.external_synchronous_standbys = Some(vec![]);
    m.status.synchronous_standbys = Some(s(status));
}

/// Runs the decision with aged convergence timers and `db<N+1>` UIDs.
fn run(cd: &ClusterData) -> Result<ClusterData, DecideError> {
    run_with_proxies(cd, &BTreeMap::new())
}

fn run_with_proxies(cd: &ClusterData, proxies: &BTreeMap<String, ProxyInfo>) -> Result<ClusterData, DecideError> {
    let mut hist = Histories::new_term();
    hist.refresh_convergence(cd, MonoTime::ZERO);
    let mut uids = SequentialUids::after(cd.dbs.len() as u64);
    update_cluster(cd, proxies, &hist, now(), &mut uids)
}

fn bump(cd: &mut ClusterData, uid: &str) {
    dbm(cd, uid).generation += 1;
}

/// Asserts equality with a readable diff of the JSON forms.
fn assert_cd(got: &ClusterData, want: &ClusterData) {
    if got != want {
        let g = serde_json::to_string_pretty(got).unwrap();
        let w = serde_json::to_string_pretty(want).unwrap();
        panic!("cluster data differs\n--- got\n{g}\n--- want\n{w}");
    }
}

fn init_cluster(keepers: &[&str]) -> ClusterData {
    let mut cd = ClusterData::new_initial("cluster1", base_spec(), wall());
    for k in keepers {
        cd.keepers.insert(k.to_string(), keeper(k, true));
    }
    cd
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

/// The state right after t05, with the new master converged and the old keeper back.
fn after_failover() -> ClusterData {
    let mut cd = normal(2, 1);
    cd.cluster.status.master = "db2".into();
    dbm(&mut cd, "db1").spec.followers = Some(vec![]);
    let d2 = dbm(&mut cd, "db2");
    d2.spec.role = Some(DbRole::Master);
    d2.spec.follow_config = None;
    cd.proxy.spec.master_db_uid.clear();
    cd.proxy.generation = 2;
    cd
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

#[test]
fn t15_enabling_sync_repl_puts_the_standby_in_the_master_sync_list() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 1, 1);
    let mut want = cd.clone();
    let m = dbm(&mut want, "db1");
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(s(&["db2"]));
    m.spec.external_synchronous_standbys = Some(vec![]);
    m.status.synchronous_standbys = Some(vec![]);
    m.generation += 1;
    assert_cd(&run(&cd).unwrap(), &want);
}

#[test]
fn t16_sync_just_enabled_master_failure_still_elects_with_fake_standby() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 1, 1);
    sick_keeper(&mut cd, "keeper1");
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db2");
    let m = &got.dbs["db2"].spec;
    assert!(m.synchronous_replication);
    assert_eq!(m.synchronous_standbys, Some(vec![]));
    assert_eq!(m.external_synchronous_standbys, Some(s(&[FAKE_STANDBY_NAME])));
}

#[test]
fn t17_sync_active_master_failure_elects_the_sync_standby() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2"], &["db2"]);
    sick_keeper(&mut cd, "keeper1");
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db2");
    assert_eq!(got.dbs["db2"].spec.synchronous_standbys, Some(s(&["db1"])), "old master replaces the new one");
    assert_eq!(got.dbs["db2"].spec.external_synchronous_standbys, Some(vec![]));
}

#[test]
fn t18_unhealthy_sync_standby_without_alternative_stays_listed() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2"], &["db2"]);
    sick_keeper(&mut cd, "keeper2");
    assert_cd(&run(&cd).unwrap(), &cd);
}

#[test]
fn t19_unhealthy_sync_standby_is_replaced_through_a_union_step() {
    let mut cd = normal(3, 2);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2"], &["db2"]);
    sick_keeper(&mut cd, "keeper2");
    let got = run(&cd).unwrap();
    let m = &got.dbs["db1"];
    assert_eq!(m.spec.synchronous_standbys, Some(s(&["db2", "db3"])));
    assert_eq!(m.status.synchronous_standbys, Some(s(&["db2"])));
    assert_eq!(m.generation, 2);
}

#[test]
fn t20_master_failure_before_confirming_the_new_sync_standby_blocks_election() {
    let mut cd = normal(3, 2);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2", "db3"], &["db2"]);
    sick_keeper(&mut cd, "keeper1");
    sick_keeper(&mut cd, "keeper2");
    assert_cd(&run(&cd).unwrap(), &cd);
}

#[test]
fn t21_unconfirmed_sync_standby_keeps_the_status() {
    let mut cd = normal(3, 2);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2", "db3"], &["db2"]);
    dbm(&mut cd, "db1").status.cur_synchronous_standbys = s(&["db2"]);
    sick_keeper(&mut cd, "keeper2");
    assert_cd(&run(&cd).unwrap(), &cd);
}

#[test]
fn t22_failed_unconfirmed_sync_standby_falls_back_to_the_confirmed_set() {
    let mut cd = normal(3, 2);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2", "db3"], &["db2"]);
    dbm(&mut cd, "db1").status.cur_synchronous_standbys = s(&["db2"]);
    sick_keeper(&mut cd, "keeper2");
    sick_keeper(&mut cd, "keeper3");
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.synchronous_standbys, Some(s(&["db2"])));
    assert_eq!(got.dbs["db1"].status.synchronous_standbys, Some(s(&["db2"])));
}

#[test]
fn t23_both_confirmed_then_the_failed_one_is_dropped() {
    let mut cd = normal(3, 2);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2", "db3"], &["db2"]);
    dbm(&mut cd, "db1").status.cur_synchronous_standbys = s(&["db2", "db3"]);
    sick_keeper(&mut cd, "keeper2");
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.synchronous_standbys, Some(s(&["db3"])));
    assert_eq!(got.dbs["db1"].status.synchronous_standbys, Some(s(&["db3"])));
}

#[test]
fn t24_master_failure_elects_the_new_confirmed_sync_standby() {
    let mut cd = normal(3, 2);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db3"], &["db3"]);
    sick_keeper(&mut cd, "keeper1");
    sick_keeper(&mut cd, "keeper2");
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db3");
    assert_eq!(got.dbs["db3"].spec.synchronous_standbys, Some(s(&["db1"])));
}

#[test]
fn t25_two_sync_standbys_master_and_one_fail_elects_the_other_with_sorted_list() {
    let mut cd = normal(3, 2);
    sync_on(&mut cd, 2, 2);
    master_sync(&mut cd, &["db2", "db3"], &["db2", "db3"]);
    sick_keeper(&mut cd, "keeper1");
    sick_keeper(&mut cd, "keeper2");
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db3");
    assert_eq!(got.dbs["db3"].spec.synchronous_standbys, Some(s(&["db1", "db2"])));
}

#[test]
fn t26_standby_that_cannot_be_sync_is_never_listed_so_never_elected() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &[], &[]);
    cd.keepers.get_mut("keeper2").unwrap().status.can_be_synchronous_replica = Some(false);
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.synchronous_standbys, Some(vec![]));
    assert_eq!(got.dbs["db1"].spec.external_synchronous_standbys, Some(s(&[FAKE_STANDBY_NAME])));
    let mut failed = got.clone();
    sick_keeper(&mut failed, "keeper1");
    assert_eq!(run(&failed).unwrap().cluster.status.master, "db1", "no election");
}

#[test]
fn t27_sync_standby_that_cannot_be_master_is_never_promoted() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 1, 1);
    master_sync(&mut cd, &["db2"], &["db2"]);
    cd.keepers.get_mut("keeper2").unwrap().status.can_be_master = Some(false);
    sick_keeper(&mut cd, "keeper1");
    assert_cd(&run(&cd).unwrap(), &cd);
}

#[test]
fn t28_min_zero_enabling_sync_adds_no_fake_standby() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 0, 1);
    sick_keeper(&mut cd, "keeper2");
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.synchronous_standbys, Some(vec![]));
    assert_eq!(got.dbs["db1"].spec.external_synchronous_standbys, Some(vec![]));
}

#[test]
fn t29_min_zero_failover_with_empty_list_adds_no_fake_standby() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 0, 1);
    sick_keeper(&mut cd, "keeper1");
    let got = run(&cd).unwrap();
    assert_eq!(got.cluster.status.master, "db2");
    assert_eq!(got.dbs["db2"].spec.external_synchronous_standbys, Some(vec![]));
}

#[test]
fn t30_min_zero_unhealthy_sync_standby_is_removed_without_replacement() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 0, 1);
    master_sync(&mut cd, &["db2"], &["db2"]);
    sick_keeper(&mut cd, "keeper2");
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.synchronous_standbys, Some(vec![]));
    assert_eq!(got.dbs["db1"].status.synchronous_standbys, Some(vec![]));
    assert_eq!(got.dbs["db1"].spec.external_synchronous_standbys, Some(vec![]));
}

#[test]
fn t31_min_zero_removes_an_existing_fake_standby() {
    let mut cd = normal(2, 1);
    sync_on(&mut cd, 0, 1);
    master_sync(&mut cd, &[], &[]);
    dbm(&mut cd, "db1").spec.external_synchronous_standbys = Some(s(&[FAKE_STANDBY_NAME]));
    sick_keeper(&mut cd, "keeper2");
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.external_synchronous_standbys, Some(vec![]));
    assert_eq!(got.dbs["db1"].generation, 2);
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

// ---- Active proxies (stolon's TestActiveProxiesInfos) and gating ----

fn proxy_info(uid: &str, info_uid: &str, generation: i64) -> ProxyInfo {
    ProxyInfo { info_uid: info_uid.into(), uid: uid.into(), generation, proxy_timeout: GoDuration::from_secs(15) }
}

fn infos(list: &[ProxyInfo]) -> BTreeMap<String, ProxyInfo> {
    list.iter().map(|p| (p.uid.clone(), p.clone())).collect()
}

const PT: Duration = Duration::from_secs(15);

#[test]
fn proxies_empty_input_gives_no_active_proxy() {
    let mut h = Histories::new_term();
    assert!(active_proxies(&BTreeMap::new(), &mut h, PT, MonoTime::ZERO).is_empty());
    assert!(h.proxy_infos.is_empty());
}

#[test]
fn proxies_new_infos_are_recorded_and_active() {
    let mut h = Histories::new_term();
    let i = infos(&[proxy_info("p1", "a", 1), proxy_info("p2", "b", 1)]);
    let t = MonoTime::from_duration(HOUR);
    assert_eq!(active_proxies(&i, &mut h, PT, t).len(), 2);
    assert_eq!(h.proxy_infos["p1"].at, t);
}

#[test]
fn proxies_changed_info_uid_refreshes_the_timer() {
    let mut h = Histories::new_term();
    active_proxies(&infos(&[proxy_info("p1", "a", 1)]), &mut h, PT, MonoTime::ZERO);
    let later = MonoTime::from_duration(3 * PT);
    let active = active_proxies(&infos(&[proxy_info("p1", "b", 1)]), &mut h, PT, later);
    assert!(active.contains_key("p1"));
    assert_eq!(h.proxy_infos["p1"].at, later);
}

#[test]
fn proxies_unchanged_for_three_timeouts_are_inactive_one_timeout_still_active() {
    let i = infos(&[proxy_info("p1", "a", 1)]);
    let mut h = Histories::new_term();
    active_proxies(&i, &mut h, PT, MonoTime::ZERO);
    assert!(active_proxies(&i, &mut h.clone(), PT, MonoTime::from_duration(PT)).contains_key("p1"));
    assert!(active_proxies(&i, &mut h, PT, MonoTime::from_duration(3 * PT)).is_empty());
}

#[test]
fn proxies_missing_from_the_store_are_dropped_from_the_history() {
    let mut h = Histories::new_term();
    active_proxies(&infos(&[proxy_info("p1", "a", 1), proxy_info("p2", "b", 1)]), &mut h, PT, MonoTime::ZERO);
    active_proxies(&infos(&[proxy_info("p2", "b", 1)]), &mut h, PT, MonoTime::ZERO);
    assert!(!h.proxy_infos.contains_key("p1"));
}

#[test]
fn proxies_gate_waits_for_every_active_proxy_to_confirm_the_generation() {
    let cd = after_failover(); // proxy generation 2, no target
    let lagging = infos(&[proxy_info("p1", "a", 2), proxy_info("p2", "b", 1)]);
    let got = run_with_proxies(&cd, &lagging).unwrap();
    assert_eq!(got.proxy.spec.master_db_uid, "");
    let confirmed = infos(&[proxy_info("p1", "a", 2), proxy_info("p2", "b", 2)]);
    let got = run_with_proxies(&cd, &confirmed).unwrap();
    assert_eq!(got.proxy.spec.master_db_uid, "db2");
    assert_eq!(got.proxy.generation, 3);
    // Next pass: enabled proxies follow the active ones.
    let got2 = run_with_proxies(&got, &confirmed).unwrap();
    assert_eq!(got2.proxy.spec.enabled_proxies, s(&["p1", "p2"]));
    assert_eq!(got2.proxy.generation, 4);
}

// ---- Health through the whole pass (decide) ----

fn keeper_info(cd: &ClusterData, keeper_uid: &str, beat: u32) -> KeeperInfo {
    let db = cd.db_of_keeper(keeper_uid);
    KeeperInfo {
        info_uid: format!("{keeper_uid}-{beat}"),
        uid: keeper_uid.into(),
        cluster_uid: cd.cluster.uid.clone(),
        boot_uuid: "boot".into(),
        postgres_state: db.map(|d| PostgresState {
            uid: d.uid.clone(),
            generation: d.generation,
            healthy: true,
            timeline_id: 1,
            ..PostgresState::default()
        }),
        ..KeeperInfo::default()
    }
}

/// Drives `decide` pass after pass, one second apart, with the keepers in `alive` heartbeating.
struct Sim {
    cd: ClusterData,
    hist: Histories,
    t: Duration,
    beat: u32,
}

impl Sim {
    fn new(cd: ClusterData) -> Self {
        Sim { cd, hist: Histories::new_term(), t: Duration::ZERO, beat: 0 }
    }

    fn pass(&mut self, alive: &[&str]) -> Decision {
        self.beat += 1;
        self.t += Duration::from_secs(1);
        let infos: BTreeMap<String, KeeperInfo> =
            alive.iter().map(|k| (k.to_string(), keeper_info(&self.cd, k, self.beat))).collect();
        let now = Now { mono: MonoTime::from_duration(self.t), wall: wall() };
        let d = decide(&self.cd, &infos, &BTreeMap::new(), &self.hist, now, &mut SequentialUids::after(100)).unwrap();
        self.hist = d.histories.clone();
        self.cd = d.cluster_data.clone();
        d
    }
}

fn fast(mut cd: ClusterData) -> ClusterData {
    cd.cluster.spec.sleep_interval = Some(GoDuration::from_secs(2));
    cd.cluster.spec.fail_interval = Some(GoDuration::from_secs(5));
    cd
}

#[test]
fn health_first_pass_of_a_term_only_observes() {
    let mut cd = normal(2, 1);
    sick_keeper(&mut cd, "keeper1"); // a stale verdict of a previous leader
    let mut sim = Sim::new(cd.clone());
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(!d.write);
    assert_eq!(d.cluster_data, cd);
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(d.write);
    assert_eq!(d.cluster_data.cluster.status.master, "db1", "fresh observation: no failover");
    assert!(d.cluster_data.keepers["keeper1"].status.healthy);
}

#[test]
fn health_keeper_that_stops_heartbeating_fails_after_fail_interval_then_failover() {
    let mut sim = Sim::new(fast(normal(2, 1)));
    sim.pass(&["keeper1", "keeper2"]);
    sim.pass(&["keeper1", "keeper2"]);
    for _ in 0..5 {
        let d = sim.pass(&["keeper2"]);
        assert_eq!(d.cluster_data.cluster.status.master, "db1", "within failInterval + heartbeat window");
    }
    let mut elected = false;
    for _ in 0..4 {
        elected |= sim.pass(&["keeper2"]).cluster_data.cluster.status.master == "db2";
    }
    assert!(elected, "master failed over after failInterval");
    assert!(!sim.cd.keepers["keeper1"].status.healthy);
}

#[test]
fn health_force_fail_marks_the_keeper_unhealthy_once() {
    let mut sim = Sim::new(fast(normal(2, 1)));
    sim.pass(&["keeper1", "keeper2"]);
    sim.cd.keepers.get_mut("keeper2").unwrap().status.force_fail = true;
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(!d.cluster_data.keepers["keeper2"].status.healthy);
    assert!(!d.cluster_data.keepers["keeper2"].status.force_fail, "one-shot flag consumed");
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(d.cluster_data.keepers["keeper2"].status.healthy);
}

#[test]
fn health_new_keepers_join_and_foreign_infos_are_ignored() {
    let mut sim = Sim::new(fast(normal(2, 1)));
    sim.pass(&["keeper1", "keeper2"]);
    sim.cd.keepers.insert("keeper3".into(), keeper("keeper3", true));
    let mut k3 = keeper_info(&sim.cd, "keeper3", 1);
    sim.cd.keepers.remove("keeper3");
    let mut foreign = k3.clone();
    foreign.uid = "stranger".into();
    foreign.cluster_uid = "another".into();
    k3.can_be_master = Some(false);
    let infos: BTreeMap<String, KeeperInfo> = [
        ("keeper1".into(), keeper_info(&sim.cd, "keeper1", 9)),
        ("keeper2".into(), keeper_info(&sim.cd, "keeper2", 9)),
        ("keeper3".into(), k3),
        ("stranger".into(), foreign),
    ]
    .into();
    let now = Now { mono: MonoTime::from_duration(Duration::from_secs(5)), wall: wall() };
    let d = decide(&sim.cd, &infos, &BTreeMap::new(), &sim.hist, now, &mut SequentialUids::after(5)).unwrap();
    assert!(d.cluster_data.keepers["keeper3"].status.healthy);
    assert_eq!(d.cluster_data.keepers["keeper3"].status.can_be_master, Some(false));
    assert!(!d.cluster_data.keepers.contains_key("stranger"));
}

#[test]
fn unreadable_cluster_data_is_refused() {
    let mut cd = normal(2, 1);
    cd.format_version = 2;
    let d = decide(&cd, &BTreeMap::new(), &BTreeMap::new(), &Histories::new_term(), now(), &mut OsEntropy);
    assert_eq!(d.unwrap_err(), DecideError::UnsupportedFormatVersion(2));
    let mut cd = normal(2, 1);
    cd.cluster.spec.max_standbys = Some(0);
    let d = decide(&cd, &BTreeMap::new(), &BTreeMap::new(), &Histories::new_term(), now(), &mut OsEntropy);
    assert!(matches!(d, Err(DecideError::InvalidSpec(_))));
}

// ---- Other init modes ----

#[test]
fn init_existing_uses_the_named_keeper_once_it_is_known() {
    let mut cd = init_cluster(&["keeper1"]);
    cd.cluster.spec.init_mode = Some(ClusterInitMode::Existing);
    cd.cluster.spec.existing_config = Some(ExistingConfig { keeper_uid: "keeper2".into() });
    assert_eq!(run(&cd).unwrap_err(), DecideError::ExistingKeeperMissing("keeper2".into()));
    cd.keepers.insert("keeper2".into(), keeper("keeper2", true));
    let got = run(&cd).unwrap();
    let db = &got.dbs["db1"];
    assert_eq!(db.spec.keeper_uid, "keeper2");
    assert_eq!(db.spec.init_mode, Some(DbInitMode::Existing));
    assert_eq!(got.cluster.status.master, "db1");
    // Not converged yet: it waits instead of trying another keeper.
    let waited = run(&got).unwrap();
    assert_eq!(waited.cluster.status.master, "db1");
    assert_eq!(waited.cluster.status.phase, Some(ClusterPhase::Initializing));
}

#[test]
fn init_pitr_of_a_standby_cluster_follows_the_external_primary() {
    let mut cd = init_cluster(&["keeper1"]);
    cd.cluster.spec.init_mode = Some(ClusterInitMode::Pitr);
    cd.cluster.spec.role = Some(ClusterRole::Standby);
    cd.cluster.spec.pitr_config = Some(PitrConfig { data_restore_command: "restore %d".into(), ..Default::default() });
    cd.cluster.spec.standby_config = Some(StandbyConfig {
        standby_settings: Some(StandbySettings { primary_conninfo: "host=ext".into(), ..Default::default() }),
        archive_recovery_settings: None,
    });
    let got = run(&cd).unwrap();
    let db = &got.dbs["db1"];
    assert_eq!(db.spec.init_mode, Some(DbInitMode::Pitr));
    assert_eq!(db.spec.role, Some(DbRole::Standby));
    let fc = db.spec.follow_config.as_ref().unwrap();
    assert_eq!(fc.follow_type, Some(FollowType::External));
    assert_eq!(fc.standby_settings.as_ref().unwrap().primary_conninfo, "host=ext");
    assert_eq!(db.spec.pitr_config.as_ref().unwrap().data_restore_command, "restore %d");
    // pitr has no init timeout: an unconverged DB is never given up.
    let waited = run(&got).unwrap();
    assert_eq!(waited.cluster.status.master, "db1");
}

#[test]
fn promote_of_a_standby_cluster_makes_the_head_master() {
    let mut cd = normal(2, 1);
    let m = dbm(&mut cd, "db1");
    m.spec.role = Some(DbRole::Standby);
    m.spec.follow_config = Some(FollowConfig { follow_type: Some(FollowType::External), ..FollowConfig::default() });
    // The spec role is master again (stolonctl promote): the head becomes master on this pass.
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.role, Some(DbRole::Master));
    assert_eq!(got.dbs["db1"].spec.follow_config, None);
    assert_eq!(got.dbs["db1"].generation, 2);
}
