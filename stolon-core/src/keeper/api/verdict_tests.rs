//! Every check against every situation a keeper can be in, as one table.

use std::time::Duration;

use super::*;
use crate::cluster::{
    ClusterData, ClusterRole, Db, DbRole, FollowConfig, FollowType, Keeper, StandbyConfig, StandbySettings,
};
use crate::keeper::api::view::KeeperLoop;

const FRESH: Duration = Duration::from_secs(1);
const STALE: Duration = Duration::from_secs(16);

fn db(uid: &str, keeper: &str, port: u16, role: DbRole, follows: Option<&str>) -> Db {
    let mut d = Db { uid: uid.into(), generation: 1, ..Db::default() };
    d.spec.keeper_uid = keeper.into();
    d.spec.role = Some(role);
    d.spec.follow_config = follows.map(|m| FollowConfig {
        follow_type: Some(FollowType::Internal),
        db_uid: m.into(),
        ..FollowConfig::default()
    });
    d.status.listen_address = "127.0.0.1".into();
    d.status.port = port.to_string();
    d.status.healthy = true;
    d
}

/// Master d0 on k0 (port 5000), synchronous standby d1 on k1, asynchronous standby d2 on k2, k3 without a DB.
fn cluster() -> ClusterData {
    let mut cd = ClusterData::default();
    cd.cluster.uid = "c1".into();
    let mut master = db("d0", "k0", 5000, DbRole::Master, None);
    master.status.x_log_pos = 1000;
    master.status.synchronous_standbys = Some(vec!["d1".into()]);
    for d in
        [master, db("d1", "k1", 5001, DbRole::Standby, Some("d0")), db("d2", "k2", 5002, DbRole::Standby, Some("d0"))]
    {
        cd.dbs.insert(d.uid.clone(), d);
    }
    for k in ["k0", "k1", "k2", "k3"] {
        cd.keepers.insert(k.into(), Keeper { uid: k.into(), ..Keeper::default() });
    }
    cd.cluster.status.master = "d0".into();
    cd
}

fn primary_up() -> PgObservation {
    PgObservation::Up(PgSample { in_recovery: false, current_lsn: Some(1000), ..PgSample::default() })
}

fn standby_up(sender_port: i32, replay: u64) -> PgObservation {
    PgObservation::Up(PgSample {
        in_recovery: true,
        receive_lsn: Some(1000),
        replay_lsn: Some(replay),
        receiver: Some(WalReceiver {
            status: "streaming".into(),
            sender_host: Some("127.0.0.1".into()),
            sender_port: Some(sender_port),
            latest_end_lsn: Some(1000),
        }),
        ..PgSample::default()
    })
}

fn down() -> PgObservation {
    PgObservation::Down("connection refused".into())
}

fn alive() -> Vec<LoopState> {
    KeeperLoop::ALL.iter().map(|&which| LoopState { which, since_beat: FRESH, open_ended: None }).collect()
}

/// One situation: whose view, of which cluster data and how old, which local DB, which PostgreSQL.
struct Case {
    name: &'static str,
    keeper: &'static str,
    cd: Option<(ClusterData, Duration)>,
    local_db: &'static str,
    pg: PgObservation,
    loops: Vec<LoopState>,
}

fn case(name: &'static str, keeper: &'static str, local_db: &'static str, pg: PgObservation) -> Case {
    Case { name, keeper, cd: Some((cluster(), FRESH)), local_db, pg, loops: alive() }
}

impl Case {
    fn answer(&self, check: Check, lag: Option<u64>) -> Answer {
        let i = Inputs {
            keeper_uid: self.keeper,
            cluster: self.cd.as_ref().map(|(cd, age)| (cd, *age)),
            local_db: self.local_db,
            pg: &self.pg,
            loops: &self.loops,
        };
        super::check(check, lag, &i)
    }
}

/// The checks in the order of the expectation strings below: primary, standby-leader, leader, replica,
/// read-only, synchronous, asynchronous, health, liveness, readiness.
const CHECKS: [Check; 10] = [
    Check::Primary,
    Check::StandbyLeader,
    Check::Leader,
    Check::Replica,
    Check::ReadOnly,
    Check::Synchronous,
    Check::Asynchronous,
    Check::Health,
    Check::Liveness,
    Check::Readiness,
];

fn expect(c: &Case, lag: Option<u64>, codes: &str) {
    let want: Vec<u16> = codes.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(want.len(), CHECKS.len(), "{}: bad expectation", c.name);
    for (check, want) in CHECKS.iter().zip(want) {
        let a = c.answer(*check, lag);
        assert_eq!(a.status, want, "{} {:?} lag {lag:?}: {}", c.name, check, a.body["check"]);
        assert_eq!(a.body["check"]["passed"], want == 200);
        assert_eq!(a.body["check"]["reason"].is_null(), want == 200, "{} {:?}: a failure says why", c.name, check);
    }
}

#[test]
fn every_check_in_every_situation() {
    //                                                           pri sl  ldr rep ro  syn asy hlt liv rdy
    expect(&case("master", "k0", "d0", primary_up()), None, "200 503 200 503 200 503 503 200 200 200");
    expect(&case("sync standby", "k1", "d1", standby_up(5000, 1000)), None, "503 503 503 200 200 200 503 200 200 200");
    expect(&case("async standby", "k2", "d2", standby_up(5000, 1000)), None, "503 503 503 200 200 503 200 200 200 200");
    let lagging = case("lagging standby", "k2", "d2", standby_up(5000, 400));
    expect(&lagging, None, "503 503 503 200 200 503 200 200 200 200");
    expect(&lagging, Some(600), "503 503 503 200 200 503 200 200 200 200");
    let master = case("master", "k0", "d0", primary_up());
    expect(&master, Some(0), "200 503 200 503 200 503 503 200 200 200");
    expect(&lagging, Some(599), "503 503 503 503 503 503 503 200 200 503");
    expect(&case("master, postgres stopped", "k0", "d0", down()), None, "503 503 200 503 503 503 503 503 200 503");
    expect(&case("standby, postgres stopped", "k1", "d1", down()), None, "503 503 503 503 503 503 503 503 200 503");
    expect(&case("keeper without a DB", "k3", "", down()), None, "503 503 503 503 503 503 503 503 200 503");
    expect(
        &case("keeper without a DB, stray postgres", "k3", "", primary_up()),
        None,
        "503 503 503 503 503 503 503 200 200 503",
    );
    let in_recovery = PgObservation::Up(PgSample { in_recovery: true, ..PgSample::default() });
    expect(&case("master not promoted yet", "k0", "d0", in_recovery), None, "503 503 200 503 503 503 503 200 200 503");
    expect(
        &case("master holding another DB", "k0", "dx", primary_up()),
        None,
        "503 503 200 503 503 503 503 200 200 503",
    );
    expect(
        &case("standby of another primary", "k2", "d2", standby_up(5009, 1000)),
        None,
        "503 503 503 503 503 503 503 200 200 503",
    );
    let mut no_receiver = standby_up(5000, 1000);
    if let PgObservation::Up(s) = &mut no_receiver {
        s.receiver = None;
    }
    expect(&case("standby not streaming", "k2", "d2", no_receiver), None, "503 503 503 503 503 503 503 200 200 503");
    let mut catching_up = standby_up(5000, 1000);
    if let PgObservation::Up(s) = &mut catching_up {
        s.receiver.as_mut().unwrap().status = "startup".into();
    }
    expect(&case("standby starting", "k2", "d2", catching_up), None, "503 503 503 503 503 503 503 200 200 503");
}

#[test]
fn stale_or_missing_cluster_data_attracts_no_traffic() {
    let mut stale = case("master cut off", "k0", "d0", primary_up());
    stale.cd.as_mut().unwrap().1 = STALE;
    expect(&stale, None, "503 503 503 503 503 503 503 200 200 503");
    let reason = stale.answer(Check::Primary, None).body["check"]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("proxyTimeout") && reason.contains("16.0s"), "{reason}");
    let mut stale_standby = case("standby cut off", "k1", "d1", standby_up(5000, 1000));
    stale_standby.cd.as_mut().unwrap().1 = STALE;
    expect(&stale_standby, None, "503 503 503 503 503 503 503 200 200 503");
    // The bound is the spec's proxyTimeout.
    let mut short = case("short proxyTimeout", "k0", "d0", primary_up());
    short.cd.as_mut().unwrap().0.cluster.spec.proxy_timeout = Some("500ms".parse().unwrap());
    assert_eq!(short.answer(Check::Primary, None).status, 503);
    let mut none = case("no cluster data", "k0", "d0", primary_up());
    none.cd = None;
    expect(&none, None, "503 503 503 503 503 503 503 200 200 503");
}

#[test]
fn standby_cluster() {
    let mut leader = case("standby leader", "k0", "d0", standby_up(6000, 1000));
    let spec = &mut leader.cd.as_mut().unwrap().0.cluster.spec;
    spec.role = Some(ClusterRole::Standby);
    spec.standby_config = Some(StandbyConfig {
        standby_settings: Some(StandbySettings {
            primary_conninfo: "host=10.0.0.9 user=repl password=s3cret-remote".into(),
            ..StandbySettings::default()
        }),
        ..StandbyConfig::default()
    });
    let cd = leader.cd.clone();
    expect(&leader, None, "503 200 200 503 503 503 503 200 200 200");
    let mut follower = case("standby of the standby leader", "k1", "d1", standby_up(5000, 1000));
    follower.cd = cd;
    expect(&follower, None, "503 503 503 200 200 200 503 200 200 200");
    for c in CHECKS {
        let body = leader.answer(c, None).body.to_string();
        assert!(!body.contains("s3cret") && !body.contains("password"), "{c:?}: {body}");
    }
}

#[test]
fn liveness_follows_the_loops() {
    let mut c = case("stuck keeper", "k0", "d0", primary_up());
    c.loops[0].since_beat = Duration::from_secs(200);
    assert_eq!(c.answer(Check::Liveness, None).status, 503);
    assert_eq!(c.answer(Check::Primary, None).status, 200, "liveness alone judges the loops");
    c.loops[0].open_ended = Some(("base backup", Duration::from_secs(200)));
    assert_eq!(c.answer(Check::Liveness, None).status, 200);
    // Before any cluster data the bound comes from the default intervals (4 x (5s + 10s)).
    c.cd = None;
    c.loops[0] = LoopState { which: KeeperLoop::StateMachine, since_beat: Duration::from_secs(59), open_ended: None };
    assert_eq!(c.answer(Check::Liveness, None).status, 200);
    c.loops[0].since_beat = Duration::from_secs(61);
    assert_eq!(c.answer(Check::Liveness, None).status, 503);
}

#[test]
fn member_document() {
    let c = case("lagging async standby", "k2", "d2", standby_up(5000, 400));
    let i = Inputs {
        keeper_uid: "k2",
        cluster: Some((&c.cd.as_ref().unwrap().0, FRESH)),
        local_db: "d2",
        pg: &c.pg,
        loops: &c.loops,
    };
    let a = status(&i);
    assert_eq!(a.status, 200);
    let b = &a.body;
    assert_eq!(b["keeperUid"], "k2");
    assert_eq!(b["role"], "standby");
    assert_eq!(b["dbUid"], "d2");
    assert_eq!(b["synchronous"], false);
    assert_eq!(b["cluster"]["masterKeeperUid"], "k0");
    assert_eq!(b["cluster"]["fresh"], true);
    assert_eq!(b["postgres"]["running"], true);
    assert_eq!(b["postgres"]["inRecovery"], true);
    assert_eq!(b["postgres"]["replayPosition"], 400);
    assert_eq!(b["postgres"]["replayLag"], 600);
    assert_eq!(b["postgres"]["walReceiver"]["senderPort"], 5000);
    assert_eq!(b["loops"].as_array().unwrap().len(), 3);
    assert!(b.get("check").is_none());
    let sync = case("sync standby", "k1", "d1", standby_up(5000, 1000));
    assert_eq!(sync.answer(Check::Health, None).body["synchronous"], true);
    let down = case("stopped", "k0", "d0", down());
    let b = down.answer(Check::Health, None).body;
    assert_eq!(b["postgres"]["running"], false);
    assert_eq!(b["postgres"]["error"], "connection refused");
    assert_eq!(b["check"]["endpoint"], "/health");
    assert!(b["check"]["reason"].as_str().unwrap().contains("connection refused"));
}

#[test]
fn lag_is_what_the_standby_knows_of_but_did_not_replay() {
    let mut s = PgSample { in_recovery: true, replay_lsn: Some(100), receive_lsn: Some(150), ..PgSample::default() };
    assert_eq!(replay_lag(&s), Some(50), "what it received");
    s.receiver = Some(WalReceiver { latest_end_lsn: Some(5000), ..WalReceiver::default() });
    assert_eq!(replay_lag(&s), Some(4900), "the upstream's reported WAL end");
    s.replay_lsn = None;
    assert_eq!(replay_lag(&s), None);
    let nothing = PgSample { in_recovery: true, replay_lsn: Some(100), ..PgSample::default() };
    assert_eq!(replay_lag(&nothing), None);
}
