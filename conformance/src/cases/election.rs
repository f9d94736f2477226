//! Election cases: exclusivity, takeover after a crash, hand-over on resign, leader query.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use stolon_store::Store;

use super::{Ctx, Outcome, eventually};

pub(super) async fn exclusive(ctx: &Ctx) -> anyhow::Result<Outcome> {
    const CONTENDERS: usize = 5;
    let holding = Arc::new(AtomicUsize::new(0));
    let max_holding = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let probe = ctx.store().await?;
    let ttl = ctx.ttl(probe.as_ref()).max(Duration::from_secs(5));

    // A sampler checks continuously that the store names at most one, known leader.
    let sampler = {
        let (probe, done) = (probe.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                if let Some(l) = probe.leader().await? {
                    ensure!(l.starts_with("candidate-"), "unknown leader {l:?}");
                    if seen.last() != Some(&l) {
                        seen.push(l);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(seen)
        })
    };

    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let store = ctx.store().await?;
        let (holding, max_holding) = (holding.clone(), max_holding.clone());
        tasks.push(tokio::spawn(async move {
            let me = format!("candidate-{i}");
            let lead = tokio::time::timeout(Duration::from_secs(120), store.campaign(&me, ttl))
                .await
                .context("campaign did not end in time")??;
            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
            max_holding.fetch_max(now, Ordering::SeqCst);
            // Hold for a while, checking our own view and the store's all along.
            for _ in 0..10 {
                ensure!(lead.is_leader(), "{me} lost leadership while holding it: {:?}", lead.state());
                let l = store.leader().await?;
                ensure!(l.as_deref() == Some(me.as_str()), "{me} leads but leader() says {l:?}");
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            holding.fetch_sub(1, Ordering::SeqCst);
            lead.resign().await?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("contender panicked")??;
    }
    done.store(true, Ordering::SeqCst);
    let seen = sampler.await.context("sampler panicked")??;
    ensure!(max_holding.load(Ordering::SeqCst) == 1, "two contenders held leadership at the same time");
    ensure!(seen.len() >= 2, "the sampler saw too few leaders: {seen:?}");
    Ok(Outcome::Passed)
}

pub(super) async fn crash_takeover(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let a = ctx.store().await?;
    let b = ctx.store().await?;
    let ttl = ctx.ttl(a.as_ref());
    let lead_a = a.campaign("candidate-a", ttl).await?;
    let waiting = spawn_campaign(b.clone(), "candidate-b", ttl);
    tokio::time::sleep(ttl.min(Duration::from_secs(2))).await;
    ensure!(!waiting.is_finished(), "candidate-b was elected while candidate-a held leadership");
    ensure!(lead_a.is_leader(), "candidate-a lost leadership while renewing: {:?}", lead_a.state());

    // Crash: stop renewing without resigning.
    let crashed_at = Instant::now();
    drop(lead_a);
    drop(a);
    let slack = Duration::from_secs(5);
    let lead_b = tokio::time::timeout(ttl + slack, waiting)
        .await
        .with_context(|| format!("candidate-b not elected within ttl {ttl:?} + {slack:?} of the crash"))???;
    let took = crashed_at.elapsed();
    ensure!(lead_b.is_leader(), "candidate-b elected but not leading");
    ensure!(b.leader().await?.as_deref() == Some("candidate-b"), "leader() must name candidate-b");
    // Not before the crashed leader's lease could have run out (minus timer granularity).
    ensure!(took + Duration::from_secs(1) >= ttl / 2, "takeover after {took:?} is faster than a lease of {ttl:?}");
    lead_b.resign().await?;
    Ok(Outcome::Passed)
}

pub(super) async fn resign_handover(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let a = ctx.store().await?;
    let b = ctx.store().await?;
    // A long TTL proves the hand-over does not wait for expiry.
    let ttl = ctx.ttl(a.as_ref()).max(Duration::from_secs(20));
    let lead_a = a.campaign("candidate-a", ttl).await?;
    let waiting = spawn_campaign(b.clone(), "candidate-b", ttl);
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(!waiting.is_finished(), "candidate-b was elected while candidate-a held leadership");
    let resigned_at = Instant::now();
    lead_a.resign().await.context("resign")?;
    let limit = Duration::from_secs(3);
    let lead_b = tokio::time::timeout(limit, waiting)
        .await
        .with_context(|| format!("candidate-b not elected within {limit:?} of the resign (ttl {ttl:?})"))???;
    ensure!(lead_b.is_leader(), "candidate-b elected but not leading");
    ensure!(resigned_at.elapsed() < ttl / 2, "hand-over waited for the lease");
    lead_b.resign().await?;
    Ok(Outcome::Passed)
}

pub(super) async fn leader_query(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let a = ctx.store().await?;
    let b = ctx.store().await?;
    let ttl = ctx.ttl(a.as_ref()).max(Duration::from_secs(10));
    ensure!(a.leader().await?.is_none(), "a fresh cluster has no leader");
    let lead_a = a.campaign("candidate-a", ttl).await?;
    ensure!(b.leader().await?.as_deref() == Some("candidate-a"), "leader() must name candidate-a");
    let waiting = spawn_campaign(b.clone(), "candidate-b", ttl);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(a.leader().await?.as_deref() == Some("candidate-a"), "a waiting candidate must not be named");
    lead_a.resign().await?;
    let lead_b =
        tokio::time::timeout(Duration::from_secs(10), waiting).await.context("candidate-b not elected")???;
    eventually(Duration::from_secs(5), "leader() to name candidate-b", || async {
        Ok((a.leader().await?.as_deref() == Some("candidate-b")).then_some(()))
    })
    .await?;
    lead_b.resign().await?;
    eventually(Duration::from_secs(5), "leader() to be empty after the last resign", || async {
        Ok(a.leader().await?.is_none().then_some(()))
    })
    .await?;
    Ok(Outcome::Passed)
}

fn spawn_campaign(
    store: Arc<dyn Store>,
    candidate: &'static str,
    ttl: Duration,
) -> tokio::task::JoinHandle<anyhow::Result<stolon_store::Leadership>> {
    tokio::spawn(async move {
        match store.campaign(candidate, ttl).await {
            Ok(l) => Ok(l),
            Err(e) => bail!("{candidate} campaign failed: {e}"),
        }
    })
}
