//! Typed access to the coordination store: [`ClusterStore`] wraps any [`Store`] and (de)serialises the
//! cluster model, so that components deal in [`ClusterData`] and infos, never in bytes. The watch-fed copies
//! of the cluster data ([`cluster_data_view`]) and of member records ([`member_view`]) spare the readers a
//! store request per use.

pub mod cluster_data_view;
pub mod member_view;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use stolon_store::{Document, MemberKind, MemberRecord, Revision, Store, StoreError, WatchStream};

use self::cluster_data_view::ClusterDataView;

use crate::cluster::{ClusterData, KeeperInfo, ModelError, ProxyInfo, SentinelInfo, decode_json};

/// Member records never get a TTL below this (stolon's `MinTTL`: Consul halves session TTLs and refuses
/// less than 10 s).
pub const MIN_MEMBER_TTL: Duration = Duration::from_secs(20);

/// TTL of a keeper's info: max(sleepInterval, 20 s).
pub fn keeper_info_ttl(sleep_interval: Duration) -> Duration {
    sleep_interval.max(MIN_MEMBER_TTL)
}

/// TTL of a sentinel's info: max(2 x sleepInterval, 20 s).
pub fn sentinel_info_ttl(sleep_interval: Duration) -> Duration {
    (sleep_interval * 2).max(MIN_MEMBER_TTL)
}

/// TTL of a proxy's info: max(2 x proxyTimeout, 20 s).
pub fn proxy_info_ttl(proxy_timeout: Duration) -> Duration {
    (proxy_timeout * 2).max(MIN_MEMBER_TTL)
}

/// Failures of typed store access.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStoreError {
    /// The store itself failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored document could not be decoded (or encoded).
    #[error("store key {key}: {source}")]
    Model {
        /// The store key (or record) whose content is wrong.
        key: String,
        /// What is wrong with it.
        #[source]
        source: ModelError,
    },
}

impl ClusterStoreError {
    /// True when a compare-and-swap lost.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ClusterStoreError::Store(e) if e.is_conflict())
    }
}

/// Cluster data as read, with the revision to hand back for a compare-and-swap write.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedClusterData {
    /// The decoded document.
    pub data: ClusterData,
    /// Its revision in the store.
    pub revision: Revision,
}

/// A member info that names its owner (the key of [`Infos::valid`]).
pub trait MemberInfo: DeserializeOwned {
    /// The owner's UID as written in the info.
    fn member_uid(&self) -> &str;
}

impl MemberInfo for KeeperInfo {
    fn member_uid(&self) -> &str {
        &self.uid
    }
}

impl MemberInfo for SentinelInfo {
    fn member_uid(&self) -> &str {
        &self.uid
    }
}

impl MemberInfo for ProxyInfo {
    fn member_uid(&self) -> &str {
        &self.uid
    }
}

/// Member infos of one kind, decoded; records that could not be decoded are reported, not dropped silently.
#[derive(Debug, Clone)]
pub struct Infos<T> {
    /// Decoded infos by the UID they carry (on Kubernetes the record's id is the pod name, so the UID in the
    /// info is what identifies a keeper, sentinel or proxy, as in stolon; a record without a UID is listed
    /// under its record id).
    pub valid: BTreeMap<String, T>,
    /// Member ids whose record could not be decoded, with the reason.
    pub invalid: Vec<(String, String)>,
}

/// Typed access to one cluster in a store.
#[derive(Clone)]
pub struct ClusterStore {
    store: Arc<dyn Store>,
}

impl ClusterStore {
    /// Wraps a store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        ClusterStore { store }
    }

    /// The underlying store (elections, watches, raw access).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Reads the cluster data. `None` when absent or when the stored JSON is the literal `null`. An
    /// unsupported format version or a malformed document is an error naming the key.
    pub async fn cluster_data(&self) -> Result<Option<VersionedClusterData>, ClusterStoreError> {
        let doc = self.store.get_cluster_data().await?;
        self.decode_cluster_data(doc)
    }

    /// The cluster data and a watch of every later change to it: no write falls between the read and the
    /// watch, also when there is no cluster data yet ([`cluster_data_view::read_then_watch`]).
    pub async fn cluster_data_and_watch(
        &self,
    ) -> Result<(Option<VersionedClusterData>, WatchStream), ClusterStoreError> {
        let (doc, stream) = cluster_data_view::read_then_watch(self.store.as_ref()).await?;
        Ok((self.decode_cluster_data(doc)?, stream))
    }

    /// The cluster data as `view` holds it while its watch is live, else read from the store like
    /// [`ClusterStore::cluster_data`].
    pub async fn cluster_data_via(
        &self,
        view: &ClusterDataView,
    ) -> Result<Option<VersionedClusterData>, ClusterStoreError> {
        match view.document() {
            Some(doc) => self.decode_cluster_data(doc),
            None => self.cluster_data().await,
        }
    }

    /// Decodes a stored cluster document (absent or `null`: `None`).
    pub fn decode_cluster_data(
        &self,
        doc: Option<Document>,
    ) -> Result<Option<VersionedClusterData>, ClusterStoreError> {
        let Some(doc) = doc else { return Ok(None) };
        let data = ClusterData::from_json(&doc.value).map_err(|source| self.model_err(source))?;
        Ok(data.map(|data| VersionedClusterData { data, revision: doc.revision }))
    }

    /// Compare-and-swap write: create-only when `expected` is `None`.
    pub async fn put_cluster_data_cas(
        &self,
        data: &ClusterData,
        expected: Option<&Revision>,
    ) -> Result<Revision, ClusterStoreError> {
        let bytes = data.to_json().map_err(|source| self.model_err(source))?;
        Ok(self.store.put_cluster_data_cas(&bytes, expected).await?)
    }

    /// Unconditional write.
    pub async fn put_cluster_data(&self, data: &ClusterData) -> Result<Revision, ClusterStoreError> {
        let bytes = data.to_json().map_err(|source| self.model_err(source))?;
        Ok(self.store.put_cluster_data(&bytes).await?)
    }

    /// Publishes a keeper's info.
    pub async fn set_keeper_info(&self, info: &KeeperInfo, ttl: Duration) -> Result<(), ClusterStoreError> {
        self.set_member(MemberKind::Keeper, &info.uid, info, ttl).await
    }

    /// Publishes a sentinel's info.
    pub async fn set_sentinel_info(&self, info: &SentinelInfo, ttl: Duration) -> Result<(), ClusterStoreError> {
        self.set_member(MemberKind::Sentinel, &info.uid, info, ttl).await
    }

    /// Publishes a proxy's info.
    pub async fn set_proxy_info(&self, info: &ProxyInfo, ttl: Duration) -> Result<(), ClusterStoreError> {
        self.set_member(MemberKind::Proxy, &info.uid, info, ttl).await
    }

    /// The live keeper infos.
    pub async fn keeper_infos(&self) -> Result<Infos<KeeperInfo>, ClusterStoreError> {
        self.members(MemberKind::Keeper, "keeperinfo").await
    }

    /// The live sentinel infos.
    pub async fn sentinel_infos(&self) -> Result<Infos<SentinelInfo>, ClusterStoreError> {
        self.members(MemberKind::Sentinel, "sentinelinfo").await
    }

    /// The live proxy infos.
    pub async fn proxy_infos(&self) -> Result<Infos<ProxyInfo>, ClusterStoreError> {
        self.members(MemberKind::Proxy, "proxyinfo").await
    }

    /// The current leader sentinel's UID.
    pub async fn leader(&self) -> Result<Option<String>, ClusterStoreError> {
        Ok(self.store.leader().await?)
    }

    /// Watches the cluster data after `after` (raw events; decode with [`ClusterData::from_json`]).
    pub async fn watch_cluster_data(&self, after: Option<&Revision>) -> Result<WatchStream, ClusterStoreError> {
        Ok(self.store.watch_cluster_data(after).await?)
    }

    async fn set_member<T: Serialize>(
        &self,
        kind: MemberKind,
        id: &str,
        info: &T,
        ttl: Duration,
    ) -> Result<(), ClusterStoreError> {
        let bytes = serde_json::to_vec(info).map_err(|e| ClusterStoreError::Model {
            key: format!("{kind} {id}"),
            source: ModelError::Serialize { what: "member info", message: e.to_string() },
        })?;
        Ok(self.store.set_member(kind, id, &bytes, ttl).await?)
    }

    async fn members<T: MemberInfo>(
        &self,
        kind: MemberKind,
        what: &'static str,
    ) -> Result<Infos<T>, ClusterStoreError> {
        Ok(decode_infos(kind, what, self.store.list_members(kind).await?))
    }

    fn model_err(&self, source: ModelError) -> ClusterStoreError {
        ClusterStoreError::Model { key: "clusterdata".into(), source }
    }
}

/// Decodes keeper infos from member records (as listed or as a [`member_view::MemberView`] holds them).
pub fn decode_keeper_infos(records: Vec<MemberRecord>) -> Infos<KeeperInfo> {
    decode_infos(MemberKind::Keeper, "keeperinfo", records)
}

/// Decodes proxy infos from member records (as listed or as a [`member_view::MemberView`] holds them).
pub fn decode_proxy_infos(records: Vec<MemberRecord>) -> Infos<ProxyInfo> {
    decode_infos(MemberKind::Proxy, "proxyinfo", records)
}

fn decode_infos<T: MemberInfo>(kind: MemberKind, what: &'static str, records: Vec<MemberRecord>) -> Infos<T> {
    let mut infos = Infos { valid: BTreeMap::new(), invalid: Vec::new() };
    for record in records {
        match decode_json::<T>(what, &record.value) {
            Ok(info) => {
                let uid = match info.member_uid() {
                    "" => record.id,
                    uid => uid.to_string(),
                };
                infos.valid.insert(uid, info);
            }
            Err(e) => {
                tracing::warn!(kind = %kind, id = %record.id, error = %e, "ignoring undecodable member record");
                infos.invalid.push((record.id, e.to_string()));
            }
        }
    }
    infos
}
