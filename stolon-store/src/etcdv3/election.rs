//! Leader election compatible with etcd's `concurrency` election (as used by stolon's etcdv3 sentinels):
//! each candidate owns `P/sentinel-leader/<lease id hex>` attached to its lease, and the key with the
//! lowest create revision leads.

use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Conn, EtcdV3Store, lease, ttl_secs};
use crate::{Leadership, LeadershipEnd, ResignSignal, StoreError, StoreResult};

fn election_prefix(store: &EtcdV3Store) -> String {
    format!("{}/sentinel-leader/", store.path)
}

/// The current leader: the value of the election key with the lowest create revision.
pub(crate) async fn leader(store: &EtcdV3Store) -> StoreResult<Option<String>> {
    let prefix = election_prefix(store);
    let opts = GetOptions::new().with_prefix().with_sort(SortTarget::Create, SortOrder::Ascend).with_limit(1);
    let resp = store.conn.call(&prefix, |mut c, k| async move { c.get(k, Some(opts)).await }).await?;
    Ok(resp.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<String>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Owns the candidate's lease while campaigning or leading. Dropping it stops the keep-alive; while
/// campaigning it also revokes the lease (a cancelled campaign leaves no key behind). Once leading, a drop
/// only stops renewing, as a crash would, and the store ends the leadership when the lease runs out.
struct LeaseGuard {
    conn: Conn,
    lease_id: i64,
    keeper: AbortOnDrop,
    revoke_on_drop: bool,
}

impl LeaseGuard {
    async fn revoke(mut self) -> StoreResult<()> {
        self.revoke_on_drop = false;
        self.keeper.0.abort();
        let id = self.lease_id;
        self.conn.call("lease revoke", |mut c, _| async move { c.lease_revoke(id).await }).await.map(|_| ())
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.keeper.0.abort();
        if !self.revoke_on_drop {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (conn, id) = (self.conn.clone(), self.lease_id);
            rt.spawn(async move {
                let _ = conn.call("lease revoke", |mut c, _| async move { c.lease_revoke(id).await }).await;
            });
        }
    }
}

/// Runs for leadership; returns once `candidate` leads.
pub(crate) async fn campaign(store: &EtcdV3Store, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
    let conn = store.conn.clone();
    let prefix = election_prefix(store);
    let ttl_s = ttl_secs(ttl);
    let granted_at = Instant::now();
    let lease_id = conn.call(&prefix, |mut c, _| async move { c.lease_grant(ttl_s, None).await }).await?.id();
    let (alive_tx, mut alive) = watch::channel(true);
    let ttl_d = Duration::from_secs(ttl_s as u64);
    let keeper = tokio::spawn(lease::keep_alive(conn.clone(), lease_id, ttl_d, granted_at, alive_tx));
    let mut guard = LeaseGuard { conn: conn.clone(), lease_id, keeper: AbortOnDrop(keeper), revoke_on_drop: true };

    let key = format!("{prefix}{lease_id:x}");
    let my_rev = create_own_key(&conn, &key, candidate, lease_id).await?;
    wait_for_predecessors(&conn, &prefix, my_rev, &mut alive).await?;

    guard.revoke_on_drop = false;
    Ok(Leadership::spawn(candidate, move |resign| hold(guard, key, my_rev, alive, resign)))
}

/// Creates the candidate's key if absent; returns its create revision.
async fn create_own_key(conn: &Conn, key: &str, candidate: &str, lease_id: i64) -> StoreResult<i64> {
    let put = TxnOp::put(key, candidate, Some(PutOptions::new().with_lease(lease_id)));
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([put])
        .or_else([TxnOp::get(key, None)]);
    let resp = conn.call(key, |mut c, _| async move { c.txn(txn).await }).await?;
    if resp.succeeded() {
        return Ok(resp.header().map(|h| h.revision()).unwrap_or_default());
    }
    resp.op_responses()
        .into_iter()
        .find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.create_revision()),
            _ => None,
        })
        .ok_or_else(|| StoreError::Election(format!("{key}: election key vanished while being created")))
}

/// Waits until no election key older than ours exists.
async fn wait_for_predecessors(
    conn: &Conn,
    prefix: &str,
    my_rev: i64,
    alive: &mut watch::Receiver<bool>,
) -> StoreResult<()> {
    loop {
        let lost = !*alive.borrow();
        if lost {
            return Err(StoreError::Election("lease lost while campaigning".into()));
        }
        let opts = GetOptions::new()
            .with_prefix()
            .with_max_create_revision(my_rev - 1)
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_limit(1);
        let resp = conn.call(prefix, |mut c, k| async move { c.get(k, Some(opts)).await }).await?;
        let Some(prev) = resp.kvs().first() else {
            return Ok(());
        };
        let prev_key = String::from_utf8_lossy(prev.key()).into_owned();
        let from = resp.header().map(|h| h.revision()).unwrap_or_default() + 1;
        tokio::select! {
            _ = wait_deleted(conn, prev_key, from) => {}
            _ = alive.changed() => {}
        }
    }
}

/// Resolves when `key` is deleted after revision `from`, or when the watch breaks (the caller re-checks).
async fn wait_deleted(conn: &Conn, key: String, from: i64) {
    let opts = WatchOptions::new().with_start_revision(from);
    let Ok(mut stream) = conn.call(&key, |mut c, k| async move { c.watch(k, Some(opts)).await }).await else {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    };
    loop {
        match stream.message().await {
            Ok(Some(resp)) => {
                if resp.canceled() || resp.events().iter().any(|e| e.event_type() == EventType::Delete) {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// Holds leadership until resigned or lost.
async fn hold(
    guard: LeaseGuard,
    key: String,
    my_rev: i64,
    mut alive: watch::Receiver<bool>,
    mut resign: ResignSignal,
) -> StoreResult<LeadershipEnd> {
    let conn = guard.conn.clone();
    loop {
        tokio::select! {
            _ = resign.requested() => {
                let deleted = conn.call(&key, |mut c, k| async move { c.delete(k, None).await }).await;
                let revoked = guard.revoke().await;
                return deleted.and(revoked).map(|_| LeadershipEnd::Resigned);
            }
            _ = lease_lost(&mut alive) => {
                let _ = guard.revoke().await;
                return Ok(LeadershipEnd::Lost("election lease expired or could not be refreshed".into()));
            }
            gone = key_gone(&conn, &key, my_rev) => {
                if gone {
                    let _ = guard.revoke().await;
                    return Ok(LeadershipEnd::Lost(format!("election key {key} was deleted")));
                }
            }
        }
    }
}

/// Resolves when the lease keeper reports the lease lost.
async fn lease_lost(alive: &mut watch::Receiver<bool>) {
    let _ = alive.wait_for(|a| !*a).await;
}

/// Watches our own election key; true once it is deleted or replaced, false when the watch broke.
async fn key_gone(conn: &Conn, key: &str, my_rev: i64) -> bool {
    let opts = WatchOptions::new().with_start_revision(my_rev + 1);
    let Ok(mut stream) = conn.call(key, |mut c, k| async move { c.watch(k, Some(opts)).await }).await else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        return false;
    };
    loop {
        match stream.message().await {
            Ok(Some(resp)) if resp.events().iter().any(|e| e.event_type() == EventType::Delete) => {
                return true;
            }
            Ok(Some(resp)) if resp.canceled() => return false,
            Ok(Some(_)) => {}
            _ => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return false;
            }
        }
    }
}
