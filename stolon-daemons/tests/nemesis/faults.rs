//! The faults: a plan drawn from a seed ([`plan`], pure), then each fault resolved against the running cluster
//! (which keeper is master now), applied, held, and healed.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::R;
use super::rng::Rng;
use super::topology::{Component, Topology};

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// One node (any component) cut from every other node and the clients.
    IsolateNode,
    /// Every keeper cut from every store member (both ways).
    KeepersFromStore,
    /// The master's keeper node cut from the store, not from proxies, clients or standbys.
    MasterFromStore,
    /// One direction only: the master's node can no longer reach the store members (they still reach it).
    MasterToStoreOneWay,
    /// One direction only: the proxies receive nothing from the master's node.
    MasterToProxiesOneWay,
    /// The nodes split in two random halves (both ways).
    RandomHalves,
    /// A random node loses part of the packets it receives.
    PacketLoss,
    /// A random node's outgoing link becomes slow (queueing delay).
    SlowLink,
    /// kill -9 of a component (a keeper with its postmaster), restarted at the heal.
    Kill,
    /// SIGSTOP of a component (a keeper with its postmaster), SIGCONT at the heal.
    Pause,
    /// kill -9 of the master's postmaster only (its keeper restarts it).
    KillMasterPostmaster,
    /// kill -9 of one store member, restarted at the heal.
    KillStoreMember,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 12] = [
        Kind::IsolateNode,
        Kind::KeepersFromStore,
        Kind::MasterFromStore,
        Kind::MasterToStoreOneWay,
        Kind::MasterToProxiesOneWay,
        Kind::RandomHalves,
        Kind::PacketLoss,
        Kind::SlowLink,
        Kind::Kill,
        Kind::Pause,
        Kind::KillMasterPostmaster,
        Kind::KillStoreMember,
    ];

    /// The kebab-case name used in reports.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    }

    /// True for the faults made of network rules (partitions, loss, slow links).
    pub fn is_network(self) -> bool {
        !matches!(self, Kind::Kill | Kind::Pause | Kind::KillMasterPostmaster | Kind::KillStoreMember)
    }
}

/// One planned fault: its kind, a random number that picks its targets at run time, and how long it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub kind: Kind,
    pub pick: u64,
    pub hold: Duration,
}

/// `n` faults from `seed`: the kinds cycle through a fresh shuffle of every kind (so any 12 consecutive faults
/// cover every kind), each held between `min_hold` and `max_hold`.
pub fn plan(seed: u64, n: usize, min_hold: Duration, max_hold: Duration) -> Vec<Planned> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut order = Vec::new();
    for _ in 0..n {
        if order.is_empty() {
            order = Kind::ALL.to_vec();
            rng.shuffle(&mut order);
        }
        let kind = order.pop().expect("refilled above");
        let hold = Duration::from_millis(rng.range(min_hold.as_millis() as u64, max_hold.as_millis() as u64));
        out.push(Planned { kind, pick: rng.next_u64(), hold });
    }
    out
}

/// What must be undone at the heal.
#[derive(Debug, Clone)]
enum Undo {
    /// Remove the network faults of these nodes.
    Heal(Vec<String>),
    /// Start this killed component again.
    Restart(Component),
    /// SIGCONT this component.
    Thaw(Component),
    /// Nothing (the cluster repairs itself).
    Nothing,
}

/// A fault in force.
#[derive(Debug, Clone)]
pub struct Active {
    /// What it did, e.g. "isolated t0keeper1".
    pub description: String,
    undo: Undo,
}

/// Every component of the topology.
fn components(t: &Topology) -> Vec<Component> {
    let mut c: Vec<Component> = (0..t.etcd.len()).map(Component::Etcd).collect();
    c.extend((0..t.keepers.len()).map(Component::Keeper));
    c.extend((0..t.sentinels.len()).map(Component::Sentinel));
    c.extend((0..t.proxies.len()).map(Component::Proxy));
    c
}

/// Blocks both directions between every node of `a` and every node of `b`.
fn cut(t: &Topology, a: &[String], b: &[String], both: bool) -> R<()> {
    let net = t.net().lock().expect("net");
    for x in a {
        for y in b {
            net.block(x, y)?;
            if both {
                net.block(y, x)?;
            }
        }
    }
    Ok(())
}

/// Applies `p` to the running cluster.
pub async fn apply(t: &mut Topology, p: &Planned, client: &str) -> R<Active> {
    let mut rng = Rng::new(p.pick);
    let master = t.master().await.ok().flatten().unwrap_or(0);
    let master_node = t.keepers[master].clone();
    let all_nodes: Vec<String> = components(t).iter().map(|c| t.node_of(*c).to_string()).collect();
    let (description, undo) = match p.kind {
        Kind::IsolateNode => {
            let node = all_nodes[rng.index(all_nodes.len())].clone();
            let mut others: Vec<String> = all_nodes.iter().filter(|n| **n != node).cloned().collect();
            others.push(client.to_string());
            cut(t, std::slice::from_ref(&node), &others, true)?;
            (format!("isolated {node}"), Undo::Heal(all_nodes.iter().cloned().chain([client.to_string()]).collect()))
        }
        Kind::KeepersFromStore => {
            cut(t, &t.keepers, &t.etcd, true)?;
            ("cut every keeper from the store".into(), Undo::Heal(all_nodes.clone()))
        }
        Kind::MasterFromStore => {
            cut(t, std::slice::from_ref(&master_node), &t.etcd, true)?;
            (format!("cut master {master_node} from the store"), Undo::Heal(all_nodes.clone()))
        }
        Kind::MasterToStoreOneWay => {
            cut(t, std::slice::from_ref(&master_node), &t.etcd, false)?;
            (format!("{master_node} -> store dropped (one way)"), Undo::Heal(all_nodes.clone()))
        }
        Kind::MasterToProxiesOneWay => {
            cut(t, std::slice::from_ref(&master_node), &t.proxies, false)?;
            (format!("{master_node} -> proxies dropped (one way)"), Undo::Heal(all_nodes.clone()))
        }
        Kind::RandomHalves => {
            let mut nodes = all_nodes.clone();
            rng.shuffle(&mut nodes);
            let split = 1 + rng.index(nodes.len() - 1);
            let (a, b) = nodes.split_at(split);
            cut(t, a, b, true)?;
            (format!("halves {a:?} | {b:?}"), Undo::Heal(all_nodes.clone()))
        }
        Kind::PacketLoss => {
            let node = all_nodes[rng.index(all_nodes.len())].clone();
            let percent = rng.range(20, 50) as u8;
            t.net().lock().expect("net").loss(&node, percent)?;
            (format!("{node} drops {percent}% of incoming packets"), Undo::Heal(vec![node]))
        }
        Kind::SlowLink => {
            let node = all_nodes[rng.index(all_nodes.len())].clone();
            let kbit = rng.range(64, 512) as u32;
            t.net().lock().expect("net").slow(&node, kbit)?;
            (format!("{node} sends at {kbit} kbit/s"), Undo::Heal(vec![node]))
        }
        Kind::Kill | Kind::Pause => {
            // Store members have their own fault kind; here keepers, sentinels and proxies.
            let cs: Vec<Component> = components(t).into_iter().filter(|c| !matches!(c, Component::Etcd(_))).collect();
            let c = cs[rng.index(cs.len())];
            let node = t.node_of(c).to_string();
            if p.kind == Kind::Kill {
                t.kill(c).await?;
                (format!("kill -9 {node}"), Undo::Restart(c))
            } else {
                t.pause(c, true)?;
                (format!("SIGSTOP {node}"), Undo::Thaw(c))
            }
        }
        Kind::KillMasterPostmaster => {
            let killed = t.kill_postmaster(master);
            (
                format!("kill -9 the postmaster of {master_node} ({})", if killed { "done" } else { "not running" }),
                Undo::Nothing,
            )
        }
        Kind::KillStoreMember => {
            let c = Component::Etcd(rng.index(t.etcd.len()));
            let node = t.node_of(c).to_string();
            t.kill(c).await?;
            (format!("kill -9 {node}"), Undo::Restart(c))
        }
    };
    Ok(Active { description, undo })
}

/// Heals `a`.
pub fn heal(t: &mut Topology, a: &Active) -> R<()> {
    match &a.undo {
        Undo::Heal(nodes) => {
            let net = t.net().lock().expect("net");
            for n in nodes {
                net.heal(n).with_context(|| format!("healing {n}"))?;
            }
        }
        Undo::Restart(c) => t.restart(*c)?,
        Undo::Thaw(c) => t.pause(*c, false)?,
        Undo::Nothing => {}
    }
    Ok(())
}

/// The plan's self-checks: deterministic for a seed, every kind within 12 faults, holds within bounds.
pub fn plan_self_test() -> Result<(), String> {
    let (lo, hi) = (Duration::from_secs(2), Duration::from_secs(9));
    let a = plan(42, 24, lo, hi);
    if a != plan(42, 24, lo, hi) {
        return Err("the same seed gave two plans".into());
    }
    if a == plan(43, 24, lo, hi) {
        return Err("two seeds gave the same plan".into());
    }
    let mut kinds: Vec<Kind> = a[..12].iter().map(|p| p.kind).collect();
    kinds.sort();
    kinds.dedup();
    if kinds.len() != Kind::ALL.len() {
        return Err(format!("12 faults covered only {kinds:?}"));
    }
    if let Some(p) = a.iter().find(|p| p.hold < lo || p.hold > hi) {
        return Err(format!("hold out of bounds: {p:?}"));
    }
    Ok(())
}
