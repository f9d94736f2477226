//! A live, in-memory copy of the member records of one kind, kept by a background task from a member watch
//! ([`Store::watch_members`]), so that a reader needs no store request while the watch runs.
//!
//! The copy is *live* from the listing that starts a watch until that watch ends. A watch that breaks (an
//! error, a [`MemberEvent::Reset`]) makes the copy unavailable at once, and the task lists and watches again
//! (after [`REWATCH_DELAY`] when the store failed, at once after a reset); readers meanwhile read the store
//! themselves. Every [`VIEW_RESYNC`] the task lists and watches anew even when nothing failed: the slow
//! safety re-read that repairs a copy gone wrong in a way no watch reported. The copy also remembers when the
//! watch last delivered anything, so that a reader who knows how often the records change can refuse a copy
//! that has been silent for too long ([`MemberView::fresh_records`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use stolon_store::{MemberEvent, MemberKind, MemberRecord, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a watch-fed copy is read again from scratch although its watch runs (the safety re-read).
pub const VIEW_RESYNC: Duration = Duration::from_secs(300);

/// Pause before watching again after the store failed.
pub const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// The records while a watch is live; `None` otherwise.
pub type LiveRecords = Option<WatchedRecords>;

/// The records of a live watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedRecords {
    /// The records by id.
    pub records: BTreeMap<String, Vec<u8>>,
    /// When the watch last delivered something (the listing, or an event, even one that changed nothing).
    pub heard_at: Instant,
}

/// A watch-fed copy of the member records of one kind. Dropping it stops its task.
pub struct MemberView {
    rx: watch::Receiver<LiveRecords>,
    task: JoinHandle<()>,
}

impl MemberView {
    /// Starts following the records of `kind` in `store`.
    pub fn spawn(store: Arc<dyn Store>, kind: MemberKind) -> MemberView {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(follow(store, kind, tx));
        MemberView { rx, task }
    }

    /// The records, sorted by id, while the watch is live; `None` when the caller must read the store.
    pub fn records(&self) -> Option<Vec<MemberRecord>> {
        self.fresh_records(None)
    }

    /// The records, sorted by id, while the watch is live and, when `silence` is given and there are records,
    /// delivered something within `silence` (the records of live members change more often than that, so a
    /// longer silence means a watch that stopped without saying so); `None` when the caller must read the
    /// store.
    pub fn fresh_records(&self, silence: Option<Duration>) -> Option<Vec<MemberRecord>> {
        let live = self.rx.borrow();
        let copy = live.as_ref()?;
        let quiet_too_long = silence.is_some_and(|s| !copy.records.is_empty() && copy.heard_at.elapsed() > s);
        if quiet_too_long {
            return None;
        }
        Some(copy.records.iter().map(|(id, value)| MemberRecord { id: id.clone(), value: value.clone() }).collect())
    }

    /// A receiver woken by every change of the copy (including it becoming live or not).
    pub fn subscribe(&self) -> watch::Receiver<LiveRecords> {
        self.rx.clone()
    }
}

impl Drop for MemberView {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one watch ended.
enum End {
    /// The store failed: wait before watching again.
    Failed,
    /// A reset: list again at once.
    Reset,
    /// Time for the safety re-read: list again, the copy stays live meanwhile.
    Resync,
}

async fn follow(store: Arc<dyn Store>, kind: MemberKind, tx: watch::Sender<LiveRecords>) {
    loop {
        let end = match store.watch_members(kind).await {
            Ok(w) => {
                let records: BTreeMap<String, Vec<u8>> = w.records.into_iter().map(|r| (r.id, r.value)).collect();
                tx.send_if_modified(|live| {
                    let changed = live.as_ref().is_none_or(|copy| copy.records != records);
                    *live = Some(WatchedRecords { records, heard_at: Instant::now() });
                    changed
                });
                apply_until_end(w.events, &tx, Instant::now() + VIEW_RESYNC).await
            }
            Err(e) => {
                tracing::debug!(kind = %kind, error = %e, "cannot watch member records");
                End::Failed
            }
        };
        match end {
            End::Failed => {
                replace_if_changed(&tx, None);
                tokio::time::sleep(REWATCH_DELAY).await;
            }
            End::Reset => {
                tracing::debug!(kind = %kind, "member watch reset; listing the records again");
                replace_if_changed(&tx, None);
            }
            End::Resync => {}
        }
    }
}

/// Applies the events of one watch to the copy until the watch ends or `resync_at`.
async fn apply_until_end(
    mut events: stolon_store::MemberStream,
    tx: &watch::Sender<LiveRecords>,
    resync_at: Instant,
) -> End {
    loop {
        let ev = tokio::select! {
            _ = tokio::time::sleep_until(resync_at) => return End::Resync,
            ev = events.next() => ev,
        };
        match ev {
            Some(Ok(MemberEvent::Reset)) => return End::Reset,
            Some(Ok(ev)) => {
                tx.send_if_modified(|live| {
                    live.as_mut().is_some_and(|copy| {
                        copy.heard_at = Instant::now();
                        apply(&mut copy.records, ev)
                    })
                });
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "member watch ended");
                return End::Failed;
            }
            None => return End::Failed,
        }
    }
}

/// Replaces the copy with `new`, waking the readers only if it differs (a safety re-read that finds the
/// same records wakes nobody).
pub(crate) fn replace_if_changed<T: PartialEq>(tx: &watch::Sender<T>, new: T) {
    tx.send_if_modified(|current| {
        let changed = *current != new;
        if changed {
            *current = new;
        }
        changed
    });
}

/// Applies one change to a copy; true when the copy changed.
fn apply(records: &mut BTreeMap<String, Vec<u8>>, ev: MemberEvent) -> bool {
    match ev {
        MemberEvent::Put(r) => records.insert(r.id, r.value.clone()).is_none_or(|old| old != r.value),
        MemberEvent::Removed { id } => records.remove(&id).is_some(),
        MemberEvent::Reset => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_update_the_copy() {
        let mut records = BTreeMap::new();
        let put = |id: &str, v: &[u8]| MemberEvent::Put(MemberRecord { id: id.into(), value: v.to_vec() });
        assert!(apply(&mut records, put("a", b"1")));
        assert!(apply(&mut records, put("b", b"1")));
        assert!(!apply(&mut records, put("b", b"1")), "the same value again changes nothing");
        assert!(apply(&mut records, put("a", b"2")));
        assert!(apply(&mut records, MemberEvent::Removed { id: "b".into() }));
        assert!(!apply(&mut records, MemberEvent::Removed { id: "missing".into() }));
        assert_eq!(records, BTreeMap::from([("a".to_string(), b"2".to_vec())]));
    }
}
