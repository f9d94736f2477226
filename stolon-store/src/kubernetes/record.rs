//! client-go's leader-election record, as its ConfigMap lock keeps it in the annotation
//! `control-plane.alpha.kubernetes.io/leader`, and the pure rules for taking, renewing and releasing it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The ConfigMap annotation holding the leader record.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// A leader-election record in client-go's JSON format (times are RFC 3339 with whole seconds, UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderRecord {
    /// The current holder; empty when released.
    #[serde(default)]
    pub holder_identity: String,
    /// How long the holder's lease lasts after each renewal, in seconds.
    #[serde(default)]
    pub lease_duration_seconds: i64,
    /// When the holder acquired leadership.
    #[serde(default)]
    pub acquire_time: Option<Time>,
    /// When the holder last renewed.
    #[serde(default)]
    pub renew_time: Option<Time>,
    /// How many times leadership changed hands.
    #[serde(default)]
    pub leader_transitions: i64,
}

impl LeaderRecord {
    /// Decodes a record; an empty annotation is an empty record.
    pub fn decode(text: &str) -> Result<LeaderRecord, serde_json::Error> {
        if text.trim().is_empty() {
            return Ok(LeaderRecord::default());
        }
        serde_json::from_str(text)
    }

    /// Encodes the record as client-go does.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The holder, if any.
    pub fn holder(&self) -> Option<&str> {
        Some(self.holder_identity.as_str()).filter(|h| !h.is_empty())
    }

    /// The lease the holder declared (at least one second).
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_duration_seconds.max(1) as u64)
    }
}

/// May `me` write itself into `record`, which it has seen unchanged for `unchanged_for` on its own clock?
/// Yes when nobody holds it, when `me` holds it, or when the holder's lease ran out without a renewal. Clocks
/// of different machines are never compared: only how long the record stayed the same, as client-go does.
pub fn may_take(record: &LeaderRecord, me: &str, unchanged_for: Duration) -> bool {
    match record.holder() {
        None => true,
        Some(h) if h == me => true,
        Some(_) => unchanged_for >= record.lease(),
    }
}

/// The record `me` writes to take or renew leadership at `now`.
pub fn taken_by(old: &LeaderRecord, me: &str, lease: Duration, now: Timestamp) -> LeaderRecord {
    let renewing = old.holder() == Some(me);
    LeaderRecord {
        holder_identity: me.to_string(),
        lease_duration_seconds: lease.as_secs().max(1) as i64,
        acquire_time: if renewing { old.acquire_time.clone().or(Some(Time(now))) } else { Some(Time(now)) },
        renew_time: Some(Time(now)),
        leader_transitions: if renewing || *old == LeaderRecord::default() {
            old.leader_transitions
        } else {
            old.leader_transitions + 1
        },
    }
}

/// The record a holder writes to release leadership at `now`, as client-go does: no holder, a one-second
/// lease, the transition count kept.
pub fn released(old: &LeaderRecord, now: Timestamp) -> LeaderRecord {
    LeaderRecord {
        holder_identity: String::new(),
        lease_duration_seconds: 1,
        acquire_time: Some(Time(now)),
        renew_time: Some(Time(now)),
        leader_transitions: old.leader_transitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn decodes_what_client_go_writes() {
        let go = r#"{"holderIdentity":"a1b2c3d4","leaseDurationSeconds":15,"acquireTime":"2024-03-01T10:00:00Z","renewTime":"2024-03-01T10:05:02Z","leaderTransitions":3}"#;
        let r = LeaderRecord::decode(go).unwrap();
        assert_eq!(r.holder(), Some("a1b2c3d4"));
        assert_eq!(r.lease(), Duration::from_secs(15));
        assert_eq!(r.leader_transitions, 3);
        assert_eq!(r.renew_time, Some(Time(at("2024-03-01T10:05:02Z"))));
        assert_eq!(r.encode(), go, "re-encoding must give client-go's exact bytes");
        // Released records and zero times (null) decode too.
        let rel = LeaderRecord::decode(r#"{"holderIdentity":"","leaseDurationSeconds":1,"acquireTime":null,"renewTime":null,"leaderTransitions":3}"#).unwrap();
        assert_eq!(rel.holder(), None);
        assert_eq!(LeaderRecord::decode("").unwrap(), LeaderRecord::default());
        assert!(LeaderRecord::decode("{not json").is_err());
    }

    #[test]
    fn takes_only_free_own_or_expired_records() {
        let held = LeaderRecord { holder_identity: "other".into(), lease_duration_seconds: 15, ..Default::default() };
        assert!(!may_take(&held, "me", Duration::from_secs(14)));
        assert!(may_take(&held, "me", Duration::from_secs(15)));
        assert!(may_take(&held, "other", Duration::ZERO));
        assert!(may_take(&LeaderRecord::default(), "me", Duration::ZERO));
        assert!(may_take(&released(&held, at("2024-01-01T00:00:00Z")), "me", Duration::ZERO));
    }

    #[test]
    fn renewal_keeps_acquire_time_and_transitions() {
        let t0 = at("2024-01-01T00:00:00Z");
        let t1 = at("2024-01-01T00:00:02Z");
        let first = taken_by(&LeaderRecord::default(), "me", Duration::from_secs(15), t0);
        assert_eq!(first.leader_transitions, 0);
        assert_eq!(first.lease_duration_seconds, 15);
        let renewed = taken_by(&first, "me", Duration::from_secs(15), t1);
        assert_eq!(renewed.acquire_time, Some(Time(t0)));
        assert_eq!(renewed.renew_time, Some(Time(t1)));
        assert_eq!(renewed.leader_transitions, 0);
        let stolen = taken_by(&renewed, "you", Duration::from_secs(15), t1);
        assert_eq!(stolen.leader_transitions, 1);
        assert_eq!(stolen.acquire_time, Some(Time(t1)));
        let after_release = taken_by(&released(&stolen, t1), "me", Duration::from_secs(15), t1);
        assert_eq!(after_release.leader_transitions, 2);
        assert!(first.encode().contains(r#""acquireTime":"2024-01-01T00:00:00Z""#), "{}", first.encode());
    }
}
