//! The keeper's part of failsafe mode: the confirmations it gives as a standby (`/failsafe/follower`), the
//! confirmations it collects as the master from every other DB's keeper, its answer to proxies
//! (`/failsafe/master`), and the wait before a promotion. The decisions are in [`super::decide`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::decide::{Confirmation, Streaming, follower_verdict, master_verdict, promotion_wait};
use crate::cluster::ClusterData;
use crate::keeper::api::{ApiClient, KeeperView};
use crate::store::ClusterStore;

/// How often the master asks every other DB's keeper.
pub const ASK_EVERY: Duration = Duration::from_secs(1);
/// How often the master refreshes the keepers' API URLs from the store (when it can read it).
const URLS_EVERY: Duration = Duration::from_secs(5);
/// The bound of one refresh of the URLs.
const URLS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Inner {
    /// As master: the last confirmation of each keeper.
    confirmations: BTreeMap<String, Confirmation>,
    /// As standby: the end of the window of the last confirmation given.
    given_until: Option<Instant>,
    /// As standby told to become master: no confirmation is given any more.
    holding: bool,
    /// The keepers' `apiURL`s, as last read from their keeper infos.
    urls: BTreeMap<String, String>,
}

/// The failsafe state shared by the keeper's API, its state machine and its collector loop.
#[derive(Debug)]
pub struct FailsafeKeeper {
    keeper_uid: String,
    /// When this keeper process started (a promotion waits one window after it in failsafe mode).
    started: Instant,
    inner: Mutex<Inner>,
}

impl FailsafeKeeper {
    /// The state of keeper `keeper_uid`.
    pub fn new(keeper_uid: &str) -> FailsafeKeeper {
        FailsafeKeeper { keeper_uid: keeper_uid.to_string(), started: Instant::now(), inner: Mutex::default() }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `/failsafe/follower`: confirms following the master of `cd` and records the promise, or says why not.
    /// The check and the record happen under one lock, so that [`FailsafeKeeper::hold_for_promotion`] sees
    /// every confirmation given before it.
    pub fn confirm(
        &self,
        cd: Option<&ClusterData>,
        receiver: Option<Streaming<'_>>,
    ) -> Result<(String, Duration), String> {
        let mut inner = self.inner();
        let cd = cd.ok_or("no cluster data read yet")?;
        let (master, window) = follower_verdict(cd, &self.keeper_uid, receiver, inner.holding)?;
        let until = Instant::now() + window;
        inner.given_until = Some(inner.given_until.map_or(until, |u| u.max(until)));
        Ok((master, window))
    }

    /// `/failsafe/master`: this keeper's DB and how long a proxy may keep forwarding to it, or why not.
    pub fn master_answer(&self, cd: Option<&ClusterData>, primary: bool) -> Result<(String, Duration), String> {
        let cd = cd.ok_or("no cluster data read yet")?;
        master_verdict(cd, &self.keeper_uid, primary, &self.inner().confirmations, Instant::now())
    }

    /// Before promoting as `cd` says: stops confirming at once and returns how long to wait until no proxy can
    /// still trust a confirmation this keeper (or its previous process, when failsafe mode is on in `cd`) gave.
    pub fn hold_for_promotion(&self, cd: &ClusterData) -> Duration {
        let spec = &cd.cluster.spec;
        let window = spec.failsafe_mode.unwrap_or(false).then(|| spec.proxy_timeout());
        let mut inner = self.inner();
        inner.holding = true;
        promotion_wait(inner.given_until, self.started, window, Instant::now())
    }

    /// After a promotion attempt: confirmations are decided by the cluster data again.
    pub fn release(&self) {
        self.inner().holding = false;
    }

    fn record(&self, keeper: &str, c: Confirmation) {
        self.inner().confirmations.insert(keeper.to_string(), c);
    }

    fn forget_confirmations(&self) {
        self.inner().confirmations.clear();
    }
}

/// The keepers this keeper must ask as master in `cd`: the keeper of every other DB, when failsafe mode is
/// on and `cd` names this keeper's DB master (else none).
fn to_ask(cd: &ClusterData, me: &str) -> Option<(String, Vec<String>)> {
    if !cd.cluster.spec.failsafe_mode.unwrap_or(false) {
        return None;
    }
    let master = cd.master_db().filter(|m| m.spec.keeper_uid == me)?;
    let others = cd.dbs.values().map(|db| db.spec.keeper_uid.clone()).filter(|k| k != me).collect();
    Some((master.uid.clone(), others))
}

/// Asks keeper `keeper`'s `/failsafe/follower` at `url` and returns the confirmation when that keeper (not
/// another one now at a stale URL) answers that it follows `master_db`.
async fn ask(client: &ApiClient, keeper: &str, url: &str, master_db: &str) -> Result<Confirmation, String> {
    let asked_at = Instant::now();
    let resp =
        client.get(&format!("{}/failsafe/follower", url.trim_end_matches('/'))).await.map_err(|e| e.to_string())?;
    let body = resp.json()?;
    if resp.status != 200 {
        return Err(body["error"].as_str().unwrap_or("refused").to_string());
    }
    if body["keeper"].as_str() != Some(keeper) {
        return Err(format!("keeper {} answered at this keeper's apiURL", body["keeper"]));
    }
    if body["following"].as_str() != Some(master_db) {
        return Err(format!("it follows {}, not {master_db}", body["following"]));
    }
    let window = body["windowMs"].as_u64().ok_or("no windowMs in the answer")?;
    Ok(Confirmation { asked_at, window: Duration::from_millis(window) })
}

/// The master's loop: every [`ASK_EVERY`], while failsafe mode is on and this keeper runs the master in its
/// last cluster data, asks every other DB's keeper whether it follows and records the confirmations.
pub async fn collect(
    state: Arc<FailsafeKeeper>,
    view: Arc<KeeperView>,
    store: ClusterStore,
    client: ApiClient,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut urls_read: Option<Instant> = None;
    let mut last_refusal: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let work = view.cluster().and_then(|s| to_ask(&s.cd, &state.keeper_uid));
        match work {
            None => state.forget_confirmations(),
            Some((master_db, keepers)) => {
                let missing = keepers.iter().any(|k| !state.inner().urls.contains_key(k));
                if missing || urls_read.is_none_or(|t| t.elapsed() >= URLS_EVERY) {
                    if let Ok(Ok(infos)) = tokio::time::timeout(URLS_TIMEOUT, store.keeper_infos()).await {
                        let urls =
                            infos.valid.into_iter().map(|(uid, i)| (uid, i.api_url)).filter(|(_, u)| !u.is_empty());
                        state.inner().urls = urls.collect();
                        urls_read = Some(Instant::now());
                    }
                }
                let asks = keepers.iter().map(|k| {
                    let url = state.inner().urls.get(k).cloned();
                    let (client, master_db) = (&client, &master_db);
                    async move {
                        let r = match url {
                            Some(url) => ask(client, k, &url, master_db).await,
                            None => Err("it publishes no apiURL".to_string()),
                        };
                        (k, r)
                    }
                });
                for (k, r) in futures::future::join_all(asks).await {
                    match r {
                        Ok(c) => {
                            last_refusal.remove(k);
                            state.record(k, c);
                        }
                        Err(e) => {
                            if last_refusal.get(k) != Some(&e) {
                                tracing::info!(keeper = %k, reason = %e, "failsafe: keeper does not confirm following");
                                last_refusal.insert(k.clone(), e);
                            }
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ASK_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}
