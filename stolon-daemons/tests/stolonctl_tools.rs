//! stolonctl's operator tools as the real binary: shell completion (checked by bash itself), man pages, and
//! `status --watch` against a real etcd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stolon_conformance::servers::EtcdServer;

const BIN: &str = env!("CARGO_BIN_EXE_stolonctl");

fn stolonctl() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STOLONCTL_") || k == "NO_COLOR") {
        cmd.env_remove(k);
    }
    cmd
}

#[test]
fn bash_completion_is_valid_bash_and_completes_subcommands_and_flags() {
    let out = stolonctl().args(["completion", "bash"]).output().expect("run stolonctl");
    assert!(out.status.success(), "{out:?}");
    let script = String::from_utf8(out.stdout).expect("utf-8");
    for word in ["status", "clusterdata", "failkeeper", "--watch", "--store-endpoints", "--cluster-name"] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    // bash -n parses the script without running it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stolonctl.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().expect("run bash -n");
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    // Sourced in a real bash, it registers the completion function and completes a subcommand prefix.
    let probe = format!(
        "source {}; COMP_WORDS=(stolonctl clusterd); COMP_CWORD=1; COMP_LINE='stolonctl clusterd'; \
         COMP_POINT=${{#COMP_LINE}}; _stolonctl stolonctl clusterd stolonctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let run = Command::new("bash").args(["--norc", "-c", &probe]).output().expect("run bash");
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "clusterdata", "{run:?}");

    for shell in ["zsh", "fish"] {
        let out = stolonctl().args(["completion", shell]).output().expect("run stolonctl");
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--watch"), "{shell}");
    }
    let bad = stolonctl().args(["completion", "tcsh"]).output().expect("run stolonctl");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tcsh"));
}

#[test]
fn man_pages_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = stolonctl().arg("man").arg(dir.path().join("man1")).output().expect("run stolonctl");
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout).lines().count();
    let page = |name: &str| std::fs::read_to_string(dir.path().join("man1").join(name)).expect(name);
    assert!(page("stolonctl.1").contains(".TH stolonctl 1"));
    let status = page("stolonctl-status.1");
    assert!(status.contains("watch") && status.contains("STOLONCTL_FORMAT"), "{status}");
    assert!(page("stolonctl-clusterdata-write.1").contains("yes"));
    assert!(listed >= 12, "one page per subcommand, got {listed}");
}

#[test]
fn status_watch_prints_one_json_document_per_change_until_sigterm() {
    let etcd = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let ep = etcd.endpoint();
    let store = ["--store-backend", "etcdv3", "--store-endpoints", &ep, "--cluster-name", "watch"];
    let mut child = stolonctl()
        .args(store)
        .args(["status", "--watch", "--format", "json", "--watch-interval", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stolonctl status --watch");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("stolonctl still watching").expect("read stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let first = next();
    assert_eq!(first["cluster"]["available"], false, "{first}");

    // Several intervals pass unchanged (nothing printed), then the cluster is created: one new document.
    std::thread::sleep(Duration::from_millis(500));
    let init = stolonctl().args(store).args(["init", "-y"]).output().expect("init");
    assert!(init.status.success(), "{init:?}");
    let second = next();
    assert_eq!(second["cluster"]["available"], true, "{second}");
    std::thread::sleep(Duration::from_millis(500));

    // SIGTERM ends the watch with status 0; nothing was printed for the unchanged passes.
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "stolonctl status --watch did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(rest.is_empty(), "unchanged statuses printed again: {rest:?}");
}
