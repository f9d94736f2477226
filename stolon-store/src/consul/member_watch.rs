//! Watching member records with blocking queries on the kind's key prefix (`?recurse&index=<i>&wait=<w>`).
//!
//! Each wake-up returns every record under the prefix; comparing it with the previous one gives the events
//! (a record whose value changed, one that appeared, one that is gone, e.g. deleted by its expired session).
//! Changes between two wake-ups are coalesced ([`WatchDelivery::Coalescing`](crate::WatchDelivery)). As for
//! the document watch, an index that goes backwards ends the stream with [`MemberEvent::Reset`], an index of
//! 0 is never sent, and wake-ups that bring nothing are rate limited.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use hyper::Method;
use serde::Deserialize;
use tokio::time::Instant;

use super::errors::{self, Fail};
use super::http::Conn;
use super::keys::encode_key;
use super::watch_wait;
use crate::{MemberEvent, MemberRecord, MemberWatch, StoreError, StoreResult};

/// The smallest pause between two blocking reads that returned nothing new quickly.
const IDLE_PAUSE: Duration = Duration::from_millis(100);

/// The records under a prefix by id, and the index of the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Listing {
    records: BTreeMap<String, Vec<u8>>,
    index: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvEntry {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

/// Lists the records under `dir` and watches them from the index of the listing.
pub(crate) async fn watch_members(conn: Arc<Conn>, dir: String) -> StoreResult<MemberWatch> {
    let listing = list(&conn, &dir, None).await?;
    let records = listing.records.iter().map(|(id, value)| MemberRecord { id: id.clone(), value: value.clone() });
    let records = records.collect();
    let state = State { conn, dir, last: listing, pending: VecDeque::new(), done: false };
    Ok(MemberWatch { records, events: futures::stream::unfold(state, next).boxed() })
}

/// Reads every record under `dir`; with `block = Some(index)` a blocking read that returns once something
/// under `dir` changed after `index`, or after the blocking wait.
async fn list(conn: &Conn, dir: &str, block: Option<u64>) -> StoreResult<Listing> {
    let wait = watch_wait(conn.timeout);
    let (limit, index, wait_text) = match block {
        Some(i) => (wait + wait / 16 + conn.timeout, i.max(1).to_string(), format!("{}s", wait.as_secs())),
        None => (conn.timeout, String::new(), String::new()),
    };
    let mut query = vec![("recurse", "")];
    if block.is_some() {
        query.extend([("index", index.as_str()), ("wait", wait_text.as_str())]);
    } else {
        query.push(("consistent", ""));
    }
    let url = conn.url(&format!("/v1/kv/{}", encode_key(dir)), &query);
    conn.call_within(dir, limit, || async {
        let reply = conn.raw(Method::GET, url.clone(), None).await?;
        let index = reply.index.unwrap_or(0);
        match reply.status {
            404 => Ok(Listing { records: BTreeMap::new(), index }),
            200 => Ok(Listing { records: parse(dir, &reply.body)?, index }),
            s => Err(errors::from_status(s, &String::from_utf8_lossy(&reply.body), dir, &conn.base, conn.has_token())),
        }
    })
    .await
}

/// The records directly under `dir` in a recursive KV answer.
fn parse(dir: &str, body: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, Fail> {
    let invalid = |reason: String| Fail::Store(StoreError::InvalidData { key: dir.to_string(), reason });
    let entries: Vec<KvEntry> = serde_json::from_slice(body).map_err(|e| invalid(format!("unexpected answer: {e}")))?;
    let mut out = BTreeMap::new();
    for e in entries {
        let Some(id) = e.key.strip_prefix(dir).filter(|id| !id.is_empty() && !id.contains('/')) else { continue };
        let value = match e.value {
            Some(v) => base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|err| invalid(format!("value of {} is not base64: {err}", e.key)))?,
            None => Vec::new(),
        };
        out.insert(id.to_string(), value);
    }
    Ok(out)
}

struct State {
    conn: Arc<Conn>,
    dir: String,
    last: Listing,
    pending: VecDeque<StoreResult<MemberEvent>>,
    done: bool,
}

async fn next(mut st: State) -> Option<(StoreResult<MemberEvent>, State)> {
    loop {
        if let Some(ev) = st.pending.pop_front() {
            return Some((ev, st));
        }
        if st.done {
            return None;
        }
        let started = Instant::now();
        match list(&st.conn, &st.dir, Some(st.last.index)).await {
            Err(e) => {
                st.done = true;
                st.pending.push_back(Err(e));
            }
            Ok(now) if now.index < st.last.index => {
                st.done = true;
                st.pending.push_back(Ok(MemberEvent::Reset));
            }
            Ok(now) => {
                let events = diff(&st.last.records, &now.records);
                if events.is_empty() && started.elapsed() < IDLE_PAUSE {
                    tokio::time::sleep(IDLE_PAUSE).await;
                }
                st.pending.extend(events.into_iter().map(Ok));
                st.last = Listing { index: now.index.max(1), ..now };
            }
        }
    }
}

/// The events that turn `before` into `after`: removals first, then new or changed values, by id.
fn diff(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<MemberEvent> {
    let removed = before.keys().filter(|id| !after.contains_key(*id)).map(|id| MemberEvent::Removed { id: id.clone() });
    let put = after
        .iter()
        .filter(|(id, value)| before.get(*id) != Some(*value))
        .map(|(id, value)| MemberEvent::Put(MemberRecord { id: id.clone(), value: value.clone() }));
    removed.chain(put).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(items: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        items.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn diffs_give_removals_then_changes() {
        let before = map(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let after = map(&[("a", "1"), ("c", "2"), ("d", "1")]);
        let put = |id: &str, v: &str| MemberEvent::Put(MemberRecord { id: id.into(), value: v.as_bytes().to_vec() });
        assert_eq!(diff(&before, &after), vec![MemberEvent::Removed { id: "b".into() }, put("c", "2"), put("d", "1")]);
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn answers_keep_direct_children_only() {
        let dir = "stolon/cluster/c1/keepers/info/";
        let body = br#"[{"Key":"stolon/cluster/c1/keepers/info/k1","Value":"djE=","ModifyIndex":7},
            {"Key":"stolon/cluster/c1/keepers/info/a/b","Value":"eA==","ModifyIndex":8},
            {"Key":"stolon/cluster/c1/keepers/info/k2","Value":null,"ModifyIndex":9}]"#;
        let parsed = parse(dir, body).unwrap_or_default();
        assert_eq!(parsed, map(&[("k1", "v1"), ("k2", "")]));
        assert!(parse(dir, b"{not json").is_err());
    }
}
