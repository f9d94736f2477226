//! stolon's `updateCluster` table behaviours for synchronous replication (reference §9.3) as named tests
//! over the pure decision; conventions as in `sentinel_table.rs`.

use stolon_core::sentinel::*;

#[path = "common/sentinel_fixtures.rs"]
mod sentinel_fixtures;
use sentinel_fixtures::*;
#[path = "common/sentinel_table_helpers.rs"]
mod sentinel_table_helpers;
use sentinel_table_helpers::*;

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
    // stolon listed the failed old master (db1); no other standby is left, so the fake standby blocks commits
    // until one is (sentinel_sync_failover.rs has the cases with a remaining standby).
    assert_eq!(got.dbs["db2"].spec.synchronous_standbys, Some(vec![]));
    assert_eq!(got.dbs["db2"].spec.external_synchronous_standbys, Some(s(&[FAKE_STANDBY_NAME])));
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
    assert_eq!(got.dbs["db3"].spec.synchronous_standbys, Some(vec![]), "db2 is not good, db1 failed");
    assert_eq!(got.dbs["db3"].spec.external_synchronous_standbys, Some(s(&[FAKE_STANDBY_NAME])));
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
    assert_eq!(got.dbs["db3"].spec.synchronous_standbys, Some(vec![]), "neither db1 nor db2 is good");
    assert_eq!(got.dbs["db3"].spec.external_synchronous_standbys, Some(s(&[FAKE_STANDBY_NAME])));
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
