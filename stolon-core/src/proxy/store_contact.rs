//! Where a proxy check takes the cluster data from, and what its one store request proves.
//!
//! The proxy keeps a watch-fed copy of the cluster data ([`ClusterDataView`](crate::store::cluster_data_view))
//! and a check uses it while the watch is live and the copy holds a document, instead of reading the store.
//! The store outage that the read used to reveal (a failed check, the watchdog, failsafe mode's question to the
//! master's keeper) is then revealed by the request every such check makes anyway: the ProxyInfo publish,
//! whose fresh `infoUID` makes it a write that reaches the store each time. So a check taken from the copy
//! counts as a check only when its publish reached the store, and a publish the store did not answer counts
//! as the failed read it replaces. A check with nothing to publish (no copy, no document, a document that
//! cannot be used) reads the store as stolon's proxy does.
//!
//! Only an answer of the store is evidence that it is reachable: the watchdog's deadline is `proxyTimeout`
//! after the latest answer (a read or a publish), and the copy is used only while that answer is younger than
//! `proxyTimeout`. So once the watchdog fired, every check reads the store first, and a store that stopped
//! answering fails it before it listens or routes again, as on a store read in stolon's proxy.

use std::time::Duration;

use crate::store::cluster_data_view::LiveDocument;
use stolon_store::Document;
use tokio::time::Instant;

/// Where one check took the cluster data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSource {
    /// The watch-fed copy: no store request yet in this check.
    Watch,
    /// A read of the store in this check.
    Store,
}

/// The document a check starting at `now` uses from the copy `live`, or `None` when the check must read the
/// store: the copy is not live (watch broken, being restarted), holds no cluster data (a check that publishes
/// nothing needs a request that proves the store reachable), or the store's latest answer (`heard_at`, `None`
/// before the first) is `timeout` (proxyTimeout) old or older, so the watchdog fired or is about to.
pub fn document_from_copy(
    live: LiveDocument,
    heard_at: Option<Instant>,
    now: Instant,
    timeout: Duration,
) -> Option<Document> {
    let answered_recently = heard_at.is_some_and(|at| now.saturating_duration_since(at) < timeout);
    if answered_recently { live.flatten() } else { None }
}

/// The watchdog's deadline after a successful check when the store's latest answer came at `heard_at`:
/// `timeout` (proxyTimeout) after that answer, not after the check (a check taken from the copy may end long
/// after the store last answered).
pub fn watchdog_deadline(heard_at: Instant, timeout: Duration) -> Instant {
    heard_at + timeout
}

/// Which publish a check makes (the route decision's steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStep {
    /// No master: forward nowhere, then announce the generation (stolon ignores a failure here).
    Announce,
    /// A master: announce the generation, then route (a failure fails the check).
    Route,
}

/// What a failed ProxyInfo publish makes of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishFailure {
    /// The check goes on as if it had been published (stolon's step 7).
    Ignore,
    /// The check fails (stolon's step 9).
    FailCheck,
    /// The store could not be reached and this check made no other request: it is the failed read of a
    /// store outage (the check fails, failsafe mode may be asked).
    StoreOutage,
}

/// What a publish failure at `step` means for a check whose data came from `source`; `store_error` is true
/// when the store did not answer (a failure of the store, not of encoding the record).
pub fn on_publish_failure(source: DataSource, step: PublishStep, store_error: bool) -> PublishFailure {
    match (source, step) {
        (DataSource::Watch, _) if store_error => PublishFailure::StoreOutage,
        (_, PublishStep::Route) => PublishFailure::FailCheck,
        (DataSource::Store, PublishStep::Announce) => PublishFailure::Ignore,
        // Not a store failure, and no request reached the store: the check proved nothing.
        (DataSource::Watch, PublishStep::Announce) => PublishFailure::FailCheck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stolon_store::Revision;

    fn doc() -> Document {
        Document { value: b"{}".to_vec(), revision: Revision::new("7") }
    }

    const TIMEOUT: Duration = Duration::from_secs(15);

    #[test]
    fn a_check_uses_the_copy_only_while_it_is_live_and_holds_a_document() {
        let now = Instant::now();
        let heard = Some(now - Duration::from_secs(5));
        assert_eq!(document_from_copy(Some(Some(doc())), heard, now, TIMEOUT), Some(doc()));
        assert_eq!(document_from_copy(Some(None), heard, now, TIMEOUT), None, "no cluster data: read the store");
        assert_eq!(document_from_copy(None, heard, now, TIMEOUT), None, "watch not live: read the store");
    }

    #[test]
    fn a_check_uses_the_copy_only_while_the_store_answered_within_proxy_timeout() {
        let now = Instant::now() + TIMEOUT;
        assert_eq!(document_from_copy(Some(Some(doc())), None, now, TIMEOUT), None, "never answered");
        let just_in_time = now - TIMEOUT + Duration::from_millis(1);
        assert_eq!(document_from_copy(Some(Some(doc())), Some(just_in_time), now, TIMEOUT), Some(doc()));
        assert_eq!(document_from_copy(Some(Some(doc())), Some(now - TIMEOUT), now, TIMEOUT), None);
        let long_ago = now - 2 * TIMEOUT;
        assert_eq!(document_from_copy(Some(Some(doc())), Some(long_ago), now, TIMEOUT), None);
    }

    /// The frozen store: the watch stays open, so the copy stays live, but no publish is answered. Once the
    /// watchdog's deadline has passed, no check takes the copy, so none listens or routes before the store
    /// answered its read.
    #[test]
    fn after_the_watchdog_fired_every_check_reads_the_store_first() {
        let start = Instant::now();
        for timeout_ms in [1, 3000, 15000, 120000] {
            let timeout = Duration::from_millis(timeout_ms);
            for heard_ms in [0, 1, 999, 5000] {
                let heard_at = start + Duration::from_millis(heard_ms);
                let deadline = watchdog_deadline(heard_at, timeout);
                assert!(deadline > heard_at, "{timeout_ms} {heard_ms}");
                for late_ms in [0, 1, 2500, 60000] {
                    let now = deadline + Duration::from_millis(late_ms);
                    let live = Some(Some(doc()));
                    assert_eq!(document_from_copy(live, Some(heard_at), now, timeout), None, "{timeout_ms} {heard_ms}");
                }
                let before = deadline - Duration::from_millis(1).min(timeout);
                if before > heard_at {
                    assert!(document_from_copy(Some(Some(doc())), Some(heard_at), before, timeout).is_some());
                }
            }
        }
    }

    #[test]
    fn a_publish_the_store_does_not_answer_is_the_outage_when_the_data_came_from_the_copy() {
        for step in [PublishStep::Announce, PublishStep::Route] {
            assert_eq!(on_publish_failure(DataSource::Watch, step, true), PublishFailure::StoreOutage, "{step:?}");
            assert_eq!(on_publish_failure(DataSource::Watch, step, false), PublishFailure::FailCheck, "{step:?}");
        }
    }

    #[test]
    fn after_a_store_read_publish_failures_follow_stolon() {
        for store_error in [true, false] {
            assert_eq!(
                on_publish_failure(DataSource::Store, PublishStep::Route, store_error),
                PublishFailure::FailCheck
            );
            assert_eq!(
                on_publish_failure(DataSource::Store, PublishStep::Announce, store_error),
                PublishFailure::Ignore
            );
        }
    }
}
