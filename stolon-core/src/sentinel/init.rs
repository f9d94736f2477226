//! The initialization phase (reference §4.3): choose the initial master DB and wait for it to converge.

use super::assess::Judge;
use super::entropy::Entropy;
use super::error::DecideError;
use super::health::Convergence;
use super::messages as m;
use super::model_ext::keeper_can_be_master;
use crate::cluster::{
    ClusterData, ClusterInitMode, ClusterRole, ClusterSpec, Db, DbInitMode, DbRole, DbSpec, FollowConfig, FollowType,
    INITIAL_GENERATION,
};
use std::time::Duration;

/// The follow config of a standby cluster's head: the external primary of `standbyConfig`.
pub(crate) fn external_follow_config(spec: &ClusterSpec) -> FollowConfig {
    let sc = spec.standby_config.clone().unwrap_or_default();
    FollowConfig {
        follow_type: Some(FollowType::External),
        db_uid: String::new(),
        standby_settings: sc.standby_settings,
        archive_recovery_settings: sc.archive_recovery_settings,
    }
}

/// Chooses the keeper of the initial master among the healthy keepers allowed to be master (stolon
/// ignores `canBeMaster` here; we do not), with a random index over their sorted UIDs.
fn initial_keeper(cd: &ClusterData, entropy: &mut dyn Entropy) -> Result<String, DecideError> {
    if cd.keepers.is_empty() {
        return Err(DecideError::NoInitialMaster("no keepers registered"));
    }
    let eligible: Vec<&String> = cd
        .keepers
        .iter()
        .filter(|(_, k)| k.status.healthy && keeper_can_be_master(Some(k)))
        .map(|(uid, _)| uid)
        .collect();
    if eligible.is_empty() {
        return Err(DecideError::NoInitialMaster("no healthy keeper is allowed to be master"));
    }
    let i = entropy.pick(eligible.len()).min(eligible.len() - 1);
    Ok(eligible[i].clone())
}

fn new_master_db(uid: String, keeper_uid: String, init_mode: DbInitMode, spec: &ClusterSpec) -> Db {
    Db {
        uid,
        generation: INITIAL_GENERATION,
        spec: DbSpec {
            keeper_uid,
            init_mode: Some(init_mode),
            role: Some(DbRole::Master),
            followers: Some(Vec::new()),
            include_config: spec.merge_pg_parameters(),
            ..DbSpec::default()
        },
        ..Db::default()
    }
}

/// Marks the initial master done and switches the cluster to phase normal.
fn complete(newcd: &mut ClusterData, master_uid: &str) {
    let merge = newcd.cluster.spec.merge_pg_parameters();
    let Some(db) = newcd.dbs.get_mut(master_uid) else { return };
    db.spec.init_mode = Some(DbInitMode::None);
    db.spec.include_config = false;
    let params = db.status.pg_parameters.clone();
    if merge {
        newcd.cluster.spec.pg_parameters = Some(params);
    }
    newcd.cluster.status.phase = Some(crate::cluster::ClusterPhase::Normal);
}

/// One pass of the initialization phase over `newcd` (a copy of the input).
pub(crate) fn initialize(
    newcd: &mut ClusterData,
    judge: Judge<'_>,
    entropy: &mut dyn Entropy,
) -> Result<(), DecideError> {
    let spec = newcd.cluster.spec.clone();
    let mode = spec.init_mode().cloned().ok_or(DecideError::UnknownInitMode(String::new()))?;
    let master_uid = newcd.cluster.status.master.clone();
    if master_uid.is_empty() {
        let db = match &mode {
            ClusterInitMode::New => {
                tracing::info!("{}", m::TRYING_TO_FIND_INITIAL_MASTER);
                let keeper = initial_keeper(newcd, entropy)?;
                tracing::info!(keeper = %keeper, "{}", m::INITIALIZING_CLUSTER);
                let mut db = new_master_db(entropy.new_uid(), keeper, DbInitMode::New, &spec);
                db.spec.new_config = spec.new_config.clone();
                db
            }
            ClusterInitMode::Existing => {
                let wanted = spec.existing_config.as_ref().map(|c| c.keeper_uid.clone()).unwrap_or_default();
                tracing::info!(keeper = %wanted, "{}", m::TRYING_TO_USE_KEEPER_AS_INITIAL_MASTER);
                if !newcd.keepers.contains_key(&wanted) {
                    return Err(DecideError::ExistingKeeperMissing(wanted));
                }
                tracing::info!(keeper = %wanted, "{}", m::INITIALIZING_CLUSTER_WITH_KEEPER);
                new_master_db(entropy.new_uid(), wanted, DbInitMode::Existing, &spec)
            }
            ClusterInitMode::Pitr => {
                tracing::info!("{}", m::TRYING_TO_FIND_INITIAL_MASTER);
                let keeper = initial_keeper(newcd, entropy)?;
                tracing::info!(keeper = %keeper, "{}", m::INITIALIZING_CLUSTER_WITH_KEEPER);
                let mut db = new_master_db(entropy.new_uid(), keeper, DbInitMode::Pitr, &spec);
                db.spec.pitr_config = spec.pitr_config.clone();
                if spec.role() == ClusterRole::Standby {
                    db.spec.role = Some(DbRole::Standby);
                    db.spec.follow_config = Some(external_follow_config(&spec));
                }
                db
            }
            ClusterInitMode::Unknown(m) => return Err(DecideError::UnknownInitMode(m.clone())),
        };
        newcd.cluster.status.master = db.uid.clone();
        newcd.dbs.insert(db.uid.clone(), db);
        return Ok(());
    }

    let db = newcd.dbs.get(&master_uid).ok_or_else(|| DecideError::MasterDbMissing(master_uid.clone()))?;
    let timeout = match &mode {
        ClusterInitMode::New => spec.init_timeout(),
        ClusterInitMode::Existing => spec.convergence_timeout(),
        ClusterInitMode::Pitr => Duration::ZERO,
        ClusterInitMode::Unknown(m) => return Err(DecideError::UnknownInitMode(m.clone())),
    };
    match judge.convergence(db, timeout) {
        Convergence::Converged if db.status.healthy => {
            tracing::info!(db = %master_uid, keeper = %db.spec.keeper_uid, "{}", m::DB_INITIALIZED);
            complete(newcd, &master_uid)
        }
        Convergence::Converged | Convergence::Converging => {
            tracing::info!(db = %master_uid, keeper = %db.spec.keeper_uid, "{}", m::WAITING_FOR_DB);
        }
        Convergence::Failed if mode == ClusterInitMode::Existing => {
            tracing::info!(db = %master_uid, keeper = %db.spec.keeper_uid, "{}", m::WAITING_FOR_DB);
        }
        Convergence::Failed => {
            tracing::info!(db = %master_uid, keeper = %db.spec.keeper_uid, "{}", m::DB_FAILED_TO_INITIALIZE);
            newcd.dbs.clear();
            newcd.cluster.status.master.clear();
        }
    }
    Ok(())
}
