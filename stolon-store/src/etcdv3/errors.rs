//! Mapping etcd-client errors to [`StoreError`] kinds.

use crate::StoreError;
use crate::error::is_tls_failure;

/// gRPC status codes we tell apart (numeric values of the gRPC specification).
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const DEADLINE_EXCEEDED: i32 = 4;
const NOT_FOUND: i32 = 5;
const PERMISSION_DENIED: i32 = 7;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

/// Maps an etcd-client error on `key` to a store error kind, naming the endpoints for connectivity failures.
pub(crate) fn map_err(err: etcd_client::Error, key: &str, endpoints: &str) -> StoreError {
    use etcd_client::Error as E;
    match err {
        E::TransportError(e) => connection_failure(endpoints, &crate::error::error_chain(&e)),
        E::IoError(e) => connection_failure(endpoints, &crate::error::error_chain(&e)),
        E::GRpcStatus(status) => {
            let reason = crate::error::error_chain(&status);
            if is_tls_failure(&reason) {
                return tls_failure(endpoints, &reason);
            }
            classify(i32::from(status.code()), status.message(), key, endpoints)
        }
        E::InvalidUri(e) => StoreError::Config(format!("--store-endpoints {endpoints}: {e}")),
        E::InvalidArgs(e) | E::EndpointError(e) => StoreError::Config(e),
        E::LeaseKeepAliveError(e) if e.contains("not found") => StoreError::NotFound { key: key.to_string() },
        E::WatchError(e) | E::LeaseKeepAliveError(e) => unavailable(endpoints, &e),
        other => StoreError::Backend { key: key.to_string(), reason: other.to_string() },
    }
}

/// Maps a gRPC status (code and message) on `key` to a store error kind.
fn classify(code: i32, message: &str, key: &str, endpoints: &str) -> StoreError {
    match code {
        UNAVAILABLE | DEADLINE_EXCEEDED | CANCELLED => unavailable(endpoints, message),
        UNAUTHENTICATED | PERMISSION_DENIED => StoreError::Auth(format!("etcd refused access to {key}: {message}")),
        NOT_FOUND => StoreError::NotFound { key: key.to_string() },
        // tonic reports a connection that broke mid-request as Unknown "transport error".
        UNKNOWN if is_connection_failure(message) => unavailable(endpoints, message),
        code => StoreError::Backend { key: key.to_string(), reason: format!("grpc code {code}: {message}") },
    }
}

fn is_connection_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["transport error", "connection", "broken pipe", "h2 protocol error"].iter().any(|needle| m.contains(needle))
}

/// A failed connection: a TLS failure (an unknown server certificate, a refused client certificate) is an
/// authentication error that says so, anything else makes the store unavailable.
fn connection_failure(endpoints: &str, reason: &str) -> StoreError {
    if is_tls_failure(reason) { tls_failure(endpoints, reason) } else { unavailable(endpoints, reason) }
}

fn tls_failure(endpoints: &str, reason: &str) -> StoreError {
    StoreError::Auth(format!("TLS failure talking to etcd at {endpoints}: {reason}"))
}

fn unavailable(endpoints: &str, reason: &str) -> StoreError {
    StoreError::Unavailable { endpoints: endpoints.to_string(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_connections_are_unavailable() {
        assert!(classify(UNKNOWN, "transport error", "k", "e").is_transient());
        assert!(classify(UNAVAILABLE, "connection refused", "k", "e").is_transient());
        assert!(matches!(classify(UNKNOWN, "some server bug", "k", "e"), StoreError::Backend { .. }));
        assert!(matches!(classify(UNAUTHENTICATED, "invalid auth token", "k", "e"), StoreError::Auth(_)));
        assert!(matches!(classify(NOT_FOUND, "requested lease not found", "k", "e"), StoreError::NotFound { .. }));
        let e = connection_failure("https://a:1", "https://a:1: invalid peer certificate: UnknownIssuer");
        assert!(matches!(&e, StoreError::Auth(m) if m.contains("TLS failure")), "{e}");
        assert!(connection_failure("https://a:1", "tcp connect error: Connection refused").is_transient());
    }
}
