//! Watching member records with recursive v2 long polls on the kind's directory: the listing's
//! `X-Etcd-Index` is where the polls start, so that no change falls between the listing and the stream.
//! Expiries arrive as `expire` events. An "index cleared" (more than etcd's 1000 retained events went by
//! during one poll) and a change of the directory itself end the stream with [`MemberEvent::Reset`].

use std::sync::Arc;

use futures::StreamExt;

use super::http::{Http, Key};
use super::kv::{self, Answer};
use super::members;
use super::watch::{Poll, poll, poll_window};
use crate::{MemberEvent, MemberRecord, MemberWatch, StoreResult};

/// Lists the records directly under `dir` and watches them from the index of the listing.
pub(crate) async fn watch_members(http: Arc<Http>, dir: Key) -> StoreResult<MemberWatch> {
    let (node, index) = kv::get(&http, &dir).await?;
    let records = members::records(node);
    let state = State { http, dir, wait_index: index + 1, done: false };
    Ok(MemberWatch { records, events: futures::stream::unfold(state, next).boxed() })
}

struct State {
    http: Arc<Http>,
    dir: Key,
    wait_index: u64,
    done: bool,
}

async fn next(mut st: State) -> Option<(StoreResult<MemberEvent>, State)> {
    let window = poll_window(st.http.timeout);
    while !st.done {
        let ev = match poll(&st.http, &st.dir, st.wait_index, window, true).await {
            Ok(Poll::Event(answer)) => {
                st.wait_index = answer.node.modified_index + 1;
                match to_event(&st.dir, answer) {
                    Some(ev) => ev,
                    None => continue,
                }
            }
            Ok(Poll::Quiet { next_index }) => {
                st.wait_index = next_index;
                continue;
            }
            Ok(Poll::Cleared) => MemberEvent::Reset,
            Err(e) => {
                st.done = true;
                return Some((Err(e), st));
            }
        };
        st.done = ev == MemberEvent::Reset;
        return Some((Ok(ev), st));
    }
    None
}

/// The member event for a change under `dir`: `None` for keys deeper down, a reset when the directory
/// itself or one above it changed (deleted or replaced: the listing must be read again).
fn to_event(dir: &Key, answer: Answer) -> Option<MemberEvent> {
    let dir_name = dir.name();
    let ancestor = dir_name.strip_prefix(&answer.node.key).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if ancestor || answer.node.key == "/" {
        return Some(MemberEvent::Reset);
    }
    let id = answer.node.key.strip_prefix(&dir_name)?.strip_prefix('/')?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let id = id.to_string();
    if answer.is_removal() {
        return Some(MemberEvent::Removed { id });
    }
    match (answer.node.dir, answer.node.value) {
        (false, Some(value)) => Some(MemberEvent::Put(MemberRecord { id, value: value.into_bytes() })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Answer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn events_of_direct_children_only() {
        let dir = Key::new("stolon/cluster/c1/keepers/info");
        let put = answer(
            r#"{"action":"set","node":{"key":"/stolon/cluster/c1/keepers/info/k1","value":"v","modifiedIndex":5}}"#,
        );
        assert_eq!(to_event(&dir, put), Some(MemberEvent::Put(MemberRecord { id: "k1".into(), value: b"v".to_vec() })));
        for action in ["delete", "compareAndDelete", "expire"] {
            let gone = answer(&format!(
                r#"{{"action":"{action}","node":{{"key":"/stolon/cluster/c1/keepers/info/k1","modifiedIndex":6}}}}"#
            ));
            assert_eq!(to_event(&dir, gone), Some(MemberEvent::Removed { id: "k1".into() }), "{action}");
        }
        let deeper = answer(
            r#"{"action":"set","node":{"key":"/stolon/cluster/c1/keepers/info/a/b","value":"v","modifiedIndex":7}}"#,
        );
        assert_eq!(to_event(&dir, deeper), None);
        let whole = answer(
            r#"{"action":"delete","node":{"key":"/stolon/cluster/c1/keepers/info","dir":true,"modifiedIndex":8}}"#,
        );
        assert_eq!(to_event(&dir, whole), Some(MemberEvent::Reset));
        let cluster = answer(r#"{"action":"delete","node":{"key":"/stolon/cluster/c1","dir":true,"modifiedIndex":9}}"#);
        assert_eq!(to_event(&dir, cluster), Some(MemberEvent::Reset));
        let sibling =
            answer(r#"{"action":"delete","node":{"key":"/stolon/cluster/c1/keepers/inf","modifiedIndex":9}}"#);
        assert_eq!(to_event(&dir, sibling), None);
    }
}
