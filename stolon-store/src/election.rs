//! Leader election: the [`Election`] trait and the [`Leadership`] handle every backend returns.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::{StoreError, StoreResult};

/// Leader election among the sentinels of one cluster.
///
/// Contract (checked by the conformance suite):
/// - at most one candidate holds leadership at any instant, as seen by [`Leadership::is_leader`];
/// - [`Election::campaign`] returns only once the candidate is leader, and keeps it until it resigns, its
///   renewals stop (the handle is dropped or the process dies), or the store ends it; a holder whose
///   renewals fail declares the loss no later than the moment the store may grant leadership to another;
/// - after a holder stops renewing without resigning, another candidate is elected within `ttl` plus a
///   backend-specific slack; after a resign, the next candidate is elected promptly;
/// - [`Election::leader`] returns the current leader's candidate id, or `None`.
#[async_trait]
pub trait Election: Send + Sync {
    /// Runs for leadership as `candidate` with a lease of `ttl`, blocking until elected.
    async fn campaign(&self, candidate: &str, ttl: Duration) -> StoreResult<Leadership>;

    /// The candidate id of the current leader, if any.
    async fn leader(&self) -> StoreResult<Option<String>>;
}

/// The state of a [`Leadership`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipState {
    /// Leading.
    Leading,
    /// A resign was requested; no longer leading.
    Resigning,
    /// Resigned cleanly.
    Resigned,
    /// Lost, with the reason.
    Lost(String),
}

/// How a backend's leadership-keeping task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipEnd {
    /// The holder asked to resign and the store released leadership.
    Resigned,
    /// Leadership was lost (lease expired, key removed, session invalidated), with the reason.
    Lost(String),
}

/// Fires when the holder of a [`Leadership`] asks to resign. Given to the backend's keeping task.
pub struct ResignSignal(oneshot::Receiver<()>);

impl ResignSignal {
    /// Resolves when a resign is requested. Never resolves if the handle is dropped without resigning
    /// (the keeping task is aborted in that case).
    pub async fn requested(&mut self) {
        if (&mut self.0).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Held by the elected candidate. Dropping it stops renewing leadership without resigning, as a crash would:
/// the store ends the leadership when its lease runs out.
pub struct Leadership {
    candidate: String,
    state: watch::Receiver<LeadershipState>,
    state_tx: watch::Sender<LeadershipState>,
    resign: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Leadership {
    /// Starts the backend's keeping task for a freshly elected `candidate`. The task keeps leadership alive
    /// until the [`ResignSignal`] fires (then it releases leadership and returns [`LeadershipEnd::Resigned`])
    /// or leadership is lost.
    pub fn spawn<F, Fut>(candidate: impl Into<String>, keep: F) -> Leadership
    where
        F: FnOnce(ResignSignal) -> Fut,
        Fut: Future<Output = StoreResult<LeadershipEnd>> + Send + 'static,
    {
        let (state_tx, state) = watch::channel(LeadershipState::Leading);
        let (resign_tx, resign_rx) = oneshot::channel();
        let fut = keep(ResignSignal(resign_rx));
        let tx = state_tx.clone();
        let task = tokio::spawn(async move {
            let end = match fut.await {
                Ok(LeadershipEnd::Resigned) => LeadershipState::Resigned,
                Ok(LeadershipEnd::Lost(why)) => LeadershipState::Lost(why),
                Err(e) => LeadershipState::Lost(e.to_string()),
            };
            let _ = tx.send(end);
        });
        Leadership { candidate: candidate.into(), state, state_tx, resign: Some(resign_tx), task }
    }

    /// The candidate id this handle holds leadership for.
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// True while leading: false from the moment a resign is requested or the loss is known.
    pub fn is_leader(&self) -> bool {
        *self.state.borrow() == LeadershipState::Leading
    }

    /// The current state.
    pub fn state(&self) -> LeadershipState {
        self.state.borrow().clone()
    }

    /// Waits until leadership is no longer held and returns why.
    pub async fn lost(&mut self) -> LeadershipState {
        let _ = self.state.wait_for(|s| *s != LeadershipState::Leading).await;
        self.state.borrow().clone()
    }

    /// Gives leadership up so that another candidate is elected promptly.
    pub async fn resign(mut self) -> StoreResult<()> {
        if *self.state.borrow() == LeadershipState::Leading {
            let _ = self.state_tx.send(LeadershipState::Resigning);
        }
        if let Some(tx) = self.resign.take() {
            let _ = tx.send(());
        }
        let end = self
            .state
            .wait_for(|s| matches!(s, LeadershipState::Resigned | LeadershipState::Lost(_)))
            .await
            .map(|s| s.clone())
            .unwrap_or(LeadershipState::Lost("leadership task ended".into()));
        match end {
            LeadershipState::Lost(why) => Err(StoreError::Election(format!("resign failed: {why}"))),
            _ => Ok(()),
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("candidate", &self.candidate).field("state", &*self.state.borrow()).finish()
    }
}
