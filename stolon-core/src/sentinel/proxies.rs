//! Active proxies and proxy gating (reference §4.7): proxies are pointed at a new master only after every
//! active proxy confirmed the generation that emptied its target.

use std::collections::BTreeMap;
use std::time::Duration;

use super::clock::MonoTime;
use super::health::{Histories, ProxyInfoSeen};
use super::messages as m;
use crate::cluster::{ClusterData, ProxyInfo};

/// The proxies considered active: those whose `infoUID` changed within twice their own advertised
/// `proxyTimeout` (`default_timeout` when they advertise none), and those not seen before. Updates the
/// proxy history in `hist` and forgets proxies whose info disappeared.
pub fn active_proxies(
    infos: &BTreeMap<String, ProxyInfo>,
    hist: &mut Histories,
    default_timeout: Duration,
    now: MonoTime,
) -> BTreeMap<String, ProxyInfo> {
    let published: std::collections::BTreeSet<&String> = infos.values().map(|pi| &pi.uid).collect();
    hist.proxy_infos.retain(|uid, _| published.contains(uid));
    let mut active = BTreeMap::new();
    for pi in infos.values().filter(|pi| !pi.uid.is_empty()) {
        let timeout = pi.proxy_timeout.to_std().filter(|d| !d.is_zero()).unwrap_or(default_timeout);
        match hist.proxy_infos.get(&pi.uid) {
            Some(seen) if seen.info_uid == pi.info_uid => {
                if now.since(seen.at) > timeout * 2 {
                    continue;
                }
            }
            _ => {
                hist.proxy_infos.insert(pi.uid.clone(), ProxyInfoSeen { info_uid: pi.info_uid.clone(), at: now });
            }
        }
        active.insert(pi.uid.clone(), pi.clone());
    }
    active
}

/// Proxy gating in steady state. With no routing target, publish `master_uid` once every active proxy has
/// applied the current proxy generation and the master is ready (healthy and converged: stolon publishes it
/// before it is promoted); otherwise keep `enabledProxies` equal to the active proxies.
pub(crate) fn gate(
    newcd: &mut ClusterData,
    master_uid: &str,
    master_ready: bool,
    active: &BTreeMap<String, ProxyInfo>,
) {
    let proxy = &mut newcd.proxy;
    if proxy.spec.master_db_uid.is_empty() {
        let lagging: Vec<&String> =
            active.values().filter(|pi| pi.generation != proxy.generation).map(|pi| &pi.uid).collect();
        if !lagging.is_empty() {
            tracing::info!(proxies = ?lagging, "{}", m::WAITING_FOR_PROXIES);
        } else if !master_ready {
            tracing::info!(db = %master_uid, "waiting for the master db to be healthy and converged before routing to it");
        } else {
            proxy.spec.master_db_uid = master_uid.to_string();
            proxy.generation += 1;
        }
    } else {
        let enabled: Vec<String> = active.keys().cloned().collect();
        if proxy.spec.enabled_proxies != enabled {
            proxy.spec.enabled_proxies = enabled;
            proxy.generation += 1;
        }
    }
}
