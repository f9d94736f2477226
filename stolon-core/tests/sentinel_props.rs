//! Property tests of the sentinel's safety invariants over random clusters (one decision) and random event
//! sequences (many passes of `decide` with keepers dying, lagging and coming back).
//!
//! Invariants: one designated master, and a DB is only ever newly given the master role when it is that
//! master; a new master was healthy, converged, allowed to be master, on the old master's system and
//! timeline, valid, and within maxStandbyLag (async) or confirmed in the synchronous set (sync election);
//! proxies are emptied when the master changes and pointed at a master only once every active proxy
//! confirmed the emptied generation; the confirmed sync set stays within the configured one; a master elected
//! under synchronous replication waits for at least minSynchronousStandbys real standbys (or the fake one),
//! never for itself or the failed master, with none confirmed yet; generations never go back.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::sentinel::*;
use stolon_core::time::Timestamp;

fn wall() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00Z").expect("valid timestamp")
}

#[derive(Debug, Clone)]
struct DbGen {
    keeper_healthy: bool,
    can_be_master: bool,
    can_be_sync: bool,
    healthy: bool,
    generation: i64,
    behind: i64,
    x_log_pos: u64,
    timeline: u64,
    foreign_system: bool,
}

fn db_gen() -> impl Strategy<Value = DbGen> {
    (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.8),
        1i64..4,
        prop_oneof![4 => Just(0i64), 1 => Just(1i64), 1 => Just(99i64)],
        prop_oneof![Just(0u64), 0u64..3_000_000],
        prop_oneof![5 => Just(1u64), 1 => Just(2u64)],
        prop::bool::weighted(0.05),
    )
        .prop_map(|(kh, cbm, cbs, h, g, behind, x, tl, fs)| DbGen {
            keeper_healthy: kh,
            can_be_master: cbm,
            can_be_sync: cbs,
            healthy: h,
            generation: g,
            behind,
            x_log_pos: x,
            timeline: tl,
            foreign_system: fs,
        })
}

#[derive(Debug, Clone)]
struct ClusterGen {
    dbs: Vec<DbGen>,
    free_keepers: usize,
    sync: bool,
    min_sync: u16,
    extra_max: u16,
    per_sender: u16,
    master_sync: bool,
    spec_mask: u8,
    status_mask: u8,
    routed: bool,
    proxy_gens: Vec<i64>,
    aged: bool,
}

fn cluster_gen() -> impl Strategy<Value = ClusterGen> {
    (
        prop::collection::vec(db_gen(), 1..6),
        0usize..3,
        any::<bool>(),
        0u16..3,
        0u16..2,
        1u16..4,
        any::<bool>(),
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        prop::collection::vec(0i64..3, 0..3),
        any::<bool>(),
    )
        .prop_map(|(dbs, free, sync, min, extra, per, ms, sm, stm, routed, pg, aged)| ClusterGen {
            dbs,
            free_keepers: free,
            sync,
            min_sync: min,
            extra_max: extra,
            per_sender: per,
            master_sync: ms,
            spec_mask: sm,
            status_mask: stm,
            routed,
            proxy_gens: pg,
            aged,
        })
}

fn build(g: &ClusterGen) -> ClusterData {
    let spec = ClusterSpec {
        init_mode: Some(ClusterInitMode::New),
        synchronous_replication: Some(g.sync),
        min_synchronous_standbys: Some(g.min_sync),
        max_synchronous_standbys: Some(g.min_sync.max(1) + g.extra_max),
        max_standbys_per_sender: Some(g.per_sender),
        ..ClusterSpec::default()
    };
    let mut cd = ClusterData::new_initial("c", spec, wall());
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "db0".into();
    for (i, d) in g.dbs.iter().enumerate() {
        let (uid, kuid) = (format!("db{i}"), format!("k{i}"));
        let mut keeper = Keeper { uid: kuid.clone(), generation: 1, ..Keeper::default() };
        keeper.status.healthy = d.keeper_healthy;
        keeper.status.last_healthy_time = wall();
        keeper.status.can_be_master = Some(d.can_be_master);
        keeper.status.can_be_synchronous_replica = Some(d.can_be_sync);
        cd.keepers.insert(kuid.clone(), keeper);
        let mut db = Db { uid: uid.clone(), generation: d.generation, ..Db::default() };
        db.spec.keeper_uid = kuid;
        if i == 0 {
            db.spec.role = Some(DbRole::Master);
        } else {
            db.spec.role = Some(DbRole::Standby);
            db.spec.follow_config = Some(FollowConfig {
                follow_type: Some(FollowType::Internal),
                db_uid: "db0".into(),
                ..Default::default()
            });
        }
        db.status.healthy = d.healthy && d.keeper_healthy;
        db.status.current_generation = if d.behind == 99 { 0 } else { (d.generation - d.behind).max(1) };
        db.status.x_log_pos = d.x_log_pos;
        db.status.timeline_id = if i == 0 { 1 } else { d.timeline };
        db.status.system_id = if d.foreign_system && i > 0 { "other".into() } else { "sys".into() };
        cd.dbs.insert(uid, db);
    }
    for j in 0..g.free_keepers {
        let kuid = format!("free{j}");
        let mut keeper = Keeper { uid: kuid.clone(), generation: 1, ..Keeper::default() };
        keeper.status.healthy = true;
        keeper.status.last_healthy_time = wall();
        cd.keepers.insert(kuid, keeper);
    }
    let standbys: Vec<String> = (1..g.dbs.len()).map(|i| format!("db{i}")).collect();
    let pick = |mask: u8| -> Vec<String> {
        standbys.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, u)| u.clone()).collect()
    };
    let m = cd.dbs.get_mut("db0").expect("master");
    if g.master_sync {
        m.spec.synchronous_replication = true;
        m.spec.synchronous_standbys = Some(pick(g.spec_mask));
        m.status.synchronous_standbys = Some(pick(g.spec_mask & g.status_mask));
        m.status.cur_synchronous_standbys = pick(g.status_mask | g.spec_mask);
    }
    cd.proxy.generation = 2;
    if g.routed {
        cd.proxy.spec.master_db_uid = "db0".into();
    }
    cd
}

fn proxies(g: &ClusterGen) -> BTreeMap<String, ProxyInfo> {
    g.proxy_gens
        .iter()
        .enumerate()
        .map(|(i, generation)| {
            let uid = format!("p{i}");
            let pi = ProxyInfo {
                info_uid: "x".into(),
                uid: uid.clone(),
                generation: *generation,
                proxy_timeout: GoDuration::from_secs(15),
            };
            (uid, pi)
        })
        .collect()
}

fn converged(db: &Db) -> bool {
    db.status.current_generation == db.generation
}

/// Checks one step `old -> new`, where `old` carries up-to-date health (the decision's input view) and
/// `active` are the proxies the decision saw.
fn check_step(old: &ClusterData, new: &ClusterData, active: &BTreeMap<String, ProxyInfo>) -> Result<(), TestCaseError> {
    let master = &new.cluster.status.master;
    prop_assert!(new.dbs.contains_key(master) || new.cluster.status.phase == Some(ClusterPhase::Initializing));
    // A DB newly given the master role is the designated master.
    for db in new.dbs.values() {
        let was_master = old.dbs.get(&db.uid).is_some_and(|o| o.spec.role == Some(DbRole::Master));
        if db.spec.role == Some(DbRole::Master) && !was_master {
            prop_assert_eq!(&db.uid, master, "only the designated master is promoted");
        }
    }
    // Proxies route to nothing or to the designated master.
    let target = &new.proxy.spec.master_db_uid;
    prop_assert!(target.is_empty() || target == master, "proxy target {target} vs master {master}");
    let old_master_uid = &old.cluster.status.master;
    if master != old_master_uid {
        let om = &old.dbs[old_master_uid];
        let nm = &old.dbs[master];
        let keeper = &old.keepers[&nm.spec.keeper_uid];
        prop_assert!(nm.status.healthy && keeper.status.healthy, "new master healthy");
        prop_assert!(converged(nm), "new master converged");
        prop_assert!(keeper.status.can_be_master != Some(false), "new master allowed to be master");
        prop_assert_eq!(&nm.status.system_id, &om.status.system_id);
        prop_assert_eq!(nm.status.timeline_id, om.status.timeline_id);
        if om.spec.synchronous_replication && old.cluster.spec.sync_replication_active() {
            let confirmed: Vec<&String> = om
                .status
                .synchronous_standbys()
                .iter()
                .filter(|u| om.spec.synchronous_standbys().contains(u))
                .collect();
            prop_assert!(confirmed.contains(&master), "sync election picks a confirmed sync standby");
        } else {
            let lag = om.status.x_log_pos.saturating_sub(nm.status.x_log_pos);
            prop_assert!(lag <= u64::from(old.cluster.spec.max_standby_lag()), "within maxStandbyLag");
        }
        if old.cluster.spec.sync_replication_active() {
            // Strict synchronous replication from the promotion on: the new master waits for at least
            // minSynchronousStandbys real standbys or blocks on the fake one; it never lists the failed old
            // master or itself, and nothing is confirmed before its own keeper reports it.
            let nm_new = &new.dbs[master];
            let list = nm_new.spec.synchronous_standbys();
            let min = usize::from(old.cluster.spec.min_synchronous_standbys());
            let fake = nm_new.spec.external_synchronous_standbys().iter().any(|n| n == FAKE_STANDBY_NAME);
            prop_assert!(nm_new.spec.synchronous_replication);
            prop_assert!(fake || list.len() >= min, "new master lists {list:?}, min {min}, no fake standby");
            prop_assert!(!list.contains(old_master_uid) && !list.contains(master), "{list:?}");
            prop_assert!(nm_new.status.synchronous_standbys().is_empty(), "nothing confirmed at election");
        }
        prop_assert!(target.is_empty(), "proxies emptied on a master change");
    }
    if old.proxy.spec.master_db_uid.is_empty() && !target.is_empty() {
        for pi in active.values() {
            prop_assert_eq!(pi.generation, old.proxy.generation, "every active proxy confirmed the empty target");
        }
        let nm = &old.dbs[target];
        prop_assert!(nm.status.healthy && converged(nm), "routed only to a ready master");
    }
    if let Some(m) = new.dbs.get(master) {
        for uid in m.status.synchronous_standbys() {
            prop_assert!(m.spec.synchronous_standbys().contains(uid), "confirmed sync set within configured");
        }
    }
    for (uid, db) in &new.dbs {
        if let Some(o) = old.dbs.get(uid) {
            prop_assert!(db.generation >= o.generation);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn one_decision_keeps_the_safety_invariants(g in cluster_gen()) {
        let cd = build(&g);
        let mut hist = Histories::new_term();
        hist.refresh_convergence(&cd, MonoTime::ZERO);
        let t = if g.aged { Duration::from_secs(3600) } else { Duration::from_secs(1) };
        let now = Now { mono: MonoTime::from_duration(t), wall: wall() };
        let active = proxies(&g);
        let new = update_cluster(&cd, &active, &hist, now, &mut SequentialUids::after(50)).unwrap();
        check_step(&cd, &new, &active)?;
    }
}

/// One event of a random sequence: which keepers heartbeat, how WAL and convergence progress.
#[derive(Debug, Clone)]
struct Step {
    alive_mask: u8,
    wal_advance: Vec<u64>,
    report_generation: bool,
    secs: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![3 => Just(0xffu8), 2 => any::<u8>()],
        prop::collection::vec(0u64..2_000_000, 6),
        prop::bool::weighted(0.8),
        1u64..4,
    )
        .prop_map(|(alive_mask, wal_advance, report_generation, secs)| Step {
            alive_mask,
            wal_advance,
            report_generation,
            secs,
        })
}

fn keeper_infos(cd: &ClusterData, s: &Step, beat: u64, wal: &BTreeMap<String, u64>) -> BTreeMap<String, KeeperInfo> {
    let mut out = BTreeMap::new();
    for (i, kuid) in cd.keepers.keys().enumerate() {
        if s.alive_mask & (1 << (i % 8)) == 0 {
            continue;
        }
        let db = cd.db_of_keeper(kuid);
        let ps = db.map(|d| PostgresState {
            uid: d.uid.clone(),
            generation: if s.report_generation { d.generation } else { d.status.current_generation },
            healthy: true,
            system_id: "sys".into(),
            timeline_id: 1,
            x_log_pos: wal.get(kuid).copied().unwrap_or(0),
            synchronous_standbys: Some(d.spec.synchronous_standbys().to_vec()),
            ..PostgresState::default()
        });
        let ki = KeeperInfo {
            info_uid: format!("{kuid}-{beat}"),
            uid: kuid.clone(),
            cluster_uid: cd.cluster.uid.clone(),
            postgres_state: ps,
            ..KeeperInfo::default()
        };
        out.insert(kuid.clone(), ki);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn event_sequences_keep_the_safety_invariants(
        g in cluster_gen(),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut cd = build(&g);
        cd.cluster.spec.sleep_interval = Some(GoDuration::from_secs(2));
        cd.cluster.spec.fail_interval = Some(GoDuration::from_secs(4));
        cd.cluster.spec.convergence_timeout = Some(GoDuration::from_secs(6));
        for db in cd.dbs.values_mut() {
            db.status.timeline_id = 1;
            db.status.system_id = "sys".into();
        }
        let mut hist = Histories::new_term();
        let mut t = Duration::ZERO;
        let mut wal: BTreeMap<String, u64> = cd.dbs.values().map(|d| (d.spec.keeper_uid.clone(), d.status.x_log_pos)).collect();
        let mut uids = SequentialUids::after(100);
        let proxy_infos = BTreeMap::new();
        for (beat, s) in steps.iter().enumerate() {
            t += Duration::from_secs(s.secs);
            for (i, adv) in s.wal_advance.iter().enumerate() {
                if let Some(k) = cd.keepers.keys().nth(i) && let Some(w) = wal.get_mut(k) {
                    *w += adv;
                }
            }
            let infos = keeper_infos(&cd, s, beat as u64, &wal);
            let now = Now { mono: MonoTime::from_duration(t), wall: wall() };
            // The decision's own view of health, recomputed (the functions are pure).
            let mut view_hist = hist.clone();
            let view = if view_hist.observed {
                view_hist.refresh_convergence(&cd, now.mono);
                Some(update_keepers_status(&cd, &infos, &mut view_hist, now))
            } else {
                None
            };
            let d = decide(&cd, &infos, &proxy_infos, &hist, now, &mut uids).unwrap();
            if let Some(view) = view {
                check_step(&view, &d.cluster_data, &proxy_infos)?;
            } else {
                prop_assert!(!d.write);
            }
            cd = d.cluster_data;
            hist = d.histories;
        }
    }
}
