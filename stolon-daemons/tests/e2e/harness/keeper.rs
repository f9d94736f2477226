//! A stolon-keeper process with its data directory, PostgreSQL port and postmaster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use stolon_conformance::servers::postgres_bin_dir;
use tokio_postgres::Client;

use super::R;
use super::process::{Process, alive, send_signal};
use super::sql;

/// One keeper of the cluster under test.
pub struct Keeper {
    /// `--uid`.
    pub uid: String,
    /// `--pg-port`.
    pub pg_port: u16,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// The keeper process.
    pub proc: Process,
    /// Set once a connection found PostgreSQL of the requested major version (checked once per keeper).
    pub version_checked: std::sync::atomic::AtomicBool,
}

impl Keeper {
    /// PostgreSQL's data directory inside the keeper's.
    pub fn pgdata(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }

    /// The postmaster's pid from `postmaster.pid`, if PostgreSQL runs.
    pub fn postmaster_pid(&self) -> Option<i32> {
        postmaster_pid(&self.pgdata())
    }

    /// Starts the keeper process.
    pub fn start(&mut self) -> R<()> {
        self.proc.start()
    }

    /// Graceful stop (SIGINT): the keeper stops PostgreSQL and exits.
    pub async fn stop(&mut self) -> R<()> {
        self.proc.stop().await?;
        self.wait_postmaster_gone(Duration::from_secs(30)).await
    }

    /// SIGKILL of the keeper only: PostgreSQL keeps running.
    pub async fn kill(&mut self) -> R<()> {
        self.proc.kill().await
    }

    /// SIGKILL of the keeper and of its postmaster (a crash of the whole node).
    pub async fn kill_all(&mut self) -> R<()> {
        let pm = self.postmaster_pid();
        self.proc.kill().await?;
        if let Some(pm) = pm {
            send_signal(pm, libc::SIGCONT);
            send_signal(pm, libc::SIGKILL);
        }
        self.wait_postmaster_gone(Duration::from_secs(30)).await
    }

    /// SIGSTOP of the keeper and its postmaster: a partition, as stolon's tests simulate it.
    pub fn freeze(&self) -> R<()> {
        let Some(pm) = self.postmaster_pid() else { bail!("{}: postgres is not running", self.uid) };
        self.proc.freeze();
        send_signal(pm, libc::SIGSTOP);
        Ok(())
    }

    /// SIGCONT after [`Keeper::freeze`].
    pub fn thaw(&self) {
        if let Some(pm) = self.postmaster_pid() {
            send_signal(pm, libc::SIGCONT);
        }
        self.proc.thaw();
    }

    /// Signals the postmaster only (e.g. SIGSTOP, SIGKILL); false when PostgreSQL is not running.
    pub fn signal_postmaster(&self, sig: i32) -> bool {
        self.postmaster_pid().is_some_and(|pm| send_signal(pm, sig))
    }

    /// Changes the PostgreSQL port, effective at the next start.
    pub fn set_pg_port(&mut self, port: u16) {
        self.pg_port = port;
        self.proc.set_arg("--pg-port", &port.to_string());
    }

    /// A superuser connection straight to this keeper's PostgreSQL. The first one checks that the server
    /// runs the requested PostgreSQL major version (`PG_BIN_DIR`): every scenario reaches its keepers'
    /// instances through here, so none can silently run another version.
    pub async fn connect(&self) -> R<Client> {
        use std::sync::atomic::Ordering;
        let client = sql::connect(self.pg_port).await?;
        if !self.version_checked.load(Ordering::Relaxed) {
            let version = sql::query_text(&client, "SELECT version()").await?;
            stolon_conformance::servers::check_server_major(&format!("keeper {}'s postgres", self.uid), &version)?;
            self.version_checked.store(true, Ordering::Relaxed);
        }
        Ok(client)
    }

    /// Whether this keeper's PostgreSQL is a standby (`pg_is_in_recovery()`).
    pub async fn in_recovery(&self) -> R<bool> {
        sql::in_recovery(&self.connect().await?).await
    }

    /// The rows of the test table on this keeper.
    pub async fn row_ids(&self) -> R<Vec<i32>> {
        sql::row_ids(&self.connect().await?).await
    }

    /// Waits until the postmaster recorded in the data directory is gone.
    pub async fn wait_postmaster_gone(&self, limit: Duration) -> R<()> {
        let start = Instant::now();
        while let Some(pm) = self.postmaster_pid().filter(|pm| alive(*pm)) {
            if start.elapsed() > limit {
                bail!("{}: postmaster {pm} still running after {limit:?}", self.uid);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // The keeper process dies with its Process; its postmaster would outlive it: immediate shutdown.
        let _ = self.proc.kill_now();
        if let Some(pm) = self.postmaster_pid().filter(|pm| alive(*pm)) {
            send_signal(pm, libc::SIGCONT);
            send_signal(pm, libc::SIGQUIT);
            let start = Instant::now();
            while alive(pm) && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pm) {
                send_signal(pm, libc::SIGKILL);
            }
        }
    }
}

/// The flags every test keeper `uid` runs with: its data directory, PostgreSQL's address and port, the
/// PostgreSQL binaries and the harness's users (the store flags and any extra flags come on top).
pub fn keeper_flags(uid: &str, data_dir: &Path, pg_listen_address: &str, pg_port: u16) -> R<Vec<String>> {
    Ok([
        "--uid",
        uid,
        "--data-dir",
        &data_dir.to_string_lossy(),
        "--pg-listen-address",
        pg_listen_address,
        "--pg-port",
        &pg_port.to_string(),
        "--pg-bin-path",
        &postgres_bin_dir()?.to_string_lossy(),
        "--pg-os-user",
        "postgres",
        "--pg-su-username",
        sql::SU,
        "--pg-su-password",
        sql::SU_PASSWORD,
        "--pg-repl-username",
        sql::REPL,
        "--pg-repl-password",
        sql::REPL_PASSWORD,
        "--log-level",
        "debug",
    ]
    .map(String::from)
    .to_vec())
}

/// The pid on the first line of `<pgdata>/postmaster.pid`.
pub fn postmaster_pid(pgdata: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    alive(pid).then_some(pid)
}
