//! The main of every end-to-end test binary: picks the backends, runs the scenarios as libtest trials.
//!
//! `STOLON_TEST_SUITE` is `ci` (the default: CI's matrix, the `Core` scenarios on every backend and the `Full`
//! ones on etcd v3), `full` (`scripts/test --full`: every scenario, `Extended` ones included, on every
//! backend) or `versions` (the scenarios marked `across_versions`, on etcd v3, which CI runs once per tested
//! PostgreSQL major with `PG_BIN_DIR` set). `STOLON_TEST_STORE_BACKEND=etcdv2|etcdv3|consul|kubernetes` runs the suite's scenarios on that store
//! only. `STOLON_E2E_PARALLEL` (default 3)
//! bounds how many scenarios run at once (libtest's `--test-threads` wins when given). A failing scenario
//! prints the tail of every component's log.

use std::num::NonZeroUsize;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

use super::{Backend, Env, Scenario, Tier};

/// The bound of one scenario.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);
/// Log lines printed per component when a scenario fails.
const LOG_TAIL: usize = 80;

/// Runs `all` as this test binary's trials and exits with libtest's status.
pub fn run(all: Vec<Scenario>) {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        let parallel = std::env::var("STOLON_E2E_PARALLEL").ok().and_then(|p| p.parse().ok()).unwrap_or(3);
        args.test_threads = Some(parallel);
    }
    let chosen = match std::env::var("STOLON_TEST_STORE_BACKEND").ok().filter(|b| !b.is_empty()) {
        Some(b) => match Backend::parse(&b) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("{e:#}");
                std::process::exit(2);
            }
        },
        None => None,
    };
    let suite = match std::env::var("STOLON_TEST_SUITE").as_deref() {
        Ok("full") => Suite::Full,
        Ok("versions") => Suite::Versions,
        Ok("ci") | Ok("") | Err(_) => Suite::Ci,
        Ok(other) => {
            eprintln!("STOLON_TEST_SUITE={other:?}: expected ci, full or versions");
            std::process::exit(2);
        }
    };
    let workers = NonZeroUsize::new(args.test_threads.unwrap_or(3).max(2)).map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let trials = trials(&all, chosen, suite, runtime.handle());
    let conclusion = libtest_mimic::run(&args, trials);
    runtime.block_on(super::store::shutdown_shared_servers());
    drop(runtime);
    conclusion.exit();
}

/// Which scenarios a run takes (`STOLON_TEST_SUITE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    /// CI's matrix: `Core` scenarios on every backend, `Full` ones on etcd v3.
    Ci,
    /// Every scenario on every backend.
    Full,
    /// The scenarios marked [`Scenario::across_versions`], on etcd v3: run once per tested PostgreSQL major.
    Versions,
}

fn trials(all: &[Scenario], chosen: Option<Backend>, suite: Suite, handle: &tokio::runtime::Handle) -> Vec<Trial> {
    let full = suite == Suite::Full;
    let mut out = Vec::new();
    for backend in Backend::ALL {
        for s in all {
            let in_suite = match suite {
                Suite::Full => true,
                Suite::Ci => s.tier != Tier::Extended,
                Suite::Versions => s.across_versions,
            };
            let wanted = in_suite
                && match chosen {
                    Some(b) => b == backend,
                    None => full || (suite == Suite::Ci && s.tier == Tier::Core) || backend == Backend::EtcdV3,
                };
            if !wanted {
                continue;
            }
            let name = format!("{}::{}", backend.flag(), s.name);
            if let Some((_, why)) = s.not_on.iter().find(|(b, _)| *b == backend) {
                out.push(Trial::test(name, || Ok(())).with_ignored_flag(true).with_kind(*why));
                continue;
            }
            let (s, handle) = (s.clone(), handle.clone());
            out.push(Trial::test(name, move || run_one(&s, backend, &handle)));
        }
    }
    out
}

fn run_one(s: &Scenario, backend: Backend, handle: &tokio::runtime::Handle) -> Result<(), Failed> {
    let logs =
        tempfile::Builder::new().prefix("stolon-e2e-logs-").tempdir().map_err(|e| Failed::from(e.to_string()))?;
    let env = Env::new(backend, logs.path());
    let run = s.run(env.clone());
    let started = std::time::Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle.block_on(async move {
            match tokio::time::timeout(SCENARIO_LIMIT, run).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("scenario did not finish within {SCENARIO_LIMIT:?}")),
            }
        })
    }));
    // Each scenario's wall time, to measure what a scenario costs CI (docs/e2e.md).
    eprintln!("e2e: {}::{} ran {:.1} s", backend.flag(), s.name, started.elapsed().as_secs_f64());
    let error = match result {
        Ok(Ok(())) => {
            if std::env::var("STOLON_E2E_KEEP_LOGS").as_deref() == Ok("always") {
                eprintln!("e2e: {}::{} logs kept in {}", backend.flag(), s.name, logs.keep().display());
            }
            return Ok(());
        }
        Ok(Err(e)) => format!("{e:#}"),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            format!("panicked: {msg}")
        }
    };
    let mut report = format!("{}::{} failed: {error}\n", backend.flag(), s.name);
    for (name, path) in env.logs() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        report.push_str(&format!("----- {name} ({}), last {LOG_TAIL} lines -----\n", path.display()));
        report.push_str(&lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n"));
        report.push('\n');
    }
    if std::env::var_os("STOLON_E2E_KEEP_LOGS").is_some() {
        let kept = logs.keep();
        report.push_str(&format!("logs kept in {}\n", kept.display()));
    }
    Err(Failed::from(report))
}
