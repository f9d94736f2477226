//! Leader election compatible with stolon's etcdv2 sentinels: whoever creates the TTL key
//! `P/sentinel-leader` (`prevExist=false`, value = candidate id) leads, refreshing it every third of its TTL
//! with `refresh=true&prevIndex=<our index>` so that it never refreshes a key it does not own. Waiting
//! candidates watch the key and try again when it is deleted or expires; resigning is a compare-and-delete.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::{Call, Http, Key};
use super::kv::{self, Answer};
use super::watch::{Poll, poll_once, poll_window};
use crate::{Leadership, LeadershipEnd, ResignSignal, StoreError, StoreResult};

/// Pause before retrying after a failed refresh or a broken watch.
const RETRY: Duration = Duration::from_millis(200);

/// The current leader: the value of the leader key, if any.
pub(crate) async fn leader(http: &Http, key: &Key) -> StoreResult<Option<String>> {
    let (node, _) = kv::get(http, key).await?;
    Ok(node.and_then(|n| n.value).filter(|v| !v.is_empty()))
}

/// Runs for leadership on `key` as `candidate` with a TTL of `ttl_secs`; returns once elected. A store error
/// ends the campaign (the caller campaigns again later, as stolon's sentinel does).
pub(crate) async fn campaign(http: Arc<Http>, key: Key, candidate: &str, ttl_secs: u64) -> StoreResult<Leadership> {
    let ttl = Duration::from_secs(ttl_secs);
    loop {
        let sent = Instant::now();
        let create = Call::put(&key).query("prevExist", false).form("value", candidate).form("ttl", ttl_secs);
        match kv::write(&http, create).await {
            Ok(node) => {
                let held = Held { http, key, candidate: candidate.to_string(), ttl, index: node.modified_index };
                return Ok(Leadership::spawn(candidate, move |resign| held.hold(sent, resign)));
            }
            Err(StoreError::Conflict { .. }) => wait_for_vacancy(&http, &key).await?,
            Err(e) => return Err(e),
        }
    }
}

/// Returns once the leader key is gone (or may be: a broken watch also returns, and the next create tells).
async fn wait_for_vacancy(http: &Http, key: &Key) -> StoreResult<()> {
    let (node, index) = kv::get(http, key).await?;
    if node.is_none() {
        return Ok(());
    }
    let window = poll_window(http.timeout);
    let mut wait_index = index + 1;
    loop {
        match poll_once(http, key, wait_index, window).await {
            Ok(Poll::Event(answer)) if answer.is_removal() => return Ok(()),
            Ok(Poll::Event(answer)) => wait_index = answer.node.modified_index + 1,
            Ok(Poll::Quiet { next_index }) => wait_index = next_index,
            Ok(Poll::Cleared) => return Ok(()),
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                return Ok(());
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The leader key we created and keep.
struct Held {
    http: Arc<Http>,
    key: Key,
    candidate: String,
    ttl: Duration,
    /// The key's modifiedIndex after our last write.
    index: u64,
}

impl Held {
    /// Keeps the key, created by a request sent at `created`, until resigned or lost. The key is trusted
    /// until the TTL counted from the moment the last acknowledged write was sent, so the loss is never
    /// declared after the server could expire the key.
    async fn hold(mut self, created: Instant, mut resign: ResignSignal) -> StoreResult<LeadershipEnd> {
        let mut valid_until = created + self.ttl;
        let mut watcher = AbortOnDrop(tokio::spawn(watch_own_key(
            self.http.clone(),
            self.key.clone(),
            self.candidate.clone(),
            self.index + 1,
        )));
        let mut next = created + self.ttl / 3;
        loop {
            tokio::select! {
                _ = resign.requested() => {
                    drop(watcher);
                    return self.release().await;
                }
                reason = &mut watcher.0 => {
                    let reason = reason.unwrap_or_else(|e| format!("watch of the leader key ended: {e}"));
                    return Ok(LeadershipEnd::Lost(reason));
                }
                _ = tokio::time::sleep_until(next.min(valid_until)) => {
                    let sent = Instant::now();
                    if sent >= valid_until {
                        return Ok(LeadershipEnd::Lost(format!(
                            "leader key {} not refreshed within its ttl of {:?}", self.key.name(), self.ttl
                        )));
                    }
                    match tokio::time::timeout(valid_until - sent, self.refresh()).await {
                        Ok(Ok(index)) => {
                            self.index = index;
                            valid_until = sent + self.ttl;
                            next = sent + self.ttl / 3;
                        }
                        Ok(Err(e @ (StoreError::NotFound { .. } | StoreError::Conflict { .. }))) => {
                            return Ok(LeadershipEnd::Lost(format!("leader key expired or taken over: {e}")));
                        }
                        // Unreachable or slow store: retry until the ttl runs out.
                        Ok(Err(_)) | Err(_) => next = Instant::now() + RETRY,
                    }
                }
            }
        }
    }

    /// Refreshes the TTL of our own key; returns its new modifiedIndex.
    async fn refresh(&self) -> StoreResult<u64> {
        let call = Call::put(&self.key)
            .query("refresh", true)
            .query("prevExist", true)
            .query("prevIndex", self.index)
            .form("ttl", self.ttl.as_secs());
        Ok(kv::write(&self.http, call).await?.modified_index)
    }

    /// Deletes the key if it is still ours.
    async fn release(self) -> StoreResult<LeadershipEnd> {
        let call = Call::delete(&self.key).query("prevIndex", self.index);
        match self.http.send(call).await?.into_result() {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(LeadershipEnd::Resigned),
            Err(StoreError::Conflict { reason, .. }) => {
                Ok(LeadershipEnd::Lost(format!("the leader key was no longer ours when resigning: {reason}")))
            }
            Err(e) => Err(e),
        }
    }
}

/// Watches the leader key while we hold it and returns why it is no longer ours: deleted, expired, or
/// written by someone else. Our own refreshes do not wake etcd v2 watchers.
async fn watch_own_key(http: Arc<Http>, key: Key, candidate: String, mut wait_index: u64) -> String {
    let window = poll_window(http.timeout);
    loop {
        match poll_once(&http, &key, wait_index, window).await {
            Ok(Poll::Event(answer)) => {
                if let Some(reason) = not_ours(&answer, &candidate) {
                    return reason;
                }
                wait_index = answer.node.modified_index + 1;
            }
            Ok(Poll::Quiet { next_index }) => wait_index = next_index,
            Ok(Poll::Cleared) => match kv::get(&http, &key).await {
                Ok((Some(node), index)) if node.value.as_deref() == Some(candidate.as_str()) => wait_index = index + 1,
                Ok(_) => return format!("leader key {} no longer holds {candidate}", key.name()),
                Err(_) => tokio::time::sleep(RETRY).await,
            },
            // The refresh loop decides whether an unreachable store costs the leadership.
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}

/// Why a change of the leader key means we lost it, if it does.
fn not_ours(answer: &Answer, candidate: &str) -> Option<String> {
    if answer.is_removal() {
        return Some(format!("leader key {} was removed ({})", answer.node.key, answer.action));
    }
    match answer.node.value.as_deref() {
        Some(v) if v == candidate => None,
        other => Some(format!("leader key {} now holds {:?}", answer.node.key, other.unwrap_or(""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Answer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_removals_and_foreign_values_end_leadership() {
        let ours = answer(r#"{"action":"compareAndSwap","node":{"key":"/l","value":"me","modifiedIndex":5}}"#);
        assert_eq!(not_ours(&ours, "me"), None);
        let theirs = answer(r#"{"action":"set","node":{"key":"/l","value":"other","modifiedIndex":6}}"#);
        assert!(not_ours(&theirs, "me").is_some_and(|r| r.contains("other")));
        let expired = answer(r#"{"action":"expire","node":{"key":"/l","modifiedIndex":7}}"#);
        assert!(not_ours(&expired, "me").is_some_and(|r| r.contains("expire")));
    }
}
