//! stolon-keeper: owns one PostgreSQL instance and converges it to the cluster view.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use stolon_core::cluster::{DbRole, KeeperLocalState, new_uid};
use stolon_core::keeper::messages;
use stolon_core::keeper::state::StateFiles;
use stolon_core::keeper::{KeeperConfig, KeeperMetrics, KeeperSettings};
use stolon_core::postgres::OsUser;
use stolon_core::postgres::os_user::{current_user_name, running_as_root};
use stolon_core::store::ClusterStore;
use stolon_daemons::keeper_api::{self, ApiArgs};
use stolon_daemons::keeper_checks::{self as checks, User};
use stolon_daemons::{common::CommonArgs, env, logging, metrics};

/// The stolon-rs keeper. Every flag can also be set as STKEEPER_<FLAG_NAME>.
#[derive(Parser, Debug)]
#[command(name = "stolon-keeper", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// Keeper UID (^[a-z0-9_]+$); generated and persisted on first start when empty.
    #[arg(long, default_value = "")]
    uid: String,
    /// Deprecated alias of --uid.
    #[arg(long, default_value = "", hide = true)]
    id: String,
    /// Data directory (required); PGDATA is <data-dir>/postgres.
    #[arg(long, default_value = "")]
    data_dir: String,
    /// PostgreSQL listen_addresses (required; "*" allowed).
    #[arg(long, default_value = "")]
    pg_listen_address: String,
    /// Address published to the other components (default: --pg-listen-address).
    #[arg(long, default_value = "")]
    pg_advertise_address: String,
    /// PostgreSQL port.
    #[arg(long, default_value = "5432")]
    pg_port: u16,
    /// Port published to the other components (default: --pg-port).
    #[arg(long, default_value = "")]
    pg_advertise_port: String,
    /// Directory of the PostgreSQL binaries (default: $PATH).
    #[arg(long, default_value = "")]
    pg_bin_path: String,
    /// Replication user auth method: md5 or trust.
    #[arg(long, default_value = "md5")]
    pg_repl_auth_method: String,
    /// Replication user name (required).
    #[arg(long, default_value = "")]
    pg_repl_username: String,
    /// Replication password (prefer --pg-repl-passwordfile).
    #[arg(long, default_value = "", hide_env_values = true)]
    pg_repl_password: String,
    /// File holding the replication password.
    #[arg(long, default_value = "")]
    pg_repl_passwordfile: String,
    /// Superuser auth method: md5 or trust.
    #[arg(long, default_value = "md5")]
    pg_su_auth_method: String,
    /// Superuser name (default: the OS user PostgreSQL runs as).
    #[arg(long)]
    pg_su_username: Option<String>,
    /// Superuser password (prefer --pg-su-passwordfile).
    #[arg(long, default_value = "", hide_env_values = true)]
    pg_su_password: String,
    /// File holding the superuser password.
    #[arg(long, default_value = "")]
    pg_su_passwordfile: String,
    /// Whether this keeper may be elected master.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    can_be_master: bool,
    /// Whether this keeper may be a synchronous standby.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    can_be_synchronous_replica: bool,
    /// Election priority: among eligible standbys, a higher priority is elected or switched over to first
    /// (default 0; may be negative).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i64,
    /// Do not take the exclusive lock on <data-dir>/lock.
    #[arg(long)]
    disable_data_dir_locking: bool,
    /// OS user PostgreSQL runs as when the keeper runs as root (ignored otherwise).
    #[arg(long, default_value = "postgres")]
    pg_os_user: String,
    /// Deprecated: same as --log-level=debug.
    #[arg(long, hide = true)]
    debug: bool,
}

struct Prepared {
    cfg: KeeperConfig,
    keeper_state: KeeperLocalState,
    _lock: Option<std::fs::File>,
}

fn prepare(cli: &Cli) -> anyhow::Result<Prepared> {
    let uid_flag = if cli.uid.is_empty() { cli.id.clone() } else { cli.uid.clone() };
    if cli.data_dir.is_empty() {
        bail!("{}", messages::DATA_DIR_REQUIRED);
    }
    let data_dir = PathBuf::from(&cli.data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| anyhow::anyhow!(messages::cannot_create_data_dir(&e)))?;
    if cli.pg_listen_address.is_empty() {
        bail!("{}", messages::LISTEN_ADDRESS_REQUIRED);
    }
    let (advertise_flag, advertise_address) = if cli.pg_advertise_address.is_empty() {
        ("pg-listen-address", cli.pg_listen_address.clone())
    } else {
        ("pg-advertise-address", cli.pg_advertise_address.clone())
    };
    checks::warn_about_advertise_address(advertise_flag, &advertise_address);
    let repl_auth = checks::auth_method(User::Replication, &cli.pg_repl_auth_method).map_err(anyhow::Error::msg)?;
    if cli.pg_repl_username.is_empty() {
        bail!("{}", messages::REPL_USERNAME_REQUIRED);
    }
    let repl_password =
        checks::password(User::Replication, repl_auth, &cli.pg_repl_password, &cli.pg_repl_passwordfile)
            .map_err(anyhow::Error::msg)?;
    let su_auth = checks::auth_method(User::Superuser, &cli.pg_su_auth_method).map_err(anyhow::Error::msg)?;
    let su_password = checks::password(User::Superuser, su_auth, &cli.pg_su_password, &cli.pg_su_passwordfile)
        .map_err(anyhow::Error::msg)?;
    let os_user = if running_as_root() {
        Some(OsUser::lookup(&cli.pg_os_user).with_context(|| format!("--pg-os-user {:?}", cli.pg_os_user))?)
    } else {
        None
    };
    let su_user = match &cli.pg_su_username {
        Some(u) if !u.is_empty() => u.clone(),
        _ => os_user
            .as_ref()
            .map(|u| u.name.clone())
            .or_else(current_user_name)
            .context("cannot determine the OS user name: give --pg-su-username")?,
    };
    if su_user == cli.pg_repl_username {
        checks::same_users((su_auth, repl_auth), &su_password, &repl_password).map_err(anyhow::Error::msg)?;
    }
    let data_dir = data_dir.canonicalize().with_context(|| format!("--data-dir {}", cli.data_dir))?;
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("--data-dir: cannot chmod {}", data_dir.display()))?;
    if let Some(u) = &os_user {
        // PostgreSQL (run as this user) must reach <data-dir>/postgres.
        u.chown(&data_dir).context("--data-dir")?;
    }
    let lock = if cli.disable_data_dir_locking {
        None
    } else {
        Some(checks::lock_data_dir(&data_dir).map_err(anyhow::Error::msg)?)
    };
    checks::check_uid(&uid_flag).map_err(anyhow::Error::msg)?;
    let states = StateFiles::new(&data_dir);
    let mut keeper_state = states.load_keeper_state()?.unwrap_or_default();
    if !keeper_state.uid.is_empty() {
        if !uid_flag.is_empty() && uid_flag != keeper_state.uid {
            bail!("{}", messages::saved_uid_differs(&keeper_state.uid, &uid_flag));
        }
    } else {
        keeper_state.uid = if uid_flag.is_empty() {
            let uid = new_uid();
            tracing::info!(uid = %uid, "{}", messages::UID_GENERATED);
            uid
        } else {
            uid_flag
        };
        states.save_keeper_state(&keeper_state)?;
    }
    tracing::info!(uid = %keeper_state.uid, "{}", messages::KEEPER_UID);
    let advertise_port =
        if cli.pg_advertise_port.is_empty() { cli.pg_port.to_string() } else { cli.pg_advertise_port.clone() };
    let settings = KeeperSettings {
        uid: keeper_state.uid.clone(),
        su_user,
        su_auth,
        su_password,
        repl_user: cli.pg_repl_username.clone(),
        repl_auth,
        repl_password,
        listen_address: cli.pg_listen_address.clone(),
        port: cli.pg_port,
        pg_major: None,
    };
    let cfg = KeeperConfig {
        settings,
        data_dir,
        pg_bin_dir: Some(PathBuf::from(&cli.pg_bin_path)).filter(|p| !p.as_os_str().is_empty()),
        os_user,
        advertise_address,
        advertise_port,
        can_be_master: cli.can_be_master,
        can_be_synchronous_replica: cli.can_be_synchronous_replica,
        api_url: String::new(),
        failsafe_client: None,
        priority: cli.priority,
    };
    Ok(Prepared { cfg, keeper_state, _lock: lock })
}

/// Registers the keeper gauges of reference 8 and keeps them in step with `m` (refreshed every second).
fn register_metrics(registry: &mut Registry, m: Arc<KeeperMetrics>) {
    let plain = |name: &str, help: &str, registry: &mut Registry| {
        let g: Gauge = Gauge::default();
        registry.register(name, help, g.clone());
        g
    };
    let last_cd = plain(
        "stolon_keeper_clusterdata_last_valid_update_seconds",
        "Last valid cluster data read (unix time)",
        registry,
    );
    let last_sync =
        plain("stolon_keeper_last_sync_success_seconds", "Last fully successful pass (unix time)", registry);
    let reload = plain("stolon_keeper_needs_reload", "Set when postgres needs a reload", registry);
    let restart = plain("stolon_keeper_needs_restart", "Set when postgres needs a restart", registry);
    let sleep = plain("stolon_keeper_sleep_interval", "Seconds to sleep between passes", registry);
    let shutdown = plain("stolon_keeper_shutdown_seconds", "Termination signal time (unix time)", registry);
    let target = Family::<Vec<(String, String)>, Gauge>::default();
    let local = Family::<Vec<(String, String)>, Gauge>::default();
    registry.register("stolon_keeper_target_role", "Role the keeper is asked to have", target.clone());
    registry.register("stolon_keeper_local_role", "Role the local data directory has", local.clone());
    tokio::spawn(async move {
        loop {
            last_cd.set(m.clusterdata_last_valid_update_seconds.load(Ordering::Relaxed));
            last_sync.set(m.last_sync_success_seconds.load(Ordering::Relaxed));
            reload.set(m.needs_reload.load(Ordering::Relaxed).into());
            restart.set(m.needs_restart.load(Ordering::Relaxed).into());
            sleep.set(m.sleep_interval_seconds.load(Ordering::Relaxed));
            shutdown.set(m.shutdown_seconds.load(Ordering::Relaxed));
            let (t, l) = m.roles();
            for (family, role) in [(&target, t), (&local, l)] {
                for name in [DbRole::Undefined, DbRole::Master, DbRole::Standby].map(|r| r.as_str().to_string()) {
                    let on = role.as_ref().is_some_and(|r| r.as_str() == name) as i64;
                    family.get_or_create(&vec![("role".to_string(), name)]).set(on);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let store_config = cli.common.daemon_store_config()?;
    let mut prepared = prepare(&cli)?;
    let keeper_metrics = Arc::new(KeeperMetrics::default());
    let mut metrics_task = None;
    let mut registry = None;
    if metrics::parse_listen_address(&cli.common.metrics_listen_address).map_err(anyhow::Error::msg)?.is_some() {
        let mut r = Registry::default();
        metrics::register_cluster_identifier(&mut r, &cli.common.cluster_name, "keeper");
        stolon_daemons::process_metrics::register_process_metrics(&mut r);
        register_metrics(&mut r, keeper_metrics.clone());
        registry = Some(Arc::new(r));
    }
    let advertise = prepared.cfg.advertise_address.clone();
    let listeners =
        keeper_api::bind(&cli.api, &cli.common.metrics_listen_address, registry.clone(), &advertise).await?;
    if let (Some(addr), Some(registry)) = (listeners.separate_metrics, registry) {
        metrics_task = Some(metrics::serve(addr, registry).await?);
    }
    prepared.cfg.api_url = listeners.api_url;
    prepared.cfg.failsafe_client = listeners.failsafe_client;
    let store = stolon_core::stolon_store::connect(&store_config).await.context("cannot connect to the store")?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let m = keeper_metrics.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        KeeperMetrics::touch(&m.shutdown_seconds);
        let _ = shutdown_tx.send(true);
    });
    let res = stolon_core::keeper::run(
        prepared.cfg,
        ClusterStore::new(store),
        prepared.keeper_state,
        keeper_metrics,
        listeners.api,
        shutdown_rx,
    )
    .await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    res.map_err(Into::into)
}

pub(crate) fn main() -> ExitCode {
    let cli = stolon_daemons::parse_cli::<Cli>(env::KEEPER);
    let level = if cli.debug { logging::LogLevel::Debug } else { cli.common.log_level };
    logging::init(level, cli.common.log_color);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stolon-keeper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("stolon-keeper: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_stolon_defaults() {
        let cli = Cli::try_parse_from(["stolon-keeper"]).unwrap();
        assert_eq!(cli.pg_port, 5432);
        assert_eq!(cli.pg_repl_auth_method, "md5");
        assert_eq!(cli.pg_su_auth_method, "md5");
        assert!(cli.can_be_master && cli.can_be_synchronous_replica);
        assert!(!cli.disable_data_dir_locking);
        assert_eq!(cli.pg_os_user, "postgres");
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        stolon_daemons::try_parse_cli_from(env::KEEPER, std::iter::once("stolon-keeper").chain(args.iter().copied()))
    }

    #[test]
    fn boolean_flags_take_go_syntax() {
        let cli =
            parse(&["--can-be-master=F", "--can-be-synchronous-replica=0", "--disable-data-dir-locking=T"]).unwrap();
        assert!(!cli.can_be_master && !cli.can_be_synchronous_replica && cli.disable_data_dir_locking);
        let cli =
            parse(&["--can-be-master", "--debug=TRUE", "--store-skip-tls-verify=1", "--log-color=False"]).unwrap();
        assert!(cli.can_be_master && cli.debug && cli.common.store_skip_tls_verify);
        assert_eq!(cli.common.log_color, Some(false));
        let e = parse(&["--can-be-synchronous-replica", "false"]).unwrap_err().to_string();
        assert!(e.contains("--can-be-synchronous-replica") && e.contains("\"false\""), "{e}");
    }
}
