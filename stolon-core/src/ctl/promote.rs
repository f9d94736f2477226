//! `stolonctl promote`: turn a standby cluster into a primary cluster (spec role master).

use super::error::CtlError;
use super::retry::{Decision, MAX_ATTEMPTS, Modified, modify_cluster_data};
use crate::cluster::{ClusterRole, ClusterSpec};
use crate::store::ClusterStore;

/// What [`promote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoteOutcome {
    /// The spec role was set to master.
    Promoted,
    /// The spec role already was master; nothing was written.
    AlreadyMaster,
}

/// Sets the spec role to master (spec update rules apply), with compare-and-swap and retries.
pub async fn promote(store: &ClusterStore) -> Result<Modified<PromoteOutcome>, CtlError> {
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        if cd.cluster.spec.role() == ClusterRole::Master {
            return Ok(Decision::Keep(PromoteOutcome::AlreadyMaster));
        }
        let new = ClusterSpec { role: Some(ClusterRole::Master), ..cd.cluster.spec.clone() };
        ClusterSpec::check_update(&cd.cluster.spec, &new).map_err(CtlError::spec_update)?;
        cd.cluster.spec = new;
        Ok(Decision::Write(PromoteOutcome::Promoted))
    })
    .await
}
