//! Member records: TTL keys `P/<kind>/info/<id>`. As [`crate::refresh`] says, a refresh rewrites the value
//! only when it changed (or was last written a minute ago), and otherwise renews the TTL in place with
//! `refresh=true` (which does not wake watchers) only when the key would keep less than a third of its TTL
//! at the owner's next call; an expired or overwritten key is written again.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::http::{Call, Http, Key};
use super::kv;
use crate::refresh::Published as Refresh;
use crate::{MemberRecord, StoreError, StoreResult};

/// What this client last wrote to one member key.
struct Written {
    refresh: Refresh,
    ttl_secs: u64,
    modified_index: u64,
}

/// The member keys this client publishes, to refresh them without rewriting their value.
#[derive(Default)]
pub(crate) struct Published(Mutex<HashMap<String, Written>>);

impl Published {
    /// Creates or refreshes `key` with `value`, expiring `ttl_secs` after its last renewal.
    pub(crate) async fn set(&self, http: &Http, key: &Key, value: &[u8], ttl_secs: u64) -> StoreResult<()> {
        let text = kv::text(key, value)?;
        let name = key.name();
        // One refresh at a time per client: keeps the map and etcd in step.
        let mut published = self.0.lock().await;
        if let Some(w) = published.get_mut(&name).filter(|w| w.ttl_secs == ttl_secs) {
            let plan = w.refresh.plan(value, Instant::now());
            if !plan.write {
                if !plan.renew {
                    return Ok(());
                }
                // Only our own, unchanged key is refreshed: an expired or overwritten key is written again.
                let sent = Instant::now();
                let refresh = Call::put(key)
                    .query("refresh", true)
                    .query("prevExist", true)
                    .query("prevIndex", w.modified_index)
                    .form("ttl", ttl_secs);
                match kv::write(http, refresh).await {
                    Ok(node) => {
                        w.modified_index = node.modified_index;
                        w.refresh.renewed(sent);
                        return Ok(());
                    }
                    Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let sent = Instant::now();
        let node = kv::write(http, Call::put(key).form("value", text).form("ttl", ttl_secs)).await?;
        let refresh = Refresh::new(value, Duration::from_secs(ttl_secs), sent);
        published.insert(name, Written { refresh, ttl_secs, modified_index: node.modified_index });
        Ok(())
    }

    /// Removes `key`; a missing key is not an error.
    pub(crate) async fn delete(&self, http: &Http, key: &Key) -> StoreResult<()> {
        self.0.lock().await.remove(&key.name());
        match http.send(Call::delete(key)).await?.into_result() {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Lists the records (values, not sub-directories) directly under `dir`, sorted by id; a missing directory
/// is an empty list.
pub(crate) async fn list(http: &Http, dir: &Key) -> StoreResult<Vec<MemberRecord>> {
    let (node, _) = kv::get(http, dir).await?;
    Ok(records(node))
}

/// The records (values, not sub-directories) of a listed directory node, sorted by id.
pub(crate) fn records(dir: Option<kv::Node>) -> Vec<MemberRecord> {
    let Some(node) = dir.filter(|n| n.dir) else {
        return Vec::new();
    };
    let mut out: Vec<MemberRecord> = node
        .nodes
        .into_iter()
        .filter(|n| !n.dir)
        .filter_map(|n| {
            let id = n.key.rsplit('/').next().filter(|id| !id.is_empty())?.to_string();
            Some(MemberRecord { id, value: n.value?.into_bytes() })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Rounds a TTL up to whole seconds (etcd v2 TTLs are integers), at least `min`.
pub(crate) fn ttl_secs(ttl: Duration, min: Duration) -> u64 {
    let ttl = ttl.max(min);
    ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds_above_the_minimum() {
        let min = Duration::from_secs(2);
        assert_eq!(ttl_secs(Duration::from_millis(300), min), 2);
        assert_eq!(ttl_secs(Duration::from_secs(20), min), 20);
        assert_eq!(ttl_secs(Duration::from_millis(20_001), min), 21);
    }
}
