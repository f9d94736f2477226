//! Watching the cluster document with etcd's watch API.

use std::collections::VecDeque;

use etcd_client::{EventType, WatchOptions};
use futures::StreamExt;

use super::{Conn, document};
use crate::{Revision, StoreError, StoreResult, WatchEvent, WatchStream};

/// Opens a watch on `key` delivering every change from revision `start` (0: from now).
pub(crate) async fn watch_key(conn: &Conn, key: String, start: i64) -> StoreResult<WatchStream> {
    let mut opts = WatchOptions::new().with_progress_notify();
    if start > 0 {
        opts = opts.with_start_revision(start);
    }
    let stream = conn.call(&key, |mut c, k| async move { c.watch(k, Some(opts)).await }).await?;
    let state = State { stream, pending: VecDeque::new(), done: false, key, endpoints: conn.endpoints.to_string() };
    Ok(futures::stream::unfold(state, next).boxed())
}

struct State {
    stream: etcd_client::WatchStream,
    pending: VecDeque<StoreResult<WatchEvent>>,
    done: bool,
    key: String,
    endpoints: String,
}

async fn next(mut st: State) -> Option<(StoreResult<WatchEvent>, State)> {
    loop {
        if let Some(ev) = st.pending.pop_front() {
            return Some((ev, st));
        }
        if st.done {
            return None;
        }
        match st.stream.message().await {
            Err(e) => {
                st.done = true;
                st.pending.push_back(Err(super::errors::map_err(e, &st.key, &st.endpoints)));
            }
            Ok(None) => {
                st.done = true;
                st.pending.push_back(Err(StoreError::Unavailable {
                    endpoints: st.endpoints.clone(),
                    reason: format!("watch on {} closed by the server", st.key),
                }));
            }
            Ok(Some(resp)) if resp.canceled() => {
                st.done = true;
                if resp.compact_revision() > 0 {
                    st.pending.push_back(Ok(WatchEvent::Reset));
                } else {
                    st.pending.push_back(Err(StoreError::Backend {
                        key: st.key.clone(),
                        reason: format!("watch canceled: {}", resp.cancel_reason()),
                    }));
                }
            }
            Ok(Some(resp)) => {
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    st.pending.push_back(Ok(match ev.event_type() {
                        EventType::Put => WatchEvent::Put(document(kv)),
                        EventType::Delete => {
                            WatchEvent::Deleted { revision: Revision::from_index(kv.mod_revision() as u64) }
                        }
                    }));
                }
            }
        }
    }
}
