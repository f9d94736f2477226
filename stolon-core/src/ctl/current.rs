//! Reading the cluster data an operation starts from.

use stolon_store::Revision;

use super::error::CtlError;
use crate::cluster::ClusterData;
use crate::store::{ClusterStore, VersionedClusterData};

/// Reads the cluster data and requires it to be usable: present, of the supported format version
/// (checked by [`ClusterStore::cluster_data`]) and with a valid spec.
pub async fn usable_cluster_data(store: &ClusterStore) -> Result<VersionedClusterData, CtlError> {
    let current = store.cluster_data().await?.ok_or(CtlError::NoClusterData)?;
    current.data.cluster.spec.validate().map_err(CtlError::StoredSpecInvalid)?;
    Ok(current)
}

/// What is in the store before an operation that replaces the whole cluster data (`init`,
/// `clusterdata write`), described for the confirmation prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingClusterData {
    /// The revision to replace (the compare-and-swap expects it).
    pub revision: Revision,
    /// A one-line description: cluster UID, phase, keepers, DBs and master, or why it cannot be decoded.
    pub description: String,
}

/// Reads whatever cluster data the store holds, even data this version cannot decode (which an `init`
/// may legitimately replace). `None` when there is none.
pub async fn existing_cluster_data(store: &ClusterStore) -> Result<Option<ExistingClusterData>, CtlError> {
    let doc = store.store().get_cluster_data().await.map_err(crate::store::ClusterStoreError::from)?;
    Ok(doc.map(|doc| {
        let description = match ClusterData::from_json(&doc.value) {
            Ok(Some(cd)) => describe(&cd),
            Ok(None) => "an empty (null) cluster data document".to_string(),
            Err(e) => format!("cluster data this version cannot read ({e})"),
        };
        ExistingClusterData { revision: doc.revision, description }
    }))
}

/// One line describing a cluster data document.
pub fn describe(cd: &ClusterData) -> String {
    let phase = cd.cluster.status.phase.as_ref().map_or("unknown".to_string(), |p| p.to_string());
    let master = cd.master_db().map_or("none".to_string(), |db| format!("keeper {}", db.spec.keeper_uid));
    format!(
        "cluster {} (phase {phase}, {} keepers, {} dbs, master: {master})",
        if cd.cluster.uid.is_empty() { "<no uid>" } else { &cd.cluster.uid },
        cd.keepers.len(),
        cd.dbs.len()
    )
}
