//! The etcd v2 backend (the HTTP keys API, `/v2/keys`), wire-compatible with stolon's etcdv2 store.
//!
//! Layout under `P = /<prefix>/<cluster>` (etcd v2 implies the leading `/`): `P/clusterdata` (revision =
//! the node's modifiedIndex), TTL keys `P/{keepers,sentinels,proxies}/info/<id>`, and the leader key
//! `P/sentinel-leader` whose value is the leading sentinel's id. Reads are quorum reads. etcd 3.4 serves
//! this API only with `--enable-v2=true`; etcd 3.6 removed it.

mod election;
mod errors;
mod http;
mod kv;
mod member_watch;
mod members;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use self::http::{Call, Http, Key};
use crate::etcdv3::check_member_id;
use crate::{
    Capabilities, Document, Election, Leadership, MemberExpiry, MemberKind, MemberRecord, MemberWatch, Revision, Store,
    StoreBackend, StoreConfig, StoreError, StoreResult, WatchDelivery, WatchStream,
};

/// The smallest TTL used for member records and the leader key. etcd v2 TTLs are whole seconds and expired
/// keys are removed by a sweep every 500 ms, so 1 s would leave a refresh every third of it no margin.
pub const MIN_TTL: Duration = Duration::from_secs(2);

/// A [`Store`] on etcd's v2 keys API.
pub struct EtcdV2Store {
    http: Arc<Http>,
    /// `P`, the cluster directory.
    path: Key,
    published: members::Published,
}

impl EtcdV2Store {
    /// Prepares a client for the endpoints of `config`. Nothing is sent until the first request, except that
    /// a missing v2 API is detected here (one quorum read, bounded by the store timeout) when the store
    /// answers; an unreachable store fails the first request instead.
    pub async fn connect(config: &StoreConfig) -> StoreResult<Self> {
        let store = EtcdV2Store {
            http: Arc::new(Http::new(config)?),
            path: Key::new(&config.cluster_path()),
            published: members::Published::default(),
        };
        match kv::get(&store.http, &store.clusterdata_key()).await {
            Ok(_) | Err(StoreError::Unavailable { .. } | StoreError::Timeout { .. }) => Ok(store),
            Err(e) => Err(e),
        }
    }

    fn clusterdata_key(&self) -> Key {
        self.path.child("clusterdata")
    }

    fn leader_key(&self) -> Key {
        self.path.child("sentinel-leader")
    }

    fn member_dir(&self, kind: MemberKind) -> Key {
        self.path.child(kind.key_segment()).child("info")
    }

    fn member_key(&self, kind: MemberKind, id: &str) -> StoreResult<Key> {
        check_member_id(id)?;
        Ok(self.member_dir(kind).child(id))
    }
}

#[async_trait]
impl Store for EtcdV2Store {
    fn backend(&self) -> StoreBackend {
        StoreBackend::EtcdV2
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
        let (node, _) = kv::get(&self.http, &self.clusterdata_key()).await?;
        node.map(|n| n.document()).transpose()
    }

    async fn put_cluster_data_cas(&self, value: &[u8], expected: Option<&Revision>) -> StoreResult<Revision> {
        let key = self.clusterdata_key();
        let text = kv::text(&key, value)?;
        let call = match expected {
            None => Call::put(&key).query("prevExist", false),
            // Like stolon, compare the index only: a large prevValue would be sent back to etcd in full.
            Some(rev) => Call::put(&key).query("prevExist", true).query("prevIndex", kv::index_of(&key, rev)?),
        };
        match kv::write(&self.http, call.form("value", text)).await {
            Ok(node) => Ok(Revision::from_index(node.modified_index)),
            Err(StoreError::NotFound { key }) => {
                Err(StoreError::Conflict { key, reason: "the document was deleted since it was read".into() })
            }
            Err(e) => Err(e),
        }
    }

    async fn put_cluster_data(&self, value: &[u8]) -> StoreResult<Revision> {
        let key = self.clusterdata_key();
        let text = kv::text(&key, value)?;
        let node = kv::write(&self.http, Call::put(&key).form("value", text)).await?;
        Ok(Revision::from_index(node.modified_index))
    }

    async fn set_member(&self, kind: MemberKind, id: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let key = self.member_key(kind, id)?;
        self.published.set(&self.http, &key, value, members::ttl_secs(ttl, MIN_TTL)).await
    }

    async fn delete_member(&self, kind: MemberKind, id: &str) -> StoreResult<()> {
        let key = self.member_key(kind, id)?;
        self.published.delete(&self.http, &key).await
    }

    async fn list_members(&self, kind: MemberKind) -> StoreResult<Vec<MemberRecord>> {
        members::list(&self.http, &self.member_dir(kind)).await
    }

    async fn watch_cluster_data(&self, after: Option<&Revision>) -> StoreResult<WatchStream> {
        let key = self.clusterdata_key();
        let wait_index = match after {
            Some(rev) => kv::index_of(&key, rev)? + 1,
            None => kv::get(&self.http, &key).await?.1 + 1,
        };
        Ok(watch::watch_key(self.http.clone(), key, wait_index))
    }

    async fn watch_members(&self, kind: MemberKind) -> StoreResult<MemberWatch> {
        member_watch::watch_members(self.http.clone(), self.member_dir(kind)).await
    }
}

#[async_trait]
impl Election for EtcdV2Store {
    async fn campaign(&self, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
        let ttl = members::ttl_secs(ttl, MIN_TTL);
        election::campaign(self.http.clone(), self.leader_key(), candidate, ttl).await
    }

    async fn leader(&self) -> StoreResult<Option<String>> {
        election::leader(&self.http, &self.leader_key()).await
    }
}
