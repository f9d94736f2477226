//! End-to-end scenarios (being ported from stolon's integration catalogue; see tests/e2e/harness).

#[path = "e2e/harness/mod.rs"]
mod harness;

fn main() {
    harness::runner::run(Vec::new());
}
