//! The checkers: pure functions of a recorded [`History`] (and of what the final master holds) that list
//! violations. Being pure, each is self-tested by feeding it a recorded history that contains exactly the
//! violation it looks for ([`self_tests`]): that exercises the same code a real run does, without a daemon
//! build whose safety is switched off.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::workload::{Ack, History, Missing, Probe, parse_lsn};

/// One violation, with when it happened (ms since the run's start) and what was seen.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Violation {
    pub checker: &'static str,
    pub at_ms: u64,
    pub detail: String,
}

/// The timelines of the final master: its own and, for each ancestor, the WAL position where it ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lineage {
    pub timeline: u32,
    pub switchpoints: BTreeMap<u32, u64>,
}

impl Lineage {
    /// Parses PostgreSQL's timeline history file of timeline `timeline` (`<parent>\t<X/Y>\t<reason>` lines;
    /// empty for timeline 1).
    pub fn parse(timeline: u32, history: &str) -> Result<Lineage, String> {
        let mut switchpoints = BTreeMap::new();
        for line in history.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let tli: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| format!("bad line {line:?}"))?;
            let lsn = parts.next().and_then(parse_lsn).ok_or_else(|| format!("bad switchpoint in {line:?}"))?;
            switchpoints.insert(tli, lsn);
        }
        Ok(Lineage { timeline, switchpoints })
    }
}

/// No acknowledged write lost: every acknowledged (client, seq) is in the final master's table.
pub fn lost_writes(acks: &[Ack], present: &HashSet<(i32, i64)>) -> Vec<Violation> {
    acks.iter()
        .filter(|a| !present.contains(&(a.client, a.seq)))
        .map(|a| Violation {
            checker: "lost-write",
            at_ms: a.end_ms,
            detail: format!(
                "client {} seq {} acknowledged by {} (timeline {}, {:X}/{:X}) is not on the final master",
                a.client,
                a.seq,
                a.server,
                a.timeline,
                a.lsn >> 32,
                a.lsn & 0xffff_ffff
            ),
        })
        .collect()
}

/// Never a write accepted by a non-master: a write committed on a timeline that the final master's history
/// does not continue, or on an ancestor timeline beyond the position where that timeline ended (the server
/// still accepted writes after another had been promoted from its history).
pub fn non_master_writes(acks: &[Ack], lineage: &Lineage) -> Vec<Violation> {
    let mut out = Vec::new();
    for a in acks {
        let why = if a.timeline == lineage.timeline {
            None
        } else {
            match lineage.switchpoints.get(&a.timeline) {
                Some(end) if a.lsn > *end => {
                    Some(format!("after timeline {} ended at {:X}/{:X}", a.timeline, end >> 32, end & 0xffff_ffff))
                }
                Some(_) => None,
                None => Some(format!(
                    "on timeline {}, which the final timeline {} does not descend from",
                    a.timeline, lineage.timeline
                )),
            }
        };
        if let Some(why) = why {
            out.push(Violation {
                checker: "non-master-write",
                at_ms: a.end_ms,
                detail: format!("client {} seq {} committed by {} {why}", a.client, a.seq, a.server),
            });
        }
    }
    out
}

/// Never two masters reachable through proxies at the same instant: two probes whose time intervals overlap
/// reached two different writable servers.
pub fn dual_masters(probes: &[Probe]) -> Vec<Violation> {
    let mut writable: Vec<&Probe> = probes.iter().filter(|p| p.writable).collect();
    writable.sort_by_key(|p| p.start_ms);
    let mut out = Vec::new();
    for (i, a) in writable.iter().enumerate() {
        for b in writable[i + 1..].iter().take_while(|b| b.start_ms <= a.end_ms) {
            if a.server != b.server {
                out.push(Violation {
                    checker: "dual-master",
                    at_ms: b.start_ms,
                    detail: format!(
                        "proxy{} reached writable {} during {}-{} ms while proxy{} reached writable {} during {}-{} ms",
                        a.proxy, a.server, a.start_ms, a.end_ms, b.proxy, b.server, b.start_ms, b.end_ms
                    ),
                });
            }
        }
    }
    out
}

/// Read-your-writes through the proxies: a client that read back its acknowledged rows found all of them.
pub fn missing_reads(missing: &[Missing]) -> Vec<Violation> {
    missing
        .iter()
        .map(|m| Violation {
            checker: "read-back",
            at_ms: m.at_ms,
            detail: format!("client {} read through {} lacks its acknowledged seqs {:?}", m.client, m.server, m.seqs),
        })
        .collect()
}

/// One fault's recovery: how long after the heal writes worked through every proxy, and the cluster was
/// healthy again (`None`: not within the bound).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recovery {
    pub fault: String,
    pub healed_ms: u64,
    pub writes_ms: Option<u64>,
    pub healthy_ms: Option<u64>,
}

/// The cluster healthy and writable through every proxy again within `bound_ms` of each heal (the times of
/// a [`Recovery`] count from the run's start, like `healed_ms`).
pub fn slow_recoveries(recoveries: &[Recovery], bound_ms: u64) -> Vec<Violation> {
    let late = |r: &Recovery, t: Option<u64>| t.is_none_or(|t| t.saturating_sub(r.healed_ms) > bound_ms);
    recoveries
        .iter()
        .filter(|r| late(r, r.healthy_ms) || late(r, r.writes_ms))
        .map(|r| Violation {
            checker: "recovery",
            at_ms: r.healed_ms + bound_ms,
            detail: format!(
                "{}: cluster not healthy and writable through every proxy within {} s of the heal",
                r.fault,
                bound_ms / 1000
            ),
        })
        .collect()
}

/// Every checker over a history and what the final master holds.
pub fn check_all(
    h: &History,
    present: &HashSet<(i32, i64)>,
    lineage: &Lineage,
    recoveries: &[Recovery],
    bound_ms: u64,
) -> Vec<Violation> {
    let mut v = lost_writes(&h.acks, present);
    v.extend(non_master_writes(&h.acks, lineage));
    v.extend(dual_masters(&h.probes));
    v.extend(missing_reads(&h.missing));
    v.extend(slow_recoveries(recoveries, bound_ms));
    v.sort_by_key(|v| v.at_ms);
    v
}

/// The checkers' self-tests: each is fed a clean history (no violation may be reported) and the same history
/// with the violation it looks for injected (it must fire, naming it). Returns the first failure.
pub fn self_tests() -> Vec<(&'static str, Result<(), String>)> {
    let ack = |client, seq, server: &str, timeline, lsn, t| Ack {
        client,
        seq,
        server: server.into(),
        timeline,
        lsn,
        start_ms: t,
        end_ms: t + 5,
    };
    let probe = |proxy, server: &str, writable, start_ms, end_ms| Probe {
        proxy,
        server: server.into(),
        writable,
        start_ms,
        end_ms,
    };
    // A failover: 10.0.0.1 on timeline 1 until 0/3000000, then 10.0.0.2 on timeline 2.
    let lineage = Lineage::parse(2, "1\t0/3000000\tno recovery target specified\n").unwrap_or_default();
    let clean_acks = vec![
        ack(0, 1, "10.0.0.1", 1, 0x2000000, 100),
        ack(0, 2, "10.0.0.1", 1, 0x2ffff00, 200),
        ack(0, 3, "10.0.0.2", 2, 0x3000100, 900),
    ];
    let present: HashSet<(i32, i64)> = clean_acks.iter().map(|a| (a.client, a.seq)).collect();
    let clean_probes = vec![
        probe(0, "10.0.0.1", true, 100, 120),
        probe(1, "10.0.0.1", true, 101, 130),
        // During the failover proxy1 reaches the old master as a standby: not a violation.
        probe(0, "10.0.0.2", true, 900, 910),
        probe(1, "10.0.0.1", false, 901, 915),
    ];
    let mut out: Vec<(&'static str, Result<(), String>)> = Vec::new();
    let expect = |name: &'static str,
                  clean: Vec<Violation>,
                  bad: Vec<Violation>,
                  checker: &str|
     -> (&'static str, Result<(), String>) {
        let r = if !clean.is_empty() {
            Err(format!("reported violations on a clean history: {clean:?}"))
        } else if bad.is_empty() || bad.iter().any(|v| v.checker != checker) {
            Err(format!("did not fire (exactly) on the injected violation: {bad:?}"))
        } else {
            Ok(())
        };
        (name, r)
    };
    // Lost write: an acknowledged row missing from the final master.
    let mut lost = present.clone();
    lost.remove(&(0, 2));
    out.push(expect("lost_write", lost_writes(&clean_acks, &present), lost_writes(&clean_acks, &lost), "lost-write"));
    // Non-master write: the old master committed after the new timeline forked from its history.
    let mut late = clean_acks.clone();
    late.push(ack(1, 1, "10.0.0.1", 1, 0x3000200, 950));
    out.push(expect(
        "non_master_write",
        non_master_writes(&clean_acks, &lineage),
        non_master_writes(&late, &lineage),
        "non-master-write",
    ));
    // A write on a timeline the final master does not descend from.
    let mut stray = clean_acks.clone();
    stray.push(ack(1, 2, "10.0.0.3", 3, 0x3000000, 960));
    out.push(expect(
        "stray_timeline_write",
        non_master_writes(&clean_acks, &lineage),
        non_master_writes(&stray, &lineage),
        "non-master-write",
    ));
    // Dual master: both proxies reach two writable servers at overlapping instants.
    let mut dual = clean_probes.clone();
    dual.push(probe(1, "10.0.0.1", true, 905, 920));
    out.push(expect("dual_master", dual_masters(&clean_probes), dual_masters(&dual), "dual-master"));
    // Read-back: a client did not find its own acknowledged rows.
    let m = vec![Missing { client: 0, seqs: vec![7], server: "10.0.0.2".into(), at_ms: 1000 }];
    out.push(expect("read_back", missing_reads(&[]), missing_reads(&m), "read-back"));
    // Recovery: a heal after which the cluster was never healthy within the bound.
    // Times count from the run's start: a heal late in a run recovers at large absolute times.
    let ok = vec![
        Recovery { fault: "kill".into(), healed_ms: 0, writes_ms: Some(3000), healthy_ms: Some(9000) },
        Recovery { fault: "halves".into(), healed_ms: 500_000, writes_ms: Some(530_000), healthy_ms: Some(559_000) },
    ];
    let mut never = ok.clone();
    never.push(Recovery { fault: "partition".into(), healed_ms: 20000, writes_ms: Some(25000), healthy_ms: None });
    out.push(expect("recovery_never", slow_recoveries(&ok, 60_000), slow_recoveries(&never, 60_000), "recovery"));
    let mut late = ok.clone();
    late.push(Recovery {
        fault: "loss".into(),
        healed_ms: 700_000,
        writes_ms: Some(760_001),
        healthy_ms: Some(701_000),
    });
    out.push(expect("recovery_late", slow_recoveries(&ok, 60_000), slow_recoveries(&late, 60_000), "recovery"));
    // The history file parser.
    let parsed = Lineage::parse(3, "1\t0/3000000\treason\n2\t0/5000A28\treason\n");
    out.push((
        "lineage_parse",
        match parsed {
            Ok(l) if l.switchpoints.get(&2) == Some(&0x5000A28) && l.switchpoints.len() == 2 => Ok(()),
            other => Err(format!("parsed {other:?}")),
        },
    ));
    out
}
