//! Watching a key with v2 long polls (`wait=true&waitIndex=N`).
//!
//! etcd v2 keeps only its last 1000 events; a `waitIndex` older than that fails with "index cleared" (error
//! 401) even when the watched key never changed. Each poll's `X-Etcd-Index` header (flushed before any
//! event) tells up to which index the server already looked, so a quiet poll moves `waitIndex` forward; an
//! "index cleared" is repaired by re-reading the key when it provably did not change, else reported as
//! [`WatchEvent::Reset`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::errors::{self, EtcdError, code};
use super::http::{Call, Http, Key, etcd_index, read_body};
use super::kv::{self, Answer};
use crate::{Revision, StoreResult, WatchEvent, WatchStream};

/// How long one long poll may stay open before it is re-sent (which also checks that the server is still
/// there): four store timeouts, between 5 s and 60 s.
pub(crate) fn poll_window(timeout: Duration) -> Duration {
    (timeout * 4).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// What one long poll saw.
#[derive(Debug)]
pub(crate) enum Poll {
    /// A change of the key.
    Event(Answer),
    /// No change until the poll window closed; the next poll may start at `next_index`.
    Quiet {
        /// The next `waitIndex`.
        next_index: u64,
    },
    /// `waitIndex` is older than the server's event history.
    Cleared,
}

/// One long poll on `key` for changes at or after `wait_index`, open for at most `window`.
pub(crate) async fn poll_once(http: &Http, key: &Key, wait_index: u64, window: Duration) -> StoreResult<Poll> {
    poll(http, key, wait_index, window, false).await
}

/// One long poll on `key` and every key below it (`recursive`) or on `key` alone.
pub(crate) async fn poll(
    http: &Http,
    key: &Key,
    wait_index: u64,
    window: Duration,
    recursive: bool,
) -> StoreResult<Poll> {
    let mut call = Call::get(key).query("wait", true).query("waitIndex", wait_index);
    if recursive {
        call = call.query("recursive", true);
    }
    let (resp, endpoint) = http.open(&call).await?;
    let status = resp.status().as_u16();
    // The index at which the server started watching: every change up to it was already looked at.
    let next_index = etcd_index(&resp).map_or(wait_index, |i| wait_index.max(i + 1));
    let body = match tokio::time::timeout(window, read_body(resp, &key.name(), &endpoint)).await {
        Ok(body) => body?,
        Err(_) => return Ok(Poll::Quiet { next_index }),
    };
    if !(200..300).contains(&status) {
        if let Some(EtcdError { code: code::EVENT_INDEX_CLEARED, .. }) = EtcdError::parse(&body) {
            return Ok(Poll::Cleared);
        }
        return Err(errors::from_response(status, &body, &key.name(), &endpoint));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        // The server ended the poll without an event.
        return Ok(Poll::Quiet { next_index });
    }
    let answer = serde_json::from_slice(&body).map_err(|e| crate::StoreError::InvalidData {
        key: key.name(),
        reason: format!("unexpected watch event from etcd at {endpoint}: {e}"),
    })?;
    Ok(Poll::Event(answer))
}

/// After "index cleared": the next `waitIndex` if `key` provably did not change since `wait_index` (it
/// exists and was last modified before it), else `None`.
pub(crate) async fn resume_after_cleared(http: &Http, key: &Key, wait_index: u64) -> StoreResult<Option<u64>> {
    let (node, index) = kv::get(http, key).await?;
    Ok(node.filter(|n| n.modified_index < wait_index).map(|_| index + 1))
}

/// A stream of every change of `key` from `wait_index` on, ending after an error or a reset.
pub(crate) fn watch_key(http: Arc<Http>, key: Key, wait_index: u64) -> WatchStream {
    let window = poll_window(http.timeout);
    let state = State { http, key, wait_index, window, done: false };
    futures::stream::unfold(state, next).boxed()
}

struct State {
    http: Arc<Http>,
    key: Key,
    wait_index: u64,
    window: Duration,
    done: bool,
}

async fn next(mut st: State) -> Option<(StoreResult<WatchEvent>, State)> {
    while !st.done {
        let ev = match poll_once(&st.http, &st.key, st.wait_index, st.window).await {
            Ok(Poll::Event(answer)) => {
                st.wait_index = answer.node.modified_index + 1;
                to_event(answer)
            }
            Ok(Poll::Quiet { next_index }) => {
                st.wait_index = next_index;
                continue;
            }
            Ok(Poll::Cleared) => match resume_after_cleared(&st.http, &st.key, st.wait_index).await {
                Ok(Some(next_index)) => {
                    st.wait_index = next_index;
                    continue;
                }
                Ok(None) => {
                    st.done = true;
                    Some(Ok(WatchEvent::Reset))
                }
                Err(e) => {
                    st.done = true;
                    Some(Err(e))
                }
            },
            Err(e) => {
                st.done = true;
                Some(Err(e))
            }
        };
        if let Some(ev) = ev {
            return Some((ev, st));
        }
    }
    None
}

/// The watch event for a change of the watched key (`None` for a directory created in its place).
fn to_event(answer: Answer) -> Option<StoreResult<WatchEvent>> {
    if answer.is_removal() {
        return Some(Ok(WatchEvent::Deleted { revision: Revision::from_index(answer.node.modified_index) }));
    }
    if answer.node.dir {
        return None;
    }
    Some(answer.node.document().map(WatchEvent::Put))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Answer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn events_map_to_watch_events() {
        let put = answer(r#"{"action":"compareAndSwap","node":{"key":"/c","value":"v2","modifiedIndex":12}}"#);
        match to_event(put) {
            Some(Ok(WatchEvent::Put(d))) => {
                assert_eq!((d.value, d.revision), (b"v2".to_vec(), Revision::from_index(12)))
            }
            other => panic!("unexpected {other:?}"),
        }
        for action in ["delete", "compareAndDelete", "expire"] {
            let del = answer(&format!(r#"{{"action":"{action}","node":{{"key":"/c","modifiedIndex":13}}}}"#));
            assert!(matches!(to_event(del), Some(Ok(WatchEvent::Deleted { .. }))), "{action}");
        }
        assert!(to_event(answer(r#"{"action":"set","node":{"key":"/c","dir":true,"modifiedIndex":14}}"#)).is_none());
    }

    #[test]
    fn poll_window_is_bounded() {
        assert_eq!(poll_window(Duration::from_millis(100)), Duration::from_secs(5));
        assert_eq!(poll_window(Duration::from_secs(5)), Duration::from_secs(20));
        assert_eq!(poll_window(Duration::from_secs(60)), Duration::from_secs(60));
    }
}
