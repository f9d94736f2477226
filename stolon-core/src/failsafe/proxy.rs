//! The proxy's part of failsafe mode: after every successful check it remembers the master it forwards to
//! and that master's keeper API; when the store cannot be reached it asks that keeper (`/failsafe/master`) and
//! keeps forwarding only for the time the answer allows, counted from when it asked.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::decide::{proxy_may_ask, proxy_trust_until};
use crate::cluster::ClusterData;
use crate::keeper::api::ApiClient;
use crate::store::ClusterStore;

/// The bound of the keeper infos read that finds the master's API.
const URL_TIMEOUT: Duration = Duration::from_secs(2);

/// The master a proxy forwarded to at its last successful check, with its keeper's API.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    master_db: String,
    api_url: String,
    target: SocketAddr,
}

/// The proxy's failsafe state. Without a client (`None`), failsafe mode is never used.
pub struct FailsafeProxy {
    client: Option<ApiClient>,
    known: Mutex<Option<Known>>,
}

/// A keeper's answer that lets the proxy forward to `target` until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// The master's address.
    pub target: SocketAddr,
    /// The end of the trust (monotonic, this host).
    pub until: Instant,
}

impl FailsafeProxy {
    /// The state; `client` calls the keepers' APIs with their TLS and authentication.
    pub fn new(client: Option<ApiClient>) -> FailsafeProxy {
        FailsafeProxy { client, known: Mutex::new(None) }
    }

    fn set(&self, k: Option<Known>) {
        *self.known.lock().unwrap_or_else(|p| p.into_inner()) = k;
    }

    /// After a successful check that forwards to `target`: remembers the master of `cd` and its keeper's
    /// `apiURL` when failsafe mode is on (forgets it otherwise).
    pub async fn remember(&self, store: &ClusterStore, cd: Option<&ClusterData>, target: Option<SocketAddr>) {
        let wanted = self.client.is_some() && cd.is_some_and(|cd| cd.cluster.spec.failsafe_mode.unwrap_or(false));
        let (Some(cd), Some(target), true) = (cd, target, wanted) else {
            self.set(None);
            return;
        };
        let Some(master) = cd.dbs.get(&cd.proxy.spec.master_db_uid) else {
            self.set(None);
            return;
        };
        let infos = match tokio::time::timeout(URL_TIMEOUT, store.keeper_infos()).await {
            Ok(Ok(infos)) => infos,
            _ => return, // keep what was known: the next check reads again
        };
        let api_url = infos.valid.get(&master.spec.keeper_uid).map(|i| i.api_url.clone()).unwrap_or_default();
        if api_url.is_empty() {
            tracing::warn!(keeper = %master.spec.keeper_uid, "failsafe: the master's keeper publishes no apiURL");
            self.set(None);
            return;
        }
        self.set(Some(Known { master_db: master.uid.clone(), api_url, target }));
    }

    /// When the store cannot be reached: asks the last master's keeper whether forwarding may go on.
    /// `current` is the master DB named by the cluster data of the check that noticed the outage (`None`: it
    /// read no data); no keeper is asked when it is not the remembered master.
    pub async fn ask(&self, current: Option<&str>) -> Option<Trust> {
        let client = self.client.as_ref()?;
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        if !proxy_may_ask(&known.master_db, current) {
            tracing::warn!(remembered = %known.master_db, current = ?current, "failsafe: the cluster data names another master; not asking");
            return None;
        }
        let asked_at = Instant::now();
        let url = format!("{}/failsafe/master", known.api_url.trim_end_matches('/'));
        let answer = async {
            let resp = client.get(&url).await.map_err(|e| e.to_string())?;
            let body = resp.json()?;
            if resp.status != 200 {
                return Err(body["error"].as_str().unwrap_or("refused").to_string());
            }
            let master = body["master"].as_str().ok_or("no master in the answer")?.to_string();
            let valid = body["validForMs"].as_u64().ok_or("no validForMs in the answer")?;
            Ok::<_, String>((master, Duration::from_millis(valid)))
        };
        match answer.await {
            Ok((master, valid_for)) => {
                let until = proxy_trust_until(&known.master_db, &master, asked_at, valid_for);
                if until.is_none() {
                    tracing::warn!(expected = %known.master_db, answered = %master, "failsafe: the keeper answers for another DB");
                }
                until.map(|until| Trust { target: known.target, until })
            }
            Err(e) => {
                tracing::warn!(keeper_api = %known.api_url, reason = %e, "failsafe: the master's keeper does not confirm");
                None
            }
        }
    }
}
