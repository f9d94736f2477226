//! etcd v3 backend on a member cut off from its cluster's quorum: a real 3-member etcd, a client that talks
//! only to member m2, and m0 and m1 frozen (SIGSTOP) so that m2 has no leader. Every request carries etcd's
//! require-leader flag, so m2 refuses requests with "no leader" instead of letting them wait, and ends the
//! open watches (the cluster document's and a member watch) instead of leaving them silent while the rest
//! of the cluster may go on changing; after the quorum is back the same client reads and watches again.

mod support_etcd_cluster;

use std::time::Duration;

use futures::StreamExt;
use stolon_store::{MemberEvent, MemberKind, StoreBackend, StoreConfig, StoreError, WatchEvent};
use support_etcd_cluster::EtcdCluster;

/// Bound of every wait below; etcd ends leaderless watches after three election timeouts (3 s by default).
const WAIT: Duration = Duration::from_secs(30);

fn config(endpoints: &str) -> StoreConfig {
    let mut c = StoreConfig::new(StoreBackend::EtcdV3, "no-leader").with_endpoints(endpoints).unwrap();
    c.timeout = Duration::from_secs(5);
    c
}

/// Runs `op` until it succeeds, retrying transient errors (a cluster electing its leader) for [`WAIT`].
async fn until_ok<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

fn says_no_leader(e: &StoreError) -> bool {
    e.is_transient() && e.to_string().contains("no leader")
}

#[tokio::test]
async fn a_member_without_leader_refuses_requests_and_ends_its_watches() {
    let etcd = EtcdCluster::start(3);
    for endpoint in &etcd.endpoints {
        let member = stolon_store::connect(&config(endpoint)).await.unwrap();
        until_ok(&format!("read through {endpoint} while the cluster starts"), || member.get_cluster_data()).await;
    }
    let all = stolon_store::connect(&config(&etcd.endpoints.join(","))).await.unwrap();
    let rev = until_ok("first write", || all.put_cluster_data_cas(b"v1", None)).await;
    let lone = stolon_store::connect(&config(&etcd.endpoints[2])).await.unwrap();
    until_ok("read through m2", || lone.get_cluster_data()).await;

    // Both watches deliver while m2 has a leader, so that their end below is the fault's doing.
    let mut data_watch = lone.watch_cluster_data(Some(&rev)).await.unwrap();
    let mut member_watch = lone.watch_members(MemberKind::Keeper).await.unwrap().events;
    let rev2 = all.put_cluster_data_cas(b"v2", Some(&rev)).await.unwrap();
    all.set_member(MemberKind::Keeper, "k1", b"info", Duration::from_secs(20)).await.unwrap();
    match tokio::time::timeout(WAIT, data_watch.next()).await {
        Ok(Some(Ok(WatchEvent::Put(doc)))) => assert_eq!((doc.value, doc.revision), (b"v2".to_vec(), rev2.clone())),
        other => panic!("cluster data watch on m2 before the fault: {other:?}"),
    }
    match tokio::time::timeout(WAIT, member_watch.next()).await {
        Ok(Some(Ok(MemberEvent::Put(r)))) => assert_eq!((r.id.as_str(), r.value.as_slice()), ("k1", &b"info"[..])),
        other => panic!("member watch on m2 before the fault: {other:?}"),
    }

    etcd.freeze(0);
    etcd.freeze(1);
    // Without the flag etcd keeps both watches open and silent for as long as the partition lasts.
    match tokio::time::timeout(WAIT, data_watch.next()).await {
        Ok(Some(Err(e))) => assert!(says_no_leader(&e), "cluster data watch ended with {e}"),
        other => panic!("cluster data watch on leaderless m2: {other:?} (it must end with an error)"),
    }
    match tokio::time::timeout(WAIT, member_watch.next()).await {
        Ok(Some(Err(e))) => assert!(says_no_leader(&e), "member watch ended with {e}"),
        other => panic!("member watch on leaderless m2: {other:?} (it must end with an error)"),
    }
    // Without the flag a read waits for a leader until the store timeout instead.
    match lone.get_cluster_data().await {
        Err(e) => assert!(says_no_leader(&e), "read through leaderless m2 failed with {e}"),
        Ok(doc) => panic!("read through leaderless m2 answered {doc:?}"),
    }
    let opened = lone.watch_cluster_data(Some(&rev2)).await.map(|_| ());
    assert!(opened.as_ref().is_err_and(says_no_leader), "a new watch on leaderless m2: {opened:?}");

    etcd.resume(0);
    etcd.resume(1);
    let doc = until_ok("read through m2 after the quorum came back", || lone.get_cluster_data()).await;
    assert_eq!(doc.map(|d| d.value), Some(b"v2".to_vec()));
    let mut data_watch =
        until_ok("watch on m2 after the quorum came back", || lone.watch_cluster_data(Some(&rev2))).await;
    let rev3 = until_ok("write after the quorum came back", || all.put_cluster_data_cas(b"v3", Some(&rev2))).await;
    match tokio::time::timeout(WAIT, data_watch.next()).await {
        Ok(Some(Ok(WatchEvent::Put(doc)))) => assert_eq!((doc.value, doc.revision), (b"v3".to_vec(), rev3.clone())),
        other => panic!("cluster data watch on m2 after the fault: {other:?}"),
    }
}
