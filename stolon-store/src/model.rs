//! Plain values exchanged with a store: revisions, documents, member records, watch events.

use std::fmt;

/// An opaque version of the cluster document, as the backend reports it: etcd's mod revision, etcd v2's
/// modifiedIndex, Consul's ModifyIndex, or Kubernetes' resourceVersion. Only meaningful to the store that
/// returned it; compare-and-swap puts and watches take it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision(String);

impl Revision {
    /// A revision from a backend's opaque token.
    pub fn new(token: impl Into<String>) -> Self {
        Revision(token.into())
    }

    /// A revision from a numeric index (etcd, Consul).
    pub fn from_index(index: u64) -> Self {
        Revision(index.to_string())
    }

    /// The numeric index, when the backend's revisions are numbers.
    pub fn index(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The raw token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cluster document as stored, with the revision to use for a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The raw bytes (the ClusterData JSON for stolon).
    pub value: Vec<u8>,
    /// The revision at which `value` was read or written.
    pub revision: Revision,
}

/// The three kinds of component that publish member records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberKind {
    /// A keeper's KeeperInfo.
    Keeper,
    /// A sentinel's SentinelInfo.
    Sentinel,
    /// A proxy's ProxyInfo.
    Proxy,
}

impl MemberKind {
    /// Every kind.
    pub const ALL: [MemberKind; 3] = [MemberKind::Keeper, MemberKind::Sentinel, MemberKind::Proxy];

    /// The key segment on KV stores: `<cluster path>/<segment>/info/<id>`.
    pub fn key_segment(self) -> &'static str {
        match self {
            MemberKind::Keeper => "keepers",
            MemberKind::Sentinel => "sentinels",
            MemberKind::Proxy => "proxies",
        }
    }

    /// The Kubernetes `component` label value of this kind's pods.
    pub fn component_label(self) -> &'static str {
        match self {
            MemberKind::Keeper => "stolon-keeper",
            MemberKind::Sentinel => "stolon-sentinel",
            MemberKind::Proxy => "stolon-proxy",
        }
    }
}

impl fmt::Display for MemberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberKind::Keeper => "keeper",
            MemberKind::Sentinel => "sentinel",
            MemberKind::Proxy => "proxy",
        })
    }
}

/// One published member record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member id (keeper UID, sentinel UID, proxy UID; the pod name on Kubernetes).
    pub id: String,
    /// The raw bytes (the component's info JSON).
    pub value: Vec<u8>,
}

/// A change to the cluster document seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The document was written; `revision` is the new one.
    Put(Document),
    /// The document was deleted at `revision`.
    Deleted {
        /// The revision of the deletion.
        revision: Revision,
    },
    /// The store could not deliver every change since the requested revision (history compacted, index
    /// cleared, watch expired). The stream ends after it: read the document again and watch from there.
    Reset,
}

/// A change to the member records of one kind, seen by a member watch ([`crate::Store::watch_members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A record appeared or its value changed; carries the new value. A refresh that leaves the value
    /// unchanged may deliver nothing.
    Put(MemberRecord),
    /// The record `id` disappeared: deleted, expired, or its owner's pod is gone.
    Removed {
        /// The member id.
        id: String,
    },
    /// The store could not deliver every change since the watch started (history compacted, index cleared,
    /// watch expired). The stream ends after it: watch again, which lists the records anew.
    Reset,
}

/// How a backend makes member records disappear when their owner is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberExpiry {
    /// Records expire when their TTL passes without a refresh (etcd, Consul).
    Ttl,
    /// Records live on the owner's pod and disappear when the pod is deleted; TTLs are ignored (Kubernetes).
    OwnerDeleted,
}

/// What a backend can and cannot do, declared so that the conformance suite tests each behaviour the way the
/// backend provides it instead of skipping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// How member records disappear.
    pub member_expiry: MemberExpiry,
    /// The smallest TTL the backend honours for member records and leadership (Consul sessions: 10 s).
    pub min_ttl: std::time::Duration,
    /// What a watch delivers.
    pub watch: WatchDelivery,
    /// The largest cluster document the platform stores, when it has a known limit (Kubernetes keeps it in
    /// an annotation, limited to 256 KiB per object; Consul has its agent's `kv_max_value_size`, 512 KiB by
    /// default). Larger documents are refused with [`crate::StoreError::InvalidData`].
    pub max_document_size: Option<usize>,
}

/// What a backend's watches (of the cluster document and of member records) deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchDelivery {
    /// Every change, in order (etcd v3, etcd v2 within its event window, Kubernetes).
    EveryChange,
    /// The latest state after each wake-up: consecutive changes may arrive as one event carrying the newest
    /// value (Consul blocking queries), and a record that appeared and disappeared between two wake-ups may
    /// not be seen at all. Order is still preserved.
    Coalescing,
}
