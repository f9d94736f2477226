//! Criterion benchmark of one leader pass (`decide`, health update included) for 3, 100 and 1000 keepers:
//! a steady cluster where every keeper hosts a DB, and the same cluster right after its master died.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use stolon_core::cluster::*;
use stolon_core::sentinel::*;
use stolon_core::time::Timestamp;

fn wall() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00Z").expect("valid timestamp")
}

/// `n` keepers, one master DB and `n - 1` converged standbys, all heartbeating; sync replication on.
fn cluster(n: usize) -> ClusterData {
    let spec = ClusterSpec {
        init_mode: Some(ClusterInitMode::New),
        max_standbys_per_sender: Some(u16::try_from(n).unwrap_or(u16::MAX)),
        synchronous_replication: Some(true),
        max_synchronous_standbys: Some(2),
        ..ClusterSpec::default()
    };
    let mut cd = ClusterData::new_initial("c", spec, wall());
    cd.cluster.status.phase = Some(ClusterPhase::Normal);
    cd.cluster.status.master = "db0".into();
    for i in 0..n {
        let (k, d) = (format!("k{i:04}"), format!("db{i}"));
        let mut keeper = Keeper { uid: k.clone(), generation: 1, ..Keeper::default() };
        keeper.status.healthy = true;
        keeper.status.last_healthy_time = wall();
        cd.keepers.insert(k.clone(), keeper);
        let mut db = Db { uid: d.clone(), generation: 1, ..Db::default() };
        db.spec.keeper_uid = k;
        db.spec.role = Some(if i == 0 { DbRole::Master } else { DbRole::Standby });
        if i > 0 {
            db.spec.follow_config = Some(FollowConfig {
                follow_type: Some(FollowType::Internal),
                db_uid: "db0".into(),
                ..Default::default()
            });
        }
        db.status = DbStatus {
            healthy: true,
            current_generation: 1,
            timeline_id: 1,
            system_id: "sys".into(),
            x_log_pos: 1_000_000 + i as u64,
            ..DbStatus::default()
        };
        cd.dbs.insert(d, db);
    }
    cd
}

fn infos(cd: &ClusterData, beat: u32, skip: Option<&str>) -> BTreeMap<String, KeeperInfo> {
    cd.keepers
        .keys()
        .filter(|k| Some(k.as_str()) != skip)
        .map(|k| {
            let db = cd.db_of_keeper(k).expect("every keeper hosts a db");
            let ps = PostgresState {
                uid: db.uid.clone(),
                generation: db.generation,
                healthy: true,
                system_id: "sys".into(),
                timeline_id: 1,
                x_log_pos: db.status.x_log_pos,
                synchronous_standbys: Some(db.spec.synchronous_standbys().to_vec()),
                ..PostgresState::default()
            };
            let ki = KeeperInfo {
                info_uid: format!("{k}-{beat}"),
                uid: k.clone(),
                cluster_uid: cd.cluster.uid.clone(),
                postgres_state: Some(ps),
                ..KeeperInfo::default()
            };
            (k.clone(), ki)
        })
        .collect()
}

/// Runs a few passes so the histories are warm; returns the state before the measured pass.
fn warm(n: usize) -> (ClusterData, Histories, Duration) {
    let mut cd = cluster(n);
    let mut hist = Histories::new_term();
    let mut t = Duration::ZERO;
    for beat in 0..3 {
        t += Duration::from_secs(1);
        let now = Now { mono: MonoTime::from_duration(t), wall: wall() };
        let d = decide(&cd, &infos(&cd, beat, None), &BTreeMap::new(), &hist, now, &mut SequentialUids::after(1 << 20))
            .expect("decides");
        cd = d.cluster_data;
        hist = d.histories;
    }
    (cd, hist, t)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sentinel_decide");
    for n in [3usize, 100, 1000] {
        let (cd, hist, t) = warm(n);
        let fresh = infos(&cd, 99, None);
        let now = Now { mono: MonoTime::from_duration(t + Duration::from_secs(1)), wall: wall() };
        group.bench_with_input(BenchmarkId::new("steady", n), &n, |b, _| {
            b.iter(|| decide(black_box(&cd), &fresh, &BTreeMap::new(), &hist, now, &mut SequentialUids::after(1 << 20)))
        });
        // The master's keeper stopped long ago: the pass elects a new master.
        let master_keeper = cd.master_db().expect("master").spec.keeper_uid.clone();
        let mut failed = cd.clone();
        let mut failed_hist = hist.clone();
        failed_hist.keeper_errors.insert(master_keeper.clone(), MonoTime::ZERO);
        failed.keepers.get_mut(&master_keeper).expect("keeper").status.healthy = false;
        let without_master = infos(&cd, 99, Some(&master_keeper));
        let later = Now { mono: MonoTime::from_duration(t + Duration::from_secs(60)), wall: wall() };
        let probe =
            decide(&failed, &without_master, &BTreeMap::new(), &failed_hist, later, &mut OsEntropy).expect("decides");
        assert_ne!(probe.cluster_data.cluster.status.master, "db0", "the failover scenario elects");
        group.bench_with_input(BenchmarkId::new("failover", n), &n, |b, _| {
            b.iter(|| {
                decide(black_box(&failed), &without_master, &BTreeMap::new(), &failed_hist, later, &mut OsEntropy)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
