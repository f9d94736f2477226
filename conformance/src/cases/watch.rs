//! Watch cases: every change in order, replay from an older revision.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use stolon_store::{Document, Revision, WatchDelivery, WatchEvent, WatchStream};

use super::{Ctx, Outcome};

const EVENT_WAIT: Duration = Duration::from_secs(10);

async fn next_put(stream: &mut WatchStream) -> anyhow::Result<Document> {
    match tokio::time::timeout(EVENT_WAIT, stream.next()).await {
        Err(_) => bail!("no watch event within {EVENT_WAIT:?}"),
        Ok(None) => bail!("watch stream ended"),
        Ok(Some(Err(e))) => bail!("watch error: {e}"),
        Ok(Some(Ok(WatchEvent::Put(doc)))) => Ok(doc),
        Ok(Some(Ok(other))) => bail!("expected a put event, got {other:?}"),
    }
}

/// Reads put events until one carries `last`, checking that values only move forward through `expected`.
async fn follow(stream: &mut WatchStream, expected: &[(Vec<u8>, Revision)], every: bool) -> anyhow::Result<()> {
    let mut pos = 0;
    while pos < expected.len() {
        let doc = next_put(stream).await?;
        let found = expected[pos..].iter().position(|(v, _)| *v == doc.value).map(|i| i + pos);
        let Some(at) = found else {
            bail!("unexpected or out-of-order value {:?}", String::from_utf8_lossy(&doc.value))
        };
        ensure!(!every || at == pos, "change {pos} was skipped (got change {at})");
        ensure!(doc.revision == expected[at].1, "change {at}: revision {} instead of {}", doc.revision, expected[at].1);
        pos = at + 1;
    }
    Ok(())
}

pub(super) async fn every_change(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = ctx.store().await?;
    let every = store.capabilities().watch == WatchDelivery::EveryChange;
    let mut rev = store.put_cluster_data_cas(b"v0", None).await?;
    let mut stream = store.watch_cluster_data(Some(&rev)).await.context("opening the watch")?;
    let writer = ctx.store().await?;
    let mut written = Vec::new();
    for i in 1..=20 {
        let v = format!("v{i}").into_bytes();
        rev = writer.put_cluster_data_cas(&v, Some(&rev)).await?;
        written.push((v, rev.clone()));
    }
    follow(&mut stream, &written, every).await?;
    // And a change made later, after a pause, arrives too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = writer.put_cluster_data_cas(b"late", Some(&rev)).await?;
    let doc = next_put(&mut stream).await?;
    ensure!(doc.value == b"late" && doc.revision == late, "late change: got {doc:?}");
    Ok(Outcome::Passed)
}

pub(super) async fn from_past_revision(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = ctx.store().await?;
    let every = store.capabilities().watch == WatchDelivery::EveryChange;
    let mut revs = vec![store.put_cluster_data_cas(b"p0", None).await?];
    for i in 1..=3 {
        let r = store.put_cluster_data_cas(format!("p{i}").as_bytes(), revs.last()).await?;
        revs.push(r);
    }
    let mut stream = store.watch_cluster_data(Some(&revs[1])).await.context("opening the watch")?;
    let expected = vec![(b"p2".to_vec(), revs[2].clone()), (b"p3".to_vec(), revs[3].clone())];
    follow(&mut stream, &expected, every).await?;
    let r4 = store.put_cluster_data_cas(b"p4", Some(&revs[3])).await?;
    let doc = next_put(&mut stream).await?;
    ensure!(doc.value == b"p4" && doc.revision == r4, "change after the replay: got {doc:?}");
    Ok(Outcome::Passed)
}
