//! Watching the cluster document with Consul blocking queries (`?index=<i>&wait=<w>`).
//!
//! Each wake-up yields the newest state, so consecutive writes may arrive as one event
//! ([`WatchDelivery::Coalescing`](crate::WatchDelivery::Coalescing)). Following Consul's advice on blocking
//! queries, an index that goes backwards (a snapshot restore, a new cluster) ends the stream with
//! [`WatchEvent::Reset`], an index of 0 is never sent, and wake-ups that bring nothing are rate limited.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::http::Conn;
use super::kv::Read;
use super::watch_wait;
use crate::{Document, Revision, StoreResult, WatchEvent, WatchStream};

/// The smallest pause between two blocking reads that returned nothing new quickly.
const IDLE_PAUSE: Duration = Duration::from_millis(100);

/// What the watcher last reported about the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// The key existed with this `ModifyIndex`.
    Present(u64),
    /// The key did not exist.
    Absent,
}

struct State {
    conn: Arc<Conn>,
    key: String,
    index: u64,
    seen: Seen,
    done: bool,
}

/// Opens a watch on `key` delivering changes after revision `after` (after the current state when `None`).
pub(crate) async fn watch_key(conn: Arc<Conn>, key: String, after: Option<u64>) -> StoreResult<WatchStream> {
    let (index, seen) = match after {
        Some(rev) => (rev, Seen::Present(rev)),
        None => {
            let read = conn.read(&key, None).await?;
            let seen = read.entry.as_ref().map_or(Seen::Absent, |e| Seen::Present(e.modify_index));
            (read.index, seen)
        }
    };
    let state = State { conn, key, index, seen, done: false };
    Ok(futures::stream::unfold(state, next).boxed())
}

async fn next(mut st: State) -> Option<(StoreResult<WatchEvent>, State)> {
    if st.done {
        return None;
    }
    loop {
        let started = Instant::now();
        let read = match st.conn.read(&st.key, Some((st.index, watch_wait(st.conn.timeout)))).await {
            Ok(r) => r,
            Err(e) => {
                st.done = true;
                return Some((Err(e), st));
            }
        };
        match step(&mut st.index, &mut st.seen, read) {
            Step::Event(ev) => {
                st.done = matches!(ev, WatchEvent::Reset);
                return Some((Ok(ev), st));
            }
            Step::Nothing if started.elapsed() < IDLE_PAUSE => tokio::time::sleep(IDLE_PAUSE).await,
            Step::Nothing => {}
        }
    }
}

/// What one blocking read means for the watcher.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Deliver this event.
    Event(WatchEvent),
    /// Nothing changed for the key; block again.
    Nothing,
}

/// Advances the watcher's index and view of the key with one read (no IO).
fn step(index: &mut u64, seen: &mut Seen, read: Read) -> Step {
    if read.index < *index {
        return Step::Event(WatchEvent::Reset);
    }
    *index = read.index.max(1);
    match (read.entry, *seen) {
        (Some(e), Seen::Present(m)) if e.modify_index <= m => Step::Nothing,
        (Some(e), _) => {
            *seen = Seen::Present(e.modify_index);
            Step::Event(WatchEvent::Put(Document { value: e.value, revision: Revision::from_index(e.modify_index) }))
        }
        (None, Seen::Absent) => Step::Nothing,
        (None, Seen::Present(_)) => {
            *seen = Seen::Absent;
            Step::Event(WatchEvent::Deleted { revision: Revision::from_index(read.index) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kv::Entry;
    use super::*;

    fn present(index: u64, value: &str) -> Read {
        Read { entry: Some(Entry { key: "k".into(), value: value.into(), modify_index: index, session: None }), index }
    }

    #[test]
    fn newer_values_are_delivered_once() {
        let (mut index, mut seen) = (5, Seen::Present(5));
        assert_eq!(step(&mut index, &mut seen, present(5, "a")), Step::Nothing);
        match step(&mut index, &mut seen, present(9, "b")) {
            Step::Event(WatchEvent::Put(d)) => assert_eq!((d.value, d.revision.index()), (b"b".to_vec(), Some(9))),
            other => panic!("{other:?}"),
        }
        assert_eq!((index, seen), (9, Seen::Present(9)));
        assert_eq!(step(&mut index, &mut seen, present(9, "b")), Step::Nothing);
    }

    #[test]
    fn deletion_and_recreation() {
        let (mut index, mut seen) = (9, Seen::Present(9));
        let gone = Read { entry: None, index: 12 };
        assert_eq!(
            step(&mut index, &mut seen, gone.clone()),
            Step::Event(WatchEvent::Deleted { revision: Revision::from_index(12) })
        );
        assert_eq!(step(&mut index, &mut seen, gone), Step::Nothing);
        assert!(matches!(step(&mut index, &mut seen, present(14, "c")), Step::Event(WatchEvent::Put(_))));
    }

    #[test]
    fn index_going_backwards_is_a_reset_and_zero_is_never_kept() {
        let (mut index, mut seen) = (20, Seen::Present(20));
        assert_eq!(step(&mut index, &mut seen, present(3, "x")), Step::Event(WatchEvent::Reset));
        let (mut index, mut seen) = (0, Seen::Absent);
        assert_eq!(step(&mut index, &mut seen, Read { entry: None, index: 0 }), Step::Nothing);
        assert_eq!(index, 1);
    }
}
