//! A real Kubernetes control plane (etcd + kube-apiserver, no kubelet) started by `scripts/start-kube-apiserver`,
//! and a [`StoreFactory`] whose stores use the limited `stolon-test` identity under the RBAC Role shipped in
//! `examples/kubernetes/rbac.yaml`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding, Subject};
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use stolon_store::{KubeConfig, MemberKind, Store, StoreBackend, StoreConfig, StoreError, StoreResult};

use super::BlockingControl;
use super::process::{log_tail, spawn_logged};
use crate::{PrivateServer, StoreFactory};

/// The RBAC manifest we ship; the tests grant exactly its Role to the `stolon-test` user.
pub const RBAC_MANIFEST: &str = include_str!("../../../examples/kubernetes/rbac.yaml");

/// The user of `stolon.kubeconfig` (no groups: it can do only what RBAC grants it).
pub const TEST_USER: &str = "stolon-test";

/// The repository's `scripts/` directory.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// etcd and kube-apiserver on free loopback ports under a temporary directory; both killed on drop.
pub struct KubeApiServer {
    dir: tempfile::TempDir,
    server: String,
    etcd_pid: i32,
    /// The apiserver started by the script, or by us after a restart.
    apiserver: Mutex<ApiServerProcess>,
    binary: PathBuf,
}

enum ApiServerProcess {
    Detached(i32),
    Child(std::process::Child),
    Stopped,
}

impl KubeApiServer {
    /// Builds (or reuses the cached) kube-apiserver and starts a control plane. Blocks for several seconds.
    pub fn start() -> anyhow::Result<KubeApiServer> {
        let dir = tempfile::Builder::new().prefix("stolon-kube-").tempdir()?;
        let build = Command::new(scripts_dir().join("build-kube-apiserver"))
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/build-kube-apiserver")?;
        ensure!(build.status.success(), "scripts/build-kube-apiserver failed ({})", build.status);
        let binary = String::from_utf8_lossy(&build.stdout).lines().last().unwrap_or_default().trim().to_string();
        ensure!(Path::new(&binary).is_file(), "scripts/build-kube-apiserver printed no binary path ({binary:?})");

        let out = Command::new(scripts_dir().join("start-kube-apiserver"))
            .arg(dir.path())
            .env("KUBE_APISERVER", &binary)
            .stdin(Stdio::null())
            .output()
            .context("running scripts/start-kube-apiserver")?;
        let pids = std::fs::read_to_string(dir.path().join("pids")).unwrap_or_default();
        let pids: Vec<i32> = pids.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if !out.status.success() || pids.len() != 2 {
            for pid in pids.iter().rev() {
                kill(*pid);
            }
            bail!("scripts/start-kube-apiserver failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let server = std::fs::read_to_string(dir.path().join("server"))?.trim().to_string();
        reap_when_gone(&pids);
        Ok(KubeApiServer {
            dir,
            server,
            etcd_pid: pids[0],
            apiserver: Mutex::new(ApiServerProcess::Detached(pids[1])),
            binary: PathBuf::from(binary),
        })
    }

    /// The https URL of the API server.
    pub fn url(&self) -> &str {
        &self.server
    }

    /// The kubeconfig of the admin identity (group system:masters, bypasses RBAC).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The kubeconfig of the `stolon-test` user, limited by RBAC.
    pub fn stolon_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("stolon.kubeconfig")
    }

    /// A client with the admin identity.
    pub async fn admin_client(&self) -> anyhow::Result<Client> {
        let kc = Kubeconfig::read_from(self.admin_kubeconfig())?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Creates a fresh namespace (namespaces are never deleted here: there is no controller-manager to finish
    /// the deletion) and grants the shipped Role to `stolon-test` in it. Returns its name.
    pub async fn namespace_with_rbac(&self, admin: &Client, prefix: &str) -> anyhow::Result<String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let ns: Namespace = serde_json::from_value(serde_json::json!({ "metadata": { "name": name } }))?;
        Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &ns).await.context("creating namespace")?;
        grant_to_test_user(admin, &name, RBAC_MANIFEST).await?;
        Ok(name)
    }

    /// Stops the API server (SIGKILL); etcd keeps running, so the data survives.
    pub fn stop_apiserver(&self) -> anyhow::Result<()> {
        let mut proc = self.apiserver.lock().map_err(|_| anyhow::anyhow!("apiserver lock poisoned"))?;
        match std::mem::replace(&mut *proc, ApiServerProcess::Stopped) {
            ApiServerProcess::Detached(pid) => {
                kill(pid);
                wait_gone(pid, Duration::from_secs(30))?;
            }
            ApiServerProcess::Child(mut child) => {
                let _ = child.kill();
                child.wait()?;
            }
            ApiServerProcess::Stopped => {}
        }
        Ok(())
    }

    /// Starts the API server again with the same flags (same port, same etcd) and waits until it is ready.
    pub fn start_apiserver(&self) -> anyhow::Result<()> {
        self.stop_apiserver()?;
        let args = std::fs::read_to_string(self.dir.path().join("kube-apiserver.args"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(args.lines().filter(|l| !l.is_empty()));
        let log = self.dir.path().join("kube-apiserver.log");
        let child = spawn_logged(cmd, &log)?;
        *self.apiserver.lock().map_err(|_| anyhow::anyhow!("apiserver lock poisoned"))? =
            ApiServerProcess::Child(child);
        let start = Instant::now();
        while !self.ready() {
            if start.elapsed() > Duration::from_secs(120) {
                bail!("kube-apiserver not ready 120 s after a restart:\n{}", log_tail(&log, 30));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn ready(&self) -> bool {
        let certs = self.dir.path().join("certs");
        Command::new("curl")
            .args(["-sS", "--max-time", "2", "--cacert"])
            .arg(certs.join("ca.crt"))
            .arg("--cert")
            .arg(certs.join("admin.crt"))
            .arg("--key")
            .arg(certs.join("admin.key"))
            .arg(format!("{}/readyz", self.server))
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout == b"ok")
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        // The apiserver first: it hangs for a minute if etcd goes away under it.
        let _ = self.stop_apiserver();
        kill(self.etcd_pid);
        let _ = wait_gone(self.etcd_pid, Duration::from_secs(10));
    }
}

/// Creates in namespace `ns` the Role of `manifest` (an RBAC manifest such as `examples/kubernetes/rbac.yaml`)
/// and its RoleBinding, bound to the `stolon-test` user instead of the manifest's subjects.
pub async fn grant_to_test_user(admin: &Client, ns: &str, manifest: &str) -> anyhow::Result<()> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(manifest).context("parsing rbac.yaml")?;
    let of_kind = |kind: &str| docs.iter().find(|d| d["kind"] == kind).cloned();
    let role: Role = serde_json::from_value(of_kind("Role").context("rbac.yaml has no Role")?)?;
    let mut binding: RoleBinding =
        serde_json::from_value(of_kind("RoleBinding").context("rbac.yaml has no RoleBinding")?)?;
    binding.subjects = Some(vec![Subject {
        kind: "User".into(),
        name: TEST_USER.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    }]);
    Api::<Role>::namespaced(admin.clone(), ns).create(&PostParams::default(), &role).await?;
    Api::<RoleBinding>::namespaced(admin.clone(), ns).create(&PostParams::default(), &binding).await?;
    Ok(())
}

/// The script's processes are detached from us: a watchdog kills them (apiserver first) if this test process
/// dies without dropping the server (a killed or aborted test run).
fn reap_when_gone(pids: &[i32]) {
    let me = std::process::id();
    let victims: Vec<String> = pids.iter().rev().map(i32::to_string).collect();
    let script = format!("while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -9 {} 2>/dev/null", victims.join(" "));
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn kill(pid: i32) {
    // SAFETY: plain kill(2) on a pid we started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Waits until `pid` is gone or a zombie (it is not our child, so we cannot reap it).
fn wait_gone(pid: i32, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("process {pid} still running {limit:?} after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A [`StoreFactory`] on a [`KubeApiServer`]: stores use `stolon.kubeconfig` (the `stolon-test` user) in a
/// namespace of their own where the shipped Role is granted. Member stores run "in" pods the factory creates
/// with the admin identity, as a kubelet-less cluster allows.
pub struct KubeFactory {
    server: Arc<KubeApiServer>,
    admin: Client,
    namespace: String,
    timeout: Duration,
    client_pods: tokio::sync::Mutex<HashSet<String>>,
}

impl KubeFactory {
    /// Creates a namespace with the shipped RBAC on `server` and waits until `stolon-test` may use it.
    pub async fn new(server: Arc<KubeApiServer>, timeout: Duration) -> anyhow::Result<KubeFactory> {
        let admin = server.admin_client().await?;
        let namespace = server.namespace_with_rbac(&admin, "stolon-conf").await?;
        let factory = KubeFactory { server, admin, namespace, timeout, client_pods: Default::default() };
        // The authorizer learns of the RoleBinding asynchronously: wait until a store may list pods.
        let probe = factory.connect("rbac-probe", None).await?;
        let start = Instant::now();
        loop {
            match probe.list_members(MemberKind::Keeper).await {
                Ok(_) => break,
                Err(StoreError::Auth(e)) if start.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("the stolon-test identity cannot use its namespace"),
            }
        }
        Ok(factory)
    }

    /// The namespace of this factory's stores.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A client with the admin identity.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// The control plane.
    pub fn server(&self) -> &Arc<KubeApiServer> {
        &self.server
    }

    /// The store configuration for `cluster`, running in pod `pod`.
    pub fn config(&self, cluster: &str, pod: Option<&str>) -> StoreConfig {
        let mut c = StoreConfig::new(StoreBackend::Kubernetes, cluster);
        c.timeout = self.timeout;
        c.kube = KubeConfig {
            kubeconfig: Some(self.server.stolon_kubeconfig()),
            context: None,
            namespace: Some(self.namespace.clone()),
            resource_kind: Some("configmap".into()),
            pod_name: pod.map(str::to_string),
        };
        c
    }

    async fn connect(&self, cluster: &str, pod: Option<&str>) -> StoreResult<Arc<dyn Store>> {
        stolon_store::connect(&self.config(cluster, pod)).await
    }

    /// Creates pod `name` with `labels` (a plain API object: nothing runs it).
    pub async fn create_pod(&self, name: &str, labels: serde_json::Value) -> StoreResult<()> {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": labels },
            "spec": { "containers": [{ "name": "main", "image": "stolon-rs-test" }] },
        }))
        .map_err(|e| backend_err(name, e))?;
        Api::<Pod>::namespaced(self.admin.clone(), &self.namespace)
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| backend_err(name, e))?;
        Ok(())
    }
}

impl KubeFactory {
    /// The labels of pod `name`, read with the admin identity (to check what a component set on its pod).
    pub async fn pod_labels(&self, name: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let pod = Api::<Pod>::namespaced(self.admin.clone(), &self.namespace)
            .get(name)
            .await
            .with_context(|| format!("reading pod {name}"))?;
        Ok(pod.metadata.labels.unwrap_or_default())
    }
}

fn backend_err(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend { key: key.to_string(), reason: format!("test harness: {e}") }
}

#[async_trait]
impl StoreFactory for KubeFactory {
    /// A client running in a pod of its own (`<cluster>-client`, without component labels, so never listed).
    async fn open(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        let pod = format!("{cluster}-client");
        let mut created = self.client_pods.lock().await;
        if !created.contains(&pod) {
            self.create_pod(&pod, serde_json::json!({})).await?;
            created.insert(pod.clone());
        }
        drop(created);
        self.connect(cluster, Some(&pod)).await
    }

    async fn open_member(&self, cluster: &str, kind: MemberKind, id: &str) -> StoreResult<Arc<dyn Store>> {
        let labels = serde_json::json!({ "component": kind.component_label(), "stolon-cluster": cluster });
        self.create_pod(id, labels).await?;
        self.connect(cluster, Some(id)).await
    }

    async fn end_member_owner(&self, _cluster: &str, _kind: MemberKind, id: &str) -> StoreResult<()> {
        Api::<Pod>::namespaced(self.admin.clone(), &self.namespace)
            .delete(id, &DeleteParams::default())
            .await
            .map_err(|e| backend_err(id, e))?;
        Ok(())
    }

    async fn open_unreachable(&self, cluster: &str) -> StoreResult<Arc<dyn Store>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let text =
            std::fs::read_to_string(self.server.stolon_kubeconfig()).map_err(|e| backend_err("kubeconfig", e))?;
        let closed = format!("https://127.0.0.1:{}", super::closed_port());
        let path =
            self.server.dir.path().join(format!("unreachable-{}.kubeconfig", COUNTER.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, text.replace(self.server.url(), &closed)).map_err(|e| backend_err("kubeconfig", e))?;
        let mut c = self.config(cluster, Some("unreachable"));
        c.kube.kubeconfig = Some(path);
        stolon_store::connect(&c).await
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn private_server(&self) -> Option<anyhow::Result<PrivateServer>> {
        let timeout = self.timeout;
        Some(
            async move {
                let server = Arc::new(tokio::task::spawn_blocking(KubeApiServer::start).await??);
                let factory = KubeFactory::new(server.clone(), timeout).await?;
                Ok(PrivateServer {
                    control: Box::new(BlockingControl {
                        server,
                        stop: KubeApiServer::stop_apiserver,
                        start: KubeApiServer::start_apiserver,
                    }),
                    factory: Arc::new(factory),
                })
            }
            .await,
        )
    }
}
