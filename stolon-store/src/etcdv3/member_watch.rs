//! Watching member records with etcd's watch API: one range read of the kind's prefix, then a prefix watch
//! from the revision of that read, so that no change falls between the listing and the stream.

use std::collections::VecDeque;

use etcd_client::{EventType, GetOptions, KeyValue, WatchOptions};
use futures::StreamExt;

use super::Conn;
use crate::{MemberEvent, MemberRecord, MemberWatch, StoreError, StoreResult};

/// Lists the records under `prefix` and watches them from the revision of the listing.
pub(crate) async fn watch_members(conn: &Conn, prefix: String) -> StoreResult<MemberWatch> {
    let opts = GetOptions::new().with_prefix();
    let resp = conn.call(&prefix, |mut c, k| async move { c.get(k, Some(opts)).await }).await?;
    let listed_at = resp.header().map(|h| h.revision()).unwrap_or_default();
    let mut records: Vec<MemberRecord> = resp.kvs().iter().filter_map(|kv| record(&prefix, kv)).collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let opts = WatchOptions::new().with_prefix().with_start_revision(listed_at + 1);
    let stream = conn.call(&prefix, |mut c, k| async move { c.watch(k, Some(opts)).await }).await?;
    let state = State { stream, pending: VecDeque::new(), done: false, prefix, endpoints: conn.endpoints.to_string() };
    Ok(MemberWatch { records, events: futures::stream::unfold(state, next).boxed() })
}

/// The member id of `key` under `prefix`: one non-empty path segment.
fn member_id(prefix: &str, key: &[u8]) -> Option<String> {
    let id = key.strip_prefix(prefix.as_bytes())?;
    let id = String::from_utf8(id.to_vec()).ok()?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The member record stored in `kv`, if `kv` is one directly under `prefix`.
pub(crate) fn record(prefix: &str, kv: &KeyValue) -> Option<MemberRecord> {
    Some(MemberRecord { id: member_id(prefix, kv.key())?, value: kv.value().to_vec() })
}

struct State {
    stream: etcd_client::WatchStream,
    pending: VecDeque<StoreResult<MemberEvent>>,
    done: bool,
    prefix: String,
    endpoints: String,
}

impl State {
    fn end(&mut self, last: StoreResult<MemberEvent>) {
        self.done = true;
        self.pending.push_back(last);
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
        match st.stream.message().await {
            Err(e) => {
                let err = super::errors::map_err(e, &st.prefix, &st.endpoints);
                st.end(Err(err));
            }
            Ok(None) => {
                let reason = format!("watch on {} closed by the server", st.prefix);
                st.end(Err(StoreError::Unavailable { endpoints: st.endpoints.clone(), reason }));
            }
            Ok(Some(resp)) if resp.canceled() => {
                if resp.compact_revision() > 0 {
                    st.end(Ok(MemberEvent::Reset));
                } else {
                    let reason = format!("watch canceled: {}", resp.cancel_reason());
                    st.end(Err(StoreError::Backend { key: st.prefix.clone(), reason }));
                }
            }
            Ok(Some(resp)) => {
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let Some(id) = member_id(&st.prefix, kv.key()) else { continue };
                    st.pending.push_back(Ok(match ev.event_type() {
                        EventType::Put => MemberEvent::Put(MemberRecord { id, value: kv.value().to_vec() }),
                        EventType::Delete => MemberEvent::Removed { id },
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_direct_children_are_members() {
        let p = "stolon/cluster/c1/keepers/info/";
        assert_eq!(member_id(p, b"stolon/cluster/c1/keepers/info/k1").as_deref(), Some("k1"));
        assert_eq!(member_id(p, b"stolon/cluster/c1/keepers/info/"), None);
        assert_eq!(member_id(p, b"stolon/cluster/c1/keepers/info/a/b"), None);
        assert_eq!(member_id(p, b"stolon/cluster/c1x/keepers/info/k1"), None);
    }
}
