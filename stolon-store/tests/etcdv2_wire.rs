//! etcd v2 backend against a real etcd: stolon's key layout and TTLs on the wire, recovery of member keys and
//! watches, leadership loss when the key is taken over, basic auth, and the error for a disabled v2 API.

mod support_etcd;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use stolon_conformance::servers::EtcdServer;
use stolon_store::{LeadershipState, MemberKind, Store, StoreBackend, StoreConfig, StoreError, WatchEvent};
use support_etcd::CustomEtcd;

/// More writes than etcd v2's event history holds (1000).
const HISTORY_OVERFLOW: usize = 1100;

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("wire-{name}-{}-{nanos:x}", std::process::id())
}

async fn open(server: &EtcdServer, cluster: &str) -> Arc<dyn Store> {
    let mut config = server.config(StoreBackend::EtcdV2, cluster);
    config.timeout = Duration::from_secs(3);
    stolon_store::connect(&config).await.expect("connect to the etcd v2 API")
}

/// Raw access to the v2 keys API, to check what the backend wrote.
struct Raw {
    client: reqwest::Client,
    base: String,
}

impl Raw {
    fn new(server: &EtcdServer) -> Raw {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
        Raw { client, base: format!("{}/v2/keys", server.endpoint()) }
    }

    async fn get(&self, key: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}/{key}", self.base)).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    async fn put(&self, key: &str, value: &str) {
        let resp = self.client.put(format!("{}/{key}", self.base)).form(&[("value", value)]).send().await.expect("PUT");
        assert!(resp.status().is_success(), "PUT {key}: {}", resp.status());
    }

    async fn delete(&self, key: &str) {
        let resp = self.client.delete(format!("{}/{key}", self.base)).send().await.expect("DELETE");
        assert!(resp.status().is_success(), "DELETE {key}: {}", resp.status());
    }

    /// Pushes older events out of etcd's 1000-event history with writes to other keys.
    async fn overflow_history(&self, dir: &str) {
        for i in 0..HISTORY_OVERFLOW {
            self.put(&format!("{dir}/noise/{}", i % 10), &i.to_string()).await;
        }
    }
}

fn ttl_of(node: &Value) -> i64 {
    node["node"]["ttl"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn keys_follow_stolons_layout_with_ttls() {
    let server = EtcdServer::start().expect("etcd");
    let cluster = unique("layout");
    let store = open(&server, &cluster).await;
    let raw = Raw::new(&server);
    let p = format!("stolon/cluster/{cluster}");

    store.put_cluster_data(br#"{"formatVersion":1}"#).await.unwrap();
    store.set_member(MemberKind::Keeper, "keeper0", b"{}", Duration::from_secs(20)).await.unwrap();
    store.set_member(MemberKind::Sentinel, "s0", b"{}", Duration::from_secs(25)).await.unwrap();
    store.set_member(MemberKind::Proxy, "p0", b"{}", Duration::from_secs(30)).await.unwrap();
    let lead = store.campaign("sentinel-a", Duration::from_secs(20)).await.unwrap();

    let (status, cd) = raw.get(&format!("{p}/clusterdata")).await;
    assert_eq!((status, cd["node"]["value"].as_str()), (200, Some(r#"{"formatVersion":1}"#)));
    assert_eq!(ttl_of(&cd), -1, "the cluster document has no TTL");
    for (key, max) in [("keepers/info/keeper0", 20), ("sentinels/info/s0", 25), ("proxies/info/p0", 30)] {
        let (status, node) = raw.get(&format!("{p}/{key}")).await;
        assert_eq!(status, 200, "{key}");
        let ttl = ttl_of(&node);
        assert!(ttl > 0 && ttl <= max, "{key}: ttl {ttl}, expected at most {max}");
    }
    let (status, leader) = raw.get(&format!("{p}/sentinel-leader")).await;
    assert_eq!((status, leader["node"]["value"].as_str()), (200, Some("sentinel-a")));
    assert!((1..=20).contains(&ttl_of(&leader)), "leader key ttl {}", ttl_of(&leader));

    lead.resign().await.unwrap();
    let (status, gone) = raw.get(&format!("{p}/sentinel-leader")).await;
    assert_eq!((status, gone["errorCode"].as_i64()), (404, Some(100)), "resign deletes the leader key");
}

#[tokio::test]
async fn a_member_key_removed_behind_our_back_is_written_again() {
    let server = EtcdServer::start().expect("etcd");
    let cluster = unique("member");
    let store = open(&server, &cluster).await;
    let raw = Raw::new(&server);
    let key = format!("stolon/cluster/{cluster}/keepers/info/k1");

    // A TTL of 3 s published every 1.1 s: each publish must renew (the lease would otherwise keep less than
    // a third of its TTL at the next one).
    let ttl = Duration::from_secs(3);
    let pause = Duration::from_millis(1100);
    store.set_member(MemberKind::Keeper, "k1", b"same", ttl).await.unwrap();
    let (_, first) = raw.get(&key).await;
    // A publish right after, of the same value, needs nothing from the store.
    store.set_member(MemberKind::Keeper, "k1", b"same", ttl).await.unwrap();
    let (_, unchanged) = raw.get(&key).await;
    assert_eq!(unchanged["node"]["modifiedIndex"], first["node"]["modifiedIndex"], "nothing to send yet");
    // An unchanged value is refreshed in place: same value, new modifiedIndex, TTL restarted.
    tokio::time::sleep(pause).await;
    store.set_member(MemberKind::Keeper, "k1", b"same", ttl).await.unwrap();
    let (_, refreshed) = raw.get(&key).await;
    assert_eq!(refreshed["node"]["value"], "same");
    assert_eq!(refreshed["node"]["createdIndex"], first["node"]["createdIndex"], "refresh must not recreate");
    assert!(refreshed["node"]["modifiedIndex"].as_u64() > first["node"]["modifiedIndex"].as_u64());

    // Expired (here: deleted) or overwritten keys make the refresh fail; the record is written again.
    raw.delete(&key).await;
    tokio::time::sleep(pause).await;
    store.set_member(MemberKind::Keeper, "k1", b"same", ttl).await.unwrap();
    let listed = store.list_members(MemberKind::Keeper).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].value, b"same");
    raw.put(&key, "intruder").await;
    tokio::time::sleep(pause).await;
    store.set_member(MemberKind::Keeper, "k1", b"same", ttl).await.unwrap();
    let (_, node) = raw.get(&key).await;
    assert_eq!(node["node"]["value"], "same", "an overwritten record is rewritten with our value");
    assert!(ttl_of(&node) > 0, "and gets its TTL back");

    // Sub-directories under the info directory are not members.
    raw.put(&format!("stolon/cluster/{cluster}/keepers/info/dir/x"), "1").await;
    let ids: Vec<String> = store.list_members(MemberKind::Keeper).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["k1"]);
}

#[tokio::test]
async fn a_watch_on_an_unchanging_key_outlives_the_event_history() {
    let server = EtcdServer::start().expect("etcd");
    let cluster = unique("watch-quiet");
    let store = open(&server, &cluster).await;
    let raw = Raw::new(&server);
    let rev = store.put_cluster_data_cas(b"v1", None).await.unwrap();

    // The document does not change while more than 1000 other writes happen: no change is missed, so the
    // watch must not reset; it delivers the next change.
    raw.overflow_history(&format!("stolon/cluster/{cluster}")).await;
    let mut watch = store.watch_cluster_data(Some(&rev)).await.unwrap();
    let writer = store.clone();
    let next = tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(20), watch.next()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rev2 = writer.put_cluster_data_cas(b"v2", Some(&rev)).await.unwrap();
    match next.await.unwrap() {
        Ok(Some(Ok(WatchEvent::Put(doc)))) => assert_eq!((doc.value, doc.revision), (b"v2".to_vec(), rev2)),
        other => panic!("expected the write after the history overflow, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_resets_when_a_change_fell_out_of_the_event_history() {
    let server = EtcdServer::start().expect("etcd");
    let cluster = unique("watch-reset");
    let store = open(&server, &cluster).await;
    let raw = Raw::new(&server);
    let r1 = store.put_cluster_data_cas(b"v1", None).await.unwrap();
    store.put_cluster_data_cas(b"v2", Some(&r1)).await.unwrap();
    raw.overflow_history(&format!("stolon/cluster/{cluster}")).await;

    let mut watch = store.watch_cluster_data(Some(&r1)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("an answer");
    assert!(matches!(first, Some(Ok(WatchEvent::Reset))), "expected a reset, got {first:?}");
    let after = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("the end");
    assert!(after.is_none(), "the stream ends after a reset, got {after:?}");
}

#[tokio::test]
async fn a_leader_whose_key_is_taken_over_knows_it_lost() {
    let server = EtcdServer::start().expect("etcd");
    let cluster = unique("takeover");
    let store = open(&server, &cluster).await;
    let raw = Raw::new(&server);
    let mut lead = store.campaign("sentinel-a", Duration::from_secs(20)).await.unwrap();
    assert!(lead.is_leader());

    raw.put(&format!("stolon/cluster/{cluster}/sentinel-leader"), "intruder").await;
    let state = tokio::time::timeout(Duration::from_secs(10), lead.lost()).await.expect("loss noticed");
    assert!(matches!(&state, LeadershipState::Lost(why) if why.contains("intruder")), "{state:?}");
    assert_eq!(store.leader().await.unwrap().as_deref(), Some("intruder"));
    // Resigning must not delete someone else's key.
    assert!(lead.resign().await.is_err());
    assert_eq!(store.leader().await.unwrap().as_deref(), Some("intruder"));
}

#[tokio::test]
async fn a_leader_cut_off_from_the_store_declares_the_loss_before_the_key_can_expire() {
    let server = EtcdServer::start().expect("etcd");
    let cluster = unique("cutoff");
    let store = open(&server, &cluster).await;
    let ttl = Duration::from_secs(3);
    let mut lead = store.campaign("sentinel-a", ttl).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.stop().unwrap();
    let stopped = tokio::time::Instant::now();
    let state = tokio::time::timeout(ttl + Duration::from_secs(3), lead.lost()).await.expect("loss declared");
    assert!(matches!(state, LeadershipState::Lost(_)), "{state:?}");
    assert!(stopped.elapsed() <= ttl, "declared after {:?}, later than the ttl {ttl:?}", stopped.elapsed());
}

#[tokio::test]
async fn basic_auth_is_sent_and_refusals_are_auth_errors() {
    let server = EtcdServer::start().expect("etcd");
    let raw = Raw::new(&server);
    let auth = format!("{}/v2/auth", server.endpoint());
    let put_json = |url: String, body: Value| {
        let client = raw.client.clone();
        async move {
            let resp = client.put(url).basic_auth("root", Some("rootpw")).json(&body).send().await.expect("PUT");
            assert!(resp.status().is_success(), "{}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
    };
    put_json(format!("{auth}/users/root"), serde_json::json!({"user": "root", "password": "rootpw"})).await;
    put_json(format!("{auth}/enable"), Value::Null).await;
    // Without this, the guest role may still read and write everything.
    put_json(
        format!("{auth}/roles/guest"),
        serde_json::json!({"role": "guest", "revoke": {"kv": {"read": ["/*"], "write": ["/*"]}}}),
    )
    .await;

    let cluster = unique("auth");
    let mut config = server.config(StoreBackend::EtcdV2, &cluster);
    config.username = Some("root".into());
    config.password = Some("rootpw".into());
    let store = stolon_store::connect(&config).await.expect("connect with credentials");
    store.put_cluster_data(b"{}").await.expect("write with credentials");

    config.password = Some("wrong".into());
    match stolon_store::connect(&config).await {
        Err(StoreError::Auth(msg)) => assert!(!msg.contains("wrong"), "the password leaked into {msg}"),
        Err(e) => panic!("expected an auth error, got {e}"),
        Ok(_) => panic!("a wrong password was accepted"),
    }
    let anonymous = server.config(StoreBackend::EtcdV2, &cluster);
    assert!(matches!(stolon_store::connect(&anonymous).await, Err(StoreError::Auth(_))));
}

#[tokio::test]
async fn an_etcd_without_the_v2_api_gives_a_clear_error() {
    let etcd = CustomEtcd::start("http", tempfile::tempdir().expect("temp dir"), &[]);
    let config = StoreConfig::new(StoreBackend::EtcdV2, "c1").with_endpoints(&etcd.endpoint).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let err = loop {
        match stolon_store::connect(&config).await {
            Err(StoreError::Config(msg)) => break msg,
            // Not serving yet: the connection is made lazily, so the first request tells.
            Ok(store) => match store.get_cluster_data().await {
                Err(StoreError::Config(msg)) => break msg,
                other => assert!(other.is_err(), "an etcd without v2 answered {other:?}"),
            },
            Err(e) => assert!(e.is_transient(), "unexpected error {e}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "etcd without v2 did not answer in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(err.contains("etcd v2 API not enabled") && err.contains("--enable-v2=true"), "{err}");
}

#[tokio::test]
async fn cluster_data_copied_from_v2_to_v3_is_identical() {
    // What `stolonctl clusterdata read` on etcdv2 then `clusterdata write` on etcdv3 do, on one etcd serving
    // both APIs (their keyspaces are separate).
    let server = EtcdServer::start().expect("etcd");
    let cluster = unique("migrate");
    let v2 = open(&server, &cluster).await;
    let mut v3_config = server.config(StoreBackend::EtcdV3, &cluster);
    v3_config.timeout = Duration::from_secs(3);
    let v3 = stolon_store::connect(&v3_config).await.expect("connect to the etcd v3 API");
    let value = r#"{"formatVersion":1,"cluster":{"spec":{"pgParameters":{"log_line_prefix":"%m \"é\"\n"}}}}"#;
    v2.put_cluster_data_cas(value.as_bytes(), None).await.unwrap();
    v2.set_member(MemberKind::Keeper, "k1", b"{}", Duration::from_secs(20)).await.unwrap();
    assert!(v3.get_cluster_data().await.unwrap().is_none(), "the v3 keyspace does not see v2 keys");

    let doc = v2.get_cluster_data().await.unwrap().expect("v2 cluster data");
    v3.put_cluster_data_cas(&doc.value, None).await.expect("create-only write on v3");
    let copied = v3.get_cluster_data().await.unwrap().expect("v3 cluster data");
    assert_eq!(copied.value, value.as_bytes());
    // Member records are not copied: daemons publish them again on the new backend.
    assert!(v3.list_members(MemberKind::Keeper).await.unwrap().is_empty());
}

#[tokio::test]
async fn requests_move_on_to_the_next_endpoint_when_one_refuses_connections() {
    let server = EtcdServer::start().expect("etcd");
    let dead = format!("http://127.0.0.1:{}", stolon_conformance::servers::closed_port());
    let mut config = StoreConfig::new(StoreBackend::EtcdV2, unique("failover"))
        .with_endpoints(&format!("{dead},{}", server.endpoint()))
        .unwrap();
    config.timeout = Duration::from_secs(3);
    let store = stolon_store::connect(&config).await.expect("connect through the second endpoint");
    let rev = store.put_cluster_data_cas(b"x", None).await.expect("write through the second endpoint");
    assert_eq!(store.get_cluster_data().await.unwrap().map(|d| d.revision), Some(rev));
}
