//! The stolonctl tests' fixture: a real etcd with one cluster name, stolonctl run as the real binary against
//! it, assertions on its output, and a realistic cluster data document. Each test binary uses a subset.
#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stolon_conformance::servers::EtcdServer;
use stolon_core::cluster::ClusterData;
use stolon_core::stolon_store::{self, Document, Store, StoreBackend};
use stolon_core::store::ClusterStore;
use tokio::io::AsyncWriteExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_stolonctl");

/// A real etcd with one cluster name, and helpers to run stolonctl against it.
pub struct Fixture {
    pub server: EtcdServer,
    pub name: String,
    pub store: ClusterStore,
    pub raw: Arc<dyn Store>,
}

impl Fixture {
    pub async fn new(name: &str) -> Fixture {
        let server = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
        let raw = stolon_store::connect(&server.config(StoreBackend::EtcdV3, name)).await.expect("connect to etcd");
        Fixture { server, name: name.to_string(), store: ClusterStore::new(raw.clone()), raw }
    }

    pub fn store_args(&self) -> Vec<String> {
        let ep = self.server.endpoint();
        ["--store-backend", "etcdv3", "--store-endpoints", &ep, "--cluster-name", &self.name, "--store-timeout", "3s"]
            .map(String::from)
            .to_vec()
    }

    pub async fn ctl(&self, args: &[&str]) -> Output {
        run(&self.store_args(), args, None, &[]).await
    }

    pub async fn ctl_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run(&self.store_args(), args, Some(input), &[]).await
    }

    pub async fn ctl_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        run(&self.store_args(), args, None, env).await
    }

    pub async fn doc(&self) -> Option<Document> {
        self.raw.get_cluster_data().await.expect("read cluster data")
    }

    pub async fn data(&self) -> ClusterData {
        self.store.cluster_data().await.expect("read").expect("cluster data present").data
    }

    pub async fn write(&self, cd: &Value) {
        self.raw.put_cluster_data(&serde_json::to_vec(cd).unwrap()).await.expect("write cluster data");
    }
}

/// Runs stolonctl with `global` flags first, a stdin that is never a terminal, and no STOLONCTL_* variables
/// inherited from the test's environment.
pub async fn run(global: &[String], args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(global).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STOLONCTL_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawn stolonctl");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input).await.expect("write stdin");
        drop(pipe);
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("stolonctl finished within 60 s")
        .expect("stolonctl ran")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "stolonctl failed: {:?}\nstdout: {}\nstderr: {}", o.status, stdout(o), stderr(o));
}

/// Exit code 1, exactly one line on stderr containing `needle`, and returns that line.
#[track_caller]
pub fn assert_one_line_error(o: &Output, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stdout: {}\nstderr: {err}", stdout(o));
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.contains(needle), "{err:?} should contain {needle:?}");
    err
}

/// Bad input: one line on stderr, non-zero exit, and the cluster data document untouched.
pub async fn assert_rejected(f: &Fixture, args: &[&str], stdin: Option<&[u8]>, needle: &str) -> String {
    let before = f.doc().await;
    let o = match stdin {
        Some(input) => f.ctl_stdin(args, input).await,
        None => f.ctl(args).await,
    };
    let line = assert_one_line_error(&o, needle);
    assert_eq!(f.doc().await, before, "nothing written by {args:?}");
    line
}

/// A cluster with a master, two standbys (one synchronous), and a fourth keeper without a DB.
pub fn realistic_cluster() -> Value {
    let keeper = |uid: &str, healthy: bool| {
        json!({"uid": uid, "generation": 1, "changeTime": "0001-01-01T00:00:00Z", "spec": {},
            "status": {"healthy": healthy, "lastHealthyTime": "2026-11-27T10:13:04Z", "postgresBinaryVersion": {"Maj": 15, "Min": 8}}})
    };
    let db =
        |uid: &str, keeper: &str, role: &str, generation: i64, current: i64, addr: &str, port: &str, healthy: bool| {
            json!({"uid": uid, "generation": generation, "changeTime": "2026-11-27T10:12:55Z",
            "spec": {"keeperUID": keeper, "requestTimeout": "10s", "maxStandbys": 20, "additionalWalSenders": 5,
                "additionalReplicationSlots": null, "initMode": "none", "pgHBA": null, "role": role,
                "followers": [], "synchronousStandbys": null, "externalSynchronousStandbys": null},
            "status": {"healthy": healthy, "currentGeneration": current, "listenAddress": addr, "port": port,
                "synchronousStandbys": null}})
        };
    let mut master = db("a1b2c3d4", "keeper0", "master", 7, 7, "10.0.0.10", "5432", true);
    master["spec"]["followers"] = json!(["e5f6a7b8", "f9e8d7c6"]);
    master["spec"]["synchronousReplication"] = json!(true);
    master["spec"]["synchronousStandbys"] = json!(["e5f6a7b8"]);
    master["status"]["synchronousStandbys"] = json!(["e5f6a7b8"]);
    let mut standby1 = db("e5f6a7b8", "keeper1", "standby", 4, 4, "10.0.0.11", "5432", true);
    standby1["spec"]["followConfig"] = json!({"type": "internal", "dbuid": "a1b2c3d4"});
    let mut standby2 = db("f9e8d7c6", "keeper2", "standby", 2, 1, "10.0.0.12", "5433", false);
    standby2["spec"]["followConfig"] = json!({"type": "internal", "dbuid": "a1b2c3d4"});
    json!({
        "formatVersion": 1,
        "changeTime": "2026-11-27T10:13:05Z",
        "cluster": {"uid": "3e1c2a9f", "generation": 1, "changeTime": "2026-11-20T08:00:01Z",
            "spec": {"initMode": "new", "synchronousReplication": true, "maxSynchronousStandbys": 2,
                "pgParameters": {"max_connections": "200", "shared_buffers": "256MB"}},
            "status": {"phase": "normal", "master": "a1b2c3d4"}},
        "keepers": {"keeper0": keeper("keeper0", true), "keeper1": keeper("keeper1", true),
            "keeper2": keeper("keeper2", false), "keeper3": keeper("keeper3", true)},
        "dbs": {"a1b2c3d4": master, "e5f6a7b8": standby1, "f9e8d7c6": standby2},
        "proxy": {"generation": 5, "changeTime": "2026-11-27T10:12:55Z",
            "spec": {"masterDbUid": "a1b2c3d4", "enabledProxies": ["1a2b3c4d", "5e6f7a8b"]}, "status": {}}
    })
}
