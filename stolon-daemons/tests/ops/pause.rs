//! TestPauseMasterDiesAndPauseFor: one asynchronous cluster of three keepers. Paused, the master dies: no
//! failover while paused; `resume`, then one. Then `pause --for` ends on its own: the new master dies
//! during the pause and the failover to the last keeper comes only after the pause's end.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::harness::{self, Env, R, TestCluster, Variant, WAIT, master_keeper, never};
use crate::{NOT_DECIDED, cluster, spec};

/// The group's scenario.
pub async fn test_pause(env: Env) -> R<()> {
    let (mut c, master) = cluster(&env, &spec(Variant::Async), 3).await?;
    let new = pause_master_dies(&mut c, &master).await?;
    let last = c.others(&master).into_iter().find(|k| *k != new).context("third keeper")?;
    c.wait_standby(&last, WAIT).await?;
    c.wait_cd("the last standby following the new master", WAIT, |cd| {
        let new_db = cd.db_of_keeper(&new).map(|db| db.uid.clone()).unwrap_or_default();
        cd.db_of_keeper(&last).and_then(|db| db.spec.follow_config.as_ref()).is_some_and(|f| f.db_uid == new_db)
            && harness::db_ready(cd, &last)
    })
    .await?;
    pause_for(&mut c, &new, &last).await
}

/// Paused, the master's keeper and PostgreSQL die: no failover while paused; `resume`, then one to one
/// of the standbys. Returns the new master's keeper.
async fn pause_master_dies(c: &mut TestCluster, master: &str) -> R<String> {
    let standbys = c.others(master);
    c.stolonctl_ok(&["pause"]).await?;
    let status = c.stolonctl_ok(&["status"]).await?;
    if !status.contains("PAUSED") {
        bail!("status does not show the pause:\n{status}");
    }
    c.keeper(master)?.kill_all().await?;
    c.wait_cd("the dead master keeper unhealthy", WAIT, |cd| cd.keepers.get(master).is_some_and(|k| !k.status.healthy))
        .await?;
    never("a failover while paused", NOT_DECIDED, || async {
        Ok(master_keeper(&c.cd().await?).as_deref() != Some(master))
    })
    .await?;
    for s in &standbys {
        if !c.keeper_ref(s)?.in_recovery().await? {
            bail!("standby {s} was promoted while paused");
        }
    }
    c.stolonctl_ok(&["resume"]).await?;
    let cd = c
        .wait_cd("a standby elected after resume", WAIT, |cd| master_keeper(cd).is_some_and(|m| standbys.contains(&m)))
        .await?;
    let new = master_keeper(&cd).context("no master")?;
    c.wait_in_recovery(&new, false, WAIT).await?;
    c.wait_proxy_routes_to(0, &new, WAIT).await?;
    Ok(new)
}

/// `pause --for` ends on its own: `master` dies during the pause and the failover to `standby` comes only
/// after it; the expired pause is gone from the cluster data.
async fn pause_for(c: &mut TestCluster, master: &str, standby: &str) -> R<()> {
    c.stolonctl_ok(&["pause", "--for", "8s"]).await?;
    let cd = c.cd().await?;
    let until = cd.operations.pause.and_then(|p| p.until).context("no pause end recorded")?;
    c.keeper(master)?.kill_all().await?;
    c.wait_master_is(standby, Duration::from_secs(60)).await?;
    if chrono::Utc::now() < until.as_datetime() {
        bail!("failed over before the pause ended at {until}");
    }
    let cd = c.cd().await?;
    if cd.operations.pause.is_some() {
        bail!("the expired pause is still recorded");
    }
    c.wait_proxy_routes_to(0, standby, WAIT).await
}
