//! Outage cases: unreachable endpoints and a server that stops and comes back.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use stolon_store::{MemberEvent, MemberKind, StoreError, StoreResult};

use super::{Ctx, Outcome, eventually};

/// Runs `op`, which must fail with an unavailable or timeout error within the store timeout plus slack.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    op: impl Future<Output = StoreResult<T>>,
) -> anyhow::Result<()> {
    let limit = timeout + Duration::from_secs(2);
    let start = Instant::now();
    let res = tokio::time::timeout(limit, op).await;
    let took = start.elapsed();
    match res {
        Err(_) => bail!("{what} hung for more than {limit:?}"),
        Ok(Ok(v)) => bail!("{what} succeeded against a stopped server: {v:?}"),
        Ok(Err(StoreError::Unavailable { .. } | StoreError::Timeout { .. })) => Ok(()),
        Ok(Err(e)) => bail!("{what} failed after {took:?} with the wrong kind of error: {e}"),
    }
}

pub(super) async fn unreachable(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let timeout = ctx.factory.timeout();
    let store = match ctx.factory.open_unreachable(&ctx.cluster).await {
        Ok(s) => s,
        // Backends that connect eagerly may already fail here; that is the same answer, given early.
        Err(StoreError::Unavailable { .. } | StoreError::Timeout { .. }) => {
            return Ok(Outcome::Passed);
        }
        Err(e) => {
            bail!("opening a store on a closed port failed with the wrong kind of error: {e}")
        }
    };
    fails_fast("get_cluster_data", timeout, store.get_cluster_data()).await?;
    fails_fast("put_cluster_data_cas", timeout, store.put_cluster_data_cas(b"x", None)).await?;
    fails_fast("set_member", timeout, store.set_member(MemberKind::Keeper, "k", b"x", timeout)).await?;
    fails_fast("list_members", timeout, store.list_members(MemberKind::Proxy)).await?;
    fails_fast("leader", timeout, store.leader()).await?;
    Ok(Outcome::Passed)
}

pub(super) async fn server_restart(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let Some(server) = ctx.factory.private_server().await else {
        return Ok(Outcome::Skipped("needs a server the suite can stop and start (run it with cargo test)".into()));
    };
    let server = server.context("starting a private server")?;
    let timeout = server.factory.timeout();
    let store = server.factory.open(&ctx.cluster).await?;
    let rev = store.put_cluster_data_cas(b"before", None).await?;
    let mut watch = store.watch_cluster_data(Some(&rev)).await?;
    let mut members = store.watch_members(MemberKind::Keeper).await?.events;
    let member = server.factory.open_member(&ctx.cluster, MemberKind::Keeper, "k").await?;

    server.control.stop().await.context("stopping the server")?;
    fails_fast("get_cluster_data", timeout, store.get_cluster_data()).await?;
    fails_fast("put_cluster_data_cas", timeout, store.put_cluster_data_cas(b"during", Some(&rev))).await?;
    fails_fast("set_member", timeout, store.set_member(MemberKind::Keeper, "k", b"x", timeout)).await?;
    // An open watch reports the outage instead of hanging.
    let limit = timeout * 3 + Duration::from_secs(2);
    match tokio::time::timeout(limit, watch.next()).await {
        Err(_) => bail!("the open watch did not report the outage within {limit:?}"),
        Ok(Some(Ok(ev))) => bail!("the watch delivered {ev:?} while the server was down"),
        Ok(_) => {}
    }
    // So does an open member watch: an error, or a reset (the caller lists again either way).
    match tokio::time::timeout(limit, members.next()).await {
        Err(_) => bail!("the open member watch did not report the outage within {limit:?}"),
        Ok(Some(Ok(ev))) if ev != MemberEvent::Reset => {
            bail!("the member watch delivered {ev:?} while the server was down")
        }
        Ok(_) => {}
    }

    server.control.start().await.context("starting the server again")?;
    let doc = eventually(Duration::from_secs(30), "the store to serve again", || async {
        Ok(store.get_cluster_data().await?)
    })
    .await?;
    ensure!(doc.value == b"before", "data lost across the restart: {doc:?}");
    let rev2 = store.put_cluster_data_cas(b"after", Some(&doc.revision)).await.context("CAS after the restart")?;
    let mut watch = store.watch_cluster_data(Some(&rev2)).await.context("watch after the restart")?;
    let members = store.watch_members(MemberKind::Keeper).await.context("member watch after the restart")?;
    let mut members = members.events;
    member.set_member(MemberKind::Keeper, "k", b"x", Duration::from_secs(30)).await.context("set_member after")?;
    match tokio::time::timeout(Duration::from_secs(10), members.next()).await {
        Ok(Some(Ok(MemberEvent::Put(r)))) if r.id == "k" && r.value == b"x" => {}
        other => bail!("member watch after the restart: expected the new record, got {other:?}"),
    }
    let rev3 = store.put_cluster_data_cas(b"again", Some(&rev2)).await?;
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(stolon_store::WatchEvent::Put(d)))) if d.revision == rev3 => {}
        other => bail!("watch after the restart: expected the new write, got {other:?}"),
    }
    Ok(Outcome::Passed)
}
