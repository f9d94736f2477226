//! Step 6 of a pass: the keeper does not host the assigned DB yet, and initialises it by the DB's
//! `initMode` (new, existing, point-in-time recovery, resync from the followed DB).

use super::{Action, ConfigSet, Outcome, Plan, PlanInput, ResyncPlan};
use crate::cluster::{Db, DbInitMode, DbLocalState, FollowType};
use crate::keeper::db_config::{db_hba, db_parameters, standby_recovery};
use crate::keeper::messages as m;
use crate::keeper::plan::Observed;
use crate::postgres::config::{RecoveryMode, RecoveryOptions, stolon_name};
use crate::postgres::hba::AuthMethod;

/// Step 6: the keeper does not host the assigned DB yet.
pub(super) fn plan_init(input: &PlanInput<'_>, obs: &Observed, db: &Db, mut actions: Vec<Action>) -> Plan {
    let PlanInput { settings: s, cd, .. } = *input;
    let spec = &cd.cluster.spec;
    let initializing = DbLocalState {
        uid: db.uid.clone(),
        generation: 0,
        initializing: true,
        init_pg_parameters: None,
        ..DbLocalState::default()
    };
    // Once the data is complete the init is over: a later failure in the pass must not wipe it (stolon kept
    // the flag until the end of the pass and re-initialised after any error). Init parameters just
    // captured are kept by the executor.
    let initialized = Action::MarkInitialized;
    let fresh = DbLocalState::default();
    let params = db_parameters(s, db, &fresh, false);
    let hba = db_hba(s, cd, db, false);
    let db_wait = Some(spec.db_wait_ready_timeout()).filter(|d| !d.is_zero());
    let capture = |actions: &mut Vec<Action>| {
        if db.spec.include_config {
            actions.push(Action::CaptureInitParameters);
        }
    };
    match db.spec.init_mode.clone().unwrap_or(DbInitMode::None) {
        DbInitMode::New => {
            let nc = db.spec.new_config.clone().unwrap_or_default();
            actions.extend([
                Action::SaveDbState(initializing),
                Action::SetRestrictedHba(false),
                Action::StopPostgres,
                Action::RemovePgdata,
                Action::Initdb { locale: nc.locale, encoding: nc.encoding, data_checksums: nc.data_checksums },
                Action::Start {
                    config: ConfigSet { parameters: params, hba, recovery: RecoveryOptions::none() },
                    temporary: true,
                },
                Action::WaitReady { timeout: db_wait },
            ]);
            capture(&mut actions);
            actions.push(Action::CreateRoles);
            actions.push(Action::StopPostgres);
            actions.push(initialized);
        }
        DbInitMode::Existing => {
            let keep = DbLocalState { initializing: false, ..initializing };
            actions.extend([
                Action::SaveDbState(keep),
                Action::SetRestrictedHba(false),
                Action::StopPostgres,
                Action::Start {
                    config: ConfigSet { parameters: params, hba, recovery: RecoveryOptions::none() },
                    temporary: true,
                },
                Action::WaitReady { timeout: db_wait },
            ]);
            capture(&mut actions);
            actions.push(Action::StopPostgres);
        }
        DbInitMode::Pitr => {
            let pitr = db.spec.pitr_config.clone().unwrap_or_default();
            let fc = db.spec.follow_config.as_ref();
            let external = fc.and_then(|f| f.follow_type.clone()) == Some(FollowType::External);
            let archive = pitr.archive_recovery_settings.as_ref();
            let recovery = if external {
                RecoveryOptions::new(RecoveryMode::Standby, fc.and_then(|f| f.standby_settings.as_ref()), archive, None)
            } else {
                RecoveryOptions::new(RecoveryMode::Recovery, None, archive, pitr.recovery_target_settings.as_ref())
            };
            let sync_wait = Some(spec.sync_timeout()).filter(|d| !d.is_zero());
            let recovery_mode = recovery.mode;
            actions.extend([
                Action::SaveDbState(initializing),
                Action::SetRestrictedHba(false),
                Action::StopPostgres,
                Action::RemovePgdata,
                Action::RestoreBackup { command: pitr.data_restore_command },
                Action::Start { config: ConfigSet { parameters: params, hba, recovery }, temporary: true },
            ]);
            if recovery_mode == RecoveryMode::Recovery {
                actions.push(Action::WaitRecoveryEnd { timeout: sync_wait });
            }
            actions.push(Action::WaitReady { timeout: sync_wait });
            capture(&mut actions);
            actions.push(Action::StopPostgres);
            actions.push(initialized);
        }
        DbInitMode::Resync => {
            let Some(fc) = db.spec.follow_config.as_ref() else {
                return Plan::end(actions, Outcome::Failed("resync of a DB without followConfig".into()));
            };
            let Some(followed) = cd.dbs.get(&fc.db_uid) else {
                return Plan::end(
                    actions,
                    Outcome::Failed(format!("followed db {:?} is not in cluster data", fc.db_uid)),
                );
            };
            let recovery = match standby_recovery(s, cd, db) {
                Ok(r) => r,
                Err(e) => return Plan::end(actions, Outcome::Failed(e)),
            };
            let master = cd.master_db();
            // With trust auth pg_rewind needs no password (stolon silently disabled it: reference 10 item 19).
            let can_rewind = db.spec.use_pgrewind
                && !crate::ops::reinit::reclone(cd, &db.uid)
                && (s.su_auth == AuthMethod::Trust || s.su_password.as_deref().is_some_and(|p| !p.is_empty()))
                && obs.initialized
                && master.is_some()
                && obs.system_id.as_deref().is_some_and(|id| !id.is_empty() && id == followed.status.system_id);
            let rewind_from =
                master.filter(|_| can_rewind).map(|m| (m.status.listen_address.clone(), m.status.port.clone()));
            actions.extend([Action::SaveDbState(initializing), Action::SetRestrictedHba(false), Action::StopPostgres]);
            actions.push(Action::Resync(Box::new(ResyncPlan {
                followed_db: followed.uid.clone(),
                followed_address: (followed.status.listen_address.clone(), followed.status.port.clone()),
                rewind_from,
                slot: stolon_name(&db.uid),
                config: ConfigSet { parameters: params, hba, recovery },
            })));
            actions.push(initialized);
        }
        DbInitMode::None | DbInitMode::Unknown(_) => {
            return Plan::end(actions, Outcome::Failed(m::INIT_MODE_NONE_WITH_OTHER_DB.into()));
        }
    }
    Plan::end(actions, Outcome::Replan)
}
