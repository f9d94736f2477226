//! Member records: `P/{keepers,sentinels,proxies}/info/<id>`, each held by its own session with behavior
//! `delete`, so that Consul deletes the record when the session expires.
//!
//! The session is renewed by [`Store::set_member`](crate::Store::set_member) calls (a record expires `ttl`
//! after its owner's last call at the latest, as the contract says; a stuck owner is not kept alive by a
//! background task), and reused while it lives. As [`crate::refresh`] says, a refresh renews the session only
//! when it would otherwise run out before the owner's next call, and writes the record only when its value
//! changed (or a minute ago): an unchanged record costs one renewal and no KV request.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::http::Conn;
use super::kv::Write;
use super::session::{Behavior, session_ttl};
use crate::refresh::Published;
use crate::{StoreError, StoreResult};

/// One record's session and what was last sent for it.
struct Held {
    id: String,
    /// The session TTL.
    ttl: Duration,
    published: Published,
}

/// The sessions of the records this client publishes, by key.
#[derive(Default)]
pub(crate) struct MemberSessions {
    held: Mutex<HashMap<String, Held>>,
}

impl MemberSessions {
    /// Creates or refreshes the record `key`.
    pub(crate) async fn set(&self, conn: &Conn, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let sttl = session_ttl(ttl);
        // One refresh at a time per client: keeps the session map and Consul in step.
        let mut held = self.held.lock().await;
        if let Some(h) = held.get_mut(key) {
            // A live session that still holds the key is reused; one that lost it (or expired) is replaced.
            if h.ttl == sttl && refresh(conn, key, value, h).await? {
                return Ok(());
            }
            if let Some(old) = held.remove(key) {
                conn.destroy_session(&old.id).await?;
            }
        }
        let sent = Instant::now();
        let id = conn.create_session(&format!("stolon-rs member {key}"), sttl, Behavior::Delete).await?;
        match take_over(conn, key, value, &id).await {
            Ok(()) => {
                held.insert(key.to_string(), Held { id, ttl: sttl, published: Published::new(value, sttl, sent) });
                Ok(())
            }
            Err(e) => {
                let _ = conn.destroy_session(&id).await;
                Err(e)
            }
        }
    }

    /// Removes the record `key` at once.
    pub(crate) async fn delete(&self, conn: &Conn, key: &str) -> StoreResult<()> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.remove(key) {
            conn.destroy_session(&h.id).await?;
        }
        conn.delete(key).await
    }
}

/// Renews and rewrites as [`Published::plan`] says; false when the session is gone or no longer holds the key.
async fn refresh(conn: &Conn, key: &str, value: &[u8], h: &mut Held) -> StoreResult<bool> {
    let plan = h.published.plan(value, Instant::now());
    if plan.renew {
        let sent = Instant::now();
        if !conn.renew_session(&h.id, conn.timeout).await? {
            return Ok(false);
        }
        h.published.renewed(sent);
    }
    if plan.write {
        let sent = Instant::now();
        if !acquire(conn, key, value, &h.id).await? {
            return Ok(false);
        }
        h.published.written(value, sent);
    }
    Ok(true)
}

/// Writes `value` to `key` holding its lock with session `id`; false when another session holds it.
async fn acquire(conn: &Conn, key: &str, value: &[u8], id: &str) -> StoreResult<bool> {
    match conn.write(key, value, Write { acquire: Some(id), ..Write::default() }).await {
        Err(e) if super::errors::is_invalid_session(&e) => Ok(false),
        other => other,
    }
}

/// Acquires `key` for the new session `id`. A record held by another session (a previous run of the same
/// member that has not expired yet) is taken over: that session is destroyed, which deletes the record,
/// and the record is written again with ours.
async fn take_over(conn: &Conn, key: &str, value: &[u8], id: &str) -> StoreResult<()> {
    for _ in 0..3 {
        if acquire(conn, key, value, id).await? {
            return Ok(());
        }
        if let Some(other) = conn.read(key, None).await?.entry.and_then(|e| e.session)
            && other != id
        {
            tracing::info!(key, "member record held by an older session; replacing it");
            conn.destroy_session(&other).await?;
        }
    }
    Err(StoreError::Backend {
        key: key.to_string(),
        reason: "could not acquire the member record for this client's session".into(),
    })
}
