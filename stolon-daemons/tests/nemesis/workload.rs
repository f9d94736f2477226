//! The workload: one client per proxy writes numbered rows and reads its own recent rows back; a sampler asks
//! every proxy, every few hundred milliseconds, which server it reaches and whether that server is writable.
//! Everything is recorded in a [`History`] that the checkers ([`super::checkers`]) judge afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::R;
use super::topology::Topology;
use crate::harness::sql;

/// The table the clients write to.
pub const TABLE: &str = "nemesis_writes";
/// The bound of one write or read; a write that times out has an unknown outcome (not acknowledged).
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between two writes of one client (bounds the load on a 2-core machine).
const WRITE_PAUSE: Duration = Duration::from_millis(50);
/// Read back the client's last acknowledged rows every this many acknowledgements.
const READ_BACK_EVERY: usize = 20;
/// How often the sampler probes every proxy.
const SAMPLE_EVERY: Duration = Duration::from_millis(300);
/// A hard bound of any workload (the run stops it long before).
const MAX_RUN: Duration = Duration::from_secs(4 * 3600);

/// One acknowledged write: which client and number, which server committed it, on which timeline and at
/// which WAL insert position (read inside the transaction, so before the commit record), and when.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ack {
    pub client: i32,
    pub seq: i64,
    pub server: String,
    pub timeline: u32,
    pub lsn: u64,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// One answer of a proxy to the sampler: the server behind it and whether it was writable.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Probe {
    pub proxy: usize,
    pub server: String,
    pub writable: bool,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A read-back through a proxy that did not find rows its client had seen acknowledged.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Missing {
    pub client: i32,
    pub seqs: Vec<i64>,
    pub server: String,
    pub at_ms: u64,
}

/// Everything the workload saw.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub acks: Vec<Ack>,
    /// Writes that failed or timed out (not acknowledged).
    pub failed: usize,
    pub probes: Vec<Probe>,
    pub missing: Vec<Missing>,
}

/// The running workload; [`Workload::stop`] ends it and returns the history.
pub struct Workload {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<History>>,
    tasks: Vec<JoinHandle<()>>,
    origin: Instant,
}

/// Parses PostgreSQL's `X/Y` LSN text.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Creates the table through proxy 0.
pub async fn create_table(t: &Topology) -> R<()> {
    let c = t.connect_proxy(0).await?;
    sql::exec(&c, &format!("CREATE TABLE IF NOT EXISTS {TABLE} (client INT, seq BIGINT, PRIMARY KEY (client, seq))"))
        .await
}

/// One write of `client`/`seq` on `c`; `Some(ack)` when it committed.
pub async fn write(c: &Client, client: i32, seq: i64, origin: Instant) -> Result<Ack, String> {
    let start_ms = origin.elapsed().as_millis() as u64;
    let q = format!(
        "INSERT INTO {TABLE} (client, seq) VALUES ($1, $2) RETURNING host(inet_server_addr()), \
         pg_current_wal_insert_lsn()::text, substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8)"
    );
    let row = match tokio::time::timeout(OP_TIMEOUT, c.query_one(&q, &[&client, &seq])).await {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("timed out".into()),
    };
    let server: String = row.try_get(0).map_err(|e| e.to_string())?;
    let lsn = parse_lsn(&row.try_get::<_, String>(1).map_err(|e| e.to_string())?).ok_or("bad lsn")?;
    let tli =
        u32::from_str_radix(&row.try_get::<_, String>(2).map_err(|e| e.to_string())?, 16).map_err(|e| e.to_string())?;
    Ok(Ack { client, seq, server, timeline: tli, lsn, start_ms, end_ms: origin.elapsed().as_millis() as u64 })
}

impl Workload {
    /// Starts one writer per proxy and the sampler.
    pub fn start(t: &Topology, origin: Instant) -> R<Workload> {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(History::default()));
        let mut tasks = Vec::new();
        let hosts: Vec<String> = t.proxies.iter().map(|p| t.ip(p)).collect::<R<_>>()?;
        for (i, host) in hosts.iter().enumerate() {
            let (host, stop, history) = (host.clone(), stop.clone(), history.clone());
            tasks.push(tokio::spawn(writer(i as i32, host, stop, history, origin)));
        }
        tasks.push(tokio::spawn(sampler(hosts, stop.clone(), history.clone(), origin)));
        Ok(Workload { stop, history, tasks, origin })
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> usize {
        self.history.lock().expect("history").acks.len()
    }

    /// Records writes made outside the writers (the recovery probes), so that they are checked too.
    pub fn record(&self, ack: Ack) {
        self.history.lock().expect("history").acks.push(ack);
    }

    /// The instant all times are measured from.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Stops every task and returns the history.
    pub async fn stop(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        self.history.lock().expect("history").clone()
    }
}

async fn connect(host: &str) -> Option<Client> {
    sql::connect_at(host, super::topology::PROXY_PORT, sql::SU, sql::SU_PASSWORD).await.ok()
}

async fn writer(client: i32, host: String, stop: Arc<AtomicBool>, history: Arc<Mutex<History>>, origin: Instant) {
    let mut conn: Option<Client> = None;
    let mut seq: i64 = 0;
    let mut unread: Vec<i64> = Vec::new();
    while !stop.load(Ordering::SeqCst) && origin.elapsed() < MAX_RUN {
        let c = match conn.take() {
            Some(c) => c,
            None => match connect(&host).await {
                Some(c) => c,
                None => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        seq += 1;
        match write(&c, client, seq, origin).await {
            Ok(ack) => {
                let server = ack.server.clone();
                history.lock().expect("history").acks.push(ack);
                unread.push(seq);
                if unread.len() >= READ_BACK_EVERY {
                    if let Some(missing) = read_back(&c, client, &unread).await {
                        if !missing.is_empty() {
                            let at_ms = origin.elapsed().as_millis() as u64;
                            let m = Missing { client, seqs: missing, server, at_ms };
                            history.lock().expect("history").missing.push(m);
                        }
                        unread.clear();
                    }
                }
                conn = Some(c);
                tokio::time::sleep(WRITE_PAUSE).await;
            }
            Err(_) => {
                history.lock().expect("history").failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The seqs of `seqs` that `client`'s rows lack on the server behind `c`; `None` when the read failed.
async fn read_back(c: &Client, client: i32, seqs: &[i64]) -> Option<Vec<i64>> {
    let q = format!("SELECT seq FROM {TABLE} WHERE client = $1 AND seq = ANY($2)");
    let rows = tokio::time::timeout(OP_TIMEOUT, c.query(&q, &[&client, &seqs])).await.ok()?.ok()?;
    let found: std::collections::HashSet<i64> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
    Some(seqs.iter().copied().filter(|s| !found.contains(s)).collect())
}

/// Asks the server behind `conn` (a connection through proxy `proxy`, kept between rounds so that a proxy
/// that fails to drop its connections to a deposed master shows it) which it is and whether it is writable;
/// the connection is dropped on any failure and made again at the next round.
async fn probe(proxy: usize, host: String, conn: &mut Option<Client>, origin: Instant) -> Option<Probe> {
    let start_ms = origin.elapsed().as_millis() as u64;
    let ask = async {
        if conn.is_none() {
            *conn = connect(&host).await;
        }
        let c = conn.as_ref()?;
        let row = c.query_one("SELECT host(inet_server_addr()), pg_is_in_recovery()", &[]).await.ok()?;
        Some((row.try_get::<_, String>(0).ok()?, !row.try_get::<_, bool>(1).ok()?))
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten();
    let Some((server, writable)) = answer else {
        *conn = None;
        return None;
    };
    Some(Probe { proxy, server, writable, start_ms, end_ms: origin.elapsed().as_millis() as u64 })
}

async fn sampler(hosts: Vec<String>, stop: Arc<AtomicBool>, history: Arc<Mutex<History>>, origin: Instant) {
    let mut conns: Vec<Option<Client>> = hosts.iter().map(|_| None).collect();
    while !stop.load(Ordering::SeqCst) && origin.elapsed() < MAX_RUN {
        let round = futures::future::join_all(
            conns.iter_mut().zip(&hosts).enumerate().map(|(i, (c, h))| probe(i, h.clone(), c, origin)),
        )
        .await;
        history.lock().expect("history").probes.extend(round.into_iter().flatten());
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}
