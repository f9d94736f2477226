//! Member records: the annotation `stolon-status` on each component's own pod, found by the labels
//! `component=<stolon-keeper|stolon-sentinel|stolon-proxy>` and `stolon-cluster=<cluster>`.
//!
//! A process can only publish on its own pod (`POD_NAME`): the `id` given to [`set`] is not stored (stolon's
//! infos carry their own UID), and [`list`] names records by pod. A record goes away with its pod.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use super::Inner;
use super::config::{CLUSTER_LABEL, COMPONENT_LABEL, missing_pod_name};
use crate::{MemberKind, MemberRecord, StoreError, StoreResult};

/// The pod annotation holding a component's status (KeeperInfo, SentinelInfo or ProxyInfo JSON).
pub const STATUS_ANNOTATION: &str = "stolon-status";

const RESOURCE: &str = "pods";

/// Publishes `value` as the status of this process's pod.
pub(crate) async fn set(inner: &Inner, _kind: MemberKind, _id: &str, value: &[u8]) -> StoreResult<()> {
    let pod = inner.pod_name.as_deref().ok_or_else(missing_pod_name)?;
    let text = std::str::from_utf8(value).map_err(|_| StoreError::InvalidData {
        key: format!("{RESOURCE}/{pod}"),
        reason: "member records are kept in a pod annotation and must be UTF-8 text".into(),
    })?;
    patch_status(inner, pod, Some(text)).await
}

/// Removes a member record: the status of pod `id` when it is a pod of this cluster and kind (as [`list`] names
/// records), else the status of this process's own pod. A missing record or pod is not an error.
pub(crate) async fn delete(inner: &Inner, kind: MemberKind, id: &str) -> StoreResult<()> {
    let target = if inner.pod_name.as_deref() == Some(id) {
        Some(id)
    } else {
        let api = inner.pods();
        let pod = inner.call(inner.op("get", RESOURCE, Some(id)), api.get_opt(id)).await?;
        if pod.as_ref().is_some_and(|p| belongs(inner, kind, p)) { Some(id) } else { inner.pod_name.as_deref() }
    };
    match target {
        None => Ok(()),
        Some(pod) => match patch_status(inner, pod, None).await {
            Err(StoreError::NotFound { .. }) => Ok(()),
            other => other,
        },
    }
}

/// Lists the statuses of this cluster's pods of `kind`, by pod name; pods without a status are skipped.
pub(crate) async fn list(inner: &Inner, kind: MemberKind) -> StoreResult<Vec<MemberRecord>> {
    let params = ListParams::default().labels(&selector(inner, kind));
    let api = inner.pods();
    let pods = inner.call(inner.op("list", RESOURCE, None), api.list(&params)).await?;
    let mut out: Vec<MemberRecord> = pods
        .items
        .into_iter()
        .filter_map(|pod| {
            let name = pod.metadata.name?;
            let value = pod.metadata.annotations?.remove(STATUS_ANNOTATION)?;
            Some(MemberRecord { id: name, value: value.into_bytes() })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The label selector of this cluster's pods of `kind`.
fn selector(inner: &Inner, kind: MemberKind) -> String {
    format!("{COMPONENT_LABEL}={},{CLUSTER_LABEL}={}", kind.component_label(), inner.cluster)
}

fn belongs(inner: &Inner, kind: MemberKind, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(COMPONENT_LABEL) == Some(kind.component_label()) && label(CLUSTER_LABEL) == Some(inner.cluster.as_str())
}

/// Sets or removes the status annotation of `pod` with a JSON merge patch.
async fn patch_status(inner: &Inner, pod: &str, value: Option<&str>) -> StoreResult<()> {
    let patch = json!({ "metadata": { "annotations": { STATUS_ANNOTATION: value } } });
    let api = inner.pods();
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    let fut = api.patch(pod, &params, &patch);
    inner.call(inner.op("patch", RESOURCE, Some(pod)), fut).await.map(|_| ())
}
