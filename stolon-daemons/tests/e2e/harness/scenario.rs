//! Scenarios and the environment each one runs in.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::R;
use super::store::Backend;

/// Where a scenario runs in CI's suite when no backend is chosen: `Core` scenarios run on every backend,
/// `Full` ones on etcd v3 only, `Extended` ones not at all (they run in the full suite,
/// `STOLON_TEST_SUITE=full`, which runs every scenario on every backend). With `STOLON_TEST_STORE_BACKEND` set,
/// the suite's scenarios run on that backend only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Core,
    Full,
    Extended,
}

type Body = Arc<dyn Fn(Env) -> Pin<Box<dyn Future<Output = R<()>> + Send>> + Send + Sync>;

/// A named scenario of the catalogue.
#[derive(Clone)]
pub struct Scenario {
    /// stolon's test name, e.g. `TestFailoverSyncRepl`.
    pub name: String,
    /// Which backends run it by default.
    pub tier: Tier,
    /// Backends it cannot run on, with the reason (e.g. stopping the shared kube-apiserver).
    pub not_on: Vec<(Backend, &'static str)>,
    /// Exercises PostgreSQL-version-dependent keeper paths: part of the `versions` suite, which CI runs on
    /// every tested PostgreSQL major version (see [`Scenario::across_versions`]).
    pub across_versions: bool,
    body: Body,
}

impl Scenario {
    /// A scenario run on every backend.
    pub fn core<F, Fut>(name: impl Into<String>, body: F) -> Scenario
    where
        F: Fn(Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R<()>> + Send + 'static,
    {
        Scenario::new(name, Tier::Core, body)
    }

    /// A scenario run on etcd v3 by default.
    pub fn full<F, Fut>(name: impl Into<String>, body: F) -> Scenario
    where
        F: Fn(Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R<()>> + Send + 'static,
    {
        Scenario::new(name, Tier::Full, body)
    }

    /// A scenario run only by the full suite (`scripts/test --full`): long or repetitive variants that CI's
    /// time budget leaves out.
    pub fn extended<F, Fut>(name: impl Into<String>, body: F) -> Scenario
    where
        F: Fn(Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R<()>> + Send + 'static,
    {
        Scenario::new(name, Tier::Extended, body)
    }

    fn new<F, Fut>(name: impl Into<String>, tier: Tier, body: F) -> Scenario
    where
        F: Fn(Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R<()>> + Send + 'static,
    {
        Scenario {
            name: name.into(),
            tier,
            not_on: Vec::new(),
            across_versions: false,
            body: Arc::new(move |env| Box::pin(body(env))),
        }
    }

    /// Marks a backend this scenario cannot run on, and why (listed as ignored there, never silently).
    pub fn not_on(mut self, backend: Backend, why: &'static str) -> Scenario {
        self.not_on.push((backend, why));
        self
    }

    /// Marks a scenario that exercises version-dependent behaviour (initdb, recovery configuration, base
    /// backup, pg_rewind, replication views, server parameters): `STOLON_TEST_SUITE=versions` runs exactly
    /// these, on etcd v3, and CI runs that suite with `PG_BIN_DIR` naming each PostgreSQL major it tests.
    pub fn across_versions(mut self) -> Scenario {
        self.across_versions = true;
        self
    }

    /// Runs the scenario.
    pub fn run(&self, env: Env) -> Pin<Box<dyn Future<Output = R<()>> + Send>> {
        (self.body)(env)
    }
}

/// What a running scenario knows about its run: the backend, and where logs go (they outlive the
/// scenario's temporary directory, so a failure can print them).
#[derive(Clone)]
pub struct Env {
    /// The store backend of this run.
    pub backend: Backend,
    logs_dir: PathBuf,
    logs: Arc<Mutex<Vec<(String, PathBuf)>>>,
}

impl Env {
    /// An environment writing logs below `logs_dir`.
    pub fn new(backend: Backend, logs_dir: &Path) -> Env {
        Env { backend, logs_dir: logs_dir.to_path_buf(), logs: Arc::default() }
    }

    /// The directory for component logs.
    pub fn logs_dir(&self) -> &Path {
        &self.logs_dir
    }

    /// Records a log file to print if the scenario fails.
    pub fn register_log(&self, name: &str, path: &Path) {
        let mut logs = self.logs.lock().expect("log registry");
        if !logs.iter().any(|(_, p)| p == path) {
            logs.push((name.to_string(), path.to_path_buf()));
        }
    }

    /// The registered logs.
    pub fn logs(&self) -> Vec<(String, PathBuf)> {
        self.logs.lock().expect("log registry").clone()
    }
}
