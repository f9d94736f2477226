//! Mapping etcd-client errors to [`StoreError`] kinds.

use crate::StoreError;

/// gRPC status codes we tell apart (numeric values of the gRPC specification).
const CANCELLED: i32 = 1;
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
        E::GRpcStatus(status) => match i32::from(status.code()) {
            UNAVAILABLE | DEADLINE_EXCEEDED | CANCELLED => unavailable(endpoints, status.message()),
            UNAUTHENTICATED | PERMISSION_DENIED => {
                StoreError::Auth(format!("etcd refused access to {key}: {}", status.message()))
            }
            NOT_FOUND => StoreError::NotFound { key: key.to_string() },
            code => {
                StoreError::Backend { key: key.to_string(), reason: format!("grpc code {code}: {}", status.message()) }
            }
        },
        E::InvalidUri(e) => StoreError::Config(format!("--store-endpoints {endpoints}: {e}")),
        E::InvalidArgs(e) | E::EndpointError(e) => StoreError::Config(e),
        E::WatchError(e) | E::LeaseKeepAliveError(e) => unavailable(endpoints, &e),
        other => StoreError::Backend { key: key.to_string(), reason: other.to_string() },
    }
}

fn unavailable(endpoints: &str, reason: &str) -> StoreError {
    StoreError::Unavailable { endpoints: endpoints.to_string(), reason: reason.to_string() }
}
