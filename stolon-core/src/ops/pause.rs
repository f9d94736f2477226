//! Pause (`stolonctl pause [--for D]` / `resume`): while paused, the sentinel keeps observing and
//! publishing health but decides nothing, and keepers leave PostgreSQL as it is.

use crate::cluster::ClusterData;
use crate::time::Timestamp;

/// Whether the cluster is paused at `now` (a pause whose `until` has passed is over).
pub fn is_paused(cd: &ClusterData, now: Timestamp) -> bool {
    cd.operations.pause.as_ref().is_some_and(|p| p.until.is_none_or(|u| now < u))
}

/// Removes a pause whose `until` has passed; true when it did.
pub fn expire(cd: &mut ClusterData, now: Timestamp) -> bool {
    let expired = cd.operations.pause.as_ref().is_some_and(|p| p.until.is_some_and(|u| now >= u));
    if expired {
        tracing::info!("pause expired: the cluster is managed again");
        cd.operations.pause = None;
    }
    expired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Pause;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn a_pause_with_an_end_expires_on_its_own() {
        let mut cd = ClusterData::default();
        let now = at("2026-01-01T00:00:00Z");
        assert!(!is_paused(&cd, now));
        cd.operations.pause = Some(Pause { since: now, until: None });
        assert!(is_paused(&cd, at("2030-01-01T00:00:00Z")));
        assert!(!expire(&mut cd, at("2030-01-01T00:00:00Z")));
        cd.operations.pause = Some(Pause { since: now, until: Some(at("2026-01-01T00:01:00Z")) });
        assert!(is_paused(&cd, at("2026-01-01T00:00:59Z")));
        assert!(!is_paused(&cd, at("2026-01-01T00:01:00Z")));
        assert!(expire(&mut cd, at("2026-01-01T00:01:00Z")));
        assert!(cd.operations.pause.is_none());
    }
}
