//! KV operations through rs-consul: consistent reads, blocking reads, recursive listings, CAS writes with
//! `ModifyIndex` (0 = create-only), session acquire/release, deletes.

use std::time::Duration;

use hyper::Method;
use rs_consul::{ConsistencyMode, CreateOrUpdateKeyRequest, DeleteKeyRequest, ReadKeyRequest, ReadKeyResponse};

use super::errors::{self, Fail};
use super::http::Conn;
use super::keys::{encode_key, encode_query_value};
use crate::{Revision, StoreError, StoreResult};

/// One key as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The full key.
    pub(crate) key: String,
    /// The value.
    pub(crate) value: Vec<u8>,
    /// The index of the last write of this key.
    pub(crate) modify_index: u64,
    /// The session holding the key's lock, if any.
    pub(crate) session: Option<String>,
}

/// The answer to a read: the entry (none when absent) and Consul's index for a following blocking read.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    /// The key, when it exists.
    pub(crate) entry: Option<Entry>,
    /// `X-Consul-Index`: the key's `ModifyIndex` when it exists, else the KV store's index.
    pub(crate) index: u64,
}

/// How a write is conditioned.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Write<'a> {
    /// Check-and-set on `ModifyIndex` (0: only if absent).
    pub(crate) cas: Option<u64>,
    /// Acquire the key's lock for this session.
    pub(crate) acquire: Option<&'a str>,
    /// Release the key's lock held by this session.
    pub(crate) release: Option<&'a str>,
    /// The key's flags.
    pub(crate) flags: u64,
}

fn entry(r: ReadKeyResponse) -> Entry {
    Entry {
        key: r.key,
        value: r.value.map(String::into_bytes).unwrap_or_default(),
        modify_index: u64::try_from(r.modify_index).unwrap_or_default(),
        session: r.session.filter(|s| !s.is_empty()),
    }
}

impl Conn {
    fn dc(&self) -> String {
        encode_query_value(&self.datacenter)
    }

    fn consul_err(&self, e: rs_consul::ConsulError, key: &str) -> Fail {
        errors::from_consul(e, key, &self.base, self.has_token())
    }

    /// Reads `key` with a consistent read. With `block = Some((index, wait))` it is a blocking read that
    /// returns once the key changes after `index`, or after about `wait`; it is then bounded by
    /// `wait` plus Consul's jitter plus the store timeout.
    pub(crate) async fn read(&self, key: &str, block: Option<(u64, Duration)>) -> StoreResult<Read> {
        let limit = match block {
            Some((_, wait)) => wait + wait / 16 + self.timeout,
            None => self.timeout,
        };
        let encoded = encode_key(key);
        let dc = self.dc();
        self.call_within(key, limit, || async {
            // rs-consul drops X-Consul-Index on a 404, so the index of a missing key is asked for on the raw
            // path; if the key appeared in between, read it again.
            for _ in 0..3 {
                let req = ReadKeyRequest {
                    key: &encoded,
                    datacenter: &dc,
                    consistency: ConsistencyMode::Consistent,
                    index: block.map(|(i, _)| i.max(1)),
                    wait: block.map(|(_, w)| w).unwrap_or_default(),
                    ..Default::default()
                };
                match self.kv.read_key(req).await {
                    Ok(meta) => {
                        let entry = meta.response.into_iter().map(entry).find(|e| e.key == key);
                        return Ok(Read { entry, index: meta.index });
                    }
                    Err(e) => match self.consul_err(e, key) {
                        Fail::Store(StoreError::NotFound { .. }) => {
                            if let Some(index) = self.missing_key_index(&encoded, key).await? {
                                return Ok(Read { entry: None, index });
                            }
                        }
                        other => return Err(other),
                    },
                }
            }
            Err(Fail::Store(StoreError::Backend {
                key: key.to_string(),
                reason: "the key kept appearing and disappearing while being read".into(),
            }))
        })
        .await
    }

    /// The index Consul reports for `key` when it is missing; `None` if it exists now.
    async fn missing_key_index(&self, encoded: &str, key: &str) -> Result<Option<u64>, Fail> {
        let url = self.url(&format!("/v1/kv/{encoded}"), &[("consistent", "")]);
        let reply = self.raw(Method::GET, url, None).await?;
        match reply.status {
            404 => Ok(Some(reply.index.unwrap_or(0))),
            200 => Ok(None),
            s => Err(errors::from_status(s, &String::from_utf8_lossy(&reply.body), key, &self.base, self.has_token())),
        }
    }

    /// Every key under `prefix` (a consistent recursive read); empty when there is none.
    pub(crate) async fn list(&self, prefix: &str) -> StoreResult<Vec<Entry>> {
        let encoded = encode_key(prefix);
        let dc = self.dc();
        self.call(prefix, || async {
            let req = ReadKeyRequest {
                key: &encoded,
                datacenter: &dc,
                recurse: true,
                consistency: ConsistencyMode::Consistent,
                ..Default::default()
            };
            match self.kv.read_key(req).await {
                Ok(meta) => Ok(meta.response.into_iter().map(entry).collect()),
                Err(e) => match self.consul_err(e, prefix) {
                    Fail::Store(StoreError::NotFound { .. }) => Ok(Vec::new()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// Writes `key`; false when the condition (CAS, acquire) did not hold.
    pub(crate) async fn write(&self, key: &str, value: &[u8], how: Write<'_>) -> StoreResult<bool> {
        let encoded = encode_key(key);
        let dc = self.dc();
        let cas = match how.cas.map(i64::try_from) {
            None => None,
            Some(Ok(i)) => Some(i),
            Some(Err(_)) => {
                return Err(StoreError::InvalidData { key: key.to_string(), reason: "revision out of range".into() });
            }
        };
        self.call(key, || async {
            let req = CreateOrUpdateKeyRequest {
                key: &encoded,
                datacenter: &dc,
                flags: how.flags,
                check_and_set: cas,
                acquire: how.acquire.unwrap_or(""),
                release: how.release.unwrap_or(""),
                ..Default::default()
            };
            self.kv
                .create_or_update_key(req, value.to_vec())
                .await
                .map(|(ok, _)| ok)
                .map_err(|e| self.consul_err(e, key))
        })
        .await
    }

    /// Deletes `key` (deleting a missing key is not an error).
    pub(crate) async fn delete(&self, key: &str) -> StoreResult<()> {
        let encoded = encode_key(key);
        let dc = self.dc();
        self.call(key, || async {
            let req = DeleteKeyRequest { key: &encoded, datacenter: &dc, ..Default::default() };
            match self.kv.delete_key(req).await {
                Ok(_) => Ok(()),
                Err(e) => match self.consul_err(e, key) {
                    Fail::Store(StoreError::NotFound { .. }) => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    /// The revision of a write of `value` to `key` that just succeeded. Consul does not return the index of
    /// a KV write, so the key is read back: if it still holds `value`, its `ModifyIndex` is the revision.
    /// If another writer came in between, our write's index lies before the current one, so the index just
    /// below the current one is returned: a CAS with it fails (the key's index only grows), and a watch
    /// from it delivers the later write, which is what a caller holding our write must see.
    pub(crate) async fn written_revision(&self, key: &str, value: &[u8]) -> StoreResult<Revision> {
        let read = self.read(key, None).await?;
        Ok(Revision::from_index(match read.entry {
            Some(e) if e.value == value => e.modify_index,
            Some(e) => e.modify_index.saturating_sub(1),
            None => read.index.saturating_sub(1),
        }))
    }
}
