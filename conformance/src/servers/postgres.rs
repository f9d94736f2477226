//! A real PostgreSQL server: the installation `PG_BIN_DIR` names (default Debian's `postgresql-15`; see
//! [`postgres_bin_dir`]), checked to run the requested major version.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, `initdb` and `postgres` are started as
//! the unprivileged user `postgres` (the temporary directory is handed to that user). The server listens
//! on `127.0.0.1:<free port>` with its Unix socket inside the temporary directory, and its superuser has
//! a password (SCRAM over TCP), so clients connect as any client would.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::free_port;
use super::process::{log_tail, spawn_logged};

/// The superuser the test servers create.
pub const POSTGRES_TEST_USER: &str = "postgres";
/// The superuser's password.
pub const POSTGRES_TEST_PASSWORD: &str = "stolon-test-password";

const INSTALL_HINT: &str = "install it with `scripts/install-postgres 15` (Debian's postgresql-15), or set PG_BIN_DIR \
     to the bin directory `scripts/install-postgres 16|17|18` prints";

/// Debian bookworm's PostgreSQL 15, the default installation of the tests.
pub const DEBIAN_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The directory holding `initdb`, `postgres`, `pg_ctl`, `pg_basebackup`, `pg_rewind`, `pg_isready` and
/// `psql` for every test that starts PostgreSQL: `PG_BIN_DIR` when set (the one variable that picks the
/// version under test), else Debian's PostgreSQL 15 ([`DEBIAN_BIN_DIR`]). Never falls back to another
/// installation: a `PG_BIN_DIR` without `postgres` is an error.
pub fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        anyhow::ensure!(dir.join("postgres").is_file(), "PG_BIN_DIR={} holds no `postgres` binary", dir.display());
        return Ok(dir);
    }
    let dir = PathBuf::from(DEBIAN_BIN_DIR);
    if dir.join("postgres").is_file() {
        return Ok(dir);
    }
    bail!("PostgreSQL server binaries not found in {DEBIAN_BIN_DIR} and PG_BIN_DIR is not set: {INSTALL_HINT}")
}

/// A second PostgreSQL installation, of another major version than [`postgres_bin_dir`]'s, for the scenario
/// that mixes major versions: `PG_OTHER_BIN_DIR` (required by that scenario alone), with its major version.
pub fn postgres_other_bin_dir() -> anyhow::Result<(PathBuf, u32)> {
    let dir = std::env::var_os("PG_OTHER_BIN_DIR").filter(|d| !d.is_empty()).map(PathBuf::from).context(
        "PG_OTHER_BIN_DIR is not set: the major-version mismatch scenario needs a second PostgreSQL \
                  installation of another major version (e.g. PG_OTHER_BIN_DIR=$(scripts/install-postgres 17))",
    )?;
    let major = binary_major(&dir.join("postgres")).map_err(|e| anyhow::anyhow!("PG_OTHER_BIN_DIR: {e}"))?;
    let requested = postgres_requested_major()?;
    anyhow::ensure!(
        major != requested,
        "PG_OTHER_BIN_DIR={} is PostgreSQL {major}, the same major version as PG_BIN_DIR's",
        dir.display()
    );
    Ok((dir, major))
}

/// The major version `<postgres binary> --version` reports.
fn binary_major(bin: &Path) -> Result<u32, String> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} --version: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `postgres (PostgreSQL) 16.2`
    let token = text.split_once("(PostgreSQL)").map(|(_, v)| v.trim()).unwrap_or_default();
    leading_major(token).ok_or_else(|| format!("{} --version printed {:?}", bin.display(), text.trim()))
}

/// The PostgreSQL major version the tests asked for: the one `postgres --version` of [`postgres_bin_dir`]
/// reports (computed once per process).
pub fn postgres_requested_major() -> anyhow::Result<u32> {
    static MAJOR: OnceLock<Result<u32, String>> = OnceLock::new();
    MAJOR
        .get_or_init(|| binary_major(&postgres_bin_dir().map_err(|e| format!("{e:#}"))?.join("postgres")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Fails unless `version` (the result of `SELECT version()`, e.g. `PostgreSQL 16.2 on x86_64-pc-linux-gnu,
/// ...`) is of the requested major version ([`postgres_requested_major`]): a run can never silently test
/// another PostgreSQL than the one asked for. `what` names the instance in the error.
pub fn check_server_major(what: &str, version: &str) -> anyhow::Result<()> {
    let want = postgres_requested_major()?;
    let got = version.trim().strip_prefix("PostgreSQL ").and_then(leading_major);
    match got {
        Some(got) if got == want => Ok(()),
        Some(got) => bail!("{what} runs PostgreSQL {got}, but PostgreSQL {want} was requested ({version:?})"),
        None => bail!("{what}: cannot read the major version of {version:?}"),
    }
}

/// The leading decimal number of `s` (`16` of `16.2 on ...`, `17` of `17beta1`).
fn leading_major(s: &str) -> Option<u32> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The uid and gid PostgreSQL must run as: those of the user `postgres` when this process is root, `None`
/// (run as ourselves) otherwise. Fails when running as root and no `postgres` user exists.
pub fn postgres_run_as() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").expect("no NUL in a literal");
    // SAFETY: getpwnam reads a NUL-terminated name; the returned record is copied out at once (tests start
    // servers from several threads, but only read the passwd database).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("running as root, and PostgreSQL refuses to: no user `postgres` to run it as ({INSTALL_HINT})");
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

/// Gives `path` to the user PostgreSQL runs as (no-op when not root).
pub fn chown_for_postgres(path: &Path, run_as: Option<(u32, u32)>) -> anyhow::Result<()> {
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// A command for a PostgreSQL binary, run as the PostgreSQL user when needed, in `cwd`.
pub fn postgres_command(bin: &Path, run_as: Option<(u32, u32)>, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin);
    if let Some((uid, gid)) = run_as {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir(cwd).env_remove("PGDATA").env("LC_ALL", "C");
    cmd
}

/// A PostgreSQL instance on loopback in a temporary directory, killed when dropped.
pub struct PostgresServer {
    bin_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    dir: tempfile::TempDir,
    port: u16,
    settings: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
}

impl PostgresServer {
    /// Creates a cluster with `initdb`, starts it on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<PostgresServer> {
        PostgresServer::start_with(&[])
    }

    /// Like [`PostgresServer::start`], with extra server settings (`-c name=value`).
    pub fn start_with(settings: &[(&str, &str)]) -> anyhow::Result<PostgresServer> {
        let bin_dir = postgres_bin_dir()?;
        let run_as = postgres_run_as()?;
        let dir = tempfile::Builder::new().prefix("stolon-pg-").tempdir()?;
        chown_for_postgres(dir.path(), run_as)?;
        let server = PostgresServer {
            bin_dir,
            run_as,
            dir,
            port: free_port(),
            settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: Mutex::new(None),
        };
        server.initdb()?;
        server.spawn()?;
        check_server_major(&format!("the test server on port {}", server.port), &server.psql("SELECT version()")?)?;
        Ok(server)
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A libpq/tokio-postgres connection string for the superuser over TCP to `port` (the server's own
    /// port, or a proxy's in front of it).
    pub fn connection_string_for_port(&self, port: u16) -> String {
        format!(
            "host=127.0.0.1 port={port} user={POSTGRES_TEST_USER} password={POSTGRES_TEST_PASSWORD} dbname=postgres \
             connect_timeout=10"
        )
    }

    /// A connection string for the superuser over TCP to this server.
    pub fn connection_string(&self) -> String {
        self.connection_string_for_port(self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the PostgreSQL binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The process id of the postmaster, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().expect("postgres child lock").as_ref().map(Child::id)
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let pwfile = self.dir.path().join("pwfile");
        std::fs::write(&pwfile, POSTGRES_TEST_PASSWORD)?;
        chown_for_postgres(&pwfile, self.run_as)?;
        let log = self.dir.path().join("initdb.log");
        let mut cmd = postgres_command(&self.bin_dir.join("initdb"), self.run_as, self.dir.path());
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", POSTGRES_TEST_USER, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let mut child = spawn_logged(cmd, &log)?;
        let status = child.wait()?;
        std::fs::remove_file(&pwfile).ok();
        if !status.success() {
            bail!("initdb failed with {status}:\n{}", log_tail(&log, 20));
        }
        Ok(())
    }

    fn spawn(&self) -> anyhow::Result<()> {
        let mut cmd = postgres_command(&self.bin_dir.join("postgres"), self.run_as, self.dir.path());
        cmd.arg("-D").arg(self.data_dir()).args(["-p", &self.port.to_string()]);
        cmd.arg("-c").arg("listen_addresses=127.0.0.1");
        cmd.arg("-c").arg(format!("unix_socket_directories={}", self.dir.path().display()));
        for (k, v) in &self.settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let child = spawn_logged(cmd, &self.log_path())?;
        *self.child.lock().expect("postgres child lock") = Some(child);
        self.wait_ready(Duration::from_secs(60))
    }

    fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if self.ready() {
                return Ok(());
            }
            if let Some(child) = self.child.lock().expect("postgres child lock").as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("postgres exited with {status} during start-up:\n{}", log_tail(&self.log_path(), 20));
            }
            if start.elapsed() > limit {
                bail!("postgres not ready after {limit:?}:\n{}", log_tail(&self.log_path(), 20));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ready(&self) -> bool {
        Command::new(self.bin_dir.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs `sql` with `psql` over TCP as the superuser (password auth) and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin_dir.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", POSTGRES_TEST_USER, "-d", "postgres", "-c", sql])
            .env("PGPASSWORD", POSTGRES_TEST_PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops the server with a fast shutdown and waits for it; its data is kept for
    /// [`PostgresServer::restart`].
    pub fn stop(&self) -> anyhow::Result<()> {
        self.signal_and_wait(libc::SIGINT, Duration::from_secs(30))
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn()
    }

    fn signal_and_wait(&self, signal: libc::c_int, limit: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.lock().expect("postgres child lock").take() else {
            return Ok(());
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill on the pid of our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, signal) };
        }
        let start = Instant::now();
        while start.elapsed() < limit {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().context("killing postgres")?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Immediate shutdown: the postmaster takes its backends down with it.
        let _ = self.signal_and_wait(libc::SIGQUIT, Duration::from_secs(10));
    }
}
