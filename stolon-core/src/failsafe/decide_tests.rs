use super::*;
use crate::cluster::{ClusterInitMode, ClusterSpec, Db, DbSpec, DbStatus, FollowConfig, Keeper};
use crate::duration::GoDuration;
use crate::time::Timestamp;

/// keeper0 runs the master db0 at 10.0.0.1; keeper1 and keeper2 run standbys of it.
fn cd(failsafe: bool) -> ClusterData {
    let spec = ClusterSpec {
        init_mode: Some(ClusterInitMode::New),
        proxy_timeout: Some(GoDuration::from_secs(15)),
        failsafe_mode: Some(failsafe),
        ..ClusterSpec::default()
    };
    let mut cd = ClusterData::new_initial("c", spec, Timestamp::default());
    for i in 0..3 {
        let keeper = format!("keeper{i}");
        cd.keepers.insert(keeper.clone(), Keeper { uid: keeper.clone(), ..Keeper::default() });
        let (role, follow_config) = if i == 0 {
            (DbRole::Master, None)
        } else {
            let f =
                FollowConfig { follow_type: Some(FollowType::Internal), db_uid: "db0".into(), ..Default::default() };
            (DbRole::Standby, Some(f))
        };
        let spec = DbSpec { keeper_uid: keeper, role: Some(role), follow_config, ..DbSpec::default() };
        let status = DbStatus { listen_address: format!("10.0.0.{}", i + 1), ..DbStatus::default() };
        cd.dbs.insert(format!("db{i}"), Db { uid: format!("db{i}"), spec, status, ..Db::default() });
    }
    cd.cluster.status.master = "db0".into();
    cd
}

const STREAMING: Streaming<'static> = Streaming { status: "streaming", sender_host: Some("10.0.0.1") };

#[test]
fn a_streaming_standby_confirms_its_master_with_the_proxy_timeout_as_window() {
    let got = follower_verdict(&cd(true), "keeper1", Some(STREAMING), false);
    assert_eq!(got, Ok(("db0".to_string(), Duration::from_secs(15))));
}

#[test]
fn no_confirmation_when_off_holding_not_streaming_or_not_following() {
    let on = cd(true);
    assert!(follower_verdict(&cd(false), "keeper1", Some(STREAMING), false).unwrap_err().contains("off"));
    assert!(follower_verdict(&on, "keeper1", Some(STREAMING), true).unwrap_err().contains("become master"));
    assert!(follower_verdict(&on, "keeper1", None, false).unwrap_err().contains("not streaming"));
    let startup = Streaming { status: "startup", sender_host: None };
    assert!(follower_verdict(&on, "keeper1", Some(startup), false).unwrap_err().contains("startup"));
    let elsewhere = Streaming { status: "streaming", sender_host: Some("10.0.0.9") };
    assert!(follower_verdict(&on, "keeper1", Some(elsewhere), false).unwrap_err().contains("10.0.0.9"));
    // The master itself, and a keeper without a DB, confirm nothing.
    assert!(follower_verdict(&on, "keeper0", Some(STREAMING), false).is_err());
    assert!(follower_verdict(&on, "keeper9", Some(STREAMING), false).is_err());
    // A standby of another DB (a new election it has read) no longer confirms the old master.
    let mut moved = cd(true);
    moved.dbs.get_mut("db1").unwrap().spec.follow_config.as_mut().unwrap().db_uid = "db2".into();
    assert!(follower_verdict(&moved, "keeper1", Some(STREAMING), false).unwrap_err().contains("does not follow"));
    // A standby told to become master (the cluster's master is now its DB) confirms nothing.
    let mut elected = cd(true);
    elected.cluster.status.master = "db1".into();
    assert!(follower_verdict(&elected, "keeper1", Some(STREAMING), false).is_err());
}

#[test]
fn the_master_answers_the_shortest_time_left_of_every_other_db_keepers_confirmation() {
    let now = Instant::now();
    let c = |ago: u64, window: u64| Confirmation {
        asked_at: now - Duration::from_secs(ago),
        window: Duration::from_secs(window),
    };
    let mut confirmed = BTreeMap::from([("keeper1".to_string(), c(2, 15)), ("keeper2".to_string(), c(5, 15))]);
    let got = master_verdict(&cd(true), "keeper0", true, &confirmed, now);
    assert_eq!(got, Ok(("db0".to_string(), Duration::from_secs(10))));
    // A keeper without a DB in the cluster data is not asked.
    let mut extra = cd(true);
    extra.keepers.insert("keeper3".into(), Keeper { uid: "keeper3".into(), ..Keeper::default() });
    assert!(master_verdict(&extra, "keeper0", true, &confirmed, now).is_ok());
    // One confirmation too old, or missing: no answer, naming the keeper.
    confirmed.insert("keeper2".into(), c(16, 15));
    assert!(master_verdict(&cd(true), "keeper0", true, &confirmed, now).unwrap_err().contains("keeper2"));
    confirmed.remove("keeper2");
    assert!(master_verdict(&cd(true), "keeper0", true, &confirmed, now).unwrap_err().contains("keeper2"));
}

#[test]
fn the_master_gives_no_answer_when_off_deposed_not_primary_or_alone() {
    let now = Instant::now();
    let fresh = Confirmation { asked_at: now, window: Duration::from_secs(15) };
    let all = BTreeMap::from([("keeper1".to_string(), fresh), ("keeper2".to_string(), fresh)]);
    assert!(master_verdict(&cd(false), "keeper0", true, &all, now).unwrap_err().contains("off"));
    assert!(master_verdict(&cd(true), "keeper0", false, &all, now).unwrap_err().contains("primary"));
    assert!(master_verdict(&cd(true), "keeper1", true, &all, now).unwrap_err().contains("not this keeper"));
    let mut alone = cd(true);
    alone.dbs.retain(|uid, _| uid == "db0");
    assert!(master_verdict(&alone, "keeper0", true, &all, now).unwrap_err().contains("no other DB"));
}

#[test]
fn promotion_waits_out_the_last_confirmation_window() {
    let now = Instant::now();
    let long_ago = now - Duration::from_secs(3600);
    let s = Duration::from_secs;
    assert_eq!(promotion_wait(None, long_ago, None, now), Duration::ZERO);
    assert_eq!(promotion_wait(None, long_ago, Some(s(15)), now), Duration::ZERO);
    assert_eq!(promotion_wait(Some(now + s(7)), long_ago, Some(s(15)), now), s(7));
    assert_eq!(promotion_wait(Some(now + s(7)), long_ago, None, now), s(7));
    assert_eq!(promotion_wait(Some(now - s(1)), long_ago, Some(s(15)), now), Duration::ZERO);
}

#[test]
fn a_keeper_started_less_than_a_window_ago_waits_out_the_window_from_its_start() {
    // Its previous process may have confirmed just before it stopped: that promise is not in memory any more.
    let now = Instant::now();
    let s = Duration::from_secs;
    let started = now - s(4);
    assert_eq!(promotion_wait(None, started, Some(s(15)), now), s(11));
    assert_eq!(promotion_wait(Some(now + s(13)), started, Some(s(15)), now), s(13));
    assert_eq!(promotion_wait(Some(now + s(2)), started, Some(s(15)), now), s(11));
    // Failsafe mode off in the cluster data that elects it: no wait for promises it cannot have given.
    assert_eq!(promotion_wait(None, started, None, now), Duration::ZERO);
}

#[test]
fn a_proxy_trusts_an_answer_about_its_master_from_its_request_time() {
    let asked = Instant::now();
    let v = Duration::from_secs(9);
    assert_eq!(proxy_trust_until("db0", "db0", asked, v), Some(asked + v));
    assert_eq!(proxy_trust_until("db0", "db1", asked, v), None);
    assert_eq!(proxy_trust_until("", "", asked, v), None);
}

/// The safety property in one timeline: whatever the delays, a proxy's trust derived from a standby's
/// confirmation ends no later than that standby may promote.
#[test]
fn trust_never_outlives_the_promotion_wait() {
    let t0 = Instant::now();
    let window = Duration::from_secs(15);
    for (answer_delay, proxy_delay, told_later) in
        [(0u64, 0u64, 0u64), (300, 800, 0), (2000, 100, 3000), (10, 14_000, 1)]
    {
        // The master asks at t0; the standby answers `answer_delay` later and records its promise then.
        let answered = t0 + Duration::from_millis(answer_delay);
        let given_until = answered + window;
        // The standby is told to become master right after answering (or later).
        let told = answered + Duration::from_millis(told_later);
        let promotes_at = told + promotion_wait(Some(given_until), t0 - Duration::from_secs(3600), Some(window), told);
        // A proxy asks the master `proxy_delay` after t0; the master answers with the time left.
        let proxy_asked = t0 + Duration::from_millis(proxy_delay);
        let Ok((_, valid_for)) = master_verdict(
            &cd(true),
            "keeper0",
            true,
            &BTreeMap::from([
                ("keeper1".to_string(), Confirmation { asked_at: t0, window }),
                ("keeper2".to_string(), Confirmation { asked_at: t0, window }),
            ]),
            proxy_asked,
        ) else {
            continue;
        };
        let trusted_until = proxy_trust_until("db0", "db0", proxy_asked, valid_for).unwrap();
        assert!(trusted_until <= promotes_at, "{answer_delay} {proxy_delay} {told_later}");
    }
}

#[test]
fn a_proxy_never_asks_for_a_master_its_copy_says_was_replaced() {
    assert!(proxy_may_ask("db0", None), "outage noticed by a failed read");
    assert!(proxy_may_ask("db0", Some("db0")), "outage noticed by a failed publish, same master");
    assert!(!proxy_may_ask("db0", Some("db1")), "the copy names a new master");
    assert!(!proxy_may_ask("db0", Some("")), "the copy names no master (after an election)");
}
