//! The keep-alive loop that holds an election lease.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Conn;

/// Keeps `lease_id` (granted with `ttl`, requested at `granted_at`) alive by refreshing it every third of
/// its TTL. Returns when the lease can no longer be trusted to be alive on the server: the server said it
/// expired, or no refresh was acknowledged before the last acknowledged lifetime ran out (measured from the
/// moment the acknowledged request was sent, so never later than the server's own expiry). `alive` turns
/// false at that moment.
pub(crate) async fn keep_alive(
    store: Conn,
    lease_id: i64,
    ttl: Duration,
    granted_at: Instant,
    alive: watch::Sender<bool>,
) -> String {
    let mut valid_until = granted_at + ttl;
    let mut next = Instant::now() + ttl / 3;
    let mut channel = None;
    loop {
        tokio::time::sleep_until(next.min(valid_until)).await;
        if Instant::now() >= valid_until {
            let _ = alive.send(false);
            return format!("lease {lease_id:x} not refreshed within its ttl of {ttl:?}");
        }
        let sent = Instant::now();
        let limit = store.timeout.min(valid_until - sent);
        let attempt = tokio::time::timeout(limit, async {
            if channel.is_none() {
                channel = Some(store.client.clone().lease_keep_alive(lease_id).await?);
            }
            let (keeper, stream) = channel.as_mut().expect("channel opened above");
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await;
        match attempt {
            Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                valid_until = sent + Duration::from_secs(resp.ttl() as u64);
                next = sent + ttl / 3;
            }
            Ok(Ok(Some(_))) => {
                let _ = alive.send(false);
                return format!("lease {lease_id:x} expired on the server");
            }
            // Stream closed, request failed or timed out: reopen the stream and retry soon.
            _ => {
                channel = None;
                next = Instant::now() + Duration::from_millis(200);
            }
        }
    }
}
