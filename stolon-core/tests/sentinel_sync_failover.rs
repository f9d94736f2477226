//! Failover under synchronous replication without idle passes (issue 14 item 5), over the pure decision: a
//! newly elected master starts with real synchronous standbys (never the failed old master), none of them
//! confirmed; its standbys become its followers at once (their slots exist before they are pointed at it);
//! a standby still converging after that repointing is waited for instead of being swapped for the fake
//! standby; and the leader knows when a synchronous standby awaits confirmation.

use std::collections::BTreeMap;
use std::time::Duration;

use stolon_core::cluster::*;
use stolon_core::sentinel::*;
use stolon_core::time::Timestamp;

const HOUR: Duration = Duration::from_secs(3600);

fn now() -> Now {
    Now { mono: MonoTime::from_duration(1000 * HOUR), wall: Timestamp::parse("2026-01-01T00:00:00Z").unwrap() }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// keeper1..keeperN healthy; db1 master on keeper1, db2..db<N> standbys following it on keeper2..; proxies
/// routed to db1; synchronous replication with `min`/`max`, db1 configured and confirmed with `sync`. Every
/// DB converged and healthy on timeline 1 at WAL position 100.
fn cluster(keepers: usize, min: u16, max: u16, sync: &[&str]) -> ClusterData {
    let wall = now().wall;
    let spec = ClusterSpec {
        init_mode: Some(ClusterInitMode::New),
        max_standbys_per_sender: Some(keepers as u16),
        synchronous_replication: Some(true),
        min_synchronous_standbys: Some(min),
        max_synchronous_standbys: Some(max),
        ..ClusterSpec::default()
    };
    let mut cd = ClusterData::new_initial("cluster1", spec, wall);
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "db1".into();
    for i in 1..=keepers {
        let uid = format!("keeper{i}");
        let status = KeeperStatus { healthy: true, last_healthy_time: wall, ..KeeperStatus::default() };
        cd.keepers.insert(uid.clone(), Keeper { uid, generation: 1, status, ..Keeper::default() });
        let db_uid = format!("db{i}");
        let follow = (i > 1).then(|| FollowConfig {
            follow_type: Some(FollowType::Internal),
            db_uid: "db1".into(),
            ..FollowConfig::default()
        });
        let db = Db {
            uid: db_uid.clone(),
            generation: 1,
            spec: DbSpec {
                keeper_uid: format!("keeper{i}"),
                request_timeout: defaults::REQUEST_TIMEOUT,
                max_standbys: defaults::MAX_STANDBYS,
                additional_wal_senders: defaults::ADDITIONAL_WAL_SENDERS,
                init_mode: Some(DbInitMode::None),
                role: Some(if i == 1 { DbRole::Master } else { DbRole::Standby }),
                follow_config: follow,
                followers: Some(vec![]),
                ..DbSpec::default()
            },
            status: DbStatus {
                healthy: true,
                current_generation: 1,
                timeline_id: 1,
                x_log_pos: 100,
                ..DbStatus::default()
            },
            ..Db::default()
        };
        cd.dbs.insert(db_uid, db);
    }
    let followers: Vec<String> = (2..=keepers).map(|i| format!("db{i}")).collect();
    let m = cd.dbs.get_mut("db1").unwrap();
    m.spec.followers = Some(followers);
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(s(sync));
    m.spec.external_synchronous_standbys = Some(vec![]);
    m.status.synchronous_standbys = Some(s(sync));
    cd.proxy.generation = 1;
    cd.proxy.spec.master_db_uid = "db1".into();
    cd
}

fn dbm<'a>(cd: &'a mut ClusterData, uid: &str) -> &'a mut Db {
    cd.dbs.get_mut(uid).expect("db in fixture")
}

fn sick_keeper(cd: &mut ClusterData, keeper_uid: &str) {
    cd.keepers.get_mut(keeper_uid).unwrap().status.healthy = false;
    for db in cd.dbs.values_mut().filter(|d| d.spec.keeper_uid == keeper_uid) {
        db.status.healthy = false;
    }
}

/// One decision; `aged`: convergence timers started long ago (an unconverged DB has failed), else just now
/// (an unconverged DB is converging).
fn pass(cd: &ClusterData, aged: bool) -> ClusterData {
    let mut hist = Histories::new_term();
    hist.refresh_convergence(cd, if aged { MonoTime::ZERO } else { now().mono });
    let mut uids = SequentialUids::after(cd.dbs.len() as u64);
    update_cluster(cd, &BTreeMap::new(), &hist, now(), &mut uids).expect("decision")
}

fn sync_spec(cd: &ClusterData, uid: &str) -> (Vec<String>, Vec<String>) {
    let db = &cd.dbs[uid];
    (db.spec.synchronous_standbys().to_vec(), db.spec.external_synchronous_standbys().to_vec())
}

#[test]
fn the_new_master_starts_with_the_remaining_standby_not_the_failed_master() {
    let mut cd = cluster(3, 1, 1, &["db2"]);
    sick_keeper(&mut cd, "keeper1");
    let got = pass(&cd, true);
    assert_eq!(got.cluster.status.master, "db2");
    let db2 = &got.dbs["db2"];
    assert!(db2.spec.synchronous_replication);
    assert_eq!(sync_spec(&got, "db2"), (s(&["db3"]), vec![]), "a real standby, no fake, no old master");
    assert_eq!(db2.status.synchronous_standbys, None, "nothing confirmed on the new master yet");
    assert_eq!(db2.spec.followers, Some(s(&["db3"])), "db3's slot is created while db2 promotes");
    assert_eq!(got.dbs["db1"].spec.followers, Some(s(&["db3"])), "db3 still follows the old master");
    assert_eq!(got.dbs["db3"].spec.follow_config.as_ref().unwrap().db_uid, "db1", "not repointed yet");
    assert!(awaiting_sync_confirmation(&got));
}

#[test]
fn passes_before_the_new_master_converged_keep_its_followers_and_generation() {
    let mut cd = cluster(3, 1, 1, &["db2"]);
    sick_keeper(&mut cd, "keeper1");
    let elected = pass(&cd, true);
    // db2 is still promoting (not converged): nothing of its spec may change, or its keeper would start over
    // (a first version dropped db3's freshly created slot here).
    let again = pass(&elected, false);
    assert_eq!(again.dbs["db2"].spec, elected.dbs["db2"].spec);
    assert_eq!(again.dbs["db2"].generation, elected.dbs["db2"].generation);
}

#[test]
fn a_new_master_without_another_good_standby_blocks_on_the_fake_standby() {
    let mut cd = cluster(2, 1, 1, &["db2"]);
    sick_keeper(&mut cd, "keeper1");
    let got = pass(&cd, true);
    assert_eq!(got.cluster.status.master, "db2");
    assert_eq!(sync_spec(&got, "db2"), (vec![], s(&[FAKE_STANDBY_NAME])));
    assert!(!awaiting_sync_confirmation(&got), "nothing configured to confirm");
}

#[test]
fn a_standby_ahead_of_the_new_master_or_not_allowed_is_not_listed() {
    let mut cd = cluster(3, 1, 1, &["db2"]);
    sick_keeper(&mut cd, "keeper1");
    let mut ahead = cd.clone();
    dbm(&mut ahead, "db3").status.x_log_pos = 101;
    assert_eq!(sync_spec(&pass(&ahead, true), "db2"), (vec![], s(&[FAKE_STANDBY_NAME])));
    let mut refused = cd.clone();
    refused.keepers.get_mut("keeper3").unwrap().status.can_be_synchronous_replica = Some(false);
    assert_eq!(sync_spec(&pass(&refused, true), "db2"), (vec![], s(&[FAKE_STANDBY_NAME])));
    let mut sick = cd;
    sick_keeper(&mut sick, "keeper3");
    assert_eq!(sync_spec(&pass(&sick, true), "db2"), (vec![], s(&[FAKE_STANDBY_NAME])));
}

#[test]
fn the_old_masters_other_synchronous_standbys_come_first_then_the_most_advanced() {
    let mut cd = cluster(5, 1, 2, &["db2", "db3"]);
    for (uid, pos) in [("db2", 100), ("db3", 80), ("db4", 90), ("db5", 95)] {
        dbm(&mut cd, uid).status.x_log_pos = pos;
    }
    sick_keeper(&mut cd, "keeper1");
    let got = pass(&cd, true);
    assert_eq!(got.cluster.status.master, "db2");
    assert_eq!(sync_spec(&got, "db2"), (s(&["db3", "db5"]), vec![]));
    assert_eq!(got.dbs["db2"].spec.followers, Some(s(&["db3", "db4", "db5"])));
}

#[test]
fn min_two_with_one_standby_left_pads_with_the_fake_standby() {
    let mut cd = cluster(3, 2, 2, &["db2", "db3"]);
    sick_keeper(&mut cd, "keeper1");
    let got = pass(&cd, true);
    assert_eq!(sync_spec(&got, "db2"), (s(&["db3"]), s(&[FAKE_STANDBY_NAME])));
}

/// The cluster right after the election of db2 (db1 failed), with db2 promoted and converged.
fn elected() -> ClusterData {
    let mut cd = cluster(3, 1, 1, &["db2"]);
    sick_keeper(&mut cd, "keeper1");
    let mut cd = pass(&cd, true);
    let db2 = dbm(&mut cd, "db2");
    db2.status.current_generation = db2.generation;
    db2.status.timeline_id = 2;
    cd
}

#[test]
fn the_converged_new_master_keeps_its_standby_and_points_it_at_itself() {
    let got = pass(&elected(), true);
    assert!(!got.dbs.contains_key("db1"), "old master removed");
    assert_eq!(sync_spec(&got, "db2"), (s(&["db3"]), vec![]), "kept while waiting for its confirmation");
    let db3 = &got.dbs["db3"];
    assert_eq!(db3.spec.follow_config.as_ref().unwrap().db_uid, "db2");
    assert_eq!(db3.generation, 2);
    assert_eq!(got.proxy.spec.master_db_uid, "db2");
}

#[test]
fn a_repointed_standby_still_converging_is_waited_for() {
    let mut cd = pass(&elected(), true);
    // db3 was repointed (generation 2) and has not reported it yet; db2's keeper reports nothing in sync.
    let got = pass(&cd, false);
    assert_eq!(sync_spec(&got, "db2"), (s(&["db3"]), vec![]), "no detour through the fake standby");
    // Once db2's keeper reports db3 in sync, it is confirmed.
    dbm(&mut cd, "db3").status.current_generation = 2;
    dbm(&mut cd, "db3").status.timeline_id = 2;
    dbm(&mut cd, "db2").status.cur_synchronous_standbys = s(&["db3"]);
    let got = pass(&cd, false);
    assert_eq!(got.dbs["db2"].status.synchronous_standbys, Some(s(&["db3"])));
    assert!(!awaiting_sync_confirmation(&got));
}

#[test]
fn a_repointed_standby_that_failed_to_converge_is_replaced_by_the_fake_standby() {
    let cd = pass(&elected(), true);
    let got = pass(&cd, true);
    assert_eq!(sync_spec(&got, "db2"), (vec![], s(&[FAKE_STANDBY_NAME])));
}

#[test]
fn a_converging_standby_is_swapped_when_a_good_one_can_replace_it() {
    let mut cd = pass(&elected(), true);
    // A fourth keeper's standby, good and on the new master's timeline.
    let mut db4 = cd.dbs["db3"].clone();
    db4.uid = "db4".into();
    db4.spec.keeper_uid = "keeper4".into();
    db4.status.current_generation = db4.generation;
    db4.status.timeline_id = 2;
    cd.dbs.insert("db4".into(), db4);
    let mut k4 = cd.keepers["keeper3"].clone();
    k4.uid = "keeper4".into();
    cd.keepers.insert("keeper4".into(), k4);
    cd.cluster.spec.max_standbys_per_sender = Some(3);
    let got = pass(&cd, false);
    assert_eq!(sync_spec(&got, "db2"), (s(&["db4"]), vec![]));
}

#[test]
fn with_a_confirmed_standby_an_unconfirmed_converging_one_is_dropped_as_stolon_does() {
    let mut cd = cluster(3, 1, 1, &["db2"]);
    let m = dbm(&mut cd, "db1");
    m.spec.synchronous_standbys = Some(s(&["db2", "db3"]));
    m.status.cur_synchronous_standbys = s(&["db2"]);
    dbm(&mut cd, "db3").generation = 2;
    let got = pass(&cd, false);
    assert_eq!(sync_spec(&got, "db1"), (s(&["db2"]), vec![]));
}

#[test]
fn awaiting_confirmation_needs_synchronous_replication_and_an_unconfirmed_standby() {
    let mut cd = cluster(3, 1, 1, &["db2"]);
    assert!(!awaiting_sync_confirmation(&cd));
    dbm(&mut cd, "db1").spec.synchronous_standbys = Some(s(&["db2", "db3"]));
    assert!(awaiting_sync_confirmation(&cd));
    cd.cluster.spec.synchronous_replication = Some(false);
    assert!(!awaiting_sync_confirmation(&cd));
}

#[test]
fn a_master_on_the_fake_standby_awaits_a_converging_standby_only() {
    let mut cd = cluster(3, 1, 1, &[]);
    let m = dbm(&mut cd, "db1");
    m.spec.synchronous_standbys = Some(vec![]);
    m.status.synchronous_standbys = Some(vec![]);
    m.spec.external_synchronous_standbys = Some(s(&["stolonfakestandby"]));
    assert!(!awaiting_sync_confirmation(&cd), "every standby converged: nothing is on its way");
    dbm(&mut cd, "db3").generation = 2;
    assert!(awaiting_sync_confirmation(&cd), "db3 is converging and may replace the fake standby");
    cd.keepers.get_mut("keeper3").unwrap().spec.maintenance = true;
    assert!(!awaiting_sync_confirmation(&cd), "a keeper in maintenance never becomes synchronous");
    cd.keepers.get_mut("keeper3").unwrap().spec.maintenance = false;
    dbm(&mut cd, "db1").spec.external_synchronous_standbys = Some(vec![]);
    assert!(!awaiting_sync_confirmation(&cd), "no fake standby: commits do not wait");
}

#[test]
fn a_master_on_the_fake_standby_does_not_await_a_failed_keepers_db() {
    let mut cd = cluster(3, 1, 1, &[]);
    let m = dbm(&mut cd, "db1");
    m.spec.synchronous_standbys = Some(vec![]);
    m.status.synchronous_standbys = Some(vec![]);
    m.spec.external_synchronous_standbys = Some(s(&["stolonfakestandby"]));
    dbm(&mut cd, "db3").generation = 2;
    sick_keeper(&mut cd, "keeper3");
    assert!(!awaiting_sync_confirmation(&cd), "keeper3 is failed: its DB converges only when it is back");
}
