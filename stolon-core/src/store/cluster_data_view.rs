//! A live, in-memory copy of the cluster document, kept by a background task from a document watch
//! ([`Store::watch_cluster_data`]), so that a reader needs no store request while the watch runs.
//!
//! Same life cycle as [`super::member_view`]: live from the read that starts a watch until the watch ends,
//! unavailable (readers read the store) while the task reads and watches again, and read anew every
//! [`VIEW_RESYNC`]. The watch starts from the revision read, so no write falls in between; when there is no
//! document yet, the watch is opened first and the document read after it, for the same reason.

use std::sync::Arc;

use futures::StreamExt;
use stolon_store::{Document, Store, StoreResult, WatchEvent, WatchStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::member_view::{REWATCH_DELAY, VIEW_RESYNC, replace_if_changed};

/// The document (or its absence) while a watch is live; `None` otherwise.
pub type LiveDocument = Option<Option<Document>>;

/// A watch-fed copy of the cluster document. Dropping it stops its task.
pub struct ClusterDataView {
    rx: watch::Receiver<LiveDocument>,
    task: JoinHandle<()>,
}

impl ClusterDataView {
    /// Starts following the cluster document of `store`.
    pub fn spawn(store: Arc<dyn Store>) -> ClusterDataView {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(follow(store, tx));
        ClusterDataView { rx, task }
    }

    /// The document (`Some(None)`: there is none) while the watch is live; `None` when the caller must read
    /// the store.
    pub fn document(&self) -> LiveDocument {
        self.rx.borrow().clone()
    }

    /// A receiver woken by every change of the copy (including it becoming live or not).
    pub fn subscribe(&self) -> watch::Receiver<LiveDocument> {
        self.rx.clone()
    }
}

impl Drop for ClusterDataView {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the cluster document and opens a watch that misses no later write: from the revision read, or,
/// when there is no document yet (no revision to start from), opened before a second read.
pub async fn read_then_watch(store: &dyn Store) -> StoreResult<(Option<Document>, WatchStream)> {
    if let Some(doc) = store.get_cluster_data().await? {
        let stream = store.watch_cluster_data(Some(&doc.revision)).await?;
        return Ok((Some(doc), stream));
    }
    let stream = store.watch_cluster_data(None).await?;
    match store.get_cluster_data().await? {
        // Created in between: start again from its revision.
        Some(doc) => Ok((Some(doc.clone()), store.watch_cluster_data(Some(&doc.revision)).await?)),
        None => Ok((None, stream)),
    }
}

async fn follow(store: Arc<dyn Store>, tx: watch::Sender<LiveDocument>) {
    loop {
        let (doc, mut stream) = match read_then_watch(store.as_ref()).await {
            Ok(started) => started,
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch the cluster data");
                replace_if_changed(&tx, None);
                tokio::time::sleep(REWATCH_DELAY).await;
                continue;
            }
        };
        replace_if_changed(&tx, Some(doc));
        let resync_at = Instant::now() + VIEW_RESYNC;
        loop {
            let ev = tokio::select! {
                _ = tokio::time::sleep_until(resync_at) => break,
                ev = stream.next() => ev,
            };
            match ev {
                Some(Ok(WatchEvent::Put(doc))) => replace_if_changed(&tx, Some(Some(doc))),
                Some(Ok(WatchEvent::Deleted { .. })) => replace_if_changed(&tx, Some(None)),
                Some(Ok(WatchEvent::Reset)) => {
                    tracing::debug!("cluster data watch reset; reading it again");
                    replace_if_changed(&tx, None);
                    break;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "cluster data watch ended");
                    replace_if_changed(&tx, None);
                    tokio::time::sleep(REWATCH_DELAY).await;
                    break;
                }
                None => {
                    replace_if_changed(&tx, None);
                    tokio::time::sleep(REWATCH_DELAY).await;
                    break;
                }
            }
        }
    }
}
