//! examples/monitoring: every metric the Grafana dashboard and the Prometheus alerting rules use is one the
//! real components expose. Starts a real etcd and the three daemons (as built), scrapes each `/metrics`,
//! and checks the process metrics are on every component.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stolon_conformance::servers::{EtcdServer, free_port, postgres_bin_dir};

/// A daemon killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &str, args: &[String]) -> Daemon {
    Daemon(
        Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}")),
    )
}

/// The metric names (sample names) a `/metrics` endpoint serves, retried until it answers.
fn scrape(port: u16) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match body {
            Ok(body) if body.starts_with("HTTP/1.1 200") => {
                return body
                    .lines()
                    .skip_while(|l| !l.is_empty())
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
                    .collect();
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("no /metrics on port {port} within 60 s: {other:?}"),
        }
    }
}

/// The `stolon_*` and `process_*` metric names an example file refers to.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = (i == 0 || !is_name(bytes[i - 1]))
            && (text[i..].starts_with("stolon_") || text[i..].starts_with("process_"));
        if starts {
            let end = text[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(text.len(), |e| i + e);
            names.insert(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monitoring")
}

#[test]
fn dashboard_and_alert_rules_use_only_metrics_the_components_expose() {
    let etcd = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let dir = tempfile::tempdir().unwrap();
    let store = |args: &mut Vec<String>| {
        args.extend(
            ["--cluster-name", "monitoring", "--store-backend", "etcdv3", "--store-endpoints", &etcd.endpoint()]
                .map(String::from),
        )
    };
    let ports = [free_port(), free_port(), free_port()];
    let metrics = |port: u16| vec!["--metrics-listen-address".to_string(), format!("127.0.0.1:{port}")];

    let mut keeper = metrics(ports[0]);
    store(&mut keeper);
    let pg_bin = postgres_bin_dir().expect("PostgreSQL (PG_BIN_DIR)");
    keeper.extend([
        "--uid".into(),
        "keeper0".into(),
        "--data-dir".into(),
        dir.path().join("keeper0").display().to_string(),
        "--pg-listen-address".into(),
        "127.0.0.1".into(),
        "--pg-port".into(),
        free_port().to_string(),
        "--pg-bin-path".into(),
        pg_bin.display().to_string(),
        "--pg-repl-username".into(),
        "repl".into(),
        "--pg-repl-password".into(),
        "replpass".into(),
        "--pg-su-password".into(),
        "supass".into(),
    ]);
    let mut sentinel = metrics(ports[1]);
    store(&mut sentinel);
    let mut proxy = metrics(ports[2]);
    store(&mut proxy);
    proxy.extend(["--listen-address".into(), "127.0.0.1".into(), "--port".into(), free_port().to_string()]);

    let _daemons = [
        spawn(env!("CARGO_BIN_EXE_stolon-keeper"), &keeper),
        spawn(env!("CARGO_BIN_EXE_stolon-sentinel"), &sentinel),
        spawn(env!("CARGO_BIN_EXE_stolon-proxy"), &proxy),
    ];
    let mut exposed = BTreeSet::new();
    for (component, port) in ["keeper", "sentinel", "proxy"].into_iter().zip(ports) {
        let names = scrape(port);
        for process in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"] {
            assert!(names.contains(process), "{component} lacks {process}: {names:?}");
        }
        assert!(names.iter().any(|n| n.starts_with(&format!("stolon_{component}_"))), "{component}: {names:?}");
        exposed.extend(names);
    }

    let mut checked = 0;
    for file in ["grafana-dashboard.json", "prometheus-rules.yaml"] {
        let text = std::fs::read_to_string(examples().join(file)).expect(file);
        let used = referenced(&text);
        let unknown: Vec<&String> = used.difference(&exposed).collect();
        assert!(unknown.is_empty(), "{file} uses metrics no component exposes: {unknown:?}");
        assert!(used.len() >= 10, "{file} uses only {used:?}");
        checked += used.len();
    }
    assert!(checked > 20);
}

#[test]
fn the_name_check_can_fail() {
    // A misspelt metric is reported (the check above is not vacuous).
    let used = referenced(r#"{"expr": "rate(stolon_proxy_conections_accepted_total[5m]) / process_max_fds"}"#);
    assert_eq!(
        used,
        BTreeSet::from(["stolon_proxy_conections_accepted_total".to_string(), "process_max_fds".to_string()])
    );
    assert!(!referenced("xstolon_a").contains("stolon_a"));
}

#[test]
fn dashboard_is_valid_json_with_unique_panel_ids() {
    let text = std::fs::read_to_string(examples().join("grafana-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("grafana-dashboard.json is JSON");
    let ids: Vec<i64> = dash["panels"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate panel ids: {ids:?}");
    assert_eq!(dash["uid"], "stolon-rs");
}
