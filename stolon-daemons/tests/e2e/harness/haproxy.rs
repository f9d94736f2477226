//! A real HAProxy (Debian's `haproxy`) in front of the keepers with the configuration of `examples/haproxy/`: a
//! primary frontend for writes (`/primary` checks) and a replicas frontend for reads (`/replica?lag=16MB`).
//!
//! HAProxy 2.6 (Debian's) starts every server up until its first check: a test waits for [`HaProxy::checked`]
//! before it sends anything, or a connection may reach a server no check has looked at yet.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

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
    /// HAProxy's stats socket (the test's addition to the example).
    stats_socket: PathBuf,
}

/// One server of one `listen` section as HAProxy's `show stat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    /// The section: `primary` or `replicas`.
    pub listen: String,
    /// The server's name (`keeper0`...).
    pub server: String,
    /// `UP`, `DOWN`, or a transition such as `UP 1/2`.
    pub status: String,
    /// The last check's result (`INI` before the first one; a leading `* ` while one runs).
    pub check_status: String,
}

impl ServerStat {
    /// Whether at least one check of this server has ended.
    pub fn checked(&self) -> bool {
        !matches!(self.check_status.trim_start_matches("* "), "" | "INI" | "UNK")
    }
}

/// The server rows of a `show stat` CSV answer (the frontend and backend summary rows left out).
fn parse_show_stat(csv: &str) -> R<Vec<ServerStat>> {
    let mut lines = csv.lines();
    let header = lines.next().and_then(|h| h.strip_prefix("# ")).context("show stat: no '# ' header line")?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).with_context(|| format!("show stat: no {name} column"));
    let (px, sv, status, check) = (col("pxname")?, col("svname")?, col("status")?, col("check_status")?);
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let field = |i: usize| f.get(i).map(|v| v.to_string()).with_context(|| format!("show stat: short row {line}"));
        let server = field(sv)?;
        if server == "FRONTEND" || server == "BACKEND" {
            continue;
        }
        out.push(ServerStat { listen: field(px)?, server, status: field(status)?, check_status: field(check)? });
    }
    Ok(out)
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
/// servers replaced by `servers`, checks every `inter` instead of every second, and a stats socket at
/// `stats_socket` (for [`HaProxy::checked`]); every other line as shipped.
pub fn config(
    primary_port: u16,
    replicas_port: u16,
    inter: &str,
    servers: &[Server],
    stats_socket: &Path,
) -> R<String> {
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
        if t == "global" {
            out.push_str(&format!("    stats socket {} mode 600 level user\n", stats_socket.display()));
        }
        if t == "http-check expect status 200" {
            lists += 1;
            for (i, srv) in servers.iter().enumerate() {
                out.push_str(&format!("    server keeper{i} 127.0.0.1:{} check port {}\n", srv.pg_port, srv.api_port));
            }
        }
    }
    anyhow::ensure!(out.contains("stats socket"), "examples/haproxy/haproxy.cfg: no global section");
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
        let stats_socket = dir.join("haproxy.sock");
        std::fs::write(&path, config(primary_port, replicas_port, inter, servers, &stats_socket)?)?;
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
        Ok(HaProxy { primary_port, replicas_port, proc, stats_socket })
    }

    /// Every server of both sections, from the stats socket.
    pub fn stats(&self) -> R<Vec<ServerStat>> {
        let mut sock = UnixStream::connect(&self.stats_socket)
            .with_context(|| format!("HAProxy's stats socket {}", self.stats_socket.display()))?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        sock.write_all(b"show stat\n")?;
        let mut csv = String::new();
        sock.read_to_string(&mut csv)?;
        parse_show_stat(&csv)
    }

    /// The servers once every one has been checked at least once (HAProxy starts them all up, so until then a
    /// connection may go to a server whose check would fail); `None` while some have not.
    pub fn checked(&self) -> R<Option<Vec<ServerStat>>> {
        let stats = self.stats()?;
        anyhow::ensure!(!stats.is_empty(), "HAProxy reports no server");
        Ok(stats.iter().all(ServerStat::checked).then_some(stats))
    }
}
