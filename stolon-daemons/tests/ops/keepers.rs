//! TestKeeperMaintenanceAndPriority: one synchronous cluster of three keepers and one acknowledged-writes
//! checker across both checks. The synchronous standby put in maintenance is replaced as synchronous standby and never comes
//! back while in maintenance; when the master dies, the other standby is elected, never the keeper in
//! maintenance. Then a keeper with `--priority 5` joins: it never replaces the healthy master by default;
//! once the spec sets `switchoverToHigherPriority`, a switchover makes it the master.

use std::time::Duration;

use anyhow::{Context, bail};
use stolon_core::cluster::outcome;

use crate::harness::writes::WriteChecker;
use crate::harness::{Env, R, TestCluster, Variant, WAIT, master_keeper, never, wait_for};
use crate::{ACKED_BEFORE, checker, cluster, spec};

/// The group's scenario.
pub async fn test_maintenance_and_priority(env: Env) -> R<()> {
    let (mut c, master) = cluster(&env, &spec(Variant::SyncRepl), 3).await?;
    let (writes, new) = maintenance(&mut c, &master).await?;
    let preferred = priority(&mut c, &new, &master).await?;
    writes.wait_acked(ACKED_BEFORE * 3, WAIT).await?;
    writes.finish().await?.verify(&c.connect(&preferred).await?, ACKED_BEFORE * 3).await
}

/// The synchronous standby in maintenance: replaced as synchronous standby, never synchronous again, and
/// never elected when the master dies. Returns the running checker and the new master.
async fn maintenance(c: &mut TestCluster, master: &str) -> R<(WriteChecker, String)> {
    let cd = c.cd().await?;
    let sync_db = cd.master_db().and_then(|m| m.status.synchronous_standbys().first().cloned()).context("sync")?;
    let sync_keeper = cd.dbs.get(&sync_db).context("sync db")?.spec.keeper_uid.clone();
    let other = c.others(master).into_iter().find(|k| *k != sync_keeper).context("third keeper")?;
    c.stolonctl_ok(&["maintenance", &sync_keeper, "on"]).await?;
    let status = c.stolonctl_ok(&["status"]).await?;
    if !status.contains(&format!("Keepers in maintenance: {sync_keeper}")) {
        bail!("status does not show the maintenance:\n{status}");
    }
    c.wait_sync_standbys(&[&other], WAIT).await?;
    let writes = checker(c).await?;
    never("the keeper in maintenance synchronous again", Duration::from_secs(5), || async {
        let cd = c.cd().await?;
        let m = cd.master_db().context("no master")?;
        Ok(m.spec.synchronous_standbys().contains(&sync_db))
    })
    .await?;
    c.keeper(master)?.kill_all().await?;
    c.wait_master_is(&other, WAIT).await?;
    never("the keeper in maintenance elected", Duration::from_secs(5), || async {
        Ok(master_keeper(&c.cd().await?).as_deref() == Some(sync_keeper.as_str()))
    })
    .await?;
    c.wait_in_recovery(&other, false, WAIT).await?;
    c.wait_proxy_routes_to(0, &other, WAIT).await?;
    c.stolonctl_ok(&["maintenance", &sync_keeper, "off"]).await?;
    c.wait_cd("maintenance off", WAIT, |cd| cd.keepers.get(&sync_keeper).is_some_and(|k| !k.spec.maintenance)).await?;
    // The keeper out of maintenance is the only live standby: writes commit again once it is synchronous.
    writes.wait_acked(ACKED_BEFORE * 2, WAIT).await?;
    Ok((writes, other))
}

/// A standby keeper with `--priority 5` never replaces the healthy `master` by default; once the spec sets
/// `switchoverToHigherPriority`, a switchover makes it the master. `dead` is the keeper killed before.
/// Returns the new master.
async fn priority(c: &mut TestCluster, master: &str, dead: &str) -> R<String> {
    let preferred = c.add_keeper_with(&["--priority", "5"]).await?;
    c.wait_standby(&preferred, WAIT).await?;
    c.wait_cd("the priority in the cluster data", WAIT, |cd| {
        cd.keepers.get(&preferred).is_some_and(|k| k.spec.priority == 5)
    })
    .await?;
    never("the healthy master replaced for priority alone", Duration::from_secs(6), || async {
        Ok(master_keeper(&c.cd().await?).as_deref() != Some(master))
    })
    .await?;
    settled_but(c, dead).await?;
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
    Ok(preferred)
}

/// Every keeper and DB but `dead`'s healthy and converged.
async fn settled_but(c: &TestCluster, dead: &str) -> R<()> {
    c.wait_cd("every live keeper healthy, its db healthy and converged", WAIT, |cd| {
        cd.keepers.values().filter(|k| k.uid != dead).all(|k| k.status.healthy)
            && cd
                .dbs
                .values()
                .filter(|db| db.spec.keeper_uid != dead)
                .all(|db| db.status.healthy && db.status.current_generation == db.generation)
    })
    .await?;
    Ok(())
}
