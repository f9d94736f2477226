//! Operations (issue 14, docs/operations.md): planned switchover (synchronous and asynchronous, automatic
//! and named candidate, refusals, abort on timeout, scheduled and cancelled, concurrent requests), pause
//! and resume, `pause --for`, keeper maintenance and priorities. Every switchover runs under the
//! acknowledged-writes checker.
//!
//! To fit CI's budget, checks that do not interfere share one cluster: the switchover requests
//! (`ops/requests.rs`), the pause (`ops/pause.rs`), the keepers' maintenance and priority
//! (`ops/keepers.rs`); each check keeps its own assertions and runs under one checker per cluster.

#[path = "e2e/harness/mod.rs"]
mod harness;
#[path = "ops/mod.rs"]
mod ops;

use std::time::Duration;

use anyhow::{Context, bail};
use harness::writes::WriteChecker;
use harness::{Env, R, Scenario, TestCluster, Variant, WAIT, master_keeper};
use stolon_core::cluster::{ClusterData, outcome};

/// The spec of variant `v` for these scenarios: the harness's short intervals and the default
/// `maxStandbyLag` (1 MiB: the checker's writes make two reports taken at different times differ by more
/// than the HA scenarios' 50 KiB).
fn spec(v: Variant) -> serde_json::Value {
    harness::merged(harness::base_spec(), &v.patch())
}

/// Writes the checker must have committed before an operation starts.
const ACKED_BEFORE: usize = 10;
/// How long a decision that must not happen is watched for: four failIntervals of the harness spec.
const NOT_DECIDED: Duration = Duration::from_secs(16);

fn main() {
    let all = vec![
        // CI runs these on etcd v3 except TestSwitchoverToKeeper (covered by TestSwitchoverRequests' named
        // switchover); the full suite runs every scenario here on every store backend. Trials start in this
        // order, three at a time: the longest first, the shortest last, so that it fills the first free slot.
        Scenario::full("TestKeeperMaintenanceAndPriority", ops::keepers::test_maintenance_and_priority),
        Scenario::full("TestSwitchoverRequests", ops::requests::test_switchover_requests),
        Scenario::full("TestPauseMasterDiesAndPauseFor", ops::pause::test_pause),
        Scenario::full("TestSwitchoverSyncRepl", |env| test_switchover(env, Variant::SyncRepl, false)),
        Scenario::extended("TestSwitchoverToKeeper", |env| test_switchover(env, Variant::Async, true)),
    ];
    harness::runner::run(all);
}

/// A cluster of `keepers` keepers, one sentinel and one proxy with `spec`: the master ready, every other
/// keeper a converged standby, (sync) one synchronous standby, the proxy routing to the master.
async fn cluster(env: &Env, spec: &serde_json::Value, keepers: usize) -> R<(TestCluster, String)> {
    let c = TestCluster::start(env, spec, keepers, 1, 1).await?;
    let master = c.wait_master_ready().await?;
    for k in c.others(&master) {
        c.wait_standby(&k, WAIT).await?;
    }
    if spec["synchronousReplication"] == serde_json::json!(true) {
        c.wait_cd("a confirmed synchronous standby", WAIT, |cd| {
            cd.master_db().is_some_and(|m| !m.status.synchronous_standbys().is_empty())
        })
        .await?;
    }
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    Ok((c, master))
}

/// Waits until every keeper and every DB is healthy and every DB converged to its latest spec: a switchover
/// request is refused otherwise (a standby still applying a spec change, a keeper info late under load).
async fn settled(c: &TestCluster) -> R<()> {
    c.wait_cd("every keeper healthy, every db healthy and converged", WAIT, |cd| {
        cd.keepers.values().all(|k| k.status.healthy)
            && cd.dbs.values().all(|db| db.status.healthy && db.status.current_generation == db.generation)
    })
    .await?;
    Ok(())
}

async fn checker(c: &TestCluster) -> R<WriteChecker> {
    let checker = WriteChecker::start(c, 0).await?;
    checker.wait_acked(ACKED_BEFORE, WAIT).await?;
    Ok(checker)
}

/// The DB uid hosted by keeper `uid`.
fn db_of(cd: &ClusterData, uid: &str) -> R<String> {
    Ok(cd.db_of_keeper(uid).with_context(|| format!("no db on {uid}"))?.uid.clone())
}

/// Runs `stolonctl switchover -y args` and expects a refusal naming `reason`, with the cluster data's
/// master, DBs and operations unchanged.
async fn expect_refused(c: &TestCluster, args: &[&str], reason: &str) -> R<()> {
    let before = c.cd().await?;
    let mut all = vec!["switchover", "-y"];
    all.extend_from_slice(args);
    let out = c.stolonctl(&all).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains(reason) {
        bail!("stolonctl {all:?}: expected a refusal naming {reason:?}, got {}: {stderr}", out.status);
    }
    if stderr.trim().lines().count() != 1 {
        bail!("the refusal is not one line: {stderr}");
    }
    let after = c.cd().await?;
    if after.cluster.status.master != before.cluster.status.master || after.operations.switchover.is_some() {
        bail!("a refused switchover changed the cluster: {}", harness::summary(&after));
    }
    Ok(())
}

/// The old master's DB is the same DB (no resync) and runs as a standby of the new master; its keeper ran
/// neither pg_rewind nor pg_basebackup since `log_from`.
async fn old_master_rejoined(c: &TestCluster, old: &str, old_db: &str, log_from: usize) -> R<()> {
    c.wait_standby(old, WAIT).await?;
    let cd = c.cd().await?;
    if db_of(&cd, old)? != old_db {
        bail!("the old master was resynced into a new db: {}", harness::summary(&cd));
    }
    let log = c.keeper_ref(old)?.proc.log_text();
    let since = log.get(log_from..).unwrap_or_default();
    if since.contains("running pg_rewind") || since.contains("running pg_basebackup") {
        bail!("the old master ran pg_rewind or pg_basebackup to rejoin");
    }
    Ok(())
}

/// `stolonctl switchover` (automatic candidate, or `--to` a named standby): the candidate becomes the
/// master, the proxy routes to it, the old master rejoins as its standby from its clean shutdown, and no
/// acknowledged write is lost. Synchronous: the automatic candidate is the synchronous standby.
async fn test_switchover(env: Env, v: Variant, named: bool) -> R<()> {
    let (c, master) = cluster(&env, &spec(v), 3).await?;
    let old_db = db_of(&c.cd().await?, &master)?;
    let writes = checker(&c).await?;
    let log_from = c.keeper_ref(&master)?.proc.log_len();
    settled(&c).await?;
    // The expected candidate is read just before the request: under load the sentinel may legitimately move
    // the synchronous standby to another standby between the cluster's start and the request.
    let expected = if named {
        c.others(&master).last().cloned().context("no standby")?
    } else if v.sync() {
        confirmed_sync_standby(&c).await?
    } else {
        String::new()
    };
    let sentinel_from = c.sentinels[0].log_len();
    let mut args = vec!["switchover", "-y"];
    if named {
        args.extend(["--to", expected.as_str()]);
    }
    let out = c.stolonctl_ok(&args).await?;
    if !out.contains("switchover completed") {
        bail!("unexpected stolonctl output: {out}");
    }
    let cd = c.cd().await?;
    let new = master_keeper(&cd).context("no master")?;
    let new_db = db_of(&cd, &new)?;
    let sentinel_log = c.sentinels[0].log_text();
    let sync_moved_to_new = || {
        last_sync_change_before_fencing(sentinel_log.get(sentinel_from..).unwrap_or_default())
            .and_then(|line| line.split(" synchronous_standbys=").nth(1))
            .is_some_and(|set| set.contains(new_db.as_str()))
    };
    if new == master || (!expected.is_empty() && new != expected && (named || !sync_moved_to_new())) {
        bail!("master after the switchover: {new} (was {master}, expected {expected:?})");
    }
    let last = cd.operations.last_switchover.clone().context("no recorded outcome")?;
    if last.outcome != outcome::COMPLETED {
        bail!("outcome {last:?}");
    }
    c.wait_in_recovery(&new, false, WAIT).await?;
    c.wait_proxy_routes_to(0, &new, WAIT).await?;
    writes.wait_acked(ACKED_BEFORE * 2, WAIT).await?;
    old_master_rejoined(&c, &master, &old_db, log_from).await?;
    let report = writes.finish().await?;
    report.verify(&c.connect(&new).await?, ACKED_BEFORE * 2).await?;
    let status = c.stolonctl_ok(&["status", "--format", "json"]).await?;
    let json: serde_json::Value = serde_json::from_str(&status)?;
    if json["cluster"]["last_switchover"]["outcome"] != "completed" {
        bail!("status does not show the completed switchover: {status}");
    }
    Ok(())
}

/// The keeper of the master's only synchronous standby, once the sentinel's set is confirmed by the master
/// (no replacement under way).
async fn confirmed_sync_standby(c: &TestCluster) -> R<String> {
    let cd = c
        .wait_cd("one confirmed synchronous standby", WAIT, |cd| {
            cd.master_db().is_some_and(|m| {
                m.spec.synchronous_standbys.as_deref().unwrap_or_default().len() == 1
                    && m.status.synchronous_standbys() == m.spec.synchronous_standbys.as_deref().unwrap_or_default()
            })
        })
        .await?;
    let sync = cd.master_db().and_then(|m| m.status.synchronous_standbys().first()).context("no sync standby")?;
    Ok(cd.dbs.get(sync).context("sync db")?.spec.keeper_uid.clone())
}

/// The last line of the sentinel log `since` the request that changed the synchronous standby set before the
/// switchover's fence: the automatic candidate is then the synchronous standby it names, not the one read
/// before the request.
fn last_sync_change_before_fencing(since: &str) -> Option<&str> {
    let fence = since.find("switchover: fencing the master").unwrap_or(since.len());
    since[..fence].lines().rfind(|l| l.contains("synchronousStandbys changed"))
}
