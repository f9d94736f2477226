//! Rolling restart and reinit (issue 14 item 3, docs/operations.md): `stolonctl restart --all
//! --pending-only` after a max_connections increase restarts the standbys first (a standby refuses to run
//! with a lower max_connections than its master's), then the master by a switchover, under the
//! acknowledged-writes checker; `stolonctl reinit` wipes a standby and clones it again, and is refused on
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
        // CI: etcd v3 (about 35 s); the full suite: every backend.
        Scenario::full("TestRollingRestartPendingMaxConnections", test_rolling_restart),
        Scenario::extended("TestReinit", test_reinit),
    ];
    harness::runner::run(all);
}

/// Three keepers, one sentinel, one proxy: the master ready, the standbys streaming, the proxy routing.
async fn cluster(env: &Env) -> R<(TestCluster, String)> {
    let c = TestCluster::start(env, &base_spec(), 3, 1, 1).await?;
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

/// max_connections raised in the spec is pending a restart everywhere; `restart --all --pending-only`
/// restarts both standbys one at a time and then the master by a switchover; every instance runs with the
/// new value, nothing is pending, the old master rejoined in place, and no acknowledged write was lost.
async fn test_rolling_restart(env: Env) -> R<()> {
    let (c, master) = cluster(&env).await?;
    let keepers: Vec<String> = c.keepers.keys().cloned().collect();
    let old_db = c.cd().await?.db_of_keeper(&master).context("master db")?.uid.clone();
    c.stolonctl_ok(&["update", "--patch", r#"{"pgParameters": {"max_connections": "150"}}"#]).await?;
    for k in &keepers {
        wait_for(&format!("max_connections pending a restart on {k}"), WAIT, || async {
            Ok(pending_restart(&c, k).await.is_ok_and(|p| p.contains("max_connections")).then_some(()))
        })
        .await?;
    }
    settled(&c).await?;
    let writes = WriteChecker::start(&c, 0).await?;
    writes.wait_acked(ACKED_BEFORE, WAIT).await?;
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
        let value = setting(&c, k, "show max_connections").await?;
        let pending = pending_restart(&c, k).await?;
        if value != "150" || !pending.is_empty() {
            bail!("{k}: max_connections {value}, parameters still pending a restart: {pending:?}");
        }
    }
    writes.wait_acked(ACKED_BEFORE * 2, WAIT).await?;
    let report = writes.finish().await?;
    report.verify(&c.connect(&new).await?, ACKED_BEFORE * 2).await?;
    let status = c.stolonctl_ok(&["status", "--format", "json"]).await?;
    let json: serde_json::Value = serde_json::from_str(&status)?;
    if json["cluster"]["last_restart"]["outcome"] != "completed" {
        bail!("status does not show the completed restart: {status}");
    }
    Ok(())
}

/// `reinit` of the master is refused with nothing changed; of a standby, its data directory is wiped (a
/// marker file disappears), it is cloned with pg_basebackup into a new DB, streams again and has every row.
async fn test_reinit(env: Env) -> R<()> {
    let (c, master) = cluster(&env).await?;
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
    let rows = setting(&c, &standby, "select count(*)::text from reinit_rows").await?;
    if rows != "2" {
        bail!("the re-cloned standby has {rows} rows");
    }
    Ok(())
}
