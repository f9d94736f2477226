//! stolon-store: the coordination store of stolon-rs.
//!
//! The store knows nothing of PostgreSQL. It keeps, for one cluster (`<prefix>/<cluster-name>`):
//! - one **cluster document** with a revision, written with compare-and-swap;
//! - **member records** that components publish about themselves and that disappear when their owner is gone;
//! - a **leader election** among sentinels;
//! - **watches** of the cluster document and of the member records.
//!
//! [`Store`] and [`Election`] state the contract; the `conformance` crate checks every backend against it
//! with real servers. [`connect`] builds the backend chosen by [`StoreConfig::backend`].

pub mod agent_client;
mod backend;
mod config;
pub mod consul;
mod election;
mod error;
pub mod etcdv2;
pub mod etcdv3;
pub mod kubernetes;
mod model;
pub mod refresh;
mod timeout;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use backend::StoreBackend;
pub use config::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, Endpoint, KubeConfig, Scheme, StoreConfig, TlsConfig};
pub use election::{Election, Leadership, LeadershipEnd, LeadershipState, ResignSignal};
pub use error::{StoreError, StoreResult};
pub use model::{
    Capabilities, Document, MemberEvent, MemberExpiry, MemberKind, MemberRecord, Revision, WatchDelivery, WatchEvent,
};
pub use tls::TlsFlags;

/// A stream of changes to the cluster document. An `Err` item means the watch broke and the stream ends
/// after it: read the document again and start a new watch from its revision.
pub type WatchStream = BoxStream<'static, StoreResult<WatchEvent>>;

/// A stream of changes to the member records of one kind. An `Err` item means the watch broke and the stream
/// ends after it: watch again (which lists the records anew).
pub type MemberStream = BoxStream<'static, StoreResult<MemberEvent>>;

/// A member watch: the live records of one kind when it started, and every change after them.
pub struct MemberWatch {
    /// The live records when the watch started, sorted by id (what [`Store::list_members`] returns).
    pub records: Vec<MemberRecord>,
    /// The changes after `records`, in order.
    pub events: MemberStream,
}

impl std::fmt::Debug for MemberWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberWatch").field("records", &self.records).finish_non_exhaustive()
    }
}

/// The storage contract of one cluster. Every method is bounded by the configured store timeout, except
/// [`Election::campaign`] (which blocks until elected) and the streams returned by
/// [`Store::watch_cluster_data`] and [`Store::watch_members`]; an unreachable store yields [`StoreError::Unavailable`] or
/// [`StoreError::Timeout`], never a hang.
///
/// Semantics (checked by the conformance suite):
/// - **Cluster document.** [`Store::get_cluster_data`] returns `None` when absent. A compare-and-swap put
///   with `expected = None` succeeds only if the document does not exist; with `Some(rev)` only if the
///   document's current revision is `rev`; otherwise it fails with [`StoreError::Conflict`] and changes
///   nothing. Every successful put returns the new revision, which a following CAS put accepts.
///   [`Store::put_cluster_data`] writes unconditionally. Values up to at least 1 MiB are stored intact.
/// - **Member records.** [`Store::set_member`] creates or refreshes a record that disappears when its owner is
///   gone: on TTL backends when `ttl` passes without a refresh (see [`Capabilities`]); on Kubernetes when
///   the owner's pod is deleted. [`Store::list_members`] lists the live records of one kind of this cluster
///   only (other clusters, even with a name that is a prefix of this one, are never listed).
/// - **Watch.** [`Store::watch_cluster_data`] delivers, in order, every change with a revision after
///   `after` (or after "now" when `None`), coalesced to the newest value on backends that declare
///   [`WatchDelivery::Coalescing`], or a [`WatchEvent::Reset`] when the store cannot.
/// - **Member watch.** [`Store::watch_members`] returns the live records of one kind together with a stream
///   that delivers, in order, every change after that listing: [`MemberEvent::Put`] when a record appears or
///   its value changes, [`MemberEvent::Removed`] when it is deleted, expires or its owner's pod goes away
///   (coalesced on [`WatchDelivery::Coalescing`] backends), or a [`MemberEvent::Reset`] when the store cannot.
///   Applying the events to the listing gives what [`Store::list_members`] would return. Records of other
///   kinds and clusters never appear. A refresh that leaves a record's value unchanged need not be delivered.
/// - **Outages.** After the server comes back, the same `Store` value serves requests again.
#[async_trait]
pub trait Store: Election + Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> StoreBackend;

    /// What this backend can and cannot do.
    fn capabilities(&self) -> Capabilities;

    /// Reads the cluster document and its revision; `None` when there is none.
    async fn get_cluster_data(&self) -> StoreResult<Option<Document>>;

    /// Compare-and-swap write of the cluster document: create-only when `expected` is `None`, else only if the
    /// current revision equals `expected`. Returns the new revision.
    async fn put_cluster_data_cas(&self, value: &[u8], expected: Option<&Revision>) -> StoreResult<Revision>;

    /// Unconditional write of the cluster document (for `stolonctl init` and `clusterdata write -y`).
    async fn put_cluster_data(&self, value: &[u8]) -> StoreResult<Revision>;

    /// Creates or refreshes the member record `id` of `kind`, expiring `ttl` after its last refresh on TTL
    /// backends.
    async fn set_member(&self, kind: MemberKind, id: &str, value: &[u8], ttl: Duration) -> StoreResult<()>;

    /// Removes a member record at once (clean shutdown). Removing a missing record is not an error.
    async fn delete_member(&self, kind: MemberKind, id: &str) -> StoreResult<()>;

    /// Lists the live member records of `kind`, sorted by id.
    async fn list_members(&self, kind: MemberKind) -> StoreResult<Vec<MemberRecord>>;

    /// Watches the cluster document for changes after `after`.
    async fn watch_cluster_data(&self, after: Option<&Revision>) -> StoreResult<WatchStream>;

    /// Sets (`Some(value)`) or removes (`None`) labels on this process's own member, where the platform
    /// selects members by label (Kubernetes: labels of the component's own pod, `POD_NAME`, so that a Service
    /// can select pods by them). Returns whether the backend keeps member labels: backends without them (etcd,
    /// Consul) change nothing and return `false`. The labels a backend finds its members by are refused.
    async fn set_member_labels(&self, labels: &[(&str, Option<&str>)]) -> StoreResult<bool> {
        let _ = labels;
        Ok(false)
    }

    /// Lists the live member records of `kind` and watches them for changes after that listing.
    async fn watch_members(&self, kind: MemberKind) -> StoreResult<MemberWatch>;
}

/// Builds the store chosen by `config.backend`, after validating the configuration.
pub async fn connect(config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
    config.validate()?;
    match config.backend {
        StoreBackend::EtcdV2 => Ok(Arc::new(etcdv2::EtcdV2Store::connect(config).await?)),
        StoreBackend::Consul => Ok(Arc::new(consul::ConsulStore::connect(config).await?)),
        StoreBackend::EtcdV3 => Ok(Arc::new(etcdv3::EtcdV3Store::connect(config).await?)),
        StoreBackend::Kubernetes => Ok(Arc::new(kubernetes::KubeStore::connect(config).await?)),
    }
}
