//! The pure decisions of failsafe mode: whether a standby confirms that it follows the master, whether the
//! master may tell a proxy to keep forwarding and for how long, how long a standby told to become master
//! waits before promoting, and until when a proxy trusts a master's answer. Every time is a monotonic
//! instant of the host that decides; no clock is compared across hosts (see docs/reliability.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cluster::{ClusterData, DbRole, FollowType};

/// A standby's confirmation as the master recorded it: when the master sent the request that it answered
/// (the master's clock), and the window the standby promised (its cluster data's `proxyTimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation {
    /// When the master sent the request (a lower bound of when the standby answered).
    pub asked_at: Instant,
    /// How long the standby promised not to promote after answering.
    pub window: Duration,
}

/// What a standby observes of its own WAL receiver (`pg_stat_wal_receiver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streaming<'a> {
    /// The receiver's status (`streaming`, `startup`, ...).
    pub status: &'a str,
    /// The host it is connected to, when known.
    pub sender_host: Option<&'a str>,
}

/// Whether this keeper (`keeper_uid`) confirms that it follows the master of `cd`, its last valid cluster
/// data. `Ok` carries the master DB's UID and the promised window (`proxyTimeout`); `Err` says why not.
///
/// It confirms only when failsafe mode is on, its DB is a standby of the cluster's master in `cd`, its
/// PostgreSQL streams from that master, and it is not holding confirmations for a promotion (`holding`).
pub fn follower_verdict(
    cd: &ClusterData,
    keeper_uid: &str,
    receiver: Option<Streaming<'_>>,
    holding: bool,
) -> Result<(String, Duration), String> {
    if holding {
        return Err("this keeper was told to become master: it no longer confirms any master".into());
    }
    if !cd.cluster.spec.failsafe_mode.unwrap_or(false) {
        return Err("failsafeMode is off in the cluster data".into());
    }
    let db = cd.db_of_keeper(keeper_uid).ok_or("this keeper has no DB in the cluster data")?;
    let master = cd.master_db().ok_or("the cluster data names no master")?;
    if db.uid == master.uid || db.spec.role != Some(DbRole::Standby) {
        return Err(format!("DB {} is not a standby in the cluster data", db.uid));
    }
    let follows = db
        .spec
        .follow_config
        .as_ref()
        .is_some_and(|f| f.follow_type == Some(FollowType::Internal) && f.db_uid == master.uid);
    if !follows {
        return Err(format!("DB {} does not follow the master DB {} in the cluster data", db.uid, master.uid));
    }
    let Some(r) = receiver else {
        return Err("PostgreSQL has no WAL receiver (not streaming)".into());
    };
    if r.status != "streaming" {
        return Err(format!("the WAL receiver is {:?}, not streaming", r.status));
    }
    if let Some(host) = r.sender_host
        && !master.status.listen_address.is_empty()
        && host != master.status.listen_address
    {
        return Err(format!(
            "PostgreSQL streams from {host}, not from the master's address {}",
            master.status.listen_address
        ));
    }
    Ok((master.uid.clone(), cd.cluster.spec.proxy_timeout()))
}

/// Whether this keeper's DB is the master a proxy may keep forwarding to, and for how long from `now`.
///
/// Yes only when failsafe mode is on, `cd` names this keeper's DB master, PostgreSQL runs as a primary
/// (`primary`), and the keeper of every other DB of `cd` (the only keepers a sentinel can elect) confirmed
/// following it recently: the answer is the shortest time left of their windows. A cluster data with no other
/// DB gives no answer (nobody to confirm).
pub fn master_verdict(
    cd: &ClusterData,
    keeper_uid: &str,
    primary: bool,
    confirmations: &BTreeMap<String, Confirmation>,
    now: Instant,
) -> Result<(String, Duration), String> {
    if !cd.cluster.spec.failsafe_mode.unwrap_or(false) {
        return Err("failsafeMode is off in the cluster data".into());
    }
    let master = cd.master_db().ok_or("the cluster data names no master")?;
    if master.spec.keeper_uid != keeper_uid {
        return Err(format!("the master DB {} is not this keeper's", master.uid));
    }
    if !primary {
        return Err("PostgreSQL does not run as a primary".into());
    }
    let mut valid_for: Option<Duration> = None;
    let others = cd.dbs.values().map(|db| &db.spec.keeper_uid).filter(|k| *k != keeper_uid);
    for uid in others {
        let c = confirmations.get(uid).ok_or_else(|| format!("keeper {uid} has not confirmed following"))?;
        let age = now.saturating_duration_since(c.asked_at);
        let left = c.window.checked_sub(age).filter(|d| !d.is_zero());
        let left = left.ok_or_else(|| format!("keeper {uid} last confirmed {age:?} ago (window {:?})", c.window))?;
        valid_for = Some(valid_for.map_or(left, |v| v.min(left)));
    }
    let valid_for = valid_for.ok_or("no other DB in the cluster data to confirm following")?;
    Ok((master.uid.clone(), valid_for))
}

/// How long a standby told to become master must still wait before promoting: until the window of the last
/// confirmation it gave (`given_until`) is over and, when the cluster data telling it to promote has failsafe
/// mode on (`window`: its proxyTimeout), until one window after this keeper process started (`started`). A
/// restarted keeper has lost the record of the confirmations its previous process gave; each of them ended
/// within one window after that process ended, so before `started + window`.
pub fn promotion_wait(
    given_until: Option<Instant>,
    started: Instant,
    window: Option<Duration>,
    now: Instant,
) -> Duration {
    let since_start = window.map(|w| started + w);
    let until = match (given_until, since_start) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
}

/// Until when a proxy may keep forwarding to `master` after the master's keeper answered a request sent at
/// `asked_at` with `valid_for`: `None` when the answer is about another DB than the one the proxy forwards to.
pub fn proxy_trust_until(forwarding_to: &str, master: &str, asked_at: Instant, valid_for: Duration) -> Option<Instant> {
    (forwarding_to == master && !master.is_empty()).then(|| asked_at + valid_for)
}

/// Whether a proxy that noticed a store outage may ask the keeper of `remembered` (the master DB of its last
/// successful check) to keep forwarding: not when the outage showed in a check whose cluster data (from the
/// proxy's watch-fed copy) names another master, `current` (`None`: the check read no data).
pub fn proxy_may_ask(remembered: &str, current: Option<&str>) -> bool {
    current.is_none_or(|c| c == remembered)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
