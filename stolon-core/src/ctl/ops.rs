//! `stolonctl switchover`, `pause`, `resume` and `maintenance`: requests recorded in the cluster data for
//! the leader sentinel (see [`crate::ops`]). Each is checked against the current cluster data first and
//! refused, with nothing written, when it cannot be carried out.

use std::time::Duration;

use super::error::CtlError;
use super::retry::{Decision, MAX_ATTEMPTS, Modified, modify_cluster_data};
use crate::cluster::{Pause, Switchover, SwitchoverPhase, SwitchoverResult, new_uid, outcome};
use crate::duration::GoDuration;
use crate::ops::candidate;
use crate::store::ClusterStore;
use crate::time::Timestamp;

/// A switchover request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchoverRequest {
    /// `--to`: the keeper to promote (empty = the best eligible standby).
    pub to_keeper: String,
    /// `--at`: not before this time.
    pub at: Option<Timestamp>,
    /// `--timeout`.
    pub timeout: Duration,
}

/// What a recorded switchover request looks like once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedSwitchover {
    /// Request UID, to follow its outcome.
    pub uid: String,
    /// The keeper that would be promoted if it started now.
    pub candidate_keeper: String,
}

/// Records a switchover request after checking it against the current cluster data (candidate health,
/// convergence, permission, lag, maintenance, pause, another pending request). A scheduled request is
/// checked now and again when its time comes.
pub async fn request_switchover(
    store: &ClusterStore,
    req: &SwitchoverRequest,
) -> Result<Modified<AcceptedSwitchover>, CtlError> {
    let uid = new_uid();
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        let now = Timestamp::now();
        let db = candidate::check_request(cd, &req.to_keeper, now)?;
        let candidate_keeper = cd.dbs.get(&db).map(|d| d.spec.keeper_uid.clone()).unwrap_or_default();
        cd.operations.switchover = Some(Switchover {
            uid: uid.clone(),
            request_time: now,
            at: req.at,
            timeout: GoDuration::from_std(req.timeout),
            to_keeper: req.to_keeper.clone(),
            reason: "stolonctl".into(),
            ..Switchover::default()
        });
        Ok(Decision::Write(AcceptedSwitchover { uid: uid.clone(), candidate_keeper }))
    })
    .await
}

/// Cancels a switchover that has not started yet (`--cancel`).
pub async fn cancel_switchover(store: &ClusterStore) -> Result<Modified<()>, CtlError> {
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        let Some(sw) = cd.operations.switchover.clone() else {
            return Err(CtlError::OperationRefused("no switchover is pending".into()));
        };
        if sw.phase != SwitchoverPhase::Scheduled {
            return Err(CtlError::OperationRefused(format!(
                "the switchover is already {}: it finishes or aborts on its own",
                sw.phase
            )));
        }
        cd.operations.switchover = None;
        cd.operations.last_switchover = Some(SwitchoverResult {
            uid: sw.uid,
            outcome: outcome::CANCELLED.into(),
            message: "cancelled by stolonctl".into(),
            time: Timestamp::now(),
            ..SwitchoverResult::default()
        });
        Ok(Decision::Write(()))
    })
    .await
}

/// Waits until the switchover `uid` ended; `Ok` with its result when completed, an error otherwise.
pub async fn wait_switchover(store: &ClusterStore, uid: &str, limit: Duration) -> Result<SwitchoverResult, CtlError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(cd) = store.cluster_data().await?.map(|v| v.data) {
            let result = cd.operations.last_switchover.filter(|r| r.uid == uid);
            let pending = cd.operations.switchover.is_some_and(|s| s.uid == uid);
            match result {
                Some(r) if r.outcome == outcome::COMPLETED => return Ok(r),
                Some(r) => return Err(CtlError::SwitchoverFailed { outcome: r.outcome, message: r.message }),
                None if !pending => {
                    return Err(CtlError::OperationRefused(
                        "the switchover request disappeared from the cluster data (replaced or cleared)".into(),
                    ));
                }
                None => {}
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CtlError::WaitTimeout(limit));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pauses the cluster, until `resume` or for `duration`. Refused while a switchover runs.
pub async fn pause(store: &ClusterStore, duration: Option<Duration>) -> Result<Modified<Pause>, CtlError> {
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        if crate::ops::switchover_running(cd) {
            return Err(CtlError::OperationRefused("a switchover is running: pause after it ended".into()));
        }
        let now = Timestamp::now();
        let until = match duration {
            None => None,
            Some(d) => {
                let d = chrono::Duration::from_std(d)
                    .map_err(|_| CtlError::OperationRefused(format!("pause duration {d:?} is too long")))?;
                Some(
                    now.as_datetime()
                        .checked_add_signed(d)
                        .map(Timestamp::from_datetime)
                        .ok_or_else(|| CtlError::OperationRefused(format!("pause duration {d} is too long")))?,
                )
            }
        };
        let pause = Pause { since: now, until };
        cd.operations.pause = Some(pause.clone());
        Ok(Decision::Write(pause))
    })
    .await
}

/// Ends a pause; `Keep(false)` when the cluster was not paused.
pub async fn resume(store: &ClusterStore) -> Result<Modified<bool>, CtlError> {
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        if cd.operations.pause.is_none() {
            return Ok(Decision::Keep(false));
        }
        cd.operations.pause = None;
        Ok(Decision::Write(true))
    })
    .await
}

/// Puts a keeper in maintenance (never elected, never a synchronous standby) or takes it out.
pub async fn set_maintenance(store: &ClusterStore, keeper_uid: &str, on: bool) -> Result<Modified<bool>, CtlError> {
    modify_cluster_data(store, MAX_ATTEMPTS, |cd| {
        let keeper = cd.keepers.get_mut(keeper_uid).ok_or_else(|| CtlError::KeeperNotFound(keeper_uid.to_string()))?;
        if keeper.spec.maintenance == on {
            return Ok(Decision::Keep(false));
        }
        keeper.spec.maintenance = on;
        Ok(Decision::Write(true))
    })
    .await
}
