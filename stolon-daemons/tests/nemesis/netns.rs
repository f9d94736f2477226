//! Network namespaces for the nemesis: one per node, each joined by a veth pair to a bridge that lives in a
//! namespace of its own (the hub), so that no address, route or rule is ever added to the host's namespace.
//! Faults are nftables rules inside the namespaces: a partition drops the packets a node receives from the
//! blocked peers (silently, as a cut cable would: senders see timeouts, never an error), loss drops a random
//! share of a node's incoming packets, and a slow link is a token bucket on the node's interface.
//!
//! Every namespace is named `stnm-<pid>-<node>` after the process that made it. [`Net`] removes its own on
//! drop (killing whatever still runs inside); [`remove_leftovers`] removes those of processes that are gone
//! (a run killed by SIGKILL), so that a new run always starts clean.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, bail};

use super::R;

/// The prefix of every namespace the nemesis creates.
pub const PREFIX: &str = "stnm-";
/// The subnet of the bridge (inside the hub namespace only).
const SUBNET: [u8; 3] = [10, 201, 0];
/// The nftables table of the faults, created in every node namespace.
const NFT_SETUP: &str = "table inet nemesis {
  set blocked { type ipv4_addr; }
  chain input { type filter hook input priority 0; policy accept; ip saddr @blocked drop; }
}";

/// One node: a namespace with an interface `eth0` on the bridge.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node's name in the run (`etcd0`, `keeper1`, `proxy0`, `client`...).
    pub name: String,
    /// The namespace (`stnm-<pid>-<name>`).
    pub ns: String,
    /// The node's address on the bridge.
    pub ip: Ipv4Addr,
}

/// The namespaces of one run. Dropping it kills every process left in them and deletes them.
pub struct Net {
    run: String,
    hub: String,
    nodes: Vec<Node>,
    next_host: u8,
}

/// Runs `ip`/`nft`/`tc` with `args`; an error carries the command and its stderr.
pub fn run(program: &str, args: &[&str]) -> R<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `nft` inside namespace `ns` with `script` on standard input.
fn nft_script(ns: &str, script: &str) -> R<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (Debian package nftables; scripts/install-test-deps installs it)")?;
    child.stdin.take().context("nft stdin")?.write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft in {ns} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Checks that the tools and kernel features the nemesis needs are here (root, `ip`, `nft`).
pub fn check_prerequisites() -> R<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the nemesis creates network namespaces and must run as root");
    }
    run("ip", &["-V"]).context("iproute2 is required")?;
    run("nft", &["--version"]).context("nftables is required (apt-get install nftables)")?;
    Ok(())
}

/// Deletes the namespaces of earlier runs whose process is gone, killing what still runs in them.
pub fn remove_leftovers() -> R<usize> {
    let mut removed = 0;
    for ns in list_namespaces()? {
        let Some(owner) = owner_pid(&ns) else { continue };
        if std::path::Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        delete_namespace(&ns);
        removed += 1;
    }
    Ok(removed)
}

/// Deletes every namespace of this process (on Ctrl-C, when the [`Net`] cannot be dropped in order).
pub fn remove_own() {
    let own = format!("{PREFIX}{}-", std::process::id());
    for ns in list_namespaces().unwrap_or_default().iter().filter(|n| n.starts_with(&own)) {
        delete_namespace(ns);
    }
}

/// The namespaces named with [`PREFIX`].
fn list_namespaces() -> R<Vec<String>> {
    let text = run("ip", &["netns", "list"])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(String::from)
        .collect())
}

/// The pid in `stnm-<pid>-<node>`.
fn owner_pid(ns: &str) -> Option<u32> {
    ns.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Kills every process inside `ns` (they are ours: only our runs create these namespaces) and deletes it.
fn delete_namespace(ns: &str) {
    for _ in 0..3 {
        let pids = run("ip", &["netns", "pids", ns]).unwrap_or_default();
        let me = std::process::id() as i32;
        let pids: Vec<i32> = pids.split_whitespace().filter_map(|p| p.parse().ok()).filter(|p| *p != me).collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) on a process inside a namespace this harness created.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = run("ip", &["netns", "del", ns]);
}

impl Net {
    /// Creates the hub namespace with its bridge. Leftovers of dead runs are removed first.
    pub fn create() -> R<Net> {
        check_prerequisites()?;
        let removed = remove_leftovers()?;
        if removed > 0 {
            eprintln!("nemesis: removed {removed} namespaces left by earlier runs");
        }
        let run_prefix = format!("{PREFIX}{}", std::process::id());
        let hub = format!("{run_prefix}-hub");
        let net = Net { run: run_prefix, hub: hub.clone(), nodes: Vec::new(), next_host: 10 };
        run("ip", &["netns", "add", &hub])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        Ok(net)
    }

    /// Adds node `name`: its namespace, a veth pair to the bridge, an address, loopback, and the fault table.
    pub fn add_node(&mut self, name: &str) -> R<Node> {
        if self.nodes.iter().any(|n| n.name == name) {
            bail!("node {name} exists already");
        }
        let ns = format!("{}-{name}", self.run);
        let ip = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], self.next_host);
        let port = format!("v{}", self.next_host);
        self.next_host = self.next_host.checked_add(1).context("too many nodes")?;
        // Recorded before the first command, so that a failure half-way is still torn down.
        let node = Node { name: name.to_string(), ns: ns.clone(), ip };
        self.nodes.push(node.clone());
        run("ip", &["netns", "add", &ns])?;
        run("ip", &["-n", &self.hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        run("ip", &["-n", &self.hub, "link", "set", &port, "master", "br0", "up"])?;
        run("ip", &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        nft_script(&ns, NFT_SETUP)?;
        Ok(node)
    }

    /// Node `name`.
    pub fn node(&self, name: &str) -> R<&Node> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| format!("no node {name}"))
    }

    /// Moves the calling thread into node `name`'s namespace. Threads spawned afterwards inherit it: call it
    /// before starting the async runtime to make the whole test process a client on the bridge.
    pub fn enter(&self, name: &str) -> R<()> {
        let node = self.node(name)?;
        let file = std::fs::File::open(format!("/run/netns/{}", node.ns)).context("opening the namespace")?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) on a namespace file descriptor we hold open.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns into {}: {}", node.ns, std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Drops the packets `to` receives from `from` (one direction; block both for a symmetric cut).
    pub fn block(&self, from: &str, to: &str) -> R<()> {
        let (from, to) = (self.node(from)?, self.node(to)?);
        run("ip", &["netns", "exec", &to.ns, "nft", "add", "element", "inet", "nemesis", "blocked", &set(from.ip)])?;
        Ok(())
    }

    /// Drops a random `percent` of the packets node `name` receives.
    pub fn loss(&self, name: &str, percent: u8) -> R<()> {
        let node = self.node(name)?;
        let rule = format!("add rule inet nemesis input numgen random mod 100 < {percent} drop");
        nft_script(&node.ns, &rule)
    }

    /// Limits what node `name` sends to `kbit` kbit/s (a slow link: packets wait in a token bucket). The
    /// kernel here has no netem, so delay is modelled as queueing on a slow link rather than a fixed latency.
    pub fn slow(&self, name: &str, kbit: u32) -> R<()> {
        let node = self.node(name)?;
        let rate = format!("{kbit}kbit");
        run(
            "tc",
            &[
                "-n", &node.ns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", &rate, "burst", "16kbit",
                "latency", "2s",
            ],
        )?;
        Ok(())
    }

    /// Removes every fault of node `name` (partition entries, loss, slow link).
    pub fn heal(&self, name: &str) -> R<()> {
        let node = self.node(name)?;
        nft_script(&node.ns, &format!("flush table inet nemesis\ndelete table inet nemesis\n{NFT_SETUP}"))?;
        let qdisc = run("tc", &["-n", &node.ns, "qdisc", "show", "dev", "eth0"])?;
        if qdisc.contains("tbf") {
            run("tc", &["-n", &node.ns, "qdisc", "del", "dev", "eth0", "root"])?;
        }
        Ok(())
    }

    /// Removes every fault of every node.
    pub fn heal_all(&self) -> R<()> {
        for n in &self.nodes {
            self.heal(&n.name)?;
        }
        Ok(())
    }

    /// The command prefix that runs a program inside node `name` (`ip netns exec <ns>`).
    pub fn exec_prefix(&self, name: &str) -> R<Vec<String>> {
        Ok(vec!["netns".into(), "exec".into(), self.node(name)?.ns.clone()])
    }

    /// Removes node `name` (killing what runs in it).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            let node = self.nodes.remove(i);
            delete_namespace(&node.ns);
        }
    }
}

fn set(ip: Ipv4Addr) -> String {
    format!("{{ {ip} }}")
}

impl Drop for Net {
    fn drop(&mut self) {
        for node in self.nodes.drain(..) {
            delete_namespace(&node.ns);
        }
        delete_namespace(&self.hub);
    }
}
