//! The keeper's loops (reference 5.1): the state machine (every sleepInterval and on every cluster data
//! change seen through a store watch, reading the watch-fed copy of the cluster data), the PostgresState
//! refresh (every sleepInterval/2) and the KeeperInfo publication (every sleepInterval, with a TTL).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, watch};

use super::api::server::{ApiListener, ApiState};
use super::api::view::open_ended_action;
use super::api::{KeeperLoop, KeeperView};
use super::events::pass_events;
use super::execute::Executor;
use super::fast_sync::{db_assignment, interruptible};
use super::messages;
use super::metrics::KeeperMetrics;
use super::observation::{Report, classify, report, republished};
use super::plan::{Applied, KeeperSettings, Observed, Outcome, PlanInput, plan};
use super::report::{ReportIdentity, keeper_info};
use super::state::StateFiles;
use crate::cluster::{ClusterData, DbLocalState, KeeperLocalState, ModelError, PostgresState, defaults};
use crate::postgres::observe::{
    Observation, ObserveContext, clean_shutdown_checkpoint, local_role, observe, pgdata_initialized,
    stolon_standby_uids,
};
use crate::postgres::query::LocalConn;
use crate::postgres::replication::control_system_id;
use crate::postgres::version::read_data_version;
use crate::postgres::{AuthMethod, OsUser, PgError, PgProcess, PgVersion, StopMode};
use crate::store::cluster_data_view::ClusterDataView;
use crate::store::{ClusterStore, ClusterStoreError, keeper_info_ttl};

/// Most replans in one pass (an init is followed by one replan).
const MAX_REPLANS: usize = 3;

/// Observation period while a switchover involves this keeper (its WAL position and shutdown gate the
/// switchover's next step).
pub const FAST_REPORT: Duration = Duration::from_millis(30);

/// Everything the keeper is configured with.
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// Decision-relevant settings (users, addresses, port...).
    pub settings: KeeperSettings,
    /// `--data-dir` (absolute); PGDATA is `<data-dir>/postgres`.
    pub data_dir: PathBuf,
    /// `--pg-bin-path` (`None` = `$PATH`).
    pub pg_bin_dir: Option<PathBuf>,
    /// OS user to run PostgreSQL as (when the keeper is root).
    pub os_user: Option<OsUser>,
    /// `--pg-advertise-address`.
    pub advertise_address: String,
    /// `--pg-advertise-port`.
    pub advertise_port: String,
    /// `--can-be-master`.
    pub can_be_master: bool,
    /// `--can-be-synchronous-replica`.
    pub can_be_synchronous_replica: bool,
    /// The keeper API's URL published in the keeper info (`apiURL`; empty when the API is off).
    pub api_url: String,
    /// The client of the other keepers' APIs (failsafe mode); `None` when this keeper's API is off.
    pub failsafe_client: Option<super::api::ApiClient>,
    /// `--priority` (published in the keeper info; higher is preferred in elections and switchovers).
    pub priority: i64,
}

impl KeeperConfig {
    /// PGDATA.
    pub fn pgdata(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }
}

/// Fatal keeper errors.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// The instance or local files.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The store.
    #[error(transparent)]
    Store(#[from] ClusterStoreError),
}

struct Shared {
    cfg: KeeperConfig,
    store: ClusterStore,
    /// The cluster data as its store watch delivers it: a pass reads it from memory while the watch runs.
    cd_view: ClusterDataView,
    boot_uuid: String,
    version: PgVersion,
    pg: Arc<PgProcess>,
    conn: LocalConn,
    executor: Mutex<Executor>,
    db_state: Arc<Mutex<DbLocalState>>,
    keeper_state: Mutex<KeeperLocalState>,
    states: StateFiles,
    pg_state: Mutex<Option<PostgresState>>,
    sleep: watch::Sender<Duration>,
    /// The spec's `failInterval` (milliseconds): how long a slow instance keeps its last healthy state.
    slow_grace_ms: std::sync::atomic::AtomicU64,
    cd_changed: Notify,
    /// A pass changed the local DB (another DB, a new generation, e.g. a promotion): observe it at once.
    observe_now: Arc<Notify>,
    /// An urgent observation is ready: publish the keeper info at once, so the sentinel sees the change
    /// without waiting for the next `sleepInterval` tick.
    publish_now: Notify,
    /// A running operation (switchover) involves this keeper: observe every [`FAST_REPORT`] and publish
    /// every change at once.
    fast_report: std::sync::atomic::AtomicBool,
    metrics: Arc<KeeperMetrics>,
    /// What the API and the role label read.
    view: Arc<KeeperView>,
}

/// Checks the binaries and the data directory before anything runs: supported binary version, PGDATA of the
/// same major version and owned by the PostgreSQL user.
pub async fn preflight(cfg: &KeeperConfig) -> Result<PgVersion, KeeperError> {
    let pg = PgProcess::new(cfg.pg_bin_dir.clone(), cfg.pgdata(), cfg.os_user.clone());
    let version = pg.binary_version().await?;
    version.check_supported()?;
    pg.check_pgdata_owner()?;
    if let Some(data) = read_data_version(&cfg.pgdata())? {
        if data.major != version.major {
            return Err(PgError::Version(format!(
                "data directory {} is PostgreSQL {} but the binaries ({}) are {version}",
                cfg.pgdata().display(),
                data.major,
                cfg.pg_bin_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "$PATH".into()),
            ))
            .into());
        }
    }
    Ok(version)
}

/// Runs the keeper until `shutdown` becomes true, then fast-stops postgres. With `api`, serves the keeper API
/// on it.
pub async fn run(
    cfg: KeeperConfig,
    store: ClusterStore,
    keeper_state: KeeperLocalState,
    metrics: Arc<KeeperMetrics>,
    api: Option<ApiListener>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), KeeperError> {
    let version = preflight(&cfg).await?;
    let mut settings = cfg.settings.clone();
    settings.pg_major = Some(version.major);
    let states = StateFiles::new(cfg.data_dir.clone());
    let db_state = states.load_db_state()?.unwrap_or_default();
    let pg = Arc::new(PgProcess::new(cfg.pg_bin_dir.clone(), cfg.pgdata(), cfg.os_user.clone()));
    let mut request_timeout = defaults::REQUEST_TIMEOUT.to_std_saturating();
    let mut sleep = defaults::SLEEP_INTERVAL.to_std_saturating();
    match store.cluster_data().await {
        Ok(Some(v)) => {
            request_timeout = v.data.cluster.spec.request_timeout();
            sleep = v.data.cluster.spec.sleep_interval();
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read cluster data at start"),
    }
    if pg.is_running().await? {
        tracing::info!("stopping the postgres left running by a previous keeper");
        pg.stop(StopMode::Fast).await?;
    }
    let conn = LocalConn::new(
        settings.port,
        settings.su_user.clone(),
        settings.su_password.clone().filter(|_| settings.su_auth == AuthMethod::Md5),
        request_timeout,
    );
    let view = Arc::new(KeeperView::new());
    view.set_local_db(&db_state.uid);
    let db_state = Arc::new(Mutex::new(db_state));
    let failsafe = Arc::new(crate::failsafe::FailsafeKeeper::new(&settings.uid));
    let observe_now = Arc::new(Notify::new());
    let executor = Executor {
        failsafe: failsafe.clone(),
        pg: pg.clone(),
        conn: conn.separate(),
        settings: settings.clone(),
        states: states.clone(),
        db_state: db_state.clone(),
        applied: Applied::default(),
        metrics: metrics.clone(),
        progress: observe_now.clone(),
    };
    let (sleep_tx, _) = watch::channel(sleep);
    let boot_uuid = crate::cluster::new_boot_uuid();
    tracing::info!(keeper = %settings.uid, boot_uuid = %boot_uuid, version = %version, "keeper starting");
    let mut cfg = cfg;
    cfg.settings = settings;
    let shared = Arc::new(Shared {
        cfg,
        cd_view: ClusterDataView::spawn(store.store().clone()),
        store,
        boot_uuid,
        version,
        pg,
        conn,
        executor: Mutex::new(executor),
        db_state,
        keeper_state: Mutex::new(keeper_state),
        states,
        pg_state: Mutex::new(None),
        sleep: sleep_tx,
        slow_grace_ms: std::sync::atomic::AtomicU64::new(
            u64::try_from(defaults::FAIL_INTERVAL.to_std_saturating().as_millis()).unwrap_or(u64::MAX),
        ),
        cd_changed: Notify::new(),
        observe_now,
        publish_now: Notify::new(),
        fast_report: std::sync::atomic::AtomicBool::new(false),
        metrics,
        view: view.clone(),
    });
    let uid = shared.cfg.settings.uid.clone();
    let mut tasks = vec![
        tokio::spawn(state_machine_loop(shared.clone())),
        tokio::spawn(pg_state_loop(shared.clone())),
        tokio::spawn(info_loop(shared.clone())),
        tokio::spawn(watch_loop(shared.clone())),
        tokio::spawn(super::labels::label_loop(shared.store.clone(), uid.clone(), view.clone())),
    ];
    if let Some(listener) = api {
        let sampler = super::api::sample::PgSampler::new(shared.conn.clone());
        let state = ApiState {
            keeper_uid: uid,
            view: view.clone(),
            sampler,
            store: shared.store.clone(),
            failsafe: failsafe.clone(),
        };
        tasks.push(super::api::server::spawn(listener, Arc::new(state)));
    }
    if let Some(client) = shared.cfg.failsafe_client.clone() {
        let collect = crate::failsafe::keeper::collect(failsafe, view, shared.store.clone(), client, shutdown.clone());
        tasks.push(tokio::spawn(collect));
    }
    let _ = shutdown.wait_for(|s| *s).await;
    tracing::info!("shutting down: stopping postgres");
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut ex = shared.executor.lock().await;
    ex.stop().await?;
    Ok(())
}

fn sleep_of(shared: &Shared) -> Duration {
    (*shared.sleep.borrow()).max(Duration::from_millis(100))
}

async fn state_machine_loop(shared: Arc<Shared>) {
    loop {
        shared.view.beat(KeeperLoop::StateMachine);
        let before = db_progress(&shared).await;
        if let Err(e) = state_machine_pass(&shared).await {
            tracing::error!(error = %e, "state machine pass failed");
        }
        let after = db_progress(&shared).await;
        shared.view.set_local_db(&after.0);
        if after != before {
            shared.observe_now.notify_one();
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep_of(&shared)) => {}
            _ = shared.cd_changed.notified() => {}
        }
    }
}

/// Runs a pass at once whenever the watched cluster data changes.
async fn watch_loop(shared: Arc<Shared>) {
    let mut changes = shared.cd_view.subscribe();
    while changes.changed().await.is_ok() {
        shared.cd_changed.notify_one();
    }
}

async fn observe_local(shared: &Shared, cd: &ClusterData) -> Result<Observed, PgError> {
    let pgdata = shared.pg.pgdata();
    let initialized = pgdata_initialized(pgdata);
    let running = shared.pg.is_running().await?;
    let system_id = if initialized { control_system_id(pgdata).ok() } else { None };
    let mut in_sync = None;
    if running {
        if let Some(db) = cd.db_of_keeper(&shared.cfg.settings.uid) {
            if db.spec.synchronous_replication {
                in_sync = shared.conn.sync_standby_names().await.ok().map(|n| stolon_standby_uids(&n));
            }
        }
    }
    let clean_shutdown = initialized && !running && clean_shutdown_checkpoint(pgdata).is_some();
    Ok(Observed {
        initialized,
        local_role: Some(local_role(pgdata)),
        running,
        system_id,
        in_sync_standbys: in_sync,
        clean_shutdown,
    })
}

async fn state_machine_pass(shared: &Shared) -> Result<(), KeeperError> {
    let read = match shared.store.cluster_data_via(&shared.cd_view).await {
        Err(ClusterStoreError::Model { source: ModelError::UnsupportedFormatVersion { found, .. }, .. }) => {
            tracing::error!(version = found, "{}", messages::UNSUPPORTED_FORMAT_VERSION);
            return Ok(());
        }
        read => read?,
    };
    let Some(v) = read else {
        tracing::info!("{}", messages::NO_CLUSTER_DATA);
        return Ok(());
    };
    let cd = v.data;
    if let Err(e) = cd.cluster.spec.validate() {
        tracing::error!(error = %e, "{}", messages::CLUSTER_DATA_INVALID);
        return Ok(());
    }
    KeeperMetrics::touch(&shared.metrics.clusterdata_last_valid_update_seconds);
    shared.view.cluster_read(cd.clone());
    let sleep = cd.cluster.spec.sleep_interval();
    shared.sleep.send_if_modified(|s| std::mem::replace(s, sleep) != sleep);
    let grace = u64::try_from(cd.cluster.spec.fail_interval().as_millis()).unwrap_or(u64::MAX);
    shared.slow_grace_ms.store(grace, Ordering::Relaxed);
    shared.metrics.sleep_interval_seconds.store(sleep.as_secs() as i64, Ordering::Relaxed);
    {
        let mut ks = shared.keeper_state.lock().await;
        if ks.cluster_uid != cd.cluster.uid {
            ks.cluster_uid = cd.cluster.uid.clone();
            shared.states.save_keeper_state(&ks)?;
        }
    }
    let directive = match cd.db_of_keeper(&shared.cfg.settings.uid) {
        Some(db) => crate::ops::keeper::directive(&cd, &db.uid, crate::time::Timestamp::now()),
        None => crate::ops::keeper::Directive::None,
    };
    let fast = directive.reports_fast();
    if shared.fast_report.swap(fast, Ordering::Relaxed) != fast && fast {
        shared.observe_now.notify_one();
    }
    let mut ex = shared.executor.lock().await;
    let mut after_init = false;
    for _ in 0..MAX_REPLANS {
        let observed = observe_local(shared, &cd).await?;
        let local = shared.db_state.lock().await.clone();
        let applied = ex.applied.clone();
        let input = PlanInput {
            settings: &shared.cfg.settings,
            boot_uuid: &shared.boot_uuid,
            cd: &cd,
            local: &local,
            observed: &observed,
            applied: &applied,
            after_init,
            now: crate::time::Timestamp::now(),
        };
        let p = plan(&input);
        tracing::debug!(plan = ?p, "planned");
        for event in pass_events(&input, &p) {
            tracing::info!("{event}");
        }
        if p.target_role.is_some() || p.local_role.is_some() {
            shared.metrics.set_roles(p.target_role.clone(), p.local_role.clone());
        }
        let open_ended = open_ended_action(&p.actions);
        if open_ended.is_some() {
            shared.view.open_ended(KeeperLoop::StateMachine, open_ended);
        }
        let executed = if interruptible(&p) {
            tokio::select! {
                executed = ex.execute(&p, &cd) => executed,
                () = assignment_changed(shared, &cd) => {
                    tracing::debug!("our db changed in the cluster data: routine pass cut short");
                    shared.cd_changed.notify_one();
                    return Ok(());
                }
            }
        } else {
            ex.execute(&p, &cd).await
        };
        if open_ended.is_some() {
            shared.view.open_ended(KeeperLoop::StateMachine, None);
        }
        executed?;
        if directive == crate::ops::keeper::Directive::Fence {
            // Fenced: the shutdown checkpoint is what the sentinel waits for.
            shared.observe_now.notify_one();
        }
        match p.outcome {
            Outcome::Converged => {
                KeeperMetrics::touch(&shared.metrics.last_sync_success_seconds);
                return Ok(());
            }
            Outcome::Waiting(reason) => {
                tracing::info!("{reason}");
                return Ok(());
            }
            Outcome::Failed(reason) => {
                tracing::error!("{reason}");
                return Ok(());
            }
            Outcome::Replan => after_init = true,
        }
    }
    Ok(())
}

/// Returns once the DB assigned to this keeper in the watched cluster data, or the operations' directive for
/// it, differs from the one in `cd` (see [`super::fast_sync::interruptible`]); never when the watch ends.
async fn assignment_changed(shared: &Shared, cd: &ClusterData) {
    let uid = &shared.cfg.settings.uid;
    let before = db_assignment(cd, uid, crate::time::Timestamp::now());
    let mut changes = shared.cd_view.subscribe();
    changes.borrow_and_update();
    loop {
        if let Ok(Some(v)) = shared.store.cluster_data_via(&shared.cd_view).await
            && db_assignment(&v.data, uid, crate::time::Timestamp::now()) != before
        {
            return;
        }
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn pg_state_loop(shared: Arc<Shared>) {
    let mut urgent = false;
    let mut last: Option<PostgresState> = None;
    let mut last_healthy: Option<(Instant, PostgresState)> = None;
    loop {
        shared.view.beat(KeeperLoop::PostgresState);
        let local = shared.db_state.lock().await.clone();
        shared.view.set_local_db(&local.uid);
        let s = &shared.cfg.settings;
        let ctx = ObserveContext {
            db_uid: local.uid.clone(),
            generation: local.generation,
            advertise_address: shared.cfg.advertise_address.clone(),
            advertise_port: shared.cfg.advertise_port.clone(),
            port: s.port,
            repl_user: s.repl_user.clone(),
            repl_password: s.repl_password.clone().filter(|_| s.repl_auth == AuthMethod::Md5),
            restarted_for: local.restarted_for.clone(),
        };
        let observation = observe(&shared.pg, &shared.conn, &ctx).await;
        let st = report_of(&shared, observation, &mut last_healthy);
        let fast = shared.fast_report.load(Ordering::Relaxed);
        let changed = last.as_ref() != Some(&st);
        last = Some(st.clone());
        *shared.pg_state.lock().await = Some(st);
        if urgent || (fast && changed) {
            shared.publish_now.notify_one();
        }
        let period = if fast { FAST_REPORT } else { sleep_of(&shared) / 2 };
        urgent = tokio::select! {
            _ = tokio::time::sleep(period) => false,
            _ = shared.observe_now.notified() => true,
        };
    }
}

/// The state to publish after `observation` (see [`super::observation`]); `last_healthy` is the last
/// complete observation and when it was made.
fn report_of(
    shared: &Shared,
    observation: Observation,
    last_healthy: &mut Option<(Instant, PostgresState)>,
) -> PostgresState {
    let Observation { state, failure } = observation;
    if state.healthy {
        *last_healthy = Some((Instant::now(), state.clone()));
        return state;
    }
    let failure = failure.as_ref().map(classify);
    let grace = Duration::from_millis(shared.slow_grace_ms.load(Ordering::Relaxed));
    let since = last_healthy.as_ref().map(|(at, _)| at.elapsed());
    if report(failure, since, grace) == Report::LastHealthy {
        if let Some(kept) = last_healthy.as_ref().and_then(|(_, last)| republished(last, &state)) {
            tracing::warn!(
                since_healthy = ?since.unwrap_or_default(),
                "postgres answers slowly: keeping its last healthy state"
            );
            return kept;
        }
    }
    state
}

/// The local DB and the generation it converged to: a change means the sentinel has news.
async fn db_progress(shared: &Shared) -> (String, i64) {
    let local = shared.db_state.lock().await;
    (local.uid.clone(), local.generation)
}

async fn info_loop(shared: Arc<Shared>) {
    let id = ReportIdentity {
        uid: shared.cfg.settings.uid.clone(),
        boot_uuid: shared.boot_uuid.clone(),
        version: Some(shared.version),
        can_be_master: shared.cfg.can_be_master,
        can_be_synchronous_replica: shared.cfg.can_be_synchronous_replica,
        api_url: shared.cfg.api_url.clone(),
        priority: shared.cfg.priority,
    };
    loop {
        shared.view.beat(KeeperLoop::InfoPublication);
        let cluster_uid = shared.keeper_state.lock().await.cluster_uid.clone();
        if !cluster_uid.is_empty() {
            let state = shared.pg_state.lock().await.clone();
            let info = keeper_info(&id, &cluster_uid, state);
            let ttl = keeper_info_ttl(sleep_of(&shared));
            if let Err(e) = shared.store.set_keeper_info(&info, ttl).await {
                tracing::warn!(error = %e, "cannot publish keeper info");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep_of(&shared)) => {}
            _ = shared.publish_now.notified() => {}
        }
    }
}
