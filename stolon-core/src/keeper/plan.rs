//! The pure planner: from the assigned DB (cluster data), the local state files and the observed instance
//! to the ordered actions of one state-machine pass (reference 5.2). No IO here.

use std::collections::BTreeSet;

use super::db_config::{db_hba, db_parameters, standby_recovery, wanted_slots};
use super::fast_sync::{repoint_by_reload, sync_waiters_to_release};
use super::messages as m;
use crate::cluster::{ClusterData, Db, DbLocalState, DbRole, DbStatus, PgParameters};
use crate::ops::keeper::Directive;
use crate::postgres::config::{RecoveryMode, RecoveryOptions};
use crate::postgres::hba::AuthMethod;

mod init;
use init::plan_init;

/// The keeper's fixed settings (from its flags) that decisions depend on.
#[derive(Clone, PartialEq, Eq)]
pub struct KeeperSettings {
    /// Keeper UID.
    pub uid: String,
    /// Superuser name.
    pub su_user: String,
    /// Superuser auth method.
    pub su_auth: AuthMethod,
    /// Superuser password (`None` with trust).
    pub su_password: Option<String>,
    /// Replication user name.
    pub repl_user: String,
    /// Replication auth method.
    pub repl_auth: AuthMethod,
    /// Replication password (`None` with trust).
    pub repl_password: Option<String>,
    /// `--pg-listen-address`.
    pub listen_address: String,
    /// `--pg-port`.
    pub port: u16,
    /// PostgreSQL binary major version, if known.
    pub pg_major: Option<u32>,
}

impl std::fmt::Debug for KeeperSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeeperSettings")
            .field("uid", &self.uid)
            .field("su_user", &self.su_user)
            .field("repl_user", &self.repl_user)
            .field("listen_address", &self.listen_address)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// What the keeper sees of its instance before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// PGDATA holds an initialised data directory.
    pub initialized: bool,
    /// Role the data directory starts in.
    pub local_role: Option<DbRole>,
    /// A postmaster runs on PGDATA.
    pub running: bool,
    /// System identifier from `pg_control` (when initialised).
    pub system_id: Option<String>,
    /// DB UIDs that pg_stat_replication reports in sync (when running and queried).
    pub in_sync_standbys: Option<Vec<String>>,
    /// Stopped after a clean shutdown as a primary (`pg_control` state `shut down`): such an instance can
    /// start as a standby of a master promoted after it (a switchover) without pg_rewind.
    pub clean_shutdown: bool,
}

/// How the running instance was last configured by this keeper process (reset when postgres stops).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Parameters written at the last start or reload.
    pub parameters: Option<PgParameters>,
    /// pg_hba lines written at the last start or reload.
    pub hba: Option<Vec<String>>,
    /// Recovery options postgres was last started with.
    pub recovery: Option<RecoveryOptions>,
    /// Restart protection in force (client hba rules withheld until sync standbys are in sync).
    pub restricted_hba: bool,
}

/// Everything one pass depends on.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// Flags.
    pub settings: &'a KeeperSettings,
    /// This process's incarnation.
    pub boot_uuid: &'a str,
    /// The cluster data just read.
    pub cd: &'a ClusterData,
    /// `dbstate`.
    pub local: &'a DbLocalState,
    /// The instance.
    pub observed: &'a Observed,
    /// The last configuration applied.
    pub applied: &'a Applied,
    /// True when this pass directly follows an initialization in the same pass (skips the interrupted-init
    /// check, which concerns previous passes only).
    pub after_init: bool,
    /// The current time (operations: pause expiry).
    pub now: crate::time::Timestamp,
}

/// A configuration to write before starting or reloading.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigSet {
    /// Parameters.
    pub parameters: PgParameters,
    /// pg_hba lines.
    pub hba: Vec<String>,
    /// Recovery mode and parameters.
    pub recovery: RecoveryOptions,
}

impl std::fmt::Debug for ConfigSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // primary_conninfo may carry a password: show only the names.
        f.debug_struct("ConfigSet")
            .field("parameters", &self.parameters.keys().collect::<Vec<_>>())
            .field("hba", &self.hba)
            .field("recovery_mode", &self.recovery.mode)
            .field("recovery", &self.recovery.parameters.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a resync copies from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncPlan {
    /// Followed DB UID (its status is used to detect a timeline fork after pg_rewind).
    pub followed_db: String,
    /// Followed DB's advertised address and port (base backup source).
    pub followed_address: (String, String),
    /// Current master's advertised address and port when pg_rewind is to be tried first.
    pub rewind_from: Option<(String, String)>,
    /// Slot on the source.
    pub slot: String,
    /// Configuration to start the resynced standby with.
    pub config: ConfigSet,
}

/// One step of a pass, executed in order; the first failure aborts the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fast-stop postgres if it runs.
    StopPostgres,
    /// Delete PGDATA (postgres is stopped before).
    RemovePgdata,
    /// Persist `dbstate`.
    SaveDbState(DbLocalState),
    /// Set or clear the restart-protection flag.
    SetRestrictedHba(bool),
    /// initdb with the DB's newConfig.
    Initdb {
        /// `--locale`.
        locale: String,
        /// `--encoding`.
        encoding: String,
        /// `--data-checksums`.
        data_checksums: bool,
    },
    /// Create PGDATA and run the point-in-time-recovery restore command (`%d` = PGDATA).
    RestoreBackup {
        /// The shell command.
        command: String,
    },
    /// Write the configuration (`temporary` = the temporary file including postgresql.conf) and start.
    Start {
        /// What to write.
        config: ConfigSet,
        /// Use the temporary configuration file (initialization).
        temporary: bool,
    },
    /// Wait until `recovery.signal` disappears (archive recovery ended); `None` = forever.
    WaitRecoveryEnd {
        /// Bound of the wait.
        timeout: Option<std::time::Duration>,
    },
    /// Wait until postgres accepts connections; `None` = forever.
    WaitReady {
        /// Bound of the wait.
        timeout: Option<std::time::Duration>,
    },
    /// Read the file parameters into `dbstate.InitPGParameters`.
    CaptureInitParameters,
    /// Create the superuser password and the replication role.
    CreateRoles,
    /// pg_rewind (if planned) or pg_basebackup, then start as a standby; falls back to a base backup when the
    /// rewound instance does not become ready or is on another timeline branch.
    Resync(Box<ResyncPlan>),
    /// `pg_ctl promote -W` and a wait for the end of recovery, then rewrite the configuration without recovery.
    Promote {
        /// The configuration of a primary.
        config: ConfigSet,
    },
    /// `CHECKPOINT` after a promotion (for a later pg_rewind of the old master); failures are only logged.
    CheckpointAfterPromotion,
    /// Fast stop then start with a new configuration.
    Restart {
        /// What to write.
        config: ConfigSet,
    },
    /// Rewrite the configuration with new upstream settings and reload: a running standby follows another
    /// DB without a restart (see [`super::fast_sync::repoint_by_reload`]).
    Repoint {
        /// What to write.
        config: ConfigSet,
    },
    /// Make the listed synchronous standbys reply once their WAL senders applied a reloaded
    /// `synchronous_standby_names`, releasing the commits they already flushed (see [`super::fast_sync`]).
    ReleaseSyncWaiters {
        /// Application names of the synchronous standbys.
        standbys: Vec<String>,
    },
    /// Make the stolon slots exactly `wanted` (others with the `stolon_` prefix dropped).
    RefreshSlots {
        /// Wanted slot names.
        wanted: BTreeSet<String>,
        /// Whether a failure aborts the pass (master) or is only logged (standby).
        must_succeed: bool,
    },
    /// Rewrite the configuration files and `pg_ctl reload`.
    Reload {
        /// What to write.
        config: ConfigSet,
    },
    /// Ask postgres for a pending restart; restart when `automatic`.
    CheckPendingRestart {
        /// `automaticPgRestart`.
        automatic: bool,
        /// The configuration to restart with.
        config: ConfigSet,
    },
    /// Clear `dbstate.Initializing`: the data of the new DB is complete.
    MarkInitialized,
    /// Record the applied DB generation (the sentinel's convergence signal).
    SaveGeneration(i64),
}

/// How a pass ends once its actions succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Converged to the DB generation.
    Converged,
    /// Nothing more can be done now (reason for the logs).
    Waiting(String),
    /// The instance was (re)initialised: observe again and plan the rest of the pass.
    Replan,
    /// The pass cannot proceed (reason logged as an error; convergence not recorded).
    Failed(String),
}

/// The plan of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Actions in order.
    pub actions: Vec<Action>,
    /// What happens after they all succeeded.
    pub outcome: Outcome,
    /// Role cd assigns (for metrics).
    pub target_role: Option<DbRole>,
    /// Role of the data directory (for metrics).
    pub local_role: Option<DbRole>,
}

impl Plan {
    fn end(actions: Vec<Action>, outcome: Outcome) -> Plan {
        Plan { actions, outcome, target_role: None, local_role: None }
    }
}

/// Whether `local` (a rewound instance) sits on a different timeline branch than `followed`: ahead of it,
/// or behind it with WAL past the point where `followed` switched away from the local timeline.
pub fn different_timeline_branch(followed: &DbStatus, local_timeline: u64, local_xlog_pos: u64) -> bool {
    if local_timeline > followed.timeline_id {
        return true;
    }
    if local_timeline == followed.timeline_id {
        return false;
    }
    followed
        .timelines_history
        .iter()
        .find(|h| h.timeline_id == local_timeline)
        .is_some_and(|h| local_xlog_pos > h.switch_point)
}

fn sorted_set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

/// Plans one state-machine pass.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let PlanInput { settings: s, cd, observed: obs, applied, .. } = *input;
    let obs: &Observed = obs;
    let Some(keeper) = cd.keepers.get(&s.uid) else {
        return Plan::end(vec![], Outcome::Waiting(m::KEEPER_NOT_IN_CLUSTER_DATA.into()));
    };
    let Some(db) = cd.db_of_keeper(&s.uid) else {
        return Plan::end(vec![Action::StopPostgres], Outcome::Waiting(m::NO_DB_ASSIGNED.into()));
    };
    if keeper.status.boot_uuid != input.boot_uuid {
        return Plan::end(vec![Action::StopPostgres], Outcome::Waiting(m::BOOT_UUID_DIFFERS.into()));
    }
    if let Some(reason) = super::major::follow_refusal(s, cd, db) {
        // Whatever runs here is not the standby the cluster wants (an old master is fenced).
        return Plan::end(vec![Action::StopPostgres], Outcome::Failed(reason));
    }
    match crate::ops::keeper::directive(cd, &db.uid, input.now) {
        Directive::Hold => {
            return Plan::end(vec![], Outcome::Waiting("cluster paused: leaving postgres as it is".into()));
        }
        Directive::Fence => {
            return Plan::end(
                vec![Action::StopPostgres],
                Outcome::Waiting("switchover: this master is fenced, postgres shut down".into()),
            );
        }
        Directive::None | Directive::Report => {}
    }
    let spec = &cd.cluster.spec;
    let mut actions = Vec::new();
    let mut local = input.local.clone();
    let mut wiped = Observed::default();
    let mut obs = obs;
    if local.initializing && !input.after_init {
        // A previous initialization or resync did not finish: its data cannot be trusted.
        actions.push(Action::StopPostgres);
        actions.push(Action::RemovePgdata);
        local = DbLocalState::default();
        actions.push(Action::SaveDbState(local.clone()));
        wiped.local_role = Some(DbRole::Undefined);
        obs = &wiped;
    }
    if local.uid != db.uid {
        return plan_init(input, obs, db, actions);
    }
    let target_role = db.spec.role.clone();
    let local_role = obs.local_role.clone().unwrap_or(DbRole::Undefined);
    let mut plan = Plan {
        actions,
        outcome: Outcome::Converged,
        target_role: target_role.clone(),
        local_role: Some(local_role.clone()),
    };
    let actions = &mut plan.actions;
    let mut restricted = applied.restricted_hba;
    let mut running = obs.running;
    let mut started_with: Option<ConfigSet> = None;
    let params = db_parameters(s, db, &local, true);
    let db_wait = Some(spec.db_wait_ready_timeout()).filter(|d| !d.is_zero());
    match target_role {
        Some(DbRole::Master) => {
            if local_role == DbRole::Undefined {
                plan.outcome = Outcome::Failed(m::NOT_INITIALIZED_BUT_MASTER.into());
                return plan;
            }
            if !running {
                if db.spec.synchronous_replication && !restricted {
                    restricted = true;
                    actions.push(Action::SetRestrictedHba(true));
                }
                let recovery = if local_role == DbRole::Standby {
                    // Start as the standby it is, then promote (a new timeline); never bypass promotion.
                    applied
                        .recovery
                        .clone()
                        .filter(|r| r.mode == RecoveryMode::Standby)
                        .unwrap_or_else(|| RecoveryOptions::new(RecoveryMode::Standby, None, None, None))
                } else {
                    RecoveryOptions::none()
                };
                let config = ConfigSet { parameters: params.clone(), hba: db_hba(s, cd, db, restricted), recovery };
                actions.push(Action::Start { config: config.clone(), temporary: false });
                actions.push(Action::WaitReady { timeout: db_wait });
                started_with = Some(config);
                running = true;
            }
            if local_role == DbRole::Standby && cd.cluster.status.master != db.uid {
                // An election that a later one superseded (this DB keeps the master role, as old masters do):
                // promoting now would make a second writable primary. Only the cluster's master is promoted.
                plan.outcome = Outcome::Waiting(format!(
                    "assigned the master role but the cluster's master is {:?}: not promoting",
                    cd.cluster.status.master
                ));
                return plan;
            }
            if local_role == DbRole::Standby {
                let config = ConfigSet {
                    parameters: params.clone(),
                    hba: db_hba(s, cd, db, restricted),
                    recovery: RecoveryOptions::none(),
                };
                actions.push(Action::Promote { config: config.clone() });
                started_with = Some(config);
            }
            actions.push(Action::RefreshSlots { wanted: wanted_slots(db), must_succeed: true });
        }
        Some(DbRole::Standby) => {
            let recovery = match standby_recovery(s, cd, db) {
                Ok(r) => r,
                Err(e) => {
                    plan.outcome = Outcome::Failed(e);
                    return plan;
                }
            };
            match local_role {
                DbRole::Master if !running && obs.clean_shutdown => {
                    // A switchover's old master: its WAL ends with its shutdown checkpoint, which the new
                    // master received before its promotion, so it follows the new timeline as it is.
                    let config = ConfigSet { parameters: params.clone(), hba: db_hba(s, cd, db, false), recovery };
                    actions.push(Action::Start { config: config.clone(), temporary: false });
                    actions.push(Action::WaitReady { timeout: db_wait });
                    started_with = Some(config);
                    running = true;
                    if restricted {
                        actions.push(Action::SetRestrictedHba(false));
                        restricted = false;
                    }
                }
                DbRole::Master => {
                    plan.outcome = Outcome::Failed(m::MASTER_TO_STANDBY.into());
                    return plan;
                }
                DbRole::Standby => {
                    let config = ConfigSet {
                        parameters: params.clone(),
                        hba: db_hba(s, cd, db, false),
                        recovery: recovery.clone(),
                    };
                    if !running {
                        // Started directly with the full recovery options (stolon restarted once more to add
                        // archive settings: reference 10 item 21).
                        actions.push(Action::Start { config: config.clone(), temporary: false });
                        actions.push(Action::WaitReady { timeout: db_wait });
                        started_with = Some(config);
                        running = true;
                    } else if applied.recovery.as_ref() != Some(&recovery) {
                        let reload =
                            applied.recovery.as_ref().is_some_and(|r| repoint_by_reload(s.pg_major, r, &recovery));
                        if reload {
                            actions.push(Action::Repoint { config: config.clone() });
                        } else {
                            actions.push(Action::Restart { config: config.clone() });
                        }
                        started_with = Some(config);
                    }
                    if restricted {
                        actions.push(Action::SetRestrictedHba(false));
                        restricted = false;
                    }
                    // A standby has no followers, except the head of a standby cluster, whose cascading
                    // standbys stream through its slots (stolon refreshes standbys' slots from followers too).
                    actions.push(Action::RefreshSlots { wanted: wanted_slots(db), must_succeed: false });
                }
                _ => {
                    plan.outcome = Outcome::Waiting(m::NOT_INITIALIZED.into());
                    return plan;
                }
            }
        }
        other => {
            plan.outcome = Outcome::Failed(format!("unsupported target role {other:?}"));
            return plan;
        }
    }
    // Step 10: parameters and restart protection.
    if restricted && target_role_is_master(db) {
        let want: BTreeSet<String> = sorted_set(db.spec.synchronous_standbys());
        let lift = !db.spec.synchronous_replication
            || obs.in_sync_standbys.as_ref().is_some_and(|in_sync| sorted_set(in_sync) == want);
        if lift {
            actions.push(Action::SetRestrictedHba(false));
            restricted = false;
        }
    }
    let recovery_now =
        started_with.as_ref().map(|c| c.recovery.clone()).or_else(|| applied.recovery.clone()).unwrap_or_default();
    let config = ConfigSet { parameters: params, hba: db_hba(s, cd, db, restricted), recovery: recovery_now };
    let (applied_params, applied_hba) = match &started_with {
        Some(c) => (Some(&c.parameters), Some(&c.hba)),
        None => (applied.parameters.as_ref(), applied.hba.as_ref()),
    };
    let restart_for = crate::ops::restart::keeper_token(cd, &db.uid).filter(|t| *t != local.restarted_for);
    if let Some(token) = restart_for {
        // A rolling restart's turn (an instance started in this pass counts as restarted; one repointed by
        // a reload does not).
        let repointed = actions.iter().any(|a| matches!(a, Action::Repoint { .. }));
        if running && (started_with.is_none() || repointed) {
            actions.push(Action::Restart { config: config.clone() });
        }
        actions.push(Action::SaveDbState(DbLocalState { restarted_for: token.to_string(), ..local.clone() }));
    } else if running && (applied_params != Some(&config.parameters) || applied_hba != Some(&config.hba)) {
        actions.push(Action::Reload { config: config.clone() });
        // A master running since before this pass may have commits waiting for standbys it now lists.
        let release = (started_with.is_none() && target_role_is_master(db))
            .then(|| sync_waiters_to_release(applied_params, &config.parameters))
            .flatten();
        if let Some(standbys) = release {
            actions.push(Action::ReleaseSyncWaiters { standbys });
        }
    }
    // Step 11 and 12. A promotion is reported converged before the slower checks: the sentinel routes the
    // proxies to this new master on that report.
    let promoted = actions.iter().any(|a| matches!(a, Action::Promote { .. }));
    if promoted {
        actions.push(Action::SaveGeneration(db.generation));
    }
    if running {
        actions.push(Action::CheckPendingRestart { automatic: spec.automatic_pg_restart(), config });
    }
    if promoted {
        actions.push(Action::CheckpointAfterPromotion);
    } else {
        actions.push(Action::SaveGeneration(db.generation));
    }
    plan
}

fn target_role_is_master(db: &Db) -> bool {
    db.spec.role == Some(DbRole::Master)
}
