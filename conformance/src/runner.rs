//! Running cases and reporting one line per case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::StoreFactory;
use crate::cases::{self, Case, Outcome};

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// The case name.
    pub name: &'static str,
    /// Passed, skipped (with reason) or failed (with the error).
    pub outcome: Result<Outcome, String>,
    /// How long it ran.
    pub took: Duration,
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases that could not run in this setting.
    pub skipped: usize,
}

impl Summary {
    /// The closing line: `N passed, N failed, N skipped`.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped)
    }
}

/// The cases whose name contains `pattern` (all when `None`).
pub fn select(pattern: Option<&str>) -> Vec<Case> {
    cases::all().into_iter().filter(|c| pattern.is_none_or(|p| c.name.contains(p))).collect()
}

/// Runs `cases` concurrently (at most `parallel` at a time), calling `report` as each one ends.
pub async fn run(
    factory: Arc<dyn StoreFactory>,
    cases: Vec<Case>,
    parallel: usize,
    mut report: impl FnMut(&CaseResult),
) -> Summary {
    use futures::StreamExt;
    let mut summary = Summary::default();
    let mut results = futures::stream::iter(cases.into_iter().map(|case| {
        let factory = factory.clone();
        async move {
            let start = Instant::now();
            let outcome = case.run(factory).await.map_err(|e| format!("{e:#}"));
            CaseResult { name: case.name, outcome, took: start.elapsed() }
        }
    }))
    .buffer_unordered(parallel.max(1));
    while let Some(r) = results.next().await {
        match &r.outcome {
            Ok(Outcome::Passed) => summary.passed += 1,
            Ok(Outcome::Skipped(_)) => summary.skipped += 1,
            Err(_) => summary.failed += 1,
        }
        report(&r);
    }
    summary
}

/// One human line for a case result.
pub fn describe(r: &CaseResult) -> String {
    let secs = r.took.as_secs_f64();
    match &r.outcome {
        Ok(Outcome::Passed) => format!("ok      {:<28} {secs:6.2}s", r.name),
        Ok(Outcome::Skipped(why)) => format!("skipped {:<28} {secs:6.2}s  {why}", r.name),
        Err(e) => format!("FAILED  {:<28} {secs:6.2}s  {e}", r.name),
    }
}
