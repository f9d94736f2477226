//! `stolonctl init`: create a new cluster (a new cluster UID and fresh cluster data) from a spec.
//!
//! Unlike stolon, which overwrites blindly, the write is a compare-and-swap against what was shown to the
//! user: create-only when the store was empty, else on the revision read. A concurrent change makes the
//! init fail without writing.

use stolon_store::Revision;

use super::current::{ExistingClusterData, existing_cluster_data};
use super::error::CtlError;
use super::spec::parse_spec;
use crate::cluster::{ClusterData, ClusterInitMode, ClusterSpec, new_uid};
use crate::store::ClusterStore;
use crate::time::Timestamp;

/// The spec used when none is given: `{"initMode":"new"}`.
pub fn default_init_spec() -> ClusterSpec {
    ClusterSpec { init_mode: Some(ClusterInitMode::New), ..ClusterSpec::default() }
}

/// A validated init, ready to be confirmed and applied.
#[derive(Debug, Clone)]
pub struct InitPlan {
    /// The spec of the new cluster.
    pub spec: ClusterSpec,
    /// The cluster data the init replaces, if any.
    pub replaces: Option<ExistingClusterData>,
}

impl InitPlan {
    /// The warnings to show before asking for confirmation.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(existing) = &self.replaces {
            w.push(format!("WARNING: The current cluster data will be removed: {}", existing.description));
        }
        w.push(
            "WARNING: The databases managed by the keepers will be overwritten depending on the provided cluster spec."
                .to_string(),
        );
        w
    }
}

/// Parses and validates the spec given by the user; `None` gives [`default_init_spec`].
pub fn init_spec(input: Option<&[u8]>) -> Result<ClusterSpec, CtlError> {
    match input {
        Some(input) => parse_spec(input),
        None => Ok(default_init_spec()),
    }
}

/// Validates `spec` and reads what the init would replace. Writes nothing.
pub async fn plan_init(store: &ClusterStore, spec: ClusterSpec) -> Result<InitPlan, CtlError> {
    spec.validate().map_err(CtlError::InvalidSpec)?;
    let replaces = existing_cluster_data(store).await?;
    Ok(InitPlan { spec, replaces })
}

/// What an applied init created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    /// The UID of the new cluster.
    pub cluster_uid: String,
    /// The revision of the new cluster data.
    pub revision: Revision,
}

/// Writes fresh cluster data for `plan` with a new cluster UID. Fails with
/// [`CtlError::ChangedSinceRead`] if the store changed since [`plan_init`].
pub async fn apply_init(store: &ClusterStore, plan: &InitPlan) -> Result<InitOutcome, CtlError> {
    let cluster_uid = new_uid();
    let data = ClusterData::new_initial(cluster_uid.clone(), plan.spec.clone(), Timestamp::now());
    let expected = plan.replaces.as_ref().map(|e| &e.revision);
    match store.put_cluster_data_cas(&data, expected).await {
        Ok(revision) => Ok(InitOutcome { cluster_uid, revision }),
        Err(e) if e.is_conflict() => Err(CtlError::ChangedSinceRead),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_new_and_valid() {
        let s = default_init_spec();
        assert_eq!(serde_json::to_value(&s).unwrap()["initMode"], "new");
        s.validate().unwrap();
    }

    #[test]
    fn warnings_say_what_is_replaced() {
        let mut plan = InitPlan { spec: default_init_spec(), replaces: None };
        assert_eq!(plan.warnings().len(), 1);
        plan.replaces =
            Some(ExistingClusterData { revision: Revision::from_index(7), description: "cluster abc".into() });
        let w = plan.warnings();
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("cluster abc"), "{w:?}");
    }
}
