//! stolon's proxy and sentinel scenarios (proxy_test.go, sentinel_test.go): the proxy listens only while
//! it can reach the store, and the sentinel keeps the enabled proxies across its restart and follows
//! proxies that stop and resume.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use stolon_core::cluster::{
    ClusterData, ClusterPhase, ClusterSpec, Db, DbRole, DbSpec, DbStatus, Keeper, KeeperStatus, ProxySpec,
};
use stolon_core::time::Timestamp;
use tokio::net::TcpStream;

use harness::{Backend, Env, R, Scenario, TestCluster, WAIT, merged, never, wait_for};

/// `proxyCheckInterval` and `proxyTimeout` of the scenarios. stolon runs them with its defaults (5 s and
/// 15 s); shorter values prove the same and keep the scenarios fast.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
const PROXY_TIMEOUT: Duration = Duration::from_secs(8);

fn main() {
    harness::runner::run(vec![
        Scenario::full("TestProxyListening", test_proxy_listening)
            .not_on(Backend::Kubernetes, "stops and freezes the store (the kube-apiserver is shared)"),
        Scenario::full("TestSentinelEnabledProxies", test_sentinel_enabled_proxies),
    ]);
}

/// Whether a TCP connection to 127.0.0.1:`port` is accepted.
async fn listening(port: u16) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(("127.0.0.1", port))).await, Ok(Ok(_)))
}

/// Waits until proxy `i` listens (`want`) or stops listening (`!want`).
async fn wait_listening(c: &TestCluster, i: usize, want: bool, limit: Duration) -> R<()> {
    let port = c.proxies.get(i).context("no such proxy")?.port;
    let what = if want { "listening" } else { "not listening" };
    wait_for(&format!("proxy{i} {what}"), limit, || async move { Ok((listening(port).await == want).then_some(())) })
        .await
}

/// Checks that proxy `i` keeps listening for `period`.
async fn keeps_listening(c: &TestCluster, i: usize, period: Duration, when: &str) -> R<()> {
    let port = c.proxies.get(i).context("no such proxy")?.port;
    never(&format!("proxy{i} not listening {when}"), period, || async move { Ok(!listening(port).await) }).await
}

/// The cluster data stolon's proxy test writes by hand: phase normal, master DB `01` (advertised on an
/// address where nothing listens: the scenario is about listening, not forwarding).
fn hand_written_cluster_data() -> R<ClusterData> {
    let spec: ClusterSpec = serde_json::from_value(json!({
        "initMode": "new",
        "failInterval": "10s",
        "proxyCheckInterval": format!("{}s", CHECK_INTERVAL.as_secs()),
        "proxyTimeout": format!("{}s", PROXY_TIMEOUT.as_secs()),
    }))?;
    let mut cd = ClusterData::new_initial("01", spec, Timestamp::now());
    cd.cluster.status.current_generation = 1;
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "01".into();
    cd.keepers.insert(
        "01".into(),
        Keeper { uid: "01".into(), status: KeeperStatus { healthy: true, ..Default::default() }, ..Default::default() },
    );
    let db = Db {
        uid: "01".into(),
        generation: 1,
        spec: DbSpec {
            keeper_uid: "01".into(),
            role: Some(DbRole::Master),
            followers: Some(vec!["02".into()]),
            ..Default::default()
        },
        status: DbStatus {
            current_generation: 1,
            listen_address: "127.0.0.1".into(),
            port: stolon_conformance::servers::free_port().to_string(),
            ..Default::default()
        },
        ..Default::default()
    };
    cd.dbs.insert("01".into(), db);
    cd.proxy.spec = ProxySpec { master_db_uid: "01".into(), ..Default::default() };
    Ok(cd)
}

/// Waits until the store answers the harness's own client.
async fn wait_store_up(c: &TestCluster) -> R<()> {
    wait_for("the store up", WAIT, || async move {
        c.client.cluster_data().await?;
        Ok(Some(()))
    })
    .await
}

/// A proxy listens only while it can talk to the store: not when started with the store down; yes with
/// the store up; it stops within 2 × proxyTimeout of losing the store (stopped or frozen) and listens again
/// once the store is back; an outage shorter than proxyTimeout / 3, an emptied and restored
/// `masterDbUid`, and cluster data replaced by `null` do not make it stop listening.
async fn test_proxy_listening(env: Env) -> R<()> {
    let mut c = TestCluster::new(&env, &harness::base_spec()).await?;
    c.store.stop().await?;
    let p = c.add_proxy().await?;
    keeps_not_listening(&c, p, Duration::from_secs(5)).await?;
    anyhow::ensure!(c.proxies[p].proc.is_running(), "the proxy exited with the store down");
    c.proxies[p].proc.stop().await?;

    c.store.start_again().await?;
    wait_store_up(&c).await?;
    let mut cd = hand_written_cluster_data()?;
    c.client.put_cluster_data(&cd).await?;
    c.proxies[p].proc.start()?;
    wait_listening(&c, p, true, Duration::from_secs(10)).await?;

    // Store stopped: no longer listening; store back: listening again.
    c.store.stop().await?;
    wait_listening(&c, p, false, 2 * PROXY_TIMEOUT).await?;
    c.store.start_again().await?;
    wait_listening(&c, p, true, Duration::from_secs(10)).await?;

    // An outage shorter than proxyTimeout / 3 goes unnoticed by clients.
    c.store.stop().await?;
    keeps_listening(&c, p, PROXY_TIMEOUT / 3, "during a short store outage").await?;
    c.store.start_again().await?;
    keeps_listening(&c, p, 2 * CHECK_INTERVAL, "after a short store outage").await?;
    wait_store_up(&c).await?;

    // No master to route to, then the master again, then no cluster data at all: still listening.
    cd.proxy.spec.master_db_uid.clear();
    c.client.put_cluster_data(&cd).await?;
    keeps_listening(&c, p, 2 * CHECK_INTERVAL, "with masterDbUid emptied").await?;
    cd.proxy.spec.master_db_uid = "01".into();
    c.client.put_cluster_data(&cd).await?;
    keeps_listening(&c, p, 2 * CHECK_INTERVAL, "with masterDbUid restored").await?;
    c.client.store().put_cluster_data(b"null").await?;
    keeps_listening(&c, p, 2 * CHECK_INTERVAL, "with cluster data null").await?;

    // A hung store (SIGSTOP) is a lost store.
    c.store.freeze(true)?;
    let stopped = wait_listening(&c, p, false, 2 * PROXY_TIMEOUT).await;
    c.store.freeze(false)?;
    stopped?;
    wait_listening(&c, p, true, Duration::from_secs(10)).await
}

/// Checks that proxy `i` does not listen for `period`.
async fn keeps_not_listening(c: &TestCluster, i: usize, period: Duration) -> R<()> {
    let port = c.proxies.get(i).context("no such proxy")?.port;
    never(&format!("proxy{i} listening with the store down"), period, || async move { Ok(listening(port).await) }).await
}

/// Restarting the only sentinel changes neither `enabledProxies` nor the proxy generation; a second
/// proxy is enabled and routes to the master; frozen (SIGSTOP) it is dropped from `enabledProxies` within
/// 3 × proxyTimeout, and enabled again once resumed.
async fn test_sentinel_enabled_proxies(env: Env) -> R<()> {
    let spec = merged(
        harness::base_spec(),
        &json!({
            "proxyCheckInterval": format!("{}s", CHECK_INTERVAL.as_secs()),
            "proxyTimeout": format!("{}s", PROXY_TIMEOUT.as_secs()),
        }),
    );
    let mut c = TestCluster::start(&env, &spec, 1, 1, 1).await?;
    let keeper = c.wait_master_ready().await?;
    c.wait_db_ready(&keeper, WAIT).await?;
    c.wait_proxy_routes_to(0, &keeper, WAIT).await?;
    c.wait_enabled_proxies(1, WAIT).await?;

    c.sentinels[0].stop().await?;
    let before = c.cd().await?;
    c.sentinels[0].start()?;
    // The restarted sentinel leads again once it writes the cluster data.
    c.wait_cd("cluster data updated by the restarted sentinel", WAIT, |cd| *cd != before).await?;
    let client = &c;
    let before = &before;
    never("enabled proxies or proxy generation changed by the sentinel restart", 4 * CHECK_INTERVAL, || async move {
        let cd = client.cd().await?;
        Ok(cd.proxy.spec.enabled_proxies != before.proxy.spec.enabled_proxies
            || cd.proxy.generation != before.proxy.generation)
    })
    .await?;

    let second = c.add_proxy().await?;
    c.wait_proxy_routes_to(second, &keeper, WAIT).await?;
    c.wait_enabled_proxies(2, WAIT).await?;

    c.proxies[second].proc.freeze();
    let dropped = c.wait_enabled_proxies(1, 3 * PROXY_TIMEOUT).await;
    c.proxies[second].proc.thaw();
    dropped?;
    c.wait_enabled_proxies(2, WAIT).await?;
    c.wait_proxy_routes_to(second, &keeper, WAIT).await
}
