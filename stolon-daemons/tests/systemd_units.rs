//! examples/systemd: `systemd-analyze verify` accepts every unit (no warning at all), and every variable of the
//! example environment files is a flag the real binary takes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd")
}

/// A root file system for `systemd-analyze verify --root`: the host's system units (for the targets the
/// units reach), ours in /etc/systemd/system, and an executable at each ExecStart path.
fn verify_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|d| Path::new(d).join("sysinit.target").exists())
        .expect("the host's systemd units (apt-get install systemd)");
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
    let copy = Command::new("cp").args(["-rT", host_units]).arg(root.path().join("usr/lib/systemd/system")).status();
    assert!(copy.is_ok_and(|s| s.success()), "copy {host_units}");
    let bin = root.path().join("usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["stolon-keeper", "stolon-sentinel", "stolon-proxy"] {
        std::fs::write(bin.join(name), "#!/bin/sh\n").unwrap();
        Command::new("chmod").arg("755").arg(bin.join(name)).status().unwrap();
    }
    for unit in unit_files() {
        std::fs::copy(&unit, units.join(unit.file_name().unwrap())).unwrap();
    }
    root
}

fn unit_files() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "service"))
        .collect();
    units.sort();
    units
}

#[test]
fn systemd_analyze_verify_accepts_every_unit_without_a_warning() {
    let root = verify_root();
    let units = root.path().join("etc/systemd/system");
    let mut args: Vec<PathBuf> = Vec::new();
    for unit in unit_files() {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        // A template is verified through one instance of it.
        args.push(units.join(name.replace("@.service", "@keeper0.service")));
    }
    assert_eq!(args.len(), 3, "{args:?}");
    // An instance name resolves to its template file in the same directory.
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("--man=no")
        .args(&args)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify: {:?}\n{text}", out.status);
}

#[test]
fn verify_catches_a_unit_error() {
    // The check above can fail: an unknown key is reported.
    let root = verify_root();
    let unit = root.path().join("etc/systemd/system/stolon-proxy.service");
    let text = std::fs::read_to_string(&unit).unwrap().replace("[Service]\n", "[Service]\nNoSuchKey=1\n");
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("--man=no")
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchKey"), "{out:?}");
}

/// The `--long-flag` names a binary's --help lists.
fn flags_of(bin: &str) -> Vec<String> {
    let out = Command::new(bin).arg("--help").output().expect("run --help");
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_string())
        .collect()
}

#[test]
fn every_environment_variable_is_a_flag_of_its_binary() {
    let binaries = [
        ("STKEEPER_", env!("CARGO_BIN_EXE_stolon-keeper")),
        ("STSENTINEL_", env!("CARGO_BIN_EXE_stolon-sentinel")),
        ("STPROXY_", env!("CARGO_BIN_EXE_stolon-proxy")),
    ];
    let flags: Vec<(&str, Vec<String>)> = binaries.iter().map(|(p, b)| (*p, flags_of(b))).collect();
    let mut checked = 0;
    let env_dir = examples().join("etc/stolon");
    let mut sources: Vec<(String, String)> = std::fs::read_dir(&env_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    for unit in unit_files() {
        let text = std::fs::read_to_string(&unit).unwrap();
        let env_lines = text.lines().filter_map(|l| l.strip_prefix("Environment=")).collect::<Vec<_>>().join("\n");
        sources.push((unit.display().to_string(), env_lines));
    }
    for (file, text) in sources {
        for line in text.lines().map(|l| l.trim_start_matches('#')) {
            let Some((var, _)) = line.split_once('=') else { continue };
            if var.contains(' ') {
                continue;
            }
            let (prefix, known) = flags
                .iter()
                .find(|(p, _)| var.starts_with(p))
                .unwrap_or_else(|| panic!("{file}: {var} has no component prefix"));
            let flag = var[prefix.len()..].to_lowercase().replace('_', "-");
            assert!(known.contains(&flag), "{file}: {var} is not a flag of its binary (--{flag})");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} variables checked");
}
