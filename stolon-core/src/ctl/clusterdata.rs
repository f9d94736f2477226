//! `stolonctl clusterdata read|write`: dump the whole cluster data, or load it (e.g. into a new store).

use stolon_store::Revision;

use super::current::{ExistingClusterData, existing_cluster_data, usable_cluster_data};
use super::error::CtlError;
use super::json::to_tab_indented;
use crate::cluster::{CURRENT_FORMAT_VERSION, ClusterData, ModelError};
use crate::store::ClusterStore;

/// The current cluster data as JSON: compact, or tab-indented when `pretty`.
pub async fn read_cluster_data(store: &ClusterStore, pretty: bool) -> Result<String, CtlError> {
    let current = usable_cluster_data(store).await?;
    let out = if pretty {
        to_tab_indented(&current.data).map_err(|e| encode_err(e.to_string()))?
    } else {
        let bytes = current.data.to_json().map_err(CtlError::InvalidClusterData)?;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(out)
}

fn encode_err(message: String) -> CtlError {
    CtlError::InvalidClusterData(ModelError::Serialize { what: "clusterdata", message })
}

/// Parses cluster data given by the user and checks it before any write: JSON of the right shape, the
/// supported format version, and a valid spec.
pub fn parse_cluster_data(input: &[u8]) -> Result<ClusterData, CtlError> {
    let data = match ClusterData::from_json(input) {
        Ok(Some(data)) => data,
        Ok(None) => {
            return Err(CtlError::InvalidInput { what: "cluster data", message: "the document is null".into() });
        }
        Err(e @ ModelError::UnsupportedFormatVersion { .. }) => return Err(CtlError::InvalidClusterData(e)),
        Err(e) => return Err(CtlError::input("cluster data", e)),
    };
    data.cluster.spec.validate().map_err(CtlError::InvalidSpec)?;
    Ok(data)
}

/// A validated cluster data write, ready to be applied.
#[derive(Debug, Clone)]
pub struct WritePlan {
    /// The data to write.
    pub data: ClusterData,
    /// The cluster data it replaces, if any.
    pub replaces: Option<ExistingClusterData>,
}

/// Checks `data` (format version and spec, as [`parse_cluster_data`] does) and reads what it would replace.
/// Writes nothing.
pub async fn plan_write(store: &ClusterStore, data: ClusterData) -> Result<WritePlan, CtlError> {
    if data.format_version != CURRENT_FORMAT_VERSION {
        return Err(CtlError::InvalidClusterData(ModelError::UnsupportedFormatVersion {
            found: data.format_version,
            supported: CURRENT_FORMAT_VERSION,
        }));
    }
    data.cluster.spec.validate().map_err(CtlError::InvalidSpec)?;
    let replaces = existing_cluster_data(store).await?;
    Ok(WritePlan { data, replaces })
}

/// Writes the planned cluster data with compare-and-swap against what [`plan_write`] read. Replacing
/// existing data needs `allow_replace`.
pub async fn apply_write(store: &ClusterStore, plan: &WritePlan, allow_replace: bool) -> Result<Revision, CtlError> {
    if plan.replaces.is_some() && !allow_replace {
        return Err(CtlError::ClusterDataExists);
    }
    let expected = plan.replaces.as_ref().map(|e| &e.revision);
    match store.put_cluster_data_cas(&plan.data, expected).await {
        Ok(revision) => Ok(revision),
        Err(e) if e.is_conflict() => Err(CtlError::ChangedSinceRead),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_before_writing() {
        assert!(matches!(parse_cluster_data(b"null"), Err(CtlError::InvalidInput { .. })));
        assert!(matches!(parse_cluster_data(b"{oops"), Err(CtlError::InvalidInput { .. })));
        let v2 = br#"{"formatVersion":2,"cluster":{"spec":{"initMode":"new"}}}"#;
        let e = parse_cluster_data(v2).unwrap_err();
        assert!(e.to_string().contains("format version 2"), "{e}");
        let bad_spec = br#"{"formatVersion":1,"cluster":{"spec":{"initMode":"new","maxStandbys":0}}}"#;
        assert!(matches!(parse_cluster_data(bad_spec), Err(CtlError::InvalidSpec(_))));
        let ok = br#"{"formatVersion":1,"cluster":{"uid":"c0ffee00","spec":{"initMode":"new"}}}"#;
        assert_eq!(parse_cluster_data(ok).unwrap().cluster.uid, "c0ffee00");
    }
}
