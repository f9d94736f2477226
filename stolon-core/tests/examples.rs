//! The stolon-core examples (`cargo run -p stolon-core --example <name>`), built and run as real programs
//! against a real etcd: what a user embedding stolon-core would run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use stolon_conformance::servers::EtcdServer;
use stolon_core::stolon_store::{self, StoreBackend};

/// The path of example `name`. `cargo test` builds the examples of the packages it tests, next to the test
/// binaries' `deps` directory; when the binary is missing or older than an example source, it is built here.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").join("examples").join(name);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let newest_source =
        [sources.join(format!("{name}.rs")), sources.join("common/mod.rs")].iter().filter_map(|p| modified(p)).max();
    if modified(&path).is_none_or(|built| newest_source.is_some_and(|src| src > built)) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "stolon-core", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --example");
        assert!(status.success(), "cargo build --example {name}: {status:?}");
    }
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// Cluster data with the master DB `master` on `keeper`, at `addr`.
fn cluster_data(master: &str, keeper: &str, addr: &str) -> Value {
    let db = |uid: &str, keeper: &str, addr: &str, role: &str| {
        json!({"uid": uid, "generation": 1, "changeTime": "2026-11-27T10:12:55Z",
            "spec": {"keeperUID": keeper, "role": role, "followers": []},
            "status": {"healthy": true, "currentGeneration": 1, "listenAddress": addr, "port": "5432"}})
    };
    let keeper_entry = |uid: &str| {
        json!({"uid": uid, "generation": 1, "changeTime": "0001-01-01T00:00:00Z",
        "spec": {}, "status": {"healthy": true}})
    };
    json!({
        "formatVersion": 1,
        "changeTime": "2026-11-27T10:13:05Z",
        "cluster": {"uid": "c1", "generation": 1, "changeTime": "2026-11-20T08:00:01Z",
            "spec": {"initMode": "new"}, "status": {"phase": "normal", "master": master}},
        "keepers": {keeper: keeper_entry(keeper)},
        "dbs": {master: db(master, keeper, addr, "master")},
        "proxy": {"generation": 1, "changeTime": "2026-11-27T10:12:55Z", "spec": {}, "status": {}}
    })
}

/// A child process killed when the test ends, also when it fails (it would otherwise outlive the test).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Also the race fixed in 2026-12: the test writes the first cluster data right after watch_master printed
/// `no master`, i.e. right after its read found no document; a watch opened only after that read (from
/// "now": there was no revision to start from) missed the write under load and the test waited forever.
#[tokio::test]
async fn watch_master_and_cluster_status_json_against_a_real_etcd() {
    let (watch_master, status_json) = (example("watch_master"), example("cluster_status_json"));
    let etcd = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let store = stolon_store::connect(&etcd.config(StoreBackend::EtcdV3, "examples")).await.expect("connect");
    let ep = etcd.endpoint();
    let args = ["--store-backend", "etcdv3", "--store-endpoints", &ep, "--cluster-name", "examples"];

    let status = |expected_master: &str| {
        let out = Command::new(&status_json).args(args).output().expect("run cluster_status_json");
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        assert_eq!(v["cluster"]["master_keeper_uid"], expected_master, "{v}");
        v
    };
    assert_eq!(status("")["cluster"]["available"], false);

    let mut child = KillOnDrop(
        Command::new(&watch_master)
            .args(args)
            .args(["--max-changes", "3"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn watch_master"),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(30)).expect("watch_master printed a line within 30 s");
    assert_eq!(next(), "no master");
    let put = |v: Value| {
        let store = store.clone();
        async move { store.put_cluster_data(&serde_json::to_vec(&v).unwrap()).await.expect("write cluster data") }
    };
    put(cluster_data("db0", "keeper0", "10.0.0.10")).await;
    assert_eq!(next(), "master keeper0 db0 10.0.0.10:5432");
    // The same master again (a new write, another revision) prints nothing; a failover prints one line.
    let mut same = cluster_data("db0", "keeper0", "10.0.0.10");
    same["changeTime"] = json!("2026-11-27T10:14:00Z");
    put(same).await;
    put(cluster_data("db1", "keeper1", "10.0.0.11")).await;
    assert_eq!(next(), "master keeper1 db1 10.0.0.11:5432");
    let exit = child.0.wait().expect("watch_master exits after --max-changes 3");
    assert!(exit.success(), "{exit:?}");
    status("keeper1");
}
