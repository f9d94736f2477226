//! The nemesis test binary (issue 17): the checkers' self-tests, a short nemesis run (CI) and the failsafe
//! scenarios, on a cluster whose components each live in a network namespace. `scripts/nemesis` runs the
//! nemesis with a seed, a fault count and hold times (docs/reliability.md). Needs root, iproute2 and nftables.

#[path = "e2e/harness/mod.rs"]
mod harness;
#[path = "nemesis/mod.rs"]
mod nemesis;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};
use nemesis::netns::Net;

/// The node the test process itself lives in (the clients' namespace).
const CLIENT: &str = "client";
/// The seed of CI's run (a fixed plan; `scripts/nemesis` draws a fresh one unless given `--seed`).
const CI_SEED: u64 = 20261206;
/// Log lines printed per component when a trial fails.
const LOG_TAIL: usize = 60;

fn main() {
    let mut args = Arguments::from_args();
    // One trial at a time: they share the bridge, and each loads the machine.
    args.test_threads = Some(1);
    // Every temporary directory of the run lives below one directory removed at exit, also on Ctrl-C.
    let run_dir = std::env::temp_dir().join(format!("stolon-nemesis-run-{}", std::process::id()));
    let setup = prepare(&run_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    {
        let run_dir = run_dir.clone();
        runtime.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
                return;
            };
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
            eprintln!("nemesis: interrupted: removing the namespaces and {}", run_dir.display());
            nemesis::netns::remove_own();
            let _ = std::fs::remove_dir_all(&run_dir);
            std::process::exit(130);
        });
    }
    let net: Result<Arc<Mutex<Net>>, String> = setup.map(|n| Arc::new(Mutex::new(n)));
    let mut trials = Vec::new();
    for (name, result) in nemesis::checkers::self_tests() {
        trials.push(Trial::test(format!("selftest::{name}"), move || result.map_err(Failed::from)));
    }
    for (name, result) in nemesis::failsafe::self_tests() {
        trials.push(Trial::test(format!("selftest::{name}"), move || result.map_err(Failed::from)));
    }
    trials.push(Trial::test("selftest::plan", || nemesis::faults::plan_self_test().map_err(Failed::from)));
    let handle = runtime.handle().clone();
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("nemesis::run", Box::new(|net, logs| Box::pin(nemesis_run(net, logs)))),
        (
            "failsafe::store_outage",
            Box::new(|net, logs| Box::pin(async move { nemesis::failsafe::run(net, CLIENT, &logs).await })),
        ),
    ];
    for (name, body) in scenarios {
        let (net, handle, run_dir) = (net.clone(), handle.clone(), run_dir.clone());
        trials.push(Trial::test(name, move || run_trial(name, &net, &handle, &run_dir, &body)));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(runtime);
    drop(net);
    let _ = std::fs::remove_dir_all(&run_dir);
    conclusion.exit();
}

type Body = Box<
    dyn Fn(Arc<Mutex<Net>>, PathBuf) -> std::pin::Pin<Box<dyn std::future::Future<Output = harness::R<()>> + Send>>
        + Send
        + Sync,
>;
type Scenario = Body;

/// Creates the run directory, the namespaces' hub and the client node, and moves this (still single-threaded)
/// process into the client node: every thread started afterwards is a client on the bridge.
fn prepare(run_dir: &Path) -> Result<Net, String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(run_dir).map_err(|e| e.to_string())?;
    // PostgreSQL runs as `postgres` and must reach the keepers' data directories below this one.
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    // SAFETY: no other thread runs yet (the runtime and the trials start later).
    unsafe { std::env::set_var("TMPDIR", run_dir) };
    let mut net = Net::create().map_err(|e| format!("{e:#}"))?;
    net.add_node(CLIENT).map_err(|e| format!("{e:#}"))?;
    net.enter(CLIENT).map_err(|e| format!("{e:#}"))?;
    Ok(net)
}

fn run_trial(
    name: &str,
    net: &Result<Arc<Mutex<Net>>, String>,
    handle: &tokio::runtime::Handle,
    run_dir: &Path,
    body: &Body,
) -> Result<(), Failed> {
    let net = net.as_ref().map_err(|e| Failed::from(format!("setting up the namespaces failed: {e}")))?;
    let logs = match std::env::var_os("NEMESIS_OUT").filter(|v| !v.is_empty()) {
        Some(out) => PathBuf::from(out).join(name.replace("::", "-")),
        None => run_dir.join(format!("logs-{}", name.replace("::", "-"))),
    };
    std::fs::create_dir_all(&logs).map_err(|e| Failed::from(e.to_string()))?;
    let result = handle.block_on(body(net.clone(), logs.clone()));
    // A failed trial may leave faults behind: none may leak into the next one.
    let _ = net.lock().unwrap_or_else(|e| e.into_inner()).heal_all();
    let Err(e) = result else { return Ok(()) };
    let mut report = format!("{name} failed: {e:#}\n");
    let mut entries: Vec<_> =
        std::fs::read_dir(&logs).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    entries.sort();
    for path in entries.iter().filter(|p| p.extension().is_some_and(|x| x == "log")) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        report.push_str(&format!("----- {}, last {LOG_TAIL} lines -----\n", path.display()));
        report.push_str(&lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n"));
        report.push('\n');
    }
    Err(Failed::from(report))
}

async fn nemesis_run(net: Arc<Mutex<Net>>, logs: PathBuf) -> harness::R<()> {
    let settings = nemesis::run::Settings::from_env(CI_SEED)?;
    if let Some(out) = &settings.out {
        std::fs::create_dir_all(out)?;
    }
    nemesis::run::run(net, CLIENT, &settings, &logs).await?;
    Ok(())
}
