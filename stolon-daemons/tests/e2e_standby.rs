//! stolon's standby-cluster scenarios (standby_test.go) and the StandbyCluster variants of its HA scenarios
//! (ha_test.go). The cluster under test is a standby cluster: initialised by point-in-time recovery through
//! `pg_basebackup` from a separate one-keeper stolon cluster (the external primary), its master follows that
//! primary through `standbyConfig`, its other keepers follow its master. Writes go to the external primary.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use stolon_conformance::servers::postgres_bin_dir;
use stolon_core::cluster::ClusterRole;
use tokio_postgres::Client;

use harness::recovery::{self, RejoinPath};
use harness::sql;
use harness::{Env, R, Scenario, TestCluster, Variant, WAIT, master_keeper, merged, never, wait_for};

fn main() {
    let mut all = vec![
        Scenario::full("TestInitStandbyCluster", test_init_standby_cluster).across_versions(),
        Scenario::full("TestPromoteStandbyCluster", test_promote_standby_cluster),
        Scenario::full("TestPromoteStandbyClusterArchiveRecovery", test_promote_standby_cluster_archive_recovery),
    ];
    for (name, v) in
        [("TestFailoverStandbyCluster", Variant::Async), ("TestFailoverSyncReplStandbyCluster", Variant::SyncRepl)]
    {
        all.push(Scenario::full(name, move |env| test_failover(env, v)));
    }
    for (name, v) in [
        ("TestFailoverFailedStandbyCluster", Variant::Async),
        ("TestFailoverFailedSyncStandbyCluster", Variant::SyncRepl),
    ] {
        all.push(Scenario::full(name, move |env| test_failover_failed(env, v)));
    }
    all.push(Scenario::full("TestFailoverTooMuchLagStandbyCluster", test_failover_too_much_lag));
    all.push(Scenario::full("TestOldMasterRestartStandbyCluster", test_old_master_restart));
    all.push(Scenario::full("TestPartition1StandbyCluster", test_partition1));
    all.push(Scenario::full("TestOldMasterAheadStandbyCluster", test_old_master_ahead));
    all.push(Scenario::full("TestMasterChangedAddressStandbyCluster", test_master_changed_address));
    for (name, v) in
        [("TestForceFailStandbyCluster", Variant::Async), ("TestForceFailSyncReplStandbyCluster", Variant::SyncRepl)]
    {
        all.push(Scenario::full(name, move |env| test_force_fail(env, v)));
    }
    harness::runner::run(all);
}

// ----- the external primary and the standby cluster -----

/// The external primary: a stolon cluster with one keeper and one sentinel.
struct Primary {
    cluster: TestCluster,
    uid: String,
    port: u16,
}

impl Primary {
    /// Starts it with `spec` and waits until its keeper runs a converged primary.
    async fn start(env: &Env, spec: &Value) -> R<Primary> {
        let cluster = TestCluster::start(env, spec, 1, 1, 0).await.context("starting the external primary")?;
        let uid = cluster.wait_master_ready().await?;
        cluster.wait_db_ready(&uid, WAIT).await?;
        let port = cluster.keeper_ref(&uid)?.pg_port;
        Ok(Primary { cluster, uid, port })
    }

    /// A superuser connection to the primary's PostgreSQL.
    async fn connect(&self) -> R<Client> {
        self.cluster.connect(&self.uid).await
    }

    /// Inserts row `id` into the test table on the primary.
    async fn write(&self, id: i32) -> R<()> {
        sql::write_row(&self.connect().await?, id).await
    }

    /// The primary's current WAL position as a byte offset.
    async fn wal_position(&self) -> R<u64> {
        let text =
            sql::query_text(&self.connect().await?, "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text").await?;
        text.parse().with_context(|| format!("WAL position {text:?}"))
    }

    /// The PostgreSQL OS user's uid and gid (owner of the primary's data directory).
    fn pg_owner(&self) -> R<(u32, u32)> {
        let meta = std::fs::metadata(self.cluster.keeper_ref(&self.uid)?.pgdata())?;
        Ok((meta.uid(), meta.gid()))
    }

    /// A password file for the replication user, owned by PostgreSQL's OS user (libpq ignores one that
    /// others can read).
    fn write_pgpass(&self) -> R<std::path::PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.cluster.dir().join("pgpass");
        std::fs::write(&path, format!("127.0.0.1:{}:*:{}:{}\n", self.port, sql::REPL, sql::REPL_PASSWORD))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let (uid, gid) = self.pg_owner()?;
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        Ok(path)
    }

    /// The spec of a standby cluster of this primary: pitr through `pg_basebackup` (`basebackup_flags`
    /// added) and `standbyConfig` following the primary, with `patch` merged last.
    fn standby_cluster_spec(&self, basebackup_flags: &str, patch: &Value) -> R<Value> {
        let pgpass = self.write_pgpass()?;
        let basebackup = postgres_bin_dir()?.join("pg_basebackup");
        let restore = format!(
            "PGPASSFILE={} {} {basebackup_flags} -D %d -h 127.0.0.1 -p {} -U {}",
            pgpass.display(),
            basebackup.display(),
            self.port,
            sql::REPL
        );
        let conninfo = format!(
            "sslmode=disable host=127.0.0.1 port={} user={} password={}",
            self.port,
            sql::REPL,
            sql::REPL_PASSWORD
        );
        let standby = json!({
            "initMode": "pitr",
            "role": "standby",
            "pitrConfig": { "dataRestoreCommand": restore },
            "standbyConfig": { "standbySettings": { "primaryConninfo": conninfo } },
        });
        Ok(merged(merged(harness::ha_spec(), &standby), patch))
    }
}

/// The `port` of the `primary_conninfo` a running standby uses (`None` when it has none).
async fn followed_port(c: &TestCluster, uid: &str) -> R<Option<u16>> {
    let conninfo = sql::query_text(&c.connect(uid).await?, "SHOW primary_conninfo").await?;
    let port = conninfo
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "port")
        .map(|(_, v)| v.trim_matches('\'').parse::<u16>())
        .transpose()
        .with_context(|| format!("port in primary_conninfo {conninfo:?}"))?;
    Ok(port)
}

/// Waits until keeper `uid`'s PostgreSQL is a standby streaming from `port` (the external primary for
/// the standby cluster's master, the cluster's master for its standbys): stolon's role check of a standby
/// cluster, where every instance is in recovery.
async fn wait_follows(c: &TestCluster, uid: &str, port: u16, limit: Duration) -> R<()> {
    wait_for(&format!("{uid}'s postgres following port {port}"), limit, || async move {
        let k = c.keeper_ref(uid)?;
        if !k.in_recovery().await? {
            anyhow::bail!("not in recovery");
        }
        match followed_port(c, uid).await? {
            Some(p) if p == port => Ok(Some(())),
            other => Err(anyhow::anyhow!("primary_conninfo port {other:?}")),
        }
    })
    .await
}

/// Waits until keeper `uid` runs the standby cluster's master: elected in the cluster data and following
/// the external primary.
async fn wait_standby_cluster_master(c: &TestCluster, uid: &str, primary: &Primary, limit: Duration) -> R<()> {
    c.wait_master_is(uid, limit).await?;
    wait_follows(c, uid, primary.port, limit).await
}

/// Waits until keeper `uid` runs a standby of the standby cluster's master `master` (cascading).
async fn wait_cascading_standby(c: &TestCluster, uid: &str, master: &str, limit: Duration) -> R<()> {
    c.wait_db_ready(uid, limit).await?;
    wait_follows(c, uid, c.keeper_ref(master)?.pg_port, limit).await
}

/// The StandbyCluster fixture of the HA scenarios: the external primary with `table01` and row 1, and a
/// standby cluster of two keepers, one sentinel and one proxy whose master and standby both
/// reported the primary's WAL position.
struct Fixture {
    primary: Primary,
    c: TestCluster,
    master: String,
    standby: String,
}

impl Fixture {
    async fn start(env: &Env, v: Variant) -> R<Fixture> {
        Fixture::start_with(env, v, &json!({})).await
    }

    /// [`Fixture::start`] with `patch` merged into the standby cluster's spec.
    async fn start_with(env: &Env, v: Variant, patch: &Value) -> R<Fixture> {
        // pg_rewind needs hint bits in the WAL (wal_log_hints), which a standby cluster gets from its primary.
        let primary_spec = merged(harness::base_spec(), &json!({ "usePgrewind": v.pgrewind() }));
        let primary = Primary::start(env, &primary_spec).await?;
        let spec = primary.standby_cluster_spec("", &merged(v.patch(), patch))?;
        let c = TestCluster::start(env, &spec, 2, 1, 1).await?;
        let master = c.wait_master().await?;
        let standby = c.others(&master)[0].clone();
        c.wait_db_ready(&master, WAIT).await?;
        wait_follows(&c, &master, primary.port, WAIT).await?;
        wait_cascading_standby(&c, &standby, &master, WAIT).await?;
        if v.sync() {
            // A standby cluster never runs synchronous replication (its master is itself a standby).
            let cd = c.cd().await?;
            let db = cd.master_db().context("no master DB")?;
            anyhow::ensure!(
                db.spec.synchronous_standbys().is_empty(),
                "standby cluster master has synchronous standbys {:?}",
                db.spec.synchronous_standbys()
            );
            let names = sql::query_text(&c.connect(&master).await?, "SHOW synchronous_standby_names").await?;
            anyhow::ensure!(names.is_empty(), "standby cluster master has synchronous_standby_names {names:?}");
        }
        let p = primary.connect().await?;
        sql::create_table(&p).await?;
        sql::write_row(&p, 1).await?;
        let pos = primary.wal_position().await?;
        c.wait_synced_xlog(&[&master, &standby], pos, WAIT).await?;
        Ok(Fixture { primary, c, master, standby })
    }
}

// ----- standby_test.go -----

/// A standby cluster of one keeper, initialised from the external primary's data and following it.
struct SingleStandby {
    primary: Primary,
    c: TestCluster,
    uid: String,
}

/// Starts the external primary with `primary_spec`, writes row 1, starts a one-keeper standby cluster
/// (`basebackup_flags` and `patch` as in [`Primary::standby_cluster_spec`]) and waits until its master has
/// row 1 and, after row 2 is written on the primary (`switch_wal`: followed by a WAL switch, for a standby
/// fed by the archive), row 2 as well.
async fn start_single_standby(
    env: &Env,
    primary_spec: &Value,
    basebackup_flags: &str,
    patch: &Value,
    switch_wal: bool,
) -> R<SingleStandby> {
    let primary = Primary::start(env, primary_spec).await?;
    let p = primary.connect().await?;
    sql::create_table(&p).await?;
    sql::write_row(&p, 1).await?;
    let spec = primary.standby_cluster_spec(basebackup_flags, patch)?;
    let c = TestCluster::start(env, &spec, 1, 1, 0).await?;
    let uid = c.wait_master().await?;
    c.wait_db_ready(&uid, WAIT).await?;
    c.wait_rows(&uid, &[1], WAIT).await?;
    primary.write(2).await?;
    if switch_wal {
        sql::exec(&p, "SELECT pg_switch_wal()").await?;
    }
    c.wait_rows(&uid, &[1, 2], WAIT).await?;
    Ok(SingleStandby { primary, c, uid })
}

/// A standby cluster initialised by pitr from a primary stolon cluster has its data and keeps replicating
/// new rows; its master is a standby of the external primary.
async fn test_init_standby_cluster(env: Env) -> R<()> {
    let s = start_single_standby(&env, &harness::base_spec(), "", &json!({}), false).await?;
    wait_follows(&s.c, &s.uid, s.primary.port, WAIT).await?;
    s.primary.write(3).await?;
    s.c.wait_rows(&s.uid, &[1, 2, 3], WAIT).await
}

/// `stolonctl promote -y` turns the standby cluster's master into a primary: the spec role becomes
/// master and its PostgreSQL leaves recovery and accepts writes.
async fn test_promote_standby_cluster(env: Env) -> R<()> {
    let s = start_single_standby(&env, &harness::base_spec(), "", &json!({}), false).await?;
    promote_and_check(&s).await
}

/// As [`test_promote_standby_cluster`], with a standby cluster fed only by the primary's WAL archive
/// (`pg_basebackup -Xs`, `restoreCommand` in the pitr and standby configs, no `primary_conninfo`): a new
/// row arrives through the archive after a WAL switch, and the promotion works.
async fn test_promote_standby_cluster_archive_recovery(env: Env) -> R<()> {
    // The archive directory must exist before the primary starts archiving into it: create it below a
    // directory of its own that PostgreSQL can write to.
    let archive = tempfile::Builder::new().prefix("stolon-e2e-archive-").tempdir()?;
    std::fs::set_permissions(archive.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    let primary_spec = merged(
        harness::base_spec(),
        &json!({ "pgParameters": {
            "archive_mode": "on",
            "archive_command": format!("cp %p {}/%f", archive.path().display()),
        }}),
    );
    let restore = json!({ "restoreCommand": format!("cp {}/%f %p", archive.path().display()) });
    let patch = json!({
        "pitrConfig": { "archiveRecoverySettings": restore },
        "standbyConfig": { "standbySettings": null, "archiveRecoverySettings": restore },
    });
    let s = start_single_standby(&env, &primary_spec, "-Xs", &patch, true).await?;
    let conninfo = sql::query_text(&s.c.connect(&s.uid).await?, "SHOW primary_conninfo").await?;
    anyhow::ensure!(conninfo.is_empty(), "an archive-fed standby cluster streams from {conninfo:?}");
    promote_and_check(&s).await
}

/// Promotes the standby cluster and checks its master became a writable primary with the data.
async fn promote_and_check(s: &SingleStandby) -> R<()> {
    s.c.stolonctl_ok(&["promote", "-y"]).await?;
    s.c.wait_cd("the cluster spec role master", WAIT, |cd| cd.cluster.spec.role() == ClusterRole::Master).await?;
    s.c.wait_in_recovery(&s.uid, false, WAIT).await?;
    s.c.wait_master_is(&s.uid, WAIT).await?;
    let m = s.c.connect(&s.uid).await?;
    sql::write_row(&m, 10).await?;
    s.c.wait_rows(&s.uid, &[1, 2, 10], WAIT).await
}

// ----- ha_test.go, StandbyCluster variants -----

/// Stopping the standby cluster's master keeper makes its standby the new master: it follows the external
/// primary, has the data, and the proxy routes to it. (Synchronous replication is never in effect in a
/// standby cluster: the SyncRepl variant behaves the same.)
async fn test_failover(env: Env, v: Variant) -> R<()> {
    let mut f = Fixture::start(&env, v).await?;
    f.c.wait_proxy_routes_to(0, &f.master, WAIT).await?;
    f.c.keeper(&f.master)?.stop().await?;
    wait_standby_cluster_master(&f.c, &f.standby, &f.primary, WAIT).await?;
    f.c.wait_rows(&f.standby, &[1], WAIT).await?;
    f.c.wait_proxy_routes_to(0, &f.standby, WAIT).await?;
    f.primary.write(2).await?;
    f.c.wait_rows(&f.standby, &[1, 2], WAIT).await
}

/// The standby is elected but stopped before it can take over; the old master restarts and, its DB still
/// valid, is elected again and follows the external primary. stolon asserts this for the async variant
/// only; a standby cluster has no synchronous replication, so the Sync variant must behave the same.
async fn test_failover_failed(env: Env, v: Variant) -> R<()> {
    let mut f = Fixture::start(&env, v).await?;
    // The standby must be elected and stop before it can promote (stolon's scenario): a keeper promotes
    // within tens of milliseconds of its election, after which the old master holds a diverged history
    // and rightly is never elected again. Its keeper is frozen (it keeps its last healthy report) and the
    // stopped master is failed at once, so the election happens before the frozen keeper's reports lapse.
    f.c.keeper(&f.standby)?.proc.freeze();
    f.c.keeper(&f.master)?.stop().await?;
    f.c.stolonctl_ok(&["failkeeper", &f.master]).await?;
    f.c.wait_master_is(&f.standby, WAIT).await?;
    f.c.keeper(&f.standby)?.kill_all().await?;
    f.c.keeper(&f.master)?.start()?;
    wait_standby_cluster_master(&f.c, &f.master, &f.primary, WAIT).await?;
    f.primary.write(2).await?;
    f.c.wait_rows(&f.master, &[1, 2], WAIT).await
}

/// A standby lagging more than `maxStandbyLag` behind the master's last reported position is not
/// elected when the master goes away.
async fn test_failover_too_much_lag(env: Env) -> R<()> {
    let mut f = Fixture::start(&env, Variant::Async).await?;
    f.c.keeper(&f.standby)?.stop().await?;
    let p = f.primary.connect().await?;
    for id in 2..1000 {
        sql::write_row(&p, id).await?;
    }
    // The master must have reported the new position before it goes away (stolon sleeps for it).
    let pos = f.primary.wal_position().await?;
    let master = f.master.clone();
    f.c.wait_synced_xlog(&[&master], pos, WAIT).await?;
    f.c.keeper(&f.master)?.stop().await?;
    f.c.keeper(&f.standby)?.start()?;
    // stolon watches for 30 s; 5 × failInterval (4 s) leaves the sentinel ample time to (wrongly) elect it.
    let c = &f.c;
    let standby = f.standby.as_str();
    never(&format!("{standby} elected master although lagging"), Duration::from_secs(20), || async move {
        Ok(master_keeper(&c.cd().await?).as_deref() == Some(standby)
            || followed_port(c, standby).await? == Some(f.primary.port))
    })
    .await?;
    // It was a live candidate all along, not a keeper that never came back.
    let cd = c.cd().await?;
    let db = cd.db_of_keeper(standby).context("the standby lost its DB")?;
    anyhow::ensure!(db.status.healthy, "the standby's DB is not healthy: {}", harness::summary(&cd));
    anyhow::ensure!(master_keeper(&cd).as_deref() == Some(f.master.as_str()), "{}", harness::summary(&cd));
    Ok(())
}

/// The old master, restarted after the failover, resyncs from the new master: it receives the rows
/// written meanwhile and runs as a cascading standby.
async fn test_old_master_restart(env: Env) -> R<()> {
    let mut f = Fixture::start(&env, Variant::Async).await?;
    f.c.keeper(&f.master)?.stop().await?;
    wait_standby_cluster_master(&f.c, &f.standby, &f.primary, WAIT).await?;
    f.c.wait_rows(&f.standby, &[1], WAIT).await?;
    let third = f.c.add_keeper().await?;
    f.c.wait_rows(&third, &[1], WAIT).await?;
    f.primary.write(2).await?;
    f.c.keeper(&f.master)?.start()?;
    f.c.wait_rows(&f.master, &[1, 2], WAIT).await?;
    wait_cascading_standby(&f.c, &f.master, &f.standby, WAIT).await
}

/// The old master of a standby cluster comes back ahead of the DB elected after it, on the same timeline
/// (the external primary is down, so the new master cannot catch up): pg_rewind finds "no rewind
/// required", which cannot be followed. The keeper detects the divergence at once and takes a base backup
/// (not the not-ready fallback after dbWaitReadyTimeout), then streams from the new master; once the
/// primary is back, every row reaches it.
async fn test_old_master_ahead(env: Env) -> R<()> {
    // Whatever the new master lacks, it is elected: the scenario is about the old master's return.
    let lag = json!({ "maxStandbyLag": 16 * 1024 * 1024 });
    let mut f = Fixture::start_with(&env, Variant::Pgrewind, &lag).await?;
    f.c.keeper(&f.standby)?.stop().await?;
    let rows: Vec<i32> = (1..=20).collect();
    for id in &rows[1..] {
        f.primary.write(*id).await?;
    }
    let pos = f.primary.wal_position().await?;
    let master = f.master.clone();
    f.c.wait_synced_xlog(&[&master], pos, WAIT).await?;
    let primary_uid = f.primary.uid.clone();
    f.primary.cluster.keeper(&primary_uid)?.stop().await?;
    f.c.keeper(&master)?.stop().await?;
    f.c.keeper(&f.standby)?.start()?;
    f.c.wait_master_is(&f.standby, WAIT).await?;

    let k = f.c.keeper(&master)?;
    let log_from = k.proc.log_len();
    let restarted = std::time::Instant::now();
    k.start()?;
    recovery::wait_rejoined(&f.c, &master, restarted, log_from, RejoinPath::DivergenceDetected, WAIT).await?;
    wait_cascading_standby(&f.c, &master, &f.standby, WAIT).await?;

    f.primary.cluster.keeper(&primary_uid)?.start()?;
    f.c.wait_rows(&master, &rows, WAIT).await
}

/// SIGSTOP of the master keeper and its postmaster: the standby takes over (following the external
/// primary, with the data, routed to by the proxy); after SIGCONT the old master becomes a standby of the
/// new one and receives the new row.
async fn test_partition1(env: Env) -> R<()> {
    let mut f = Fixture::start(&env, Variant::Async).await?;
    f.c.keeper_ref(&f.master)?.freeze()?;
    let result = partition1_while_frozen(&mut f).await;
    f.c.keeper_ref(&f.master)?.thaw();
    result?;
    f.c.wait_rows(&f.master, &[1, 2], WAIT).await?;
    wait_cascading_standby(&f.c, &f.master, &f.standby, WAIT).await
}

async fn partition1_while_frozen(f: &mut Fixture) -> R<()> {
    wait_standby_cluster_master(&f.c, &f.standby, &f.primary, WAIT).await?;
    f.c.wait_rows(&f.standby, &[1], WAIT).await?;
    let third = f.c.add_keeper().await?;
    f.c.wait_rows(&third, &[1], WAIT).await?;
    f.c.wait_proxy_routes_to(0, &f.standby, WAIT).await?;
    f.primary.write(2).await
}

/// The master keeper restarts at once with the same data but another PostgreSQL port: it stays master
/// (following the external primary) and the standby follows the new address and gets the next row.
async fn test_master_changed_address(env: Env) -> R<()> {
    let mut f = Fixture::start(&env, Variant::Async).await?;
    f.c.wait_rows(&f.standby, &[1], WAIT).await?;
    let k = f.c.keeper(&f.master)?;
    k.stop().await?;
    k.set_pg_port(stolon_conformance::servers::free_port());
    k.start()?;
    wait_standby_cluster_master(&f.c, &f.master, &f.primary, WAIT).await?;
    f.primary.write(2).await?;
    f.c.wait_rows(&f.standby, &[1, 2], WAIT).await?;
    wait_cascading_standby(&f.c, &f.standby, &f.master, WAIT).await
}

/// `stolonctl failkeeper <master>`: the standby is elected, follows the external primary, has the data,
/// and the proxy routes to it.
async fn test_force_fail(env: Env, v: Variant) -> R<()> {
    let f = Fixture::start(&env, v).await?;
    f.c.wait_proxy_routes_to(0, &f.master, WAIT).await?;
    f.c.stolonctl_ok(&["failkeeper", &f.master]).await?;
    wait_standby_cluster_master(&f.c, &f.standby, &f.primary, WAIT).await?;
    f.c.wait_rows(&f.standby, &[1], WAIT).await?;
    f.c.wait_proxy_routes_to(0, &f.standby, WAIT).await
}
