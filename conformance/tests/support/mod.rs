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
