//! The cluster document: the annotation `stolon-clusterdata` of the cluster's ConfigMap, written with
//! compare-and-swap on the ConfigMap's resourceVersion.
//!
//! The leader record lives on the same ConfigMap and is renewed every few seconds, which moves the
//! resourceVersion without touching the document. So a CAS whose expected revision is no longer current
//! reads the document as it was at that revision and goes ahead if the document itself is unchanged (as
//! stolon compares the document's bytes); the write then carries the current resourceVersion as a
//! precondition, so nothing written in between is lost.

use std::time::Duration;

use super::{Inner, configmap};
use crate::{Document, Revision, StoreError, StoreResult};

/// The ConfigMap annotation holding the cluster document.
pub const CLUSTERDATA_ANNOTATION: &str = "stolon-clusterdata";

/// How many times a write is retried when the ConfigMap changed between our read and our write.
const ATTEMPTS: usize = 10;

/// The condition of a put.
pub(crate) enum Mode<'a> {
    /// Only if there is no document yet.
    CreateOnly,
    /// Only if the document is unchanged since this revision.
    Expect(&'a Revision),
    /// Unconditionally.
    Always,
}

/// Reads the document; `None` when the ConfigMap or its annotation is missing.
pub(crate) async fn get(inner: &Inner) -> StoreResult<Option<Document>> {
    let Some(cm) = configmap::get(inner).await? else { return Ok(None) };
    let Some(value) = configmap::annotation(&cm, CLUSTERDATA_ANNOTATION) else { return Ok(None) };
    Ok(Some(Document { value: value.as_bytes().to_vec(), revision: configmap::revision(inner, &cm)? }))
}

/// Writes the document under `mode`; returns the new revision.
pub(crate) async fn put(inner: &Inner, value: &[u8], mode: Mode<'_>) -> StoreResult<Revision> {
    let key = format!("configmaps/{}", inner.resource);
    let text = std::str::from_utf8(value).map_err(|_| StoreError::InvalidData {
        key: key.clone(),
        reason: "the document is kept in an annotation and must be UTF-8 text".into(),
    })?;
    let conflict = |reason: String| StoreError::Conflict { key: key.clone(), reason };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
        }
        let Some(cm) = configmap::get(inner).await? else {
            if let Mode::Expect(rev) = mode {
                return Err(conflict(format!("the document expected at revision {rev} does not exist")));
            }
            match configmap::create(inner, CLUSTERDATA_ANNOTATION, text).await {
                Ok(created) => return configmap::revision(inner, &created),
                // Created by someone else meanwhile (the document or just the leader record): look again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        };
        let current_rv = configmap::revision(inner, &cm)?;
        let current = configmap::annotation(&cm, CLUSTERDATA_ANNOTATION);
        let precondition = match mode {
            Mode::Always => None,
            Mode::CreateOnly => {
                if current.is_some() {
                    return Err(conflict("the document already exists (create-only put)".into()));
                }
                Some(current_rv.as_str())
            }
            Mode::Expect(rev) => {
                if current.is_none() {
                    return Err(conflict(format!("the document expected at revision {rev} does not exist")));
                }
                if current_rv != *rev && !unchanged_since(inner, rev, current).await? {
                    return Err(conflict(format!("the document changed since revision {rev}")));
                }
                Some(current_rv.as_str())
            }
        };
        match configmap::patch_annotation(inner, precondition, CLUSTERDATA_ANNOTATION, Some(text)).await {
            Ok(written) => return configmap::revision(inner, &written),
            // The ConfigMap moved between our read and our write (maybe only the leader record): look again.
            Err(StoreError::Conflict { .. }) => continue,
            // Deleted between our read and our write.
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(conflict(format!("the ConfigMap kept changing during {ATTEMPTS} attempts")))
}

/// True when the document at `rev` equals `current`.
async fn unchanged_since(inner: &Inner, rev: &Revision, current: Option<&str>) -> StoreResult<bool> {
    let then = configmap::get_at(inner, rev).await?;
    let old = then.as_ref().and_then(|cm| configmap::annotation(cm, CLUSTERDATA_ANNOTATION));
    Ok(old.is_some() && old == current)
}
