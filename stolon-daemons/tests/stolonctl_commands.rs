//! stolonctl's store-editing and operational commands against a real etcd (v3 API), each run as the real
//! binary: failkeeper, removekeeper, promote, clusterdata read/write, an unreachable store, version and flag
//! errors, confirmation on a terminal, and register.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use stolon_core::cluster::KeeperInfo;
use tokio::io::AsyncWriteExt;

#[path = "stolonctl/fixture.rs"]
mod fixture;
use fixture::*;

#[tokio::test]
async fn failkeeper_and_removekeeper() {
    let f = Fixture::new("keepers").await;
    f.write(&realistic_cluster()).await;
    assert_ok(&f.ctl(&["failkeeper", "keeper0"]).await);
    assert!(f.data().await.keepers["keeper0"].status.force_fail);
    assert_rejected(&f, &["failkeeper", "nokeeper"], None, "keeper \"nokeeper\" does not exist").await;

    assert_ok(&f.ctl(&["removekeeper", "keeper2"]).await);
    let cd = f.data().await;
    assert!(!cd.keepers.contains_key("keeper2"));
    assert!(!cd.dbs.contains_key("f9e8d7c6"), "its DB is removed with it");
    assert!(cd.dbs.contains_key("e5f6a7b8"));
    let mark = &cd.cluster.status.removed_keepers["keeper2"];
    assert_eq!(mark.boot_uuid, "", "keeper2 never reported a boot UUID");
    assert!(!mark.remove_time.is_zero());
    // A keeper the cluster data knows without boot UUID is marked with the one its info publishes.
    let info = KeeperInfo { uid: "keeper3".into(), boot_uuid: "b3".into(), ..Default::default() };
    f.store.set_keeper_info(&info, Duration::from_secs(30)).await.expect("keeper info written");
    assert_ok(&f.ctl(&["removekeeper", "keeper3"]).await);
    let cd = f.data().await;
    assert!(!cd.keepers.contains_key("keeper3"), "a keeper without DB");
    assert_eq!(cd.cluster.status.removed_keepers["keeper3"].boot_uuid, "b3");
    assert_rejected(&f, &["removekeeper", "keeper0"], None, "hosts the current master db a1b2c3d4").await;
    assert_rejected(&f, &["removekeeper", "nokeeper"], None, "does not exist").await;
    // The status tree skips the follower that no longer exists.
    let text = stdout(&f.ctl(&["status"]).await);
    assert!(text.ends_with("keeper0 (master)\n├─keeper1\n\n"), "{text}");
}

#[tokio::test]
async fn promote_turns_a_standby_cluster_into_a_primary_one() {
    let f = Fixture::new("promote").await;
    let standby = r#"{"initMode":"pitr","role":"standby","pitrConfig":{"dataRestoreCommand":"true"},"standbyConfig":{"standbySettings":{"primaryConninfo":"host=10.1.1.1"}}}"#;
    assert_ok(&f.ctl(&["init", "-y", standby]).await);
    assert_rejected(&f, &["promote"], None, "pass --yes").await;
    let o = f.ctl(&["promote", "-y"]).await;
    assert_ok(&o);
    let cd = f.data().await;
    assert_eq!(cd.cluster.spec.role().to_string(), "master");
    assert!(cd.cluster.spec.standby_config.is_some(), "the rest of the spec is kept");
    let before = f.doc().await;
    let again = f.ctl(&["promote", "--yes"]).await;
    assert_ok(&again);
    assert_eq!(stderr(&again), "cluster spec role already set to master\n");
    assert_eq!(f.doc().await, before, "nothing written");
    // Once master, never back to standby.
    assert_rejected(
        &f,
        &["update", "-p", r#"{"role":"standby"}"#],
        None,
        "role cannot be changed from master to standby",
    )
    .await;
}

#[tokio::test]
async fn clusterdata_read_and_write() {
    let f = Fixture::new("cdsrc").await;
    f.write(&realistic_cluster()).await;
    let compact = f.ctl(&["clusterdata", "read"]).await;
    assert_ok(&compact);
    let out = stdout(&compact);
    assert_eq!(out.lines().count(), 1);
    let read: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(read["cluster"]["uid"], "3e1c2a9f");
    assert_eq!(read["dbs"]["a1b2c3d4"]["spec"]["followers"], json!(["e5f6a7b8", "f9e8d7c6"]));
    let pretty = stdout(&f.ctl(&["clusterdata", "read", "--pretty"]).await);
    assert!(pretty.starts_with("{\n\t\"formatVersion\": 1,\n\t\"changeTime\": "), "{pretty}");
    assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), read);

    // Migrate into another cluster path of the same store, from stdin.
    let dest = Fixture::new("cddest").await;
    let o = dest.ctl_stdin(&["clusterdata", "write"], out.as_bytes()).await;
    assert_ok(&o);
    assert!(stdout(&o).contains("successfully wrote cluster data"));
    assert_eq!(dest.data().await, f.data().await);

    // Existing data needs --yes; with it the replaced cluster is named.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cd.json");
    let mut other = realistic_cluster();
    other["cluster"]["uid"] = json!("0badc0de");
    std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
    let file = path.to_str().unwrap();
    assert_rejected(&dest, &["clusterdata", "write", "-f", file], None, "cluster data already available: use --yes")
        .await;
    let o = dest.ctl(&["clusterdata", "write", "--file", file, "--yes"]).await;
    assert_ok(&o);
    assert!(stdout(&o).contains("will be removed: cluster 3e1c2a9f"), "{}", stdout(&o));
    assert_eq!(dest.data().await.cluster.uid, "0badc0de");

    // Validated before writing: JSON, format version, spec.
    let y = ["clusterdata", "write", "-y"];
    assert_rejected(&dest, &y, Some(b"{not json"), "invalid cluster data: not valid JSON").await;
    assert_rejected(
        &dest,
        &y,
        Some(br#"{"formatVersion":2,"cluster":{}}"#),
        "unsupported clusterdata format version 2",
    )
    .await;
    let mut bad = realistic_cluster();
    bad["cluster"]["spec"]["maxSynchronousStandbys"] = json!(0);
    assert_rejected(
        &dest,
        &y,
        Some(&serde_json::to_vec(&bad).unwrap()),
        "maxSynchronousStandbys (0) must be at least 1",
    )
    .await;
    assert_rejected(&dest, &y, Some(b"null"), "invalid cluster data: the document is null").await;
}

#[tokio::test]
async fn an_unreachable_store_fails_every_command_with_one_line() {
    // A closed port. Not a port freed after binding: concurrent tests start etcd servers on free ports
    // and could take it. Port 1 (tcpmux) is privileged and never served here.
    let port = 1;
    let global: Vec<String> = [
        "--store-backend",
        "etcdv3",
        "--store-endpoints",
        &format!("127.0.0.1:{port}"),
        "--cluster-name",
        "gone",
        "--store-timeout",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    let commands: [&[&str]; 11] = [
        &["status"],
        &["status", "--format", "json"],
        &["init", "-y"],
        &["update", "-p", "{}"],
        &["spec"],
        &["failkeeper", "k"],
        &["removekeeper", "k"],
        &["promote", "-y"],
        &["clusterdata", "read"],
        &["clusterdata", "write", "-y"],
        &["spec", "--defaults"],
    ];
    for args in commands {
        let o = run(&global, args, None, &[]).await;
        if args[0] == "clusterdata" && args[1] == "write" {
            // Empty stdin: invalid input is reported before the store is needed.
            assert_one_line_error(&o, "invalid cluster data");
            continue;
        }
        assert_one_line_error(&o, "store unavailable");
        assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
    }
}

#[tokio::test]
async fn version_and_flag_errors() {
    let o = run(&[], &["version"], None, &[]).await;
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("stolonctl version {}\n", env!("CARGO_PKG_VERSION")));
    let o = run(&[], &["status"], None, &[]).await;
    assert_one_line_error(&o, "--store-backend");
    let f = Fixture::new("register").await;
    f.write(&realistic_cluster()).await;
    let o = f.ctl(&["register", "--register-backend", "zookeeper"]).await;
    assert_one_line_error(&o, "unknown register backend");
    let o = f.ctl(&["register", "--register-endpoints", "http://a:1,http://b:2"]).await;
    assert_one_line_error(&o, "consul does not support multiple endpoints");
    let o =
        f.ctl(&["register", "--register-endpoints", "https://a:1", "--register-ca-file", "/nonexistent/ca.pem"]).await;
    assert_one_line_error(&o, "--register-ca-file /nonexistent/ca.pem: cannot read");
    let o = f.ctl(&["register", "--register-endpoints", "http://a:1", "--register-ca-file", "/tmp/ca.pem"]).await;
    assert_one_line_error(&o, "use an https:// endpoint");
    let o = f.ctl(&["register", "--register-endpoints", "https://a:1", "--register-key", "/tmp/k.pem"]).await;
    assert_one_line_error(&o, "--register-cert-file and --register-key must be given together");
}

/// Runs stolonctl under `script` (util-linux), which gives it a pseudo-terminal as stdin, feeding `answers`.
async fn run_on_terminal(f: &Fixture, args: &str, answers: &str) -> Output {
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qec", &format!("{BIN} {args}"), "/dev/null"]);
    let store_args = f.store_args();
    for pair in store_args.chunks(2) {
        cmd.env(stolon_daemons::env::var_name("STOLONCTL", pair[0].trim_start_matches("--")), &pair[1]);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("`script` (util-linux) is needed to give stolonctl a terminal");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    pipe.write_all(answers.as_bytes()).await.expect("write answers");
    drop(pipe);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("finished within 60 s")
        .expect("script ran")
}

#[tokio::test]
async fn confirmation_is_asked_on_a_terminal() {
    let f = Fixture::new("prompt").await;
    let o = run_on_terminal(&f, "init", "maybe\nno\n").await;
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("Are you sure you want to continue? [yes/no]"), "{out}");
    assert!(out.contains("Please enter 'yes' or 'no'"), "{out}");
    assert!(out.contains("exiting"), "{out}");
    assert!(f.doc().await.is_none(), "answered no: nothing written");
    let o = run_on_terminal(&f, "init", "yes\n").await;
    assert_ok(&o);
    assert!(stdout(&o).contains("initialised"), "{}", stdout(&o));
    assert!(f.doc().await.is_some());
}

#[tokio::test]
async fn register_runs_passes_until_sigterm() {
    // The agent is a never-served port, so every pass fails and is logged, and the loop keeps going until
    // SIGTERM. Registration against a real Consul is in tests/register.rs; the desired services and the
    // diff are unit-tested in stolon-core.
    let f = Fixture::new("registerloop").await;
    f.write(&realistic_cluster()).await;
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(f.store_args())
        .args(["register", "--register-endpoints", "http://127.0.0.1:1", "--sleep-interval", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn stolonctl register");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pid = child.id().expect("still running").to_string();
    let killed = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.expect("run kill");
    assert!(killed.success());
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("register stops on SIGTERM")
        .expect("register ran");
    assert_ok(&o);
    let err = stderr(&o);
    let passes = err.matches("registration pass skipped").count();
    assert!(passes >= 2, "one failed pass per second is logged: {err}");
    assert!(err.contains("consul list service registerloop"), "{err}");
}
