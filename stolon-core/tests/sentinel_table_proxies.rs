//! stolon's active-proxies behaviours (`TestActiveProxiesInfos`) and the gating of the master's address
//! on the proxies' generations, as named tests over the pure decision; conventions as in `sentinel_table.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use stolon_core::cluster::*;
use stolon_core::duration::GoDuration;
use stolon_core::sentinel::*;

#[path = "common/sentinel_fixtures.rs"]
mod sentinel_fixtures;
use sentinel_fixtures::*;
#[path = "common/sentinel_table_helpers.rs"]
mod sentinel_table_helpers;
use sentinel_table_helpers::*;
// ---- Active proxies (stolon's TestActiveProxiesInfos) and gating ----

fn proxy_info(uid: &str, info_uid: &str, generation: i64) -> ProxyInfo {
    ProxyInfo { info_uid: info_uid.into(), uid: uid.into(), generation, proxy_timeout: GoDuration::from_secs(15) }
}

fn infos(list: &[ProxyInfo]) -> BTreeMap<String, ProxyInfo> {
    list.iter().map(|p| (p.uid.clone(), p.clone())).collect()
}

const PT: Duration = Duration::from_secs(15);

#[test]
fn proxies_empty_input_gives_no_active_proxy() {
    let mut h = Histories::new_term();
    assert!(active_proxies(&BTreeMap::new(), &mut h, PT, MonoTime::ZERO).is_empty());
    assert!(h.proxy_infos.is_empty());
}

#[test]
fn proxies_new_infos_are_recorded_and_active() {
    let mut h = Histories::new_term();
    let i = infos(&[proxy_info("p1", "a", 1), proxy_info("p2", "b", 1)]);
    let t = MonoTime::from_duration(HOUR);
    assert_eq!(active_proxies(&i, &mut h, PT, t).len(), 2);
    assert_eq!(h.proxy_infos["p1"].at, t);
}

#[test]
fn proxies_changed_info_uid_refreshes_the_timer() {
    let mut h = Histories::new_term();
    active_proxies(&infos(&[proxy_info("p1", "a", 1)]), &mut h, PT, MonoTime::ZERO);
    let later = MonoTime::from_duration(3 * PT);
    let active = active_proxies(&infos(&[proxy_info("p1", "b", 1)]), &mut h, PT, later);
    assert!(active.contains_key("p1"));
    assert_eq!(h.proxy_infos["p1"].at, later);
}

#[test]
fn proxies_unchanged_for_three_timeouts_are_inactive_one_timeout_still_active() {
    let i = infos(&[proxy_info("p1", "a", 1)]);
    let mut h = Histories::new_term();
    active_proxies(&i, &mut h, PT, MonoTime::ZERO);
    assert!(active_proxies(&i, &mut h.clone(), PT, MonoTime::from_duration(PT)).contains_key("p1"));
    assert!(active_proxies(&i, &mut h, PT, MonoTime::from_duration(3 * PT)).is_empty());
}

#[test]
fn proxies_missing_from_the_store_are_dropped_from_the_history() {
    let mut h = Histories::new_term();
    active_proxies(&infos(&[proxy_info("p1", "a", 1), proxy_info("p2", "b", 1)]), &mut h, PT, MonoTime::ZERO);
    active_proxies(&infos(&[proxy_info("p2", "b", 1)]), &mut h, PT, MonoTime::ZERO);
    assert!(!h.proxy_infos.contains_key("p1"));
}

#[test]
fn proxies_gate_waits_for_every_active_proxy_to_confirm_the_generation() {
    let cd = after_failover(); // proxy generation 2, no target
    let lagging = infos(&[proxy_info("p1", "a", 2), proxy_info("p2", "b", 1)]);
    let got = run_with_proxies(&cd, &lagging).unwrap();
    assert_eq!(got.proxy.spec.master_db_uid, "");
    let confirmed = infos(&[proxy_info("p1", "a", 2), proxy_info("p2", "b", 2)]);
    let got = run_with_proxies(&cd, &confirmed).unwrap();
    assert_eq!(got.proxy.spec.master_db_uid, "db2");
    assert_eq!(got.proxy.generation, 3);
    // Next pass: enabled proxies follow the active ones.
    let got2 = run_with_proxies(&got, &confirmed).unwrap();
    assert_eq!(got2.proxy.spec.enabled_proxies, s(&["p1", "p2"]));
    assert_eq!(got2.proxy.generation, 4);
}

// ---- Health through the whole pass (decide) ----

fn keeper_info(cd: &ClusterData, keeper_uid: &str, beat: u32) -> KeeperInfo {
    let db = cd.db_of_keeper(keeper_uid);
    KeeperInfo {
        info_uid: format!("{keeper_uid}-{beat}"),
        uid: keeper_uid.into(),
        cluster_uid: cd.cluster.uid.clone(),
        boot_uuid: "boot".into(),
        postgres_state: db.map(|d| PostgresState {
            uid: d.uid.clone(),
            generation: d.generation,
            healthy: true,
            timeline_id: 1,
            ..PostgresState::default()
        }),
        ..KeeperInfo::default()
    }
}

/// Drives `decide` pass after pass, one second apart, with the keepers in `alive` heartbeating.
struct Sim {
    cd: ClusterData,
    hist: Histories,
    t: Duration,
    beat: u32,
}

impl Sim {
    fn new(cd: ClusterData) -> Self {
        Sim { cd, hist: Histories::new_term(), t: Duration::ZERO, beat: 0 }
    }

    fn pass(&mut self, alive: &[&str]) -> Decision {
        self.beat += 1;
        self.t += Duration::from_secs(1);
        let infos: BTreeMap<String, KeeperInfo> =
            alive.iter().map(|k| (k.to_string(), keeper_info(&self.cd, k, self.beat))).collect();
        let now = Now { mono: MonoTime::from_duration(self.t), wall: wall() };
        let d = decide(&self.cd, &infos, &BTreeMap::new(), &self.hist, now, &mut SequentialUids::after(100)).unwrap();
        self.hist = d.histories.clone();
        self.cd = d.cluster_data.clone();
        d
    }
}

fn fast(mut cd: ClusterData) -> ClusterData {
    cd.cluster.spec.sleep_interval = Some(GoDuration::from_secs(2));
    cd.cluster.spec.fail_interval = Some(GoDuration::from_secs(5));
    cd
}

#[test]
fn health_first_pass_of_a_term_only_observes() {
    let mut cd = normal(2, 1);
    sick_keeper(&mut cd, "keeper1"); // a stale verdict of a previous leader
    let mut sim = Sim::new(cd.clone());
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(!d.write);
    assert_eq!(d.cluster_data, cd);
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(d.write);
    assert_eq!(d.cluster_data.cluster.status.master, "db1", "fresh observation: no failover");
    assert!(d.cluster_data.keepers["keeper1"].status.healthy);
}

#[test]
fn health_keeper_that_stops_heartbeating_fails_after_fail_interval_then_failover() {
    let mut sim = Sim::new(fast(normal(2, 1)));
    sim.pass(&["keeper1", "keeper2"]);
    sim.pass(&["keeper1", "keeper2"]);
    for _ in 0..5 {
        let d = sim.pass(&["keeper2"]);
        assert_eq!(d.cluster_data.cluster.status.master, "db1", "within failInterval + heartbeat window");
    }
    let mut elected = false;
    for _ in 0..4 {
        elected |= sim.pass(&["keeper2"]).cluster_data.cluster.status.master == "db2";
    }
    assert!(elected, "master failed over after failInterval");
    assert!(!sim.cd.keepers["keeper1"].status.healthy);
}

#[test]
fn health_force_fail_marks_the_keeper_unhealthy_once() {
    let mut sim = Sim::new(fast(normal(2, 1)));
    sim.pass(&["keeper1", "keeper2"]);
    sim.cd.keepers.get_mut("keeper2").unwrap().status.force_fail = true;
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(!d.cluster_data.keepers["keeper2"].status.healthy);
    assert!(!d.cluster_data.keepers["keeper2"].status.force_fail, "one-shot flag consumed");
    let d = sim.pass(&["keeper1", "keeper2"]);
    assert!(d.cluster_data.keepers["keeper2"].status.healthy);
}

#[test]
fn health_new_keepers_join_and_foreign_infos_are_ignored() {
    let mut sim = Sim::new(fast(normal(2, 1)));
    sim.pass(&["keeper1", "keeper2"]);
    sim.cd.keepers.insert("keeper3".into(), keeper("keeper3", true));
    let mut k3 = keeper_info(&sim.cd, "keeper3", 1);
    sim.cd.keepers.remove("keeper3");
    let mut foreign = k3.clone();
    foreign.uid = "stranger".into();
    foreign.cluster_uid = "another".into();
    k3.can_be_master = Some(false);
    let infos: BTreeMap<String, KeeperInfo> = [
        ("keeper1".into(), keeper_info(&sim.cd, "keeper1", 9)),
        ("keeper2".into(), keeper_info(&sim.cd, "keeper2", 9)),
        ("keeper3".into(), k3),
        ("stranger".into(), foreign),
    ]
    .into();
    let now = Now { mono: MonoTime::from_duration(Duration::from_secs(5)), wall: wall() };
    let d = decide(&sim.cd, &infos, &BTreeMap::new(), &sim.hist, now, &mut SequentialUids::after(5)).unwrap();
    assert!(d.cluster_data.keepers["keeper3"].status.healthy);
    assert_eq!(d.cluster_data.keepers["keeper3"].status.can_be_master, Some(false));
    assert!(!d.cluster_data.keepers.contains_key("stranger"));
}

#[test]
fn unreadable_cluster_data_is_refused() {
    let mut cd = normal(2, 1);
    cd.format_version = 2;
    let d = decide(&cd, &BTreeMap::new(), &BTreeMap::new(), &Histories::new_term(), now(), &mut OsEntropy);
    assert_eq!(d.unwrap_err(), DecideError::UnsupportedFormatVersion(2));
    let mut cd = normal(2, 1);
    cd.cluster.spec.max_standbys = Some(0);
    let d = decide(&cd, &BTreeMap::new(), &BTreeMap::new(), &Histories::new_term(), now(), &mut OsEntropy);
    assert!(matches!(d, Err(DecideError::InvalidSpec(_))));
}

// ---- Other init modes ----

#[test]
fn init_existing_uses_the_named_keeper_once_it_is_known() {
    let mut cd = init_cluster(&["keeper1"]);
    cd.cluster.spec.init_mode = Some(ClusterInitMode::Existing);
    cd.cluster.spec.existing_config = Some(ExistingConfig { keeper_uid: "keeper2".into() });
    assert_eq!(run(&cd).unwrap_err(), DecideError::ExistingKeeperMissing("keeper2".into()));
    cd.keepers.insert("keeper2".into(), keeper("keeper2", true));
    let got = run(&cd).unwrap();
    let db = &got.dbs["db1"];
    assert_eq!(db.spec.keeper_uid, "keeper2");
    assert_eq!(db.spec.init_mode, Some(DbInitMode::Existing));
    assert_eq!(got.cluster.status.master, "db1");
    // Not converged yet: it waits instead of trying another keeper.
    let waited = run(&got).unwrap();
    assert_eq!(waited.cluster.status.master, "db1");
    assert_eq!(waited.cluster.status.phase, Some(ClusterPhase::Initializing));
}

#[test]
fn init_pitr_of_a_standby_cluster_follows_the_external_primary() {
    let mut cd = init_cluster(&["keeper1"]);
    cd.cluster.spec.init_mode = Some(ClusterInitMode::Pitr);
    cd.cluster.spec.role = Some(ClusterRole::Standby);
    cd.cluster.spec.pitr_config = Some(PitrConfig { data_restore_command: "restore %d".into(), ..Default::default() });
    cd.cluster.spec.standby_config = Some(StandbyConfig {
        standby_settings: Some(StandbySettings { primary_conninfo: "host=ext".into(), ..Default::default() }),
        archive_recovery_settings: None,
    });
    let got = run(&cd).unwrap();
    let db = &got.dbs["db1"];
    assert_eq!(db.spec.init_mode, Some(DbInitMode::Pitr));
    assert_eq!(db.spec.role, Some(DbRole::Standby));
    let fc = db.spec.follow_config.as_ref().unwrap();
    assert_eq!(fc.follow_type, Some(FollowType::External));
    assert_eq!(fc.standby_settings.as_ref().unwrap().primary_conninfo, "host=ext");
    assert_eq!(db.spec.pitr_config.as_ref().unwrap().data_restore_command, "restore %d");
    // pitr has no init timeout: an unconverged DB is never given up.
    let waited = run(&got).unwrap();
    assert_eq!(waited.cluster.status.master, "db1");
}

#[test]
fn promote_of_a_standby_cluster_makes_the_head_master() {
    let mut cd = normal(2, 1);
    let m = dbm(&mut cd, "db1");
    m.spec.role = Some(DbRole::Standby);
    m.spec.follow_config = Some(FollowConfig { follow_type: Some(FollowType::External), ..FollowConfig::default() });
    // The spec role is master again (stolonctl promote): the head becomes master on this pass.
    let got = run(&cd).unwrap();
    assert_eq!(got.dbs["db1"].spec.role, Some(DbRole::Master));
    assert_eq!(got.dbs["db1"].spec.follow_config, None);
    assert_eq!(got.dbs["db1"].generation, 2);
}
