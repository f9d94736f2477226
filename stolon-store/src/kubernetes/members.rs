//! Member records: the annotation `stolon-status` on each component's own pod, found by the labels
//! `component=<stolon-keeper|stolon-sentinel|stolon-proxy>` and `stolon-cluster=<cluster>`.
//!
//! A process can only publish on its own pod (`POD_NAME`): the `id` given to [`set`] is not stored (stolon's
//! infos carry their own UID), and [`list`] names records by pod. A record goes away with its pod. The pod is
//! patched only when the record's value changed, or once a minute when it did not ([`crate::refresh`]):
//! rewriting an unchanged annotation every few seconds only loads the API server (stolon's #463).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use super::Inner;
use super::config::{CLUSTER_LABEL, COMPONENT_LABEL, missing_pod_name};
use crate::refresh::Published;
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
    let mut published = inner.published.lock().await;
    let now = tokio::time::Instant::now();
    if let Some(p) = published.as_mut()
        && !p.plan(value, now).write
    {
        return Ok(());
    }
    patch_status(inner, pod, Some(text)).await?;
    match published.as_mut() {
        Some(p) => p.written(value, now),
        // No lease on Kubernetes: the TTL only fills the field.
        None => *published = Some(Published::new(value, std::time::Duration::ZERO, now)),
    }
    Ok(())
}

/// Removes a member record: the status of pod `id` when it is a pod of this cluster and kind (as [`list`] names
/// records), else the status of this process's own pod. A missing record or pod is not an error.
pub(crate) async fn delete(inner: &Inner, kind: MemberKind, id: &str) -> StoreResult<()> {
    *inner.published.lock().await = None;
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

/// Sets or removes labels of this process's own pod with a JSON merge patch. The labels members are listed by
/// ([`COMPONENT_LABEL`], [`CLUSTER_LABEL`]) are refused, and so are keys or values the API server would reject.
pub(crate) async fn set_labels(inner: &Inner, labels: &[(&str, Option<&str>)]) -> StoreResult<()> {
    let pod = inner.pod_name.as_deref().ok_or_else(missing_pod_name)?;
    let mut patch = serde_json::Map::new();
    for (key, value) in labels {
        check_label(key, *value)
            .map_err(|reason| StoreError::InvalidData { key: format!("{RESOURCE}/{pod}"), reason })?;
        patch.insert(key.to_string(), value.map_or(serde_json::Value::Null, |v| json!(v)));
    }
    if patch.is_empty() {
        return Ok(());
    }
    let patch = json!({ "metadata": { "labels": patch } });
    let api = inner.pods();
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    let fut = api.patch(pod, &params, &patch);
    inner.call(inner.op("patch", RESOURCE, Some(pod)), fut).await.map(|_| ())
}

/// Why a label cannot be set: a membership label, or a key or value Kubernetes does not accept (keys: an
/// optional DNS prefix and `/`, then a name of at most 63 characters; values: at most 63 characters).
fn check_label(key: &str, value: Option<&str>) -> Result<(), String> {
    if key == COMPONENT_LABEL || key == CLUSTER_LABEL {
        return Err(format!("label {key:?} names the pod's membership and cannot be changed as a member label"));
    }
    let name = key.rsplit_once('/').map_or(key, |(prefix, name)| if prefix.is_empty() { "" } else { name });
    if !label_name_ok(name) {
        return Err(format!("label key {key:?} is not a valid Kubernetes label key"));
    }
    if let Some(v) = value {
        if !(v.is_empty() || label_name_ok(v)) {
            return Err(format!("label {key:?}: value {v:?} is not a valid Kubernetes label value"));
        }
    }
    Ok(())
}

/// A label name or non-empty value: at most 63 characters, alphanumerics, `-`, `_` and `.`, starting and
/// ending with an alphanumeric.
fn label_name_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.len() <= 63
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
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
pub(crate) fn selector(inner: &Inner, kind: MemberKind) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_labels_are_checked() {
        assert!(check_label("stolon-role", Some("master")).is_ok());
        assert!(check_label("stolon-role", None).is_ok());
        assert!(check_label("example.com/role", Some("")).is_ok());
        assert!(check_label(COMPONENT_LABEL, Some("x")).unwrap_err().contains("membership"));
        assert!(check_label(CLUSTER_LABEL, None).unwrap_err().contains("membership"));
        assert!(check_label("bad key", Some("x")).unwrap_err().contains("key"));
        assert!(check_label("/role", Some("x")).is_err());
        assert!(check_label("role", Some("-x")).unwrap_err().contains("value"));
        assert!(check_label("role", Some(&"a".repeat(64))).is_err());
    }
}
