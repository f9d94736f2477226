//! Mapping Consul's answers (rs-consul errors and raw HTTP statuses) to [`StoreError`] kinds.

use std::time::Duration;

use rs_consul::ConsulError;

use crate::StoreError;

/// A failed attempt: either Consul has no leader yet (the caller retries until its bound), or a final error.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Consul answered "No cluster leader".
    NoLeader,
    /// Anything else.
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// The error given once Consul still has no leader when the bound runs out.
pub(crate) fn no_leader(endpoint: &str, waited: Duration) -> StoreError {
    StoreError::Unavailable {
        endpoints: endpoint.to_string(),
        reason: format!("Consul has no leader (no server elected yet); retried for {waited:?}"),
    }
}

/// A transport failure (connection refused, reset, TLS handshake, body read).
pub(crate) fn transport(endpoint: &str, err: &(dyn std::error::Error + 'static)) -> StoreError {
    let reason = crate::error::error_chain(err);
    if reason.contains("certificate") || reason.contains("tls") || reason.contains("TLS") {
        return StoreError::Auth(format!("TLS failure talking to Consul at {endpoint}: {reason}"));
    }
    StoreError::Unavailable { endpoints: endpoint.to_string(), reason }
}

/// Maps a non-success HTTP answer of Consul on `key`.
pub(crate) fn from_status(status: u16, body: &str, key: &str, endpoint: &str, has_token: bool) -> Fail {
    let body = body.trim();
    match status {
        403 => {
            let which = if has_token { "the configured ACL token" } else { "the request without an ACL token" };
            Fail::Store(StoreError::Auth(format!(
                "Consul at {endpoint} refused {which} on {key} (HTTP 403: {body}); set a valid token with \
                 --store-token or CONSUL_HTTP_TOKEN"
            )))
        }
        404 => Fail::Store(StoreError::NotFound { key: key.to_string() }),
        413 => Fail::Store(StoreError::InvalidData {
            key: key.to_string(),
            reason: format!("value too large for Consul (its limits.kv_max_value_size): {body}"),
        }),
        500 if body.contains("No cluster leader") => Fail::NoLeader,
        429 | 502 | 503 | 504 => Fail::Store(StoreError::Unavailable {
            endpoints: endpoint.to_string(),
            reason: format!("HTTP {status}: {body}"),
        }),
        500 if is_transient_500(body) => Fail::Store(StoreError::Unavailable {
            endpoints: endpoint.to_string(),
            reason: format!("HTTP 500: {body}"),
        }),
        _ => Fail::Store(StoreError::Backend { key: key.to_string(), reason: format!("HTTP {status}: {body}") }),
    }
}

/// 500 answers that mean the agent could not reach the servers rather than a refused operation.
fn is_transient_500(body: &str) -> bool {
    ["rpc error making call", "connection refused", "i/o timeout", "EOF", "no servers", "rpc error getting client"]
        .iter()
        .any(|p| body.contains(p))
}

/// True when Consul refused an operation because the session does not exist (expired or destroyed).
pub(crate) fn is_invalid_session(err: &StoreError) -> bool {
    matches!(err, StoreError::Backend { reason, .. } if reason.to_ascii_lowercase().contains("invalid session"))
}

/// Maps an rs-consul error on `key`.
pub(crate) fn from_consul(err: ConsulError, key: &str, endpoint: &str, has_token: bool) -> Fail {
    match err {
        ConsulError::UnexpectedResponseCode(status, body) => {
            from_status(status.as_u16(), body.as_deref().unwrap_or(""), key, endpoint, has_token)
        }
        ConsulError::ResponseError(e) => Fail::Store(transport(endpoint, &e)),
        ConsulError::InvalidResponse(e) => Fail::Store(transport(endpoint, &e)),
        ConsulError::TimeoutExceeded(d) => Fail::Store(StoreError::Timeout { key: key.to_string(), timeout: d }),
        e @ (ConsulError::InvalidUtf8(_)
        | ConsulError::InvalidBase64(_)
        | ConsulError::ResponseDeserializationFailed(_)
        | ConsulError::ResponseStringDeserializationFailed(_)) => Fail::Store(StoreError::InvalidData {
            key: key.to_string(),
            reason: format!("Consul returned a value this backend cannot read (values must be UTF-8): {e}"),
        }),
        other => Fail::Store(StoreError::Backend { key: key.to_string(), reason: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(f: Fail) -> StoreError {
        match f {
            Fail::Store(e) => e,
            Fail::NoLeader => panic!("unexpected NoLeader"),
        }
    }

    #[test]
    fn refused_token_is_an_auth_error_that_says_so() {
        let e = store(from_status(403, "ACL not found", "k", "http://a:1", true));
        let s = e.to_string();
        assert!(matches!(e, StoreError::Auth(_)), "{e:?}");
        assert!(s.contains("refused the configured ACL token") && s.contains("ACL not found"), "{s}");
        let s = store(from_status(403, "Permission denied", "k", "http://a:1", false)).to_string();
        assert!(s.contains("without an ACL token"), "{s}");
    }

    #[test]
    fn no_leader_is_retried_and_reported_clearly() {
        assert!(matches!(from_status(500, "No cluster leader", "k", "e", false), Fail::NoLeader));
        let s = no_leader("http://a:1", Duration::from_secs(3)).to_string();
        assert!(s.contains("Consul has no leader") && s.contains("http://a:1"), "{s}");
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert!(matches!(store(from_status(404, "", "k", "e", false)), StoreError::NotFound { .. }));
        assert!(matches!(store(from_status(413, "", "k", "e", false)), StoreError::InvalidData { .. }));
        assert!(store(from_status(503, "", "k", "e", false)).is_transient());
        assert!(store(from_status(500, "rpc error making call: EOF", "k", "e", false)).is_transient());
        let e = store(from_status(500, "raft apply failed: invalid session \"x\"", "k", "e", false));
        assert!(is_invalid_session(&e), "{e:?}");
        assert!(!is_invalid_session(&store(from_status(500, "other", "k", "e", false))));
    }
}
