//! Cluster document cases: compare-and-swap, unconditional put, concurrency, size.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use stolon_store::{Store, StoreError};

use super::{Ctx, Outcome};

pub(super) async fn create_only(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = ctx.store().await?;
    ensure!(store.get_cluster_data().await?.is_none(), "a fresh cluster must have no document");
    let rev = store.put_cluster_data_cas(b"first", None).await.context("first create-only put")?;
    match store.put_cluster_data_cas(b"second", None).await {
        Err(StoreError::Conflict { .. }) => {}
        other => bail!("second create-only put: expected a conflict, got {other:?}"),
    }
    let doc = store.get_cluster_data().await?.context("document missing after create")?;
    ensure!(doc.value == b"first", "value changed by a failed create: {:?}", doc.value);
    ensure!(doc.revision == rev, "read revision {} differs from the put's {}", doc.revision, rev);
    Ok(Outcome::Passed)
}

pub(super) async fn revision(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = ctx.store().await?;
    let r1 = store.put_cluster_data_cas(b"v1", None).await?;
    let r2 = store.put_cluster_data_cas(b"v2", Some(&r1)).await.context("CAS on the current revision")?;
    ensure!(r2 != r1, "a successful CAS must change the revision");
    match store.put_cluster_data_cas(b"stale", Some(&r1)).await {
        Err(StoreError::Conflict { .. }) => {}
        other => bail!("CAS on a stale revision: expected a conflict, got {other:?}"),
    }
    let doc = store.get_cluster_data().await?.context("document missing")?;
    ensure!(doc.value == b"v2" && doc.revision == r2, "stale CAS must change nothing, got {doc:?}");
    // A second client sees the same revision and can CAS with it.
    let other = ctx.store().await?;
    let r3 = other.put_cluster_data_cas(b"v3", Some(&doc.revision)).await.context("CAS from another client")?;
    let doc = store.get_cluster_data().await?.context("document missing")?;
    ensure!(doc.value == b"v3" && doc.revision == r3, "first client must read the other's write, got {doc:?}");
    Ok(Outcome::Passed)
}

pub(super) async fn unconditional(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = ctx.store().await?;
    let r1 = store.put_cluster_data(b"a").await.context("put on an absent document")?;
    let r2 = store.put_cluster_data(b"b").await.context("put over an existing document")?;
    ensure!(r1 != r2, "each put must change the revision");
    let doc = store.get_cluster_data().await?.context("document missing")?;
    ensure!(doc.value == b"b" && doc.revision == r2, "unexpected document {doc:?}");
    store.put_cluster_data_cas(b"c", Some(&r2)).await.context("CAS with the revision of an unconditional put")?;
    Ok(Outcome::Passed)
}

pub(super) async fn lost_update_storm(ctx: &Ctx) -> anyhow::Result<Outcome> {
    const WRITERS: usize = 8;
    const INCREMENTS: usize = 50;
    let setup = ctx.store().await?;
    setup.put_cluster_data_cas(b"0", None).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = ctx.store().await?;
        tasks.push(tokio::spawn(async move { increment(store, INCREMENTS, deadline).await }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.context("writer task panicked")??;
    }
    let doc = setup.get_cluster_data().await?.context("document missing")?;
    let n: usize = std::str::from_utf8(&doc.value)?.parse()?;
    ensure!(n == WRITERS * INCREMENTS, "final count {n}, expected {} ({conflicts} conflicts)", WRITERS * INCREMENTS);
    Ok(Outcome::Passed)
}

/// Adds one `times` times with read-CAS-retry; returns how many conflicts it saw.
async fn increment(store: Arc<dyn Store>, times: usize, deadline: tokio::time::Instant) -> anyhow::Result<usize> {
    let mut conflicts = 0;
    for _ in 0..times {
        loop {
            ensure!(tokio::time::Instant::now() < deadline, "storm did not finish in time");
            let doc = store.get_cluster_data().await?.context("document vanished")?;
            let n: usize = std::str::from_utf8(&doc.value)?.parse()?;
            match store.put_cluster_data_cas((n + 1).to_string().as_bytes(), Some(&doc.revision)).await {
                Ok(_) => break,
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(conflicts)
}

pub(super) async fn large_value(ctx: &Ctx) -> anyhow::Result<Outcome> {
    const ONE_MIB: usize = 1024 * 1024;
    let store = ctx.store().await?;
    let limit = store.capabilities().max_document_size;
    let size = limit.map_or(ONE_MIB, |max| max.min(ONE_MIB));
    // JSON-safe bytes with a pattern that catches truncation and reordering.
    let value: Vec<u8> = (0..size).map(|i: usize| b'a' + (i % 26) as u8).collect();
    let rev = store.put_cluster_data_cas(&value, None).await.with_context(|| format!("writing {size} bytes"))?;
    let doc = store.get_cluster_data().await?.context("document missing")?;
    ensure!(doc.value.len() == value.len(), "read {} bytes, wrote {}", doc.value.len(), value.len());
    ensure!(doc.value == value, "{size}-byte value corrupted");
    ensure!(doc.revision == rev, "revision mismatch");
    // A backend that declares a smaller limit must refuse 1 MiB clearly and keep what it had.
    if size < ONE_MIB {
        let too_big = vec![b'z'; ONE_MIB];
        match store.put_cluster_data_cas(&too_big, Some(&rev)).await {
            Err(StoreError::InvalidData { .. }) => {}
            other => {
                bail!("a 1 MiB document above the declared limit of {size} bytes: expected invalid data, got {other:?}")
            }
        }
        let doc = store.get_cluster_data().await?.context("document missing")?;
        ensure!(doc.value == value, "a refused write changed the document");
    }
    Ok(Outcome::Passed)
}
