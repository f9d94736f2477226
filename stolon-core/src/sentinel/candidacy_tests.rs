use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::cluster::{
    ClusterPhase, ClusterSpec, DbRole, DbSpec, DbStatus, FollowConfig, FollowType, Keeper, KeeperStatus,
};
use crate::sentinel::election::candidates;
use crate::sentinel::health::{ConvergenceMark, Histories};
use crate::sentinel::{MonoTime, Now, SequentialUids, decide};
use crate::time::Timestamp;

const NOW: Duration = Duration::from_secs(3600);

fn db(uid: &str, keeper: &str, role: DbRole, pos: u64) -> Db {
    let follow = (role == DbRole::Standby).then(|| FollowConfig {
        follow_type: Some(FollowType::Internal),
        db_uid: "m".into(),
        ..Default::default()
    });
    Db {
        uid: uid.into(),
        generation: 2,
        spec: DbSpec { keeper_uid: keeper.into(), role: Some(role), follow_config: follow, ..Default::default() },
        status: DbStatus {
            healthy: true,
            current_generation: 2,
            timeline_id: 1,
            system_id: "sys".into(),
            x_log_pos: pos,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// TestTimelineFork's situation: the master `m` (keeper `km`) failed at WAL position 1 MiB; `s0` (keeper
/// `k0`) is healthy and converged, 234,832 bytes behind; `s1` (keeper `k1`) is down. The test spec's
/// maxStandbyLag is 50 KiB.
fn fork_case() -> ClusterData {
    let spec = ClusterSpec {
        init_mode: Some(crate::cluster::ClusterInitMode::New),
        max_standby_lag: Some(50 * 1024),
        ..ClusterSpec::default()
    };
    let mut cd = ClusterData::new_initial("c", spec, Timestamp::now());
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "m".into();
    for (k, healthy) in [("km", false), ("k0", true), ("k1", false)] {
        let status = KeeperStatus { healthy, ..Default::default() };
        cd.keepers.insert(k.into(), Keeper { uid: k.into(), status, ..Default::default() });
    }
    let mut m = db("m", "km", DbRole::Master, 1 << 20);
    m.status.healthy = false;
    cd.dbs.insert("m".into(), m);
    cd.dbs.insert("s0".into(), db("s0", "k0", DbRole::Standby, (1 << 20) - 234_832));
    let mut s1 = db("s1", "k1", DbRole::Standby, 1 << 20);
    s1.status.healthy = false;
    cd.dbs.insert("s1".into(), s1);
    cd
}

fn judge(hist: &Histories) -> Judge<'_> {
    Judge { hist, now: MonoTime::from_duration(NOW) }
}

fn election(cd: &ClusterData, hist: &Histories) -> BTreeMap<String, Vec<Rejection>> {
    election_rejections(cd, judge(hist)).expect("the master failed: an election")
}

#[test]
fn the_timeline_fork_standby_is_rejected_for_its_lag_and_says_so() {
    let cd = fork_case();
    let hist = Histories::default();
    let e = election(&cd, &hist);
    assert_eq!(e["s0"], [Rejection::TooFarBehind { lag: 234_832, max: 51_200 }]);
    assert_eq!(e["s1"], [Rejection::KeeperUnhealthy]);
    assert!(!e.contains_key("m"), "the failed master is no candidate of its own election");
    assert_eq!(describe(&e["s0"]), "234832 bytes behind the master's last reported position (maxStandbyLag 51200)");
    assert!(candidates(&cd, cd.master_db().unwrap(), judge(&hist)).is_empty());

    // Within the default maxStandbyLag (1 MiB) it is elected.
    let mut cd = cd;
    cd.cluster.spec.max_standby_lag = None;
    assert!(election(&cd, &hist)["s0"].is_empty());
    assert_eq!(candidates(&cd, cd.master_db().unwrap(), judge(&hist)), ["s0"]);
}

#[test]
fn no_election_while_the_master_is_fine() {
    let mut cd = fork_case();
    cd.keepers.get_mut("km").unwrap().status.healthy = true;
    cd.dbs.get_mut("m").unwrap().status.healthy = true;
    assert_eq!(election_rejections(&cd, judge(&Histories::default())), None);
}

#[test]
fn every_reason_is_named() {
    let mut cd = fork_case();
    cd.cluster.spec.max_standby_lag = None;
    let add = |cd: &mut ClusterData, uid: &str, keeper: &str, edit: &dyn Fn(&mut Db, &mut Keeper)| {
        let mut d = db(uid, keeper, DbRole::Standby, 1 << 20);
        let mut k = Keeper {
            uid: keeper.into(),
            status: KeeperStatus { healthy: true, ..Default::default() },
            ..Default::default()
        };
        edit(&mut d, &mut k);
        cd.keepers.insert(keeper.into(), k);
        cd.dbs.insert(uid.into(), d);
    };
    add(&mut cd, "converging", "ka", &|d, _| d.status.current_generation = 1);
    add(&mut cd, "stuck", "kb", &|d, _| d.status.current_generation = 1);
    add(&mut cd, "sick", "kc", &|d, _| d.status.healthy = false);
    add(&mut cd, "tl2", "kd", &|d, _| d.status.timeline_id = 2);
    add(&mut cd, "fresh", "ke", &|d, _| d.status.current_generation = 0);
    add(&mut cd, "other", "kf", &|d, _| d.status.system_id = "another".into());
    add(&mut cd, "nomaster", "kg", &|_, k| k.status.can_be_master = Some(false));
    add(&mut cd, "norole", "kh", &|d, _| d.spec.role = None);
    let mut hist = Histories::default();
    let since = |secs| MonoTime::from_duration(NOW - Duration::from_secs(secs));
    hist.convergence.insert("converging".into(), ConvergenceMark { generation: 2, since: since(1) });
    hist.convergence.insert("stuck".into(), ConvergenceMark { generation: 2, since: since(1000) });

    let e = election(&cd, &hist);
    assert_eq!(e["converging"], [Rejection::Converging]);
    assert_eq!(e["stuck"], [Rejection::ConvergenceFailed]);
    assert_eq!(e["sick"], [Rejection::DbUnhealthy]);
    assert_eq!(e["tl2"], [Rejection::InvalidBranch, Rejection::OtherTimeline { timeline: 2, master_timeline: 1 }]);
    assert_eq!(e["fresh"], [Rejection::NeverReported, Rejection::Converging], "no comparison of unreported figures");
    assert_eq!(e["other"], [Rejection::InvalidBranch, Rejection::OtherSystem]);
    assert_eq!(e["nomaster"], [Rejection::CannotBeMaster]);
    assert_eq!(e["norole"], [Rejection::NoRole]);
    assert!(e["s0"].is_empty());

    // The election's candidates are exactly the DBs without a reason.
    let eligible: Vec<&String> = e.iter().filter(|(_, r)| r.is_empty()).map(|(u, _)| u).collect();
    assert_eq!(candidates(&cd, cd.master_db().unwrap(), judge(&hist)).iter().collect::<Vec<_>>(), eligible);
}

#[test]
fn a_synchronous_election_rejects_the_unconfirmed_standbys_whatever_their_lag() {
    let mut cd = fork_case();
    cd.cluster.spec.synchronous_replication = Some(true);
    cd.dbs.insert("s2".into(), db("s2", "k0", DbRole::Standby, 1));
    let m = cd.dbs.get_mut("m").unwrap();
    m.spec.synchronous_replication = true;
    m.spec.synchronous_standbys = Some(vec!["s2".into()]);
    m.status.synchronous_standbys = Some(vec!["s2".into()]);
    let e = election(&cd, &Histories::default());
    assert_eq!(e["s0"], [Rejection::NotConfirmedSynchronous], "no lag filter in a synchronous election");
    assert!(e["s2"].is_empty());
}

#[test]
fn changes_are_reasons_of_another_kind_or_new_dbs() {
    let lag = |lag| vec![Rejection::TooFarBehind { lag, max: 10 }];
    let old = BTreeMap::from([("a".to_string(), lag(20)), ("b".to_string(), vec![])]);
    let same = BTreeMap::from([("a".to_string(), lag(30)), ("b".to_string(), vec![])]);
    assert!(changed_rejections(&old, &same).is_empty(), "another figure is not another reason");
    let new = BTreeMap::from([
        ("a".to_string(), vec![]),
        ("b".to_string(), vec![Rejection::KeeperUnhealthy]),
        ("c".to_string(), lag(11)),
    ]);
    let changed: Vec<&str> = changed_rejections(&old, &new).into_iter().map(|(uid, _)| uid).collect();
    assert_eq!(changed, ["a", "b", "c"]);
    assert_eq!(changed_rejections(&BTreeMap::new(), &old).len(), 2, "everything is new at first");
}

#[test]
fn the_decision_reports_the_election_it_ran() {
    let mut cd = fork_case();
    // Keepers publish nothing: within failInterval (20 s) everyone still counts as healthy, no election;
    // after it everyone is unhealthy, and the pass reports why s0 cannot be elected.
    let at = |secs: u64| Now { mono: MonoTime::from_duration(Duration::from_secs(secs)), wall: Timestamp::now() };
    cd.keepers.get_mut("k0").unwrap().status.healthy = false;
    let infos = BTreeMap::new();
    let mut hist = Histories::default();
    for secs in [0, 10, 40] {
        let d = decide(&cd, &infos, &BTreeMap::new(), &hist, at(secs), &mut SequentialUids::after(10)).unwrap();
        hist = d.histories;
        cd = d.cluster_data;
        if secs < 40 {
            assert_eq!(d.election, None, "at {secs} s: the first pass only observes, then the master is fine");
        } else {
            let e = d.election.expect("the master failed: an election");
            let too_far = Rejection::TooFarBehind { lag: 234_832, max: 51_200 };
            assert_eq!(e["s0"], [Rejection::KeeperUnhealthy, too_far], "every reason, not the first only");
        }
    }
}
