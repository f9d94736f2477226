//! Member watch cases: the listing and the changes after it, isolation, expiry seen as a removal. Member ids
//! are unique among the cases (on Kubernetes they are pod names in one namespace).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use stolon_store::{MemberEvent, MemberExpiry, MemberKind, MemberRecord, MemberStream, WatchDelivery};

use super::{Ctx, Outcome};

const EVENT_WAIT: Duration = Duration::from_secs(10);

/// The next event within `limit`.
async fn next_event(events: &mut MemberStream, limit: Duration) -> anyhow::Result<MemberEvent> {
    match tokio::time::timeout(limit, events.next()).await {
        Err(_) => bail!("no member event within {limit:?}"),
        Ok(None) => bail!("the member watch ended"),
        Ok(Some(Err(e))) => bail!("member watch error: {e}"),
        Ok(Some(Ok(ev))) => Ok(ev),
    }
}

/// The records of a listing by id.
fn by_id(records: &[MemberRecord]) -> BTreeMap<String, Vec<u8>> {
    records.iter().map(|r| (r.id.clone(), r.value.clone())).collect()
}

/// Applies one event to a view; a reset fails the case (nothing here may exhaust a store's history).
fn apply(view: &mut BTreeMap<String, Vec<u8>>, ev: &MemberEvent) -> anyhow::Result<()> {
    match ev {
        MemberEvent::Put(r) => {
            view.insert(r.id.clone(), r.value.clone());
        }
        MemberEvent::Removed { id } => {
            view.remove(id);
        }
        MemberEvent::Reset => bail!("unexpected reset of the member watch"),
    }
    Ok(())
}

pub(super) async fn changes(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let kind = MemberKind::Keeper;
    let ttl = Duration::from_secs(60);
    let other_cluster = format!("{}x", ctx.cluster);
    let a = ctx.factory.open_member(&ctx.cluster, kind, "wk1").await?;
    a.set_member(kind, "wk1", b"a-0", ttl).await.context("publishing wk1")?;
    // Records that must never show up: another cluster whose name starts with ours, another kind.
    let foreign = ctx.factory.open_member(&other_cluster, kind, "wn1").await?;
    foreign.set_member(kind, "wn1", b"n-0", ttl).await?;
    let proxy = ctx.factory.open_member(&ctx.cluster, MemberKind::Proxy, "wp1").await?;

    let observer = ctx.store().await?;
    let watch = observer.watch_members(kind).await.context("opening the member watch")?;
    let every = observer.capabilities().watch == WatchDelivery::EveryChange;
    ensure!(by_id(&watch.records) == by_id(&[rec("wk1", "a-0")]), "initial listing: {:?}", watch.records);
    let mut view = by_id(&watch.records);
    let mut events = watch.events;

    let b = ctx.factory.open_member(&ctx.cluster, kind, "wk2").await?;
    b.set_member(kind, "wk2", b"b-0", ttl).await?;
    proxy.set_member(MemberKind::Proxy, "wp1", b"p-0", ttl).await?;
    let mut expected = vec![put("wk2", "b-0")];
    for i in 1..=5 {
        let v = format!("a-{i}");
        a.set_member(kind, "wk1", v.as_bytes(), ttl).await?;
        foreign.set_member(kind, "wn1", format!("n-{i}").as_bytes(), ttl).await?;
        expected.push(put("wk1", &v));
    }
    b.delete_member(kind, "wk2").await.context("deleting wk2")?;
    expected.push(MemberEvent::Removed { id: "wk2".into() });

    let want = by_id(&[rec("wk1", "a-5")]);
    let mut seen = Vec::new();
    while view != want || (every && seen.len() < expected.len()) {
        let ev = next_event(&mut events, EVENT_WAIT).await.with_context(|| format!("after {seen:?}"))?;
        if let MemberEvent::Put(MemberRecord { id, .. }) | MemberEvent::Removed { id } = &ev {
            ensure!(id == "wk1" || id == "wk2", "a record of another cluster or kind was delivered: {ev:?}");
        }
        apply(&mut view, &ev)?;
        seen.push(ev);
    }
    if every {
        ensure!(seen == expected, "changes out of order or missing:\n got {seen:?}\nwant {expected:?}");
    } else {
        // Coalesced: what arrives is a subsequence of the changes, in order, ending in the final state.
        let mut rest = expected.iter();
        for ev in &seen {
            ensure!(rest.any(|e| e == ev), "{ev:?} is out of order or unknown (got {seen:?})");
        }
    }
    let listed = by_id(&observer.list_members(kind).await?);
    ensure!(view == listed, "listing + events {view:?} differ from list_members {listed:?}");

    for (cluster, kind, id) in [
        (&ctx.cluster, kind, "wk1"),
        (&ctx.cluster, kind, "wk2"),
        (&ctx.cluster, MemberKind::Proxy, "wp1"),
        (&other_cluster, kind, "wn1"),
    ] {
        ctx.factory.end_member_owner(cluster, kind, id).await?;
    }
    Ok(Outcome::Passed)
}

pub(super) async fn expiry(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let kind = MemberKind::Sentinel;
    let owner = ctx.factory.open_member(&ctx.cluster, kind, "ws1").await?;
    let ttl = ctx.ttl(owner.as_ref());
    owner.set_member(kind, "ws1", b"s", ttl).await.context("publishing ws1")?;
    let observer = ctx.store().await?;
    let watch = observer.watch_members(kind).await.context("opening the member watch")?;
    ensure!(by_id(&watch.records) == by_id(&[rec("ws1", "s")]), "initial listing: {:?}", watch.records);
    let mut events = watch.events;

    let limit = match owner.capabilities().member_expiry {
        MemberExpiry::Ttl => {
            drop(owner);
            ttl + Duration::from_secs(5)
        }
        MemberExpiry::OwnerDeleted => {
            drop(owner);
            ctx.factory.end_member_owner(&ctx.cluster, kind, "ws1").await?;
            Duration::from_secs(30)
        }
    };
    let started = tokio::time::Instant::now();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        let ev = next_event(&mut events, left).await.context("waiting for the removal of the gone owner's record")?;
        match ev {
            MemberEvent::Removed { id } if id == "ws1" => break,
            MemberEvent::Put(r) if r.id == "ws1" && r.value == b"s" => {}
            other => bail!("expected the removal of ws1, got {other:?}"),
        }
    }
    ensure!(observer.list_members(kind).await?.is_empty(), "ws1 is still listed after its removal was delivered");
    Ok(Outcome::Passed)
}

fn rec(id: &str, value: &str) -> MemberRecord {
    MemberRecord { id: id.into(), value: value.as_bytes().to_vec() }
}

fn put(id: &str, value: &str) -> MemberEvent {
    MemberEvent::Put(rec(id, value))
}
