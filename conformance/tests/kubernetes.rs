//! The whole conformance suite against a real kube-apiserver, run by the `stolon-conformance` binary as users
//! run it (only a kubeconfig for the limited `stolon-test` identity, under the shipped RBAC Role and the
//! runner's; it creates and deletes its own member-owner pods, also when interrupted); `server_restart` on a
//! private control plane the suite stops and restarts. Then checks of stolon's exact object layout,
//! leadership shared with client-go (Go stolon) sentinels, error messages, and the example manifests.

#[allow(dead_code)] // run_suite is for the etcd suites
mod support;

#[path = "kubernetes/examples.rs"]
mod examples;
#[path = "kubernetes/layout.rs"]
mod layout;
#[path = "kubernetes/runner.rs"]
mod runner;

use std::sync::Arc;

use libtest_mimic::{Failed, Trial};
use stolon_conformance::servers::{KubeApiServer, KubeFactory};
use stolon_conformance::{Outcome, StoreFactory, cases};

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let server = match KubeApiServer::start() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("cannot run the kubernetes conformance suite: {e:#}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let factory = match runtime.block_on(KubeFactory::new(server.clone(), support::TIMEOUT)) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            eprintln!("cannot prepare the kubernetes conformance suite: {e:#}");
            std::process::exit(1);
        }
    };
    let dyn_factory: Arc<dyn StoreFactory> = factory.clone();
    let mut trials = Vec::new();
    let handle = runtime.handle().clone();
    // The longest checks first, so that they overlap the others.
    for (name, f) in [
        (
            "runner_with_only_a_kubeconfig",
            runner::every_case_passes as fn(Arc<KubeFactory>, tokio::runtime::Handle) -> anyhow::Result<()>,
        ),
        ("runner_interrupted_cleans_up", runner::interrupted_run_cleans_up),
    ] {
        let (factory, handle) = (factory.clone(), handle.clone());
        trials.push(Trial::test(format!("kubernetes::{name}"), move || {
            f(factory, handle).map_err(|e| Failed::from(format!("{e:#}")))
        }));
    }
    let mut check = |name: &str, f: fn(Arc<KubeFactory>) -> futures::future::BoxFuture<'static, anyhow::Result<()>>| {
        let (factory, handle) = (factory.clone(), handle.clone());
        trials.push(Trial::test(format!("kubernetes::{name}"), move || {
            handle.block_on(f(factory)).map_err(|e| Failed::from(format!("{e:#}")))
        }));
    };
    check("watch_outlives_server_side_timeout", |f| Box::pin(layout::watch_outlives_server_side_timeout(f)));
    check("stolon_layout", |f| Box::pin(layout::stolon_layout(f)));
    check("cas_across_leader_renewals", |f| Box::pin(layout::cas_across_leader_renewals(f)));
    check("create_only_next_to_leader_record", |f| Box::pin(layout::create_only_next_to_leader_record(f)));
    check("client_go_leader_is_respected", |f| Box::pin(layout::client_go_leader_is_respected(f)));
    check("document_below_annotation_limit", |f| Box::pin(layout::document_below_annotation_limit(f)));
    check("forbidden_names_verb_and_resource", |f| Box::pin(layout::forbidden_names_verb_and_resource(f)));
    check("missing_pod_name", |f| Box::pin(layout::missing_pod_name(f)));
    check("member_labels", |f| Box::pin(layout::member_labels(f)));
    check("examples_dry_run", |f| Box::pin(examples::dry_run(f)));
    for case in cases::all().into_iter().filter(|c| c.name == runner::NEEDS_PRIVATE_SERVER) {
        let (factory, handle) = (dyn_factory.clone(), handle.clone());
        trials.push(Trial::test(format!("kubernetes::{}", case.name), move || {
            match handle.block_on(case.run(factory)) {
                Ok(Outcome::Passed) => Ok(()),
                Ok(Outcome::Skipped(why)) => Err(Failed::from(format!("skipped in a run that owns its server: {why}"))),
                Err(e) => Err(Failed::from(format!("{e:#}"))),
            }
        }));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(factory);
    drop(runtime);
    drop(server);
    conclusion.exit();
}
