//! Requests on the cluster's ConfigMap `stolon-cluster-<cluster>`, shared by the cluster document, the
//! election and the watch.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, PostParams, VersionMatch};
use kube::core::ObjectMeta;
use serde_json::json;

use super::{Inner, errors};
use crate::{Revision, StoreError, StoreResult};

const RESOURCE: &str = "configmaps";

/// Reads the ConfigMap; `None` when it does not exist.
pub(crate) async fn get(inner: &Inner) -> StoreResult<Option<ConfigMap>> {
    let api = inner.configmaps();
    inner.call(inner.op("get", RESOURCE, Some(&inner.resource)), api.get_opt(&inner.resource)).await
}

/// Reads the ConfigMap as it was at `revision` exactly; `Ok(None)` when it did not exist then, and a
/// [`StoreError::Conflict`] when the API server no longer keeps that revision.
pub(crate) async fn get_at(inner: &Inner, revision: &Revision) -> StoreResult<Option<ConfigMap>> {
    let params = ListParams {
        field_selector: Some(format!("metadata.name={}", inner.resource)),
        resource_version: Some(revision.as_str().to_string()),
        version_match: Some(VersionMatch::Exact),
        ..Default::default()
    };
    let api = inner.configmaps();
    match inner.call(inner.op("list", RESOURCE, Some(&inner.resource)), api.list(&params)).await {
        Ok(list) => Ok(list.items.into_iter().next()),
        // 410 Gone: compacted away, so we cannot tell whether the document changed since.
        Err(e) if errors::is_gone(&e) => Err(StoreError::Conflict {
            key: format!("{RESOURCE}/{}", inner.resource),
            reason: format!("revision {revision} is too old to compare: {e}"),
        }),
        Err(e) => Err(e),
    }
}

/// Creates the ConfigMap holding the one annotation `key = value`; a [`StoreError::Conflict`] if it exists.
pub(crate) async fn create(inner: &Inner, key: &str, value: &str) -> StoreResult<ConfigMap> {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(inner.resource.clone()),
            annotations: Some([(key.to_string(), value.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let api = inner.configmaps();
    inner.call(inner.op("create", RESOURCE, Some(&inner.resource)), api.create(&PostParams::default(), &cm)).await
}

/// Sets (`Some`) or removes (`None`) the annotation `key` with a JSON merge patch, which leaves the other
/// annotations alone. With `precondition`, the patch applies only if the ConfigMap is still at that
/// resourceVersion, else it fails with [`StoreError::Conflict`].
pub(crate) async fn patch_annotation(
    inner: &Inner,
    precondition: Option<&str>,
    key: &str,
    value: Option<&str>,
) -> StoreResult<ConfigMap> {
    let mut metadata = json!({ "annotations": { key: value } });
    if let Some(rv) = precondition {
        metadata["resourceVersion"] = json!(rv);
    }
    let patch = json!({ "metadata": metadata });
    let api = inner.configmaps();
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    let fut = api.patch(&inner.resource, &params, &patch);
    inner.call(inner.op("patch", RESOURCE, Some(&inner.resource)), fut).await
}

/// The value of annotation `key`.
pub(crate) fn annotation<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The ConfigMap's resourceVersion as a revision.
pub(crate) fn revision(inner: &Inner, cm: &ConfigMap) -> StoreResult<Revision> {
    cm.metadata.resource_version.as_deref().filter(|rv| !rv.is_empty()).map(Revision::new).ok_or_else(|| {
        StoreError::InvalidData { key: format!("{RESOURCE}/{}", inner.resource), reason: "no resourceVersion".into() }
    })
}
