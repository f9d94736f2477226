//! `stolonctl restart` and `stolonctl reinit`: requests recorded in the cluster data for the leader
//! sentinel ([`crate::ops::restart`], [`crate::ops::reinit`]), checked first and refused with nothing
//! written when they cannot be carried out; then their outcome is awaited.

use std::time::Duration;

use super::error::CtlError;
use super::retry::{Decision, MAX_ATTEMPTS, Modified, modify_cluster_data};
use crate::cluster::{ClusterData, OperationResult, new_uid, outcome};
use crate::duration::GoDuration;
use crate::ops::{reinit, restart};
use crate::store::ClusterStore;
use crate::time::Timestamp;

/// Records a rolling restart; returns its UID.
pub async fn request_restart(
    store: &ClusterStore,
    req: &restart::Request,
    timeout: Duration,
) -> Result<Modified<String>, CtlError> {
    let uid = new_uid();
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        let now = Timestamp::now();
        restart::check_request(cd, req, now)
            .map_err(|r| CtlError::OperationRefused(format!("restart refused: {r}")))?;
        cd.operations.restart = Some(restart::record(req, uid.clone(), GoDuration::from_std(timeout), now));
        Ok(Decision::Write(uid.clone()))
    })
    .await
}

/// Records a reinit of `keeper`; returns its UID.
pub async fn request_reinit(
    store: &ClusterStore,
    keeper: &str,
    timeout: Duration,
) -> Result<Modified<String>, CtlError> {
    let uid = new_uid();
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        let now = Timestamp::now();
        reinit::check_request(cd, keeper, now)
            .map_err(|r| CtlError::OperationRefused(format!("reinit refused: {r}")))?;
        cd.operations.reinit = Some(reinit::record(keeper, uid.clone(), GoDuration::from_std(timeout), now));
        Ok(Decision::Write(uid.clone()))
    })
    .await
}

/// Which operation [`wait_operation`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// `operations.restart` / `lastRestart`.
    Restart,
    /// `operations.reinit` / `lastReinit`.
    Reinit,
}

impl OperationKind {
    fn name(self) -> &'static str {
        match self {
            OperationKind::Restart => "restart",
            OperationKind::Reinit => "reinit",
        }
    }

    fn state(self, cd: &ClusterData, uid: &str) -> (bool, Option<OperationResult>) {
        let ops = &cd.operations;
        let (pending, last) = match self {
            OperationKind::Restart => (ops.restart.as_ref().is_some_and(|r| r.uid == uid), &ops.last_restart),
            OperationKind::Reinit => (ops.reinit.as_ref().is_some_and(|r| r.uid == uid), &ops.last_reinit),
        };
        (pending, last.clone().filter(|r| r.uid == uid))
    }
}

/// Waits until the operation `uid` ended; `Ok` with its result when completed, an error otherwise.
pub async fn wait_operation(
    store: &ClusterStore,
    kind: OperationKind,
    uid: &str,
    limit: Duration,
) -> Result<OperationResult, CtlError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(cd) = store.cluster_data().await?.map(|v| v.data) {
            match kind.state(&cd, uid) {
                (_, Some(r)) if r.outcome == outcome::COMPLETED => return Ok(r),
                (_, Some(r)) => {
                    return Err(CtlError::OperationRefused(format!("{} {}: {}", kind.name(), r.outcome, r.message)));
                }
                (false, None) => {
                    return Err(CtlError::OperationRefused(format!(
                        "the {} request disappeared from the cluster data (replaced or cleared)",
                        kind.name()
                    )));
                }
                (true, None) => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CtlError::WaitTimeout(limit));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
