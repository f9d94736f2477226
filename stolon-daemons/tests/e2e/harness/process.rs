//! One component (keeper, sentinel, proxy) run as a child process with its output in a log file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::R;

/// How long a graceful stop (SIGINT) may take before it is an error.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A restartable child process. Dropping it thaws and kills the process.
pub struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Process {
    /// A process that is not started yet.
    pub fn new(name: &str, program: &Path, args: Vec<String>, env: Vec<(String, String)>, log: PathBuf) -> Process {
        Process { name: name.to_string(), program: program.to_path_buf(), args, env, log, child: None, starts: 0 }
    }

    /// The component's name (`keeper0`, `sentinel1`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file (every start appends to it after a marker line).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the process (an error if it runs already).
    pub fn start(&mut self) -> R<()> {
        if self.is_running() {
            bail!("{} is already running", self.name);
        }
        self.starts += 1;
        let mut out = File::options().create(true).append(true).open(&self.log).context("opening the log")?;
        writeln!(out, "===== e2e harness: start #{} of {} =====", self.starts, self.name)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null()).stdout(out).stderr(err);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().with_context(|| format!("spawning {}", self.program.display()))?);
        Ok(())
    }

    /// The pid while the process runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Graceful stop: SIGINT (a keeper then stops its PostgreSQL) and wait for the exit.
    pub async fn stop(&mut self) -> R<()> {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGINT);
        if !self.wait_exit(STOP_LIMIT).await? {
            self.signal(libc::SIGKILL);
            self.wait_exit(Duration::from_secs(10)).await?;
            bail!("{} did not exit within {STOP_LIMIT:?} of SIGINT (killed)", self.name);
        }
        self.child = None;
        Ok(())
    }

    /// SIGKILL and wait for the exit, as a crash.
    pub async fn kill(&mut self) -> R<()> {
        self.signal(libc::SIGKILL);
        if !self.wait_exit(Duration::from_secs(10)).await? {
            bail!("{} still running 10 s after SIGKILL", self.name);
        }
        self.child = None;
        Ok(())
    }

    /// SIGSTOP: the process stays alive but does nothing (a partition, as far as its peers can tell).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Process::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Graceful stop then start.
    pub async fn restart(&mut self) -> R<()> {
        self.stop().await?;
        self.start()
    }

    /// Replaces the value of `flag` (or appends `flag value`); effective at the next start.
    pub fn set_arg(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < self.args.len() => self.args[i + 1] = value.to_string(),
            _ => self.args.extend([flag.to_string(), value.to_string()]),
        }
    }

    /// Removes `flag` and its value; effective at the next start.
    pub fn remove_arg(&mut self, flag: &str) {
        if let Some(i) = self.args.iter().position(|a| a == flag) {
            self.args.drain(i..(i + 2).min(self.args.len()));
        }
    }

    /// Appends arguments; effective at the next start.
    pub fn add_args(&mut self, extra: &[&str]) {
        self.args.extend(extra.iter().map(|s| s.to_string()));
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The current log length, to wait for lines written after this point.
    pub fn log_len(&self) -> usize {
        self.log_text().len()
    }

    /// Waits until a line containing `needle` appears in the log after byte `from`.
    pub async fn wait_log(&self, from: usize, needle: &str, limit: Duration) -> R<()> {
        let start = Instant::now();
        loop {
            let text = self.log_text();
            if text.get(from..).is_some_and(|t| t.contains(needle)) {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("{}: no log line containing {needle:?} within {limit:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits up to `limit` for the process to exit on its own; returns its success.
    pub async fn wait_exited(&mut self, limit: Duration) -> R<bool> {
        if !self.wait_exit(limit).await? {
            bail!("{} still running after {limit:?}", self.name);
        }
        let status = self.child.take().and_then(|mut c| c.try_wait().ok().flatten());
        Ok(status.is_some_and(|s| s.success()))
    }

    fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid (not yet reaped, so not reused).
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// True once exited (the child stays reaped-but-recorded), false on timeout.
    async fn wait_exit(&mut self, limit: Duration) -> R<bool> {
        let start = Instant::now();
        loop {
            match self.child.as_mut() {
                None => return Ok(true),
                Some(c) => {
                    if c.try_wait()?.is_some() {
                        return Ok(true);
                    }
                }
            }
            if start.elapsed() > limit {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Process {
    /// SIGKILL and reap at once (blocking), for teardown.
    pub fn kill_now(&mut self) -> R<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.kill_now();
    }
}

/// Sends `sig` to `pid` (for processes that are not our children, e.g. a postmaster).
pub fn send_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a pid read from a file we own; no memory is shared.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').next()).unwrap_or("");
    !state.is_empty() && state != "Z"
}
