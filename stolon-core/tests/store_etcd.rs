//! Typed store access against a real etcd (v3 API): documents and infos go through the model, and bad
//! stored documents give typed errors naming the key instead of panics.

use std::sync::Arc;
use std::time::Duration;

use stolon_conformance::servers::EtcdServer;
use stolon_core::cluster::{ClusterData, ClusterSpec, KeeperInfo, ModelError, ProxyInfo, SentinelInfo};
use stolon_core::store::{ClusterStore, ClusterStoreError};
use stolon_core::time::Timestamp;
use stolon_store::{Store, StoreBackend};

async fn setup() -> (EtcdServer, ClusterStore, Arc<dyn Store>) {
    let server = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let config = server.config(StoreBackend::EtcdV3, "typed");
    let raw = stolon_store::connect(&config).await.expect("connect");
    (server, ClusterStore::new(raw.clone()), raw)
}

fn spec() -> ClusterSpec {
    serde_json::from_str(r#"{"initMode":"new","sleepInterval":"2s","synchronousReplication":true}"#).unwrap()
}

#[tokio::test]
async fn cluster_data_round_trips_with_cas() {
    let (_server, store, raw) = setup().await;
    assert!(store.cluster_data().await.unwrap().is_none());
    let cd = ClusterData::new_initial("c0ffee00", spec(), Timestamp::now());
    let rev = store.put_cluster_data_cas(&cd, None).await.unwrap();
    let read = store.cluster_data().await.unwrap().expect("written");
    assert_eq!(read.revision, rev);
    assert_eq!(read.data.cluster.uid, "c0ffee00");
    assert_eq!(read.data.cluster.spec.sleep_interval(), Duration::from_secs(2));
    assert_eq!(read.data, cd);
    // The raw bytes are stolon's JSON.
    let raw_doc = raw.get_cluster_data().await.unwrap().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw_doc.value).unwrap();
    assert_eq!(json["formatVersion"], 1);
    assert_eq!(json["cluster"]["status"]["phase"], "initializing");
    // A stale CAS is a conflict.
    let mut next = read.data.clone();
    next.cluster.uid = "0badcafe".into();
    store.put_cluster_data_cas(&next, Some(&rev)).await.unwrap();
    let err = store.put_cluster_data_cas(&next, Some(&rev)).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
}

#[tokio::test]
async fn bad_documents_are_typed_errors_naming_the_key() {
    let (_server, store, raw) = setup().await;
    raw.put_cluster_data(b"null").await.unwrap();
    assert!(store.cluster_data().await.unwrap().is_none(), "literal null reads as no cluster data");

    raw.put_cluster_data(b"{not json").await.unwrap();
    let err = store.cluster_data().await.unwrap_err();
    assert!(
        matches!(err, ClusterStoreError::Model { ref key, source: ModelError::Syntax { .. } } if key == "clusterdata"),
        "{err}"
    );
    assert!(err.to_string().contains("clusterdata"), "{err}");

    raw.put_cluster_data(br#"{"formatVersion":2,"cluster":{},"keepers":{},"dbs":{},"proxy":{}}"#).await.unwrap();
    let err = store.cluster_data().await.unwrap_err();
    assert!(
        matches!(err, ClusterStoreError::Model { source: ModelError::UnsupportedFormatVersion { found: 2, .. }, .. }),
        "{err}"
    );

    raw.put_cluster_data(br#"{"formatVersion":1,"keepers":[1,2]}"#).await.unwrap();
    let err = store.cluster_data().await.unwrap_err();
    assert!(matches!(err, ClusterStoreError::Model { source: ModelError::Shape { .. }, .. }), "{err}");
    assert!(err.to_string().contains("keepers"), "the error names the offending field: {err}");
}

#[tokio::test]
async fn infos_round_trip_and_bad_records_are_reported() {
    let (_server, store, raw) = setup().await;
    let ttl = Duration::from_secs(30);
    let keeper: KeeperInfo =
        serde_json::from_str(r#"{"infoUID":"aa","uid":"keeper0","clusterUID":"c0ffee00","bootUUID":"b"}"#).unwrap();
    store.set_keeper_info(&keeper, ttl).await.unwrap();
    store.set_sentinel_info(&SentinelInfo { uid: "s1".into() }, ttl).await.unwrap();
    let proxy: ProxyInfo =
        serde_json::from_str(r#"{"infoUID":"bb","UID":"p1","Generation":3,"ProxyTimeout":15000000000}"#).unwrap();
    store.set_proxy_info(&proxy, ttl).await.unwrap();
    raw.set_member(stolon_store::MemberKind::Keeper, "broken", b"[garbage", ttl).await.unwrap();

    let keepers = store.keeper_infos().await.unwrap();
    assert_eq!(keepers.valid.len(), 1);
    assert_eq!(keepers.valid["keeper0"].cluster_uid, "c0ffee00");
    assert_eq!(keepers.invalid.len(), 1);
    assert_eq!(keepers.invalid[0].0, "broken");
    assert_eq!(store.sentinel_infos().await.unwrap().valid["s1"].uid, "s1");
    let proxies = store.proxy_infos().await.unwrap();
    assert_eq!(proxies.valid["p1"].generation, 3);
    assert_eq!(proxies.valid["p1"], proxy);

    // Infos are keyed by the UID they carry, not by the record id (on Kubernetes the record id is the pod).
    raw.set_member(stolon_store::MemberKind::Sentinel, "pod-7", br#"{"UID":"s7"}"#, ttl).await.unwrap();
    let sentinels = store.sentinel_infos().await.unwrap();
    assert!(sentinels.valid.contains_key("s7") && !sentinels.valid.contains_key("pod-7"), "{:?}", sentinels.valid);
}
