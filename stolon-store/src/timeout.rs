//! Bounding single store requests by the configured timeout.

use std::future::Future;
use std::time::Duration;

use crate::{StoreError, StoreResult};

/// Runs `fut`, failing with [`StoreError::Timeout`] naming `key` if it does not finish within `limit`.
pub(crate) async fn bounded<T, F>(limit: Duration, key: &str, fut: F) -> StoreResult<T>
where
    F: Future<Output = StoreResult<T>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout { key: key.to_string(), timeout: limit }),
    }
}
