//! Mapping etcd-client errors to [`StoreError`] kinds.

use crate::StoreError;

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
        E::TransportError(e) => unavailable(endpoints, &format!("transport error: {e}")),
        E::IoError(e) => unavailable(endpoints, &format!("io error: {e}")),
        E::GRpcStatus(status) => classify(i32::from(status.code()), status.message(), key, endpoints),
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
    }
}
