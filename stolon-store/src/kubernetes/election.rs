//! Leader election compatible with client-go's `leaderelection` on a ConfigMap lock, as stolon's sentinels
//! run it: the record lives in the annotation `control-plane.alpha.kubernetes.io/leader` of the cluster's
//! ConfigMap, and every write carries the ConfigMap's resourceVersion as a precondition.
//!
//! Timing follows stolon's 15 s lease, 10 s renew deadline and 2 s retry period, scaled to the lease (`ttl`):
//! - a candidate takes the record when it is free, or when it has seen it unchanged for the holder's lease on
//!   its own clock;
//! - the holder renews every retry period, and declares leadership lost when no renewal that it started within
//!   the last renew deadline has succeeded. Since the renew deadline is shorter than the lease, the holder
//!   gives up before anyone else may take over;
//! - resigning writes a released record (no holder), so that a waiting candidate takes over at once. Waiting
//!   candidates watch the ConfigMap to notice that without waiting for their next retry.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::WatchParams;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::record::{self, LEADER_ANNOTATION, LeaderRecord};
use super::{Inner, MIN_TTL, configmap};
use crate::{Leadership, LeadershipEnd, ResignSignal, StoreError, StoreResult};

/// The lease, renew deadline and retry period for a lease of `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    lease: Duration,
    renew_deadline: Duration,
    retry: Duration,
}

impl Timing {
    /// stolon's 15 s / 10 s / 2 s, scaled to `ttl` rounded up to whole seconds (at least [`MIN_TTL`]).
    fn for_ttl(ttl: Duration) -> Timing {
        let ttl = ttl.max(MIN_TTL);
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let lease = Duration::from_secs(secs);
        Timing { lease, renew_deadline: lease * 10 / 15, retry: lease * 2 / 15 }
    }
}

/// The current holder of the leader record.
pub(crate) async fn leader(inner: &Inner) -> StoreResult<Option<String>> {
    let Some(cm) = configmap::get(inner).await? else { return Ok(None) };
    let rec = read_record(inner, &cm)?;
    Ok(rec.holder().map(str::to_string))
}

fn read_record(inner: &Inner, cm: &k8s_openapi::api::core::v1::ConfigMap) -> StoreResult<LeaderRecord> {
    let text = configmap::annotation(cm, LEADER_ANNOTATION).unwrap_or("");
    LeaderRecord::decode(text).map_err(|e| StoreError::InvalidData {
        key: format!("configmaps/{} annotation {LEADER_ANNOTATION}", inner.resource),
        reason: format!("undecodable leader record: {e}"),
    })
}

/// The last record seen and when we first saw it (on our clock).
struct Observed {
    raw: Option<String>,
    since: Instant,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs for leadership as `candidate`; returns once elected.
pub(crate) async fn campaign(inner: Arc<Inner>, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
    let timing = Timing::for_ttl(ttl);
    let wake = Arc::new(Notify::new());
    let _watcher = AbortOnDrop(tokio::spawn(wake_on_change(inner.clone(), wake.clone(), timing.retry)));
    let mut observed: Option<Observed> = None;
    loop {
        let started = Instant::now();
        match try_take(&inner, candidate, timing, &mut observed).await {
            Ok(true) => {
                let (inner, me) = (inner.clone(), candidate.to_string());
                return Ok(Leadership::spawn(candidate, move |resign| hold(inner, me, timing, started, resign)));
            }
            Ok(false) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.retry) => {}
            _ = wake.notified() => {}
        }
    }
}

/// One attempt to take (or keep) the record; true when we hold it now.
async fn try_take(inner: &Inner, me: &str, timing: Timing, observed: &mut Option<Observed>) -> StoreResult<bool> {
    let cm = configmap::get(inner).await?;
    let raw = cm.as_ref().and_then(|cm| configmap::annotation(cm, LEADER_ANNOTATION)).map(str::to_string);
    let now = Instant::now();
    let since = match observed {
        Some(o) if o.raw == raw => o.since,
        _ => {
            *observed = Some(Observed { raw: raw.clone(), since: now });
            now
        }
    };
    let old = match &cm {
        Some(cm) => read_record(inner, cm)?,
        None => LeaderRecord::default(),
    };
    if !record::may_take(&old, me, now.duration_since(since)) {
        return Ok(false);
    }
    let new = record::taken_by(&old, me, timing.lease, Timestamp::now()).encode();
    let written = match &cm {
        None => configmap::create(inner, LEADER_ANNOTATION, &new).await,
        Some(cm) => {
            let rv = configmap::revision(inner, cm)?;
            configmap::patch_annotation(inner, Some(rv.as_str()), LEADER_ANNOTATION, Some(&new)).await
        }
    };
    match written {
        Ok(_) => {
            *observed = Some(Observed { raw: Some(new), since: Instant::now() });
            Ok(true)
        }
        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a renewal found.
enum Renewal {
    Renewed,
    TakenBy(String),
}

/// Keeps leadership until resigned or lost.
async fn hold(
    inner: Arc<Inner>,
    me: String,
    timing: Timing,
    acquired: Instant,
    mut resign: ResignSignal,
) -> StoreResult<LeadershipEnd> {
    let mut last_ok = acquired;
    loop {
        let deadline = last_ok + timing.renew_deadline;
        tokio::select! {
            _ = resign.requested() => {
                return Ok(match release(&inner, &me).await {
                    Ok(()) => LeadershipEnd::Resigned,
                    Err(e) => LeadershipEnd::Lost(format!("could not release the leader record ({e}); it expires after its lease")),
                });
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(LeadershipEnd::Lost(format!(
                    "no renewal of the leader record succeeded within the renew deadline of {:?}",
                    timing.renew_deadline
                )));
            }
            _ = tokio::time::sleep(timing.retry) => {
                let started = Instant::now();
                match tokio::time::timeout_at(deadline, renew(&inner, &me, timing)).await {
                    Ok(Ok(Renewal::Renewed)) => last_ok = started,
                    Ok(Ok(Renewal::TakenBy(other))) => {
                        let by = if other.is_empty() { "nobody (released by someone else)".to_string() } else { other };
                        return Ok(LeadershipEnd::Lost(format!("the leader record now names {by}")));
                    }
                    Ok(Err(e)) => tracing::debug!(candidate = %me, error = %e, "leader record renewal failed"),
                    Err(_) => {}
                }
            }
        }
    }
}

/// Renews our record, retrying at once when the ConfigMap changed under us (e.g. a cluster document write).
async fn renew(inner: &Inner, me: &str, timing: Timing) -> StoreResult<Renewal> {
    loop {
        let cm = configmap::get(inner)
            .await?
            .ok_or_else(|| StoreError::NotFound { key: format!("configmaps/{}", inner.resource) })?;
        let old = read_record(inner, &cm)?;
        if old.holder() != Some(me) {
            return Ok(Renewal::TakenBy(old.holder_identity));
        }
        let rv = configmap::revision(inner, &cm)?;
        let new = record::taken_by(&old, me, timing.lease, Timestamp::now()).encode();
        match configmap::patch_annotation(inner, Some(rv.as_str()), LEADER_ANNOTATION, Some(&new)).await {
            Ok(_) => return Ok(Renewal::Renewed),
            Err(StoreError::Conflict { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return Err(e),
        }
    }
}

/// Writes a released record if we still hold it.
async fn release(inner: &Inner, me: &str) -> StoreResult<()> {
    for _ in 0..10 {
        let Some(cm) = configmap::get(inner).await? else { return Ok(()) };
        let old = read_record(inner, &cm)?;
        if old.holder() != Some(me) {
            return Ok(());
        }
        let rv = configmap::revision(inner, &cm)?;
        let new = record::released(&old, Timestamp::now()).encode();
        match configmap::patch_annotation(inner, Some(rv.as_str()), LEADER_ANNOTATION, Some(&new)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict {
        key: format!("configmaps/{}", inner.resource),
        reason: "the ConfigMap kept changing while releasing leadership".into(),
    })
}

/// Wakes a waiting candidate whenever the ConfigMap changes, so that a release is noticed at once. Polling
/// by the campaign loop goes on regardless; a failing watch is only retried after `pause`.
async fn wake_on_change(inner: Arc<Inner>, wake: Arc<Notify>, pause: Duration) {
    let params = WatchParams::default().fields(&format!("metadata.name={}", inner.resource)).timeout(290);
    loop {
        let api = inner.configmaps();
        let op = inner.op("watch", "configmaps", Some(&inner.resource));
        if let Ok(mut stream) = inner.call(op, api.watch(&params, "0")).await.map(|s| s.boxed()) {
            while let Some(Ok(_)) = stream.next().await {
                wake.notify_one();
            }
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stolon_timing_scales_with_the_lease() {
        let t = Timing::for_ttl(Duration::from_secs(15));
        assert_eq!(
            t,
            Timing {
                lease: Duration::from_secs(15),
                renew_deadline: Duration::from_secs(10),
                retry: Duration::from_secs(2)
            }
        );
        let short = Timing::for_ttl(Duration::from_millis(100));
        assert_eq!(short.lease, MIN_TTL);
        assert!(short.renew_deadline < short.lease && short.retry < short.renew_deadline);
        assert_eq!(Timing::for_ttl(Duration::from_millis(4500)).lease, Duration::from_secs(5));
    }
}
