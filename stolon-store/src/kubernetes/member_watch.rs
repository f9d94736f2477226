//! Watching member records with a Kubernetes watch on the cluster's pods of one kind (label selector
//! `component=<kind>,stolon-cluster=<cluster>`), from the resourceVersion of the listing. A pod that gains a
//! `stolon-status` annotation or changes it gives [`MemberEvent::Put`]; a pod deleted (or that loses the
//! annotation, or its labels) gives [`MemberEvent::Removed`]. Changes of other pod fields are skipped. When
//! the server ends a watch request normally it is reopened from the last resourceVersion seen; `410 Gone`
//! (history compacted) becomes [`MemberEvent::Reset`]. Needs the `watch` verb on pods.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchParams};
use kube::core::WatchEvent as KubeEvent;

use super::members::{STATUS_ANNOTATION, selector};
use super::{Inner, errors};
use crate::{MemberEvent, MemberKind, MemberRecord, MemberWatch, StoreResult};

/// Server-side duration of one watch request, as for the document watch (see its module).
const WATCH_SECONDS: u32 = 30;

const RESOURCE: &str = "pods";

type KubeStream = BoxStream<'static, Result<KubeEvent<Pod>, kube::Error>>;

/// Lists this cluster's pods of `kind` and watches them from the listing's resourceVersion.
pub(crate) async fn watch_members(inner: Arc<Inner>, kind: MemberKind) -> StoreResult<MemberWatch> {
    let selector = selector(&inner, kind);
    let params = ListParams::default().labels(&selector);
    let api = inner.pods();
    let list = inner.call(inner.op("list", RESOURCE, None), api.list(&params)).await?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    let last: BTreeMap<String, String> = list.items.iter().filter_map(status).collect();
    let records = last.iter().map(|(id, v)| MemberRecord { id: id.clone(), value: v.clone().into_bytes() }).collect();
    let stream = open(&inner, &selector, &rv).await?;
    let state = State { inner, selector, rv, last, stream: Some(stream), pending: VecDeque::new(), done: false };
    Ok(MemberWatch { records, events: futures::stream::unfold(state, next).boxed() })
}

/// The pod's name and member record, when it has one.
fn status(pod: &Pod) -> Option<(String, String)> {
    let name = pod.metadata.name.clone()?;
    let value = pod.metadata.annotations.as_ref()?.get(STATUS_ANNOTATION)?.clone();
    Some((name, value))
}

/// Starts a watch request from `rv`.
async fn open(inner: &Inner, selector: &str, rv: &str) -> StoreResult<KubeStream> {
    let params = WatchParams::default().labels(selector).timeout(WATCH_SECONDS);
    let api = inner.pods();
    Ok(inner.call(inner.op("watch", RESOURCE, None), api.watch(&params, rv)).await?.boxed())
}

struct State {
    inner: Arc<Inner>,
    selector: String,
    /// The last resourceVersion seen, to reopen from.
    rv: String,
    /// The records as of `rv`, by pod name.
    last: BTreeMap<String, String>,
    stream: Option<KubeStream>,
    pending: VecDeque<StoreResult<MemberEvent>>,
    done: bool,
}

impl State {
    fn fail(&mut self, e: StoreResult<MemberEvent>) {
        self.pending.push_back(e);
        self.done = true;
    }

    /// Records a pod's new state; queues an event if its record changed.
    fn observe(&mut self, pod: &Pod, deleted: bool) {
        if let Some(rv) = pod.metadata.resource_version.clone() {
            self.rv = rv;
        }
        let Some(name) = pod.metadata.name.clone() else { return };
        let now = if deleted { None } else { status(pod).map(|(_, v)| v) };
        if let Some(ev) = change(&mut self.last, name, now) {
            self.pending.push_back(Ok(ev));
        }
    }
}

/// Applies the record `now` of pod `name` to `last`; the event when it changed.
fn change(last: &mut BTreeMap<String, String>, name: String, now: Option<String>) -> Option<MemberEvent> {
    match now {
        Some(value) if last.get(&name) != Some(&value) => {
            last.insert(name.clone(), value.clone());
            Some(MemberEvent::Put(MemberRecord { id: name, value: value.into_bytes() }))
        }
        Some(_) => None,
        None => last.remove(&name).map(|_| MemberEvent::Removed { id: name }),
    }
}

async fn next(mut st: State) -> Option<(StoreResult<MemberEvent>, State)> {
    loop {
        if let Some(ev) = st.pending.pop_front() {
            return Some((ev, st));
        }
        if st.done {
            return None;
        }
        let Some(stream) = st.stream.as_mut() else {
            match open(&st.inner, &st.selector, &st.rv).await {
                Ok(s) => st.stream = Some(s),
                Err(e) if errors::is_gone(&e) => st.fail(Ok(MemberEvent::Reset)),
                Err(e) => st.fail(Err(e)),
            }
            continue;
        };
        let silence = Duration::from_secs(u64::from(WATCH_SECONDS)) + st.inner.timeout;
        let Ok(item) = tokio::time::timeout(silence, stream.next()).await else {
            let reason = format!("the watch of {RESOURCE} ({}) was not closed after {silence:?}", st.selector);
            st.fail(Err(errors::unavailable(&st.inner.server, &reason)));
            continue;
        };
        match item {
            // Ended by the server (its watch timeout): reopen from where we are.
            None => st.stream = None,
            Some(Err(e)) => {
                let err = errors::map_err(e, st.inner.op("watch", RESOURCE, None), &st.inner.server);
                st.fail(Err(err));
            }
            Some(Ok(KubeEvent::Added(pod) | KubeEvent::Modified(pod))) => st.observe(&pod, false),
            Some(Ok(KubeEvent::Deleted(pod))) => st.observe(&pod, true),
            Some(Ok(KubeEvent::Bookmark(b))) => st.rv = b.metadata.resource_version,
            Some(Ok(KubeEvent::Error(status))) => {
                let op = st.inner.op("watch", RESOURCE, None);
                let err = errors::map_status(status.code, &status.reason, &status.message, op, &st.inner.server);
                if errors::is_gone(&err) {
                    st.fail(Ok(MemberEvent::Reset));
                } else {
                    st.fail(Err(err));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_record_changes_are_events() {
        let mut last = BTreeMap::new();
        let put = |v: &str| MemberEvent::Put(MemberRecord { id: "p".into(), value: v.as_bytes().to_vec() });
        assert_eq!(change(&mut last, "p".into(), None), None, "a pod without a record");
        assert_eq!(change(&mut last, "p".into(), Some("a".into())), Some(put("a")));
        assert_eq!(change(&mut last, "p".into(), Some("a".into())), None, "another field of the pod changed");
        assert_eq!(change(&mut last, "p".into(), Some("b".into())), Some(put("b")));
        assert_eq!(change(&mut last, "p".into(), None), Some(MemberEvent::Removed { id: "p".into() }));
        assert!(last.is_empty());
    }
}
