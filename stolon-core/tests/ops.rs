//! Operations (issue 14) over the pure functions: switchover phases, candidate choice and every refusal,
//! pause, maintenance and priorities in elections and synchronous standby choice.

use std::collections::BTreeMap;
use std::time::Duration;

use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::ops::{self, Control, candidate::Refusal};
use stolon_core::sentinel::{Histories, MonoTime, Now, SequentialUids, update_cluster};
use stolon_core::time::Timestamp;

fn t(secs: i64) -> Timestamp {
    let base = Timestamp::parse("2026-01-01T00:00:00Z").expect("valid timestamp").as_datetime();
    Timestamp::from_datetime(base + chrono::Duration::seconds(secs))
}

fn follow(m: &str) -> Option<FollowConfig> {
    Some(FollowConfig { follow_type: Some(FollowType::Internal), db_uid: m.into(), ..FollowConfig::default() })
}

fn db(uid: &str, keeper: &str, master: Option<&str>, pos: u64) -> Db {
    Db {
        uid: uid.into(),
        generation: 1,
        spec: DbSpec {
            keeper_uid: keeper.into(),
            init_mode: Some(DbInitMode::None),
            role: Some(if master.is_some() { DbRole::Standby } else { DbRole::Master }),
            follow_config: master.and_then(follow),
            followers: Some(vec![]),
            ..DbSpec::default()
        },
        status: DbStatus {
            healthy: true,
            current_generation: 1,
            timeline_id: 1,
            x_log_pos: pos,
            ..DbStatus::default()
        },
        ..Db::default()
    }
}

/// m (master on k0, WAL at 1000) with standbys s1 (k1) and s2 (k2), proxies routed to m.
fn cluster() -> ClusterData {
    let spec = ClusterSpec { init_mode: Some(ClusterInitMode::New), ..ClusterSpec::default() };
    let mut cd = ClusterData::new_initial("c", spec, t(0));
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "m".into();
    for k in ["k0", "k1", "k2"] {
        let status = KeeperStatus { healthy: true, last_healthy_time: t(0), ..KeeperStatus::default() };
        cd.keepers.insert(k.into(), Keeper { uid: k.into(), generation: 1, status, ..Keeper::default() });
    }
    cd.dbs.insert("m".into(), db("m", "k0", None, 1000));
    cd.dbs.insert("s1".into(), db("s1", "k1", Some("m"), 1000));
    cd.dbs.insert("s2".into(), db("s2", "k2", Some("m"), 990));
    cd.dbs.get_mut("m").unwrap().spec.followers = Some(vec!["s1".into(), "s2".into()]);
    cd.proxy.generation = 1;
    cd.proxy.spec.master_db_uid = "m".into();
    cd
}

fn request(cd: &mut ClusterData, to: &str, at: Option<Timestamp>) {
    cd.operations.switchover = Some(Switchover {
        uid: "sw1".into(),
        request_time: t(0),
        at,
        timeout: GoDuration::from_std(Duration::from_secs(10)),
        to_keeper: to.into(),
        ..Switchover::default()
    });
}

/// Keeper infos: `stopped` = the old master's shutdown checkpoint, `cand` = s1's reported position.
fn infos(stopped: Option<u64>, cand: u64) -> BTreeMap<String, KeeperInfo> {
    let mut m = BTreeMap::new();
    let old = match stopped {
        Some(ckpt) => PostgresState { uid: "m".into(), shutdown_checkpoint: ckpt, ..PostgresState::default() },
        None => PostgresState { uid: "m".into(), healthy: true, x_log_pos: 1000, ..PostgresState::default() },
    };
    m.insert("k0".into(), KeeperInfo { uid: "k0".into(), postgres_state: Some(old), ..KeeperInfo::default() });
    let st = PostgresState { uid: "s1".into(), healthy: true, x_log_pos: cand, ..PostgresState::default() };
    m.insert("k1".into(), KeeperInfo { uid: "k1".into(), postgres_state: Some(st), ..KeeperInfo::default() });
    m
}

fn last(cd: &ClusterData) -> (String, String) {
    let r = cd.operations.last_switchover.clone().expect("a recorded outcome");
    (r.outcome, r.message)
}

#[test]
fn switchover_fences_waits_for_every_wal_byte_then_promotes_and_completes() {
    let mut cd = cluster();
    request(&mut cd, "", None);
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(1)), Control::Operate);
    let sw = cd.operations.switchover.clone().unwrap();
    assert_eq!((sw.phase, sw.from_db.as_str(), sw.to_db.as_str()), (SwitchoverPhase::Fencing, "m", "s1"));
    assert_eq!(sw.fence_x_log_pos, 1000);
    assert!(cd.proxy.spec.master_db_uid.is_empty(), "proxies stop forwarding");
    assert_eq!(cd.proxy.generation, 2);
    assert_eq!(cd.dbs["s1"].spec.followers(), ["m"], "the candidate prepares the old master's slot");
    assert_eq!(ops::keeper::directive(&cd, "m", t(1)), ops::keeper::Directive::Fence);

    // Still running, or stopped but the candidate has not received the shutdown checkpoint: wait.
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(2)), Control::Operate);
    assert_eq!(ops::before(&mut cd, &infos(Some(1100), 1100), t(2)), Control::Operate);
    // A shutdown checkpoint older than the fence is an old report: wait.
    assert_eq!(ops::before(&mut cd, &infos(Some(900), 2000), t(2)), Control::Operate);
    assert_eq!(cd.cluster.status.master, "m");

    assert_eq!(ops::before(&mut cd, &infos(Some(1100), 1140), t(3)), Control::Normal);
    assert_eq!(cd.cluster.status.master, "s1");
    assert_eq!(cd.dbs["s1"].spec.role, Some(DbRole::Master));
    let old = &cd.dbs["m"];
    assert_eq!(old.spec.role, Some(DbRole::Standby), "the old master rejoins in place");
    assert_eq!(old.spec.follow_config, follow("s1"));
    assert_eq!(cd.dbs["s1"].spec.followers(), ["m"]);
    assert_eq!(cd.operations.switchover.as_ref().unwrap().phase, SwitchoverPhase::Promoting);

    // Not done until the new master is routed and the old one streams again.
    ops::after(&mut cd, t(3));
    assert!(cd.operations.switchover.is_some());
    cd.proxy.spec.master_db_uid = "s1".into();
    ops::after(&mut cd, t(4));
    assert!(cd.operations.switchover.is_none());
    assert_eq!(last(&cd).0, outcome::COMPLETED);
    assert_eq!(cd.operations.last_switchover.as_ref().unwrap().to_db, "s1");
}

#[test]
fn fencing_that_times_out_is_aborted_and_the_old_master_takes_writes_again() {
    let mut cd = cluster();
    request(&mut cd, "k2", None);
    assert_eq!(ops::before(&mut cd, &infos(None, 0), t(1)), Control::Operate);
    assert_eq!(ops::before(&mut cd, &infos(Some(1100), 0), t(10)), Control::Operate);
    assert_eq!(ops::before(&mut cd, &infos(Some(1100), 0), t(11)), Control::Normal);
    let (outcome, message) = last(&cd);
    assert_eq!(outcome, outcome::ABORTED);
    assert!(message.contains("did not receive"), "{message}");
    assert!(cd.operations.switchover.is_none());
    assert_eq!(cd.cluster.status.master, "m");
    assert!(cd.dbs["s2"].spec.followers().is_empty());
    assert_eq!(ops::keeper::directive(&cd, "m", t(11)), ops::keeper::Directive::None, "no longer fenced");
}

#[test]
fn an_unhealthy_candidate_is_promoted_only_on_a_report_past_the_checkpoint_else_aborted_at_the_timeout() {
    // Marked unhealthy (a late keeper info) but reporting every byte after the fence: promoted.
    let mut cd = cluster();
    request(&mut cd, "k1", None);
    ops::before(&mut cd, &infos(None, 1000), t(1));
    cd.keepers.get_mut("k1").unwrap().status.healthy = false;
    assert_eq!(ops::before(&mut cd, &infos(Some(1100), 1200), t(2)), Control::Normal);
    assert_eq!(cd.cluster.status.master, "s1");

    // Unhealthy and silent: waits, then aborted at the timeout naming the candidate.
    let mut cd = cluster();
    request(&mut cd, "k1", None);
    ops::before(&mut cd, &infos(None, 1000), t(1));
    cd.keepers.get_mut("k1").unwrap().status.healthy = false;
    assert_eq!(ops::before(&mut cd, &infos(Some(1100), 0), t(2)), Control::Operate);
    assert_eq!(ops::before(&mut cd, &infos(Some(1100), 0), t(11)), Control::Normal);
    let (outcome, message) = last(&cd);
    assert_eq!(outcome, outcome::ABORTED);
    assert!(message.contains("k1 is not healthy"), "{message}");
    assert_eq!(cd.cluster.status.master, "m");
}

#[test]
fn promoting_ends_at_its_timeout_and_replaces_an_old_master_that_did_not_rejoin() {
    let mut cd = cluster();
    request(&mut cd, "k1", None);
    ops::before(&mut cd, &infos(None, 1000), t(1));
    ops::before(&mut cd, &infos(Some(1100), 1200), t(2));
    cd.proxy.spec.master_db_uid = "s1".into();
    cd.dbs.get_mut("m").unwrap().generation = 2; // the rejoin spec was never applied
    ops::after(&mut cd, t(5));
    assert!(cd.operations.switchover.is_some());
    ops::after(&mut cd, t(12));
    assert_eq!(last(&cd).0, outcome::COMPLETED);
    assert!(!cd.dbs.contains_key("m"), "replaced by a new standby (resync) by the usual logic");
}

#[test]
fn a_scheduled_switchover_waits_for_its_time() {
    let mut cd = cluster();
    request(&mut cd, "", Some(t(60)));
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(59)), Control::Normal);
    assert_eq!(cd.operations.switchover.as_ref().unwrap().phase, SwitchoverPhase::Scheduled);
    assert_eq!(ops::next_deadline(&cd), Some(t(60)));
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(60)), Control::Operate);
    assert_eq!(ops::next_deadline(&cd), Some(t(70)), "then its timeout");
}

#[test]
fn a_switchover_whose_candidate_went_bad_is_refused_when_its_time_comes() {
    let mut cd = cluster();
    request(&mut cd, "k1", Some(t(60)));
    cd.dbs.get_mut("m").unwrap().status.x_log_pos = 100_000_000;
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(61)), Control::Normal);
    let (outcome, message) = last(&cd);
    assert_eq!(outcome, outcome::REFUSED);
    assert!(message.contains("lags 99999000 bytes"), "{message}");
    assert_eq!(cd.proxy.spec.master_db_uid, "m", "nothing changed");
}

#[test]
fn candidate_choice_prefers_sync_then_priority_then_least_lag() {
    let mut cd = cluster();
    assert_eq!(ops::candidate::check_request(&cd, "", t(0)), Ok("s1".into()), "least lag");
    cd.keepers.get_mut("k2").unwrap().spec.priority = 5;
    assert_eq!(ops::candidate::check_request(&cd, "", t(0)), Ok("s2".into()), "priority first");
    let m = cd.dbs.get_mut("m").unwrap();
    m.spec.synchronous_replication = true;
    m.status.synchronous_standbys = Some(vec!["s1".into()]);
    assert_eq!(ops::candidate::check_request(&cd, "", t(0)), Ok("s1".into()), "a synchronous standby first");
    assert_eq!(ops::candidate::check_request(&cd, "k2", t(0)), Ok("s2".into()), "a named one is taken");
}

/// A change to the fixture.
type Edit = Box<dyn Fn(&mut ClusterData)>;

#[test]
fn every_refusal_names_its_reason() {
    let check = |edit: &dyn Fn(&mut ClusterData), to: &str| {
        let mut cd = cluster();
        edit(&mut cd);
        ops::candidate::check_request(&cd, to, t(0)).expect_err("refused")
    };
    let lag = Refusal::Lagging { keeper: "k1".into(), lag: 600_000_000, max: u64::from(defaults::MAX_STANDBY_LAG) };
    let cases: Vec<(Refusal, Edit, &str)> = vec![
        (Refusal::UnknownKeeper("k9".into()), Box::new(|_| {}), "k9"),
        (Refusal::AlreadyMaster("k0".into()), Box::new(|_| {}), "k0"),
        (Refusal::Unhealthy("k1".into()), Box::new(|cd| cd.dbs.get_mut("s1").unwrap().status.healthy = false), "k1"),
        (Refusal::NotConverged("k1".into(), 1, 2), Box::new(|cd| cd.dbs.get_mut("s1").unwrap().generation = 2), "k1"),
        (
            Refusal::CannotBeMaster("k1".into()),
            Box::new(|cd| cd.keepers.get_mut("k1").unwrap().status.can_be_master = Some(false)),
            "k1",
        ),
        (
            Refusal::InMaintenance("k1".into()),
            Box::new(|cd| cd.keepers.get_mut("k1").unwrap().spec.maintenance = true),
            "k1",
        ),
        (
            lag,
            Box::new(|cd| {
                cd.dbs.get_mut("m").unwrap().status.x_log_pos = 600_001_000;
            }),
            "k1",
        ),
        (Refusal::Paused, Box::new(|cd| cd.operations.pause = Some(Pause { since: t(0), until: None })), "k1"),
        (
            Refusal::AlreadyPending("scheduled".into()),
            Box::new(|cd| cd.operations.switchover = Some(Switchover::default())),
            "k1",
        ),
        (Refusal::MasterUnhealthy("m".into()), Box::new(|cd| cd.dbs.get_mut("m").unwrap().status.healthy = false), ""),
    ];
    for (want, edit, to) in cases {
        assert_eq!(check(&*edit, to), want);
        assert!(!want.to_string().contains('\n'));
    }
    let none = check(&|cd: &mut ClusterData| cd.dbs.values_mut().for_each(|d| d.status.healthy = d.uid == "m"), "");
    assert!(matches!(none, Refusal::NoEligibleStandby(ref why) if why.contains("k1 is not healthy")), "{none}");
}

#[test]
fn pause_holds_every_decision_refuses_due_switchovers_and_expires() {
    let mut cd = cluster();
    cd.operations.pause = Some(Pause { since: t(0), until: Some(t(30)) });
    request(&mut cd, "", Some(t(10)));
    assert_eq!(ops::before(&mut cd, &BTreeMap::new(), t(5)), Control::Hold);
    assert!(cd.operations.switchover.is_some(), "not due yet");
    assert_eq!(ops::before(&mut cd, &BTreeMap::new(), t(10)), Control::Hold);
    assert_eq!(last(&cd), (outcome::REFUSED.into(), "the cluster is paused".into()));
    assert_eq!(ops::next_deadline(&cd), Some(t(30)));
    assert_eq!(ops::before(&mut cd, &BTreeMap::new(), t(30)), Control::Normal);
    assert!(cd.operations.pause.is_none());
}

#[test]
fn a_higher_priority_standby_replaces_a_healthy_master_only_when_the_spec_asks() {
    let mut cd = cluster();
    cd.keepers.get_mut("k2").unwrap().spec.priority = 2;
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(1)), Control::Normal);
    assert!(cd.operations.switchover.is_none(), "never for priority alone by default");
    cd.cluster.spec.switchover_to_higher_priority = Some(true);
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(1)), Control::Operate);
    let sw = cd.operations.switchover.clone().unwrap();
    assert_eq!((sw.reason.as_str(), sw.to_db.as_str()), ("priority", "s2"));
    // Equal priorities: nothing to do.
    let mut cd = cluster();
    cd.cluster.spec.switchover_to_higher_priority = Some(true);
    assert_eq!(ops::before(&mut cd, &infos(None, 1000), t(1)), Control::Normal);
    assert!(cd.operations.switchover.is_none());
}

fn decide(cd: &ClusterData) -> ClusterData {
    let mut hist = Histories::new_term();
    hist.refresh_convergence(cd, MonoTime::ZERO);
    let now = Now { mono: MonoTime::from_duration(Duration::from_secs(1)), wall: t(0) };
    update_cluster(cd, &BTreeMap::new(), &hist, now, &mut SequentialUids::after(10)).expect("decision")
}

#[test]
fn elections_prefer_priority_and_never_pick_a_keeper_in_maintenance() {
    let mut cd = cluster();
    let fail_master = |cd: &mut ClusterData| {
        cd.keepers.get_mut("k0").unwrap().status.healthy = false;
        cd.dbs.get_mut("m").unwrap().status.healthy = false;
    };
    fail_master(&mut cd);
    assert_eq!(decide(&cd).cluster.status.master, "s1", "most advanced");
    cd.keepers.get_mut("k2").unwrap().spec.priority = 1;
    assert_eq!(decide(&cd).cluster.status.master, "s2", "higher priority first");
    cd.keepers.get_mut("k2").unwrap().spec.maintenance = true;
    assert_eq!(decide(&cd).cluster.status.master, "s1", "never a keeper in maintenance");
    cd.keepers.get_mut("k1").unwrap().spec.maintenance = true;
    assert_eq!(decide(&cd).cluster.status.master, "m", "no eligible master");
}

#[test]
fn a_keeper_in_maintenance_leaves_the_synchronous_set_through_a_union_step() {
    let mut cd = cluster();
    cd.cluster.spec.synchronous_replication = Some(true);
    let m = cd.dbs.get_mut("m").unwrap();
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(vec!["s1".into()]);
    m.spec.external_synchronous_standbys = Some(vec![]);
    m.status.synchronous_standbys = Some(vec!["s1".into()]);
    cd.keepers.get_mut("k1").unwrap().spec.maintenance = true;
    let next = decide(&cd);
    assert_eq!(next.dbs["m"].spec.synchronous_standbys(), ["s1", "s2"], "kept until its replacement is in sync");
    let mut cd = next;
    let m = cd.dbs.get_mut("m").unwrap();
    m.status.current_generation = m.generation;
    m.status.synchronous_standbys = Some(vec!["s1".into(), "s2".into()]);
    let next = decide(&cd);
    assert_eq!(next.dbs["m"].spec.synchronous_standbys(), ["s2"]);
}
