//! What keepers plan for a rolling restart and a reinit (pure, over `keeper::plan`).

use crate::cluster::{ClusterData, DbInitMode, DbLocalState, ReinitPhase, Restart, RestartStep};
use crate::keeper::plan::{Action, Applied, KeeperSettings, Observed, Plan, PlanInput, plan};
use crate::postgres::AuthMethod;

use super::restart::tests::{cluster, t};

fn settings(keeper: &str) -> KeeperSettings {
    KeeperSettings {
        uid: keeper.into(),
        su_user: "su".into(),
        su_auth: AuthMethod::Trust,
        su_password: None,
        repl_user: "repl".into(),
        repl_auth: AuthMethod::Trust,
        repl_password: None,
        listen_address: "127.0.0.1".into(),
        port: 5432,
        pg_major: None,
    }
}

/// The test cluster with addresses (a standby needs its master's).
fn cluster_with_addresses() -> ClusterData {
    let mut cd = cluster();
    for db in cd.dbs.values_mut() {
        db.status.listen_address = "127.0.0.1".into();
        db.status.port = "5432".into();
    }
    cd
}

fn plan_for(cd: &ClusterData, keeper: &str, local: &DbLocalState, obs: &Observed) -> Plan {
    let s = settings(keeper);
    let boot = cd.keepers[keeper].status.boot_uuid.clone();
    let run = |cd: &ClusterData, applied: &Applied| {
        plan(&PlanInput {
            settings: &s,
            boot_uuid: &boot,
            cd,
            local,
            observed: obs,
            applied,
            after_init: false,
            now: t(0),
        })
    };
    // The instance runs with the configuration a first pass (without operations) would restart it with.
    let mut plain = cd.clone();
    plain.operations = Default::default();
    let first = run(&plain, &Applied::default());
    let config =
        first.actions.iter().find_map(|a| if let Action::Restart { config } = a { Some(config) } else { None });
    let applied = config.map_or_else(Applied::default, |c| Applied {
        parameters: Some(c.parameters.clone()),
        hba: Some(c.hba.clone()),
        recovery: Some(c.recovery.clone()),
        restricted_hba: false,
    });
    run(cd, &applied)
}

fn running_standby() -> Observed {
    Observed {
        initialized: true,
        local_role: Some(crate::cluster::DbRole::Standby),
        running: true,
        system_id: Some(String::new()),
        ..Observed::default()
    }
}

fn restarts(p: &Plan) -> usize {
    p.actions.iter().filter(|a| matches!(a, Action::Restart { .. })).count()
}

#[test]
fn a_keeper_restarts_once_per_request_and_records_it() {
    let mut cd = cluster_with_addresses();
    let local = DbLocalState { uid: "s1".into(), generation: 1, ..DbLocalState::default() };
    let obs = running_standby();
    assert_eq!(restarts(&plan_for(&cd, "k1", &local, &obs)), 0, "no restart requested");
    let step = RestartStep { keeper: "k1".into(), db: "s1".into(), since: t(0), switchover: String::new() };
    cd.operations.restart = Some(Restart { uid: "r1".into(), current: Some(step), ..Restart::default() });
    let p = plan_for(&cd, "k1", &local, &obs);
    assert_eq!(restarts(&p), 1, "{p:?}");
    let saved = p.actions.iter().find_map(|a| if let Action::SaveDbState(s) = a { Some(s.clone()) } else { None });
    assert_eq!(saved.map(|s| s.restarted_for), Some("r1".to_string()));
    // Done for this request: no second restart; other keepers are not concerned.
    let done = DbLocalState { restarted_for: "r1".into(), ..local.clone() };
    assert_eq!(restarts(&plan_for(&cd, "k1", &done, &obs)), 0);
    let other = DbLocalState { uid: "s2".into(), generation: 1, ..DbLocalState::default() };
    assert_eq!(restarts(&plan_for(&cd, "k2", &other, &obs)), 0);
    // A stopped instance started in this pass counts as restarted.
    let stopped = Observed { running: false, ..running_standby() };
    let p = plan_for(&cd, "k1", &local, &stopped);
    assert_eq!(restarts(&p), 0);
    assert!(p.actions.iter().any(|a| matches!(a, Action::Start { .. })));
    assert!(p.actions.iter().any(|a| matches!(a, Action::SaveDbState(s) if s.restarted_for == "r1")));
}

#[test]
fn the_new_db_of_a_reinit_is_cloned_with_a_base_backup_never_pg_rewind() {
    let mut cd = cluster_with_addresses();
    let mut new = cd.dbs.remove("s1").unwrap();
    new.uid = "s1b".into();
    new.spec.init_mode = Some(DbInitMode::Resync);
    new.spec.use_pgrewind = true;
    cd.dbs.get_mut("m").unwrap().status.system_id = "42".into();
    cd.dbs.insert("s1b".into(), new);
    let local = DbLocalState { uid: "s1".into(), generation: 1, ..DbLocalState::default() };
    let obs = Observed { system_id: Some("42".into()), ..running_standby() };
    let rewind_from = |cd: &ClusterData| {
        plan_for(cd, "k1", &local, &obs).actions.iter().find_map(|a| match a {
            Action::Resync(r) => Some(r.rewind_from.is_some()),
            _ => None,
        })
    };
    assert_eq!(rewind_from(&cd), Some(true), "a plain resync tries pg_rewind");
    cd.operations.reinit = Some(crate::cluster::Reinit {
        keeper: "k1".into(),
        phase: ReinitPhase::Cloning,
        from_db: "s1".into(),
        ..Default::default()
    });
    assert_eq!(rewind_from(&cd), Some(false), "a reinit wipes and clones");
}
