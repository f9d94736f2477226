//! Running PostgreSQL programs for one data directory: initdb, the postmaster (the keeper is its parent),
//! pg_ctl stop/status/reload/promote. Programs run as the configured OS user when the keeper is root; their
//! output goes to the logs.

use std::collections::VecDeque;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use super::config::SOCKET_DIR;
use super::error::{PgError, PgResult};
use super::os_user::OsUser;
use super::secret_file::SecretFile;
use super::version::{PgVersion, parse_binary_version};
use crate::keeper::messages;

/// Lines of a program's output kept for error messages.
const OUTPUT_TAIL_LINES: usize = 20;
/// Longest wait for the postmaster to write its pid file.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll period of start and readiness waits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// pg_ctl shutdown modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnect clients, checkpoint, exit.
    Fast,
    /// Exit without checkpoint (crash recovery at next start).
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }

    /// The postmaster signal of this shutdown mode.
    fn signal(self) -> libc::c_int {
        match self {
            StopMode::Fast => libc::SIGINT,
            StopMode::Immediate => libc::SIGQUIT,
        }
    }
}

/// How long a signalled postmaster of ours may take to exit (pg_ctl's own default wait is 60 s).
const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// initdb options (reference 5.2 mode `new`).
#[derive(Debug, Clone, Default)]
pub struct InitdbOptions {
    /// Superuser name (`-U`).
    pub su_user: String,
    /// Superuser password, written to a temporary `--pwfile` (only given with md5 auth).
    pub su_password: Option<String>,
    /// `--locale`.
    pub locale: String,
    /// `--encoding`.
    pub encoding: String,
    /// Data checksums on (`--data-checksums`) or off (`--no-data-checksums` where initdb enables them by
    /// default).
    pub data_checksums: bool,
    /// The binaries' major version (`None` if unknown): picks version-dependent flags.
    pub major: Option<u32>,
}

/// Last output lines of a program, shared between its log pumps and the caller.
type OutputTail = Arc<Mutex<VecDeque<String>>>;

/// The postmaster we started: its pid, exit notification and recent output.
struct Postmaster {
    pid: u32,
    exited: watch::Receiver<Option<ExitStatus>>,
    tail: OutputTail,
}

/// One PostgreSQL data directory and the programs that act on it.
pub struct PgProcess {
    bin_dir: Option<PathBuf>,
    pgdata: PathBuf,
    os_user: Option<OsUser>,
    postmaster: tokio::sync::Mutex<Option<Postmaster>>,
}

fn push_tail(tail: &OutputTail, line: String) {
    if let Ok(mut t) = tail.lock() {
        if t.len() == OUTPUT_TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }
}

fn tail_text(tail: &OutputTail) -> String {
    tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
}

/// Forwards every line of `reader` to the logs (tagged with `program`) and into `tail`.
fn pump_lines<R: AsyncRead + Unpin + Send + 'static>(
    program: String,
    reader: R,
    tail: OutputTail,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "postgres", program = %program, "{line}");
            push_tail(&tail, line);
        }
    })
}

impl PgProcess {
    /// A handle on `pgdata` (absolute path) using the binaries of `bin_dir` (`None` = `$PATH`), run as
    /// `os_user` when given.
    pub fn new(bin_dir: Option<PathBuf>, pgdata: PathBuf, os_user: Option<OsUser>) -> Self {
        PgProcess { bin_dir, pgdata, os_user, postmaster: tokio::sync::Mutex::new(None) }
    }

    /// PGDATA.
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// The OS user programs run as (`None` = the keeper's own user).
    pub fn os_user(&self) -> Option<&OsUser> {
        self.os_user.as_ref()
    }

    /// Full path (or bare name for `$PATH` lookup) of a PostgreSQL program.
    pub fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// A command for program `name`, run as the OS user, in `/`, with piped output.
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.program(name));
        if let Some(u) = &self.os_user {
            cmd.uid(u.uid).gid(u.gid);
        }
        cmd.current_dir("/").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    /// Runs `cmd` to completion, logging its output; a non-zero exit is an error with the output's tail.
    pub async fn run(&self, name: &str, mut cmd: Command) -> PgResult<String> {
        let status_output = self.run_status(name, &mut cmd).await?;
        match status_output {
            (s, out) if s.success() => Ok(out),
            (s, out) => Err(PgError::Command { program: name.to_string(), status: s.to_string(), output: out }),
        }
    }

    /// Runs `cmd` to completion without forwarding its output to the logs (for queries run every few
    /// seconds); returns its standard output, and a non-zero exit is an error with its standard error.
    pub async fn run_quiet(&self, name: &str, mut cmd: Command) -> PgResult<String> {
        let out = cmd.output().await.map_err(|source| PgError::Spawn { program: self.program(name), source })?;
        if !out.status.success() {
            return Err(PgError::Command {
                program: name.to_string(),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `cmd`, returning its exit status and the tail of its output.
    async fn run_status(&self, name: &str, cmd: &mut Command) -> PgResult<(ExitStatus, String)> {
        let mut child = cmd.spawn().map_err(|source| PgError::Spawn { program: self.program(name), source })?;
        let tail: OutputTail = Arc::default();
        let pumps: Vec<_> = [
            child.stdout.take().map(|o| pump_lines(name.to_string(), o, tail.clone())),
            child.stderr.take().map(|e| pump_lines(name.to_string(), e, tail.clone())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let status = child.wait().await.map_err(|e| PgError::io("wait for", self.program(name), e))?;
        for p in pumps {
            let _ = p.await;
        }
        Ok((status, tail_text(&tail)))
    }

    /// `postgres -V`.
    pub async fn binary_version(&self) -> PgResult<PgVersion> {
        let mut cmd = self.command("postgres");
        cmd.arg("-V");
        let out = self.run("postgres", cmd).await?;
        parse_binary_version(&out)
    }

    /// Creates PGDATA (mode 0700, owned by the OS user) if missing.
    pub fn create_pgdata(&self) -> PgResult<()> {
        let p = &self.pgdata;
        if !p.exists() {
            std::fs::create_dir_all(p).map_err(|e| PgError::io("create", p, e))?;
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).map_err(|e| PgError::io("chmod", p, e))?;
        if let Some(u) = &self.os_user {
            u.chown(p)?;
        }
        Ok(())
    }

    /// Checks that an existing PGDATA belongs to the user PostgreSQL runs as.
    pub fn check_pgdata_owner(&self) -> PgResult<()> {
        let meta = match std::fs::metadata(&self.pgdata) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(PgError::io("stat", &self.pgdata, e)),
        };
        // SAFETY: geteuid has no preconditions.
        let expected = self.os_user.as_ref().map(|u| u.uid).unwrap_or_else(|| unsafe { libc::geteuid() });
        if meta.uid() != expected {
            return Err(PgError::State(format!(
                "data directory {} is owned by uid {} but PostgreSQL runs as uid {expected}",
                self.pgdata.display(),
                meta.uid()
            )));
        }
        Ok(())
    }

    /// Deletes PGDATA; refuses while a postmaster runs on it.
    pub async fn remove_pgdata(&self) -> PgResult<()> {
        if self.is_running().await? {
            return Err(PgError::State(format!("refusing to remove {} while postgres runs", self.pgdata.display())));
        }
        tracing::warn!(pgdata = %self.pgdata.display(), "removing data directory");
        match std::fs::remove_dir_all(&self.pgdata) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PgError::io("remove", &self.pgdata, e)),
        }
    }

    /// Runs initdb; PGDATA is removed again if it fails.
    pub async fn initdb(&self, opts: &InitdbOptions) -> PgResult<()> {
        self.create_pgdata()?;
        let parent = self.pgdata.parent().unwrap_or(Path::new("/tmp"));
        let pwfile = match &opts.su_password {
            Some(p) => Some(SecretFile::create(parent, "pwfile", &format!("{p}\n"), self.os_user.as_ref())?),
            None => None,
        };
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.pgdata).arg("-U").arg(&opts.su_user);
        if let Some(f) = &pwfile {
            cmd.arg("--pwfile").arg(f.path());
        }
        if !opts.locale.is_empty() {
            cmd.arg("--locale").arg(&opts.locale);
        }
        if !opts.encoding.is_empty() {
            cmd.arg("--encoding").arg(&opts.encoding);
        }
        cmd.args(super::version::initdb_checksum_args(opts.major, opts.data_checksums));
        let res = self.run("initdb", cmd).await;
        drop(pwfile);
        if res.is_err() {
            let _ = std::fs::remove_dir_all(&self.pgdata);
        }
        res.map(|_| ())
    }

    /// Starts the postmaster as our child (`config_file` overrides the configuration file, e.g. the temporary
    /// one). Returns once `postmaster.pid` names the child ("running", not yet "ready"). The caller writes the
    /// configuration files first.
    pub async fn start(&self, config_file: Option<&Path>) -> PgResult<()> {
        tracing::info!("{}", messages::STARTING_DATABASE);
        let mut guard = self.postmaster.lock().await;
        let mut cmd = self.command("postgres");
        cmd.arg("-D").arg(&self.pgdata).arg("-c").arg(format!("unix_socket_directories={SOCKET_DIR}"));
        if let Some(c) = config_file {
            cmd.arg("-c").arg(format!("config_file={}", c.display()));
        }
        // Own process group: a terminal's Ctrl-C reaches the keeper only, which then stops postgres itself.
        cmd.process_group(0).kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|source| PgError::Spawn { program: self.program("postgres"), source })?;
        let pid = child.id().ok_or_else(|| PgError::State("postgres exited immediately".into()))?;
        let tail: OutputTail = Arc::default();
        if let Some(o) = child.stdout.take() {
            pump_lines("postgres".into(), o, tail.clone());
        }
        if let Some(e) = child.stderr.take() {
            pump_lines("postgres".into(), e, tail.clone());
        }
        let (tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            if let Some(s) = status {
                tracing::info!(pid, status = %s, "postgres exited");
            }
            let _ = tx.send(status.or_else(|| Some(std::os::unix::process::ExitStatusExt::from_raw(0))));
        });
        // Recorded at once: a start cancelled before postmaster.pid appears (the keeper shutting down) still
        // leaves stop() a child to stop, instead of an orphan postmaster nobody knows of.
        *guard = Some(Postmaster { pid, exited: exited.clone(), tail: tail.clone() });
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let exit_status = *exited.borrow();
            if let Some(status) = exit_status {
                // Give the log pumps a moment to collect the reason.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(PgError::Command {
                    program: "postgres".into(),
                    status: status.to_string(),
                    output: tail_text(&tail),
                });
            }
            if pidfile_names(&self.pgdata, pid) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(PgError::Timeout(format!(
                    "postgres did not write {}",
                    self.pgdata.join("postmaster.pid").display()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        tracing::info!(pid, pgdata = %self.pgdata.display(), "postgres started");
        Ok(())
    }

    /// Whether a postmaster runs on PGDATA (ours or an orphan from a previous keeper): `pg_ctl status`.
    pub async fn is_running(&self) -> PgResult<bool> {
        if let Some(pm) = self.postmaster.lock().await.as_ref() {
            if pm.exited.borrow().is_none() {
                return Ok(true);
            }
        }
        if !self.pgdata.join("PG_VERSION").exists() {
            return Ok(false);
        }
        let mut cmd = self.command("pg_ctl");
        cmd.arg("status").arg("-D").arg(&self.pgdata);
        let (status, out) = self.run_status("pg_ctl", &mut cmd).await?;
        match status.code() {
            Some(0) => Ok(true),
            Some(3) | Some(4) => Ok(false),
            _ => Err(PgError::Command { program: "pg_ctl status".into(), status: status.to_string(), output: out }),
        }
    }

    /// The pid of the postmaster we started, if it still runs.
    pub async fn child_pid(&self) -> Option<u32> {
        self.postmaster.lock().await.as_ref().filter(|p| p.exited.borrow().is_none()).map(|p| p.pid)
    }

    /// Stops postgres if it runs, then reaps our child. Our own postmaster is signalled directly and its exit
    /// awaited; any other postmaster is stopped with `pg_ctl stop -w -m <mode>`.
    pub async fn stop(&self, mode: StopMode) -> PgResult<()> {
        if !self.is_running().await? {
            *self.postmaster.lock().await = None;
            return Ok(());
        }
        tracing::info!("{}", messages::STOPPING_DATABASE);
        if let Some(pid) = self.child_pid().await {
            return self.stop_child(pid, mode).await;
        }
        let mut cmd = self.command("pg_ctl");
        cmd.arg("stop").arg("-w").arg("-D").arg(&self.pgdata).arg("-m").arg(mode.as_str());
        let res = self.run("pg_ctl", cmd).await;
        let mut guard = self.postmaster.lock().await;
        if let Some(pm) = guard.as_mut() {
            let mut rx = pm.exited.clone();
            let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.is_some())).await;
        }
        if res.is_err() && self.is_running_unlocked(&guard).await {
            return res.map(|_| ());
        }
        *guard = None;
        tracing::info!(pgdata = %self.pgdata.display(), mode = mode.as_str(), "postgres stopped");
        Ok(())
    }

    /// Signals our own postmaster `pid` with the mode's signal, as pg_ctl would, and awaits its exit (also
    /// one that has not written postmaster.pid yet, which pg_ctl cannot find). No polling: a switchover's
    /// fence waits on this.
    async fn stop_child(&self, pid: u32, mode: StopMode) -> PgResult<()> {
        let mut guard = self.postmaster.lock().await;
        let Some(pm) = guard.as_mut().filter(|p| p.pid == pid) else { return Ok(()) };
        let mut rx = pm.exited.clone();
        let deadline = tokio::time::Instant::now() + CHILD_STOP_TIMEOUT;
        loop {
            // The postmaster installs its signal handlers before it writes postmaster.pid. Until then a signal
            // can be lost: ignored when the keeper itself was started with SIGINT ignored (a background job of
            // a non-interactive shell, nohup), so it is repeated until the pid file shows the handlers in place.
            let handlers_installed = pidfile_names(&self.pgdata, pid);
            // SAFETY: kill(2) on our own child's pid, which the exit watch has not reported reaped.
            unsafe { libc::kill(pid as libc::pid_t, mode.signal()) };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = if handlers_installed { left } else { left.min(POLL_INTERVAL) };
            if tokio::time::timeout(wait, rx.wait_for(|s| s.is_some())).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PgError::Timeout(format!("postgres {pid} did not stop in {CHILD_STOP_TIMEOUT:?}")));
            }
        }
        *guard = None;
        tracing::info!(pgdata = %self.pgdata.display(), mode = mode.as_str(), "postgres stopped");
        Ok(())
    }

    async fn is_running_unlocked(&self, guard: &Option<Postmaster>) -> bool {
        guard.as_ref().is_some_and(|p| p.exited.borrow().is_none())
    }

    /// The tail of the postmaster's output (for error messages).
    pub async fn postmaster_output(&self) -> String {
        self.postmaster.lock().await.as_ref().map(|p| tail_text(&p.tail)).unwrap_or_default()
    }

    /// `pg_ctl reload`.
    pub async fn reload(&self) -> PgResult<()> {
        tracing::info!("{}", messages::RELOADING_DATABASE);
        let mut cmd = self.command("pg_ctl");
        cmd.arg("reload").arg("-D").arg(&self.pgdata);
        self.run("pg_ctl", cmd).await.map(|_| ())
    }

    /// `pg_ctl promote -W`: asks for the promotion and returns at once (the caller waits for its end).
    pub async fn request_promotion(&self) -> PgResult<()> {
        tracing::info!("{}", messages::PROMOTING_DATABASE);
        let mut cmd = self.command("pg_ctl");
        cmd.arg("promote").arg("-W").arg("-D").arg(&self.pgdata);
        self.run("pg_ctl", cmd).await.map(|_| ())
    }
}

/// Whether `<pgdata>/postmaster.pid` names `pid` on its first line.
fn pidfile_names(pgdata: &Path, pid: u32) -> bool {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .is_ok_and(|content| content.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) == Some(pid))
}
