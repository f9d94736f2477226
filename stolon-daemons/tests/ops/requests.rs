//! TestSwitchoverRequests: one asynchronous cluster (two keepers and one that may not be master), one
//! acknowledged-writes checker across every check: the refusals, a scheduled switchover cancelled and
//! another one carried out at its time (automatic candidate), two concurrent requests (named candidate,
//! the old master rejoining in place), a switchover aborted at its timeout, and an unhealthy candidate
//! refused.

use std::time::Duration;

use anyhow::{Context, bail};
use stolon_core::cluster::outcome;

use crate::harness::{self, Env, R, TestCluster, Variant, WAIT, master_keeper, never};
use crate::{ACKED_BEFORE, checker, cluster, db_of, expect_refused, old_master_rejoined, settled, spec};

/// The group's scenario. `failInterval` is 10 s so that the candidate frozen by the abort check is not
/// declared failed before the switchover's 3 s timeout.
pub async fn test_switchover_requests(env: Env) -> R<()> {
    let spec = harness::merged(spec(Variant::Async), &serde_json::json!({ "failInterval": "10s" }));
    let (mut c, master) = cluster(&env, &spec, 2).await?;
    let standby = c.others(&master).first().cloned().context("no standby")?;
    let never_master = c.add_keeper_with(&["--can-be-master=false"]).await?;
    c.wait_standby(&never_master, WAIT).await?;

    refusals(&c, &master, &standby, &never_master).await?;
    let writes = checker(&c).await?;
    let mut acked = ACKED_BEFORE;
    scheduled_and_cancelled(&c, &master, &standby).await?;
    acked += ACKED_BEFORE;
    writes.wait_acked(acked, WAIT).await?;
    concurrent_requests(&c, &standby, &master).await?;
    acked += ACKED_BEFORE;
    writes.wait_acked(acked, WAIT).await?;
    abort_on_timeout(&c, &master, &standby).await?;
    acked += ACKED_BEFORE;
    writes.wait_acked(acked, WAIT).await?;
    let report = writes.finish().await?;
    report.verify(&c.connect(&master).await?, acked).await
}

/// Every refusal leaves the cluster unchanged: unknown keeper, the master itself, a keeper that may not
/// be master, a keeper in maintenance, a paused cluster.
async fn refusals(c: &TestCluster, master: &str, standby: &str, never_master: &str) -> R<()> {
    expect_refused(c, &["--to", "nosuchkeeper"], "keeper nosuchkeeper does not exist").await?;
    expect_refused(c, &["--to", master], "already hosts the master").await?;
    expect_refused(c, &["--to", never_master], "is not allowed to be master").await?;
    c.stolonctl_ok(&["maintenance", standby, "on"]).await?;
    expect_refused(c, &["--to", standby], "is in maintenance").await?;
    c.stolonctl_ok(&["maintenance", standby, "off"]).await?;
    c.stolonctl_ok(&["pause"]).await?;
    expect_refused(c, &[], "the cluster is paused").await?;
    c.stolonctl_ok(&["resume"]).await?;
    Ok(())
}

/// A scheduled switchover shows in status and can be cancelled (nothing happens at its time); another
/// one (automatic candidate: the only standby that may be master) happens at its time.
async fn scheduled_and_cancelled(c: &TestCluster, master: &str, standby: &str) -> R<()> {
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
        Ok(master_keeper(&c.cd().await?).as_deref() != Some(master))
    })
    .await?;
    let cd = c.cd().await?;
    if cd.operations.last_switchover.map(|r| r.outcome).as_deref() != Some(outcome::CANCELLED) {
        bail!("the cancellation is not recorded");
    }

    settled(c).await?;
    let second = at(3);
    c.stolonctl_ok(&["switchover", "-y", "--at", &second]).await?;
    c.wait_master_is(standby, WAIT).await?;
    if chrono::Utc::now() < chrono::DateTime::parse_from_rfc3339(&second)? {
        bail!("the switchover happened before its time {second}");
    }
    c.wait_proxy_routes_to(0, standby, WAIT).await?;
    c.wait_standby(master, WAIT).await
}

/// Two requests to switch over to `to` at once while the sentinel cannot act: one is recorded, the other
/// sees it pending; the recorded one completes and the old master rejoins in place.
async fn concurrent_requests(c: &TestCluster, from: &str, to: &str) -> R<()> {
    settled(c).await?;
    let from_db = db_of(&c.cd().await?, from)?;
    let log_from = c.keeper_ref(from)?.proc.log_len();
    c.sentinels[0].freeze();
    let request = ["switchover", "-y", "--to", to, "--timeout", "20s"];
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
    let cd = c.cd().await?;
    if master_keeper(&cd).as_deref() != Some(to) {
        bail!("master after the switchover to {to}: {}", harness::summary(&cd));
    }
    let last = cd.operations.last_switchover.context("no recorded outcome")?;
    if last.outcome != outcome::COMPLETED {
        bail!("outcome {last:?}");
    }
    c.wait_in_recovery(to, false, WAIT).await?;
    c.wait_proxy_routes_to(0, to, WAIT).await?;
    old_master_rejoined(c, from, &from_db, log_from).await
}

/// The candidate's keeper is frozen: the master is fenced but the candidate never reports its last WAL,
/// so the switchover is aborted at its timeout and the master takes writes again. The frozen candidate,
/// once the sentinel declares it unhealthy, is refused.
async fn abort_on_timeout(c: &TestCluster, master: &str, standby: &str) -> R<()> {
    settled(c).await?;
    c.keeper_ref(standby)?.freeze()?;
    let result = abort_then_unhealthy(c, master, standby).await;
    c.keeper_ref(standby)?.thaw();
    result
}

async fn abort_then_unhealthy(c: &TestCluster, master: &str, standby: &str) -> R<()> {
    let out = c.stolonctl(&["switchover", "-y", "--timeout", "3s"]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("switchover aborted") {
        bail!("expected an aborted switchover, got {}: {stderr}", out.status);
    }
    let cd = c.cd().await?;
    if master_keeper(&cd).as_deref() != Some(master) {
        bail!("the master moved: {}", harness::summary(&cd));
    }
    c.wait_in_recovery(master, false, WAIT).await?;
    c.wait_proxy_routes_to(0, master, WAIT).await?;
    c.wait_cd("the frozen keeper unhealthy", WAIT, |cd| cd.keepers.get(standby).is_some_and(|k| !k.status.healthy))
        .await?;
    expect_refused(c, &["--to", standby], "is not healthy").await
}
