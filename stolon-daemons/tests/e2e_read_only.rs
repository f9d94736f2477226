//! The proxy's read-only port (issue 15) on a real cluster: a master, two standbys, one sentinel and two
//! proxies with `--read-only-port`, the second with `--read-only-fallback master`. The port spreads
//! connections over the two standbys, stops using a standby whose replay is paused while the master writes
//! and closes its connections, refuses when no standby qualifies (or falls back to the master when asked),
//! takes a standby back once it caught up, and closes the connections to a standby that gets promoted; the
//! master port's connection lives through all of it until the failover. The first proxy forwards in the
//! kernel (`--forwarding kernel`, which must load here), the second in userspace: both modes, end to end.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use harness::sql;
use harness::{Env, R, Scenario, TestCluster, WAIT, master_keeper, wait_for};
use stolon_conformance::servers::free_port;
use tokio_postgres::Client;

/// `--read-only-max-lag` of both proxies. The writes that make a paused standby fall behind come in chunks
/// of [`CHUNK_ROWS`] (about 256 kB of WAL) every [`CHUNK_PAUSE`], so a standby that replays normally is
/// never anywhere near the bound, even when its keeper reads it in the middle of a chunk.
const MAX_LAG: &str = "8MB";
const CHUNK_ROWS: u32 = 200;
const CHUNK_PAUSE: Duration = Duration::from_millis(100);
/// Held read-only connections per standby when checking the spread.
const PER_STANDBY: usize = 2;

fn main() {
    harness::runner::run(vec![Scenario::full("TestReadOnlyPort", test_read_only_port)]);
}

/// A client connected through a read-only port, and the PostgreSQL port it landed on.
struct Held {
    client: Client,
    server: u16,
}

/// Connects through `port` and asks where it landed.
async fn connect_ro(port: u16) -> R<Held> {
    let client = sql::connect(port).await?;
    let server = sql::server_port(&client).await?;
    Ok(Held { client, server })
}

/// Whether a held connection still answers.
async fn alive(client: &Client) -> bool {
    matches!(tokio::time::timeout(sql::STATEMENT_TIMEOUT, client.simple_query("SELECT 1")).await, Ok(Ok(_)))
}

/// Waits until `held` is closed by the proxy.
async fn wait_closed(what: &str, held: &Held) -> R<()> {
    wait_for(what, WAIT, || async { Ok((!alive(&held.client).await).then_some(())) }).await
}

/// Opens `PER_STANDBY` connections per port of `servers` through `port` and checks they are spread
/// evenly over exactly those servers, retrying until they are (the set takes a check to converge).
async fn wait_spread(port: u16, servers: &[u16]) -> R<Vec<Held>> {
    wait_for(&format!("read-only port {port} spreading over {servers:?}"), WAIT, || async {
        let mut held = Vec::new();
        for _ in 0..PER_STANDBY * servers.len() {
            held.push(connect_ro(port).await?);
        }
        let mut count: BTreeMap<u16, usize> = BTreeMap::new();
        for h in &held {
            *count.entry(h.server).or_default() += 1;
        }
        let want: BTreeMap<u16, usize> = servers.iter().map(|s| (*s, PER_STANDBY)).collect();
        if count != want {
            bail!("connections per server port: {count:?}");
        }
        for h in &held {
            ensure!(sql::in_recovery(&h.client).await?, "a read-only connection reached a primary");
        }
        Ok(Some(held))
    })
    .await
}

/// Waits until a connection through `port` lands on `server`; returns it.
async fn wait_lands_on(port: u16, server: u16) -> R<Held> {
    wait_for(&format!("read-only port {port} forwarding to {server}"), WAIT, || async {
        let h = connect_ro(port).await?;
        if h.server != server {
            bail!("landed on {}", h.server);
        }
        Ok(Some(h))
    })
    .await
}

/// Waits until connections through `port` are refused (closed before PostgreSQL answers).
async fn wait_refused(port: u16) -> R<()> {
    wait_for(&format!("read-only port {port} refusing"), WAIT, || async {
        match connect_ro(port).await {
            Ok(h) => bail!("still forwarding, to {}", h.server),
            Err(_) => Ok(Some(())),
        }
    })
    .await?;
    for _ in 0..3 {
        if let Ok(h) = connect_ro(port).await {
            bail!("read-only port {port} forwarded to {} although no standby qualifies", h.server);
        }
    }
    Ok(())
}

/// Writes WAL on the master in small chunks until `done` holds (bounded by [`WAIT`]).
async fn write_until<F, Fut>(master: &Client, what: &str, done: F) -> R<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        ensure!(start.elapsed() < WAIT, "timed out after {WAIT:?} writing on the master until {what}");
        let chunk = format!("INSERT INTO pad SELECT g, repeat('x', 1200) FROM generate_series(1, {CHUNK_ROWS}) g");
        sql::exec(master, &chunk).await?;
        tokio::time::sleep(CHUNK_PAUSE).await;
    }
    Ok(())
}

/// Whether every connection of `held` to `server` is closed.
async fn all_closed(held: &[Held], server: u16) -> bool {
    for h in held.iter().filter(|h| h.server == server) {
        if alive(&h.client).await {
            return false;
        }
    }
    true
}

async fn test_read_only_port(env: Env) -> R<()> {
    let mut c = TestCluster::start(&env, &harness::base_spec(), 3, 1, 0).await?;
    let (ro, ro_fallback) = (free_port(), free_port());
    let (ro_text, ro_fallback_text) = (ro.to_string(), ro_fallback.to_string());
    c.add_proxy_with(&["--read-only-port", &ro_text, "--read-only-max-lag", MAX_LAG, "--forwarding", "kernel"]).await?;
    let fallback =
        ["--read-only-port", &ro_fallback_text, "--read-only-max-lag", MAX_LAG, "--read-only-fallback", "master"];
    c.add_proxy_with(&fallback).await?;

    let master = c.wait_master_ready().await?;
    let others = c.others(&master);
    let (a, b) = (others[0].clone(), others[1].clone());
    c.wait_standby(&a, WAIT).await?;
    c.wait_standby(&b, WAIT).await?;
    let port_of = |uid: &str| c.keeper_ref(uid).map(|k| k.pg_port);
    let (master_port, a_port, b_port) = (port_of(&master)?, port_of(&a)?, port_of(&b)?);
    c.wait_proxy_routes_to(0, &master, WAIT).await?;

    // The master port: one connection held through every read-only event until the failover.
    let m = c.proxies[0].connect().await?;
    ensure!(sql::server_port(&m).await? == master_port, "the master port does not reach the master");
    sql::exec(&m, "CREATE TABLE pad (g int, filler text)").await?;

    // Both standbys in use, connections spread evenly, none on the master.
    let held = wait_spread(ro, &[a_port, b_port]).await?;

    // Standby a stops replaying while the master writes: its connections are closed, b's are not.
    sql::exec(&c.connect(&a).await?, "SELECT pg_wal_replay_pause()").await?;
    write_until(&m, "a's read-only connections are closed", || all_closed(&held, a_port)).await?;
    for h in held.iter().filter(|h| h.server == b_port) {
        ensure!(alive(&h.client).await, "a connection to the caught-up standby b was closed");
    }
    for _ in 0..3 {
        let h = connect_ro(ro).await?;
        ensure!(h.server == b_port, "a new read-only connection went to {} with a lagging", h.server);
    }
    ensure!(alive(&m).await, "the master port's connection was closed by a read-only change");

    // b too: no standby qualifies. The first proxy refuses, the second falls back to the master.
    sql::exec(&c.connect(&b).await?, "SELECT pg_wal_replay_pause()").await?;
    write_until(&m, "b's read-only connections are closed", || all_closed(&held, b_port)).await?;
    wait_refused(ro).await?;
    let on_master = wait_lands_on(ro_fallback, master_port).await?;
    ensure!(!sql::in_recovery(&on_master.client).await?, "the fallback did not reach the master");
    ensure!(alive(&m).await, "the master port's connection was closed by a read-only change");

    // a replays again and catches up: both proxies use it; the fallback connection to the master is closed.
    sql::exec(&c.connect(&a).await?, "SELECT pg_wal_replay_resume()").await?;
    wait_lands_on(ro, a_port).await?;
    wait_closed("the fallback connection closed once a standby qualifies", &on_master).await?;
    wait_lands_on(ro_fallback, a_port).await?;
    sql::exec(&c.connect(&b).await?, "SELECT pg_wal_replay_resume()").await?;
    let held = wait_spread(ro, &[a_port, b_port]).await?;
    ensure!(alive(&m).await, "the master port's connection was closed by a read-only change");
    ensure!(sql::server_port(&m).await? == master_port, "the master port moved");

    // The master dies: the standby that gets promoted has its read-only connections closed and is never
    // used as a read-only target again; the other one serves reads once it follows the new master.
    c.keeper(&master)?.kill_all().await?;
    let cd =
        c.wait_cd("a standby elected", WAIT, |cd| matches!(master_keeper(cd), Some(k) if k == a || k == b)).await?;
    let promoted = master_keeper(&cd).context("no master")?;
    let (promoted_port, other_port) = if promoted == a { (a_port, b_port) } else { (b_port, a_port) };
    for h in held.iter().filter(|h| h.server == promoted_port) {
        wait_closed("the promoted standby's read-only connections closed", h).await?;
    }
    c.wait_proxy_routes_to(0, &promoted, WAIT).await?;
    wait_lands_on(ro, other_port).await?;
    for _ in 0..4 {
        let h = connect_ro(ro).await?;
        ensure!(h.server == other_port, "a read-only connection reached {} after the failover", h.server);
        ensure!(sql::in_recovery(&h.client).await?, "a read-only connection reached a primary");
    }
    Ok(())
}
