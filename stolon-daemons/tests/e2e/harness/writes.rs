//! The "no acknowledged write lost" checker: numbered rows are written through a proxy while a fault
//! happens, every acknowledged commit is recorded, and another task samples where each proxy routes to
//! catch two proxies reaching two different writable masters at the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::R;
use super::cluster::TestCluster;
use super::sql;
use super::wait::wait_for;

/// The table the checker writes to.
pub const WRITES_TABLE: &str = "e2e_writes";
/// Bounds of the writer: attempts and time.
const MAX_ATTEMPTS: i32 = 50_000;
const MAX_RUN: Duration = Duration::from_secs(600);
/// Bound of one insert; a write that times out has an unknown outcome and is not counted as acknowledged.
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the routing of every proxy is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// A running checker; [`WriteChecker::finish`] stops it.
pub struct WriteChecker {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    writing: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    writer: JoinHandle<Vec<i32>>,
    sampler: JoinHandle<Sampled>,
}

/// What the checker saw.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Ids whose INSERT returned success, in order.
    pub acked: Vec<i32>,
    /// Sampling rounds done, and rounds in which at least two proxies answered.
    pub rounds: usize,
    /// Rounds where two proxies reached two different writable PostgreSQL servers.
    pub split_brain: Vec<String>,
}

#[derive(Default)]
struct Sampled {
    rounds: usize,
    split_brain: Vec<String>,
}

impl WriteChecker {
    /// Creates the writes table through proxy `proxy` and starts writing through it, and sampling every
    /// proxy of `cluster`.
    pub async fn start(cluster: &TestCluster, proxy: usize) -> R<WriteChecker> {
        let port = cluster.proxies.get(proxy).context("no such proxy")?.port;
        let client = sql::connect(port).await?;
        sql::exec(&client, &format!("CREATE TABLE IF NOT EXISTS {WRITES_TABLE} (id INT PRIMARY KEY)")).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let (paused, writing) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let acked = Arc::new(AtomicUsize::new(0));
        let flags = Flags { stop: stop.clone(), paused: paused.clone(), writing: writing.clone() };
        let writer = tokio::spawn(write_loop(port, Some(client), flags, acked.clone()));
        let ports: Vec<u16> = cluster.proxies.iter().map(|p| p.port).collect();
        let sampler = tokio::spawn(sample_loop(ports, stop.clone()));
        Ok(WriteChecker { stop, paused, writing, acked, writer, sampler })
    }

    /// Stops starting writes and waits until the write in flight, if any, has its outcome: from then on no
    /// write of the checker is in flight until [`WriteChecker::resume`] (e.g. a fault injected with no WAL
    /// in flight).
    pub async fn pause(&self, limit: Duration) -> R<()> {
        self.paused.store(true, Ordering::SeqCst);
        wait_for("the write in flight to end", limit, || async {
            if self.writing.load(Ordering::SeqCst) { Err(anyhow::anyhow!("a write in flight")) } else { Ok(Some(())) }
        })
        .await
    }

    /// Starts writing again after [`WriteChecker::pause`].
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Waits until at least `n` writes were acknowledged, so that a fault injected next hits a writer that
    /// demonstrably works (a fixed sleep may see almost no commit on a loaded machine).
    pub async fn wait_acked(&self, n: usize, limit: Duration) -> R<()> {
        wait_for(&format!("{n} acknowledged writes"), limit, || async {
            let got = self.acked.load(Ordering::SeqCst);
            if got >= n { Ok(Some(())) } else { Err(anyhow::anyhow!("{got} acknowledged")) }
        })
        .await
    }

    /// How many writes were acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Stops writing and sampling.
    pub async fn finish(self) -> R<WriteReport> {
        self.stop.store(true, Ordering::SeqCst);
        let acked = self.writer.await.context("writer task")?;
        let s = self.sampler.await.context("sampler task")?;
        Ok(WriteReport { acked, rounds: s.rounds, split_brain: s.split_brain })
    }
}

impl WriteReport {
    /// Fails unless every acknowledged id is in the writes table of `client` (the new master), no split
    /// brain was seen, and at least `min_acked` writes were acknowledged (the checker really wrote).
    pub async fn verify(&self, client: &Client, min_acked: usize) -> R<()> {
        if !self.split_brain.is_empty() {
            bail!("two proxies routed to two different writable masters: {:?}", self.split_brain);
        }
        if self.acked.len() < min_acked {
            bail!("only {} writes were acknowledged (expected at least {min_acked})", self.acked.len());
        }
        let rows =
            tokio::time::timeout(sql::STATEMENT_TIMEOUT, client.query(&format!("SELECT id FROM {WRITES_TABLE}"), &[]))
                .await
                .context("reading the writes table timed out")??;
        let present: std::collections::HashSet<i32> =
            rows.iter().map(|r| r.try_get::<_, i32>(0)).collect::<Result<_, _>>()?;
        let lost: Vec<i32> = self.acked.iter().copied().filter(|id| !present.contains(id)).collect();
        if !lost.is_empty() {
            bail!(
                "{} acknowledged writes lost (of {}): {:?}",
                lost.len(),
                self.acked.len(),
                &lost[..lost.len().min(20)]
            );
        }
        Ok(())
    }
}

/// The writer's controls: `stop` ends it; while `paused`, it starts no write; `writing` is set while a
/// write is in flight (set before `paused` is read, so that a pause never misses a write starting).
struct Flags {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    writing: Arc<AtomicBool>,
}

async fn write_loop(port: u16, mut client: Option<Client>, flags: Flags, count: Arc<AtomicUsize>) -> Vec<i32> {
    let Flags { stop, paused, writing } = flags;
    let start = Instant::now();
    let mut acked = Vec::new();
    let mut id = 0;
    while !stop.load(Ordering::SeqCst) && id < MAX_ATTEMPTS && start.elapsed() < MAX_RUN {
        writing.store(true, Ordering::SeqCst);
        if paused.load(Ordering::SeqCst) {
            writing.store(false, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let c = match client.take() {
            Some(c) => c,
            None => match sql::connect(port).await {
                Ok(c) => c,
                Err(_) => {
                    writing.store(false, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        id += 1;
        let statement = format!("INSERT INTO {WRITES_TABLE} VALUES ($1)");
        let outcome = tokio::time::timeout(WRITE_TIMEOUT, c.execute(&statement, &[&id])).await;
        writing.store(false, Ordering::SeqCst);
        match outcome {
            Ok(Ok(_)) => {
                acked.push(id);
                count.fetch_add(1, Ordering::SeqCst);
                client = Some(c);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Failed or unknown outcome: reconnect (the proxy may have moved to another master).
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    acked
}

/// Where one proxy routed in one round: the server's port and whether it accepted writes.
async fn sample(port: u16) -> Option<(u16, bool)> {
    let probe = async {
        let c = sql::connect(port).await.ok()?;
        let row = c.query_one("SELECT current_setting('port'), pg_is_in_recovery()", &[]).await.ok()?;
        let server: u16 = row.try_get::<_, String>(0).ok()?.parse().ok()?;
        let standby: bool = row.try_get(1).ok()?;
        Some((server, !standby))
    };
    tokio::time::timeout(SAMPLE_TIMEOUT + sql::CONNECT_TIMEOUT, probe).await.ok().flatten()
}

async fn sample_loop(ports: Vec<u16>, stop: Arc<AtomicBool>) -> Sampled {
    let start = Instant::now();
    let mut out = Sampled::default();
    while !stop.load(Ordering::SeqCst) && start.elapsed() < MAX_RUN {
        let round = futures::future::join_all(ports.iter().map(|p| sample(*p))).await;
        out.rounds += 1;
        let writable: Vec<(u16, u16)> = ports
            .iter()
            .zip(&round)
            .filter_map(|(p, s)| s.filter(|(_, w)| *w).map(|(server, _)| (*p, server)))
            .collect();
        if writable.iter().any(|(_, server)| *server != writable[0].1) {
            out.split_brain.push(format!("at {:?}: proxy port -> writable server port {writable:?}", start.elapsed()));
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    out
}
