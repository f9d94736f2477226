//! One nemesis run: the cluster in namespaces, the workload, the planned faults one after another (apply,
//! hold, heal, wait for recovery), then the final checks.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use super::R;
use super::checkers::{Lineage, Recovery, check_all};
use super::faults::{self, Kind};
use super::netns::Net;
use super::report::{Events, Summary};
use super::topology::{Shape, Topology};
use super::workload::{self, History, TABLE, Workload};
use crate::harness::{merged, spec::base_spec, sql};

/// The settings of a run (`scripts/nemesis` sets them through `NEMESIS_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub faults: usize,
    pub min_hold: Duration,
    pub max_hold: Duration,
    /// The bound of "healthy again after a heal".
    pub recovery_bound: Duration,
    /// Where events, the summary and the logs go (kept after the run).
    pub out: Option<PathBuf>,
}

impl Settings {
    /// From the environment: `NEMESIS_SEED` (default `default_seed`), `NEMESIS_FAULTS` (10),
    /// `NEMESIS_MIN_HOLD`/`NEMESIS_MAX_HOLD` (seconds, 2/5), `NEMESIS_RECOVERY_BOUND` (seconds, 180),
    /// `NEMESIS_OUT` (a directory). The defaults are CI's short run; `scripts/nemesis` sets its own.
    pub fn from_env(default_seed: u64) -> R<Settings> {
        fn num(name: &str, default: u64) -> R<u64> {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v.parse().with_context(|| format!("{name}={v:?} is not a number")),
                _ => Ok(default),
            }
        }
        let (min, max) = (num("NEMESIS_MIN_HOLD", 2)?, num("NEMESIS_MAX_HOLD", 5)?);
        if min == 0 || max < min {
            bail!("NEMESIS_MIN_HOLD must be at least 1 and at most NEMESIS_MAX_HOLD");
        }
        Ok(Settings {
            seed: num("NEMESIS_SEED", default_seed)?,
            faults: num("NEMESIS_FAULTS", 10)? as usize,
            min_hold: Duration::from_secs(min),
            max_hold: Duration::from_secs(max),
            recovery_bound: Duration::from_secs(num("NEMESIS_RECOVERY_BOUND", 180)?),
            out: std::env::var_os("NEMESIS_OUT").filter(|v| !v.is_empty()).map(PathBuf::from),
        })
    }
}

/// The spec of the nemesis's cluster: short intervals, synchronous replication with one synchronous standby
/// (no acknowledged write may be lost), pg_rewind for quick rejoins.
pub fn spec() -> serde_json::Value {
    merged(
        base_spec(),
        &json!({
            "synchronousReplication": true,
            "minSynchronousStandbys": 1,
            "maxSynchronousStandbys": 1,
            "usePgrewind": true,
        }),
    )
}

/// The shape of the nemesis's cluster.
pub const SHAPE: Shape = Shape { etcd: 3, keepers: 3, sentinels: 2, proxies: 2 };

/// Probe writes after a heal use client ids from here (one per proxy), so that they are checked too.
const PROBE_CLIENT: i32 = 100;

/// Waits until the cluster is healthy and writes work through every proxy; a run of probe writes.
pub struct Recoverer {
    seqs: Vec<i64>,
}

impl Recoverer {
    fn new(proxies: usize) -> Recoverer {
        Recoverer { seqs: vec![0; proxies] }
    }

    /// Waits up to `bound` after `healed_ms`; the recovery times are `None` when not reached.
    pub async fn wait(&mut self, t: &Topology, w: &Workload, ev: &Events, fault: &str, bound: Duration) -> Recovery {
        let healed_ms = ev.now_ms();
        let mut r = Recovery { fault: fault.to_string(), healed_ms, writes_ms: None, healthy_ms: None };
        let mut last = String::new();
        while ev.now_ms() < healed_ms + bound.as_millis() as u64 {
            if r.writes_ms.is_none() {
                let mut all = true;
                for i in 0..t.proxies.len() {
                    self.seqs[i] += 1;
                    let ok = match t.connect_proxy(i).await {
                        Ok(c) => workload::write(&c, PROBE_CLIENT + i as i32, self.seqs[i], w.origin()).await,
                        Err(e) => Err(format!("{e:#}")),
                    };
                    match ok {
                        Ok(ack) => w.record(ack),
                        Err(e) => {
                            last = format!("proxy{i}: {e}");
                            all = false;
                        }
                    }
                }
                if all {
                    r.writes_ms = Some(ev.now_ms());
                }
            }
            if r.healthy_ms.is_none() {
                match t.cd().await {
                    Ok(cd) => match t.healthy(&cd, true) {
                        Ok(()) => r.healthy_ms = Some(ev.now_ms()),
                        Err(e) => last = e,
                    },
                    Err(e) => last = format!("{e:#}"),
                }
            }
            if r.writes_ms.is_some() && r.healthy_ms.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ev.log("recovery", json!({ "fault": fault, "writes_ms": r.writes_ms.map(|w| w - healed_ms),
            "healthy_ms": r.healthy_ms.map(|h| h - healed_ms), "last": if r.healthy_ms.is_some() && r.writes_ms.is_some() { "" } else { &last } }));
        r
    }
}

/// What the final master holds: every (client, seq) and its timeline lineage.
pub async fn final_state(t: &Topology) -> R<(HashSet<(i32, i64)>, Lineage)> {
    // Right after the last heal the store may still be electing a leader: one read could time out.
    let master = crate::harness::wait_for("the final master in the cluster data", Duration::from_secs(60), || async {
        t.master().await
    })
    .await?;
    let c = t.connect_keeper(master).await?;
    let rows =
        tokio::time::timeout(sql::STATEMENT_TIMEOUT * 3, c.query(&format!("SELECT client, seq FROM {TABLE}"), &[]))
            .await
            .context("reading the table timed out")??;
    let present = rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<R<HashSet<_>>>()?;
    let tli_hex = sql::query_text(&c, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)").await?;
    let tli = u32::from_str_radix(&tli_hex, 16)?;
    let history = if tli > 1 {
        sql::query_text(&c, &format!("SELECT pg_read_file('pg_wal/{tli:08X}.history')")).await?
    } else {
        String::new()
    };
    Ok((present, Lineage::parse(tli, &history).map_err(anyhow::Error::msg)?))
}

/// Runs the nemesis with `s` on the shared namespaces; `client` is the namespace the test process is in.
/// Fails with the timeline when any checker finds a violation.
pub async fn run(net: Arc<Mutex<Net>>, client: &str, s: &Settings, logs: &Path) -> R<Summary> {
    let origin = Instant::now();
    let ev = Events::new(origin, s.out.as_deref());
    let plan = faults::plan(s.seed, s.faults, s.min_hold, s.max_hold);
    ev.log("start", json!({ "seed": s.seed, "faults": s.faults, "min_hold_s": s.min_hold.as_secs(),
        "max_hold_s": s.max_hold.as_secs(), "replay": format!("scripts/nemesis --seed {} --faults {} --min-hold {} --max-hold {}",
        s.seed, s.faults, s.min_hold.as_secs(), s.max_hold.as_secs()) }));
    let mut t = Topology::start(net, "n", SHAPE, &spec(), logs, &[]).await?;
    let bound = s.recovery_bound;
    crate::harness::wait_for("the cluster initialised and healthy", Duration::from_secs(180), || async {
        let cd = t.cd().await?;
        t.healthy(&cd, true).map_err(anyhow::Error::msg)?;
        Ok(Some(()))
    })
    .await?;
    crate::harness::wait_for("the table created through proxy0", Duration::from_secs(60), || async {
        workload::create_table(&t).await.map(Some)
    })
    .await?;
    let w = Workload::start(&t, origin)?;
    crate::harness::wait_for("20 acknowledged writes", Duration::from_secs(60), || async {
        Ok((w.acked() >= 20).then_some(()))
    })
    .await?;
    ev.log("workload", json!({ "acked": w.acked() }));
    let mut recoverer = Recoverer::new(t.proxies.len());
    let mut recoveries = Vec::new();
    let mut kinds: Vec<Kind> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let active = faults::apply(&mut t, p, client).await?;
        ev.log("fault", json!({ "n": i + 1, "kind": p.kind.name(), "what": active.description, "hold_ms": p.hold.as_millis() as u64 }));
        tokio::time::sleep(p.hold).await;
        faults::heal(&mut t, &active)?;
        ev.log("heal", json!({ "n": i + 1, "kind": p.kind.name() }));
        let r = recoverer.wait(&t, &w, &ev, &format!("#{} {}", i + 1, active.description), bound).await;
        let stuck = r.healthy_ms.is_none();
        recoveries.push(r);
        kinds.push(p.kind);
        if stuck {
            // The next faults would hit a broken cluster: stop here, the recovery checker reports it.
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let history: History = w.stop().await;
    ev.log("workload-stopped", json!({ "acked": history.acks.len(), "failed": history.failed }));
    let (present, lineage) = final_state(&t).await?;
    let violations = check_all(&history, &present, &lineage, &recoveries, bound.as_millis() as u64);
    let summary = Summary::new(s.seed, &kinds, &recoveries, &history, &violations, origin.elapsed().as_secs_f64());
    eprintln!("{}", summary.table());
    if let Some(dir) = &s.out {
        summary.write(dir)?;
    }
    if !violations.is_empty() {
        bail!("{} violations; timeline:\n{}", violations.len(), ev.timeline(&violations));
    }
    if history.acks.len() < 100 {
        bail!("only {} writes were acknowledged: the workload did not really run", history.acks.len());
    }
    if !kinds.iter().any(|k| k.is_network()) {
        bail!("no network fault was injected");
    }
    Ok(summary)
}
