//! When a member record's refresh must reach the store: the rule every backend follows to keep records alive
//! with as few requests as the contract allows.
//!
//! A member record expires `ttl` after its last renewal (lease keep-alive, session renewal, TTL refresh). Its
//! owner calls [`crate::Store::set_member`] at its own pace (a keeper every `sleepInterval`, with a TTL of at
//! least 20 s). A call renews only when the lease would otherwise keep less than a third of its TTL at the
//! owner's next call, expected one owner period later (the time since the previous call, or half the
//! previous estimate when that is longer, so that a burst of calls does not shrink it at once); it rewrites the
//! value only when the value changed, or when the same value was last written [`REWRITE_UNCHANGED`] ago
//! (so that a record removed behind the owner's back comes back). A record therefore still expires at most
//! `ttl` after its owner's last call, and never while the owner calls at a steady pace shorter than the TTL.

use std::time::Duration;

use tokio::time::Instant;

/// How often a record whose value does not change is written again anyway.
pub const REWRITE_UNCHANGED: Duration = Duration::from_secs(60);

/// What a refresh must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshPlan {
    /// Renew the lease (or session, or TTL).
    pub(crate) renew: bool,
    /// Write the value.
    pub(crate) write: bool,
}

/// What was last sent for one member record this client publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    /// The value last written.
    pub(crate) value: Vec<u8>,
    /// The lifetime the record was given (lease TTL, session TTL, key TTL).
    pub(crate) ttl: Duration,
    /// When the last acknowledged renewal (or the write that created the lease) was sent.
    pub(crate) renewed: Instant,
    /// When the value was last written.
    pub(crate) written: Instant,
    /// When the owner last called `set_member` for this record.
    pub(crate) called: Instant,
    /// The owner's expected period between calls.
    pub(crate) period: Duration,
}

impl Published {
    /// A record just written with `value` and a fresh lifetime `ttl`, the request sent at `sent`.
    pub(crate) fn new(value: &[u8], ttl: Duration, sent: Instant) -> Published {
        Published { value: value.to_vec(), ttl, renewed: sent, written: sent, called: sent, period: Duration::ZERO }
    }

    /// What a call at `now` publishing `value` must send. Records the call.
    pub(crate) fn plan(&mut self, value: &[u8], now: Instant) -> RefreshPlan {
        self.period = now.saturating_duration_since(self.called).max(self.period / 2);
        self.called = now;
        let since_renewal = now.saturating_duration_since(self.renewed);
        RefreshPlan {
            renew: since_renewal + self.period > self.ttl * 2 / 3,
            write: self.value != value || now.saturating_duration_since(self.written) >= REWRITE_UNCHANGED,
        }
    }

    /// Records a renewal sent at `sent` and acknowledged.
    pub(crate) fn renewed(&mut self, sent: Instant) {
        self.renewed = sent;
    }

    /// Records a write of `value` sent at `sent`.
    pub(crate) fn written(&mut self, value: &[u8], sent: Instant) {
        self.value = value.to_vec();
        self.written = sent;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls every `period` for `calls` calls with `value_of(i)`; returns the renewals and writes sent.
    fn simulate(ttl: Duration, period: Duration, calls: u32, value_of: impl Fn(u32) -> Vec<u8>) -> (u32, u32) {
        let t0 = Instant::now();
        let mut p = Published::new(&value_of(0), ttl, t0);
        let (mut renewals, mut writes) = (0, 0);
        let mut longest_gap = Duration::ZERO;
        for i in 1..=calls {
            let now = t0 + period * i;
            let plan = p.plan(&value_of(i), now);
            // Before the call's own renewal: the record must still be alive.
            assert!(now < p.renewed + ttl, "record expired before call {i}");
            longest_gap = longest_gap.max(now - p.renewed);
            if plan.renew {
                renewals += 1;
                p.renewed(now);
            }
            if plan.write {
                writes += 1;
                p.written(&value_of(i), now);
            }
        }
        assert!(longest_gap <= ttl * 2 / 3 + period, "gap {longest_gap:?}");
        (renewals, writes)
    }

    #[test]
    fn a_keeper_renews_every_other_call_and_writes_each_new_value() {
        // sleepInterval 5 s, TTL 20 s, a new infoUID each time: one minute = 12 calls.
        let (renewals, writes) =
            simulate(Duration::from_secs(20), Duration::from_secs(5), 12, |i| i.to_string().into_bytes());
        assert_eq!((renewals, writes), (6, 12));
    }

    #[test]
    fn an_unchanged_value_is_rewritten_once_a_minute() {
        let (renewals, writes) = simulate(Duration::from_secs(20), Duration::from_secs(5), 24, |_| b"same".to_vec());
        assert_eq!((renewals, writes), (12, 2));
    }

    #[test]
    fn a_longer_ttl_needs_fewer_renewals() {
        // A proxy: check interval 5 s, TTL 2 x 15 s.
        let (renewals, _) = simulate(Duration::from_secs(30), Duration::from_secs(5), 12, |_| Vec::new());
        assert_eq!(renewals, 3);
    }

    #[test]
    fn slow_callers_renew_on_every_call() {
        for period in [7, 10, 15, 19] {
            let (renewals, _) = simulate(Duration::from_secs(20), Duration::from_secs(period), 10, |_| Vec::new());
            assert_eq!(renewals, 10, "period {period}");
        }
    }

    #[test]
    fn jitter_does_not_double_the_renewals() {
        let ttl = Duration::from_secs(20);
        let t0 = Instant::now();
        let mut p = Published::new(b"v", ttl, t0);
        let mut renewals = 0;
        let mut now = t0;
        for i in 0..12u64 {
            now += Duration::from_millis(5_000 + (i * 37) % 90);
            if p.plan(b"v", now).renew {
                renewals += 1;
                p.renewed(now);
            }
        }
        assert_eq!(renewals, 6);
    }

    #[test]
    fn a_burst_of_calls_after_a_pause_renews_once() {
        let ttl = Duration::from_secs(20);
        let t0 = Instant::now();
        let mut p = Published::new(b"v", ttl, t0);
        let late = t0 + Duration::from_secs(14);
        assert!(p.plan(b"v", late).renew, "14 s after the renewal with a 14 s period");
        p.renewed(late);
        assert!(!p.plan(b"v", late + Duration::from_millis(100)).renew);
        assert!(!p.plan(b"w", late + Duration::from_millis(200)).renew);
    }

    #[test]
    fn a_burst_does_not_stretch_the_next_gap_past_the_ttl() {
        // Steady 5 s calls, a burst of two urgent calls 100 ms apart, then 5 s calls again.
        let ttl = Duration::from_secs(20);
        let t0 = Instant::now();
        let mut p = Published::new(b"v", ttl, t0);
        let mut at = t0;
        let mut steps = vec![5_000u64; 3];
        steps.extend([4_800, 100, 100]);
        steps.extend([5_000; 6]);
        for step in steps {
            at += Duration::from_millis(step);
            assert!(at - p.renewed <= ttl - Duration::from_secs(3), "only {:?} left", ttl - (at - p.renewed));
            if p.plan(b"v", at).renew {
                p.renewed(at);
            }
        }
    }
}
