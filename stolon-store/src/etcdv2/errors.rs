//! Mapping etcd v2 error bodies and HTTP client failures to [`StoreError`] kinds.

use serde::Deserialize;

use crate::StoreError;

/// The error message given when an etcd answers 404 without an etcd error body on `/v2/keys`.
pub(crate) const V2_DISABLED: &str =
    "etcd v2 API not enabled: start etcd with --enable-v2=true (removed in etcd 3.6); or use --store-backend etcdv3";

/// etcd v2 error codes we tell apart (etcd's `v2error` package).
pub(crate) mod code {
    /// The key does not exist.
    pub const KEY_NOT_FOUND: u64 = 100;
    /// A `prevIndex`/`prevValue` condition did not hold.
    pub const TEST_FAILED: u64 = 101;
    /// A `prevExist=false` create found the key.
    pub const NODE_EXIST: u64 = 105;
    /// Authentication required or refused.
    pub const UNAUTHORIZED: u64 = 110;
    /// Raft could not serve the request (no leader, internal error).
    pub const RAFT_INTERNAL: u64 = 300;
    /// A leader election is under way.
    pub const LEADER_ELECT: u64 = 301;
    /// The watcher was dropped by the server (too slow).
    pub const WATCHER_CLEARED: u64 = 400;
    /// The requested watch index is older than the server's event history (1000 events).
    pub const EVENT_INDEX_CLEARED: u64 = 401;
}

/// The JSON body etcd v2 returns with a failed request.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct EtcdError {
    /// etcd's numeric error code.
    #[serde(rename = "errorCode")]
    pub code: u64,
    /// etcd's message.
    #[serde(default)]
    pub message: String,
    /// Usually the key concerned.
    #[serde(default)]
    pub cause: String,
    /// The etcd index when the error happened.
    #[serde(default)]
    pub index: u64,
}

impl EtcdError {
    /// Parses an etcd error body; `None` when the body is not one.
    pub(crate) fn parse(body: &[u8]) -> Option<EtcdError> {
        serde_json::from_slice(body).ok()
    }

    /// `message (cause)`, as etcd said it.
    pub(crate) fn describe(&self) -> String {
        if self.cause.is_empty() {
            format!("etcd error {}: {}", self.code, self.message)
        } else {
            format!("etcd error {}: {} ({})", self.code, self.message, self.cause)
        }
    }

    /// The store error for this etcd error on `key`.
    pub(crate) fn into_store_error(self, key: &str, endpoint: &str) -> StoreError {
        let key = key.to_string();
        match self.code {
            code::KEY_NOT_FOUND => StoreError::NotFound { key },
            code::TEST_FAILED | code::NODE_EXIST => StoreError::Conflict { key, reason: self.describe() },
            code::UNAUTHORIZED => StoreError::Auth(format!("etcd refused access to {key}: {}", self.describe())),
            code::RAFT_INTERNAL | code::LEADER_ELECT | code::WATCHER_CLEARED => {
                StoreError::Unavailable { endpoints: endpoint.to_string(), reason: self.describe() }
            }
            _ => StoreError::Backend { key, reason: self.describe() },
        }
    }
}

/// The store error for a non-success HTTP answer on `key` whose body is `body`.
pub(crate) fn from_response(status: u16, body: &[u8], key: &str, endpoint: &str) -> StoreError {
    if let Some(e) = EtcdError::parse(body) {
        return e.into_store_error(key, endpoint);
    }
    let text = snippet(body);
    match status {
        // A missing key answers 404 with an etcd error body; a bare 404 means there is no v2 API at all.
        404 => StoreError::Config(format!("{V2_DISABLED} (etcd at {endpoint} answered 404 {text:?})")),
        401 | 403 => StoreError::Auth(format!("etcd at {endpoint} refused access to {key}: HTTP {status} {text}")),
        500..=599 => {
            StoreError::Unavailable { endpoints: endpoint.to_string(), reason: format!("HTTP {status} {text}") }
        }
        _ => StoreError::Backend { key: key.to_string(), reason: format!("HTTP {status} from {endpoint}: {text}") },
    }
}

/// The store error for a request that got no HTTP answer from `endpoint`.
pub(crate) fn from_transport(err: &hyper_util::client::legacy::Error, endpoint: &str) -> StoreError {
    let chain = crate::error::error_chain(err);
    if is_tls_failure(err) {
        return StoreError::Auth(format!("TLS with etcd at {endpoint} failed: {chain}"));
    }
    StoreError::Unavailable { endpoints: endpoint.to_string(), reason: chain }
}

/// True when a rustls error (certificate, handshake) is somewhere in the causes of `err`.
fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && (inner.downcast_ref::<rustls::Error>().is_some() || is_tls_failure(inner))
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// At most 200 characters of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "http://127.0.0.1:2379";

    #[test]
    fn etcd_error_bodies_map_to_kinds_with_the_key() {
        let body = br#"{"errorCode":105,"message":"Key already exists","cause":"/a/b","index":7}"#;
        match from_response(412, body, "/a/b", EP) {
            StoreError::Conflict { key, reason } => {
                assert_eq!(key, "/a/b");
                assert!(reason.contains("105") && reason.contains("Key already exists"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = br#"{"errorCode":101,"message":"Compare failed","cause":"[3 != 4]","index":7}"#;
        assert!(from_response(412, body, "k", EP).is_conflict());
        let body = br#"{"errorCode":100,"message":"Key not found","cause":"/k","index":6}"#;
        assert!(matches!(from_response(404, body, "k", EP), StoreError::NotFound { .. }));
        let body = br#"{"errorCode":110,"message":"The request requires user authentication"}"#;
        assert!(matches!(from_response(401, body, "k", EP), StoreError::Auth(_)));
        let body = br#"{"errorCode":300,"message":"Raft Internal Error"}"#;
        assert!(from_response(500, body, "k", EP).is_transient());
        let body = br#"{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"ttl\""}"#;
        let e = from_response(400, body, "k", EP).to_string();
        assert!(e.contains("k") && e.contains("209") && e.contains("Invalid field"), "{e}");
    }

    #[test]
    fn a_bare_404_means_the_v2_api_is_disabled() {
        let e = from_response(404, b"404 page not found\n", "/stolon/cluster/c/clusterdata", EP);
        match e {
            StoreError::Config(msg) => {
                assert!(msg.contains("etcd v2 API not enabled") && msg.contains("--enable-v2=true"), "{msg}");
                assert!(msg.contains("3.6"), "{msg}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn other_bare_answers_are_classified() {
        assert!(matches!(from_response(401, b"unauthorized", "k", EP), StoreError::Auth(_)));
        assert!(from_response(503, b"", "k", EP).is_transient());
        assert!(matches!(from_response(400, b"bad", "k", EP), StoreError::Backend { .. }));
    }

    #[test]
    fn snippets_are_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(snippet(long.as_bytes()).len(), 203);
        assert_eq!(snippet(b" short \n"), "short");
    }
}
