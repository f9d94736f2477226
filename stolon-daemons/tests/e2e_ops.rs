//! Operations (issue 14, docs/operations.md): planned switchover (synchronous and asynchronous, automatic
//! and named candidate, refusals, abort on timeout, scheduled and cancelled, concurrent requests), pause
//! and resume, `pause --for`, keeper maintenance and priorities. Every switchover runs under the
//! acknowledged-writes checker.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::time::Duration;

use anyhow::{Context, bail};
use harness::writes::WriteChecker;
use harness::{Env, R, Scenario, TestCluster, Variant, WAIT, master_keeper, never, wait_for};
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
        // CI runs the synchronous switchover on etcd v3; the full suite runs every scenario here on every
        // store backend.
        Scenario::full("TestSwitchoverSyncRepl", |env| test_switchover(env, Variant::SyncRepl, false)),
        Scenario::extended("TestSwitchoverToKeeper", |env| test_switchover(env, Variant::Async, true)),
        Scenario::extended("TestSwitchoverRefusals", test_switchover_refusals),
        Scenario::extended("TestSwitchoverAbortOnTimeout", test_switchover_abort),
        Scenario::extended("TestSwitchoverScheduledAndCancelled", test_switchover_scheduled),
        Scenario::extended("TestPauseMasterDies", test_pause_master_dies),
        Scenario::extended("TestPauseForExpires", test_pause_for),
        Scenario::extended("TestKeeperMaintenance", test_maintenance),
        Scenario::extended("TestPriority", test_priority),
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

/// Every refusal leaves the cluster unchanged: unknown keeper, the master itself, a keeper that may not
/// be master, a keeper in maintenance, a paused cluster, an unhealthy candidate; and of two concurrent
/// requests exactly one is accepted, the other refused as "another switchover is pending".
async fn test_switchover_refusals(env: Env) -> R<()> {
    let (mut c, master) = cluster(&env, &spec(Variant::Async), 2).await?;
    let standby = c.others(&master).first().cloned().context("no standby")?;
    let never_master = c.add_keeper_with(&["--can-be-master=false"]).await?;
    c.wait_standby(&never_master, WAIT).await?;

    expect_refused(&c, &["--to", "nosuchkeeper"], "keeper nosuchkeeper does not exist").await?;
    expect_refused(&c, &["--to", &master], "already hosts the master").await?;
    expect_refused(&c, &["--to", &never_master], "is not allowed to be master").await?;
    c.stolonctl_ok(&["maintenance", &standby, "on"]).await?;
    expect_refused(&c, &["--to", &standby], "is in maintenance").await?;
    c.stolonctl_ok(&["maintenance", &standby, "off"]).await?;
    c.stolonctl_ok(&["pause"]).await?;
    expect_refused(&c, &[], "the cluster is paused").await?;
    c.stolonctl_ok(&["resume"]).await?;

    // Two requests at once while the sentinel cannot act: one is recorded, the other sees it pending.
    settled(&c).await?;
    c.sentinels[0].freeze();
    let request = ["switchover", "-y", "--to", standby.as_str(), "--timeout", "20s"];
    let a = c.stolonctl(&request);
    let b = c.stolonctl(&request);
    let thaw = async {
        c.wait_cd("one switchover recorded", WAIT, |cd| cd.operations.switchover.is_some()).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.sentinels[0].thaw();
        R::Ok(())
    };
    let (a, b, thawed) = tokio::join!(a, b, thaw);
    c.sentinels[0].thaw();
    thawed?;
    let outs = [a?, b?];
    let ok = outs.iter().filter(|o| o.status.success()).count();
    let pending = outs
        .iter()
        .filter(|o| !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("another switchover is pending"))
        .count();
    if (ok, pending) != (1, 1) {
        let text: Vec<String> = outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect();
        bail!("two concurrent requests: {ok} succeeded and {pending} refused as pending: {text:?}");
    }
    c.wait_master_is(&standby, WAIT).await?;

    // The old master is now a standby; stopped, it is unhealthy and refused.
    c.wait_standby(&master, WAIT).await?;
    c.keeper(&master)?.stop().await?;
    c.wait_cd("the stopped keeper unhealthy", WAIT, |cd| cd.keepers.get(&master).is_some_and(|k| !k.status.healthy))
        .await?;
    expect_refused(&c, &["--to", &master], "is not healthy").await
}

/// The candidate's keeper is frozen: the old master is fenced but the candidate never reports its last
/// WAL, so the switchover is aborted at its timeout and the old master takes writes again; nothing lost.
async fn test_switchover_abort(env: Env) -> R<()> {
    let spec = harness::merged(spec(Variant::Async), &serde_json::json!({ "failInterval": "10s" }));
    let (c, master) = cluster(&env, &spec, 2).await?;
    let standby = c.others(&master).first().cloned().context("no standby")?;
    let writes = checker(&c).await?;
    settled(&c).await?;
    c.keeper_ref(&standby)?.freeze()?;
    let out = c.stolonctl(&["switchover", "-y", "--timeout", "3s"]).await?;
    c.keeper_ref(&standby)?.thaw();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("switchover aborted") {
        bail!("expected an aborted switchover, got {}: {stderr}", out.status);
    }
    let cd = c.cd().await?;
    if master_keeper(&cd).as_deref() != Some(master.as_str()) {
        bail!("the master moved: {}", harness::summary(&cd));
    }
    c.wait_in_recovery(&master, false, WAIT).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    writes.wait_acked(ACKED_BEFORE * 2, WAIT).await?;
    let report = writes.finish().await?;
    report.verify(&c.connect(&master).await?, ACKED_BEFORE * 2).await
}

/// A scheduled switchover shows in status and can be cancelled (nothing happens at its time); another
/// one happens at its time, under the checker.
async fn test_switchover_scheduled(env: Env) -> R<()> {
    let (c, master) = cluster(&env, &spec(Variant::Async), 2).await?;
    let at = |secs: i64| (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339();
    let first = at(4);
    let out = c.stolonctl_ok(&["switchover", "-y", "--at", &first]).await?;
    if !out.contains("scheduled at") {
        bail!("unexpected output: {out}");
    }
    let status = c.stolonctl_ok(&["status"]).await?;
    if !status.contains("Switchover: scheduled at") {
        bail!("status does not show the scheduled switchover:\n{status}");
    }
    c.stolonctl_ok(&["switchover", "--cancel"]).await?;
    never("a cancelled switchover happening", Duration::from_secs(6), || async {
        Ok(master_keeper(&c.cd().await?).as_deref() != Some(master.as_str()))
    })
    .await?;
    let cd = c.cd().await?;
    if cd.operations.last_switchover.map(|r| r.outcome).as_deref() != Some(outcome::CANCELLED) {
        bail!("the cancellation is not recorded");
    }

    let writes = checker(&c).await?;
    settled(&c).await?;
    let second = at(3);
    c.stolonctl_ok(&["switchover", "-y", "--at", &second]).await?;
    let standby = c.others(&master).first().cloned().context("no standby")?;
    c.wait_master_is(&standby, WAIT).await?;
    let switched_at = chrono::Utc::now();
    if switched_at < chrono::DateTime::parse_from_rfc3339(&second)? {
        bail!("the switchover happened before its time {second}");
    }
    c.wait_proxy_routes_to(0, &standby, WAIT).await?;
    writes.wait_acked(ACKED_BEFORE * 2, WAIT).await?;
    writes.finish().await?.verify(&c.connect(&standby).await?, ACKED_BEFORE * 2).await
}

/// Paused, the master's keeper and PostgreSQL die: no failover while paused; `resume`, then one.
async fn test_pause_master_dies(env: Env) -> R<()> {
    let (mut c, master) = cluster(&env, &spec(Variant::Async), 2).await?;
    let standby = c.others(&master).first().cloned().context("no standby")?;
    c.stolonctl_ok(&["pause"]).await?;
    let status = c.stolonctl_ok(&["status"]).await?;
    if !status.contains("PAUSED") {
        bail!("status does not show the pause:\n{status}");
    }
    c.keeper(&master)?.kill_all().await?;
    c.wait_cd("the dead master keeper unhealthy", WAIT, |cd| {
        cd.keepers.get(&master).is_some_and(|k| !k.status.healthy)
    })
    .await?;
    never("a failover while paused", NOT_DECIDED, || async {
        Ok(master_keeper(&c.cd().await?).as_deref() != Some(master.as_str()))
    })
    .await?;
    if !c.keeper_ref(&standby)?.in_recovery().await? {
        bail!("the standby was promoted while paused");
    }
    c.stolonctl_ok(&["resume"]).await?;
    c.wait_master_is(&standby, WAIT).await?;
    c.wait_in_recovery(&standby, false, WAIT).await?;
    c.wait_proxy_routes_to(0, &standby, WAIT).await
}

/// `pause --for` ends on its own: the master dies during the pause and the failover comes only after it.
async fn test_pause_for(env: Env) -> R<()> {
    let (mut c, master) = cluster(&env, &spec(Variant::Async), 2).await?;
    let standby = c.others(&master).first().cloned().context("no standby")?;
    c.stolonctl_ok(&["pause", "--for", "8s"]).await?;
    let cd = c.cd().await?;
    let until = cd.operations.pause.and_then(|p| p.until).context("no pause end recorded")?;
    c.keeper(&master)?.kill_all().await?;
    c.wait_master_is(&standby, Duration::from_secs(60)).await?;
    if chrono::Utc::now() < until.as_datetime() {
        bail!("failed over before the pause ended at {until}");
    }
    let cd = c.cd().await?;
    if cd.operations.pause.is_some() {
        bail!("the expired pause is still recorded");
    }
    c.wait_proxy_routes_to(0, &standby, WAIT).await
}

/// Synchronous replication, three keepers: the synchronous standby put in maintenance is replaced as
/// synchronous standby and never comes back while in maintenance; when the master dies, the other standby
/// is elected, never the keeper in maintenance.
async fn test_maintenance(env: Env) -> R<()> {
    let (mut c, master) = cluster(&env, &spec(Variant::SyncRepl), 3).await?;
    let cd = c.cd().await?;
    let sync_db = cd.master_db().and_then(|m| m.status.synchronous_standbys().first().cloned()).context("sync")?;
    let sync_keeper = cd.dbs.get(&sync_db).context("sync db")?.spec.keeper_uid.clone();
    let other = c.others(&master).into_iter().find(|k| *k != sync_keeper).context("third keeper")?;
    c.stolonctl_ok(&["maintenance", &sync_keeper, "on"]).await?;
    let status = c.stolonctl_ok(&["status"]).await?;
    if !status.contains(&format!("Keepers in maintenance: {sync_keeper}")) {
        bail!("status does not show the maintenance:\n{status}");
    }
    c.wait_sync_standbys(&[&other], WAIT).await?;
    let writes = checker(&c).await?;
    never("the keeper in maintenance synchronous again", Duration::from_secs(5), || async {
        let cd = c.cd().await?;
        let m = cd.master_db().context("no master")?;
        Ok(m.spec.synchronous_standbys().contains(&sync_db))
    })
    .await?;
    c.keeper(&master)?.kill_all().await?;
    c.wait_master_is(&other, WAIT).await?;
    never("the keeper in maintenance elected", Duration::from_secs(5), || async {
        Ok(master_keeper(&c.cd().await?).as_deref() == Some(sync_keeper.as_str()))
    })
    .await?;
    c.wait_in_recovery(&other, false, WAIT).await?;
    c.wait_proxy_routes_to(0, &other, WAIT).await?;
    let report = writes.finish().await?;
    report.verify(&c.connect(&other).await?, ACKED_BEFORE).await?;
    c.stolonctl_ok(&["maintenance", &sync_keeper, "off"]).await?;
    c.wait_cd("maintenance off", WAIT, |cd| cd.keepers.get(&sync_keeper).is_some_and(|k| !k.spec.maintenance)).await?;
    Ok(())
}

/// A standby keeper with `--priority 5` never replaces the healthy master by default; once the spec sets
/// `switchoverToHigherPriority`, a switchover makes it the master, without losing a write.
async fn test_priority(env: Env) -> R<()> {
    let (mut c, master) = cluster(&env, &spec(Variant::Async), 2).await?;
    let preferred = c.add_keeper_with(&["--priority", "5"]).await?;
    c.wait_standby(&preferred, WAIT).await?;
    c.wait_cd("the priority in the cluster data", WAIT, |cd| {
        cd.keepers.get(&preferred).is_some_and(|k| k.spec.priority == 5)
    })
    .await?;
    never("the healthy master replaced for priority alone", Duration::from_secs(6), || async {
        Ok(master_keeper(&c.cd().await?).as_deref() != Some(master.as_str()))
    })
    .await?;
    let writes = checker(&c).await?;
    settled(&c).await?;
    c.stolonctl_ok(&["update", "--patch", r#"{"switchoverToHigherPriority": true}"#]).await?;
    c.wait_master_is(&preferred, WAIT).await?;
    c.wait_in_recovery(&preferred, false, WAIT).await?;
    c.wait_proxy_routes_to(0, &preferred, WAIT).await?;
    let cd = wait_for("the priority switchover recorded", WAIT, || async {
        let cd = c.cd().await?;
        Ok(cd.operations.last_switchover.is_some().then_some(cd))
    })
    .await?;
    let last = cd.operations.last_switchover.context("outcome")?;
    if last.outcome != outcome::COMPLETED {
        bail!("priority switchover: {last:?}");
    }
    writes.wait_acked(ACKED_BEFORE * 2, WAIT).await?;
    writes.finish().await?.verify(&c.connect(&preferred).await?, ACKED_BEFORE * 2).await
}
