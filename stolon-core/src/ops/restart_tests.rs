//! Rolling restart: order, completion checks, timeouts and refusals (pure).

use super::*;
use crate::cluster::{
    ClusterPhase, ClusterSpec, Db, DbRole, DbSpec, DbStatus, FollowConfig, FollowType, Keeper, KeeperStatus,
    SwitchoverResult,
};

pub(crate) fn t(secs: i64) -> Timestamp {
    let base = Timestamp::parse("2026-01-01T00:00:00Z").expect("valid timestamp").as_datetime();
    Timestamp::from_datetime(base + chrono::Duration::seconds(secs))
}

fn db(uid: &str, keeper: &str, master: Option<&str>) -> Db {
    let follow = master.map(|m| FollowConfig {
        follow_type: Some(FollowType::Internal),
        db_uid: m.into(),
        ..FollowConfig::default()
    });
    Db {
        uid: uid.into(),
        generation: 1,
        spec: DbSpec {
            keeper_uid: keeper.into(),
            role: Some(if master.is_some() { DbRole::Standby } else { DbRole::Master }),
            follow_config: follow,
            followers: Some(vec![]),
            ..DbSpec::default()
        },
        status: DbStatus {
            healthy: true,
            current_generation: 1,
            timeline_id: 1,
            x_log_pos: 1000,
            ..DbStatus::default()
        },
        ..Db::default()
    }
}

/// m (master, keeper k0) with standbys s1 (k1) and s2 (k2).
pub(crate) fn cluster() -> ClusterData {
    let mut cd = ClusterData::new_initial("c", ClusterSpec::default(), t(0));
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "m".into();
    for k in ["k0", "k1", "k2"] {
        let status = KeeperStatus { healthy: true, ..KeeperStatus::default() };
        cd.keepers.insert(k.into(), Keeper { uid: k.into(), status, ..Keeper::default() });
    }
    cd.dbs.insert("m".into(), db("m", "k0", None));
    cd.dbs.insert("s1".into(), db("s1", "k1", Some("m")));
    cd.dbs.insert("s2".into(), db("s2", "k2", Some("m")));
    cd.proxy.spec.master_db_uid = "m".into();
    cd
}

/// Keeper infos: every DB healthy and streaming; `restarted` lists the DBs restarted for `uid`,
/// `pending` the DBs with a parameter pending a restart.
pub(crate) fn infos(cd: &ClusterData, uid: &str, restarted: &[&str], pending: &[&str]) -> BTreeMap<String, KeeperInfo> {
    cd.dbs
        .values()
        .map(|db| {
            let st = PostgresState {
                uid: db.uid.clone(),
                generation: db.generation,
                healthy: true,
                upstream_x_log_pos: if db.uid == cd.cluster.status.master { 0 } else { 1000 },
                restarted_for: if restarted.contains(&db.uid.as_str()) { uid.into() } else { String::new() },
                pending_restart: pending.contains(&db.uid.as_str()),
                ..PostgresState::default()
            };
            let k = db.spec.keeper_uid.clone();
            (k.clone(), KeeperInfo { uid: k, postgres_state: Some(st), ..KeeperInfo::default() })
        })
        .collect()
}

/// One leader step with every DB streaming (`restarted` for `r1`, `pending`).
fn go(cd: &mut ClusterData, restarted: &[&str], pending: &[&str], secs: i64) {
    let infos = infos(cd, "r1", restarted, pending);
    step(cd, &infos, t(secs));
}

fn all(pending_only: bool, in_place: bool) -> Request {
    Request { all: true, pending_only, in_place, ..Request::default() }
}

fn start(cd: &mut ClusterData, req: &Request) {
    check_request(cd, req, t(0)).expect("accepted");
    cd.operations.restart = Some(record(req, "r1".into(), GoDuration::from_std(DEFAULT_TIMEOUT), t(0)));
}

fn last(cd: &ClusterData) -> (String, String) {
    let r = cd.operations.last_restart.clone().expect("an outcome");
    (r.outcome, r.message)
}

#[test]
fn standbys_one_at_a_time_each_streaming_before_the_next_then_the_master_by_a_switchover() {
    let mut cd = cluster();
    start(&mut cd, &all(false, false));
    go(&mut cd, &[], &[], 1);
    assert_eq!(keeper_token(&cd, "s1"), Some("r1"), "the first standby in keeper order");
    assert_eq!((keeper_token(&cd, "s2"), keeper_token(&cd, "m")), (None, None), "one at a time");
    // Restarted but not streaming yet: wait.
    let mut not_streaming = infos(&cd, "r1", &["s1"], &[]);
    not_streaming.get_mut("k1").unwrap().postgres_state.as_mut().unwrap().upstream_x_log_pos = 0;
    step(&mut cd, &not_streaming, t(2));
    assert_eq!(keeper_token(&cd, "s1"), Some("r1"));
    go(&mut cd, &["s1"], &[], 3);
    assert_eq!(keeper_token(&cd, "s2"), Some("r1"));
    assert_eq!(cd.operations.restart.as_ref().unwrap().done, ["k1"]);
    go(&mut cd, &["s1", "s2"], &[], 4);
    // The master last, by a switchover the restart waits for; its keeper gets no restart order.
    let sw = cd.operations.switchover.clone().expect("a switchover for the master");
    assert_eq!((sw.uid.as_str(), sw.reason.as_str()), ("restart-r1", "restart"));
    assert_eq!(keeper_token(&cd, "m"), None);
    go(&mut cd, &["s1", "s2"], &[], 5);
    assert!(cd.operations.restart.is_some(), "waits for the switchover");
    cd.operations.switchover = None;
    cd.operations.last_switchover =
        Some(SwitchoverResult { uid: "restart-r1".into(), outcome: outcome::COMPLETED.into(), ..Default::default() });
    go(&mut cd, &["s1", "s2"], &[], 6);
    assert_eq!(last(&cd), (outcome::COMPLETED.into(), "restarted keepers k1, k2, k0".into()));
    assert!(cd.operations.restart.is_none());
}

#[test]
fn in_place_restarts_the_master_where_it_is() {
    let mut cd = cluster();
    start(&mut cd, &Request { keepers: vec!["k0".into()], in_place: true, ..Request::default() });
    go(&mut cd, &[], &[], 1);
    assert_eq!(keeper_token(&cd, "m"), Some("r1"));
    assert!(cd.operations.switchover.is_none());
    go(&mut cd, &["m"], &[], 2);
    assert_eq!(last(&cd), (outcome::COMPLETED.into(), "restarted keepers k0".into()));
}

#[test]
fn pending_only_restarts_only_instances_with_a_pending_parameter() {
    let mut cd = cluster();
    start(&mut cd, &all(true, false));
    go(&mut cd, &[], &["s2"], 1);
    assert_eq!((keeper_token(&cd, "s1"), keeper_token(&cd, "s2")), (None, Some("r1")));
    go(&mut cd, &["s2"], &[], 2);
    assert!(cd.operations.switchover.is_none(), "the master has nothing pending");
    assert_eq!(last(&cd).1, "restarted keepers k2");

    let mut cd = cluster();
    start(&mut cd, &all(true, false));
    go(&mut cd, &[], &[], 1);
    assert_eq!(last(&cd), (outcome::COMPLETED.into(), "no instance needed a restart".into()));
}

#[test]
fn a_step_past_its_timeout_or_a_failed_switchover_aborts_the_restart() {
    let mut cd = cluster();
    start(&mut cd, &all(false, false));
    go(&mut cd, &[], &[], 1);
    go(&mut cd, &[], &[], 300);
    assert!(cd.operations.restart.is_some());
    assert_eq!(deadline(&cd), Some(t(301)));
    go(&mut cd, &[], &[], 301);
    let (outcome, message) = last(&cd);
    assert_eq!(outcome, outcome::ABORTED);
    assert!(message.starts_with("keeper k1 was not restarted and streaming after 5m0s"), "{message}");

    let mut cd = cluster();
    start(&mut cd, &Request { keepers: vec!["k0".into()], ..Request::default() });
    go(&mut cd, &[], &[], 1);
    assert!(cd.operations.switchover.is_some());
    cd.operations.switchover = None;
    cd.operations.last_switchover = Some(SwitchoverResult {
        uid: "restart-r1".into(),
        outcome: outcome::ABORTED.into(),
        message: "timed out".into(),
        ..Default::default()
    });
    go(&mut cd, &[], &[], 2);
    let (outcome, message) = last(&cd);
    assert_eq!(outcome, outcome::ABORTED);
    assert_eq!(message, "the master's switchover aborted: timed out; no instance needed a restart");
}

#[test]
fn refusals() {
    let cd = cluster();
    let check = |cd: &ClusterData, req: Request| check_request(cd, &req, t(0)).err();
    assert_eq!(check(&cd, Request::default()), Some(Refusal::NoTarget));
    assert_eq!(
        check(&cd, Request { all: true, keepers: vec!["k1".into()], ..Request::default() }),
        Some(Refusal::AllWithKeepers)
    );
    assert_eq!(
        check(&cd, Request { keepers: vec!["k9".into()], ..Request::default() }),
        Some(Refusal::UnknownKeeper("k9".into()))
    );
    let mut sick = cluster();
    sick.dbs.get_mut("s2").unwrap().status.healthy = false;
    assert_eq!(check(&sick, all(false, false)), Some(Refusal::Unhealthy("k2".into())));
    assert_eq!(check(&sick, Request { keepers: vec!["k1".into()], ..Request::default() }), None);
    let mut paused = cluster();
    paused.operations.pause = Some(crate::cluster::Pause { since: t(0), until: None });
    assert_eq!(check(&paused, all(false, false)), Some(Refusal::Paused));
    let mut busy = cluster();
    busy.operations.reinit = Some(crate::cluster::Reinit::default());
    assert_eq!(check(&busy, all(false, false)), Some(Refusal::Busy("a reinit")));
    // A lone master cannot be switched over: refused unless in place.
    let mut lone = cluster();
    lone.dbs.retain(|uid, _| uid == "m");
    assert!(matches!(check(&lone, all(false, false)), Some(Refusal::NoSwitchover(_))));
    assert_eq!(check(&lone, all(false, true)), None);
}
