//! Member record cases: expiry, refresh, isolation between clusters and kinds.

use std::time::Duration;

use anyhow::{Context, ensure};
use stolon_store::{MemberExpiry, MemberKind, Store};

use super::{Ctx, Outcome, eventually};

async fn ids(store: &dyn Store, kind: MemberKind) -> anyhow::Result<Vec<String>> {
    Ok(store.list_members(kind).await?.into_iter().map(|m| m.id).collect())
}

pub(super) async fn expiry_and_refresh(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let kind = MemberKind::Keeper;
    let owner = ctx.factory.open_member(&ctx.cluster, kind, "k1").await?;
    let observer = ctx.store().await?;
    let ttl = ctx.ttl(owner.as_ref());
    owner.set_member(kind, "k1", b"info-0", ttl).await.context("first set_member")?;
    let listed = observer.list_members(kind).await?;
    ensure!(listed.len() == 1 && listed[0].id == "k1" && listed[0].value == b"info-0", "unexpected {listed:?}");

    // Refreshing every third of the TTL keeps the record alive for several TTLs, with the newest value, also
    // when a refresh leaves the value unchanged (each value is published twice in a row).
    let refreshes = 7;
    for i in 1..=refreshes {
        tokio::time::sleep(ttl / 3).await;
        let value = format!("info-{}", i / 2);
        owner.set_member(kind, "k1", value.as_bytes(), ttl).await.context("refresh")?;
        let listed = observer.list_members(kind).await?;
        ensure!(listed.len() == 1, "record lost while refreshed (refresh {i}): {listed:?}");
        ensure!(listed[0].value == value.as_bytes(), "stale value after refresh {i}");
    }

    match owner.capabilities().member_expiry {
        MemberExpiry::Ttl => {
            drop(owner);
            let slack = Duration::from_secs(5);
            eventually(ttl + slack, "the unrefreshed record to expire", || async {
                Ok(ids(observer.as_ref(), kind).await?.is_empty().then_some(()))
            })
            .await?;
        }
        MemberExpiry::OwnerDeleted => {
            tokio::time::sleep(ttl + Duration::from_secs(1)).await;
            ensure!(ids(observer.as_ref(), kind).await? == ["k1"], "record must outlive its TTL while its owner lives");
            drop(owner);
            ctx.factory.end_member_owner(&ctx.cluster, kind, "k1").await?;
            eventually(Duration::from_secs(30), "the record of the removed owner to disappear", || async {
                Ok(ids(observer.as_ref(), kind).await?.is_empty().then_some(()))
            })
            .await?;
        }
    }
    Ok(Outcome::Passed)
}

pub(super) async fn isolation(ctx: &Ctx) -> anyhow::Result<Outcome> {
    // The second cluster's name starts with the first one's: listings must not leak across that prefix.
    let other_cluster = format!("{}x", ctx.cluster);
    let ttl = Duration::from_secs(60);
    let mut owners = Vec::new();
    for (cluster, kind, id) in [
        (&ctx.cluster, MemberKind::Keeper, "a1"),
        (&ctx.cluster, MemberKind::Keeper, "a2"),
        (&ctx.cluster, MemberKind::Sentinel, "s1"),
        (&other_cluster, MemberKind::Keeper, "b1"),
        (&other_cluster, MemberKind::Proxy, "p1"),
    ] {
        let store = ctx.factory.open_member(cluster, kind, id).await?;
        store.set_member(kind, id, format!("{cluster}/{id}").as_bytes(), ttl).await?;
        owners.push((cluster.clone(), kind, id, store));
    }
    let mine = ctx.store().await?;
    let theirs = ctx.factory.open(&other_cluster).await?;
    ensure!(ids(mine.as_ref(), MemberKind::Keeper).await? == ["a1", "a2"], "keepers of the first cluster");
    ensure!(ids(mine.as_ref(), MemberKind::Sentinel).await? == ["s1"], "sentinels of the first cluster");
    ensure!(ids(mine.as_ref(), MemberKind::Proxy).await?.is_empty(), "the first cluster has no proxy");
    ensure!(ids(theirs.as_ref(), MemberKind::Keeper).await? == ["b1"], "keepers of the second cluster");
    ensure!(ids(theirs.as_ref(), MemberKind::Proxy).await? == ["p1"], "proxies of the second cluster");
    let a1 = mine.list_members(MemberKind::Keeper).await?;
    ensure!(a1[0].value == format!("{}/a1", ctx.cluster).as_bytes(), "value of a1");

    let (_, _, _, a2_owner) = &owners[1];
    a2_owner.delete_member(MemberKind::Keeper, "a2").await.context("delete_member")?;
    ensure!(ids(mine.as_ref(), MemberKind::Keeper).await? == ["a1"], "a2 must be gone after delete_member");
    a2_owner.delete_member(MemberKind::Keeper, "a2").await.context("deleting a missing record is not an error")?;
    for (cluster, kind, id, store) in owners {
        let _ = store.delete_member(kind, id).await;
        drop(store);
        ctx.factory.end_member_owner(&cluster, kind, id).await?;
    }
    Ok(Outcome::Passed)
}
