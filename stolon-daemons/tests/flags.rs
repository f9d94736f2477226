//! Boolean flags of each binary in stolon's (pflag's) syntax, checked by running the binaries: every Go
//! spelling after `=` and in the environment is accepted, a value after a space is refused (exit status 2)
//! with clap's usage error naming the flag and the value. No store is given, so an accepted command line
//! ends at the first store-related check, before anything starts.

use std::process::{Command, Output, Stdio};

const TRUE: [&str; 6] = ["1", "t", "T", "TRUE", "true", "True"];
const FALSE: [&str; 6] = ["0", "f", "F", "FALSE", "false", "False"];

struct Binary {
    path: &'static str,
    prefix: &'static str,
    /// Arguments placed before the boolean flags (a subcommand).
    before: &'static [&'static str],
    /// The boolean flags.
    flags: &'static [&'static str],
}

const COMMON: [&str; 2] = ["store-skip-tls-verify", "log-color"];

const KEEPER: Binary = Binary {
    path: env!("CARGO_BIN_EXE_stolon-keeper"),
    prefix: "STKEEPER",
    before: &[],
    flags: &["can-be-master", "can-be-synchronous-replica", "disable-data-dir-locking", "debug"],
};
const SENTINEL: Binary =
    Binary { path: env!("CARGO_BIN_EXE_stolon-sentinel"), prefix: "STSENTINEL", before: &[], flags: &["debug"] };
const PROXY: Binary = Binary {
    path: env!("CARGO_BIN_EXE_stolon-proxy"),
    prefix: "STPROXY",
    before: &[],
    flags: &["stop-listening", "debug"],
};
const STOLONCTL_REGISTER: Binary = Binary {
    path: env!("CARGO_BIN_EXE_stolonctl"),
    prefix: "STOLONCTL",
    before: &["register"],
    flags: &["register-master", "register-skip-tls-verify", "debug"],
};

fn run(bin: &str, args: &[String], env: &[(String, String)]) -> (i32, String) {
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    // Nothing from the test's own environment may set a flag.
    for (k, _) in std::env::vars() {
        if ["STKEEPER_", "STSENTINEL_", "STPROXY_", "STOLONCTL_"].iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let Output { status, stderr, .. } = cmd.output().expect("run the binary");
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&stderr).into_owned())
}

fn all_flags(b: &Binary) -> Vec<&'static str> {
    b.flags.iter().copied().chain(COMMON).collect()
}

/// An accepted command line: past flag parsing, stopped by the missing store (never clap's usage error).
fn assert_accepted(what: &str, (code, stderr): (i32, String)) {
    assert!(code != 0 && !stderr.starts_with("error:"), "{what}: expected no usage error, got {code}: {stderr}");
    assert!(stderr.contains("--store-backend is required"), "{what}: expected the store error: {stderr}");
}

/// A command line refused by clap (status 2, `error: ...` with the usage).
fn assert_refused(what: &str, (code, stderr): (i32, String), needles: &[&str]) {
    assert!(code == 2 && stderr.starts_with("error:"), "{what}: expected a usage error, got {code}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{what}: {n:?} missing from: {stderr}");
    }
}

fn check_binary(b: &Binary) {
    let name = b.path.rsplit('/').next().unwrap_or(b.path);
    for spelling in TRUE.iter().chain(&FALSE) {
        let mut args: Vec<String> = b.before.iter().map(|s| s.to_string()).collect();
        args.extend(all_flags(b).iter().map(|f| format!("--{f}={spelling}")));
        assert_accepted(&format!("{name} {args:?}"), run(b.path, &args, &[]));
        let env: Vec<(String, String)> = all_flags(b)
            .iter()
            .map(|f| (format!("{}_{}", b.prefix, f.to_uppercase().replace('-', "_")), spelling.to_string()))
            .collect();
        let before: Vec<String> = b.before.iter().map(|s| s.to_string()).collect();
        assert_accepted(&format!("{name} with {env:?}"), run(b.path, &before, &env));
    }
    for flag in all_flags(b) {
        let mut args: Vec<String> = b.before.iter().map(|s| s.to_string()).collect();
        args.push(format!("--{flag}"));
        assert_accepted(&format!("{name} --{flag}"), run(b.path, &args, &[]));
        args.push("false".into());
        let flag_name = format!("--{flag}");
        assert_refused(&format!("{name} --{flag} false"), run(b.path, &args, &[]), &[&flag_name, "\"false\""]);
        let var = format!("{}_{}", b.prefix, flag.to_uppercase().replace('-', "_"));
        let before: Vec<String> = b.before.iter().map(|s| s.to_string()).collect();
        let out = run(b.path, &before, &[(var.clone(), "yes".into())]);
        assert_refused(&format!("{name} {var}=yes"), out, &[&var, "\"yes\" is not a boolean"]);
        // An empty variable is ignored, as stolon does.
        assert_accepted(&format!("{name} {var}="), run(b.path, &before, &[(var, String::new())]));
    }
    let mut args: Vec<String> = b.before.iter().map(|s| s.to_string()).collect();
    args.push(format!("--{}=maybe", b.flags[0]));
    assert_refused(&format!("{name} =maybe"), run(b.path, &args, &[]), &[b.flags[0], "\"maybe\" is not a boolean"]);
}

#[test]
fn keeper_boolean_flags() {
    check_binary(&KEEPER);
}

#[test]
fn sentinel_boolean_flags() {
    check_binary(&SENTINEL);
}

#[test]
fn proxy_boolean_flags() {
    check_binary(&PROXY);
}

#[test]
fn stolonctl_boolean_flags() {
    check_binary(&STOLONCTL_REGISTER);
    let ctl = STOLONCTL_REGISTER.path;
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // The value decides: --yes=false asks for a confirmation that stdin (not a terminal) cannot give, before
    // any store is needed; --yes=1 goes on to the store.
    for spelling in FALSE {
        let (code, stderr) = run(ctl, &args(&["promote", &format!("--yes={spelling}")]), &[]);
        assert!(code == 1 && stderr.contains("needs confirmation"), "--yes={spelling}: {code} {stderr}");
        let (code, stderr) = run(ctl, &args(&["promote"]), &[("STOLONCTL_YES".into(), spelling.into())]);
        assert!(code == 1 && stderr.contains("needs confirmation"), "STOLONCTL_YES={spelling}: {code} {stderr}");
    }
    for spelling in TRUE {
        assert_accepted(&format!("--yes={spelling}"), run(ctl, &args(&["promote", &format!("-y={spelling}")]), &[]));
    }
    assert_accepted("-y", run(ctl, &args(&["promote", "-y"]), &[]));
    for (cmd, flag) in [
        (&["init"][..], "--yes"),
        (&["init"][..], "-y"),
        (&["update"][..], "--patch"),
        (&["spec"][..], "--defaults"),
        (&["clusterdata", "read"][..], "--pretty"),
        (&["clusterdata", "write"][..], "--yes"),
        (&["status"][..], "--store-skip-tls-verify"),
    ] {
        let mut a = args(cmd);
        a.extend([flag.to_string(), "False".to_string()]);
        assert_refused(&format!("stolonctl {a:?}"), run(ctl, &a, &[]), &[flag, "\"False\""]);
    }
    // A spec after --yes is a spec, not a stray value.
    assert_accepted("init --yes SPEC", run(ctl, &args(&["init", "--yes", "{\"initMode\":\"new\"}"]), &[]));
}
