//! Nodes of the v2 keyspace: reading them (quorum reads) and writing them with etcd's conditions.

use serde::Deserialize;

use super::errors::{EtcdError, code};
use super::http::{Call, Http, Key, Reply};
use crate::{Document, Revision, StoreError, StoreResult};

/// A node of the v2 keyspace as etcd returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct Node {
    /// The full key, with a leading `/`.
    pub key: String,
    /// The value; absent on directories and deletions.
    #[serde(default)]
    pub value: Option<String>,
    /// True for directories.
    #[serde(default)]
    pub dir: bool,
    /// The children of a listed directory.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// The etcd index of the last change: the revision used for compare-and-swap.
    #[serde(rename = "modifiedIndex", default)]
    pub modified_index: u64,
}

impl Node {
    /// The node as a document, when it holds a value.
    pub(crate) fn document(&self) -> StoreResult<Document> {
        match (&self.value, self.dir) {
            (Some(v), false) => {
                Ok(Document { value: v.as_bytes().to_vec(), revision: Revision::from_index(self.modified_index) })
            }
            _ => Err(StoreError::InvalidData { key: self.key.clone(), reason: "is a directory, not a value".into() }),
        }
    }
}

/// The body of a successful keys API answer (and of a watch event).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct Answer {
    /// `get`, `set`, `create`, `update`, `compareAndSwap`, `delete`, `compareAndDelete`, `expire`.
    pub action: String,
    /// The node after the action.
    pub node: Node,
}

impl Answer {
    /// Parses the body of a successful reply.
    pub(crate) fn parse(reply: &Reply) -> StoreResult<Answer> {
        serde_json::from_slice(&reply.body).map_err(|e| StoreError::InvalidData {
            key: reply.key.clone(),
            reason: format!("unexpected answer from etcd at {}: {e}", reply.endpoint),
        })
    }

    /// True when the action removed the key (deleted, compare-and-deleted, expired).
    pub(crate) fn is_removal(&self) -> bool {
        matches!(self.action.as_str(), "delete" | "compareAndDelete" | "expire")
    }
}

/// Reads `key` with a quorum read; `None` when it does not exist. Also returns the etcd index at which the
/// read was served (from `X-Etcd-Index`, or the error body of a missing key).
pub(crate) async fn get(http: &Http, key: &Key) -> StoreResult<(Option<Node>, u64)> {
    let reply = http.send(Call::get(key).query("quorum", true)).await?;
    if let Some(EtcdError { code: code::KEY_NOT_FOUND, index, .. }) = reply.etcd_error() {
        return Ok((None, reply.etcd_index.unwrap_or(index)));
    }
    let reply = reply.into_result()?;
    let index = reply.etcd_index.unwrap_or_default();
    Ok((Some(Answer::parse(&reply)?.node), index))
}

/// Sends a write and returns the node it produced.
pub(crate) async fn write(http: &Http, call: Call<'_>) -> StoreResult<Node> {
    let reply = http.send(call).await?.into_result()?;
    Ok(Answer::parse(&reply)?.node)
}

/// A value as etcd v2 stores it: text. Stolon's values are JSON; other bytes are refused rather than altered.
pub(crate) fn text<'a>(key: &Key, value: &'a [u8]) -> StoreResult<&'a str> {
    std::str::from_utf8(value).map_err(|_| StoreError::InvalidData {
        key: key.name(),
        reason: "etcd v2 stores text values; this value is not valid UTF-8".into(),
    })
}

/// The modifiedIndex a revision stands for.
pub(crate) fn index_of(key: &Key, rev: &Revision) -> StoreResult<u64> {
    rev.index().ok_or_else(|| StoreError::InvalidData {
        key: key.name(),
        reason: format!("revision {rev} is not an etcd v2 modifiedIndex"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_nodes_parse() {
        let body = br#"{"action":"get","node":{"key":"/a","dir":true,"nodes":[
            {"key":"/a/k1","value":"v1","modifiedIndex":7,"createdIndex":7},
            {"key":"/a/d","dir":true,"modifiedIndex":8,"createdIndex":8}],"modifiedIndex":4,"createdIndex":4}}"#;
        let a: Answer = serde_json::from_slice(body).unwrap();
        assert!(a.node.dir && !a.is_removal());
        assert_eq!(a.node.nodes[0].document().unwrap().revision, Revision::from_index(7));
        assert!(a.node.nodes[1].document().is_err());
        let body = br#"{"action":"expire","node":{"key":"/a/l","modifiedIndex":9,"createdIndex":4},
            "prevNode":{"key":"/a/l","value":"c1","modifiedIndex":5,"createdIndex":4}}"#;
        let a: Answer = serde_json::from_slice(body).unwrap();
        assert!(a.is_removal());
        assert_eq!(a.node.value, None);
    }

    #[test]
    fn values_must_be_text_and_revisions_numbers() {
        let k = Key::new("a/b");
        assert_eq!(text(&k, b"{}").unwrap(), "{}");
        assert!(matches!(text(&k, &[0xff, 0xfe]), Err(StoreError::InvalidData { .. })));
        assert_eq!(index_of(&k, &Revision::from_index(12)).unwrap(), 12);
        assert!(index_of(&k, &Revision::new("abc")).is_err());
    }
}
