//! The named conformance cases.

mod cas;
mod election;
mod member_watch;
mod members;
mod outage;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use stolon_store::Store;

use crate::{StoreFactory, unique_cluster_name};

/// How a case ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// The case cannot run in this setting (e.g. it must stop a server the suite does not own); the reason
    /// is printed.
    Skipped(String),
}

type CaseFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, anyhow::Result<Outcome>>;

/// A named check of the store contract.
#[derive(Clone)]
pub struct Case {
    /// Stable name, used to select cases.
    pub name: &'static str,
    /// One line saying what is checked.
    pub about: &'static str,
    run: CaseFn,
}

impl Case {
    /// Runs the case on a fresh, unique cluster of `factory`'s store.
    pub async fn run(&self, factory: Arc<dyn StoreFactory>) -> anyhow::Result<Outcome> {
        let ctx = Ctx { factory, cluster: unique_cluster_name(self.name) };
        (self.run)(&ctx).await
    }
}

/// What a case runs with.
pub struct Ctx {
    /// Opens stores.
    pub factory: Arc<dyn StoreFactory>,
    /// This case's own cluster name.
    pub cluster: String,
}

impl Ctx {
    /// A new client on this case's cluster.
    pub async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(self.factory.open(&self.cluster).await?)
    }

    /// A TTL the backend honours and that keeps the cases short.
    pub fn ttl(&self, store: &dyn Store) -> Duration {
        store.capabilities().min_ttl.max(Duration::from_secs(2))
    }
}

/// Every case, in a stable order.
pub fn all() -> Vec<Case> {
    macro_rules! case {
        ($name:literal, $about:literal, $f:path) => {
            Case { name: $name, about: $about, run: |ctx| Box::pin($f(ctx)) }
        };
    }
    vec![
        case!("cas_create_only", "a create-only put succeeds once, then conflicts", cas::create_only),
        case!("cas_revision", "a CAS put succeeds on the current revision and conflicts on a stale one", cas::revision),
        case!("put_unconditional", "an unconditional put overwrites and yields a usable revision", cas::unconditional),
        case!(
            "lost_update_storm",
            "8 writers x 50 CAS increments with retry end at exactly 400",
            cas::lost_update_storm
        ),
        case!("large_value", "a 1 MiB document (or the declared maximum) is stored intact", cas::large_value),
        case!(
            "member_expiry_and_refresh",
            "member records live while refreshed and disappear with their owner",
            members::expiry_and_refresh
        ),
        case!(
            "member_isolation",
            "member listings are per cluster and per kind; delete removes one record",
            members::isolation
        ),
        case!(
            "member_watch_changes",
            "a member watch lists the records, then delivers their changes in order, of its cluster and kind only",
            member_watch::changes
        ),
        case!(
            "member_watch_expiry",
            "a member watch delivers the removal of a record whose owner is gone",
            member_watch::expiry
        ),
        case!("election_exclusive", "5 contenders: never two leaders at once, each leads in turn", election::exclusive),
        case!(
            "election_crash_takeover",
            "a leader that stops renewing is replaced within TTL plus slack",
            election::crash_takeover
        ),
        case!(
            "election_resign_handover",
            "a resign hands leadership over promptly, well before the TTL",
            election::resign_handover
        ),
        case!(
            "election_leader_query",
            "leader() names the current leader, and none once it resigned",
            election::leader_query
        ),
        case!("watch_every_change", "a watch delivers every change after its revision, in order", watch::every_change),
        case!(
            "watch_from_past_revision",
            "a watch from an older revision replays what came after it",
            watch::from_past_revision
        ),
        case!(
            "unreachable_endpoint",
            "a store that refuses connections fails fast with an unavailable error",
            outage::unreachable
        ),
        case!(
            "server_restart",
            "a stopped server gives clear errors within the timeout; service resumes after",
            outage::server_restart
        ),
    ]
}

/// Polls `check` every 100 ms until it returns `Some`, failing after `limit` with `what`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > limit {
            let detail = last_err.map(|e| format!(" (last error: {e:#})")).unwrap_or_default();
            anyhow::bail!("timed out after {limit:?} waiting for {what}{detail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
