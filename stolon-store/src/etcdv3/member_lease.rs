//! Member records on leases: each record this client publishes is attached to its own lease, kept alive over
//! one long-lived keep-alive stream, renewed and rewritten only as [`crate::refresh`] says. A steady refresh
//! of a keeper is then one put (its info changes every time) and, every other call, one message on the open
//! stream; an unchanged record (a sentinel's) costs one stream message every other call.

use std::collections::HashMap;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, PutOptions};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Conn, errors};
use crate::refresh::Published;
use crate::timeout::bounded;
use crate::{StoreError, StoreResult};

/// One record and its lease.
struct Held {
    lease_id: i64,
    ttl_secs: i64,
    published: Published,
    /// The open keep-alive stream of the lease, when there is one.
    channel: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

/// The member records this client publishes, by key.
#[derive(Default)]
pub(crate) struct MemberLeases {
    held: Mutex<HashMap<String, Held>>,
}

impl MemberLeases {
    /// Creates or refreshes the record `key`, expiring `ttl_secs` after its last renewal.
    pub(crate) async fn set(&self, conn: &Conn, key: &str, value: &[u8], ttl_secs: i64) -> StoreResult<()> {
        // One refresh at a time per client: keeps the lease map and etcd in step.
        let mut held = self.held.lock().await;
        if let Some(h) = held.get_mut(key).filter(|h| h.ttl_secs == ttl_secs) {
            match h.refresh(conn, key, value).await {
                Ok(()) => return Ok(()),
                // The lease expired (e.g. the owner paused longer than its TTL): grant a new one below.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    // The stream may be broken or out of step after a failure: open a new one next time.
                    h.channel = None;
                    return Err(e);
                }
            }
        }
        let sent = Instant::now();
        let lease_id = conn.call(key, |mut c, _| async move { c.lease_grant(ttl_secs, None).await }).await?.id();
        if let Err(e) = put(conn, key, value, lease_id).await {
            revoke(conn, key, lease_id).await;
            return Err(e);
        }
        let ttl = std::time::Duration::from_secs(ttl_secs.max(0) as u64);
        let fresh = Held { lease_id, ttl_secs, published: Published::new(value, ttl, sent), channel: None };
        if let Some(old) = held.insert(key.to_string(), fresh).filter(|old| old.lease_id != lease_id) {
            // The old lease holds nothing any more; revoke it so leases do not pile up until they expire.
            revoke(conn, key, old.lease_id).await;
        }
        Ok(())
    }

    /// Forgets the record `key` and revokes its lease (which deletes the key).
    pub(crate) async fn forget(&self, conn: &Conn, key: &str) {
        if let Some(h) = self.held.lock().await.remove(key) {
            revoke(conn, key, h.lease_id).await;
        }
    }
}

impl Held {
    /// Renews and rewrites as needed; `NotFound` when the lease is gone.
    async fn refresh(&mut self, conn: &Conn, key: &str, value: &[u8]) -> StoreResult<()> {
        let plan = self.published.plan(value, Instant::now());
        if plan.renew {
            let sent = Instant::now();
            self.keep_alive(conn, key).await?;
            self.published.renewed(sent);
        }
        if plan.write {
            let sent = Instant::now();
            put(conn, key, value, self.lease_id).await?;
            self.published.written(value, sent);
        }
        Ok(())
    }

    /// Sends one keep-alive on the lease's stream, opening the stream first when there is none (opening it
    /// sends the first keep-alive). `NotFound` when the lease expired. The stream is kept only after an
    /// answered keep-alive, so that a cancelled or failed one never leaves it out of step.
    async fn keep_alive(&mut self, conn: &Conn, key: &str) -> StoreResult<()> {
        let lease_id = self.lease_id;
        let map = |e| errors::map_err(e, key, &conn.endpoints);
        if let Some((mut keeper, mut stream)) = self.channel.take() {
            let answer = bounded(conn.timeout, key, async {
                keeper.keep_alive().await.map_err(map)?;
                stream.message().await.map_err(map)
            })
            .await;
            match answer {
                Ok(Some(resp)) if resp.ttl() > 0 => {
                    self.channel = Some((keeper, stream));
                    return Ok(());
                }
                Ok(Some(_)) => return Err(StoreError::NotFound { key: key.to_string() }),
                // The stream ended or broke (a reconnection, a restarted server): open a new one.
                Ok(None) | Err(StoreError::Unavailable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let opened =
            bounded(conn.timeout, key, async { conn.client.clone().lease_keep_alive(lease_id).await.map_err(map) })
                .await?;
        self.channel = Some(opened);
        Ok(())
    }
}

async fn put(conn: &Conn, key: &str, value: &[u8], lease_id: i64) -> StoreResult<()> {
    let value = value.to_vec();
    conn.call(key, |mut c, k| async move { c.put(k, value, Some(PutOptions::new().with_lease(lease_id))).await })
        .await
        .map(|_| ())
}

/// Revokes a lease, ignoring failures (an unrevoked lease only lives until its TTL).
async fn revoke(conn: &Conn, key: &str, lease_id: i64) {
    let _ = conn.call(key, |mut c, _| async move { c.lease_revoke(lease_id).await }).await;
}
