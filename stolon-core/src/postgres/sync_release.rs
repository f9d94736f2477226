//! Releasing the commits of a master that wait for synchronous standbys already holding their WAL, after
//! `synchronous_standby_names` changed (the decision is [`crate::keeper::fast_sync`]'s).
//!
//! PostgreSQL releases a waiting commit when a listed standby's status reply reports it flushed, and a
//! standby replies when it writes or flushes new WAL or every `wal_receiver_status_interval`. The WAL
//! senders pick up the new list on their own after the reload; once they have, one transaction that writes a
//! commit record with `synchronous_commit = local` (it does not wait for anyone itself) gives every standby
//! new WAL to flush and reply to.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::error::{PgError, PgResult};
use super::query::LocalConn;

/// How long the WAL senders of the listed standbys are given to apply the new setting.
pub const SENDERS_RELOAD_WAIT: Duration = Duration::from_secs(2);

/// Pause between two looks at `pg_stat_replication`.
const POLL: Duration = Duration::from_millis(20);

/// Waits (up to [`SENDERS_RELOAD_WAIT`]) until no WAL sender of a standby named in `standbys` shows the
/// `async` state of a sender that has not applied the new list yet, then writes and locally commits one
/// transaction id. Returns whether the senders were seen ready (the record is written either way).
pub async fn release_sync_waiters(conn: &LocalConn, standbys: &[String]) -> PgResult<bool> {
    let client = conn.connect().await?;
    let deadline = Instant::now() + SENDERS_RELOAD_WAIT;
    let names: Vec<&str> = standbys.iter().map(String::as_str).collect();
    let ready = loop {
        let row = bounded(
            conn,
            "walsenders' synchronous state",
            client.query_one(
                "select count(*) from pg_stat_replication where application_name = any($1) and sync_state = 'async'",
                &[&names],
            ),
        )
        .await?;
        let pending: i64 = row.try_get(0).map_err(|source| PgError::Query { what: "walsenders' state", source })?;
        if pending == 0 {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(POLL).await;
    };
    bounded(
        conn,
        "release of synchronous waiters",
        client.batch_execute("begin; set local synchronous_commit to local; select txid_current(); commit"),
    )
    .await?;
    Ok(ready)
}

async fn bounded<T, F: Future<Output = Result<T, tokio_postgres::Error>>>(
    conn: &LocalConn,
    what: &'static str,
    f: F,
) -> PgResult<T> {
    match tokio::time::timeout(conn.timeout, f).await {
        Ok(r) => r.map_err(|source| PgError::Query { what, source }),
        Err(_) => Err(PgError::Timeout(format!("query {what} after {:?}", conn.timeout))),
    }
}
