//! Reinit: the standby DB is replaced, its new DB cloned without pg_rewind, refusals (pure).

use super::*;
use crate::cluster::{PostgresState, outcome};
use crate::ops::restart::tests::{cluster, t};

fn start(cd: &mut ClusterData, keeper: &str) {
    check_request(cd, keeper, t(0)).expect("accepted");
    cd.operations.reinit = Some(record(keeper, "ri1".into(), GoDuration::from_std(DEFAULT_TIMEOUT), t(0)));
}

fn streaming(keeper: &str, db: &str, generation: i64) -> BTreeMap<String, KeeperInfo> {
    let st = PostgresState {
        uid: db.into(),
        generation,
        healthy: true,
        upstream_x_log_pos: 1000,
        ..PostgresState::default()
    };
    [(keeper.to_string(), KeeperInfo { uid: keeper.into(), postgres_state: Some(st), ..KeeperInfo::default() })].into()
}

#[test]
fn the_standby_db_is_replaced_and_its_successor_cloned_with_a_base_backup() {
    let mut cd = cluster();
    cd.dbs.get_mut("m").unwrap().spec.followers = Some(vec!["s1".into(), "s2".into()]);
    start(&mut cd, "k1");
    assert!(!reclone(&cd, "s1"));
    step(&mut cd, &BTreeMap::new(), t(1));
    let ri = cd.operations.reinit.clone().unwrap();
    assert_eq!((ri.phase, ri.from_db.as_str()), (ReinitPhase::Cloning, "s1"));
    assert!(!cd.dbs.contains_key("s1"));
    assert_eq!(cd.dbs["m"].spec.followers(), ["s2"]);
    // The normal pass gives the keeper a new DB; its keeper clones it without pg_rewind.
    let mut new = cd.dbs["s2"].clone();
    new.uid = "s1b".into();
    new.spec.keeper_uid = "k1".into();
    cd.dbs.insert("s1b".into(), new);
    assert!(reclone(&cd, "s1b") && !reclone(&cd, "s2"));
    step(&mut cd, &streaming("k1", "s1b", 0), t(2));
    assert!(cd.operations.reinit.is_some(), "not converged yet");
    step(&mut cd, &streaming("k1", "s1b", 1), t(3));
    let last = cd.operations.last_reinit.clone().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.message.as_str()),
        (outcome::COMPLETED, "keeper k1 re-cloned from the master as db s1b")
    );
}

#[test]
fn cloning_past_its_timeout_is_recorded_as_failed() {
    let mut cd = cluster();
    start(&mut cd, "k2");
    step(&mut cd, &BTreeMap::new(), t(1));
    assert_eq!(deadline(&cd), Some(t(3601)));
    step(&mut cd, &BTreeMap::new(), t(3601));
    assert_eq!(cd.operations.last_reinit.unwrap().outcome, outcome::FAILED);
}

#[test]
fn refusals() {
    let cd = cluster();
    let check = |cd: &ClusterData, k: &str| check_request(cd, k, t(0)).err();
    assert_eq!(check(&cd, "k0"), Some(Refusal::Master("k0".into())));
    assert_eq!(check(&cd, "k9"), Some(Refusal::UnknownKeeper("k9".into())));
    let mut no_db = cluster();
    no_db.dbs.remove("s2");
    assert_eq!(check(&no_db, "k2"), Some(Refusal::NoDb("k2".into())));
    let mut sick = cluster();
    sick.dbs.get_mut("m").unwrap().status.healthy = false;
    assert_eq!(check(&sick, "k1"), Some(Refusal::NoHealthyMaster));
    let mut busy = cluster();
    busy.operations.restart = Some(crate::cluster::Restart::default());
    assert_eq!(check(&busy, "k1"), Some(Refusal::Busy("a rolling restart")));
    // Checked again when the leader starts it: the master moved to k1 meanwhile.
    let mut cd = cluster();
    start(&mut cd, "k1");
    cd.cluster.status.master = "s1".into();
    step(&mut cd, &BTreeMap::new(), t(1));
    assert_eq!(cd.operations.last_reinit.unwrap().outcome, outcome::REFUSED);
    assert!(cd.dbs.contains_key("s1"));
}
