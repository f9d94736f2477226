//! Read-modify-write of the cluster data with compare-and-swap, retried when a concurrent writer (usually
//! the sentinel) wins the race.

use stolon_store::Revision;

use super::current::usable_cluster_data;
use super::error::CtlError;
use crate::cluster::ClusterData;
use crate::store::ClusterStore;

/// How many times a read-modify-write is attempted before giving up (stolon: 3).
pub const MAX_ATTEMPTS: usize = 3;

/// What a modification decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    /// Write the modified cluster data.
    Write(T),
    /// Nothing to write (the cluster is already as wanted).
    Keep(T),
}

/// The result of [`modify_cluster_data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified<T> {
    /// What the modification returned.
    pub value: T,
    /// The new revision, `None` when nothing was written.
    pub revision: Option<Revision>,
    /// How many read-modify-write attempts were made (1 without conflicts).
    pub attempts: usize,
}

/// Reads the usable cluster data, applies `change` to a copy and writes it back with compare-and-swap on
/// the revision read. On a conflict everything is done again on fresh data, at most `max_attempts` times.
/// An error from `change` stops at once without writing.
pub async fn modify_cluster_data<T>(
    store: &ClusterStore,
    max_attempts: usize,
    change: impl FnMut(&mut ClusterData) -> Result<Decision<T>, CtlError>,
) -> Result<Modified<T>, CtlError> {
    modify(store, max_attempts, SpecCheck::Required, change).await
}

/// Whether the stored spec must be valid before a modification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpecCheck {
    /// Refuse cluster data whose spec is invalid (as every component does).
    Required,
    /// Accept it: the modification replaces the spec with one it validates itself (`update`), which is
    /// how an operator repairs an invalid spec.
    Skipped,
}

/// [`modify_cluster_data`] with a choice about the stored spec.
pub(crate) async fn modify<T>(
    store: &ClusterStore,
    max_attempts: usize,
    check: SpecCheck,
    mut change: impl FnMut(&mut ClusterData) -> Result<Decision<T>, CtlError>,
) -> Result<Modified<T>, CtlError> {
    for attempt in 1..=max_attempts.max(1) {
        let current = match check {
            SpecCheck::Required => usable_cluster_data(store).await?,
            SpecCheck::Skipped => store.cluster_data().await?.ok_or(CtlError::NoClusterData)?,
        };
        let mut data = current.data;
        let value = match change(&mut data)? {
            Decision::Keep(value) => return Ok(Modified { value, revision: None, attempts: attempt }),
            Decision::Write(value) => value,
        };
        match store.put_cluster_data_cas(&data, Some(&current.revision)).await {
            Ok(revision) => return Ok(Modified { value, revision: Some(revision), attempts: attempt }),
            Err(e) if e.is_conflict() => {
                tracing::debug!(attempt, "cluster data changed concurrently, retrying");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CtlError::TooManyConflicts { attempts: max_attempts.max(1) })
}
