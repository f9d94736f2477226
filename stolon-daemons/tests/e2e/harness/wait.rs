//! Polling with a deadline: every wait of the suite is bounded and says what it waited for.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::R;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(250);

/// Polls `probe` until it yields `Some`, at most for `limit`. Errors of the probe count as "not yet"; the
/// last one is reported on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> R<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = R<Option<T>>>,
{
    let start = Instant::now();
    let mut last = String::from("condition never held");
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()).max(POLL), probe()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = "the probe itself timed out".to_string(),
        }
        if start.elapsed() >= limit {
            return Err(anyhow!("timed out after {limit:?} waiting for {what} (last: {last})"));
        }
        tokio::time::sleep(POLL).await;
    }
}
