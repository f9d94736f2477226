//! What the keeper publishes after observing its instance. A PostgreSQL that is down (no postmaster, its
//! socket gone, a connection refused or an error) is reported unhealthy at once; one that only answers
//! slowly (a query or connection timing out, as on a loaded machine) keeps its last healthy state for a
//! grace period, the spec's `failInterval`, so that a slow observation is not a failover: the sentinel
//! declares a master whose PostgreSQL reports unhealthy failed at its next pass, but a keeper that stops
//! reporting only after `failInterval`. An instance that stays slow for longer is reported unhealthy, as a
//! dead one is, and nothing older than the grace is ever republished.

use std::time::Duration;

use crate::cluster::PostgresState;
use crate::postgres::PgError;

/// How an observation of the local instance failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No answer in time: the instance may be alive but slow.
    Slow,
    /// Not running, refusing, or answering with an error.
    Down,
}

/// The kind of `e`: timeouts (of a query, of a connection, of `psql`'s connection) are [`Failure::Slow`],
/// everything else [`Failure::Down`].
pub fn classify(e: &PgError) -> Failure {
    match e {
        PgError::Timeout(_) => Failure::Slow,
        PgError::Query { source, .. } if timed_out(source) => Failure::Slow,
        PgError::Command { output, .. } if output.contains("timeout expired") => Failure::Slow,
        _ => Failure::Down,
    }
}

fn timed_out(e: &tokio_postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// What to publish after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The new observation (complete, or incomplete because the instance is down).
    Fresh,
    /// The last healthy state, the instance being only slow within the grace period.
    LastHealthy,
}

/// The report after an observation that failed with `failure` (`None`: it did not fail), when the last
/// healthy observation of the same DB was `since_healthy` ago (`None`: none), with `grace` the spec's
/// `failInterval`.
pub fn report(failure: Option<Failure>, since_healthy: Option<Duration>, grace: Duration) -> Report {
    match (failure, since_healthy) {
        (Some(Failure::Slow), Some(age)) if age < grace => Report::LastHealthy,
        _ => Report::Fresh,
    }
}

/// The last healthy state as republished for `fresh` (the failed observation): the same DB, with the
/// identity fields (generation, addresses, restart marker) of the new one. `None` when it was of another DB.
pub fn republished(last_healthy: &PostgresState, fresh: &PostgresState) -> Option<PostgresState> {
    (last_healthy.uid == fresh.uid && last_healthy.healthy).then(|| PostgresState {
        generation: fresh.generation,
        listen_address: fresh.listen_address.clone(),
        port: fresh.port.clone(),
        restarted_for: fresh.restarted_for.clone(),
        ..last_healthy.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(4);

    #[test]
    fn timeouts_are_slow_and_everything_else_is_down() {
        assert_eq!(classify(&PgError::Timeout("query ping after 3s".into())), Failure::Slow);
        let psql =
            |output: &str| PgError::Command { program: "psql".into(), status: "2".into(), output: output.into() };
        assert_eq!(classify(&psql("connection to server on socket ... failed: timeout expired")), Failure::Slow);
        assert_eq!(
            classify(&psql("connection to server on socket ... failed: No such file or directory")),
            Failure::Down
        );
        assert_eq!(classify(&PgError::State("postgres is not running".into())), Failure::Down);
    }

    #[test]
    fn a_slow_instance_keeps_its_last_healthy_state_within_the_grace_only() {
        assert_eq!(report(Some(Failure::Slow), Some(Duration::from_secs(1)), GRACE), Report::LastHealthy);
        assert_eq!(report(Some(Failure::Slow), Some(GRACE), GRACE), Report::Fresh, "grace over: unhealthy");
        assert_eq!(report(Some(Failure::Slow), None, GRACE), Report::Fresh, "never healthy: nothing to keep");
    }

    #[test]
    fn a_down_instance_and_a_complete_observation_are_reported_as_they_are() {
        assert_eq!(report(Some(Failure::Down), Some(Duration::ZERO), GRACE), Report::Fresh);
        assert_eq!(report(None, Some(Duration::from_secs(60)), GRACE), Report::Fresh);
        assert_eq!(report(None, None, GRACE), Report::Fresh);
    }

    #[test]
    fn the_republished_state_is_the_same_dbs_with_the_new_identity() {
        let last = PostgresState {
            uid: "a".into(),
            generation: 3,
            healthy: true,
            x_log_pos: 100,
            timeline_id: 2,
            ..Default::default()
        };
        let fresh = PostgresState { uid: "a".into(), generation: 4, port: "5433".into(), ..Default::default() };
        let r = republished(&last, &fresh).expect("same DB");
        assert_eq!((r.generation, r.port.as_str(), r.x_log_pos, r.timeline_id, r.healthy), (4, "5433", 100, 2, true));
        let other = PostgresState { uid: "b".into(), ..fresh.clone() };
        assert_eq!(republished(&last, &other), None, "another DB: nothing to republish");
        let unhealthy = PostgresState { healthy: false, ..last };
        assert_eq!(republished(&unhealthy, &fresh), None);
    }
}
