//! stolon's HA scenarios (ha_test.go): initialisation with several keepers, master/standby and failover.

#[path = "e2e/harness/mod.rs"]
mod harness;

use harness::sql;
use harness::writes::WriteChecker;
use harness::{Env, R, Scenario, TestCluster, Variant, WAIT};

fn main() {
    let mut all = vec![Scenario::core("TestInitWithMultipleKeepers", test_init_with_multiple_keepers)];
    for v in [Variant::Async, Variant::SyncRepl] {
        all.push(Scenario::core(format!("TestFailover{}", v.suffix()), move |env| test_failover(env, v)));
    }
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
    let mut c = TestCluster::start(&env, &v.ha_spec(), 2, 1, 2).await?;
    let master = c.wait_master_ready().await?;
    let standby = c.others(&master)[0].clone();
    c.wait_standby(&standby, WAIT).await?;
    if v.sync() {
        c.wait_sync_standbys(&[&standby], WAIT).await?;
    }
    let m = c.connect(&master).await?;
    sql::create_table(&m).await?;
    sql::write_row(&m, 1).await?;
    c.wait_synced_xlog(&[&master, &standby], 0, WAIT).await?;
    c.wait_proxy_routes_to(0, &master, WAIT).await?;
    c.wait_proxy_routes_to(1, &master, WAIT).await?;

    let checker = if v.sync() { Some(WriteChecker::start(&c, 0).await?) } else { None };
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    c.keeper(&master)?.stop().await?;

    c.wait_master_is(&standby, WAIT).await?;
    c.wait_in_recovery(&standby, false, WAIT).await?;
    c.wait_rows(&standby, &[1], WAIT).await?;
    c.wait_proxy_routes_to(0, &standby, WAIT).await?;
    c.wait_proxy_routes_to(1, &standby, WAIT).await?;
    if let Some(checker) = checker {
        let report = checker.finish().await?;
        report.verify(&c.connect(&standby).await?, 5).await?;
    }
    Ok(())
}
