//! What operations ask of one keeper (pure): leave PostgreSQL alone (pause), stay shut down (fenced old
//! master), or report the instance's state at once (switchover participants).

use crate::cluster::{ClusterData, SwitchoverPhase};
use crate::time::Timestamp;

/// The operations' directive for the keeper of one DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// No operation concerns this DB: plan as usual.
    None,
    /// The cluster is paused: leave PostgreSQL as it is.
    Hold,
    /// This DB is the master being switched over: shut PostgreSQL down cleanly and keep it down.
    Fence,
    /// This DB takes part in a running switchover: plan as usual and report every change at once.
    Report,
}

impl Directive {
    /// Whether the keeper must observe and publish its state at once (and often) while this holds.
    pub fn reports_fast(self) -> bool {
        matches!(self, Directive::Fence | Directive::Report)
    }
}

/// The directive for the keeper hosting `db_uid`.
pub fn directive(cd: &ClusterData, db_uid: &str, now: Timestamp) -> Directive {
    if let Some(sw) = &cd.operations.switchover {
        let involved = sw.from_db == db_uid || sw.to_db == db_uid;
        match sw.phase {
            SwitchoverPhase::Fencing if sw.from_db == db_uid => return Directive::Fence,
            SwitchoverPhase::Fencing | SwitchoverPhase::Promoting if involved => return Directive::Report,
            _ => {}
        }
    }
    if super::pause::is_paused(cd, now) {
        return Directive::Hold;
    }
    Directive::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Pause, Switchover};

    #[test]
    fn directives() {
        let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let mut cd = ClusterData::default();
        assert_eq!(directive(&cd, "a", now), Directive::None);
        cd.operations.pause = Some(Pause { since: now, until: None });
        assert_eq!(directive(&cd, "a", now), Directive::Hold);
        cd.operations.pause = None;
        let sw = Switchover { from_db: "a".into(), to_db: "b".into(), ..Switchover::default() };
        cd.operations.switchover = Some(sw.clone());
        assert_eq!(directive(&cd, "a", now), Directive::None, "scheduled: nothing yet");
        cd.operations.switchover = Some(Switchover { phase: SwitchoverPhase::Fencing, ..sw.clone() });
        assert_eq!(directive(&cd, "a", now), Directive::Fence);
        assert_eq!(directive(&cd, "b", now), Directive::Report);
        assert_eq!(directive(&cd, "c", now), Directive::None);
        cd.operations.switchover = Some(Switchover { phase: SwitchoverPhase::Promoting, ..sw });
        assert_eq!(directive(&cd, "a", now), Directive::Report);
        assert!(Directive::Fence.reports_fast() && !Directive::Hold.reports_fast());
    }
}
