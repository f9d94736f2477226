//! Child processes of test servers: spawned with their output in a log file, killed with the test.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// Finds a server binary from `env_var`, then `PATH`, then the fallback directories.
pub(crate) fn find_binary(
    name: &str,
    env_var: &str,
    fallbacks: &[&str],
    install_hint: &str,
) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        anyhow::ensure!(p.is_file(), "{env_var}={} does not name a file", p.display());
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(fallbacks.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!("{name} not found in {env_var} or PATH: {install_hint}")
}

/// Spawns `cmd` with stdout and stderr appended to `log`. The child is killed if the test process dies.
pub(crate) fn spawn_logged(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let out = File::options().create(true).append(true).open(log).with_context(|| format!("{}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().with_context(|| format!("spawning {:?}", cmd.get_program()))
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
