//! Executes a [`Plan`] on the local instance, keeping track of what was applied.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Mutex;

use super::db_config::slot_changes;
use super::divergence::{Divergence, WalPoint, divergence, fork_point};
use super::messages;
use super::metrics::KeeperMetrics;
use super::plan::{Action, Applied, ConfigSet, KeeperSettings, Plan, ResyncPlan, different_timeline_branch};
use super::state::StateFiles;
use crate::cluster::{ClusterData, DbLocalState, PostgresTimelineHistory};
use crate::postgres::config::{ConfTarget, RECOVERY_SIGNAL, neutralise_auto_conf, write_config_files};
use crate::postgres::control_data::{control_data, wal_record_at};
use crate::postgres::observe::filter_managed;
use crate::postgres::process::{InitdbOptions, POLL_INTERVAL};
use crate::postgres::query::{LocalConn, RolesSpec, remote_checkpoint};
use crate::postgres::replication::{identify_system, identify_system_at};
use crate::postgres::resync::{ResyncSource, base_backup, rewind};
use crate::postgres::sync_release::release_sync_waiters;
use crate::postgres::{AuthMethod, PgError, PgProcess, PgResult, StopMode};

/// How long a promotion may take (`pg_ctl promote -w` waits as long).
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs plans; owns the knowledge of what the running instance was configured with.
pub struct Executor {
    /// Failsafe mode's confirmations: a promotion waits out the last one given.
    pub failsafe: Arc<crate::failsafe::FailsafeKeeper>,
    /// The instance.
    pub pg: Arc<PgProcess>,
    /// Superuser connection to it.
    pub conn: LocalConn,
    /// Flags.
    pub settings: KeeperSettings,
    /// Local state files.
    pub states: StateFiles,
    /// The current `dbstate`, shared with the state reporter.
    pub db_state: Arc<Mutex<DbLocalState>>,
    /// What postgres runs with.
    pub applied: Applied,
    /// Gauges.
    pub metrics: Arc<KeeperMetrics>,
    /// Notified when a generation is saved: the state reporter observes and publishes at once.
    pub progress: Arc<tokio::sync::Notify>,
}

impl Executor {
    /// Executes every action of `plan` in order; the first failure stops and is returned.
    pub async fn execute(&mut self, plan: &Plan, cd: &ClusterData) -> PgResult<()> {
        // A busy port stops the plan before it touches PGDATA (no initdb, no removal of a half-initialised one).
        if plan.actions.iter().any(|a| matches!(a, Action::Start { .. })) && !self.pg.is_running().await? {
            check_port_free(&self.settings.listen_address, self.settings.port)?;
        }
        for action in &plan.actions {
            tracing::debug!(action = ?action, "executing");
            if let Err(e) = self.step(action, cd).await {
                if let Some(message) = messages::failure_of(action) {
                    tracing::error!(error = %e, "{message}");
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn step(&mut self, action: &Action, cd: &ClusterData) -> PgResult<()> {
        match action {
            Action::StopPostgres => self.stop().await,
            Action::RemovePgdata => self.pg.remove_pgdata().await,
            Action::SaveDbState(s) => self.save_db_state(s.clone()).await,
            Action::SetRestrictedHba(b) => {
                self.applied.restricted_hba = *b;
                Ok(())
            }
            Action::Initdb { locale, encoding, data_checksums } => {
                let s = &self.settings;
                let opts = InitdbOptions {
                    su_user: s.su_user.clone(),
                    su_password: s.su_password.clone().filter(|_| s.su_auth == AuthMethod::Md5),
                    locale: locale.clone(),
                    encoding: encoding.clone(),
                    data_checksums: *data_checksums,
                    major: s.pg_major,
                };
                self.pg.initdb(&opts).await
            }
            Action::RestoreBackup { command } => self.restore_backup(command).await,
            Action::Start { config, temporary } => self.start(config, *temporary).await,
            Action::WaitRecoveryEnd { timeout } => self.wait_recovery_end(*timeout).await,
            Action::WaitReady { timeout } => self.conn.wait_ready(*timeout).await,
            Action::CaptureInitParameters => {
                let params = filter_managed(self.conn.file_settings().await?);
                let mut s = self.db_state.lock().await.clone();
                s.init_pg_parameters = Some(params);
                self.save_db_state(s).await
            }
            Action::CreateRoles => {
                let s = &self.settings;
                let roles = RolesSpec {
                    su_user: s.su_user.clone(),
                    su_password: s.su_password.clone().filter(|_| s.su_auth == AuthMethod::Md5),
                    repl_user: s.repl_user.clone(),
                    repl_password: s.repl_password.clone().filter(|_| s.repl_auth == AuthMethod::Md5),
                };
                tracing::info!("{}", messages::SETTING_ROLES);
                self.conn.create_roles(&roles).await
            }
            Action::Resync(r) => self.resync(r, cd).await,
            Action::Promote { config } => {
                let wait = self.failsafe.hold_for_promotion(cd);
                if !wait.is_zero() {
                    tracing::info!(wait = ?wait, "failsafe mode: waiting out the last confirmation given to the old master before promoting");
                    tokio::time::sleep(wait).await;
                }
                let promoted = async {
                    self.pg.request_promotion().await?;
                    self.wait_promoted().await
                }
                .await;
                self.failsafe.release();
                promoted?;
                self.applied.recovery = Some(config.recovery.clone());
                self.write_and_reload(config).await
            }
            Action::CheckpointAfterPromotion => {
                // pg_rewind of an old master reads the new timeline from this primary's control file.
                if let Err(e) = self.conn.checkpoint().await {
                    tracing::warn!(error = %e, "checkpoint after promotion failed");
                }
                Ok(())
            }
            Action::Restart { config } => {
                tracing::debug!("restarting postgres with new recovery options");
                self.stop().await?;
                self.start(config, false).await?;
                self.wait_ready_cd(cd).await
            }
            Action::Repoint { config } => {
                tracing::info!("following a new upstream: reloading postgres");
                self.applied.recovery = Some(config.recovery.clone());
                self.write_and_reload(config).await
            }
            Action::ReleaseSyncWaiters { standbys } => {
                match release_sync_waiters(&self.conn, standbys).await {
                    Ok(true) => tracing::debug!(standbys = ?standbys, "asked the synchronous standbys for a reply"),
                    Ok(false) => tracing::info!(
                        standbys = ?standbys,
                        "synchronous standbys not all reloaded in time; asked them for a reply anyway"
                    ),
                    // Not fatal: the commits are then released by the standbys' next reply.
                    Err(e) => tracing::warn!(error = %e, "cannot ask the synchronous standbys for a reply"),
                }
                Ok(())
            }
            Action::RefreshSlots { wanted, must_succeed } => match self.refresh_slots(wanted).await {
                Err(e) if !must_succeed => {
                    tracing::warn!(error = %e, "{}", messages::UPDATE_SLOTS_FAILED);
                    Ok(())
                }
                r => r,
            },
            Action::Reload { config } => {
                self.metrics.needs_reload.store(true, Ordering::Relaxed);
                tracing::debug!("configuration changed: reloading postgres");
                self.write_and_reload(config).await?;
                self.metrics.needs_reload.store(false, Ordering::Relaxed);
                Ok(())
            }
            Action::CheckPendingRestart { automatic, config } => {
                let pending = self.conn.pending_restart().await?;
                self.metrics.needs_restart.store(pending, Ordering::Relaxed);
                if pending && *automatic {
                    tracing::info!("{}", messages::RESTARTING);
                    self.stop().await?;
                    self.start(config, false).await?;
                    self.wait_ready_cd(cd).await?;
                    self.metrics.needs_restart.store(false, Ordering::Relaxed);
                } else if pending {
                    tracing::warn!("a parameter change needs a postgres restart (automaticPgRestart is off)");
                }
                Ok(())
            }
            Action::MarkInitialized => {
                let mut s = self.db_state.lock().await.clone();
                s.initializing = false;
                self.save_db_state(s).await
            }
            Action::SaveGeneration(g) => {
                let mut s = self.db_state.lock().await.clone();
                let changed = s.generation != *g;
                s.generation = *g;
                s.initializing = false;
                self.save_db_state(s).await?;
                if changed {
                    self.progress.notify_one();
                }
                Ok(())
            }
        }
    }

    async fn save_db_state(&self, s: DbLocalState) -> PgResult<()> {
        self.states.save_db_state(&s)?;
        *self.db_state.lock().await = s;
        Ok(())
    }

    /// Fast stop; forgets the applied configuration (restart protection is kept).
    pub async fn stop(&mut self) -> PgResult<()> {
        self.pg.stop(StopMode::Fast).await?;
        self.applied = Applied { restricted_hba: self.applied.restricted_hba, ..Applied::default() };
        Ok(())
    }

    /// Waits until postgres left recovery after a promotion request (polled every 10 ms: the write gap of a
    /// switchover includes this wait).
    async fn wait_promoted(&self) -> PgResult<()> {
        let deadline = tokio::time::Instant::now() + PROMOTE_TIMEOUT;
        loop {
            match self.conn.in_recovery().await {
                Ok(false) => return Ok(()),
                Ok(true) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Ok(true) => return Err(PgError::Timeout("postgres still in recovery after the promotion".into())),
                Err(e) => return Err(e),
            }
        }
    }

    async fn start(&mut self, config: &ConfigSet, temporary: bool) -> PgResult<()> {
        let pgdata = self.pg.pgdata();
        neutralise_auto_conf(pgdata)?;
        let target = if temporary { ConfTarget::Temporary } else { ConfTarget::Main };
        let path =
            write_config_files(pgdata, target, &config.parameters, &config.recovery, &config.hba, self.pg.os_user())?;
        let (address, port) = (&self.settings.listen_address, self.settings.port);
        check_port_free(address, port)?;
        self.pg.start(temporary.then_some(path.as_path())).await.map_err(|e| match e {
            PgError::Command { ref program, ref output, .. }
                if program == "postgres"
                    && (output.contains("could not bind") || output.contains("already in use")) =>
            {
                PgError::PortInUse { address: address.clone(), port }
            }
            e => e,
        })?;
        self.applied.parameters = Some(config.parameters.clone());
        self.applied.hba = Some(config.hba.clone());
        self.applied.recovery = Some(config.recovery.clone());
        Ok(())
    }

    async fn write_and_reload(&mut self, config: &ConfigSet) -> PgResult<()> {
        let pgdata = self.pg.pgdata();
        neutralise_auto_conf(pgdata)?;
        // The recovery parameters postgres runs with stay in the file until a restart changes them.
        let recovery = self.applied.recovery.clone().unwrap_or_else(|| config.recovery.clone());
        write_config_files(pgdata, ConfTarget::Main, &config.parameters, &recovery, &config.hba, self.pg.os_user())?;
        self.pg.reload().await?;
        self.applied.parameters = Some(config.parameters.clone());
        self.applied.hba = Some(config.hba.clone());
        Ok(())
    }

    async fn wait_ready_cd(&self, cd: &ClusterData) -> PgResult<()> {
        let t = cd.cluster.spec.db_wait_ready_timeout();
        self.conn.wait_ready(Some(t).filter(|d| !d.is_zero())).await
    }

    async fn refresh_slots(&self, wanted: &std::collections::BTreeSet<String>) -> PgResult<()> {
        let existing = self.conn.replication_slots().await?;
        let (drop, create) = slot_changes(&existing, wanted);
        for s in drop {
            tracing::info!(slot = %s, "{}", messages::DROPPING_SLOT);
            if let Err(e) = self.conn.drop_slot(&s).await {
                tracing::error!(slot = %s, err = %e, "{}", messages::DROP_SLOT_FAILED);
            }
        }
        for s in create {
            tracing::info!(slot = %s, "{}", messages::CREATING_SLOT);
            self.conn.create_slot(&s).await?;
        }
        Ok(())
    }

    async fn restore_backup(&self, command: &str) -> PgResult<()> {
        self.pg.create_pgdata()?;
        let expanded = expand_restore_command(command, &self.pg.pgdata().to_string_lossy());
        let mut cmd = tokio::process::Command::new("/bin/sh");
        if let Some(u) = self.pg.os_user() {
            cmd.uid(u.uid).gid(u.gid);
        }
        cmd.arg("-c").arg(&expanded).current_dir("/").stdin(std::process::Stdio::null());
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let res = self.pg.run("dataRestoreCommand", cmd).await;
        if res.is_err() {
            let _ = std::fs::remove_dir_all(self.pg.pgdata());
        }
        res.map(|_| ())
    }

    async fn wait_recovery_end(&self, timeout: Option<Duration>) -> PgResult<()> {
        let signal = self.pg.pgdata().join(RECOVERY_SIGNAL);
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        while signal.exists() {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(PgError::Timeout("archive recovery did not end".into()));
            }
            tokio::time::sleep(POLL_INTERVAL.max(Duration::from_secs(1))).await;
        }
        Ok(())
    }

    async fn resync(&mut self, r: &ResyncPlan, cd: &ClusterData) -> PgResult<()> {
        let s = self.settings.clone();
        let app_name = r.slot.clone();
        let repl_source = ResyncSource {
            host: r.followed_address.0.clone(),
            port: r.followed_address.1.clone(),
            user: s.repl_user.clone(),
            password: s.repl_password.clone().filter(|_| s.repl_auth == AuthMethod::Md5),
        };
        let mut rewound = false;
        let followed_history =
            cd.dbs.get(&r.followed_db).map(|d| d.status.timelines_history.clone()).unwrap_or_default();
        if let Some((host, port)) = &r.rewind_from {
            let su = ResyncSource {
                host: host.clone(),
                port: port.clone(),
                user: s.su_user.clone(),
                password: s.su_password.clone(),
            };
            let port_num = port.parse::<u16>().unwrap_or(5432);
            if let Err(e) = remote_checkpoint(host, port_num, &su.user, su.password.as_deref(), self.conn.timeout).await
            {
                tracing::warn!(error = %e, "cannot checkpoint the pg_rewind source");
            }
            tracing::info!(master = %format!("{host}:{port}"), "{}", messages::SYNCING_WITH_PG_REWIND);
            match rewind(&self.pg, &su).await {
                Ok(outcome) => match self.divergence_from(&repl_source, &followed_history).await {
                    Some(d) => tracing::warn!(
                        divergence = %d,
                        rewind = ?outcome,
                        "rewound data diverged from the followed db: doing a base backup at once"
                    ),
                    None => rewound = true,
                },
                Err(e) => tracing::error!(error = %e, "{}", messages::PG_REWIND_FAILED),
            }
        }
        if !rewound {
            tracing::info!(followed_db = %r.followed_db, "{}", messages::SYNCING_FROM_FOLLOWED);
            base_backup(&self.pg, &repl_source, Some(&r.slot), &app_name).await?;
        }
        tracing::info!("{}", messages::SYNC_SUCCEEDED);
        self.start(&r.config, false).await?;
        if !rewound {
            return self.wait_ready_cd(cd).await;
        }
        let healthy = match self.wait_ready_cd(cd).await {
            Err(e) => {
                tracing::error!(error = %e, "{}", messages::REWOUND_NOT_ACCEPTING);
                false
            }
            Ok(()) => {
                let followed = cd.dbs.get(&r.followed_db).map(|d| d.status.clone()).unwrap_or_default();
                match identify_system(&self.pg, s.port, &s.repl_user, repl_source.password.as_deref()).await {
                    Ok(id) if different_timeline_branch(&followed, id.timeline, id.xlog_pos) => {
                        tracing::warn!("rewound standby is on another timeline branch: doing a base backup");
                        false
                    }
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot identify the rewound standby: doing a base backup");
                        false
                    }
                }
            }
        };
        if !healthy {
            self.stop().await?;
            tracing::info!(followed_db = %r.followed_db, "{}", messages::SYNCING_FROM_FOLLOWED);
            base_backup(&self.pg, &repl_source, Some(&r.slot), &app_name).await?;
            tracing::info!("{}", messages::SYNC_SUCCEEDED);
            self.start(&r.config, false).await?;
            self.wait_ready_cd(cd).await?;
        }
        Ok(())
    }
}

impl Executor {
    /// The divergence of the stopped local data from `source` (the followed DB, asked for its current
    /// position; `history`: its timeline history as it reported it); `None` when it can follow or when
    /// either side cannot be read (the later checks decide).
    async fn divergence_from(&self, source: &ResyncSource, history: &[PostgresTimelineHistory]) -> Option<Divergence> {
        let local = control_data(&self.pg)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "cannot read the rewound data's control file"))
            .ok()?;
        let remote = identify_system_at(&self.pg, &source.host, &source.port, &source.user, source.password.as_deref())
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "cannot identify the followed db"))
            .ok()?;
        let found = divergence(
            WalPoint { timeline: local.timeline, pos: local.wal_reached() },
            WalPoint { timeline: remote.timeline, pos: remote.xlog_pos },
        );
        if found.is_some() {
            return found;
        }
        // pg_rewind judged an earlier timeline by pg_control's end of WAL; WAL received but not replayed
        // lies beyond it and would be replayed at the start.
        let fork = fork_point(local.timeline, remote.timeline, history)?;
        let past = match wal_record_at(&self.pg, local.timeline, fork).await {
            Ok(past) => past,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the local WAL past the fork point");
                false
            }
        };
        past.then_some(Divergence::PastForkPoint { timeline: local.timeline, fork })
    }
}

/// Expands `%d` (PGDATA) and `%%` (`%`) in a restore command.
pub fn expand_restore_command(command: &str, pgdata: &str) -> String {
    let mut out = String::new();
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.peek() {
                Some('d') => {
                    chars.next();
                    out.push_str(pgdata);
                }
                Some('%') => {
                    chars.next();
                    out.push('%');
                }
                _ => out.push('%'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Fails with [`PgError::PortInUse`] when another process listens on one of PostgreSQL's listen addresses at
/// `port` (`*` is checked as `0.0.0.0`; host names are left to PostgreSQL). Racy on its own: the postmaster's
/// bind failure is mapped to the same error.
fn check_port_free(listen_addresses: &str, port: u16) -> PgResult<()> {
    for a in listen_addresses.split(',').map(str::trim) {
        let ip = if a == "*" { Ok(std::net::IpAddr::from([0, 0, 0, 0])) } else { a.parse::<std::net::IpAddr>() };
        let Ok(ip) = ip else { continue };
        if let Err(e) = std::net::TcpListener::bind((ip, port)) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                return Err(PgError::PortInUse { address: a.to_string(), port });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_command_expansion() {
        assert_eq!(expand_restore_command("tar -C %d -xf b.tar # 100%% %x", "/p"), "tar -C /p -xf b.tar # 100% %x");
    }

    #[test]
    fn busy_port_is_reported_with_address_and_port() -> Result<(), Box<dyn std::error::Error>> {
        let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = busy.local_addr()?.port();
        let err = check_port_free("localhost, 127.0.0.1", port).expect_err("port is busy");
        assert_eq!(
            err.to_string(),
            format!("PostgreSQL could not listen on 127.0.0.1:{port} (--pg-port): address already in use")
        );
        drop(busy);
        check_port_free("127.0.0.1", port)?;
        Ok(())
    }
}
