//! stolonctl: operate a stolon-rs cluster from the command line. The operations live in
//! `stolon_core::ctl`; this main parses flags, reads input files, asks for confirmation and prints.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use stolon_core::ctl::{self, PromoteOutcome, SpecUpdate};
use stolon_core::stolon_store::{KubeConfig, TlsConfig};
use stolon_core::store::ClusterStore;
use stolon_daemons::common::{CommonArgs, parse_go_duration};
use stolon_daemons::{bool_flags, cli_docs, ctl_restart, env, logging, shutdown_signal, status_watch};

/// Operate a stolon-rs cluster. Every flag, subcommand flags included, can also be set as
/// STOLONCTL_<FLAG_NAME> (e.g. STOLONCTL_CLUSTER_NAME, STOLONCTL_YES).
#[derive(Parser, Debug)]
#[command(name = "stolonctl", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Kubernetes: kubeconfig file (default: $KUBECONFIG or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubernetes: kubeconfig context.
    #[arg(long)]
    kube_context: Option<String>,
    /// Kubernetes: namespace.
    #[arg(long)]
    kube_namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Display the current cluster status.
    Status {
        /// Output format: text or json.
        #[arg(short = 'f', long, default_value = "text")]
        format: String,
        /// Keep running and print the status again whenever it changes (redrawn on a terminal; appended,
        /// one JSON document per line with --format json, otherwise).
        #[arg(short = 'w', long)]
        watch: bool,
        /// How often --watch reads the status (Go duration).
        #[arg(long, default_value = "2s", value_parser = parse_go_duration)]
        watch_interval: Duration,
    },
    /// Initialize a new cluster (replaces any existing cluster data).
    Init {
        /// The cluster spec as JSON (default: {"initMode":"new"}).
        spec: Option<String>,
        /// File containing the cluster spec ("-" for stdin).
        #[arg(short = 'f', long)]
        file: Option<String>,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Update the cluster spec: replace it, or patch it with a JSON merge patch.
    Update {
        /// The new spec, or the patch with --patch, as JSON.
        spec: Option<String>,
        /// Patch the current spec (RFC 7386 JSON merge patch) instead of replacing it.
        #[arg(short = 'p', long)]
        patch: bool,
        /// File containing the spec or the patch ("-" for stdin).
        #[arg(short = 'f', long)]
        file: Option<String>,
    },
    /// Print the current cluster spec.
    Spec {
        /// Also show the default values of unset fields.
        #[arg(long)]
        defaults: bool,
    },
    /// Mark a keeper as failed for one sentinel pass (a master keeper is failed over at once).
    Failkeeper {
        /// The keeper UID.
        keeper_uid: String,
    },
    /// Remove a keeper and its database from the cluster data.
    Removekeeper {
        /// The keeper UID.
        keeper_uid: String,
    },
    /// Promote a standby cluster to a primary cluster.
    Promote {
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Hand the master role to a standby with a sub-second write gap and no lost commit; waits for the
    /// outcome unless scheduled with --at.
    Switchover(SwitchoverArgs),
    #[command(flatten)]
    Restarts(ctl_restart::Commands),
    /// Pause the cluster: no failover, switchover or reconfiguration until `resume` (or for a while).
    Pause {
        /// End the pause on its own after this long (Go duration, e.g. 10m).
        #[arg(long = "for")]
        for_duration: Option<String>,
    },
    /// End a pause.
    Resume,
    /// Put a keeper in maintenance (never elected master, never a synchronous standby) or take it out.
    Maintenance {
        /// The keeper UID.
        keeper_uid: String,
        /// on or off.
        state: String,
    },
    /// Read or write the whole cluster data.
    #[command(subcommand)]
    Clusterdata(ClusterdataCommand),
    /// Register the cluster's healthy databases in Consul for service discovery, until interrupted.
    Register(RegisterArgs),
    /// Print the shell completion script (bash, zsh or fish) on stdout.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write stolonctl's man pages (one per subcommand) into a directory.
    Man {
        /// The directory (created if missing), e.g. /usr/local/share/man/man1.
        dir: PathBuf,
    },
    /// Print the version.
    Version,
}

/// The shells `stolonctl completion` writes scripts for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Subcommand, Debug)]
enum ClusterdataCommand {
    /// Print the current cluster data as JSON.
    Read {
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Write the cluster data (e.g. when moving to a new store); validated before writing.
    Write {
        /// File containing the cluster data ("-" or none: stdin).
        #[arg(short = 'f', long)]
        file: Option<String>,
        /// Replace existing cluster data.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

#[derive(Args, Debug)]
struct SwitchoverArgs {
    /// The keeper to promote (default: a synchronous standby under synchronous replication, else the
    /// highest priority, then the least lag).
    #[arg(long)]
    to: Option<String>,
    /// Do it at this time (RFC 3339, e.g. 2026-12-01T03:00:00Z) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Abort when fencing and promotion take longer (Go duration).
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
    /// Cancel a scheduled switchover that has not started.
    #[arg(long)]
    cancel: bool,
}

#[derive(Args, Debug)]
struct RegisterArgs {
    /// Register backend (only consul).
    #[arg(long, default_value = "consul")]
    register_backend: String,
    /// The register endpoint (exactly one; https:// for TLS).
    #[arg(long, default_value = "http://127.0.0.1:8500")]
    register_endpoints: String,
    /// Client certificate for TLS to the register (with --register-key).
    #[arg(long)]
    register_cert_file: Option<PathBuf>,
    /// Client private key for TLS to the register.
    #[arg(long)]
    register_key: Option<PathBuf>,
    /// CA bundle to verify the register's certificate (default: the system roots).
    #[arg(long)]
    register_ca_file: Option<PathBuf>,
    /// Do not verify the register's certificate (testing only).
    #[arg(long)]
    register_skip_tls_verify: bool,
    /// Register the master as well (use with caution).
    #[arg(long)]
    register_master: bool,
    /// Comma-separated tags of the master.
    #[arg(long, default_value = "master")]
    tag_master_as: String,
    /// Comma-separated tags of the standbys.
    #[arg(long, default_value = "slave")]
    tag_slave_as: String,
    /// Seconds between two registration passes.
    #[arg(long, default_value_t = 10)]
    sleep_interval: u64,
    /// Debug logging.
    #[arg(long)]
    debug: bool,
}

/// Parses stolonctl's command line (with the program name): flags from the environment, boolean flags in Go's
/// syntax, and, like stolon's persistent flags, the store flags accepted after the subcommand too.
fn parse_cli(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    Cli::from_arg_matches(&bool_flags::try_get_matches_from(command(), args)?)
}

/// stolonctl's clap command as parsed: flags global, each with its environment variable (completion scripts
/// and man pages are generated from it).
fn command() -> clap::Command {
    env::with_env_prefix(
        Cli::command().mut_args(|a| if a.is_positional() { a } else { a.global(true) }),
        env::STOLONCTL,
    )
}

pub(crate) fn main() -> ExitCode {
    let cli = parse_cli(std::env::args_os().collect()).unwrap_or_else(|e| e.exit());
    if let Command::Version = cli.command {
        println!("stolonctl version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let debug = matches!(&cli.command, Command::Register(r) if r.debug);
    let level = if debug { logging::LogLevel::Debug } else { cli.common.log_level };
    logging::init(level, cli.common.log_color);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints the error as one line on stderr.
fn fail(e: &anyhow::Error) -> ExitCode {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let message = cause.to_string();
        if !line.contains(&message) {
            line = format!("{line}: {message}");
        }
    }
    let line = line.replace('\n', " ");
    eprintln!("stolonctl: {line}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let kube = KubeConfig {
        kubeconfig: cli.kubeconfig,
        context: cli.kube_context,
        namespace: cli.kube_namespace,
        ..KubeConfig::default()
    };
    let common = cli.common;
    // Every command checks the input that needs no store first: bad input never waits on the store.
    let connect = || connect(&common, kube.clone());
    match cli.command {
        Command::Status { format, watch, watch_interval } => {
            if !matches!(format.as_str(), "text" | "json") {
                bail!("unrecognised output format {format:?} (expected text or json)");
            }
            if watch {
                let out =
                    status_watch::WatchOutput { json: format == "json", terminal: std::io::stdout().is_terminal() };
                let store = connect().await?;
                status_watch::watch(&store, out, watch_interval, &mut std::io::stdout(), shutdown_signal())
                    .await
                    .context("cannot write to stdout")?;
                return Ok(ExitCode::SUCCESS);
            }
            let report = ctl::gather_status(&connect().await?).await?;
            let out = if format == "json" {
                format!("{}\n", ctl::render_json(&report.status))
            } else {
                ctl::render_text(&report)
            };
            print(&out)?;
        }
        Command::Init { spec, file, yes } => {
            let spec = ctl::init_spec(spec_input(spec, file)?.as_deref())?;
            let store = connect().await?;
            let plan = ctl::plan_init(&store, spec).await?;
            for w in plan.warnings() {
                println!("{w}");
            }
            if !confirm(yes, "init")? {
                println!("exiting");
                return Ok(ExitCode::SUCCESS);
            }
            let outcome = ctl::apply_init(&store, &plan).await?;
            println!("cluster {} initialised", outcome.cluster_uid);
        }
        Command::Update { spec, patch, file } => {
            let Some(input) = spec_input(spec, file)? else {
                bail!("no cluster spec provided as argument and no file provided (--file/-f option)");
            };
            let update = SpecUpdate::parse(&input, patch)?;
            ctl::update_spec(&connect().await?, &update).await?;
        }
        Command::Spec { defaults } => {
            print(&format!("{}\n", ctl::current_spec(&connect().await?, defaults).await?))?;
        }
        Command::Failkeeper { keeper_uid } => {
            ctl::fail_keeper(&connect().await?, &keeper_uid).await?;
        }
        Command::Removekeeper { keeper_uid } => {
            ctl::remove_keeper(&connect().await?, &keeper_uid).await?;
        }
        Command::Promote { yes } => {
            if !confirm(yes, "promote")? {
                println!("exiting");
                return Ok(ExitCode::SUCCESS);
            }
            if ctl::promote(&connect().await?).await?.value == PromoteOutcome::AlreadyMaster {
                eprintln!("cluster spec role already set to master");
            }
        }
        Command::Switchover(args) => return switchover(args, connect).await,
        Command::Restarts(c) => ctl_restart::run(c, confirm, connect).await?,
        Command::Pause { for_duration } => {
            let duration = for_duration.as_deref().map(parse_duration).transpose()?;
            let pause = ctl::pause(&connect().await?, duration).await?.value;
            match pause.until {
                Some(until) => println!("cluster paused until {until}"),
                None => println!("cluster paused until `stolonctl resume`"),
            }
        }
        Command::Resume => {
            if ctl::resume(&connect().await?).await?.value {
                println!("cluster resumed");
            } else {
                println!("cluster was not paused");
            }
        }
        Command::Maintenance { keeper_uid, state } => {
            let on = match state.as_str() {
                "on" => true,
                "off" => false,
                other => bail!("unrecognised maintenance state {other:?} (expected on or off)"),
            };
            ctl::set_maintenance(&connect().await?, &keeper_uid, on).await?;
            println!("keeper {keeper_uid} maintenance {state}");
        }
        Command::Clusterdata(ClusterdataCommand::Read { pretty }) => {
            print(&format!("{}\n", ctl::read_cluster_data(&connect().await?, pretty).await?))?;
        }
        Command::Clusterdata(ClusterdataCommand::Write { file, yes }) => {
            let input = match file.as_deref() {
                None | Some("-") => read_stdin()?,
                Some(path) => std::fs::read(path).with_context(|| format!("cannot read {path}"))?,
            };
            let data = ctl::parse_cluster_data(&input)?;
            let store = connect().await?;
            let plan = ctl::plan_write(&store, data).await?;
            if let (Some(existing), true) = (&plan.replaces, yes) {
                println!("WARNING: The current cluster data will be removed: {}", existing.description);
            }
            ctl::apply_write(&store, &plan, yes).await?;
            println!("successfully wrote cluster data into the store");
        }
        Command::Register(args) => {
            let (agent, opts) = register_setup(&common.cluster_name, &args)?;
            register_loop(&connect().await?, &agent, &opts, args.sleep_interval).await?;
        }
        Command::Completion { shell } => {
            let shell = match shell {
                CompletionShell::Bash => cli_docs::Shell::Bash,
                CompletionShell::Zsh => cli_docs::Shell::Zsh,
                CompletionShell::Fish => cli_docs::Shell::Fish,
            };
            let mut script = Vec::new();
            cli_docs::write_completion(shell, command(), &mut script);
            print(&String::from_utf8_lossy(&script))?;
        }
        Command::Man { dir } => {
            for page in cli_docs::write_man_pages(command(), &dir)? {
                println!("{}", page.display());
            }
        }
        Command::Version => println!("stolonctl version {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses a Go duration flag value.
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let d = stolon_core::duration::GoDuration::parse(s).with_context(|| format!("invalid duration {s:?}"))?;
    d.to_std().with_context(|| format!("invalid duration {s:?}: negative"))
}

async fn switchover<F, Fut>(args: SwitchoverArgs, connect: F) -> anyhow::Result<ExitCode>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ClusterStore>>,
{
    if args.cancel {
        if args.to.is_some() || args.at.is_some() {
            bail!("--cancel takes no --to or --at");
        }
        ctl::cancel_switchover(&connect().await?).await?;
        println!("switchover cancelled");
        return Ok(ExitCode::SUCCESS);
    }
    let at = match args.at.as_deref() {
        Some(s) => Some(stolon_core::time::Timestamp::parse(s).with_context(|| format!("invalid --at {s:?}"))?),
        None => None,
    };
    let timeout = parse_duration(&args.timeout)?;
    if timeout.is_zero() {
        bail!("--timeout must be positive");
    }
    let req = ctl::SwitchoverRequest { to_keeper: args.to.unwrap_or_default(), at, timeout };
    if !confirm(args.yes, "switchover")? {
        println!("exiting");
        return Ok(ExitCode::SUCCESS);
    }
    let store = connect().await?;
    let accepted = ctl::request_switchover(&store, &req).await?.value;
    if let Some(at) = at {
        println!("switchover {} scheduled at {at}", accepted.uid);
        return Ok(ExitCode::SUCCESS);
    }
    // Fencing and promotion are bounded by the timeout, the old master's rejoin by as much again.
    let result = ctl::wait_switchover(&store, &accepted.uid, timeout * 2 + Duration::from_secs(10)).await?;
    println!("switchover completed: {}", result.message);
    Ok(ExitCode::SUCCESS)
}

async fn connect(common: &CommonArgs, kube: KubeConfig) -> anyhow::Result<ClusterStore> {
    let config = common.store_config(kube)?;
    let store = stolon_core::stolon_store::connect(&config).await.context("cannot connect to the store")?;
    Ok(ClusterStore::new(store))
}

/// The JSON given as argument or in a file (`-` = stdin); `None` when neither. Both is an error.
fn spec_input(arg: Option<String>, file: Option<String>) -> anyhow::Result<Option<Vec<u8>>> {
    match (arg, file) {
        (Some(_), Some(_)) => {
            bail!("only one of cluster spec provided as argument or file must be provided (--file/-f option)")
        }
        (Some(arg), None) => Ok(Some(arg.into_bytes())),
        (None, Some(file)) if file == "-" => Ok(Some(read_stdin()?)),
        (None, Some(file)) => Ok(Some(std::fs::read(&file).with_context(|| format!("cannot read {file}"))?)),
        (None, None) => Ok(None),
    }
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).context("cannot read from stdin")?;
    Ok(buf)
}

fn print(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).and_then(|()| out.flush()).context("cannot write to stdout")
}

/// Asks "yes"/"no" on the terminal unless `yes`. A stdin that is not a terminal cannot answer: refused.
fn confirm(yes: bool, command: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{command} needs confirmation but stdin is not a terminal: pass --yes (-y) to proceed");
    }
    let mut lines = stdin.lock();
    loop {
        print("Are you sure you want to continue? [yes/no] ")?;
        let mut answer = String::new();
        if lines.read_line(&mut answer).context("cannot read the answer")? == 0 {
            bail!("no answer: nothing done");
        }
        match answer.trim() {
            "yes" => return Ok(true),
            "no" => return Ok(false),
            _ => println!("Please enter 'yes' or 'no'"),
        }
    }
}

fn register_setup(
    cluster_name: &str,
    args: &RegisterArgs,
) -> anyhow::Result<(ctl::consul::ConsulAgent, ctl::register::RegisterOptions)> {
    if args.register_backend != "consul" {
        bail!("unknown register backend: {:?} (only consul)", args.register_backend);
    }
    let tls = TlsConfig {
        cert_file: args.register_cert_file.clone(),
        key_file: args.register_key.clone(),
        ca_file: args.register_ca_file.clone(),
        skip_verify: args.register_skip_tls_verify,
    };
    let agent = ctl::consul::ConsulAgent::new(&args.register_endpoints, &tls, Duration::from_secs(10))?;
    let opts = ctl::register::RegisterOptions {
        service_name: cluster_name.to_string(),
        register_master: args.register_master,
        master_tags: ctl::register::parse_tags(&args.tag_master_as),
        standby_tags: ctl::register::parse_tags(&args.tag_slave_as),
    };
    Ok((agent, opts))
}

/// Registration passes every `sleep_interval` seconds until SIGINT or SIGTERM.
async fn register_loop(
    store: &ClusterStore,
    agent: &ctl::consul::ConsulAgent,
    opts: &ctl::register::RegisterOptions,
    sleep_interval: u64,
) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    loop {
        match ctl::consul::register_pass(store, agent, opts).await {
            Ok(pass) => {
                for s in &pass.diff.deregister {
                    tracing::info!(service = %s.name, id = %s.id, tags = ?s.tags, "deregistering");
                }
                for s in &pass.diff.register {
                    tracing::info!(service = %s.name, id = %s.id, tags = ?s.tags, "registering");
                }
                for e in &pass.failures {
                    tracing::error!(error = %e, "registration change failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "registration pass skipped"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(sleep_interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_cli(std::iter::once("stolonctl").chain(args.iter().copied()).map(Into::into).collect())
    }

    #[test]
    fn boolean_flags_take_go_syntax() {
        let cli = parse(&["promote", "--yes=false", "--store-skip-tls-verify=T"]).unwrap();
        assert!(matches!(cli.command, Command::Promote { yes: false }) && cli.common.store_skip_tls_verify);
        let cli = parse(&["update", "-p=1", "{}"]).unwrap();
        assert!(matches!(cli.command, Command::Update { patch: true, spec: Some(_), .. }));
        let cli = parse(&["register", "--register-master=True", "--register-skip-tls-verify=0", "--debug"]).unwrap();
        let Command::Register(r) = cli.command else { panic!("register expected") };
        assert!(r.register_master && !r.register_skip_tls_verify && r.debug);
        // A spec after --yes is still the spec; a boolean word is refused.
        let cli = parse(&["init", "--yes", "{}"]).unwrap();
        assert!(matches!(cli.command, Command::Init { yes: true, spec: Some(_), .. }));
        let e = parse(&["init", "-y", "false"]).unwrap_err().to_string();
        assert!(e.contains("-y") && e.contains("\"false\""), "{e}");
        let e = parse(&["clusterdata", "read", "--pretty", "TRUE"]).unwrap_err().to_string();
        assert!(e.contains("--pretty") && e.contains("\"TRUE\""), "{e}");
    }
}
