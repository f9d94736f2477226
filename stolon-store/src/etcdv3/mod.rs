//! The etcd v3 backend (gRPC, with etcd-client), wire-compatible with stolon's etcdv3 store.
//!
//! Layout under `P = <prefix>/<cluster>` (used literally, no leading slash added):
//! `P/clusterdata`, `P/{keepers,sentinels,proxies}/info/<id>` (attached to leases), and the election keys
//! `P/sentinel-leader/<lease id in hex>` of etcd's concurrency election.

mod election;
mod errors;
mod lease;
mod member_lease;
mod member_watch;
mod tls;
mod watch;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};

use crate::timeout::bounded;
use crate::{
    Capabilities, Document, Election, Leadership, MemberExpiry, MemberKind, MemberRecord, MemberWatch, Revision, Store,
    StoreBackend, StoreConfig, StoreError, StoreResult, WatchDelivery, WatchStream,
};
use member_lease::MemberLeases;

/// etcd refuses leases shorter than about 1.5 s (its minimum lease TTL); TTLs are rounded up to this.
pub const MIN_TTL: Duration = Duration::from_secs(2);

/// A [`Store`] on etcd's v3 API.
pub struct EtcdV3Store {
    conn: Conn,
    path: String,
    /// The member records we publish and their leases.
    member_leases: MemberLeases,
}

/// How often an open stream (a watch, a lease keep-alive) probes the connection: above etcd's default
/// `--grpc-keepalive-min-time` of 5 s.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

impl EtcdV3Store {
    /// Connects to the endpoints of `config`. The connection is made lazily: an unreachable store fails the
    /// first request (within the store timeout), not this call, unless authentication is configured.
    pub async fn connect(config: &StoreConfig) -> StoreResult<Self> {
        let endpoints: Vec<String> = config.effective_endpoints().iter().map(|e| e.url()).collect();
        let joined = endpoints.join(",");
        let mut opts = ConnectOptions::new()
            .with_timeout(config.timeout)
            .with_connect_timeout(config.timeout)
            // etcd answers pings more often than its --grpc-keepalive-min-time (5 s by default), or on a
            // connection without streams, with GOAWAY "too_many_pings", which cancels every request in flight.
            .with_keep_alive(KEEP_ALIVE_INTERVAL, config.timeout)
            .with_keep_alive_while_idle(false)
            // A member cut off from its cluster's quorum then refuses requests with "no leader" at once, and
            // ends open watches after three election timeouts: without it, requests wait for the timeout
            // and a watch stays open and silent while the majority goes on changing the cluster.
            .with_require_leader(true);
        let https = if config.uses_tls() {
            Some(tls::channel(config, KEEP_ALIVE_INTERVAL)?)
        } else if config.tls.ca_file.is_some() || config.tls.cert_file.is_some() {
            return Err(StoreError::Config(
                "TLS files were given but --store-endpoints use http; use https:// endpoints".into(),
            ));
        } else {
            None
        };
        if let Some(user) = &config.username {
            opts = opts.with_user(user.clone(), config.password.clone().unwrap_or_default());
        }
        let client = bounded(config.timeout, "connect", async {
            let client = match https {
                Some(channel) => Client::from_channel(etcd_client::Channel::Tonic(channel), Some(opts)).await,
                None => Client::connect(&endpoints, Some(opts)).await,
            };
            client.map_err(|e| errors::map_err(e, "connect", &joined))
        })
        .await?;
        Ok(EtcdV3Store {
            conn: Conn { client, timeout: config.timeout, endpoints: joined.into() },
            path: config.cluster_path(),
            member_leases: MemberLeases::default(),
        })
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.path)
    }

    fn member_prefix(&self, kind: MemberKind) -> String {
        self.key(&format!("{}/info/", kind.key_segment()))
    }
}

/// A cheap, cloneable connection: the client, the request bound and the endpoints for error messages.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) timeout: Duration,
    pub(crate) endpoints: std::sync::Arc<str>,
}

impl Conn {
    /// Runs one etcd request on a clone of the client, bounded by the store timeout, mapping its error.
    pub(crate) async fn call<T, F, Fut>(&self, key: &str, f: F) -> StoreResult<T>
    where
        F: FnOnce(Client, String) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let fut = f(self.client.clone(), key.to_string());
        bounded(self.timeout, key, async { fut.await.map_err(|e| errors::map_err(e, key, &self.endpoints)) }).await
    }
}

/// Rounds a TTL up to whole seconds, at least [`MIN_TTL`].
pub(crate) fn ttl_secs(ttl: Duration) -> i64 {
    let ttl = ttl.max(MIN_TTL);
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn document(kv: &etcd_client::KeyValue) -> Document {
    Document { value: kv.value().to_vec(), revision: Revision::from_index(kv.mod_revision() as u64) }
}

fn expected_index(key: &str, rev: &Revision) -> StoreResult<i64> {
    rev.index().and_then(|i| i64::try_from(i).ok()).ok_or_else(|| StoreError::InvalidData {
        key: key.to_string(),
        reason: format!("revision {rev} is not an etcd revision"),
    })
}

#[async_trait]
impl Store for EtcdV3Store {
    fn backend(&self) -> StoreBackend {
        StoreBackend::EtcdV3
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            member_expiry: MemberExpiry::Ttl,
            min_ttl: MIN_TTL,
            watch: WatchDelivery::EveryChange,
            max_document_size: None,
        }
    }

    async fn get_cluster_data(&self) -> StoreResult<Option<Document>> {
        let key = self.key("clusterdata");
        let resp = self.conn.call(&key, |mut c, k| async move { c.get(k, None).await }).await?;
        Ok(resp.kvs().first().map(document))
    }

    async fn put_cluster_data_cas(&self, value: &[u8], expected: Option<&Revision>) -> StoreResult<Revision> {
        let key = self.key("clusterdata");
        let compare = match expected {
            None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
            Some(rev) => Compare::mod_revision(key.as_str(), CompareOp::Equal, expected_index(&key, rev)?),
        };
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(key.as_str(), value.to_vec(), None)]);
        let resp = self.conn.call(&key, |mut c, _| async move { c.txn(txn).await }).await?;
        if !resp.succeeded() {
            let reason = match expected {
                None => "the document already exists (create-only put)".to_string(),
                Some(rev) => format!("the document changed since revision {rev}"),
            };
            return Err(StoreError::Conflict { key, reason });
        }
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
        Ok(Revision::from_index(rev as u64))
    }

    async fn put_cluster_data(&self, value: &[u8]) -> StoreResult<Revision> {
        let key = self.key("clusterdata");
        let value = value.to_vec();
        let resp = self.conn.call(&key, |mut c, k| async move { c.put(k, value, None).await }).await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or_default();
        Ok(Revision::from_index(rev as u64))
    }

    async fn set_member(&self, kind: MemberKind, id: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        check_member_id(id)?;
        let key = format!("{}{id}", self.member_prefix(kind));
        self.member_leases.set(&self.conn, &key, value, ttl_secs(ttl)).await
    }

    async fn delete_member(&self, kind: MemberKind, id: &str) -> StoreResult<()> {
        check_member_id(id)?;
        let key = format!("{}{id}", self.member_prefix(kind));
        self.conn.call(&key, |mut c, k| async move { c.delete(k, None).await }).await?;
        self.member_leases.forget(&self.conn, &key).await;
        Ok(())
    }

    async fn list_members(&self, kind: MemberKind) -> StoreResult<Vec<MemberRecord>> {
        let prefix = self.member_prefix(kind);
        let opts = GetOptions::new().with_prefix();
        let resp = self.conn.call(&prefix, |mut c, k| async move { c.get(k, Some(opts)).await }).await?;
        let mut out: Vec<MemberRecord> = resp.kvs().iter().filter_map(|kv| member_watch::record(&prefix, kv)).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn watch_cluster_data(&self, after: Option<&Revision>) -> StoreResult<WatchStream> {
        let key = self.key("clusterdata");
        let start = match after {
            Some(rev) => expected_index(&key, rev)? + 1,
            None => 0,
        };
        watch::watch_key(&self.conn, key, start).await
    }

    async fn watch_members(&self, kind: MemberKind) -> StoreResult<MemberWatch> {
        member_watch::watch_members(&self.conn, self.member_prefix(kind)).await
    }
}

#[async_trait]
impl Election for EtcdV3Store {
    async fn campaign(&self, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
        election::campaign(self, candidate, ttl).await
    }

    async fn leader(&self) -> StoreResult<Option<String>> {
        election::leader(self).await
    }
}

/// Member ids become key segments: refuse empty ids and ids with a `/`.
pub(crate) fn check_member_id(id: &str) -> StoreResult<()> {
    if id.is_empty() || id.contains('/') {
        return Err(StoreError::InvalidData {
            key: id.to_string(),
            reason: "member id must be non-empty and must not contain '/'".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_rounded_up_to_whole_seconds_and_floored() {
        assert_eq!(ttl_secs(Duration::from_millis(100)), 2);
        assert_eq!(ttl_secs(Duration::from_secs(20)), 20);
        assert_eq!(ttl_secs(Duration::from_millis(20_001)), 21);
    }

    #[test]
    fn member_ids_cannot_escape_their_directory() {
        assert!(check_member_id("keeper0").is_ok());
        assert!(check_member_id("").is_err());
        assert!(check_member_id("a/b").is_err());
    }
}
