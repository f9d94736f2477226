//! stolon-keeper against a real PostgreSQL and a real etcd: the tests play the sentinel by writing cluster
//! data by hand and drive real `stolon-keeper` processes.

#[path = "keeper/harness.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::*;
use stolon_conformance::servers::{EtcdServer, free_port, postgres_bin_dir};
use stolon_core::cluster::{DbInitMode, DbRole, KeeperInfo};
use stolon_core::duration::GoDuration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_streams_promotes_and_old_master_rejoins_by_rewind_then_base_backup() -> R<()> {
    let _serial = CLUSTER_SCENARIO.lock().await;
    let h = Harness::new("keeper-failover").await?;
    let (mut cd, mut k1, mut k2) = master_and_standby(&h, true).await?;

    // Streaming through the slot: rows written on the master appear on the standby.
    assert_eq!(k1.psql("select slot_name from pg_replication_slots")?, "stolon_d2");
    k1.psql("create table t(v int); insert into t values (1)")?;
    wait_sql(&k2, "select count(*) from t", "1").await?;
    assert_eq!(k2.psql("select pg_is_in_recovery()")?, "t");
    wait_sql(&k1, "select application_name || ' ' || state from pg_stat_replication", "stolon_d2 streaming").await?;

    // The standby reports its replayed position apart from its received one: with replay paused, WAL written
    // on the master is received (xLogPos moves on, and so does the master's WAL end its WAL receiver was
    // told, upstreamXLogPos) but not replayed (replayXLogPos stays behind).
    k2.psql("select pg_wal_replay_pause()")?;
    k1.psql("create table pad as select generate_series(1, 10000) as g")?;
    let paused = |i: &KeeperInfo| {
        i.postgres_state.as_ref().is_some_and(|s| {
            s.replay_x_log_pos > 0 && s.x_log_pos > s.replay_x_log_pos && s.upstream_x_log_pos > s.replay_x_log_pos
        })
    };
    let info = h.wait_info("k2", "received WAL ahead of the replayed WAL", paused).await?;
    let received = info.postgres_state.map_or(0, |s| s.x_log_pos);
    k2.psql("select pg_wal_replay_resume()")?;
    let caught_up = |i: &KeeperInfo| i.postgres_state.as_ref().is_some_and(|s| s.replay_x_log_pos >= received);
    h.wait_info("k2", "replay caught up with what was received while paused", caught_up).await?;
    wait_sql(&k2, "select count(*) from pad", "10000").await?;

    // Promote d2: the old master loses its DB (and is stopped), d2 becomes master on a new timeline.
    cd.dbs.remove("d1");
    {
        let d2 = cd.dbs.get_mut("d2").expect("d2");
        d2.spec.role = Some(DbRole::Master);
        d2.spec.follow_config = None;
        d2.spec.init_mode = Some(DbInitMode::None);
    }
    let g2 = bump(&mut cd, "d2");
    cd.cluster.status.master = "d2".into();
    h.put(&cd).await?;
    let info = h.wait_converged(&k2, "d2", g2).await?;
    assert_eq!(info.postgres_state.as_ref().map(|s| s.timeline_id), Some(2));
    assert!(k2.log_text().contains(": promoting database"), "{}", tail(&k2.log_text(), 40));
    k2.psql("insert into t values (2)")?;
    assert_eq!(k2.psql("select pg_is_in_recovery()")?, "f");
    h.wait_info("k1", "old master stopped", |i| i.postgres_state.as_ref().is_some_and(|s| !s.healthy)).await?;
    assert!(k1.psql("select 1").is_err(), "a keeper without DB keeps postgres stopped");
    h.refresh_status(&mut cd, "d2").await?;

    // The old master comes back as a standby of d2 through pg_rewind.
    cd.dbs.insert("d3".into(), standby_db("d3", "k1", "d2", &cd));
    cd.dbs.get_mut("d2").expect("d2").spec.followers = Some(vec!["d3".into()]);
    let g2 = bump(&mut cd, "d2");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d3", 1).await?;
    h.wait_converged(&k2, "d2", g2).await?;
    wait_sql(&k1, "select count(*) from t", "2").await?;
    let log = k1.log_text();
    assert!(log.contains("running pg_rewind"), "pg_rewind was not used:\n{}", tail(&log, 40));
    assert!(log.contains(": syncing using pg_rewind"), "{}", tail(&log, 40));
    let rewind_lines: Vec<&str> = log.lines().filter(|l| l.contains("rewind")).collect();
    assert!(!log.contains("running pg_basebackup"), "fell back to a base backup:\n{}", rewind_lines.join("\n"));
    assert!(!log.contains("error syncing with pg_rewind"), "pg_rewind failed:\n{}", tail(&log, 60));

    // d2 drops pg_rewind (a restart turns wal_log_hints off); fail over back to k1 (d3), then k2 rejoins with
    // pg_rewind asked for: pg_rewind refuses a target that ran without wal_log_hints (nor data checksums), the
    // keeper logs it in stolon's words and falls back to a base backup.
    cd.cluster.spec.automatic_pg_restart = Some(true);
    cd.dbs.get_mut("d2").expect("d2").spec.use_pgrewind = false;
    let g2 = bump(&mut cd, "d2");
    h.put(&cd).await?;
    h.wait_converged(&k2, "d2", g2).await?;
    wait_sql(&k2, "show wal_log_hints", "off").await?;
    cd.cluster.spec.automatic_pg_restart = None;
    h.refresh_status(&mut cd, "d3").await?;
    cd.dbs.remove("d2");
    {
        let d3 = cd.dbs.get_mut("d3").expect("d3");
        d3.spec.role = Some(DbRole::Master);
        d3.spec.follow_config = None;
        d3.spec.init_mode = Some(DbInitMode::None);
    }
    let g3 = bump(&mut cd, "d3");
    cd.cluster.status.master = "d3".into();
    h.put(&cd).await?;
    let info = h.wait_converged(&k1, "d3", g3).await?;
    assert_eq!(info.postgres_state.as_ref().map(|s| s.timeline_id), Some(3));
    k1.psql("insert into t values (3)")?;
    h.refresh_status(&mut cd, "d3").await?;
    cd.dbs.insert("d4".into(), standby_db("d4", "k2", "d3", &cd));
    cd.dbs.get_mut("d3").expect("d3").spec.followers = Some(vec!["d4".into()]);
    let g3 = bump(&mut cd, "d3");
    h.put(&cd).await?;
    h.wait_converged(&k2, "d4", 1).await?;
    h.wait_converged(&k1, "d3", g3).await?;
    wait_sql(&k2, "select count(*) from t", "3").await?;
    let log = k2.log_text();
    assert!(logged(&log, "INFO", "syncing using pg_rewind"), "{}", tail(&log, 40));
    assert!(logged(&log, "ERROR", "error syncing with pg_rewind"), "{}", tail(&log, 40));
    assert!(log.contains("wal_log_hints"), "pg_rewind failed for another reason:\n{}", tail(&log, 40));
    assert!(logged(&log, "INFO", "syncing from followed db"), "{}", tail(&log, 40));
    assert!(log.contains("running pg_basebackup"));
    // d2's slot is gone from the new master, d4's exists.
    assert_eq!(k1.psql("select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots")?, "stolon_d4");

    // Fail over to k2 (d4), which keeps no WAL for others (wal_keep_size 0, no slot) and recycles the WAL of
    // its new timeline; k1 rejoins by pg_rewind, which succeeds, but the rewound standby needs WAL that
    // neither it nor its master has any more: it never accepts connections, and after dbWaitReadyTimeout
    // the keeper logs it in stolon's words and does a full resync.
    h.refresh_status(&mut cd, "d4").await?;
    cd.dbs.remove("d3");
    cd.cluster.spec.db_wait_ready_timeout = Some(GoDuration::from_secs(10));
    {
        let d4 = cd.dbs.get_mut("d4").expect("d4");
        d4.spec.role = Some(DbRole::Master);
        d4.spec.follow_config = None;
        d4.spec.init_mode = Some(DbInitMode::None);
        d4.spec.pg_parameters.insert("wal_keep_size".into(), "0".into());
    }
    let g4 = bump(&mut cd, "d4");
    cd.cluster.status.master = "d4".into();
    h.put(&cd).await?;
    h.wait_converged(&k2, "d4", g4).await?;
    wait_sql(&k2, "show wal_keep_size", "0").await?;
    h.wait_info("k1", "old master stopped", |i| i.postgres_state.as_ref().is_some_and(|s| !s.healthy)).await?;
    let first = k2.psql("select pg_walfile_name(pg_current_wal_lsn())")?;
    for v in 4..8 {
        k2.psql(&format!("insert into t values ({v}); select pg_switch_wal()"))?;
    }
    k2.psql("checkpoint")?;
    k2.psql("checkpoint")?;
    let kept = k2.psql(&format!("select count(*) from pg_ls_waldir() where name = '{first}'"))?;
    assert_eq!(kept, "0", "the master kept {first}: the rewound standby would find it");
    h.refresh_status(&mut cd, "d4").await?;
    cd.dbs.insert("d5".into(), standby_db("d5", "k1", "d4", &cd));
    cd.dbs.get_mut("d4").expect("d4").spec.followers = Some(vec!["d5".into()]);
    let g4 = bump(&mut cd, "d4");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d5", 1).await?;
    h.wait_converged(&k2, "d4", g4).await?;
    wait_sql(&k1, "select count(*) from t", "7").await?;
    let log = k1.log_text();
    let rejoin = &log[log.rfind("syncing using pg_rewind").unwrap_or(0)..];
    assert!(rejoin.contains("running pg_rewind"), "{}", tail(&log, 40));
    assert!(!logged(rejoin, "ERROR", "error syncing with pg_rewind"), "{}", tail(&log, 40));
    let not_accepting = "pg_rewinded standby is not accepting connection. it's probably waiting for unavailable \
         wals. Forcing a full resync";
    assert!(logged(rejoin, "ERROR", not_accepting), "{}", tail(&log, 40));
    assert!(rejoin.contains("running pg_basebackup"), "{}", tail(&log, 40));

    k1.terminate()?;
    k2.terminate()?;
    assert!(k1.psql("select 1").is_err(), "SIGTERM stops postgres");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_sync_standbys_slots_and_boot_uuid_follow_cluster_data() -> R<()> {
    let _serial = CLUSTER_SCENARIO.lock().await;
    let h = Harness::new("keeper-params").await?;
    let (mut cd, mut k1, mut k2) = master_and_standby(&h, false).await?;
    wait_metric(&k1, "stolon_keeper_local_role{role=\"master\"} 1").await?;
    wait_metric(&k2, "stolon_keeper_target_role{role=\"standby\"} 1").await?;

    // A reloadable parameter is applied by a reload.
    let pid_before = k1.psql("select pg_postmaster_start_time()")?;
    for db in ["d1", "d2"] {
        cd.dbs.get_mut(db).expect("db").spec.pg_parameters.insert("work_mem".into(), "7MB".into());
    }
    let g1 = bump(&mut cd, "d1");
    let g2 = bump(&mut cd, "d2");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    h.wait_converged(&k2, "d2", g2).await?;
    wait_sql(&k1, "show work_mem", "7MB").await?;
    wait_sql(&k2, "show work_mem", "7MB").await?;
    assert_eq!(k1.psql("select pg_postmaster_start_time()")?, pid_before, "a reload, not a restart");
    let info = h.info("k1").await?.and_then(|i| i.postgres_state).expect("state");
    assert_eq!(info.pg_parameters.get("work_mem").map(String::as_str), Some("7MB"));

    // A restart-only parameter is reported pending and applied only with automaticPgRestart.
    cd.dbs.get_mut("d1").expect("d1").spec.pg_parameters.insert("shared_buffers".into(), "32MB".into());
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_metric(&k1, "stolon_keeper_needs_restart 1").await?;
    assert_eq!(k1.psql("show shared_buffers")?, "128MB");
    cd.cluster.spec.automatic_pg_restart = Some(true);
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_sql(&k1, "show shared_buffers", "32MB").await?;
    assert!(logged(&k1.log_text(), "INFO", "restarting postgres"), "{}", tail(&k1.log_text(), 40));
    wait_metric(&k1, "stolon_keeper_needs_restart 0").await?;

    // Synchronous standby names follow cluster data and the standby is reported in sync.
    {
        let d1 = cd.dbs.get_mut("d1").expect("d1");
        d1.spec.synchronous_replication = true;
        d1.spec.synchronous_standbys = Some(vec!["d2".into()]);
    }
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_sql(&k1, "show synchronous_standby_names", "stolon_d2").await?;
    h.wait_info("k1", "d2 reported in sync", |i| {
        i.postgres_state.as_ref().and_then(|s| s.synchronous_standbys.clone()) == Some(vec!["d2".to_string()])
    })
    .await?;
    k1.psql("set statement_timeout = '20s'; create table s(v int); insert into s values (1)")?;
    wait_sql(&k2, "select count(*) from s", "1").await?;

    // Slot refreshes that fail for a real reason are logged in stolon's words: a slot still in use (by a WAL
    // receiver) cannot be dropped, and a standby whose max_replication_slots are all taken cannot create its
    // additional slot; both keepers go on and finish once the cause is gone.
    cd.dbs.get_mut("d1").expect("d1").spec.additional_replication_slots = Some(vec!["held".into()]);
    bump(&mut cd, "d1");
    h.put(&cd).await?;
    wait_sql(&k1, "select count(*) from pg_replication_slots where slot_name = 'stolon_held'", "1").await?;
    let wal_dir = h.root.path().join("received-wal");
    std::fs::create_dir_all(&wal_dir)?;
    let mut receiver = Command::new(postgres_bin_dir()?.join("pg_receivewal"))
        .args(["-h", "127.0.0.1", "-p", &k1.port.to_string(), "-U", REPL, "-S", "stolon_held", "-D"])
        .arg(&wal_dir)
        .env("PGPASSWORD", REPL_PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let held = wait_sql(&k1, "select active from pg_replication_slots where slot_name = 'stolon_held'", "t").await;
    if held.is_ok() {
        cd.dbs.get_mut("d1").expect("d1").spec.additional_replication_slots = None;
        let g = bump(&mut cd, "d1");
        h.put(&cd).await?;
        let logged = wait_logged(&k1, "ERROR", "failed to drop replication slot").await;
        let _ = receiver.kill();
        logged?;
        assert!(k1.log_text().contains("slot=stolon_held"), "{}", tail(&k1.log_text(), 20));
        wait_sql(&k1, "select count(*) from pg_replication_slots where slot_name = 'stolon_held'", "0").await?;
        h.wait_converged(&k1, "d1", g).await?;
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    held?;
    let free = k2.psql("select current_setting('max_replication_slots')::int - count(*) from pg_replication_slots")?;
    k2.psql(&format!(
        "select count(pg_create_physical_replication_slot('fill_' || g)) from generate_series(1, {free}) g"
    ))?;
    cd.dbs.get_mut("d2").expect("d2").spec.additional_replication_slots = Some(vec!["extra2".into()]);
    let g2 = bump(&mut cd, "d2");
    h.put(&cd).await?;
    wait_logged(&k2, "WARN", "error updating replication slots").await?;
    k2.psql(
        "select count(pg_drop_replication_slot(slot_name)) from pg_replication_slots where slot_name like 'fill%'",
    )?;
    wait_sql(&k2, "select string_agg(slot_name, ',') from pg_replication_slots", "stolon_extra2").await?;
    h.wait_converged(&k2, "d2", g2).await?;

    // Removing the standby drops its slot; additional slots are created; other slots are left alone.
    k1.psql("select pg_create_physical_replication_slot('foreign_slot')")?;
    k2.terminate()?;
    cd.dbs.remove("d2");
    {
        let d1 = cd.dbs.get_mut("d1").expect("d1");
        d1.spec.followers = Some(vec![]);
        d1.spec.synchronous_standbys = Some(vec![]);
        d1.spec.additional_replication_slots = Some(vec!["extra".into()]);
    }
    let g1 = bump(&mut cd, "d1");
    h.put(&cd).await?;
    h.wait_converged(&k1, "d1", g1).await?;
    wait_sql(
        &k1,
        "select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots",
        "foreign_slot,stolon_extra",
    )
    .await?;
    assert!(k1.log_text().contains(": dropping replication slot slot=stolon_d2"), "{}", tail(&k1.log_text(), 40));
    wait_sql(&k1, "show synchronous_standby_names", "").await?;

    // A restarted keeper keeps postgres stopped until cluster data carries its new bootUUID.
    let old_boot = h.info("k1").await?.map(|i| i.boot_uuid).unwrap_or_default();
    k1.terminate()?;
    assert!(k1.psql("select 1").is_err(), "SIGTERM stops postgres");
    k1.spawn()?;
    let info = h.wait_info("k1", "new boot UUID", |i| i.boot_uuid != old_boot).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(k1.psql("select 1").is_err(), "postgres must stay stopped until cluster data has the new bootUUID");
    assert!(
        k1.log_text()
            .contains(": our db boot UID is different than the cluster data one, waiting for it to be updated")
    );
    cd.keepers.get_mut("k1").expect("k1").status.boot_uuid = info.boot_uuid;
    h.put(&cd).await?;
    wait_sql(&k1, "select count(*) from s", "1").await?;
    h.wait_converged(&k1, "d1", g1).await?;
    k1.terminate()?;
    assert!(h.cd().await?.dbs.contains_key("d1"));
    Ok(())
}

/// Runs the keeper with `extra` arguments and expects a fast failure whose output contains `expect`.
fn expect_failure(etcd: &EtcdServer, data_dir: &Path, extra: &[&str], expect: &str) -> R<()> {
    let mut args: Vec<String> = [
        "--cluster-name",
        "bad-input",
        "--store-backend",
        "etcdv3",
        "--store-endpoints",
        &etcd.endpoint(),
        "--data-dir",
        &data_dir.to_string_lossy(),
        "--pg-listen-address",
        "127.0.0.1",
        "--pg-port",
        &free_port().to_string(),
        "--pg-bin-path",
        &postgres_bin_dir()?.to_string_lossy(),
        "--pg-su-username",
        SU,
        "--pg-repl-username",
        REPL,
        "--pg-repl-password",
        REPL_PASSWORD,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.iter().any(|a| a.starts_with("--pg-su-password")) {
        args.extend(["--pg-su-password".to_string(), SU_PASSWORD.to_string()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_stolon-keeper"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("keeper with {extra:?} did not fail (expected {expect:?})");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)?;
    assert!(!status.success(), "{extra:?} must fail");
    assert!(stderr.contains(expect), "{extra:?}: expected {expect:?} in:\n{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_naming_the_flag_or_path() -> R<()> {
    let etcd = EtcdServer::start()?;
    let root = test_dir()?;
    let dir = |n: &str| root.path().join(n);
    expect_failure(&etcd, &dir("a"), &["--pg-bin-path", "/nonexistent/bin"], "--pg-bin-path")?;
    expect_failure(
        &etcd,
        &dir("b"),
        &["--pg-su-passwordfile", "/nonexistent/pw"],
        "password from file /nonexistent/pw",
    )?;
    expect_failure(&etcd, &dir("c"), &["--uid", "Bad-Uid"], "keeper uid \"Bad-Uid\" not valid")?;
    std::fs::create_dir_all(dir("d"))?;
    std::fs::write(dir("d").join("keeperstate"), "{corrupt")?;
    expect_failure(&etcd, &dir("d"), &[], "keeperstate")?;
    // A PGDATA that PostgreSQL's user does not own, then one of another major version.
    std::fs::create_dir_all(dir("e").join("postgres"))?;
    if unsafe { libc::geteuid() } == 0 {
        expect_failure(&etcd, &dir("e"), &[], "owned by uid")?;
        let u = stolon_core::postgres::OsUser::lookup("postgres")?;
        u.chown(&dir("e").join("postgres"))?;
    }
    std::fs::write(dir("e").join("postgres").join("PG_VERSION"), "11\n")?;
    expect_failure(&etcd, &dir("e"), &[], "PostgreSQL 11")?;
    // A data dir locked by a running keeper.
    let mut first = KeeperProc::start(&etcd, "bad-input-lock", "lk", root.path())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !first.log_text().contains("exclusive lock on data dir taken") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_failure(&etcd, &first.data_dir.clone(), &[], "cannot take exclusive lock")?;
    first.terminate()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_pg_port_is_a_clear_error_retried_without_deleting_anything() -> R<()> {
    let h = Harness::new("busy-port").await?;
    let mut cd = h.init_cluster(spec(false)).await?;
    let mut k = h.keeper("kp")?;
    // Something else listens on the keeper's --pg-port before the keeper is assigned a DB.
    let _busy = std::net::TcpListener::bind(("127.0.0.1", k.port))?;
    h.register_keeper(&mut cd, "kp").await?;
    cd.dbs.insert("dp".into(), master_db("dp", "kp", DbInitMode::New, &cd));
    cd.cluster.status.master = "dp".into();
    h.put(&cd).await?;
    let want = format!("PostgreSQL could not listen on 127.0.0.1:{} (--pg-port): address already in use", k.port);
    // Logged on every pass (sleepInterval 1s): wait for two occurrences.
    let deadline = Instant::now() + Duration::from_secs(20);
    while k.log_text().matches(&want).count() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = k.log_text();
    assert!(log.matches(&want).count() >= 2, "expected {want:?} on each pass in:\n{}", tail(&log, 40));
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));
    let child = k.child.as_mut().ok_or_else(|| anyhow::anyhow!("keeper not started"))?;
    assert!(child.try_wait()?.is_none(), "the keeper must keep running");
    assert!(k.data_dir.join("keeperstate").exists(), "data dir {} was deleted", k.data_dir.display());
    k.terminate()?;
    Ok(())
}
