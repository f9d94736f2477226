//! Consul sessions over raw HTTP (rs-consul has no public session API): create, renew, destroy.
//!
//! TTLs: Consul refuses session TTLs under 10 s and, once a session is not renewed, invalidates it no
//! earlier than its TTL (in practice at twice the TTL). Like stolon, a record or lock TTL `ttl` becomes a
//! session TTL of `ttl / 2`, and `ttl` is first raised to [`MIN_TTL`] (20 s) so that the session TTL is
//! never under Consul's 10 s floor.

use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};

use super::errors::{self, Fail};
use super::http::Conn;
use crate::{StoreError, StoreResult};

/// The smallest record or lock TTL this backend honours: twice Consul's 10 s minimum session TTL.
pub const MIN_TTL: Duration = Duration::from_secs(20);
/// Consul's largest session TTL.
const MAX_SESSION_TTL: Duration = Duration::from_secs(86_400);

/// What Consul does to the keys a session holds when the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    /// The keys are deleted (member records).
    Delete,
    /// The locks are released, the keys stay (the leader lock).
    Release,
}

/// The session TTL for a record or lock TTL: `max(ttl, MIN_TTL) / 2` in whole seconds, at most a day.
pub(crate) fn session_ttl(ttl: Duration) -> Duration {
    let half = ttl.max(MIN_TTL) / 2;
    let secs = half.as_secs() + u64::from(half.subsec_nanos() > 0);
    Duration::from_secs(secs).min(MAX_SESSION_TTL)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody<'a> {
    name: &'a str,
    #[serde(rename = "TTL")]
    ttl: String,
    behavior: &'a str,
    /// No lock-delay: a lock freed by an expired or destroyed session can be taken at once.
    lock_delay: &'a str,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

impl Conn {
    fn session_err(&self, status: u16, body: &[u8], what: &str) -> Fail {
        errors::from_status(status, &String::from_utf8_lossy(body), what, &self.base, self.has_token())
    }

    /// Creates a session with `ttl` (already a session TTL) and `behavior`; returns its id.
    pub(crate) async fn create_session(&self, name: &str, ttl: Duration, behavior: Behavior) -> StoreResult<String> {
        let body = CreateBody {
            name,
            ttl: format!("{}s", ttl.as_secs()),
            behavior: match behavior {
                Behavior::Delete => "delete",
                Behavior::Release => "release",
            },
            lock_delay: "0s",
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| StoreError::Config(format!("cannot encode a session request: {e}")))?;
        let what = "session create";
        self.call(what, || async {
            let reply = self.raw(Method::PUT, self.url("/v1/session/create", &[]), Some(body.clone())).await?;
            if reply.status != 200 {
                return Err(self.session_err(reply.status, &reply.body, what));
            }
            let created: Created = serde_json::from_slice(&reply.body).map_err(|e| {
                Fail::Store(StoreError::InvalidData { key: what.into(), reason: format!("unexpected answer: {e}") })
            })?;
            Ok(created.id)
        })
        .await
    }

    /// Renews session `id`: true when renewed, false when Consul no longer knows it (expired or destroyed).
    /// Bounded by `limit`.
    pub(crate) async fn renew_session(&self, id: &str, limit: Duration) -> StoreResult<bool> {
        let what = format!("session renew {id}");
        self.call_within(&what, limit, || async {
            let reply = self.raw(Method::PUT, self.url(&format!("/v1/session/renew/{id}"), &[]), None).await?;
            match reply.status {
                200 => Ok(true),
                404 => Ok(false),
                s => Err(self.session_err(s, &reply.body, &what)),
            }
        })
        .await
    }

    /// Destroys session `id`, which ends its locks as its behavior says (a missing session is not an error).
    pub(crate) async fn destroy_session(&self, id: &str) -> StoreResult<()> {
        let what = format!("session destroy {id}");
        self.call(&what, || async {
            let reply = self.raw(Method::PUT, self.url(&format!("/v1/session/destroy/{id}"), &[]), None).await?;
            match reply.status {
                200 | 404 => Ok(()),
                s => Err(self.session_err(s, &reply.body, &what)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ttl_is_half_the_ttl_with_consuls_floor() {
        assert_eq!(session_ttl(Duration::from_secs(2)), Duration::from_secs(10));
        assert_eq!(session_ttl(Duration::from_secs(20)), Duration::from_secs(10));
        assert_eq!(session_ttl(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(session_ttl(Duration::from_millis(45_001)), Duration::from_secs(23));
        assert_eq!(session_ttl(Duration::from_secs(10 * 86_400)), Duration::from_secs(86_400));
    }
}
