//! The failsafe scenarios (issue 17 item 3), on the nemesis's cluster with `failsafeMode` on: a 60 s outage of
//! the store (every node and the clients cut from every etcd member) during which writes through the proxies
//! keep working; then, the outage going on, the master cut from one asynchronous standby's keeper, after which
//! the proxies must fence within proxyTimeout. Then everything heals and the checkers judge the history.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use stolon_core::keeper::api::{ApiClient, ClientOptions};

use super::R;
use super::checkers::{dual_masters, lost_writes, non_master_writes};
use super::netns::Net;
use super::report::Events;
use super::run::{SHAPE, final_state, spec};
use super::topology::{API_PORT, Topology};
use super::workload::{self, Ack, Workload};
use crate::harness::merged;

/// How long the store is out.
pub const OUTAGE: Duration = Duration::from_secs(60);
/// proxyTimeout of the scenario (stolon's default, written out: the bound the fencing is checked against).
pub const PROXY_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest pause between two acknowledged writes of one client while the store is out.
pub const MAX_GAP: Duration = Duration::from_secs(5);
/// What the fence may take beyond proxyTimeout: closing the connections after the deadline.
const FENCE_SLACK: Duration = Duration::from_millis(1500);

/// The longest pause between the acknowledged writes of `client` within `[from, to]` (ms), counting from
/// `from` to the first and from the last to `to`.
pub fn longest_gap(acks: &[Ack], client: i32, from: u64, to: u64) -> u64 {
    let mut ends: Vec<u64> =
        acks.iter().filter(|a| a.client == client && a.end_ms >= from && a.end_ms <= to).map(|a| a.end_ms).collect();
    ends.sort_unstable();
    let mut last = from;
    let mut gap = 0;
    for e in ends.into_iter().chain([to]) {
        gap = gap.max(e - last);
        last = e;
    }
    gap
}

/// Writes begun through the proxies later than `after` (ms) that were acknowledged: none may exist once the
/// proxies must have fenced.
pub fn late_acks(acks: &[Ack], clients: &[i32], after: u64) -> Vec<Ack> {
    acks.iter().filter(|a| clients.contains(&a.client) && a.start_ms > after).cloned().collect()
}

/// Asks keeper `i`'s `/failsafe/master`.
async fn master_answer(t: &Topology, client: &ApiClient, i: usize) -> R<serde_json::Value> {
    let url = format!("http://{}:{API_PORT}/failsafe/master", t.ip(&t.keepers[i])?);
    let resp = client.get(&url).await?;
    let body = resp.json().map_err(anyhow::Error::msg)?;
    if resp.status != 200 {
        bail!("{url}: {} {body}", resp.status);
    }
    Ok(body)
}

/// Cuts (or heals) every non-store node and the client namespace from every store member.
fn store_outage(t: &Topology, client: &str) -> R<()> {
    let net = t.net().lock().expect("net");
    let others: Vec<&String> = t.keepers.iter().chain(&t.sentinels).chain(&t.proxies).collect();
    for e in &t.etcd {
        for n in others.iter().map(|s| s.as_str()).chain([client]) {
            net.block(e, n)?;
            net.block(n, e)?;
        }
    }
    Ok(())
}

/// Runs both failsafe scenarios on one cluster; fails with the timeline when a check fails.
pub async fn run(net: Arc<Mutex<Net>>, client: &str, logs: &Path) -> R<()> {
    let origin = Instant::now();
    let ev = Events::new(origin, None);
    let spec = merged(spec(), &json!({ "failsafeMode": true, "proxyTimeout": "15s", "proxyCheckInterval": "5s" }));
    let t = Topology::start(net, "f", SHAPE, &spec, logs, &[]).await?;
    let result = scenario(&t, client, &ev, origin).await;
    t.net().lock().expect("net").heal_all()?;
    result.map_err(|e| anyhow::anyhow!("{e:#}\ntimeline:\n{}", ev.timeline(&[])))
}

async fn scenario(t: &Topology, client: &str, ev: &Events, origin: Instant) -> R<()> {
    crate::harness::wait_for("the cluster initialised and healthy", Duration::from_secs(180), || async {
        t.healthy(&t.cd().await?, true).map_err(anyhow::Error::msg)?;
        Ok(Some(()))
    })
    .await?;
    crate::harness::wait_for("the table created through proxy0", Duration::from_secs(60), || async {
        workload::create_table(t).await.map(Some)
    })
    .await?;
    let api = ApiClient::new(&ClientOptions { ca_file: None, basic_auth: None, timeout: Duration::from_secs(2) })?;
    let cd = t.cd().await?;
    let master = t.master().await?.context("no master")?;
    let master_db = cd.master_db().context("no master DB")?;
    let sync: HashSet<String> = master_db.status.synchronous_standbys.iter().flatten().cloned().collect();
    let asynchronous = (0..t.keepers.len())
        .find(|k| *k != master && cd.db_of_keeper(&format!("keeper{k}")).is_some_and(|db| !sync.contains(&db.uid)))
        .context("no asynchronous standby")?;
    crate::harness::wait_for("the master's keeper answers /failsafe/master", Duration::from_secs(60), || async {
        Ok(master_answer(t, &api, master).await.ok())
    })
    .await?;
    let w = Workload::start(t, origin)?;
    crate::harness::wait_for("20 acknowledged writes", Duration::from_secs(60), || async {
        Ok((w.acked() >= 20).then_some(()))
    })
    .await?;
    ev.log("store-outage", json!({ "master": t.keepers[master], "hold_s": OUTAGE.as_secs() }));
    store_outage(t, client)?;
    let outage_ms = ev.now_ms();
    tokio::time::sleep(OUTAGE).await;
    let outage_end_ms = ev.now_ms();
    let answer = master_answer(t, &api, master).await;
    ev.log("outage-answer", json!({ "failsafe_master": format!("{answer:?}") }));
    ev.log("isolate", json!({ "master": t.keepers[master], "from": t.keepers[asynchronous] }));
    {
        let net = t.net().lock().expect("net");
        net.block(&t.keepers[master], &t.keepers[asynchronous])?;
        net.block(&t.keepers[asynchronous], &t.keepers[master])?;
    }
    let isolated_ms = ev.now_ms();
    // Long enough past the fence bound to see writes that should not have been acknowledged.
    tokio::time::sleep(PROXY_TIMEOUT + FENCE_SLACK + Duration::from_secs(4)).await;
    let after_ms = ev.now_ms();
    t.net().lock().expect("net").heal_all()?;
    ev.log("healed", json!({}));
    crate::harness::wait_for("the cluster healthy again", Duration::from_secs(180), || async {
        t.healthy(&t.cd().await?, true).map_err(anyhow::Error::msg)?;
        Ok(Some(()))
    })
    .await?;
    let history = w.stop().await;
    let (present, lineage) = final_state(t).await?;
    let mut problems = Vec::new();
    for v in lost_writes(&history.acks, &present)
        .into_iter()
        .chain(non_master_writes(&history.acks, &lineage))
        .chain(dual_masters(&history.probes))
    {
        problems.push(format!("{}: {}", v.checker, v.detail));
    }
    let clients: Vec<i32> = (0..t.proxies.len() as i32).collect();
    for c in &clients {
        let gap = longest_gap(&history.acks, *c, outage_ms, outage_end_ms);
        ev.log("outage-writes", json!({ "client": c, "longest_gap_ms": gap }));
        if gap > MAX_GAP.as_millis() as u64 {
            problems.push(format!("client {c}: no write acknowledged for {gap} ms while the store was out"));
        }
    }
    let fence_by = isolated_ms + (PROXY_TIMEOUT + FENCE_SLACK).as_millis() as u64;
    let late = late_acks(&history.acks, &clients, fence_by);
    let late: Vec<&Ack> = late.iter().filter(|a| a.start_ms < after_ms).collect();
    ev.log("fencing", json!({ "late_acks": late.len(), "fence_by_ms": fence_by }));
    if !late.is_empty() {
        problems.push(format!(
            "{} writes acknowledged through the proxies more than proxyTimeout after the master was cut from \
             keeper{asynchronous}, first {:?}",
            late.len(),
            late[0]
        ));
    }
    let before =
        history.acks.iter().filter(|a| clients.contains(&a.client) && a.end_ms > outage_ms && a.end_ms < isolated_ms);
    if before.count() < 20 {
        problems.push("fewer than 20 writes acknowledged during the outage".into());
    }
    if !problems.is_empty() {
        bail!("failsafe scenario failed:\n{}", problems.join("\n"));
    }
    Ok(())
}

/// Self-tests of the two failsafe checks on recorded histories: a gap in the writes and a write after the
/// fence must be reported, a steady history must not.
pub fn self_tests() -> Vec<(&'static str, Result<(), String>)> {
    let ack = |client, t: u64| Ack {
        client,
        seq: t as i64,
        server: "10.0.0.1".into(),
        timeline: 1,
        lsn: t,
        start_ms: t,
        end_ms: t + 5,
    };
    let steady: Vec<Ack> = (0..60).map(|i| ack(0, 1000 + i * 1000)).collect();
    let mut holed = steady.clone();
    holed.retain(|a| !(20_000..30_000).contains(&a.start_ms));
    let gap = |acks: &[Ack]| longest_gap(acks, 0, 1000, 60_000);
    let gaps = match (gap(&steady), gap(&holed)) {
        (g, _) if g > MAX_GAP.as_millis() as u64 => Err(format!("a steady history has a gap of {g} ms")),
        (_, h) if h <= MAX_GAP.as_millis() as u64 => Err(format!("a 10 s hole was measured as {h} ms")),
        _ => Ok(()),
    };
    let fenced = match (late_acks(&steady, &[0], 61_000).len(), late_acks(&steady, &[0], 50_000).len()) {
        (0, n) if n > 0 => Ok(()),
        other => Err(format!("late writes counted as {other:?}")),
    };
    vec![("failsafe_write_gap", gaps), ("failsafe_late_write", fenced)]
}
