//! A real HAProxy (Debian's `haproxy`) in front of the keepers with the configuration of `examples/haproxy/`: a
//! primary frontend for writes (`/primary` checks) and a replicas frontend for reads (`/replica?lag=16MB`).

use std::path::Path;

use anyhow::Context;
use stolon_conformance::servers::free_port;

use super::R;
use super::process::Process;
use super::scenario::Env;

/// A running HAProxy.
pub struct HaProxy {
    /// The port whose connections go to the master.
    pub primary_port: u16,
    /// The port whose connections go to the standbys.
    pub replicas_port: u16,
    /// The process (killed on drop).
    pub proc: Process,
}

/// One backend server: a keeper's PostgreSQL port and its API port.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    /// PostgreSQL's port.
    pub pg_port: u16,
    /// The keeper API's port.
    pub api_port: u16,
}

/// The HAProxy binary (`HAPROXY_BIN`, default Debian's).
fn binary() -> String {
    std::env::var("HAPROXY_BIN").unwrap_or_else(|_| "/usr/sbin/haproxy".into())
}

/// The shipped example configuration.
pub const EXAMPLE: &str = include_str!("../../../../examples/haproxy/haproxy.cfg");

/// The example configuration on loopback: its frontends bound to `primary_port` and `replicas_port`, its
/// servers replaced by `servers`, checks every `inter` instead of every second; every other line as shipped.
pub fn config(primary_port: u16, replicas_port: u16, inter: &str, servers: &[Server]) -> R<String> {
    let mut out = String::new();
    let (mut binds, mut lists) = (0, 0);
    for line in EXAMPLE.lines() {
        let t = line.trim_start();
        if t.starts_with("server ") {
            continue;
        }
        let line = match t {
            "bind *:5000" => {
                binds += 1;
                format!("    bind 127.0.0.1:{primary_port}")
            }
            "bind *:5001" => {
                binds += 1;
                format!("    bind 127.0.0.1:{replicas_port}")
            }
            _ if t.starts_with("default-server inter 1s ") => line.replace("inter 1s", &format!("inter {inter}")),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
        if t == "http-check expect status 200" {
            lists += 1;
            for (i, srv) in servers.iter().enumerate() {
                out.push_str(&format!("    server keeper{i} 127.0.0.1:{} check port {}\n", srv.pg_port, srv.api_port));
            }
        }
    }
    anyhow::ensure!(binds == 2 && lists == 2, "examples/haproxy/haproxy.cfg no longer has the expected layout");
    anyhow::ensure!(
        out.contains(&format!("inter {inter}")),
        "examples/haproxy/haproxy.cfg: no default-server inter 1s"
    );
    Ok(out)
}

impl HaProxy {
    /// Writes the configuration (the example's, see [`config`]) in `dir` and starts HAProxy in the foreground;
    /// its log is a scenario log.
    pub fn start(env: &Env, dir: &Path, inter: &str, servers: &[Server]) -> R<HaProxy> {
        let (primary_port, replicas_port) = (free_port(), free_port());
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config(primary_port, replicas_port, inter, servers)?)?;
        let check = std::process::Command::new(binary())
            .args(["-c", "-q", "-f"])
            .arg(&path)
            .output()
            .with_context(|| format!("running {} (the haproxy package)", binary()))?;
        anyhow::ensure!(
            check.status.success(),
            "haproxy rejects its configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = env.logs_dir().join("haproxy.log");
        env.register_log("haproxy", &log);
        let args = vec!["-db".to_string(), "-f".to_string(), path.to_string_lossy().into_owned()];
        let mut proc = Process::new("haproxy", Path::new(&binary()), args, Vec::new(), log);
        proc.start()?;
        Ok(HaProxy { primary_port, replicas_port, proc })
    }
}
