//! stolon compatibility scenarios: `stolonctl removekeeper` stays done across sentinel passes and a change
//! of leader sentinel.

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::time::Duration;

use anyhow::{Context, ensure};
use stolon_core::cluster::ClusterData;

use harness::{Env, R, Scenario, TestCluster, WAIT, base_spec};

/// Leader passes each check observes (sleepInterval is 1 s).
const PASSES: usize = 3;
/// Bound of [`PASSES`] passes.
const PASSES_LIMIT: Duration = Duration::from_secs(30);

fn main() {
    harness::runner::run(vec![Scenario::full("TestRemovedKeeperStaysRemoved", test_removed_keeper_stays_removed)]);
}

/// `keeper` is absent from the cluster data, has no DB and is marked removed with boot UUID `boot`.
fn removed(cd: &ClusterData, keeper: &str, boot: &str) -> R<()> {
    ensure!(!cd.keepers.contains_key(keeper), "{keeper} is in the cluster data again");
    ensure!(cd.db_of_keeper(keeper).is_none(), "{keeper} has a DB again");
    let mark =
        cd.cluster.status.removed_keepers.get(keeper).with_context(|| format!("{keeper} is not marked removed"))?;
    ensure!(mark.boot_uuid == boot, "{keeper} marked removed with boot UUID {:?}, not {boot:?}", mark.boot_uuid);
    Ok(())
}

/// Keeper `uid`'s boot UUID in the cluster data.
async fn boot_uuid(c: &TestCluster, uid: &str) -> R<String> {
    let cd = c.cd().await?;
    Ok(cd.keepers.get(uid).with_context(|| format!("{uid} is not in the cluster data"))?.status.boot_uuid.clone())
}

/// Waits until keeper `uid` is back in the cluster data with a boot UUID other than `old`, unmarked, and runs
/// a standby of a new DB.
async fn wait_back(c: &TestCluster, uid: &str, old_boot: &str) -> R<()> {
    c.wait_cd(&format!("{uid} back with a new boot UUID"), WAIT, |cd| {
        cd.keepers.get(uid).is_some_and(|k| k.status.boot_uuid != old_boot)
            && !cd.cluster.status.removed_keepers.contains_key(uid)
    })
    .await?;
    c.wait_standby(uid, WAIT).await
}

/// `stolonctl removekeeper` stays done (issue 18): a removed keeper is not added back from its info record,
/// whether its process is stopped (the record lives on until its TTL) or still running (it keeps
/// publishing), by the leader nor by the next leader sentinel; it comes back only when its process restarts
/// (a new boot UUID) and then gets a new DB. stolon added it back on the next pass that found its info
/// fresh.
async fn test_removed_keeper_stays_removed(env: Env) -> R<()> {
    let mut c = TestCluster::start(&env, &base_spec(), 0, 2, 0).await?;
    let master = c.add_keeper().await?;
    c.wait_master_ready().await?;
    let standby = c.add_keeper().await?;
    c.wait_standby(&standby, WAIT).await?;

    // A stopped keeper: its info record outlives it (TTL 20 s).
    let boot = boot_uuid(&c, &standby).await?;
    c.keeper(&standby)?.stop().await?;
    c.stolonctl_ok(&["removekeeper", &standby]).await?;
    removed(&c.cd().await?, &standby, &boot).context("right after removekeeper")?;
    c.check_passes(PASSES, PASSES_LIMIT, |cd| removed(cd, &standby, &boot)).await?;
    c.keeper(&standby)?.start()?;
    wait_back(&c, &standby, &boot).await?;

    // A running keeper keeps publishing fresh infos with the same boot UUID; then the leader changes.
    let boot = boot_uuid(&c, &standby).await?;
    c.stolonctl_ok(&["removekeeper", &standby]).await?;
    removed(&c.cd().await?, &standby, &boot).context("right after removekeeper")?;
    c.check_passes(PASSES, PASSES_LIMIT, |cd| removed(cd, &standby, &boot)).await?;
    let leader = c.leader_sentinel().await?;
    c.sentinels[leader].stop().await?;
    let next = c.wait_new_leader_sentinel(leader, WAIT).await?;
    c.check_passes(PASSES, PASSES_LIMIT, |cd| removed(cd, &standby, &boot))
        .await
        .with_context(|| format!("passes of the new leader sentinel{next}"))?;
    ensure!(c.leader_sentinel().await? == next, "the leader changed again during the passes");

    c.keeper(&standby)?.stop().await?;
    c.keeper(&standby)?.start()?;
    wait_back(&c, &standby, &boot).await?;
    ensure!(c.cd().await?.cluster.status.removed_keepers.is_empty(), "a removal mark is left");
    c.wait_master_is(&master, WAIT).await
}
