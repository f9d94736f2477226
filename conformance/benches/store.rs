//! Store benchmark: ops/s and latency percentiles of get, CAS put and set-member-record through
//! `stolon-store`'s etcdv3 and etcdv2 backends, side by side with the same operations issued with raw
//! etcd-client calls (the baseline), against one real etcd started for the run. Run with
//! `scripts/bench-store`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use stolon_conformance::servers::EtcdServer;
use stolon_store::{MemberKind, Store, StoreBackend};

const SEQUENTIAL_OPS: usize = 2000;
const CONCURRENCY: usize = 8;
const CONCURRENT_OPS_PER_TASK: usize = 500;

struct Stats {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Stats { ops_per_sec: lat.len() as f64 / wall.as_secs_f64(), p50: pick(0.50), p99: pick(0.99) }
}

fn row(op: &str, who: &str, mode: &str, s: &Stats) {
    println!(
        "| {op:<10} | {who:<13} | {mode:<13} | {:>9.0} | {:>8.3} | {:>8.3} |",
        s.ops_per_sec,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

/// Runs `op` `n` times sequentially, then `CONCURRENCY` tasks of `CONCURRENT_OPS_PER_TASK` each.
async fn measure<F, Fut>(op: F) -> (Stats, Stats)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut lat = Vec::with_capacity(SEQUENTIAL_OPS);
    for i in 0..SEQUENTIAL_OPS {
        let t = Instant::now();
        op(i).await;
        lat.push(t.elapsed());
    }
    let seq = stats(lat, start.elapsed());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..CONCURRENCY {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(CONCURRENT_OPS_PER_TASK);
            for i in 0..CONCURRENT_OPS_PER_TASK {
                let t = Instant::now();
                op(task * 1_000_000 + i).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("bench task"));
    }
    (seq, stats(all, start.elapsed()))
}

fn print_pair(op: &str, who: &str, (seq, conc): (Stats, Stats)) {
    row(op, who, "sequential", &seq);
    row(op, who, &format!("{CONCURRENCY} concurrent"), &conc);
}

/// get, CAS put and set-member through a `Store` of any backend.
async fn bench_store(who: &str, store: Arc<dyn Store>, doc: &[u8]) {
    store.put_cluster_data(doc).await.expect("seed");
    let s = store.clone();
    print_pair(
        "get",
        who,
        measure(move |_| {
            let s = s.clone();
            async move {
                s.get_cluster_data().await.expect("get").expect("present");
            }
        })
        .await,
    );
    // CAS: read the revision, then write on it (a read-modify-write as the sentinel does).
    let (s, d) = (store.clone(), doc.to_vec());
    print_pair(
        "cas put",
        who,
        measure(move |_| {
            let (s, d) = (s.clone(), d.clone());
            async move {
                loop {
                    let cur = s.get_cluster_data().await.expect("get").expect("present");
                    if s.put_cluster_data_cas(&d, Some(&cur.revision)).await.is_ok() {
                        break;
                    }
                }
            }
        })
        .await,
    );
    // Member records: 8 members, each refreshed with a 20 s TTL and a new value (a keeper's info carries a new
    // infoUID every time).
    let s = store.clone();
    print_pair(
        "set member",
        who,
        measure(move |i| {
            let s = s.clone();
            async move {
                let id = format!("keeper{}", i % 8);
                let info = format!("{{\"infoUID\":\"{i}\"}}");
                s.set_member(MemberKind::Keeper, &id, info.as_bytes(), Duration::from_secs(20)).await.expect("set");
            }
        })
        .await,
    );
}

/// The same operations with raw etcd-client calls, as stolon's Go etcdv3 store issues them.
async fn bench_raw(raw: etcd_client::Client, key: String, doc: &[u8]) {
    let who = "etcd-client";
    let (c, k) = (raw.clone(), key.clone());
    print_pair(
        "get",
        who,
        measure(move |_| {
            let (mut c, k) = (c.clone(), k.clone());
            async move {
                c.get(k, None).await.expect("raw get");
            }
        })
        .await,
    );
    let (c, k, d) = (raw.clone(), key.clone(), doc.to_vec());
    print_pair(
        "cas put",
        who,
        measure(move |_| {
            let (mut c, k, d) = (c.clone(), k.clone(), d.clone());
            async move {
                loop {
                    let cur = c.get(k.as_str(), None).await.expect("raw get");
                    let rev = cur.kvs()[0].mod_revision();
                    let txn = Txn::new()
                        .when([Compare::mod_revision(k.as_str(), CompareOp::Equal, rev)])
                        .and_then([TxnOp::put(k.as_str(), d.clone(), None)]);
                    if c.txn(txn).await.expect("raw txn").succeeded() {
                        break;
                    }
                }
            }
        })
        .await,
    );
    let c = raw.clone();
    print_pair(
        "set member",
        who,
        measure(move |i| {
            let mut c = c.clone();
            async move {
                // stolon's Go etcdv3 store: a new lease per put, then the put on it.
                let lease = c.lease_grant(20, None).await.expect("grant").id();
                let key = format!("stolon/cluster/bench/keepers/info/raw{}", i % 8);
                let info = format!("{{\"infoUID\":\"{i}\"}}");
                c.put(key, info, Some(PutOptions::new().with_lease(lease))).await.expect("put");
            }
        })
        .await,
    );
}

#[tokio::main]
async fn main() {
    let server = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let doc = vec![b'x'; 4096];
    println!("etcd {} on loopback; cluster document of {} bytes", server.endpoint(), doc.len());
    println!("| operation  | client        | mode          |     ops/s | p50 (ms) | p99 (ms) |");
    println!("|------------|---------------|---------------|-----------|----------|----------|");
    let raw = etcd_client::Client::connect([server.endpoint()], None).await.expect("raw connect");
    raw.clone().put("stolon/cluster/bench/clusterdata", doc.clone(), None).await.expect("seed");
    bench_raw(raw, "stolon/cluster/bench/clusterdata".into(), &doc).await;
    for (backend, who) in [(StoreBackend::EtcdV3, "stolon etcdv3"), (StoreBackend::EtcdV2, "stolon etcdv2")] {
        let store = stolon_store::connect(&server.config(backend, "bench")).await.expect("connect");
        bench_store(who, store, &doc).await;
    }
}
