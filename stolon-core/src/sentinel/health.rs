//! Keeper and DB health: heartbeats (infoUID changes), error timers, `failInterval`, convergence timers.
//!
//! All timers live in [`Histories`], a plain struct owned by the leader and handed to every decision; it
//! starts empty on every new leadership term so that no timer survives from an earlier term.

use std::collections::BTreeMap;
use std::time::Duration;

use super::clock::{MonoTime, Now};
use crate::cluster::{ClusterData, Db, INITIAL_GENERATION, Keeper, KeeperInfo, KeeperSpec, KeeperStatus};

/// The last KeeperInfo heartbeat seen from one keeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperInfoSeen {
    /// The `infoUID` of the last info.
    pub info_uid: String,
    /// Whether this term saw the `infoUID` change (false for infos first met at the start of a term).
    pub changed: bool,
    /// When the change was seen.
    pub at: MonoTime,
}

/// The last ProxyInfo heartbeat seen from one proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInfoSeen {
    /// The `infoUID` of the last info.
    pub info_uid: String,
    /// When it was first seen.
    pub at: MonoTime,
}

/// Since when a DB has been at a generation its keeper has not reached yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvergenceMark {
    /// The DB generation being waited for.
    pub generation: i64,
    /// When the sentinel first saw it unreached.
    pub since: MonoTime,
}

/// The leader's memory between passes (stolon keeps these in process memory too). Empty at the start of
/// each leadership term.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histories {
    /// False at the start of a term: the first pass only observes.
    pub observed: bool,
    /// Keeper heartbeats by keeper UID.
    pub keeper_infos: BTreeMap<String, KeeperInfoSeen>,
    /// Proxy heartbeats by proxy UID.
    pub proxy_infos: BTreeMap<String, ProxyInfoSeen>,
    /// Since when each keeper has had no fresh heartbeat.
    pub keeper_errors: BTreeMap<String, MonoTime>,
    /// Since when each DB has been reported in error (or not reported).
    pub db_errors: BTreeMap<String, MonoTime>,
    /// For how many consecutive passes each DB reported the same WAL position.
    pub db_not_increasing: BTreeMap<String, u32>,
    /// Convergence timers by DB UID.
    pub convergence: BTreeMap<String, ConvergenceMark>,
}

/// Where a DB stands in the generation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convergence {
    /// The keeper reported the DB's current generation.
    Converged,
    /// Not yet, but within the timeout.
    Converging,
    /// Not within the timeout.
    Failed,
}

impl Histories {
    /// The empty memory of a new leadership term.
    pub fn new_term() -> Self {
        Histories::default()
    }

    /// Starts a convergence timer for every unconverged DB of `cd` whose generation has none yet and drops
    /// the timers of converged or vanished DBs.
    pub fn refresh_convergence(&mut self, cd: &ClusterData, now: MonoTime) {
        self.convergence
            .retain(|uid, _| cd.dbs.get(uid).is_some_and(|db| db.status.current_generation != db.generation));
        for db in cd.dbs.values() {
            if db.status.current_generation == db.generation {
                continue;
            }
            let fresh = ConvergenceMark { generation: db.generation, since: now };
            let mark = self.convergence.entry(db.uid.clone()).or_insert(fresh);
            if mark.generation != db.generation {
                *mark = fresh;
            }
        }
    }

    /// The convergence state of `db` with `timeout` (zero = never fails). A DB without a timer for its
    /// generation counts as converging.
    pub fn convergence(&self, db: &Db, timeout: Duration, now: MonoTime) -> Convergence {
        if db.status.current_generation == db.generation {
            return Convergence::Converged;
        }
        if timeout.is_zero() {
            return Convergence::Converging;
        }
        match self.convergence.get(&db.uid) {
            Some(m) if m.generation == db.generation && now.since(m.since) > timeout => Convergence::Failed,
            _ => Convergence::Converging,
        }
    }

    fn timer_ok(timer: Option<&MonoTime>, fail_interval: Duration, now: MonoTime) -> bool {
        timer.is_none_or(|t| now.since(*t) <= fail_interval)
    }

    /// Records a first pass of a term: every info is remembered as not yet seen changing.
    pub fn observe_first(&mut self, cd: &ClusterData, infos: &BTreeMap<String, KeeperInfo>, now: Now) {
        for ki in infos.values().filter(|ki| ki.cluster_uid == cd.cluster.uid && !ki.uid.is_empty()) {
            self.keeper_infos
                .insert(ki.uid.clone(), KeeperInfoSeen { info_uid: ki.info_uid.clone(), changed: false, at: now.mono });
        }
        self.refresh_convergence(cd, now.mono);
        self.observed = true;
    }
}

/// A keeper entering cluster data from its first fresh info: healthy, last healthy now.
fn keeper_from_info(ki: &KeeperInfo, now: Now) -> Keeper {
    Keeper {
        uid: ki.uid.clone(),
        generation: INITIAL_GENERATION,
        change_time: now.wall,
        spec: KeeperSpec { priority: ki.priority.unwrap_or(0), ..KeeperSpec::default() },
        status: KeeperStatus {
            healthy: true,
            last_healthy_time: now.wall,
            boot_uuid: ki.boot_uuid.clone(),
            postgres_binary_version: ki.postgres_binary_version,
            force_fail: false,
            can_be_master: ki.can_be_master,
            can_be_synchronous_replica: ki.can_be_synchronous_replica,
        },
    }
}

/// Updates keeper and DB statuses of `cd` from the keeper infos (reference §4.2): heartbeat freshness,
/// new keepers, error timers, `failInterval`, forced failures, and the DB status copied from fresh
/// reports. Mutates the timers in `hist`.
pub fn update_keepers_status(
    cd: &ClusterData,
    infos: &BTreeMap<String, KeeperInfo>,
    hist: &mut Histories,
    now: Now,
) -> ClusterData {
    let mut cd = cd.clone();
    let spec = &cd.cluster.spec;
    let sleep_interval = spec.sleep_interval();
    let fail_interval = spec.fail_interval();

    // Fresh infos: this cluster's, with an infoUID that changed recently.
    let mut fresh: BTreeMap<String, &KeeperInfo> = BTreeMap::new();
    for ki in infos.values().filter(|ki| ki.cluster_uid == cd.cluster.uid && !ki.uid.is_empty()) {
        match hist.keeper_infos.get(&ki.uid) {
            Some(seen) if seen.info_uid == ki.info_uid => {
                if seen.changed && now.mono.since(seen.at) <= sleep_interval {
                    fresh.insert(ki.uid.clone(), ki);
                }
            }
            _ => {
                hist.keeper_infos.insert(
                    ki.uid.clone(),
                    KeeperInfoSeen { info_uid: ki.info_uid.clone(), changed: true, at: now.mono },
                );
                fresh.insert(ki.uid.clone(), ki);
            }
        }
    }

    for (uid, ki) in &fresh {
        cd.keepers.entry(uid.clone()).or_insert_with(|| keeper_from_info(ki, now));
    }

    for (uid, k) in cd.keepers.iter_mut() {
        match fresh.get(uid) {
            None => {
                // The error started when the last heartbeat went stale (one sleepInterval after it was seen),
                // not at the pass that noticed it: failInterval is not stretched by the pass schedule.
                let stale_since = hist
                    .keeper_infos
                    .get(uid)
                    .filter(|seen| seen.changed)
                    .map(|seen| seen.at.after(sleep_interval))
                    .filter(|t| *t <= now.mono)
                    .unwrap_or(now.mono);
                hist.keeper_errors.entry(uid.clone()).or_insert(stale_since);
            }
            Some(ki) => {
                hist.keeper_errors.remove(uid);
                k.status.boot_uuid = ki.boot_uuid.clone();
                k.status.postgres_binary_version = ki.postgres_binary_version;
                k.status.can_be_master = ki.can_be_master;
                k.status.can_be_synchronous_replica = ki.can_be_synchronous_replica;
                k.spec.priority = ki.priority.unwrap_or(0);
            }
        }
        let mut healthy = Histories::timer_ok(hist.keeper_errors.get(uid), fail_interval, now.mono);
        if k.status.force_fail {
            healthy = false;
            k.status.force_fail = false;
        }
        if k.status.last_healthy_time.is_zero() || healthy {
            k.status.last_healthy_time = now.wall;
        }
        k.status.healthy = healthy;
    }

    for db in cd.dbs.values_mut() {
        let state = fresh.get(&db.spec.keeper_uid).and_then(|ki| ki.postgres_state.as_ref());
        let Some(ps) = state.filter(|ps| ps.uid == db.uid) else {
            hist.db_errors.entry(db.uid.clone()).or_insert(now.mono);
            continue;
        };
        if db.status.x_log_pos == ps.x_log_pos {
            *hist.db_not_increasing.entry(db.uid.clone()).or_insert(0) += 1;
        } else {
            hist.db_not_increasing.remove(&db.uid);
        }
        db.status.listen_address = ps.listen_address.clone();
        db.status.port = ps.port.clone();
        db.status.current_generation = ps.generation;
        if ps.healthy {
            hist.db_errors.remove(&db.uid);
            db.status.system_id = ps.system_id.clone();
            db.status.timeline_id = ps.timeline_id;
            db.status.x_log_pos = ps.x_log_pos;
            db.status.replay_x_log_pos = ps.replay_x_log_pos;
            db.status.upstream_x_log_pos = ps.upstream_x_log_pos;
            db.status.timelines_history = ps.timelines_history.clone();
            db.status.pg_parameters = ps.pg_parameters.clone();
            db.status.cur_synchronous_standbys = ps.synchronous_standbys.clone().unwrap_or_default();
            db.status.older_wal_file = ps.older_wal_file.clone();
        } else {
            hist.db_errors.entry(db.uid.clone()).or_insert(now.mono);
        }
    }

    let keepers = &cd.keepers;
    for db in cd.dbs.values_mut() {
        let keeper_healthy = keepers.get(&db.spec.keeper_uid).is_some_and(|k| k.status.healthy);
        db.status.healthy = keeper_healthy && Histories::timer_ok(hist.db_errors.get(&db.uid), fail_interval, now.mono);
    }

    // Forget timers of keepers and DBs that are gone.
    hist.keeper_errors.retain(|uid, _| cd.keepers.contains_key(uid));
    hist.db_errors.retain(|uid, _| cd.dbs.contains_key(uid));
    hist.db_not_increasing.retain(|uid, _| cd.dbs.contains_key(uid));
    let published: std::collections::BTreeSet<&String> = infos.values().map(|ki| &ki.uid).collect();
    hist.keeper_infos.retain(|uid, _| published.contains(uid));
    cd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterSpec;
    use crate::time::Timestamp;

    fn at(secs: f64) -> Now {
        Now { mono: MonoTime::from_duration(Duration::from_secs_f64(secs)), wall: Timestamp::now() }
    }

    #[test]
    fn a_silent_keeper_fails_fail_interval_after_its_heartbeat_went_stale() {
        // Defaults: sleepInterval 5 s, failInterval 20 s.
        let mut cd = ClusterData::new_initial("c", ClusterSpec::default(), Timestamp::now());
        let info =
            KeeperInfo { uid: "k1".into(), info_uid: "i1".into(), cluster_uid: "c".into(), ..Default::default() };
        let infos = BTreeMap::from([("k1".to_string(), info)]);
        let mut hist = Histories::new_term();
        hist.observed = true;
        cd = update_keepers_status(&cd, &infos, &mut hist, at(0.0));
        assert!(cd.keepers["k1"].status.healthy);
        // The heartbeat is stale from 5 s on; the pass that notices it runs at 12 s.
        cd = update_keepers_status(&cd, &infos, &mut hist, at(12.0));
        assert!(cd.keepers["k1"].status.healthy);
        assert_eq!(hist.keeper_errors["k1"], MonoTime::from_duration(Duration::from_secs(5)));
        cd = update_keepers_status(&cd, &infos, &mut hist, at(24.9));
        assert!(cd.keepers["k1"].status.healthy, "within failInterval of the stale heartbeat");
        cd = update_keepers_status(&cd, &infos, &mut hist, at(25.1));
        assert!(!cd.keepers["k1"].status.healthy, "failInterval after the heartbeat went stale, not after 12 s");
    }
}
