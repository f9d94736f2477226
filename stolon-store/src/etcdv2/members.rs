//! Member records: TTL keys `P/<kind>/info/<id>`, refreshed in place with `refresh=true` while their value is
//! unchanged (which does not wake watchers), rewritten when it changed or the key expired.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;

use super::http::{Call, Http, Key};
use super::kv;
use crate::{MemberRecord, StoreError, StoreResult};

/// What this client last wrote to one member key.
struct Written {
    value: Vec<u8>,
    modified_index: u64,
}

/// The member keys this client publishes, to refresh them without rewriting their value.
#[derive(Default)]
pub(crate) struct Published(Mutex<HashMap<String, Written>>);

impl Published {
    /// Creates or refreshes `key` with `value`, expiring `ttl_secs` after this call.
    pub(crate) async fn set(&self, http: &Http, key: &Key, value: &[u8], ttl_secs: u64) -> StoreResult<()> {
        let text = kv::text(key, value)?;
        let name = key.name();
        let last = self.0.lock().await.get(&name).filter(|w| w.value == value).map(|w| w.modified_index);
        if let Some(index) = last {
            // Only our own, unchanged key is refreshed: an expired or overwritten key is written again.
            let refresh = Call::put(key)
                .query("refresh", true)
                .query("prevExist", true)
                .query("prevIndex", index)
                .form("ttl", ttl_secs);
            match kv::write(http, refresh).await {
                Ok(node) => {
                    self.remember(name, value, node.modified_index).await;
                    return Ok(());
                }
                Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let node = kv::write(http, Call::put(key).form("value", text).form("ttl", ttl_secs)).await?;
        self.remember(name, value, node.modified_index).await;
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

    async fn remember(&self, name: String, value: &[u8], modified_index: u64) {
        self.0.lock().await.insert(name, Written { value: value.to_vec(), modified_index });
    }
}

/// Lists the records (values, not sub-directories) directly under `dir`, sorted by id; a missing directory
/// is an empty list.
pub(crate) async fn list(http: &Http, dir: &Key) -> StoreResult<Vec<MemberRecord>> {
    let (node, _) = kv::get(http, dir).await?;
    let Some(node) = node.filter(|n| n.dir) else {
        return Ok(Vec::new());
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
    Ok(out)
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
