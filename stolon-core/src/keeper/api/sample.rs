//! What the API observes of the local PostgreSQL when it answers: one query on a kept superuser connection,
//! its result shared by the requests of the next [`MAX_AGE`] (load balancers and probes may check often).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use crate::postgres::query::LocalConn;

/// How long one observation answers requests.
pub const MAX_AGE: Duration = Duration::from_millis(250);
/// The longest one observation may take (connection included): a PostgreSQL that does not answer within it
/// is reported as not answering.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(3);

/// The WAL receiver of a standby (`pg_stat_wal_receiver`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WalReceiver {
    /// `streaming`, `startup`, `catchup`, `stopping`, ...
    pub status: String,
    /// The host it is connected to.
    pub sender_host: Option<String>,
    /// The port it is connected to.
    pub sender_port: Option<i32>,
    /// The end of WAL the sender last reported (the upstream's position).
    #[serde(skip)]
    pub latest_end_lsn: Option<u64>,
}

/// One observation of a running PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgSample {
    /// `pg_is_in_recovery()`.
    pub in_recovery: bool,
    /// `pg_current_wal_lsn()` (not in recovery).
    pub current_lsn: Option<u64>,
    /// `pg_last_wal_receive_lsn()` (in recovery).
    pub receive_lsn: Option<u64>,
    /// `pg_last_wal_replay_lsn()` (in recovery).
    pub replay_lsn: Option<u64>,
    /// The WAL receiver, when one runs.
    pub receiver: Option<WalReceiver>,
}

/// What the API knows of PostgreSQL at a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgObservation {
    /// PostgreSQL answered.
    Up(PgSample),
    /// PostgreSQL did not answer (stopped, starting, hung); why.
    Down(String),
}

impl PgObservation {
    /// The sample, or why there is none.
    pub fn up(&self) -> Result<&PgSample, String> {
        match self {
            PgObservation::Up(s) => Ok(s),
            PgObservation::Down(why) => Err(format!("PostgreSQL is not running or does not answer: {why}")),
        }
    }
}

/// The single query of an observation. LSNs are read as byte offsets (`lsn - '0/0'`).
const QUERY: &str = "select pg_is_in_recovery(), \
     case when pg_is_in_recovery() then null else (pg_current_wal_lsn() - '0/0')::int8 end, \
     (pg_last_wal_receive_lsn() - '0/0')::int8, \
     (pg_last_wal_replay_lsn() - '0/0')::int8, \
     r.status::text, r.sender_host::text, r.sender_port, (r.latest_end_lsn - '0/0')::int8 \
     from (select 1) as one left join pg_stat_wal_receiver as r on true";

type Stamped = (Instant, Arc<PgObservation>);

/// Observes the local PostgreSQL for the API, on a connection kept between requests.
pub struct PgSampler {
    conn: LocalConn,
    /// The kept connection; holding it means querying (concurrent callers wait, then share the result).
    client: tokio::sync::Mutex<Option<Client>>,
    last: Mutex<Option<Stamped>>,
}

impl PgSampler {
    /// A sampler connecting as `conn` (the keeper's superuser connection over the unix socket); its timeout is
    /// capped at [`SAMPLE_TIMEOUT`].
    pub fn new(mut conn: LocalConn) -> PgSampler {
        conn.timeout = conn.timeout.min(SAMPLE_TIMEOUT);
        PgSampler { conn, client: tokio::sync::Mutex::new(None), last: Mutex::new(None) }
    }

    fn fresh(&self) -> Option<Arc<PgObservation>> {
        let last = self.last.lock().ok()?;
        last.as_ref().filter(|(at, _)| at.elapsed() <= MAX_AGE).map(|(_, o)| o.clone())
    }

    /// The last observation whatever its age, without querying (for `/liveness`, which must not depend on
    /// PostgreSQL answering).
    pub fn last(&self) -> Arc<PgObservation> {
        let last = self.last.lock().ok().and_then(|l| l.as_ref().map(|(_, o)| o.clone()));
        last.unwrap_or_else(|| Arc::new(PgObservation::Down("not observed yet".into())))
    }

    /// An observation at most [`MAX_AGE`] old. Concurrent callers share one query.
    pub async fn observe(&self) -> Arc<PgObservation> {
        if let Some(o) = self.fresh() {
            return o;
        }
        let mut client = self.client.lock().await;
        if let Some(o) = self.fresh() {
            return o;
        }
        let obs = Arc::new(self.query(&mut client).await);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), obs.clone()));
        }
        obs
    }

    async fn query(&self, kept: &mut Option<Client>) -> PgObservation {
        // A kept connection may have been closed by a restart of PostgreSQL: one retry on a new one.
        let attempts = if kept.is_some() { 2 } else { 1 };
        for _ in 0..attempts {
            let client = match kept.take() {
                Some(c) if !c.is_closed() => c,
                _ => match self.conn.connect().await {
                    Ok(c) => c,
                    Err(e) => return PgObservation::Down(e.to_string()),
                },
            };
            match tokio::time::timeout(self.conn.timeout, client.query_one(QUERY, &[])).await {
                Ok(Ok(row)) => {
                    *kept = Some(client);
                    return match sample_of(&row) {
                        Ok(s) => PgObservation::Up(s),
                        Err(e) => PgObservation::Down(format!("unexpected answer: {e}")),
                    };
                }
                Ok(Err(e)) if !client.is_closed() => return PgObservation::Down(format!("query failed: {e}")),
                Ok(Err(e)) => tracing::debug!(error = %e, "the API's connection to PostgreSQL was closed"),
                Err(_) => return PgObservation::Down(format!("no answer within {:?}", self.conn.timeout)),
            }
        }
        PgObservation::Down("the connection was closed".into())
    }
}

fn sample_of(row: &tokio_postgres::Row) -> Result<PgSample, tokio_postgres::Error> {
    let lsn = |i: usize| -> Result<Option<u64>, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
    };
    let status: Option<String> = row.try_get(4)?;
    Ok(PgSample {
        in_recovery: row.try_get(0)?,
        current_lsn: lsn(1)?,
        receive_lsn: lsn(2)?,
        replay_lsn: lsn(3)?,
        receiver: match status {
            None => None,
            Some(status) => Some(WalReceiver {
                status,
                sender_host: row.try_get(5)?,
                sender_port: row.try_get(6)?,
                latest_end_lsn: lsn(7)?,
            }),
        },
    })
}
