//! The operator-visible events of one state-machine pass, derived from its plan (pure): what stolon's keeper
//! logs at info on every pass (requested role, promotion, parameter and pg_hba reloads, restart protection,
//! initialization), in stolon's words and order. The keeper logs them before it executes the plan.

use super::messages as m;
use super::plan::{Action, ConfigSet, Outcome, Plan, PlanInput};
use crate::cluster::DbRole;

/// The messages of the pass that `plan` describes, in order.
pub fn pass_events(input: &PlanInput<'_>, plan: &Plan) -> Vec<&'static str> {
    let mut out = Vec::new();
    let has = |f: fn(&Action) -> bool| plan.actions.iter().any(f);
    if input.local.initializing && !input.after_init {
        out.push(m::DB_FAILED_TO_INITIALIZE);
    }
    let init = if has(|a| matches!(a, Action::Initdb { .. })) {
        Some(m::INITIALIZING)
    } else if has(|a| matches!(a, Action::RestoreBackup { .. })) {
        Some(m::RESTORING)
    } else if has(|a| matches!(a, Action::Resync(_))) {
        Some(m::RESYNCING)
    } else {
        None
    };
    if let Some(init) = init {
        out.extend([m::DB_UID_DIFFERS, init]);
        return out;
    }
    if matches!(plan.outcome, Outcome::Replan) {
        out.push(m::DB_UID_DIFFERS);
        return out;
    }
    match (&plan.target_role, &plan.local_role) {
        (Some(DbRole::Master), local) => {
            out.push(m::ROLE_MASTER);
            if has(|a| matches!(a, Action::SetRestrictedHba(true))) {
                out.push(m::CLIENTS_BLOCKED_INSTANCE_WAS_DOWN);
            }
            if has(|a| matches!(a, Action::Promote { .. })) {
                out.push(m::PROMOTING);
            } else if local == &Some(DbRole::Master) {
                out.push(m::ALREADY_MASTER);
            }
        }
        (Some(DbRole::Standby), local) => {
            out.push(m::ROLE_STANDBY);
            if local == &Some(DbRole::Standby) {
                out.push(m::ALREADY_STANDBY);
                if has(|a| matches!(a, Action::Restart { .. } | Action::Repoint { .. })) {
                    out.push(m::RECOVERY_PARAMETERS_CHANGED);
                }
            }
        }
        _ => {}
    }
    // Parameters and pg_hba of a running instance, checked at the end of every pass.
    if !has(|a| matches!(a, Action::CheckPendingRestart { .. })) {
        return out;
    }
    let mut running: Option<&ConfigSet> = None;
    let mut reloaded: Option<&ConfigSet> = None;
    let mut restricted = input.applied.restricted_hba;
    for a in &plan.actions {
        match a {
            Action::Start { config, .. }
            | Action::Restart { config }
            | Action::Repoint { config }
            | Action::Promote { config } => running = Some(config),
            Action::Reload { config } => reloaded = Some(config),
            Action::SetRestrictedHba(r) => restricted = *r,
            _ => {}
        }
    }
    let before_parameters = running.map(|c| &c.parameters).or(input.applied.parameters.as_ref());
    let before_hba = running.map(|c| &c.hba).or(input.applied.hba.as_ref());
    if let Some(new) = reloaded {
        let names = |p: Option<&crate::cluster::PgParameters>| {
            p.and_then(|p| p.get("synchronous_standby_names").cloned()).unwrap_or_default()
        };
        if names(before_parameters) != names(Some(&new.parameters)) {
            out.push(m::SYNC_STANDBY_NAMES_CHANGED);
        }
    }
    let params_changed = reloaded.is_some_and(|new| before_parameters != Some(&new.parameters));
    out.push(if params_changed { m::PARAMETERS_CHANGED } else { m::PARAMETERS_NOT_CHANGED });
    if restricted && plan.target_role == Some(DbRole::Master) {
        out.push(m::CLIENTS_BLOCKED_UNTIL_SYNCED);
    }
    let hba_changed = reloaded.is_some_and(|new| before_hba != Some(&new.hba));
    out.push(if hba_changed { m::HBA_CHANGED } else { m::HBA_NOT_CHANGED });
    out
}
