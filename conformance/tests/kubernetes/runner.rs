//! The `stolon-conformance` binary as users run it on Kubernetes: only a kubeconfig (the limited
//! `stolon-test` identity) and a namespace where the stolon Role of examples/kubernetes/rbac.yaml and the
//! runner's Role of conformance/rbac.yaml are granted. Every case passes, and the runner leaves nothing
//! behind, also when it is interrupted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use stolon_conformance::kube_runner::RUN_LABEL;
use stolon_conformance::servers::{KubeFactory, grant_to_test_user};

use crate::support;

/// The case the runner cannot run: it needs a server the suite stops and starts.
pub const NEEDS_PRIVATE_SERVER: &str = "server_restart";

/// The runner's Role, as documented.
const RUNNER_RBAC: &str = include_str!("../../rbac.yaml");

/// A namespace where `stolon-test` holds the shipped stolon Role and the runner's Role, once both are
/// effective.
async fn runner_namespace(f: &KubeFactory) -> anyhow::Result<String> {
    let admin = f.admin();
    let ns = f.server().namespace_with_rbac(admin, "stolon-runner").await?;
    grant_to_test_user(admin, &ns, RUNNER_RBAC).await?;
    // The authorizer learns of RoleBindings asynchronously: wait until deleting a missing pod and ConfigMap
    // is "not found" (allowed) rather than "forbidden".
    let mut config = f.config("rbac-probe", None);
    config.kube.namespace = Some(ns.clone());
    let (user, _) = stolon_store::kubernetes::client(&config).await?;
    let start = Instant::now();
    loop {
        let pod = Api::<Pod>::namespaced(user.clone(), &ns).delete("probe", &DeleteParams::default()).await.err();
        let cm = Api::<ConfigMap>::namespaced(user.clone(), &ns).delete("probe", &DeleteParams::default()).await.err();
        let not_found = |e: &Option<kube::Error>| matches!(e, Some(kube::Error::Api(s)) if s.code == 404);
        if not_found(&pod) && not_found(&cm) {
            return Ok(ns);
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("the runner's Role is not effective after 20 s: pod {pod:?}, configmap {cm:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pods and ConfigMaps left in `ns`.
async fn objects_in(admin: &Client, ns: &str) -> anyhow::Result<Vec<String>> {
    let mut left = Vec::new();
    for p in Api::<Pod>::namespaced(admin.clone(), ns).list(&ListParams::default()).await?.items {
        left.push(format!("pod {}", p.metadata.name.unwrap_or_default()));
    }
    for c in Api::<ConfigMap>::namespaced(admin.clone(), ns).list(&ListParams::default()).await?.items {
        left.push(format!("configmap {}", c.metadata.name.unwrap_or_default()));
    }
    Ok(left)
}

fn runner_args(f: &KubeFactory, ns: &str, extra: &[&str]) -> Vec<String> {
    let kubeconfig = f.server().stolon_kubeconfig().display().to_string();
    let args = ["--store-backend", "kubernetes", "--kubeconfig", &kubeconfig, "--kube-namespace", ns];
    args.iter().chain(["--store-timeout", "3s"].iter()).chain(extra).map(|s| s.to_string()).collect()
}

/// Every case passes (but the one that needs a private server, skipped with its reason), and the runner
/// deletes its pods and the cases' ConfigMaps.
pub fn every_case_passes(f: Arc<KubeFactory>, handle: tokio::runtime::Handle) -> anyhow::Result<()> {
    let ns = handle.block_on(runner_namespace(&f))?;
    let run = support::run_runner(&runner_args(&f, &ns, &[]), &[("KUBECONFIG", "/nonexistent")], None);
    run.check_all_passed_but(&[NEEDS_PRIVATE_SERVER])?;
    ensure!(run.stderr.contains("cleaned up"), "no clean-up reported\n{}", run.transcript());
    let left = handle.block_on(objects_in(f.admin(), &ns))?;
    ensure!(left.is_empty(), "the runner left {left:?} in {ns}\n{}", run.transcript());
    Ok(())
}

/// Interrupted (SIGINT) while its member-owner pods exist, the runner still deletes them and the cases'
/// ConfigMaps, and exits with status 130.
pub fn interrupted_run_cleans_up(f: Arc<KubeFactory>, handle: tokio::runtime::Handle) -> anyhow::Result<()> {
    let ns = handle.block_on(runner_namespace(&f))?;
    let pods: Api<Pod> = Api::namespaced(f.admin().clone(), &ns);
    let members_exist = || {
        let gated = ListParams::default().labels(RUN_LABEL);
        let listed = handle.block_on(pods.list(&gated));
        listed.is_ok_and(|l| l.items.iter().any(|p| !p.metadata.name.as_deref().unwrap_or("").ends_with("-client")))
    };
    let args = runner_args(&f, &ns, &["--cases", "member_expiry_and_refresh"]);
    let run = support::run_runner(&args, &[], Some(&members_exist));
    ensure!(run.status == Some(130), "an interrupted run must exit with 130\n{}", run.transcript());
    ensure!(run.stderr.contains("interrupted"), "no interruption reported\n{}", run.transcript());
    let left = handle.block_on(objects_in(f.admin(), &ns))?;
    ensure!(left.is_empty(), "the interrupted runner left {left:?} in {ns}\n{}", run.transcript());
    Ok(())
}
