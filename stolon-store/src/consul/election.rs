//! Leader election as a Consul session lock on `P/sentinel-leader` (value = the candidate id), compatible
//! with stolon's Consul sentinels: the lock is taken with `?acquire=<session>` and carries the lock flags
//! Consul's Go API checks.
//!
//! Each campaign owns a session (behavior `release`, no lock-delay) renewed every half session TTL from
//! the moment it is created. Leadership is lost when Consul invalidates the session, when the key is
//! released or taken by another session, or when renewals keep failing until the session TTL, measured
//! from the send time of the last acknowledged renewal, runs out (Consul never invalidates a session
//! earlier than that, so the old leader gives up before anyone else can be elected).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::errors::is_invalid_session;
use super::http::Conn;
use super::kv::Write;
use super::session::{Behavior, session_ttl};
use super::watch_wait;
use crate::{Leadership, LeadershipEnd, ResignSignal, StoreError, StoreResult};

/// The flags Consul's Go API puts on lock keys (and refuses to lock a key without).
pub const LOCK_FLAGS: u64 = 0x2ddc_cbc0_58a5_0c18;

/// Pause after a transient error before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// The current leader: the value of the lock key while a session holds it.
pub(crate) async fn leader(conn: &Conn, key: &str) -> StoreResult<Option<String>> {
    let read = conn.read(key, None).await?;
    Ok(read.entry.filter(|e| e.session.is_some()).map(|e| String::from_utf8_lossy(&e.value).into_owned()))
}

/// Runs for leadership; returns once `candidate` holds the lock.
pub(crate) async fn campaign(conn: Arc<Conn>, key: String, candidate: &str, ttl: Duration) -> StoreResult<Leadership> {
    let sttl = session_ttl(ttl);
    let sent = Instant::now();
    let id = conn.create_session(&format!("stolon-rs sentinel-leader {candidate}"), sttl, Behavior::Release).await?;
    let mut keeper = SessionKeeper::start(conn.clone(), id.clone(), sttl, sent);
    let lock = Write { acquire: Some(&id), flags: LOCK_FLAGS, ..Write::default() };
    loop {
        if let Some(why) = keeper.lost_now() {
            return Err(StoreError::Election(format!("{key}: session lost while campaigning: {why}")));
        }
        match conn.write(&key, candidate.as_bytes(), lock).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) if is_invalid_session(&e) => {
                return Err(StoreError::Election(format!("{key}: session lost while campaigning: {e}")));
            }
            Err(e) if e.is_transient() => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Err(e) => return Err(e),
        }
        // Someone else holds the lock (or a lock-delay applies): wait for the key to change.
        let read = match conn.read(&key, None).await {
            Ok(r) => r,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        match read.entry.and_then(|e| e.session) {
            Some(holder) if holder == id => break,
            Some(_) => {
                let wait = conn.read(&key, Some((read.index, watch_wait(conn.timeout))));
                tokio::select! {
                    r = wait => if let Err(e) = r {
                        if !e.is_transient() {
                            return Err(e);
                        }
                        tokio::time::sleep(RETRY).await;
                    },
                    why = keeper.lost() => {
                        return Err(StoreError::Election(format!("{key}: session lost while campaigning: {why}")));
                    }
                }
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    keeper.destroy_on_drop = false;
    let candidate = candidate.to_string();
    Ok(Leadership::spawn(candidate.clone(), move |resign| hold(conn, key, candidate, keeper, resign)))
}

/// Keeps leadership until a resign or a loss.
async fn hold(
    conn: Arc<Conn>,
    key: String,
    candidate: String,
    mut keeper: SessionKeeper,
    mut resign: ResignSignal,
) -> StoreResult<LeadershipEnd> {
    let id = keeper.id.clone();
    let mut index = 0;
    let mut backoff = false;
    loop {
        let check = async {
            if backoff {
                tokio::time::sleep(RETRY).await;
            }
            let block = (index > 0).then(|| (index, watch_wait(conn.timeout)));
            conn.read(&key, block).await
        };
        tokio::select! {
            _ = resign.requested() => {
                let release = Write { release: Some(&id), flags: LOCK_FLAGS, ..Write::default() };
                let released = conn.write(&key, candidate.as_bytes(), release).await;
                let destroyed = conn.destroy_session(&id).await;
                return released.and(destroyed).map(|_| LeadershipEnd::Resigned);
            }
            why = keeper.lost() => {
                let _ = conn.destroy_session(&id).await;
                return Ok(LeadershipEnd::Lost(why));
            }
            read = check => match read {
                Ok(read) if read.entry.as_ref().and_then(|e| e.session.as_deref()) == Some(id.as_str()) => {
                    index = read.index;
                    backoff = false;
                }
                Ok(_) => {
                    let _ = conn.destroy_session(&id).await;
                    return Ok(LeadershipEnd::Lost(format!("{key} was released or taken by another session")));
                }
                // The renewals decide whether leadership survives an outage; keep watching.
                Err(_) => backoff = true,
            }
        }
    }
}

/// What the renewal task knows about the session.
#[derive(Debug, Clone)]
enum Alive {
    /// Consul cannot have invalidated it before this instant.
    Until(Instant),
    /// It ended, with the reason.
    Lost(String),
}

/// Renews a session every half TTL in a background task, stopped when this value is dropped. A keeper that
/// is still campaigning destroys its session on drop (a cancelled campaign leaves no session behind).
struct SessionKeeper {
    conn: Arc<Conn>,
    id: String,
    state: watch::Receiver<Alive>,
    task: JoinHandle<()>,
    destroy_on_drop: bool,
}

impl SessionKeeper {
    /// Starts renewing session `id` of TTL `ttl`, created by a request sent at `created`.
    fn start(conn: Arc<Conn>, id: String, ttl: Duration, created: Instant) -> SessionKeeper {
        let (tx, state) = watch::channel(Alive::Until(created + ttl));
        let task = tokio::spawn(renew_loop(conn.clone(), id.clone(), ttl, created, tx));
        SessionKeeper { conn, id, state, task, destroy_on_drop: true }
    }

    /// The reason the session is lost, if it is lost now.
    fn lost_now(&self) -> Option<String> {
        match &*self.state.borrow() {
            Alive::Lost(why) => Some(why.clone()),
            Alive::Until(deadline) if Instant::now() >= *deadline => Some(expired()),
            Alive::Until(_) => None,
        }
    }

    /// Resolves when the session is lost: invalidated, or not renewed within its TTL.
    async fn lost(&mut self) -> String {
        loop {
            let current = self.state.borrow_and_update().clone();
            match current {
                Alive::Lost(why) => return why,
                Alive::Until(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => return expired(),
                        changed = self.state.changed() => {
                            if changed.is_err() {
                                return "the session renewal task ended".into();
                            }
                        }
                    }
                }
            }
        }
    }
}

fn expired() -> String {
    "the session could not be renewed within its TTL".into()
}

impl Drop for SessionKeeper {
    fn drop(&mut self) {
        self.task.abort();
        if !self.destroy_on_drop {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (conn, id) = (self.conn.clone(), self.id.clone());
            rt.spawn(async move {
                let _ = conn.destroy_session(&id).await;
            });
        }
    }
}

/// Renews every half TTL; after a failure, retries every second until the TTL since the last acknowledged
/// renewal's send time runs out.
async fn renew_loop(conn: Arc<Conn>, id: String, ttl: Duration, mut acked: Instant, tx: watch::Sender<Alive>) {
    let period = ttl / 2;
    let mut next = acked + period;
    loop {
        tokio::time::sleep_until(next).await;
        let deadline = acked + ttl;
        let now = Instant::now();
        if now >= deadline {
            let _ = tx.send(Alive::Lost(expired()));
            return;
        }
        let sent = now;
        match conn.renew_session(&id, conn.timeout.min(deadline - now)).await {
            Ok(true) => {
                acked = sent;
                next = sent + period;
                let _ = tx.send(Alive::Until(sent + ttl));
            }
            Ok(false) => {
                let _ = tx.send(Alive::Lost("Consul invalidated the session".into()));
                return;
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    let _ = tx.send(Alive::Lost(format!("{}: {e}", expired())));
                    return;
                }
                tracing::warn!(session = %id, error = %e, "renewing the election session failed; retrying");
                next = (Instant::now() + RETRY).min(deadline);
            }
        }
    }
}
