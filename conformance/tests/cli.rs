//! The runner's command line, checked by running the binary: boolean flags in stolon's (pflag's) syntax,
//! as in the other stolon-rs binaries.

use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_stolon-conformance");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(RUNNER).args(args).output().expect("run stolon-conformance");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn boolean_flags_take_go_syntax() {
    for spelling in ["1", "t", "T", "TRUE", "true", "True"] {
        let list = format!("--list={spelling}");
        let skip = format!("--store-skip-tls-verify={spelling}");
        let (code, stdout, stderr) = run(&["--store-backend", "etcdv3", &list, &skip]);
        assert!(code == 0 && stdout.contains("large_value"), "{list}: {code} {stderr}");
    }
    for spelling in ["0", "f", "F", "FALSE", "false", "False"] {
        // Not listing: the run goes on to the flags' check and stops at the unknown backend.
        let list = format!("--list={spelling}");
        let (code, stdout, stderr) = run(&["--store-backend", "zk", &list]);
        assert!(code == 2 && stdout.is_empty() && stderr.contains("zk"), "{list}: {code} {stderr}");
    }
    let (code, stdout, _) = run(&["--store-backend", "etcdv3", "--list"]);
    assert!(code == 0 && stdout.contains("unreachable_endpoint"));
    for flag in ["--list", "--store-skip-tls-verify"] {
        let (code, _, stderr) = run(&["--store-backend", "etcdv3", flag, "false"]);
        assert!(code == 2 && stderr.contains(flag) && stderr.contains("\"false\""), "{flag}: {code} {stderr}");
    }
    let (code, _, stderr) = run(&["--store-backend", "etcdv3", "--list=yes"]);
    assert!(code == 2 && stderr.contains("\"yes\" is not a boolean"), "{stderr}");
}
