//! stolon's HA scenarios (ha_test.go) where the old master comes back: after a graceful stop and restart
//! (TestOldMasterRestart) and after a simulated partition, SIGSTOP then SIGCONT of its keeper and postmaster
//! (TestPartition1), each with the async, SyncRepl, SyncRepl0 and pg_rewind variants.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use anyhow::{Context, ensure};
use stolon_core::cluster::DbRole;
use tokio_postgres::Client;

use harness::sql;
use harness::writes::{WriteChecker, WriteReport};
use harness::{Env, R, Scenario, TestCluster, Variant, WAIT};

/// Acknowledged writes the checker must at least have made for its verdict to mean something.
const MIN_ACKED: usize = 5;
/// How long the checker writes before the fault.
const WRITES_BEFORE_FAULT: Duration = Duration::from_secs(1);

const VARIANTS: [Variant; 6] = [
    Variant::Async,
    Variant::SyncRepl,
    Variant::SyncRepl0,
    Variant::Pgrewind,
    Variant::SyncReplPgrewind,
    Variant::SyncRepl0Pgrewind,
];

fn main() {
    let mut all = Vec::new();
    for v in VARIANTS {
        all.push(scenario(format!("TestOldMasterRestart{}", v.suffix()), v, move |env| {
            test_old_master_restart(env, v)
        }));
    }
    for v in VARIANTS {
        all.push(scenario(format!("TestPartition1{}", v.suffix()), v, move |env| test_partition1(env, v)));
    }
    harness::runner::run(all);
}

/// The async variant runs on every backend (the store under the whole failover and resync); SyncRepl,
/// SyncRepl0 and Pgrewind on etcd v3; the synchronous pg_rewind combinations, whose paths those three cover
/// between them, in the full suite only (CI's time budget).
fn scenario<F, Fut>(name: String, v: Variant, body: F) -> Scenario
where
    F: Fn(Env) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = R<()>> + Send + 'static,
{
    let versions = v == Variant::Pgrewind && name.starts_with("TestOldMasterRestart");
    let s = match v {
        Variant::Async => Scenario::core(name, body),
        Variant::SyncReplPgrewind | Variant::SyncRepl0Pgrewind => Scenario::extended(name, body),
        _ => Scenario::full(name, body),
    };
    // pg_rewind of the old master: run on every tested PostgreSQL major.
    if versions { s.across_versions() } else { s }
}

/// The gracefully stopped master (SIGINT: its keeper stops PostgreSQL) is replaced by the standby, which
/// has the data; once restarted, the old master resyncs (pg_rewind in the Pgrewind variants, a base backup
/// otherwise) and runs as a standby of the new master with every row. With synchronous replication no
/// acknowledged write is lost and no two proxies reach two writable masters.
async fn test_old_master_restart(env: Env, v: Variant) -> R<()> {
    let (mut c, old_master, new_master) = start_with_one_row(&env, v).await?;
    let old_pgdata = PgdataIdentity::take(&c, &old_master)?;
    let checker = start_checker(&c, v).await?;

    c.keeper(&old_master)?.stop().await?;
    promoted_with_first_row(&mut c, v, &new_master).await?;
    sql::write_row(&c.connect(&new_master).await?, 2).await?;

    c.keeper(&old_master)?.start()?;
    let master = old_master_follows(&c, &old_master, &new_master).await?;
    old_pgdata.check_resync(&c, &old_master, v)?;
    verify_checker(&c, checker, &master).await
}

/// A partition of the master (SIGSTOP of its keeper and postmaster): the standby is elected with the data
/// and the proxies move to it; once the partition heals (SIGCONT) the old master becomes a standby of the new
/// one and receives the row written meanwhile. With synchronous replication no acknowledged write is lost
/// and no two proxies reach two writable masters, also after the old master wakes up as a primary.
async fn test_partition1(env: Env, v: Variant) -> R<()> {
    let (mut c, old_master, new_master) = start_with_one_row(&env, v).await?;
    let old_pgdata = PgdataIdentity::take(&c, &old_master)?;
    let checker = start_checker(&c, v).await?;

    c.keeper(&old_master)?.freeze()?;
    promoted_with_first_row(&mut c, v, &new_master).await?;
    sql::write_row(&c.connect(&new_master).await?, 2).await?;

    c.keeper(&old_master)?.thaw();
    let master = old_master_follows(&c, &old_master, &new_master).await?;
    old_pgdata.check_resync(&c, &old_master, v)?;
    verify_checker(&c, checker, &master).await
}

/// Two keepers, one sentinel, two proxies with `v`'s spec; row 1 written on the master and replicated, the
/// proxies routing to the master. Returns the cluster, the master's and the standby's uids.
async fn start_with_one_row(env: &Env, v: Variant) -> R<(TestCluster, String, String)> {
    let c = TestCluster::start(env, &v.ha_spec(), 2, 1, 2).await?;
    let master = c.wait_master_ready().await?;
    let standby = c.others(&master).into_iter().next().context("no standby keeper")?;
    c.wait_standby(&standby, WAIT).await?;
    if v.sync() {
        c.wait_sync_standbys(&[&standby], WAIT).await?;
    }
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    let pos = current_wal_pos(&m).await?;
    c.wait_synced_xlog(&[&master, &standby], pos, WAIT).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    c.wait_proxy_routes_to(1, &master, WAIT).await?;
    Ok((c, master, standby))
}

/// After the master's fault: `new_master` is elected and runs as a primary with row 1 only. With
/// `minSynchronousStandbys` 0 the sentinel drops the failed old master from the synchronous standbys (so the
/// new master accepts writes alone); otherwise a third keeper joins as a standby (with synchronous replication
/// as the synchronous standby the new master needs to accept writes). The proxies route to the new master.
async fn promoted_with_first_row(c: &mut TestCluster, v: Variant, new_master: &str) -> R<()> {
    c.wait_master_is(new_master, WAIT).await?;
    c.wait_in_recovery(new_master, false, WAIT).await?;
    c.wait_rows(new_master, &[1], WAIT).await?;
    if v.sync0() {
        c.wait_sync_standbys(&[], WAIT).await?;
    } else {
        let third = c.add_keeper().await?;
        c.wait_standby(&third, WAIT).await?;
        c.wait_rows(&third, &[1], WAIT).await?;
        if v.sync() {
            c.wait_sync_standbys(&[&third], WAIT).await?;
        }
    }
    c.wait_proxy_routes_to(0, new_master, WAIT).await?;
    c.wait_proxy_routes_to(1, new_master, WAIT).await
}

/// The old master's DB is, in the cluster data, a converged standby following the master DB, its PostgreSQL
/// runs in recovery, and it has received row 2 (written on the new master after the fault). Returns the
/// master's keeper: `new_master`, unless a loaded machine made the sentinel fail it over again meanwhile
/// (a keeper that does not report within failInterval is failed, as in stolon); the old master must then
/// follow that one.
async fn old_master_follows(c: &TestCluster, old_master: &str, new_master: &str) -> R<String> {
    c.wait_rows(old_master, &[1, 2], WAIT).await?;
    c.wait_in_recovery(old_master, true, WAIT).await?;
    let cd = c
        .wait_cd(&format!("{old_master}'s DB a converged standby of the master DB"), WAIT, |cd| {
            let (Some(db), Some(master)) = (cd.db_of_keeper(old_master), cd.master_db()) else { return false };
            master.spec.keeper_uid != old_master
                && db.spec.role == Some(DbRole::Standby)
                && db.spec.follow_config.as_ref().is_some_and(|f| f.db_uid == master.uid)
                && db.status.healthy
                && db.status.current_generation == db.generation
        })
        .await?;
    let master = harness::master_keeper(&cd).context("no master")?;
    if master != new_master {
        eprintln!("note: {new_master} was failed over again, to {master}: {}", harness::summary(&cd));
    }
    Ok(master)
}

/// With synchronous replication: a [`WriteChecker`] writing through proxy 0 (two proxies are sampled),
/// given a moment to write before the fault.
async fn start_checker(c: &TestCluster, v: Variant) -> R<Option<WriteChecker>> {
    if !v.sync() {
        return Ok(None);
    }
    let checker = WriteChecker::start(c, 0).await?;
    tokio::time::sleep(WRITES_BEFORE_FAULT).await;
    Ok(Some(checker))
}

/// Stops the checker and verifies on the master (keeper `master`) that no acknowledged write was lost and that no
/// split brain was seen.
async fn verify_checker(c: &TestCluster, checker: Option<WriteChecker>, master: &str) -> R<()> {
    let Some(checker) = checker else { return Ok(()) };
    let report: WriteReport = checker.finish().await?;
    report.verify(&c.connect(master).await?, MIN_ACKED).await
}

/// The master's current WAL position as a byte offset (the form keepers report as `xLogPos`).
async fn current_wal_pos(client: &Client) -> R<u64> {
    let row = tokio::time::timeout(
        sql::STATEMENT_TIMEOUT,
        client.query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[]),
    )
    .await
    .context("reading the WAL position timed out")??;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?)?)
}

/// The identity of a keeper's PGDATA directory before the fault, held open so that its inode number cannot
/// be reused: a base backup deletes and recreates PGDATA, pg_rewind works in place. This tells from state,
/// not from log text, which resync the keeper did.
struct PgdataIdentity {
    _dir: File,
    ino: u64,
}

impl PgdataIdentity {
    fn take(c: &TestCluster, uid: &str) -> R<PgdataIdentity> {
        let path = c.keeper_ref(uid)?.pgdata();
        let dir = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let ino = dir.metadata()?.ino();
        Ok(PgdataIdentity { _dir: dir, ino })
    }

    /// With `usePgrewind` the old master was rewound (same PGDATA); without, it was base-backed up (a new one).
    fn check_resync(&self, c: &TestCluster, uid: &str, v: Variant) -> R<()> {
        let path = c.keeper_ref(uid)?.pgdata();
        let kept = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?.ino() == self.ino;
        if v.pgrewind() {
            ensure!(kept, "{uid} was resynced with a base backup (PGDATA recreated), not with pg_rewind");
        } else {
            ensure!(!kept, "{uid} kept its PGDATA although pg_rewind is off: it was not resynced from the new master");
        }
        Ok(())
    }
}
