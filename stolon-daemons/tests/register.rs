//! `stolonctl register` against a real Consul agent that serves HTTPS and requires client certificates, with
//! a throw-away CA: the register TLS flags (CA bundle, client certificate, skip-verification) and the
//! refused handshakes, checked in Consul's catalog. The cluster data is in a real etcd.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stolon_conformance::servers::{ConsulServer, EtcdServer, TestPki};
use stolon_core::stolon_store::{self, StoreBackend};

const BIN: &str = env!("CARGO_BIN_EXE_stolonctl");
const CLUSTER: &str = "registertls";

/// A master and a healthy standby, as stolon's cluster data.
fn cluster_data() -> Value {
    let db = |uid: &str, keeper: &str, role: &str, addr: &str| {
        json!({"uid": uid, "generation": 1, "changeTime": "2026-11-27T10:12:55Z",
            "spec": {"keeperUID": keeper, "role": role, "followers": []},
            "status": {"healthy": true, "currentGeneration": 1, "listenAddress": addr, "port": "5432"}})
    };
    json!({
        "formatVersion": 1,
        "changeTime": "2026-11-27T10:13:05Z",
        "cluster": {"uid": "3e1c2a9f", "generation": 1, "changeTime": "2026-11-20T08:00:01Z",
            "spec": {"initMode": "new"}, "status": {"phase": "normal", "master": "db0"}},
        "keepers": {},
        "dbs": {"db0": db("db0", "keeper0", "master", "10.0.0.10"), "db1": db("db1", "keeper1", "standby", "10.0.0.11")},
        "proxy": {"generation": 1, "spec": {}, "status": {}}
    })
}

/// A plain HTTP request to the agent's HTTP port: status and body.
fn http(endpoint: &str, method: &str, path: &str) -> (u16, String) {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to consul");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// The registered services of the cluster: (service ID, tags).
fn catalog(consul: &ConsulServer) -> Vec<(String, Vec<String>)> {
    let (status, body) = http(&consul.endpoint(), "GET", &format!("/v1/catalog/service/{CLUSTER}"));
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut out: Vec<(String, Vec<String>)> = list
        .iter()
        .map(|s| {
            let tags = s["ServiceTags"].as_array().into_iter().flatten();
            (
                s["ServiceID"].as_str().unwrap_or_default().to_string(),
                tags.filter_map(|t| t.as_str().map(str::to_string)).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs `stolonctl register` with `tls_args` until `done` holds (checked every 200 ms, at most 30 s) or, with
/// no condition, for 2.5 s; then stops it with SIGTERM and returns its output.
async fn register(etcd: &EtcdServer, endpoint: &str, tls_args: &[String], done: Option<&dyn Fn() -> bool>) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STOLONCTL_")) {
        cmd.env_remove(k);
    }
    cmd.args(["--store-backend", "etcdv3", "--store-endpoints", &etcd.endpoint(), "--cluster-name", CLUSTER])
        .args(["register", "--register-master", "--sleep-interval", "1", "--register-endpoints", endpoint])
        .args(tls_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn stolonctl register");
    let start = Instant::now();
    match done {
        Some(done) => {
            while !done() && start.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        None => tokio::time::sleep(Duration::from_millis(2500)).await,
    }
    let pid = child.id().expect("register still running");
    // SAFETY: kill(2) on the child we started.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("register stops on SIGTERM")
        .expect("register ran");
    assert!(out.status.success(), "register: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn args(pairs: &[(&str, std::path::PathBuf)], extra: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = pairs.iter().flat_map(|(f, p)| [f.to_string(), p.display().to_string()]).collect();
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

#[tokio::test]
async fn register_over_https_with_the_register_tls_flags() {
    // Started on this thread: the server is tied to the thread that started it.
    let etcd = EtcdServer::start().expect("a real etcd");
    let store = stolon_store::connect(&etcd.config(StoreBackend::EtcdV3, CLUSTER)).await.unwrap();
    store.put_cluster_data(&serde_json::to_vec(&cluster_data()).unwrap()).await.unwrap();
    let pki = std::sync::Arc::new(tokio::task::spawn_blocking(TestPki::create).await.unwrap().expect("openssl"));
    let (consul, https) = tokio::task::spawn_blocking({
        let pki = pki.clone();
        move || ConsulServer::start_https(&pki)
    })
    .await
    .unwrap()
    .expect("a consul agent (scripts/build-consul)");
    let wanted = vec![("db0".to_string(), vec!["master".to_string()]), ("db1".to_string(), vec!["slave".to_string()])];

    // The CA and a client certificate: both databases are registered.
    let verified = args(
        &[
            ("--register-ca-file", pki.ca()),
            ("--register-cert-file", pki.client_cert()),
            ("--register-key", pki.client_key()),
        ],
        &[],
    );
    let o = register(&etcd, &https, &verified, Some(&|| catalog(&consul) == wanted)).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(catalog(&consul), wanted, "{err}");
    assert!(!err.contains("skipped") && !err.contains("failed"), "{err}");

    // Without the CA, the server's certificate is unknown: every pass fails, saying why.
    let no_ca = args(&[("--register-cert-file", pki.client_cert()), ("--register-key", pki.client_key())], &[]);
    let o = register(&etcd, &https, &no_ca, None).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("registration pass skipped") && err.contains("TLS failure"), "{err}");
    assert!(err.contains("certificate"), "{err}");

    // Without the client certificate the agent refuses the handshake.
    let no_cert = args(&[("--register-ca-file", pki.ca())], &[]);
    let o = register(&etcd, &https, &no_cert, None).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("registration pass skipped") && err.contains(&https), "{err}");

    // Skipping verification works (a deregistered service comes back) and is warned about.
    let (status, body) = http(&consul.endpoint(), "PUT", "/v1/agent/service/deregister/db1");
    assert_eq!(status, 200, "{body}");
    assert_ne!(catalog(&consul), wanted);
    let skip = args(
        &[("--register-cert-file", pki.client_cert()), ("--register-key", pki.client_key())],
        &["--register-skip-tls-verify"],
    );
    let o = register(&etcd, &https, &skip, Some(&|| catalog(&consul) == wanted)).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(catalog(&consul), wanted, "{err}");
    assert!(
        err.contains("WARN") && err.contains("--register-skip-tls-verify") && err.contains("not verified"),
        "{err}"
    );
}
