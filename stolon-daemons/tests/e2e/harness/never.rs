//! "Must not happen" checks: a probe polled for a period must never observe the event, and must have
//! observed something. A probe error is no observation: a check whose every probe failed saw nothing and
//! fails instead of passing by default.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// How often the probe runs.
const POLL: Duration = Duration::from_millis(250);

/// The tally of a check's probes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Probes {
    /// Probes that answered "did not happen".
    pub observed: u32,
    /// Probes that failed (an error, or no answer within the period).
    pub errors: u32,
    /// The last failure.
    pub last_error: Option<String>,
}

impl Probes {
    /// Records a failed probe.
    pub fn error(&mut self, e: String) {
        self.errors += 1;
        self.last_error = Some(e);
    }
}

/// The verdict once the period is over without the event: an error when no probe observed anything.
pub fn verdict(what: &str, period: Duration, probes: &Probes) -> anyhow::Result<()> {
    if probes.observed > 0 {
        return Ok(());
    }
    let last = probes.last_error.as_deref().unwrap_or("no probe ran");
    Err(anyhow!(
        "could not check that {what} never happens: none of {} probes in {period:?} answered (last error: {last})",
        probes.errors
    ))
}

/// Checks that `probe` never yields `true` during `period`: the error of the first violation, or of a
/// check that observed nothing (every probe failed; see [`verdict`]). Each probe is bounded by what is
/// left of the period (at least one poll interval).
pub async fn never<F, Fut>(what: &str, period: Duration, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    let mut probes = Probes::default();
    while start.elapsed() < period {
        match tokio::time::timeout(period.saturating_sub(start.elapsed()).max(POLL), probe()).await {
            Ok(Ok(true)) => return Err(anyhow!("{what} happened after {:?}", start.elapsed())),
            Ok(Ok(false)) => probes.observed += 1,
            Ok(Err(e)) => probes.error(format!("{e:#}")),
            Err(_) => probes.error("the probe did not answer within the period".to_string()),
        }
        tokio::time::sleep(POLL).await;
    }
    verdict(what, period, &probes)
}
