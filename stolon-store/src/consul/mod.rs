//! The Consul backend, wire-compatible with stolon's consul store.
//!
//! Layout under `P = <prefix>/<cluster>` (a leading `/` is dropped, as Consul keys have none):
//! `P/clusterdata` (written with check-and-set on `ModifyIndex`), `P/{keepers,sentinels,proxies}/info/<id>`
//! (each held by a session with behavior `delete`), and the leader lock `P/sentinel-leader` (value = the
//! leader's id, held by a session with behavior `release`).
//!
//! KV requests go through rs-consul; sessions, which rs-consul does not offer, go as raw HTTP requests over
//! the same hyper client. Every request is bounded by the store timeout; while Consul answers "No cluster
//! leader" a request is retried until that bound. TTLs under [`MIN_TTL`] are raised to it, because Consul's
//! shortest session TTL is 10 s and a record's session lives half its TTL (see the `session` module).

mod election;
mod errors;
mod http;
mod keys;
mod kv;
mod limits;
mod member_watch;
mod members;
mod session;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use election::LOCK_FLAGS;
pub use http::TOKEN_ENV;
pub use limits::DEFAULT_KV_MAX_VALUE_SIZE;
pub use session::MIN_TTL;

use self::http::Conn;
use self::kv::Write;
use self::members::MemberSessions;
use crate::{
    Capabilities, Document, Election, Leadership, MemberExpiry, MemberKind, MemberRecord, MemberWatch, Revision, Store,
    StoreBackend, StoreConfig, StoreError, StoreResult, WatchDelivery, WatchStream,
};

/// A [`Store`] on Consul's KV and session API.
pub struct ConsulStore {
    conn: Arc<Conn>,
    base: String,
    members: MemberSessions,
    /// The agent's `limits.kv_max_value_size`, read when connecting.
    max_value_size: usize,
}

impl ConsulStore {
    /// Prepares a client for the single endpoint of `config` (the token comes from `config.token`, else
    /// from `CONSUL_HTTP_TOKEN`) and reads the agent's KV value limit (at most 2 s; Consul's default of
    /// 512 KiB when the agent cannot say). Never fails on an unreachable agent: its first operation does.
    pub async fn connect(config: &StoreConfig) -> StoreResult<Self> {
        config.validate()?;
        let conn = Conn::new(config)?;
        let max_value_size = limits::kv_max_value_size(&conn).await;
        Ok(ConsulStore {
            conn,
            base: keys::cluster_base(&config.prefix, &config.cluster_name),
            members: MemberSessions::default(),
            max_value_size,
        })
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.base)
    }

    fn member_dir(&self, kind: MemberKind) -> String {
        self.key(&format!("{}/info/", kind.key_segment()))
    }

    fn member_key(&self, kind: MemberKind, id: &str) -> StoreResult<String> {
        if id.is_empty() || id.contains('/') {
            return Err(StoreError::InvalidData {
                key: id.to_string(),
                reason: "member id must be non-empty and must not contain '/'".into(),
            });
        }
        Ok(format!("{}{id}", self.member_dir(kind)))
    }
}

/// How long a blocking read waits for a change before Consul answers with the unchanged state: twice the
/// store timeout, between 1 s and 5 min.
pub(crate) fn watch_wait(timeout: Duration) -> Duration {
    (timeout * 2).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

fn expected_index(key: &str, rev: &Revision) -> StoreResult<u64> {
    rev.index().ok_or_else(|| StoreError::InvalidData {
        key: key.to_string(),
        reason: format!("revision {rev} is not a Consul index"),
    })
}

#[async_trait]
impl Store for ConsulStore {
    fn backend(&self) -> StoreBackend {
        StoreBackend::Consul
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            member_expiry: MemberExpiry::Ttl,
            min_ttl: MIN_TTL,
            watch: WatchDelivery::Coalescing,
            max_document_size: Some(self.max_value_size),
        }
    }

    async fn get_cluster_data(&self) -> StoreResult<Option<Document>> {
        let read = self.conn.read(&self.key("clusterdata"), None).await?;
        Ok(read.entry.map(|e| Document { value: e.value, revision: Revision::from_index(e.modify_index) }))
    }

    async fn put_cluster_data_cas(&self, value: &[u8], expected: Option<&Revision>) -> StoreResult<Revision> {
        let key = self.key("clusterdata");
        let cas = match expected {
            None => 0,
            Some(rev) => match expected_index(&key, rev)? {
                // Consul reads cas=0 as "create only": no stored key has index 0, so this can only conflict.
                0 => return Err(StoreError::Conflict { key, reason: format!("revision {rev} is not current") }),
                i => i,
            },
        };
        if !self.conn.write(&key, value, Write { cas: Some(cas), ..Write::default() }).await? {
            let reason = match expected {
                None => "the document already exists (create-only put)".to_string(),
                Some(rev) => format!("the document changed since revision {rev}"),
            };
            return Err(StoreError::Conflict { key, reason });
        }
        self.conn.written_revision(&key, value).await
    }

    async fn put_cluster_data(&self, value: &[u8]) -> StoreResult<Revision> {
        // A check-and-set on the index just read, repeated on conflict: an overwrite that still learns where
        // it landed (and avoids rs-consul's URL for an unconditioned write, which breaks with a datacenter).
        let key = self.key("clusterdata");
        let deadline = tokio::time::Instant::now() + self.conn.timeout;
        loop {
            let current = self.conn.read(&key, None).await?.entry.map_or(0, |e| e.modify_index);
            if self.conn.write(&key, value, Write { cas: Some(current), ..Write::default() }).await? {
                return self.conn.written_revision(&key, value).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Timeout { key, timeout: self.conn.timeout });
            }
        }
    }

    async fn set_member(&self, kind: MemberKind, id: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let key = self.member_key(kind, id)?;
        self.members.set(&self.conn, &key, value, ttl).await
    }

    async fn delete_member(&self, kind: MemberKind, id: &str) -> StoreResult<()> {
        let key = self.member_key(kind, id)?;
        self.members.delete(&self.conn, &key).await
    }

    async fn list_members(&self, kind: MemberKind) -> StoreResult<Vec<MemberRecord>> {
        let dir = self.member_dir(kind);
        let mut out: Vec<MemberRecord> = self
            .conn
            .list(&dir)
            .await?
            .into_iter()
            .filter_map(|e| {
                let id = e.key.strip_prefix(&dir)?;
                (!id.is_empty() && !id.contains('/')).then(|| MemberRecord { id: id.to_string(), value: e.value })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn watch_cluster_data(&self, after: Option<&Revision>) -> StoreResult<WatchStream> {
        let key = self.key("clusterdata");
        let after = after.map(|rev| expected_index(&key, rev)).transpose()?;
        watch::watch_key(self.conn.clone(), key, after).await
    }

    async fn watch_members(&self, kind: MemberKind) -> StoreResult<MemberWatch> {
        member_watch::watch_members(self.conn.clone(), self.member_dir(kind)).await
    }
}

#[async_trait]
impl Election for ConsulStore {
    async fn campaign(&self, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
        election::campaign(self.conn.clone(), self.key("sentinel-leader"), candidate, ttl).await
    }

    async fn leader(&self) -> StoreResult<Option<String>> {
        election::leader(&self.conn, &self.key("sentinel-leader")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn layout_follows_stolon() {
        let mut c = StoreConfig::new(StoreBackend::Consul, "c1");
        c.prefix = "/stolon/cluster".into();
        let s = ConsulStore::connect(&c).await.unwrap();
        assert_eq!(s.key("clusterdata"), "stolon/cluster/c1/clusterdata");
        assert_eq!(s.member_key(MemberKind::Proxy, "p1").unwrap(), "stolon/cluster/c1/proxies/info/p1");
        assert!(s.member_key(MemberKind::Keeper, "a/b").is_err());
        assert!(s.member_key(MemberKind::Keeper, "").is_err());
    }

    #[tokio::test]
    async fn one_endpoint_only_and_tls_files_need_https() {
        let c = StoreConfig::new(StoreBackend::Consul, "c1").with_endpoints("http://a:1,http://b:2").unwrap();
        let e = ConsulStore::connect(&c).await.err().unwrap().to_string();
        assert!(e.contains("one agent"), "{e}");
        let mut c = StoreConfig::new(StoreBackend::Consul, "c1");
        c.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let e = ConsulStore::connect(&c).await.err().unwrap().to_string();
        assert!(e.contains("https"), "{e}");
        let mut c = StoreConfig::new(StoreBackend::Consul, "c1").with_endpoints("https://a:1").unwrap();
        c.tls.ca_file = Some("/nonexistent/ca.pem".into());
        let e = ConsulStore::connect(&c).await.err().unwrap().to_string();
        assert!(e.contains("--store-ca-file") && e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn blocking_wait_follows_the_timeout_within_bounds() {
        assert_eq!(watch_wait(Duration::from_millis(100)), Duration::from_secs(1));
        assert_eq!(watch_wait(Duration::from_secs(5)), Duration::from_secs(10));
        assert_eq!(watch_wait(Duration::from_secs(600)), Duration::from_secs(300));
    }
}
