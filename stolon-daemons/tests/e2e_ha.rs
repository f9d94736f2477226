//! stolon's HA scenarios (ha_test.go): initialisation with several keepers, master/standby, failover, failed
//! failover, too much lag, forced failure, synchronous standby not in sync and disappeared keeper data.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::time::Duration;

use anyhow::{Context, bail};
use harness::recovery::{self, RejoinPath};
use harness::sql;
use harness::writes::WriteChecker;
use harness::{Env, R, Scenario, TestCluster, Variant, WAIT, master_keeper, never, wait_for};
use stolon_core::sentinel::messages::REMOVING_INVALID_DB;

/// The sleepInterval and failInterval of the harness's spec.
const SLEEP_INTERVAL: Duration = Duration::from_secs(1);
const FAIL_INTERVAL: Duration = Duration::from_secs(4);

/// stolon's failInterval is 5 s and its "must not be elected" waits 30 s; ours is 4 s, and four failure
/// intervals (sixteen sentinel passes, one per sleepInterval) are plenty for the sentinel to have decided.
const NOT_ELECTED_PERIOD: Duration = Duration::from_secs(16);

/// Writes the no-acknowledged-write-lost checker must have committed before a fault is injected.
const ACKED_BEFORE_FAULT: usize = 10;

/// The normal (non-superuser) user of TestSyncStandbyNotInSync.
const USER01: &str = "user01";
const USER01_PASSWORD: &str = "password";

fn main() {
    let mut all = vec![Scenario::core("TestInitWithMultipleKeepers", test_init_with_multiple_keepers)];
    for v in [Variant::Async, Variant::SyncRepl] {
        let s = Scenario::core(format!("TestFailover{}", v.suffix()), move |env| test_failover(env, v));
        all.push(if v == Variant::SyncRepl { s.across_versions() } else { s });
    }
    for v in [Variant::Async, Variant::SyncRepl] {
        let s = v.suffix();
        all.push(Scenario::full(format!("TestMasterStandby{s}"), move |env| test_master_standby(env, v)));
        all.push(Scenario::full(format!("TestFailoverFailed{s}"), move |env| test_failover_failed(env, v)));
        all.push(Scenario::full(format!("TestForceFail{s}"), move |env| test_force_fail(env, v)));
    }
    all.push(Scenario::full("TestFailoverTooMuchLag", test_failover_too_much_lag));
    for v in [Variant::SyncRepl, Variant::SyncRepl0] {
        let name = format!("TestSyncStandbyNotInSync{}", if v.sync0() { "0" } else { "" });
        all.push(Scenario::full(name, move |env| test_sync_standby_not_in_sync(env, v)));
    }
    all.push(Scenario::full("TestDisappearedKeeperData", test_disappeared_keeper_data));
    all.push(Scenario::full("TestFailoverSyncReplRemainingStandby", test_failover_sync_repl_remaining_standby));
    // CI runs the pg_rewind variant (the rewind of a standby that replayed WAL past the fork point); the base
    // backup variant is in the full suite.
    // CI runs the case pg_rewind alone gets wrong (WAL received past the fork point, not replayed); the
    // replayed case (pg_rewind rewinds) and the base backup variant are in the full suite.
    all.push(Scenario::full("TestFailoverAheadStandbyUnreplayedSyncReplPgrewind", |env| {
        test_failover_ahead_standby(env, Variant::SyncReplPgrewind, false)
    }));
    all.push(Scenario::extended("TestFailoverAheadStandbySyncReplPgrewind", |env| {
        test_failover_ahead_standby(env, Variant::SyncReplPgrewind, true)
    }));
    all.push(Scenario::extended("TestFailoverAheadStandbySyncRepl", |env| {
        test_failover_ahead_standby(env, Variant::SyncRepl, true)
    }));
    harness::runner::run(all);
}

/// Three keepers and two sentinels: a master is chosen, its DB converges and accepts connections.
async fn test_init_with_multiple_keepers(env: Env) -> R<()> {
    let c = TestCluster::start(&env, &harness::ha_spec(), 3, 2, 0).await?;
    let master = c.wait_master_ready().await?;
    c.wait_db_ready(&master, WAIT).await?;
    sql::exec(&c.connect(&master).await?, "SELECT 1").await
}

/// Stopping the master keeper (SIGINT: it stops its PostgreSQL) makes the standby the master, with the
/// data, and the proxies route to it. With synchronous replication, no acknowledged write is lost.
async fn test_failover(env: Env, v: Variant) -> R<()> {
    let (mut c, master, standby) = master_and_standby(&env, v, 2).await?;
    first_row_everywhere(&c, &master, &standby).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    c.wait_proxy_routes_to(1, &master, WAIT).await?;

    let checker = start_checker(&c, v).await?;
    c.keeper(&master)?.stop().await?;

    standby_took_over(&c, &standby).await?;
    if let Some(checker) = checker {
        let report = checker.finish().await?;
        report.verify(&c.connect(&standby).await?, ACKED_BEFORE_FAULT).await?;
    }
    Ok(())
}

/// Two keepers: (sync: the standby becomes the synchronous standby in spec and status) a row written on
/// the master reaches the standby.
async fn test_master_standby(env: Env, v: Variant) -> R<()> {
    let (c, master, standby) = master_and_standby(&env, v, 0).await?;
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    let on_master = sql::row_ids(&m).await?;
    if on_master != [1] {
        bail!("rows on the master: {on_master:?}, expected [1]");
    }
    c.wait_rows(&standby, &[1], WAIT).await
}

/// The standby is elected but dies before it can promote; the old master comes back. Async: the old
/// master, still a valid master DB, is elected again. Sync: it is not (it is not a confirmed synchronous
/// standby of the failed new master), so it must not be elected within [`NOT_ELECTED_PERIOD`].
///
/// stolon stops the standby after it sees the election and says this is racy (the standby may promote
/// first); our keepers react to a cluster data watch within milliseconds, so here the standby's keeper is
/// frozen first and the master's failure is forced with `failkeeper`: the sentinel elects the standby at
/// its next pass, while the frozen keeper still counts as healthy (for failInterval) and can never act.
/// failInterval is 8 s here so that a slow sentinel pass on a loaded machine still sees the frozen keeper
/// as healthy.
async fn test_failover_failed(env: Env, v: Variant) -> R<()> {
    let spec = harness::merged(v.ha_spec(), &serde_json::json!({ "failInterval": "8s" }));
    let (mut c, master, standby) = start_master_and_standby(&env, &spec, v, 1).await?;
    first_row_everywhere(&c, &master, &standby).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;

    c.keeper(&master)?.stop().await?;
    // A frozen keeper reports nothing: it must first have reported the WAL the master wrote until it
    // stopped, or the asynchronous election refuses it for lag. The master's last report reaches the
    // cluster data within two sentinel passes.
    tokio::time::sleep(2 * SLEEP_INTERVAL).await;
    c.wait_cd("the standby reporting the stopped master's last WAL position", WAIT, |cd| {
        let pos = |uid: &str| cd.db_of_keeper(uid).map(|db| db.status.x_log_pos);
        matches!((pos(&master), pos(&standby)), (Some(m), Some(s)) if s >= m)
    })
    .await?;
    c.keeper(&standby)?.proc.freeze();
    c.stolonctl_ok(&["failkeeper", &master]).await?;
    c.wait_master_is(&standby, WAIT).await?;
    c.keeper(&standby)?.kill_all().await?;

    c.keeper(&master)?.start()?;
    if v.sync() {
        // The old master is back, healthy and converged: electable if the sentinel allowed it.
        c.wait_db_ready(&master, WAIT).await?;
        never(&format!("the old master {master} elected again"), NOT_ELECTED_PERIOD, || async {
            Ok(master_keeper(&c.cd().await?).as_deref() == Some(master.as_str()))
        })
        .await?;
        let cd = c.cd().await?;
        if master_keeper(&cd).as_deref() != Some(standby.as_str()) {
            bail!("the master moved away from {standby}: {}", harness::summary(&cd));
        }
    } else {
        c.wait_master_is(&master, WAIT).await?;
        c.wait_in_recovery(&master, false, WAIT).await?;
        c.wait_rows(&master, &[1], WAIT).await?;
        c.wait_proxy_routes_to(0, &master, WAIT).await?;
    }
    Ok(())
}

/// Async only: the standby is stopped, the master writes far more than maxStandbyLag (50 KiB) and stops,
/// the standby comes back: it must not be elected (neither in the cluster data nor promoted).
async fn test_failover_too_much_lag(env: Env) -> R<()> {
    let (mut c, master, standby) = master_and_standby(&env, Variant::Async, 0).await?;
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    c.wait_rows(&standby, &[], WAIT).await?;

    c.keeper(&standby)?.stop().await?;
    for id in 1..1000 {
        sql::write_row(&m, id).await?;
    }
    let pos = flush_position(&m).await?;
    let cd = c
        .wait_cd(&format!("{master} reporting WAL position {pos}"), WAIT, |cd| {
            cd.db_of_keeper(&master).is_some_and(|db| db.status.x_log_pos >= pos)
        })
        .await?;
    let standby_pos = cd.db_of_keeper(&standby).map(|db| db.status.x_log_pos).context("no standby DB")?;
    let lag = pos.saturating_sub(standby_pos);
    if lag <= 50 * 1024 {
        bail!("the standby lags only {lag} bytes: the scenario needs more than maxStandbyLag");
    }
    drop(m);

    c.keeper(&master)?.stop().await?;
    c.keeper(&standby)?.start()?;
    // The standby is back and healthy, the master is failed: an election is due.
    c.wait_in_recovery(&standby, true, WAIT).await?;
    c.wait_cd("the master failed and the standby healthy", WAIT, |cd| {
        let healthy = |uid: &str| cd.keepers.get(uid).is_some_and(|k| k.status.healthy);
        !healthy(&master) && healthy(&standby) && cd.db_of_keeper(&standby).is_some_and(|db| db.status.healthy)
    })
    .await?;
    never(&format!("the lagging standby {standby} elected"), NOT_ELECTED_PERIOD, || async {
        let elected = master_keeper(&c.cd().await?).as_deref() == Some(standby.as_str());
        Ok(elected || !c.keeper_ref(&standby)?.in_recovery().await?)
    })
    .await
}

/// `stolonctl failkeeper <master>` makes the standby the master, with the data, and the proxies route to
/// it. With synchronous replication, no acknowledged write is lost across the forced failover and the old
/// master's return as a synchronous standby.
async fn test_force_fail(env: Env, v: Variant) -> R<()> {
    let (c, master, standby) = master_and_standby(&env, v, 2).await?;
    first_row_everywhere(&c, &master, &standby).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    c.wait_proxy_routes_to(1, &master, WAIT).await?;

    let checker = start_checker(&c, v).await?;
    c.stolonctl_ok(&["failkeeper", &master]).await?;

    standby_took_over(&c, &standby).await?;
    if let Some(checker) = checker {
        // The old master (still running) resyncs as the new synchronous standby: writes flow again.
        c.wait_standby(&master, WAIT).await?;
        c.wait_sync_standbys(&[&master], WAIT).await?;
        let report = checker.finish().await?;
        report.verify(&c.connect(&standby).await?, ACKED_BEFORE_FAULT).await?;
    }
    Ok(())
}

/// Synchronous replication (`minSynchronousStandbys` 1, or 0 for the `0` variant). With the sync standby
/// stopped a write blocks; the master keeper restarts, and PostgreSQL commits the blocked row at restart
/// (the superuser sees it). The keeper's restart protection then keeps normal users out ("no pg_hba.conf
/// entry") until the synchronous standbys are in sync again; with min 0 the sentinel drops the failed
/// standby from `synchronous_standby_names` and user01 gets in at once. Once the standby is back user01
/// sees both rows.
async fn test_sync_standby_not_in_sync(env: Env, v: Variant) -> R<()> {
    let (mut c, master, standby) = master_and_standby(&env, v, 1).await?;
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    sql::exec(
        &m,
        &format!(
            "CREATE USER {USER01} PASSWORD '{USER01_PASSWORD}'; GRANT ALL ON DATABASE postgres TO {USER01}; \
             GRANT ALL ON TABLE {} TO {USER01}",
            sql::TABLE
        ),
    )
    .await?;
    let master_port = c.keeper_ref(&master)?.pg_port;
    let rows = user01_rows(master_port).await.context("user01 before the restart")?;
    if rows != [1] {
        bail!("user01 sees rows {rows:?}, expected [1]");
    }
    c.wait_synced_xlog(&[&master, &standby], flush_position(&m).await?, WAIT).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;

    c.keeper(&standby)?.stop().await?;
    let blocked = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(60), m.batch_execute("INSERT INTO table01 VALUES (2, 2)")).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    if blocked.is_finished() {
        bail!("the write did not wait for the stopped synchronous standby: {:?}", blocked.await);
    }
    c.keeper(&master)?.stop().await?;
    c.keeper(&master)?.start()?;
    // PostgreSQL marks the waiting transaction committed when it restarts.
    c.wait_rows(&master, &[1, 2], WAIT).await?;
    blocked.abort();

    if v.sync0() {
        // Once the sentinel drops the failed standby, no standby is required and normal users get in: the
        // restarted master starts with the client pg_hba lines removed and installs them at the keeper's next
        // pass, which sees its (empty) synchronous set in sync.
        wait_for("synchronous_standby_names emptied on the master", WAIT, || async {
            let names = sql::query_text(&c.connect(&master).await?, "SHOW synchronous_standby_names").await?;
            Ok(names.is_empty().then_some(()))
        })
        .await?;
        let rows = wait_for("user01 let in after the failed standby was dropped", WAIT, || async {
            user01_rows(master_port).await.map(Some)
        })
        .await?;
        if rows != [1, 2] {
            bail!("user01 sees rows {rows:?}, expected [1, 2]");
        }
    } else {
        expect_no_hba_entry(master_port).await?;
        // The restriction holds while the standby stays away (the sentinel keeps it as sync standby).
        never("user01 let in while the synchronous standby is down", 2 * FAIL_INTERVAL, || async {
            user01_let_in(master_port).await
        })
        .await?;
    }

    c.keeper(&standby)?.start()?;
    wait_for("user01 reading rows [1, 2] on the master", WAIT, || async {
        let rows = user01_rows(master_port).await?;
        Ok((rows == [1, 2]).then_some(()))
    })
    .await
}

/// The master keeper stops, its whole data directory disappears and it restarts with the same uid: it
/// must not start PostgreSQL as a master ("init mode is none"); the standby is elected with the data and
/// the proxy routes to it; the old keeper then gets a new standby DB.
async fn test_disappeared_keeper_data(env: Env) -> R<()> {
    let (mut c, master, standby) = master_and_standby(&env, Variant::Async, 1).await?;
    first_row_everywhere(&c, &master, &standby).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;

    let k = c.keeper(&master)?;
    k.stop().await?;
    std::fs::remove_dir_all(&k.data_dir).with_context(|| format!("removing {}", k.data_dir.display()))?;
    let log_from = k.proc.log_len();
    k.start()?;

    // Watched for longer than the election may take, so the election wait always ends the select.
    let what = format!("{master} running postgres as a primary");
    let old_master_primary = never(&what, 2 * WAIT, || async {
        // No PostgreSQL running (what the keeper must do here) is no primary either.
        let k = c.keeper_ref(&master)?;
        Ok(k.postmaster_pid().is_some() && !k.in_recovery().await?)
    });
    tokio::select! {
        r = old_master_primary => r?,
        r = c.wait_master_is(&standby, WAIT) => r?,
    }
    c.keeper_ref(&master)?.proc.wait_log(log_from, "init mode is none", WAIT).await?;
    c.wait_in_recovery(&standby, false, WAIT).await?;
    c.wait_rows(&standby, &[1], WAIT).await?;
    c.wait_proxy_routes_to(0, &standby, WAIT).await?;
    c.wait_standby(&master, WAIT).await?;
    c.wait_rows(&master, &[1], WAIT).await
}

/// The keepers of a three-keeper synchronous cluster once it has settled (one confirmed synchronous
/// standby, every DB healthy and converged), read from that settled cluster data.
struct SyncRoles {
    master: String,
    sync: String,
    sync_db: String,
    third: String,
    third_db: String,
}

async fn settled_sync_roles(c: &TestCluster) -> R<SyncRoles> {
    let cd = c
        .wait_cd("a confirmed synchronous standby and every standby converged", WAIT, |cd| {
            let ready = cd.dbs.values().all(|db| db.status.healthy && db.status.current_generation == db.generation);
            cd.dbs.len() == 3
                && ready
                && cd.master_db().is_some_and(|m| {
                    m.spec.synchronous_standbys().len() == 1
                        && m.spec.synchronous_standbys() == m.status.synchronous_standbys()
                })
        })
        .await?;
    let master = master_keeper(&cd).context("no master")?;
    let sync_db = cd.master_db().map(|m| m.spec.synchronous_standbys()[0].clone()).context("no master")?;
    let sync = cd.dbs.get(&sync_db).map(|db| db.spec.keeper_uid.clone()).context("no sync standby DB")?;
    let third = c.others(&master).into_iter().find(|k| *k != sync).context("no third keeper")?;
    let third_db = cd.db_of_keeper(&third).map(|db| db.uid.clone()).context("no DB on the third keeper")?;
    Ok(SyncRoles { master, sync, sync_db, third, third_db })
}

/// Not in stolon: three keepers with synchronous replication, and the master's keeper and postmaster killed
/// (SIGKILL). The synchronous standby is elected and starts with the remaining standby as its synchronous
/// standby (stolon listed the dead old master, which blocked every commit until a later pass): writes commit
/// again while the old master is still down, every one of them waited for the remaining standby, and no
/// acknowledged write is lost.
///
/// The writer pauses for the kill, and both standbys have flushed every WAL byte of the master first: with
/// WAL in flight, the remaining standby may have received bytes that the synchronous standby had not, and is
/// then rightly not listed (it is ahead of the new master and must be resynced); that race, not a fault,
/// made this scenario fail under load before.
async fn test_failover_sync_repl_remaining_standby(env: Env) -> R<()> {
    let mut c = TestCluster::start(&env, &Variant::SyncRepl.ha_spec(), 3, 1, 1).await?;
    c.wait_master_ready().await?;
    // The master is read from the settled cluster data: the one found first may have been replaced meanwhile.
    let SyncRoles { master, sync, third_db: remaining_db, .. } = settled_sync_roles(&c).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;

    let checker = WriteChecker::start(&c, 0).await?;
    checker.wait_acked(ACKED_BEFORE_FAULT, WAIT).await?;
    checker.pause(WAIT).await?;
    standbys_flushed_everything(&c.connect(&master).await?, 2).await?;
    c.keeper(&master)?.kill_all().await?;
    let acked_before = checker.acked_count();
    checker.resume();

    let cd = c
        .wait_cd(&format!("{sync} elected master"), WAIT, |cd| master_keeper(cd).as_deref() == Some(sync.as_str()))
        .await?;
    let elected = cd.master_db().context("no master DB")?;
    if elected.spec.synchronous_standbys() != [remaining_db.clone()] || !elected.spec.synchronous_replication {
        bail!("the new master starts with synchronous standbys other than {remaining_db}: {}", harness::summary(&cd));
    }
    // Writes commit on the new master while the old one is down: the remaining standby acknowledges them.
    checker.wait_acked(acked_before + ACKED_BEFORE_FAULT, WAIT).await?;
    let names = sql::query_text(&c.connect(&sync).await?, "SHOW synchronous_standby_names").await?;
    if names != format!("stolon_{remaining_db}") {
        bail!("synchronous_standby_names on the new master is {names:?}, expected stolon_{remaining_db}");
    }
    let report = checker.finish().await?;
    report.verify(&c.connect(&sync).await?, acked_before + ACKED_BEFORE_FAULT).await
}

/// New in stolon-rs: under synchronous replication an asynchronous standby can receive and replay WAL that
/// the synchronous standby has not received when the master dies; the synchronous standby is elected and
/// forks its new timeline before that WAL. The standby that is ahead must never stream from the new master
/// on top of it: the sentinel sees its position past the new timeline's switch point ("removing invalid
/// db") and the keeper resyncs it at once (pg_rewind or a base backup), not after the not-ready fallback.
/// Made deterministic by stopping the synchronous standby's WAL sender before a write committed with
/// `synchronous_commit = local`, which only the asynchronous standby then receives. With `replayed` false
/// that standby's replay is paused first: it holds the write in its WAL without having replayed it, which
/// pg_rewind does not see ("no rewind required"); the keeper must find it before starting (the divergence
/// detected right after pg_rewind), else PostgreSQL replays it at the start and refuses the new timeline.
async fn test_failover_ahead_standby(env: Env, v: Variant, replayed: bool) -> R<()> {
    let mut c = TestCluster::start(&env, &v.ha_spec(), 3, 1, 0).await?;
    c.wait_master_ready().await?;
    let SyncRoles { master, sync, sync_db, third: ahead, third_db: ahead_db } = settled_sync_roles(&c).await?;

    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    standbys_flushed_everything(&m, 2).await?;
    let q = format!("SELECT pid::text FROM pg_stat_replication WHERE application_name = 'stolon_{sync_db}'");
    let sender: i32 = sql::query_text(&m, &q).await?.parse()?;
    harness::process::send_signal(sender, libc::SIGSTOP);
    if !replayed {
        sql::exec(&c.connect(&ahead).await?, "SELECT pg_wal_replay_pause()").await?;
    }
    sql::exec(&m, "SET synchronous_commit = local; INSERT INTO table01 VALUES (2, 2)").await?;
    let end = flush_position(&m).await?;
    let position = if replayed { "pg_last_wal_replay_lsn()" } else { "pg_last_wal_receive_lsn()" };
    wait_for(&format!("{ahead}'s {position} reaching the master's WAL end {end}"), WAIT, || async {
        let q = format!("SELECT ({position} - '0/0'::pg_lsn)::text");
        let reached: u64 = sql::query_text(&c.connect(&ahead).await?, &q).await?.parse()?;
        if reached >= end { Ok(Some(())) } else { Err(anyhow::anyhow!("at {reached}")) }
    })
    .await?;
    c.wait_rows(&ahead, if replayed { &[1, 2] } else { &[1] }, WAIT).await?;
    let sync_rows = c.keeper_ref(&sync)?.row_ids().await?;
    if sync_rows != [1] {
        bail!("the synchronous standby has rows {sync_rows:?} with its WAL sender stopped, expected [1]");
    }
    let log_from = c.keeper_ref(&ahead)?.proc.log_len();
    let killed = std::time::Instant::now();
    c.keeper(&master)?.kill_all().await?;
    harness::process::send_signal(sender, libc::SIGKILL);

    c.wait_master_is(&sync, WAIT).await?;
    c.wait_in_recovery(&sync, false, WAIT).await?;
    let cd = c
        .wait_cd(&format!("{ahead} given a new DB that converged"), WAIT, |cd| {
            cd.db_of_keeper(&ahead).is_some_and(|db| db.uid != ahead_db) && harness::db_ready(cd, &ahead)
        })
        .await?;
    let sentinel_log = c.sentinels[0].log_text();
    if !sentinel_log.lines().any(|l| l.contains(REMOVING_INVALID_DB) && l.contains(&ahead_db)) {
        bail!("the sentinel did not remove {ahead_db} as invalid: {}", harness::summary(&cd));
    }
    // Replayed, the diverged WAL is within what pg_rewind compares and it rewinds; received only, pg_rewind
    // answers "no rewind required" and the keeper must find that WAL before starting.
    let path = match (v.pgrewind(), replayed) {
        (false, _) => RejoinPath::BaseBackup,
        (true, true) => RejoinPath::Rewound,
        (true, false) => RejoinPath::DivergenceDetected,
    };
    recovery::wait_rejoined(&c, &ahead, killed, log_from, path, WAIT).await?;
    // Every node has the new master's data: row 2 is gone from the standby that had replayed it.
    sql::write_row(&c.connect(&sync).await?, 3).await?;
    c.wait_rows(&sync, &[1, 3], WAIT).await?;
    c.wait_rows(&ahead, &[1, 3], WAIT).await?;
    if std::env::var_os("DEBUG_FAIL").is_some() {
        bail!("debug")
    }
    Ok(())
}

/// Waits until `standbys` WAL senders of the master behind `client` report every WAL byte it wrote flushed.
async fn standbys_flushed_everything(client: &tokio_postgres::Client, standbys: usize) -> R<()> {
    let query = "SELECT count(*)::text FROM pg_stat_replication WHERE flush_lsn = pg_current_wal_lsn()";
    wait_for(&format!("{standbys} standbys flushing every WAL byte of the master"), WAIT, || async {
        let n: usize = sql::query_text(client, query).await?.parse()?;
        if n >= standbys { Ok(Some(())) } else { Err(anyhow::anyhow!("{n} standbys flushed everything")) }
    })
    .await
}

/// Two keepers, one sentinel and `proxies` proxies with `v`'s spec; waits for the master, its standby and
/// (sync) the standby as synchronous standby. Returns the cluster, the master's and the standby's uids.
async fn master_and_standby(env: &Env, v: Variant, proxies: usize) -> R<(TestCluster, String, String)> {
    start_master_and_standby(env, &v.ha_spec(), v, proxies).await
}

/// [`master_and_standby`] with another spec (of variant `v`).
async fn start_master_and_standby(
    env: &Env,
    spec: &serde_json::Value,
    v: Variant,
    proxies: usize,
) -> R<(TestCluster, String, String)> {
    let c = TestCluster::start(env, spec, 2, 1, proxies).await?;
    let master = c.wait_master_ready().await?;
    let standby = c.others(&master).first().cloned().context("no second keeper")?;
    c.wait_standby(&standby, WAIT).await?;
    if v.sync() {
        c.wait_sync_standbys(&[&standby], WAIT).await?;
    }
    Ok((c, master, standby))
}

/// Creates the test table, writes row 1 on the master, and waits until both keepers report the master's
/// WAL position after the write.
async fn first_row_everywhere(c: &TestCluster, master: &str, standby: &str) -> R<()> {
    let m = c.connect(master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    c.wait_synced_xlog(&[master, standby], flush_position(&m).await?, WAIT).await
}

/// Waits until `standby` is the master in the cluster data and in PostgreSQL, has row 1, and both proxies
/// route to it.
async fn standby_took_over(c: &TestCluster, standby: &str) -> R<()> {
    c.wait_master_is(standby, WAIT).await?;
    c.wait_in_recovery(standby, false, WAIT).await?;
    c.wait_rows(standby, &[1], WAIT).await?;
    c.wait_proxy_routes_to(0, standby, WAIT).await?;
    c.wait_proxy_routes_to(1, standby, WAIT).await
}

/// With synchronous replication, a [`WriteChecker`] writing through proxy 0 that has already committed
/// [`ACKED_BEFORE_FAULT`] rows; `None` for asynchronous variants.
async fn start_checker(c: &TestCluster, v: Variant) -> R<Option<WriteChecker>> {
    if !v.sync() {
        return Ok(None);
    }
    let checker = WriteChecker::start(c, 0).await?;
    checker.wait_acked(ACKED_BEFORE_FAULT, WAIT).await?;
    Ok(Some(checker))
}

/// The server's WAL flush position as the keepers report it (`hi << 32 | lo` of the LSN).
async fn flush_position(client: &tokio_postgres::Client) -> R<u64> {
    let text = sql::query_text(client, "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::text").await?;
    text.parse().with_context(|| format!("WAL position {text:?}"))
}

/// The test table's ids as user01 reads them, over a new connection to `port`.
async fn user01_rows(port: u16) -> R<Vec<i32>> {
    let client = sql::connect_as(port, USER01, USER01_PASSWORD).await?;
    sql::row_ids(&client).await
}

/// Fails unless a user01 connection to `port` is refused by pg_hba.conf.
async fn expect_no_hba_entry(port: u16) -> R<()> {
    if user01_let_in(port).await? {
        bail!("user01 could connect to the restarted master before its synchronous standby is in sync");
    }
    Ok(())
}

/// Whether user01 can connect to `port`: true when connected, false when refused by pg_hba.conf, an error
/// for any other failure (so that a master that is down is not taken for one that refuses user01).
async fn user01_let_in(port: u16) -> R<bool> {
    match sql::connect_as(port, USER01, USER01_PASSWORD).await {
        Ok(_) => Ok(true),
        Err(e) => {
            let msg = format!("{e:#}");
            let want = format!("no pg_hba.conf entry for host \"127.0.0.1\", user \"{USER01}\", database \"postgres\"");
            if msg.contains(&want) { Ok(false) } else { bail!("user01 refused, but not by pg_hba.conf: {msg}") }
        }
    }
}
