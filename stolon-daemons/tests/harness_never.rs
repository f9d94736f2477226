//! The e2e harness's `never()` check: it fails on the event and when it observed nothing (every probe
//! errored), and passes only on real "did not happen" answers.

#[path = "e2e/harness/never.rs"]
mod never;

use std::time::Duration;

use anyhow::anyhow;
use never::{Probes, never, verdict};

const PERIOD: Duration = Duration::from_millis(600);

#[test]
fn a_check_whose_probes_all_failed_observed_nothing_and_fails() {
    let mut p = Probes::default();
    p.error("connection refused".into());
    p.error("connection refused".into());
    let e = verdict("x elected", PERIOD, &p).unwrap_err().to_string();
    assert!(e.contains("none of 2 probes") && e.contains("connection refused"), "{e}");
    assert!(verdict("x elected", PERIOD, &Probes::default()).is_err(), "no probe at all observed nothing either");
}

#[test]
fn one_observation_is_a_check() {
    let p = Probes { observed: 1, errors: 5, last_error: Some("timeout".into()) };
    assert!(verdict("x elected", PERIOD, &p).is_ok());
}

#[tokio::test]
async fn never_fails_on_errors_only_on_the_event_and_passes_on_observations() {
    let only_errors = never("x", PERIOD, || async { Err::<bool, _>(anyhow!("down")) }).await;
    assert!(only_errors.unwrap_err().to_string().contains("could not check"));

    let event = never("x", PERIOD, || async { Ok(true) }).await;
    assert!(event.unwrap_err().to_string().contains("x happened"));

    assert!(never("x", PERIOD, || async { Ok(false) }).await.is_ok());

    let hanging = never("x", PERIOD, || async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(false)
    });
    let r = tokio::time::timeout(Duration::from_secs(5), hanging).await.expect("bounded by the period");
    assert!(r.unwrap_err().to_string().contains("did not answer"));
}
