//! Watching the cluster document with a Kubernetes watch on its ConfigMap.
//!
//! The watch starts from the state of the ConfigMap at the caller's revision (read exactly at that
//! resourceVersion), so that changes of the leader record alone, which share the ConfigMap, are told apart
//! from changes of the document and skipped. When the server ends a watch normally it is reopened from the
//! last resourceVersion seen; `410 Gone` (history compacted) becomes [`WatchEvent::Reset`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, WatchParams};
use kube::core::WatchEvent as KubeEvent;

use super::clusterdata::CLUSTERDATA_ANNOTATION;
use super::{Inner, configmap, errors};
use crate::{Document, Revision, StoreError, StoreResult, WatchEvent, WatchStream};

/// Server-side duration of one watch request, after which it is reopened transparently. It also bounds how
/// long a silent stream is trusted: an API server that stops answering (without closing the connection) is
/// reported once a watch outlives this plus the store timeout.
const WATCH_SECONDS: u32 = 30;

type KubeStream = BoxStream<'static, Result<KubeEvent<ConfigMap>, kube::Error>>;

/// Opens a watch of the document delivering every change after `after` (after "now" when `None`).
pub(crate) async fn watch(inner: Arc<Inner>, after: Option<&Revision>) -> StoreResult<WatchStream> {
    let (rv, last) = match after {
        Some(rev) => match configmap::get_at(&inner, rev).await {
            Ok(cm) => (rev.as_str().to_string(), cm.as_ref().and_then(document_text)),
            // The revision is no longer kept: the caller must read again.
            Err(StoreError::Conflict { .. }) => return Ok(futures::stream::iter([Ok(WatchEvent::Reset)]).boxed()),
            Err(e) => return Err(e),
        },
        None => current(&inner).await?,
    };
    let stream = open(&inner, &rv).await?;
    let state = State { inner, rv, last, stream: Some(stream), pending: VecDeque::new(), done: false };
    Ok(futures::stream::unfold(state, next).boxed())
}

/// The current resourceVersion of the ConfigMap's collection and the document it holds.
async fn current(inner: &Inner) -> StoreResult<(String, Option<String>)> {
    let params = ListParams::default().fields(&format!("metadata.name={}", inner.resource));
    let api = inner.configmaps();
    let list = inner.call(inner.op("list", "configmaps", Some(&inner.resource)), api.list(&params)).await?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    Ok((rv, list.items.first().and_then(document_text)))
}

fn document_text(cm: &ConfigMap) -> Option<String> {
    configmap::annotation(cm, CLUSTERDATA_ANNOTATION).map(str::to_string)
}

/// Starts a watch request from `rv`.
async fn open(inner: &Inner, rv: &str) -> StoreResult<KubeStream> {
    let params = WatchParams::default().fields(&format!("metadata.name={}", inner.resource)).timeout(WATCH_SECONDS);
    let api = inner.configmaps();
    let op = inner.op("watch", "configmaps", Some(&inner.resource));
    Ok(inner.call(op, api.watch(&params, rv)).await?.boxed())
}

struct State {
    inner: Arc<Inner>,
    /// The last resourceVersion seen, to reopen from.
    rv: String,
    /// The document as of `rv`.
    last: Option<String>,
    stream: Option<KubeStream>,
    pending: VecDeque<StoreResult<WatchEvent>>,
    done: bool,
}

impl State {
    fn fail(&mut self, e: StoreResult<WatchEvent>) {
        self.pending.push_back(e);
        self.done = true;
    }

    /// Records the ConfigMap's new state; queues an event if the document changed.
    fn observe(&mut self, cm: &ConfigMap, deleted: bool) {
        let Some(rv) = cm.metadata.resource_version.clone() else { return };
        self.rv = rv.clone();
        let now = if deleted { None } else { document_text(cm) };
        if now == self.last {
            return;
        }
        self.last = now.clone();
        self.pending.push_back(Ok(match now {
            Some(text) => WatchEvent::Put(Document { value: text.into_bytes(), revision: Revision::new(rv) }),
            None => WatchEvent::Deleted { revision: Revision::new(rv) },
        }));
    }
}

async fn next(mut st: State) -> Option<(StoreResult<WatchEvent>, State)> {
    loop {
        if let Some(ev) = st.pending.pop_front() {
            return Some((ev, st));
        }
        if st.done {
            return None;
        }
        let Some(stream) = st.stream.as_mut() else {
            match open(&st.inner, &st.rv).await {
                Ok(s) => st.stream = Some(s),
                Err(e) if errors::is_gone(&e) => st.fail(Ok(WatchEvent::Reset)),
                Err(e) => st.fail(Err(e)),
            }
            continue;
        };
        let silence = Duration::from_secs(u64::from(WATCH_SECONDS)) + st.inner.timeout;
        let Ok(item) = tokio::time::timeout(silence, stream.next()).await else {
            let reason = format!("the watch of configmaps/{} was not closed after {silence:?}", st.inner.resource);
            st.fail(Err(errors::unavailable(&st.inner.server, &reason)));
            continue;
        };
        match item {
            // Ended by the server (its watch timeout): reopen from where we are.
            None => st.stream = None,
            Some(Err(e)) => {
                let op = st.inner.op("watch", "configmaps", Some(&st.inner.resource));
                let err = errors::map_err(e, op, &st.inner.server);
                st.fail(Err(err));
            }
            Some(Ok(KubeEvent::Added(cm) | KubeEvent::Modified(cm))) => st.observe(&cm, false),
            Some(Ok(KubeEvent::Deleted(cm))) => st.observe(&cm, true),
            Some(Ok(KubeEvent::Bookmark(b))) => st.rv = b.metadata.resource_version,
            Some(Ok(KubeEvent::Error(status))) => {
                let op = st.inner.op("watch", "configmaps", Some(&st.inner.resource));
                let err = errors::map_status(status.code, &status.reason, &status.message, op, &st.inner.server);
                if errors::is_gone(&err) {
                    st.fail(Ok(WatchEvent::Reset));
                } else {
                    st.fail(Err(err));
                }
            }
        }
    }
}
