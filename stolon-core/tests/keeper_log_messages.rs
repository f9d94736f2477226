//! The keeper's state-machine log lines, verbatim as stolon 0.17 logs them (docs/log-messages.md): the
//! events of a pass (`keeper::events::pass_events`, logged at info before the plan runs), the reasons of
//! passes that wait or fail (logged as they are), and the errors of failed actions.

use stolon_core::cluster::{ClusterData, DbInitMode, DbLocalState, DbRole};
use stolon_core::keeper::events::pass_events;
use stolon_core::keeper::messages::failure_of;
use stolon_core::keeper::plan::{Action, Applied, Observed, Outcome, Plan, PlanInput, plan};

#[path = "common/keeper_fixtures.rs"]
mod keeper_fixtures;
use keeper_fixtures::*;

/// The plan of a pass and the lines the keeper logs for it: its events, then the reason of a pass that
/// waits or fails.
fn pass(cd: &ClusterData, local: &DbLocalState, obs: &Observed, applied: &Applied) -> (Plan, Vec<String>) {
    let s = settings();
    let input = PlanInput {
        settings: &s,
        boot_uuid: BOOT,
        cd,
        local,
        observed: obs,
        applied,
        after_init: false,
        now: stolon_core::time::Timestamp::now(),
    };
    let p = plan(&input);
    let mut lines: Vec<String> = pass_events(&input, &p).into_iter().map(String::from).collect();
    if let Outcome::Waiting(r) | Outcome::Failed(r) = &p.outcome {
        lines.push(r.clone());
    }
    (p, lines)
}

/// The configuration a running instance got from a first pass that started it.
fn applied_after_start(cd: &ClusterData, local: &DbLocalState, role: DbRole) -> Applied {
    let (p, _) = pass(cd, local, &observed(role, false), &Applied::default());
    let config = p.actions.iter().find_map(|a| match a {
        Action::Start { config, .. } => Some(config.clone()),
        _ => None,
    });
    let config = config.expect("the first pass starts postgres");
    Applied {
        parameters: Some(config.parameters),
        hba: Some(config.hba),
        recovery: Some(config.recovery),
        restricted_hba: false,
    }
}

#[test]
fn a_running_master_logs_its_role_and_unchanged_configuration() {
    let cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    let applied = applied_after_start(&cd, &local("d1", 3), DbRole::Master);
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Master, true), &applied);
    assert_eq!(
        lines,
        [
            "our db requested role is master",
            "already master",
            "postgres parameters not changed",
            "postgres hba entries not changed"
        ]
    );
}

#[test]
fn parameter_and_hba_changes_are_reloads() {
    let mut cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    let applied = applied_after_start(&cd, &local("d1", 3), DbRole::Master);
    let d1 = cd.dbs.get_mut("d1").expect("d1");
    d1.spec.pg_parameters.insert("work_mem".into(), "8MB".into());
    let (p, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Master, true), &applied);
    assert!(p.actions.iter().any(|a| matches!(a, Action::Reload { .. })));
    assert_eq!(
        lines,
        [
            "our db requested role is master",
            "already master",
            "postgres parameters changed, reloading postgres instance",
            "postgres hba entries not changed"
        ]
    );
    let d1 = cd.dbs.get_mut("d1").expect("d1");
    d1.spec.pg_parameters.clear();
    d1.spec.pg_hba = Some(vec!["host all all 10.0.0.0/8 md5".into()]);
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Master, true), &applied);
    assert_eq!(
        lines[2..],
        ["postgres parameters not changed", "postgres hba entries changed, reloading postgres instance"]
    );
    let d1 = cd.dbs.get_mut("d1").expect("d1");
    d1.spec.pg_hba = None;
    d1.spec.synchronous_replication = true;
    d1.spec.synchronous_standbys = Some(vec!["d2".into()]);
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Master, true), &applied);
    assert_eq!(
        lines[2..],
        [
            "needed synchronous_standby_names changed",
            "postgres parameters changed, reloading postgres instance",
            "postgres hba entries not changed"
        ]
    );
}

#[test]
fn a_restarted_synchronous_master_withholds_client_access() {
    let mut d1 = db("d1", "k1", DbRole::Master, DbInitMode::None);
    d1.spec.synchronous_replication = true;
    d1.spec.synchronous_standbys = Some(vec!["d2".into()]);
    let cd = cd_with(d1);
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Master, false), &Applied::default());
    assert_eq!(
        lines,
        [
            "our db requested role is master",
            "not allowing connection as normal users since synchronous replication is enabled and instance was down",
            "already master",
            "postgres parameters not changed",
            "not allowing connection as normal users since synchronous replication is enabled, instance was down \
             and not all sync standbys are synced",
            "postgres hba entries not changed"
        ]
    );
}

#[test]
fn standbys_promotions_and_role_refusals() {
    let cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Standby, true), &Applied::default());
    assert_eq!(lines[..2], ["our db requested role is master", "promoting to master"]);

    let cd = cd_with(db("d1", "k1", DbRole::Standby, DbInitMode::None));
    let applied = applied_after_start(&cd, &local("d1", 3), DbRole::Standby);
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Standby, true), &applied);
    assert_eq!(lines[..2], ["our db requested role is standby", "already standby"]);
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Master, true), &applied);
    assert_eq!(lines, ["our db requested role is standby", "cannot move from master role to standby role"]);

    let mut moved = cd.clone();
    moved.dbs.get_mut("d0").expect("d0").status.port = "5433".into();
    let (_, lines) = pass(&moved, &local("d1", 3), &observed(DbRole::Standby, true), &applied);
    assert_eq!(
        lines[..3],
        [
            "our db requested role is standby",
            "already standby",
            "recovery parameters changed, restarting postgres instance"
        ]
    );

    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Undefined, false), &Applied::default());
    assert_eq!(lines, ["our db requested role is standby", "database cluster not initialized"]);

    let cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    let (_, lines) = pass(&cd, &local("d1", 3), &observed(DbRole::Undefined, false), &Applied::default());
    assert_eq!(
        lines,
        [
            "our db requested role is master",
            "database cluster not initialized but requested role is master. This shouldn't happen!"
        ]
    );
}

#[test]
fn waiting_passes_and_initializations() {
    let mut cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    let obs = observed(DbRole::Master, false);
    cd.keepers.get_mut("k1").expect("k1").status.boot_uuid = "previous".into();
    assert_eq!(
        pass(&cd, &local("d1", 3), &obs, &Applied::default()).1,
        ["our db boot UID is different than the cluster data one, waiting for it to be updated"]
    );
    cd.dbs.clear();
    assert_eq!(pass(&cd, &local("d1", 3), &obs, &Applied::default()).1, ["no db assigned"]);
    cd.keepers.remove("k1");
    assert_eq!(
        pass(&cd, &local("d1", 3), &obs, &Applied::default()).1,
        ["our keeper data is not available, waiting for it to appear"]
    );

    let cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::New));
    let none = observed(DbRole::Undefined, false);
    let (_, lines) = pass(&cd, &local("old", 3), &none, &Applied::default());
    assert_eq!(lines, ["current db UID different than cluster data db UID", "initializing the database cluster"]);
    let mut interrupted = local("d1", 3);
    interrupted.initializing = true;
    let (_, lines) = pass(&cd, &interrupted, &none, &Applied::default());
    assert_eq!(
        lines,
        [
            "db failed to initialize or resync",
            "current db UID different than cluster data db UID",
            "initializing the database cluster"
        ]
    );
    let cd = cd_with(db("d1", "k1", DbRole::Standby, DbInitMode::Resync));
    let (_, lines) = pass(&cd, &local("old", 3), &none, &Applied::default());
    assert_eq!(lines, ["current db UID different than cluster data db UID", "resyncing the database cluster"]);
    let cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::Pitr));
    let (_, lines) = pass(&cd, &local("old", 3), &none, &Applied::default());
    assert_eq!(lines, ["current db UID different than cluster data db UID", "restoring the database cluster"]);
    let cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    let (_, lines) = pass(&cd, &local("old", 3), &observed(DbRole::Master, false), &Applied::default());
    assert_eq!(
        lines,
        ["different local dbUID but init mode is none, this shouldn't happen. Something bad happened to the keeper \
          data. Check that keeper data is on a persistent volume and that the keeper state files weren't removed"]
    );
}

#[test]
fn failed_actions_are_logged_in_stolons_words() {
    let cd = cd_with(db("d1", "k1", DbRole::Master, DbInitMode::None));
    let (p, _) = pass(&cd, &local("d1", 3), &observed(DbRole::Standby, false), &Applied::default());
    let words: Vec<Option<&str>> = p.actions.iter().map(failure_of).collect();
    assert!(words.contains(&Some("failed to start postgres")), "{words:?}");
    assert!(words.contains(&Some("timeout waiting for instance to be ready")), "{words:?}");
    assert!(words.contains(&Some("failed to promote instance")), "{words:?}");
    assert!(words.contains(&Some("error updating replication slots")), "{words:?}");
    assert_eq!(failure_of(&Action::StopPostgres), Some("failed to stop pg instance"));
    assert_eq!(failure_of(&Action::SaveGeneration(1)), Some("failed to save db local state"));
    assert_eq!(failure_of(&Action::SetRestrictedHba(true)), None);
}
