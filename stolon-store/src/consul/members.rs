//! Member records: `P/{keepers,sentinels,proxies}/info/<id>`, each held by its own session with behavior
//! `delete`, so that Consul deletes the record when the session expires.
//!
//! The session is renewed by each [`Store::set_member`](crate::Store::set_member) (a record expires `ttl`
//! after its last refresh, as the contract says; a stuck owner is not kept alive by a background task), and
//! reused while it lives: a refresh is one renew plus one write, with no new session.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;

use super::http::Conn;
use super::kv::Write;
use super::session::{Behavior, session_ttl};
use crate::{StoreError, StoreResult};

/// The sessions of the records this client publishes: key -> (session id, session TTL).
#[derive(Default)]
pub(crate) struct MemberSessions {
    held: Mutex<HashMap<String, (String, Duration)>>,
}

impl MemberSessions {
    /// Creates or refreshes the record `key`.
    pub(crate) async fn set(&self, conn: &Conn, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let sttl = session_ttl(ttl);
        // One refresh at a time per client: keeps the session map and Consul in step.
        let mut held = self.held.lock().await;
        if let Some((id, cached_ttl)) = held.get(key).cloned() {
            // A live session that still gets the key is reused; one that lost it (or expired) is replaced.
            if cached_ttl == sttl
                && conn.renew_session(&id, conn.timeout).await?
                && acquire(conn, key, value, &id).await?
            {
                return Ok(());
            }
            held.remove(key);
            conn.destroy_session(&id).await?;
        }
        let id = conn.create_session(&format!("stolon-rs member {key}"), sttl, Behavior::Delete).await?;
        match take_over(conn, key, value, &id).await {
            Ok(()) => {
                held.insert(key.to_string(), (id, sttl));
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
        if let Some((id, _)) = held.remove(key) {
            conn.destroy_session(&id).await?;
        }
        conn.delete(key).await
    }
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
