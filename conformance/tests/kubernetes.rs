//! The whole conformance suite against a real kube-apiserver, with the stores using the limited `stolon-test`
//! identity under the shipped RBAC Role, one test per case; then checks of stolon's exact object layout,
//! leadership shared with client-go (Go stolon) sentinels, error messages, and the example manifests.

#[allow(dead_code)] // run_suite is for the etcd suites
mod support;

#[path = "kubernetes/examples.rs"]
mod examples;
#[path = "kubernetes/layout.rs"]
mod layout;

use std::sync::Arc;

use libtest_mimic::{Failed, Trial};
use stolon_conformance::StoreFactory;
use stolon_conformance::servers::{KubeApiServer, KubeFactory};

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
    let mut check = |name: &str, f: fn(Arc<KubeFactory>) -> futures::future::BoxFuture<'static, anyhow::Result<()>>| {
        let (factory, handle) = (factory.clone(), handle.clone());
        trials.push(Trial::test(format!("kubernetes::{name}"), move || {
            handle.block_on(f(factory)).map_err(|e| Failed::from(format!("{e:#}")))
        }));
    };
    // The longest check first, so that it overlaps the others.
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
    trials.extend(support::case_trials("kubernetes", dyn_factory, runtime.handle()));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(factory);
    drop(runtime);
    drop(server);
    conclusion.exit();
}
