//! Rolling restart and reinit (issue 14 item 3, docs/operations.md), on one cluster under one
//! acknowledged-writes checker: `stolonctl restart --all --pending-only` after a max_connections increase
//! restarts the standbys first (a standby refuses to run with a lower max_connections than its master's),
//! then the master by a switchover; the restart refusals; `restart --in-place` of the master; a restart
//! step aborted at its timeout; `stolonctl reinit` wipes a standby and clones it again, and is refused on
//! the master.

#[path = "e2e/harness/mod.rs"]
mod harness;

use anyhow::{Context, bail};
use harness::writes::WriteChecker;
use harness::{Env, R, Scenario, TestCluster, WAIT, base_spec, master_keeper, wait_for};
use stolon_core::cluster::{ClusterData, outcome};

/// Writes the checker must have committed before an operation starts.
const ACKED_BEFORE: usize = 10;

fn main() {
    let all = vec![
        // CI: etcd v3; the full suite: every backend.
        Scenario::full("TestRollingRestartAndReinit", test_rolling_restart_and_reinit),
    ];
    harness::runner::run(all);
}

/// Three keepers, one sentinel, one proxy: the master ready, the standbys streaming, the proxy routing.
/// `failInterval` is 10 s: the master restarted `--in-place` is unreachable while it restarts and until its
/// keeper reports it again, and the sentinel rightly fails over a master silent for longer than
/// `failInterval` (seen with the harness's 4 s on a loaded machine: the restart took 0.6 s, but no healthy
/// report reached the sentinel within 5 s of the stop).
async fn cluster(env: &Env) -> R<(TestCluster, String)> {
    let spec = harness::merged(base_spec(), &serde_json::json!({ "failInterval": "10s" }));
    let c = TestCluster::start(env, &spec, 3, 1, 1).await?;
    let master = c.wait_master_ready().await?;
    for k in c.others(&master) {
        c.wait_standby(&k, WAIT).await?;
    }
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    settled(&c).await?;
    Ok((c, master))
}

/// Every keeper and DB healthy and converged (a request is refused otherwise).
async fn settled(c: &TestCluster) -> R<ClusterData> {
    c.wait_cd("every keeper healthy, every db healthy and converged", WAIT, |cd| {
        cd.keepers.values().all(|k| k.status.healthy)
            && cd.dbs.values().all(|db| db.status.healthy && db.status.current_generation == db.generation)
    })
    .await
}

async fn setting(c: &TestCluster, keeper: &str, sql: &str) -> R<String> {
    let row = c.connect(keeper).await?.query_one(sql, &[]).await.with_context(|| format!("{keeper}: {sql}"))?;
    Ok(row.get(0))
}

/// The parameters pending a restart, comma-separated (empty when none), without the recovery parameters
/// that a promotion leaves flagged (what the keeper reports as `pendingRestart`).
async fn pending_restart(c: &TestCluster, keeper: &str) -> R<String> {
    let sql = "select coalesce(string_agg(name, ',' order by name), '') from pg_settings where pending_restart \
               and name not like 'recovery\\_target%'";
    setting(c, keeper, sql).await
}

/// The group's scenario: the rolling restart, the refusals, `--in-place`, a step's timeout and the reinit,
/// with no acknowledged write lost across them.
async fn test_rolling_restart_and_reinit(env: Env) -> R<()> {
    let (c, master) = cluster(&env).await?;
    let writes = WriteChecker::start(&c, 0).await?;
    writes.wait_acked(ACKED_BEFORE, WAIT).await?;
    let master = rolling_restart(&c, &master, &writes).await?;
    restart_refusals(&c).await?;
    restart_in_place(&c, &master).await?;
    let standby = c.others(&master).first().cloned().context("no standby")?;
    restart_timeout(&c, &standby).await?;
    settled(&c).await?;
    reinit(&c, &master).await?;
    writes.wait_acked(ACKED_BEFORE * 3, WAIT).await?;
    let report = writes.finish().await?;
    report.verify(&c.connect(&master).await?, ACKED_BEFORE * 3).await
}

/// max_connections raised in the spec is pending a restart everywhere; `restart --all --pending-only`
/// restarts both standbys one at a time and then the master by a switchover; every instance runs with the
/// new value, nothing is pending, the old master rejoined in place. Returns the new master.
async fn rolling_restart(c: &TestCluster, master: &str, writes: &WriteChecker) -> R<String> {
    let (c, master) = (c, master.to_string());
    let keepers: Vec<String> = c.keepers.keys().cloned().collect();
    let old_db = c.cd().await?.db_of_keeper(&master).context("master db")?.uid.clone();
    c.stolonctl_ok(&["update", "--patch", r#"{"pgParameters": {"max_connections": "150"}}"#]).await?;
    for k in &keepers {
        wait_for(&format!("max_connections pending a restart on {k}"), WAIT, || async {
            Ok(pending_restart(c, k).await.is_ok_and(|p| p.contains("max_connections")).then_some(()))
        })
        .await?;
    }
    settled(c).await?;
    let out = c.stolonctl_ok(&["restart", "--all", "--pending-only", "-y"]).await?;
    if !out.contains("restart completed") {
        bail!("unexpected stolonctl output: {out}");
    }
    let cd = c.cd().await?;
    let last = cd.operations.last_restart.clone().context("no recorded outcome")?;
    // The standbys in keeper order, the master last.
    let mut standbys = c.others(&master);
    standbys.sort();
    let expected = format!("restarted keepers {}, {master}", standbys.join(", "));
    if last.outcome != outcome::COMPLETED || last.message != expected {
        bail!("restart outcome {last:?}, expected {expected:?}");
    }
    let new = master_keeper(&cd).context("no master")?;
    if new == master {
        bail!("the master was not switched over");
    }
    c.wait_proxy_routes_to(0, &new, WAIT).await?;
    c.wait_standby(&master, WAIT).await?;
    if c.cd().await?.db_of_keeper(&master).map(|db| db.uid.clone()) != Some(old_db) {
        bail!("the old master was resynced instead of rejoining in place");
    }
    for k in &keepers {
        let value = setting(c, k, "show max_connections").await?;
        let pending = pending_restart(c, k).await?;
        if value != "150" || !pending.is_empty() {
            bail!("{k}: max_connections {value}, parameters still pending a restart: {pending:?}");
        }
    }
    writes.wait_acked(ACKED_BEFORE * 2, WAIT).await?;
    let status = c.stolonctl_ok(&["status", "--format", "json"]).await?;
    let json: serde_json::Value = serde_json::from_str(&status)?;
    if json["cluster"]["last_restart"]["outcome"] != "completed" {
        bail!("status does not show the completed restart: {status}");
    }
    Ok(new)
}

/// Runs `stolonctl restart -y args` and expects a one-line refusal naming `reason`, nothing recorded.
async fn expect_restart_refused(c: &TestCluster, args: &[&str], reason: &str) -> R<()> {
    let before = c.cd().await?.operations.last_restart;
    let mut all = vec!["restart", "-y"];
    all.extend_from_slice(args);
    let out = c.stolonctl(&all).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains(reason) || stderr.trim().lines().count() != 1 {
        bail!("stolonctl {all:?}: expected a one-line refusal naming {reason:?}, got {}: {stderr}", out.status);
    }
    let cd = c.cd().await?;
    if cd.operations.restart.is_some() || cd.operations.last_restart != before {
        bail!("a refused restart was recorded: {:?}", cd.operations);
    }
    Ok(())
}

/// No target, `--all` with names, an unknown keeper, a paused cluster: refused, nothing recorded.
async fn restart_refusals(c: &TestCluster) -> R<()> {
    expect_restart_refused(c, &[], "name the keepers to restart or pass --all").await?;
    let some = c.keepers.keys().next().cloned().context("no keeper")?;
    expect_restart_refused(c, &["--all", &some], "--all takes no keeper names").await?;
    expect_restart_refused(c, &["nosuchkeeper"], "keeper nosuchkeeper does not exist").await?;
    c.stolonctl_ok(&["pause"]).await?;
    expect_restart_refused(c, &["--all"], "the cluster is paused").await?;
    c.stolonctl_ok(&["resume"]).await?;
    Ok(())
}

/// `restart MASTER --in-place`: the master's PostgreSQL restarts where it is (a new postmaster), the
/// master does not move and the proxy routes to it again.
async fn restart_in_place(c: &TestCluster, master: &str) -> R<()> {
    settled(c).await?;
    let pid = c.keeper_ref(master)?.postmaster_pid().context("no postmaster")?;
    let out = c.stolonctl_ok(&["restart", master, "--in-place", "-y"]).await?;
    if !out.contains(&format!("restart completed: restarted keepers {master}")) {
        bail!("unexpected stolonctl output: {out}");
    }
    let cd = c.cd().await?;
    if master_keeper(&cd).as_deref() != Some(master) {
        bail!("the master moved on an in-place restart: {}", harness::summary(&cd));
    }
    if c.keeper_ref(master)?.postmaster_pid() == Some(pid) {
        bail!("the master's postmaster {pid} was not restarted");
    }
    c.wait_in_recovery(master, false, WAIT).await?;
    c.wait_proxy_routes_to(0, master, WAIT).await
}

/// A restart step whose keeper is frozen is aborted at `--timeout`, with the keeper named.
async fn restart_timeout(c: &TestCluster, standby: &str) -> R<()> {
    settled(c).await?;
    c.keeper_ref(standby)?.freeze()?;
    let out = c.stolonctl(&["restart", standby, "--timeout", "2s", "-y"]).await;
    c.keeper_ref(standby)?.thaw();
    let out = out?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = format!("restart aborted: keeper {standby} was not restarted and streaming after 2s");
    if out.status.success() || !stderr.contains(&reason) {
        bail!("expected {reason:?}, got {}: {stderr}", out.status);
    }
    let last = c.cd().await?.operations.last_restart.context("no recorded outcome")?;
    if last.outcome != outcome::ABORTED {
        bail!("restart outcome {last:?}");
    }
    c.wait_standby(standby, WAIT).await
}

/// `reinit` of the master is refused with nothing changed; of a standby, its data directory is wiped (a
/// marker file disappears), it is cloned with pg_basebackup into a new DB, streams again and has every row.
async fn reinit(c: &TestCluster, master: &str) -> R<()> {
    let master = master.to_string();
    let out = c.stolonctl(&["reinit", "-y", &master]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("hosts the master") {
        bail!("reinit of the master: expected a refusal, got {}: {stderr}", out.status);
    }
    if c.cd().await?.operations.reinit.is_some() {
        bail!("a refused reinit was recorded");
    }
    let standby = c.others(&master).first().cloned().context("no standby")?;
    let old_db = c.cd().await?.db_of_keeper(&standby).context("standby db")?.uid.clone();
    let marker = c.keeper_ref(&standby)?.pgdata().join("reinit-marker");
    std::fs::write(&marker, "stale").context("marker")?;
    let m = c.connect(&master).await?;
    m.batch_execute("create table if not exists reinit_rows (id int); insert into reinit_rows values (1), (2)").await?;
    let log_from = c.keeper_ref(&standby)?.proc.log_len();
    let out = c.stolonctl_ok(&["reinit", "-y", &standby]).await?;
    if !out.contains("reinit completed") {
        bail!("unexpected stolonctl output: {out}");
    }
    let cd = c.cd().await?;
    let new_db = cd.db_of_keeper(&standby).context("no new db")?.uid.clone();
    if new_db == old_db || master_keeper(&cd).as_deref() != Some(master.as_str()) {
        bail!("after the reinit: db {new_db} (was {old_db}), {}", harness::summary(&cd));
    }
    if marker.exists() {
        bail!("the data directory was not wiped");
    }
    let log = c.keeper_ref(&standby)?.proc.log_text();
    if !log.get(log_from..).unwrap_or_default().contains("running pg_basebackup") {
        bail!("the standby was not cloned with pg_basebackup");
    }
    c.wait_standby(&standby, WAIT).await?;
    let rows = setting(c, &standby, "select count(*)::text from reinit_rows").await?;
    if rows != "2" {
        bail!("the re-cloned standby has {rows} rows");
    }
    Ok(())
}
