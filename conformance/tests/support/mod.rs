//! Runs every conformance case as its own test (libtest-mimic) against a real etcd started for the run.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use stolon_conformance::servers::{EtcdFactory, EtcdServer};
use stolon_conformance::{Outcome, StoreFactory, cases};

/// The store timeout used by the suite's clients.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Starts etcd, builds the factory, and runs every case as a named test.
pub fn run_suite(label: &str, make: impl FnOnce(Arc<EtcdServer>) -> EtcdFactory) {
    let args = Arguments::from_args();
    let server = match EtcdServer::start() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("cannot run the {label} conformance suite: {e:#}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let factory: Arc<dyn StoreFactory> = Arc::new(make(server.clone()));
    let trials = case_trials(label, factory.clone(), runtime.handle());
    let conclusion = libtest_mimic::run(&args, trials);
    drop(factory);
    drop(runtime);
    drop(server);
    conclusion.exit();
}

/// One test per conformance case, run on `handle` with stores from `factory`; a skipped case fails.
pub fn case_trials(label: &str, factory: Arc<dyn StoreFactory>, handle: &tokio::runtime::Handle) -> Vec<Trial> {
    cases::all()
        .into_iter()
        .map(|case| {
            let (factory, handle) = (factory.clone(), handle.clone());
            Trial::test(format!("{label}::{}", case.name), move || match handle.block_on(case.run(factory)) {
                Ok(Outcome::Passed) => Ok(()),
                Ok(Outcome::Skipped(why)) => Err(Failed::from(format!("skipped in a run that owns its server: {why}"))),
                Err(e) => Err(Failed::from(format!("{e:#}"))),
            })
        })
        .collect()
}

/// What `stolon-conformance` printed and how it ended.
pub struct RunnerRun {
    /// The exit status.
    pub status: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl RunnerRun {
    /// The runner's output, for failure messages.
    pub fn transcript(&self) -> String {
        format!("exit status {:?}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }

    /// Checks that every case passed except `skipped` ones, which must be reported as skipped with a reason.
    pub fn check_all_passed_but(&self, skipped: &[&str]) -> anyhow::Result<()> {
        let fail = |why: String| anyhow::anyhow!("{why}\n{}", self.transcript());
        if self.status != Some(0) {
            return Err(fail("the runner did not exit with status 0".into()));
        }
        let all = cases::all();
        for case in &all {
            let line = self
                .stdout
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(case.name))
                .ok_or_else(|| fail(format!("no result line for {}", case.name)))?;
            if skipped.contains(&case.name) {
                // `skipped <name> <seconds>s  <reason>`
                if !line.starts_with("skipped ") || line.split_whitespace().count() < 4 {
                    return Err(fail(format!("{} must be skipped with a reason: {line}", case.name)));
                }
            } else if !line.starts_with("ok ") {
                return Err(fail(format!("{} did not pass: {line}", case.name)));
            }
        }
        let summary = format!("{} passed, 0 failed, {} skipped", all.len() - skipped.len(), skipped.len());
        if !self.stdout.lines().any(|l| l == summary) {
            return Err(fail(format!("summary line {summary:?} missing")));
        }
        Ok(())
    }
}

/// Runs the `stolon-conformance` binary with `args` (and `env`) until it exits, or interrupts it with SIGINT
/// as soon as `interrupt_when` returns true (polled every 100 ms) when given.
pub fn run_runner(args: &[String], env: &[(&str, &str)], interrupt_when: Option<&dyn Fn() -> bool>) -> RunnerRun {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stolon-conformance"));
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return RunnerRun { status: None, stdout: String::new(), stderr: format!("cannot start: {e}") },
    };
    if let Some(ready) = interrupt_when {
        let start = std::time::Instant::now();
        while !ready() && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: kill(2) on the child we just started (still ours: it is reaped only below).
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
    }
    match child.wait_with_output() {
        Ok(out) => RunnerRun {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => RunnerRun { status: None, stdout: String::new(), stderr: format!("cannot wait: {e}") },
    }
}
