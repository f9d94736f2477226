//! stolon's HA topology scenarios (ha_test.go): timeline forks, a master coming back on a new address,
//! standbys that fail or cannot sync any more, `maxStandbysPerSender` and the removal of keepers (by the
//! sentinel and through `stolonctl removekeeper`); and, beyond stolon, keepers of another PostgreSQL major
//! version than the master's.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::json;
use stolon_core::cluster::{ClusterData, Db, DbInitMode, DbRole, DbSpec, FollowConfig, FollowType};

use harness::sql;
use harness::{Env, R, Scenario, TestCluster, Variant, WAIT, base_spec, master_keeper, merged, never};

fn main() {
    let mut all = Vec::new();
    for v in [Variant::Async, Variant::SyncRepl, Variant::Pgrewind, Variant::SyncReplPgrewind] {
        all.push(Scenario::full(format!("TestTimelineFork{}", v.suffix()), move |env| test_timeline_fork(env, v)));
    }
    all.push(Scenario::full("TestMasterChangedAddress", test_master_changed_address));
    all.push(Scenario::full("TestFailedStandby", test_failed_standby));
    all.push(Scenario::full("TestLoweredMaxStandbysPerSender", test_lowered_max_standbys_per_sender));
    all.push(Scenario::full("TestKeeperRemoval", test_keeper_removal));
    all.push(Scenario::full("TestKeeperRemovalStolonCtl", |env| test_keeper_removal_stolonctl(env, false)));
    all.push(Scenario::full("TestKeeperRemovalStolonCtlSyncRepl", |env| test_keeper_removal_stolonctl(env, true)));
    all.push(Scenario::full("TestStandbyCantSync", test_standby_cant_sync));
    // Needs a second PostgreSQL installation (PG_OTHER_BIN_DIR): the full suite and the versions suite only.
    all.push(Scenario::extended("TestMajorVersionMismatch", test_major_version_mismatch).across_versions());
    harness::runner::run(all);
}

/// The master's current WAL position (`pg_current_wal_lsn()` as a number).
async fn current_lsn(c: &TestCluster, uid: &str) -> R<u64> {
    let text = sql::query_text(&c.connect(uid).await?, "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text").await?;
    text.parse().with_context(|| format!("parsing the WAL position {text:?}"))
}

/// Waits until `uids` (the master first) all report the master's current WAL position in the cluster data.
async fn wait_caught_up(c: &TestCluster, uids: &[&str]) -> R<()> {
    let lsn = current_lsn(c, uids[0]).await?;
    c.wait_synced_xlog(uids, lsn, WAIT).await
}

/// The UID of keeper `uid`'s DB in `cd`.
fn db_uid(cd: &ClusterData, uid: &str) -> R<String> {
    Ok(cd.db_of_keeper(uid).with_context(|| format!("{uid} has no DB in the cluster data"))?.uid.clone())
}

/// True when keeper `uid` has a standby DB in `cd`.
fn has_standby_db(cd: &ClusterData, uid: &str) -> bool {
    cd.db_of_keeper(uid).is_some_and(|db| db.spec.role == Some(DbRole::Standby))
}

/// Waits until keeper `uid` has a DB whose UID is not `old`, that converged and runs as a standby.
async fn wait_new_standby_db(c: &TestCluster, uid: &str, old: &str) -> R<()> {
    c.wait_cd(&format!("{uid} given a DB other than {old}"), WAIT, |cd| {
        cd.db_of_keeper(uid).is_some_and(|db| db.uid != old)
    })
    .await?;
    c.wait_standby(uid, WAIT).await
}

/// Waits until the master's PostgreSQL waits for exactly the DBs of keepers `uids` as synchronous standbys
/// (`synchronous_standby_names`): the sentinel's choice in the cluster data reaches PostgreSQL one keeper
/// pass later, and a commit made in between may wait for a standby status message (up to 10 s).
async fn wait_sync_names_applied(c: &TestCluster, master: &str, uids: &[&str]) -> R<()> {
    let cd = c.cd().await?;
    let want = uids.iter().map(|u| Ok(format!("stolon_{}", db_uid(&cd, u)?))).collect::<R<BTreeSet<String>>>()?;
    let k = c.keeper_ref(master)?;
    let want = &want;
    harness::wait_for(&format!("{master}'s postgres waiting for {want:?}"), WAIT, || async move {
        let names = sql::query_text(&k.connect().await?, "SHOW synchronous_standby_names").await?;
        if parse_sync_names(&names) == *want { Ok(Some(())) } else { Err(anyhow::anyhow!("{names:?}")) }
    })
    .await
}

/// The standby names of a `synchronous_standby_names` value (`a`, or `N (a,b)`).
fn parse_sync_names(value: &str) -> BTreeSet<String> {
    let list = match value.split_once('(') {
        Some((_, rest)) => rest.trim_end().trim_end_matches(')'),
        None => value,
    };
    list.split(',').map(|n| n.trim().trim_matches('"').to_string()).filter(|n| !n.is_empty()).collect()
}

/// Waits for the master and for every other keeper's standby, as stolon's `waitMasterStandbysReady`;
/// returns the master's uid and the standbys' uids.
async fn wait_master_and_standbys(c: &TestCluster) -> R<(String, Vec<String>)> {
    let master = c.wait_master_ready().await?;
    c.wait_db_ready(&master, WAIT).await?;
    let standbys = c.others(&master);
    for s in &standbys {
        c.wait_standby(s, WAIT).await?;
    }
    Ok((master, standbys))
}

/// TestTimelineFork's `maxStandbyLag`: 16 MiB, far above what the master writes while standby0 is down.
const FORK_MAX_STANDBY_LAG: u64 = 16 * 1024 * 1024;

/// A standby that missed the last writes is the only survivor: asynchronously it is elected (and what it
/// lacks is lost), with synchronous replication it is not (it had left the synchronous set). When the
/// standby that had those writes comes back, it is on a forked timeline: it must resync (pg_rewind or a
/// base backup) from the new master, end with the new master's rows and keep streaming.
async fn test_timeline_fork(env: Env, v: Variant) -> R<()> {
    // standby0 must stay within maxStandbyLag of the master's last position although it misses everything
    // the master writes while it is down: row 2, and PostgreSQL's own WAL, which the scenario does not
    // bound (full-page images after the base backup's checkpoint, hint-bit images with the wal_log_hints
    // that usePgrewind turns on, timed checkpoints, autovacuum). 234,832 bytes of it once exceeded the
    // HA spec's 50 KiB and standby0 was (rightly) never elected. The lag filter has its own scenario
    // (TestFailoverTooMuchLag); here it is set far above anything this scenario writes.
    let spec = merged(v.ha_spec(), &json!({ "maxStandbyLag": FORK_MAX_STANDBY_LAG }));
    let mut c = TestCluster::start(&env, &spec, 2, 1, 0).await?;
    let (master, standbys) = wait_master_and_standbys(&c).await?;
    let standby0 = standbys[0].clone();
    if v.sync() {
        c.wait_sync_standbys(&[&standby0], WAIT).await?;
    }
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    c.wait_rows(&standby0, &[1], WAIT).await?;

    let standby1 = c.add_keeper().await?;
    c.wait_standby(&standby1, WAIT).await?;
    c.wait_rows(&standby1, &[1], WAIT).await?;
    wait_caught_up(&c, &[&master, &standby0]).await?;

    c.keeper(&standby0)?.stop().await?;
    if v.sync() {
        // stolon's write blocks until the sentinel replaces the stopped synchronous standby; waiting for
        // the replacement to reach PostgreSQL first keeps the write within its statement timeout.
        c.wait_sync_standbys(&[&standby1], WAIT).await?;
        wait_sync_names_applied(&c, &master, &[&standby1]).await?;
    }
    sql::write_row(&m, 2).await?;
    c.wait_rows(&standby1, &[1, 2], WAIT).await?;
    wait_caught_up(&c, &[&master, &standby1]).await?;
    drop(m);
    // Its DB ends up on the old timeline past the fork: the sentinel drops it as invalid, even before the
    // keeper comes back.
    let forked_db = db_uid(&c.cd().await?, &standby1)?;

    // stolon stops the master first; then, if stopping standby1 outlasts failInterval, the sentinel elects
    // standby1 just before it goes down, and that is not what this scenario is about. Stopping standby1
    // first leaves nothing to elect until standby0 is back.
    c.keeper(&standby1)?.stop().await?;
    c.keeper(&master)?.stop().await?;
    let cd = c.cd().await?;
    let pos = |uid: &str| cd.db_of_keeper(uid).map_or(0, |db| db.status.x_log_pos);
    let lag = pos(&master).saturating_sub(pos(&standby0));
    eprintln!("{standby0} is {lag} bytes behind {master}'s last reported position");
    ensure!(lag <= FORK_MAX_STANDBY_LAG, "{standby0} lags {lag} bytes: more than the scenario's maxStandbyLag");
    c.keeper(&standby0)?.start()?;
    c.wait_db_ready(&standby0, WAIT).await?;

    if v.sync() {
        // stolon waits 60 s; 20 s (5 × failInterval) is well past the time an election takes here.
        let k = c.keeper_ref(&standby0)?;
        never(&format!("{standby0} (out of the synchronous set) elected"), Duration::from_secs(20), || async {
            let elected = master_keeper(&c.cd().await?).as_deref() == Some(standby0.as_str());
            Ok(elected || !k.in_recovery().await?)
        })
        .await?;
        return Ok(());
    }

    c.wait_master_is(&standby0, WAIT).await?;
    c.wait_in_recovery(&standby0, false, WAIT).await?;
    let new_master = c.connect(&standby0).await?;
    sql::write_row(&new_master, 3).await?;
    sql::write_row(&new_master, 4).await?;
    let rows = sql::row_ids(&new_master).await?;
    ensure!(rows == [1, 3, 4], "the new master has rows {rows:?}, expected [1, 3, 4]");

    let k = c.keeper(&standby1)?;
    let log_from = k.proc.log_len();
    k.start()?;
    // stolon allows 120 s: a rewound standby may miss WAL and only resync fully after a timeout.
    c.wait_rows(&standby1, &[1, 3, 4], Duration::from_secs(120)).await?;
    wait_new_standby_db(&c, &standby1, &forked_db).await?;
    if v.pgrewind() {
        let log = c.keeper_ref(&standby1)?.proc.log_text();
        ensure!(
            log.get(log_from..).is_some_and(|l| l.contains("running pg_rewind")),
            "{standby1} resynced without trying pg_rewind although usePgrewind is set"
        );
    }
    sql::write_row(&new_master, 5).await?;
    c.wait_rows(&standby1, &[1, 3, 4, 5], WAIT).await
}

/// A master keeper restarted at once (before failInterval) with the same uid and data but another
/// PostgreSQL port stays master, and its standby follows it at the new address.
async fn test_master_changed_address(env: Env) -> R<()> {
    // The stop and restart must fit in failInterval, or a failover happens (which this scenario is not
    // about): on a loaded 2-core machine stopping and starting PostgreSQL takes several seconds.
    let spec = merged(harness::ha_spec(), &json!({ "failInterval": "10s" }));
    let mut c = TestCluster::start(&env, &spec, 2, 1, 0).await?;
    let (master, standbys) = wait_master_and_standbys(&c).await?;
    let standby = standbys[0].clone();
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    drop(m);
    wait_caught_up(&c, &[&master, &standby]).await?;
    c.wait_rows(&standby, &[1], WAIT).await?;
    let master_db = db_uid(&c.cd().await?, &master)?;

    let new_port = stolon_conformance::servers::free_port();
    let k = c.keeper(&master)?;
    k.stop().await?;
    k.set_pg_port(new_port);
    k.start()?;

    c.wait_in_recovery(&master, false, Duration::from_secs(30)).await?;
    let cd = c
        .wait_cd(&format!("{master}'s DB reported on port {new_port}"), WAIT, |cd| {
            cd.db_of_keeper(&master).is_some_and(|db| db.status.port == new_port.to_string())
        })
        .await?;
    ensure!(
        cd.cluster.status.master == master_db,
        "the master changed to {:?} (expected {master_db} to stay master): {}",
        cd.cluster.status.master,
        harness::summary(&cd)
    );
    sql::write_row(&c.connect(&master).await?, 2).await?;
    c.wait_rows(&standby, &[1, 2], WAIT).await?;
    c.wait_in_recovery(&standby, true, WAIT).await
}

/// With maxStandbysPerSender 1 and three keepers, only one standby exists; when it stops, the free keeper
/// gets a standby DB, and once that one is good the failed standby's DB is removed (two DBs again).
async fn test_failed_standby(env: Env) -> R<()> {
    let spec = merged(base_spec(), &json!({ "maxStandbysPerSender": 1 }));
    let mut c = TestCluster::start(&env, &spec, 3, 1, 0).await?;
    let master = c.wait_master_ready().await?;
    c.wait_db_ready(&master, WAIT).await?;
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    let rows = sql::row_ids(&m).await?;
    ensure!(rows == [1], "the master has rows {rows:?}");

    let cd = c.wait_num_dbs(2, WAIT).await?;
    let standby = cd
        .dbs
        .values()
        .find(|db| db.uid != cd.cluster.status.master)
        .map(|db| db.spec.keeper_uid.clone())
        .context("no standby DB")?;
    c.wait_rows(&standby, &[1], WAIT).await?;
    let free = c.others(&master).into_iter().find(|k| *k != standby).context("no free keeper")?;
    ensure!(cd.db_of_keeper(&free).is_none(), "{free} has a DB although maxStandbysPerSender is 1");

    c.keeper(&standby)?.stop().await?;
    c.wait_cd(&format!("{free} given a standby DB"), WAIT, |cd| has_standby_db(cd, &free)).await?;
    c.wait_cd(&format!("{standby}'s DB removed once {free}'s is good"), WAIT, |cd| {
        cd.dbs.len() == 2 && cd.db_of_keeper(&standby).is_none() && has_standby_db(cd, &free)
    })
    .await?;
    c.wait_standby(&free, WAIT).await?;
    c.wait_rows(&free, &[1], WAIT).await
}

/// Lowering maxStandbysPerSender from 2 to 1 with `stolonctl update --patch` removes one of the two
/// standby DBs.
async fn test_lowered_max_standbys_per_sender(env: Env) -> R<()> {
    let spec = merged(base_spec(), &json!({ "maxStandbysPerSender": 2 }));
    let c = TestCluster::start(&env, &spec, 3, 1, 0).await?;
    let master = c.wait_master_ready().await?;
    c.wait_db_ready(&master, WAIT).await?;
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    let rows = sql::row_ids(&m).await?;
    ensure!(rows == [1], "the master has rows {rows:?}");
    c.wait_num_dbs(3, WAIT).await?;

    c.stolonctl_ok(&["update", "--patch", r#"{ "maxStandbysPerSender": 1 }"#]).await?;
    let cd = c.wait_num_dbs(2, WAIT).await?;
    ensure!(master_keeper(&cd).as_deref() == Some(master.as_str()), "the master changed: {}", harness::summary(&cd));
    Ok(())
}

/// deadKeeperRemovalInterval 10 s: a dead keeper without a DB is removed from the cluster data, dead
/// keepers owning a DB are not; once the master is back and the free keeper got and synced a new standby
/// DB, the dead standby's DB is dropped as excess and its keeper removed.
async fn test_keeper_removal(env: Env) -> R<()> {
    let spec = merged(base_spec(), &json!({ "deadKeeperRemovalInterval": "10s", "maxStandbysPerSender": 1 }));
    let mut c = TestCluster::start(&env, &spec, 2, 1, 0).await?;
    let (master, standbys) = wait_master_and_standbys(&c).await?;
    let standby1 = standbys[0].clone();
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    drop(m);

    let standby2 = c.add_keeper().await?;
    c.wait_keepers(&[&master, &standby1, &standby2], WAIT).await?;
    c.keeper(&standby2)?.stop().await?;
    c.wait_keepers(&[&master, &standby1], WAIT).await?;

    c.keeper(&master)?.stop().await?;
    c.keeper(&standby1)?.stop().await?;
    // Twice deadKeeperRemovalInterval, as stolon: keepers owning a DB are never removed.
    never("a dead keeper owning a DB removed", Duration::from_secs(20), || async {
        let cd = c.cd().await?;
        Ok(!(cd.keepers.contains_key(&master) && cd.keepers.contains_key(&standby1)))
    })
    .await?;
    c.wait_keepers(&[&master, &standby1], WAIT).await?;

    c.keeper(&master)?.start()?;
    c.keeper(&standby2)?.start()?;
    c.wait_db_ready(&master, WAIT).await?;
    c.wait_in_recovery(&master, false, WAIT).await?;
    sql::write_row(&c.connect(&master).await?, 2).await?;

    c.wait_standby(&standby2, WAIT).await?;
    c.wait_rows(&standby2, &[1, 2], WAIT).await?;
    c.wait_keepers(&[&master, &standby2], WAIT).await
}

/// `stolonctl removekeeper` refuses the master's keeper; on a stopped standby it removes the keeper and its
/// DB, and the keeper, restarted, comes back with a new DB and resyncs.
async fn test_keeper_removal_stolonctl(env: Env, sync: bool) -> R<()> {
    let spec = merged(base_spec(), &json!({ "synchronousReplication": sync, "maxSynchronousStandbys": 3 }));
    let mut c = TestCluster::start(&env, &spec, 3, 1, 0).await?;
    let (master, standbys) = wait_master_and_standbys(&c).await?;
    let (standby0, standby1) = (standbys[0].clone(), standbys[1].clone());
    if sync {
        c.wait_sync_standbys(&[&standby0, &standby1], WAIT).await?;
    }
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    let rows = sql::row_ids(&m).await?;
    ensure!(rows == [1], "the master has rows {rows:?}");
    c.wait_rows(&standby0, &[1], WAIT).await?;

    let out = c.stolonctl(&["removekeeper", &master]).await?;
    if out.status.success() {
        bail!("stolonctl removekeeper {master} (the master's keeper) succeeded");
    }
    let old_db = db_uid(&c.cd().await?, &standby0)?;
    c.keeper(&standby0)?.stop().await?;
    c.stolonctl_ok(&["removekeeper", &standby0]).await?;
    let cd = c.cd().await?;
    ensure!(
        cd.keepers.len() == 2 && cd.dbs.len() == 2 && !cd.keepers.contains_key(&standby0),
        "after removekeeper {standby0}: {}",
        harness::summary(&cd)
    );

    c.keeper(&standby0)?.start()?;
    c.wait_rows(&standby0, &[1], WAIT).await?;
    wait_new_standby_db(&c, &standby0, &old_db).await?;
    if sync {
        c.wait_sync_standbys(&[&standby0, &standby1], WAIT).await?;
        wait_sync_names_applied(&c, &master, &[&standby0, &standby1]).await?;
    }
    sql::write_row(&m, 2).await?;
    c.wait_rows(&standby0, &[1, 2], WAIT).await
}

/// A standby stopped while the WAL it needs is recycled (small max_wal_size, WAL switches, a checkpoint on
/// the standby that then becomes master) cannot stream any more: the sentinel must notice and give its
/// keeper a new DB, which resyncs and receives new writes.
async fn test_standby_cant_sync(env: Env) -> R<()> {
    let spec = merged(base_spec(), &json!({ "pgParameters": { "max_wal_size": "40MB", "min_wal_size": "40MB" } }));
    let mut c = TestCluster::start(&env, &spec, 3, 1, 0).await?;
    let (master, standbys) = wait_master_and_standbys(&c).await?;
    let (standby0, standby1) = (standbys[0].clone(), standbys[1].clone());
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    c.wait_rows(&standby0, &[1], WAIT).await?;
    c.wait_rows(&standby1, &[1], WAIT).await?;
    let old_db = db_uid(&c.cd().await?, &standby0)?;

    c.keeper(&standby0)?.stop().await?;
    switch_wal(&m, 10).await?;
    drop(m);
    sql::exec(&c.connect(&standby1).await?, "CHECKPOINT").await?;

    c.keeper(&master)?.stop().await?;
    c.wait_master_is(&standby1, WAIT).await?;
    c.wait_in_recovery(&standby1, false, WAIT).await?;

    c.keeper(&standby0)?.start()?;
    sql::write_row(&c.connect(&standby1).await?, 2).await?;
    // stolon allows 120 s: the sentinel needs ten passes without progress before it gives up on the DB.
    c.wait_rows(&standby0, &[1, 2], Duration::from_secs(120)).await?;
    wait_new_standby_db(&c, &standby0, &old_db).await?;
    let log = c.sentinels[0].log_text();
    ensure!(
        log.lines()
            .any(|l| l.contains(": removing db that won't be able to sync due to missing wals on current master ")
                && l.contains(&format!("db={old_db}"))),
        "the sentinel did not remove {standby0}'s DB {old_db} as unable to sync"
    );
    Ok(())
}

/// Writes a little and switches to a new WAL segment, `times` times (a switch without writes is a no-op).
async fn switch_wal(client: &tokio_postgres::Client, times: i32) -> R<()> {
    sql::exec(client, "DROP TABLE IF EXISTS switchwal; CREATE TABLE switchwal (id INT PRIMARY KEY)").await?;
    for i in 0..times {
        sql::exec(client, &format!("INSERT INTO switchwal VALUES ({i}); SELECT pg_switch_wal()")).await?;
    }
    sql::exec(client, "DROP TABLE switchwal").await
}

/// Beyond stolon: with the master on `PG_BIN_DIR`'s PostgreSQL, a keeper running another major version
/// (`PG_OTHER_BIN_DIR`) is never given a standby by the sentinel; given one anyway (as a stolon sentinel
/// would), the keeper refuses to follow the master, keeps its PostgreSQL stopped and says why.
async fn test_major_version_mismatch(env: Env) -> R<()> {
    let (other_bin, other_major) = stolon_conformance::servers::postgres_other_bin_dir()?;
    let mut c = TestCluster::start(&env, &base_spec(), 1, 1, 0).await?;
    let master = c.wait_master_ready().await?;
    let uid = c.new_keeper(&[]).await?;
    {
        let k = c.keeper(&uid)?;
        k.proc.set_arg("--pg-bin-path", &other_bin.to_string_lossy());
        k.start()?;
    }
    let other = i64::from(other_major);
    c.wait_cd(&format!("{uid} healthy, reporting PostgreSQL {other}"), WAIT, |cd| {
        cd.keepers.get(&uid).is_some_and(|k| k.status.healthy && k.status.postgres_binary_version.maj == other)
    })
    .await?;
    {
        let (c, uid) = (&c, &uid);
        never(&format!("a standby assigned to {uid}"), Duration::from_secs(8), || async move {
            Ok(c.cd().await?.db_of_keeper(uid).is_some())
        })
        .await?;
    }
    let said = "not assigning a standby: the keeper's PostgreSQL major version differs from the master's";
    ensure!(c.sentinels[0].log_text().contains(said), "the sentinel did not log why {uid} gets no standby");

    // What a sentinel without the rule would write: a standby DB on that keeper, following the master.
    c.sentinels[0].stop().await?;
    let mut cd = c.cd().await?;
    let master_db = cd.master_db().context("no master DB")?.uid.clone();
    let spec = DbSpec {
        keeper_uid: uid.clone(),
        init_mode: Some(DbInitMode::Resync),
        role: Some(DbRole::Standby),
        followers: Some(Vec::new()),
        follow_config: Some(FollowConfig {
            follow_type: Some(FollowType::Internal),
            db_uid: master_db,
            ..FollowConfig::default()
        }),
        ..DbSpec::default()
    };
    cd.dbs.insert("mismatched".into(), Db { uid: "mismatched".into(), generation: 1, spec, ..Db::default() });
    let from = c.keeper_ref(&uid)?.proc.log_len();
    c.client.put_cluster_data(&cd).await?;
    c.keeper_ref(&uid)?.proc.wait_log(from, "refusing to follow db", WAIT).await?;
    ensure!(c.keeper_ref(&uid)?.postmaster_pid().is_none(), "{uid} started PostgreSQL while refusing to follow");
    ensure!(!c.keeper_ref(&master)?.in_recovery().await?, "the master no longer runs as a primary");
    Ok(())
}
