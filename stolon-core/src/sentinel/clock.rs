//! Time as the decision sees it: a monotonic instant for timers and a wall-clock timestamp for the
//! times written into cluster data. Both are passed in, so the decision never reads a clock.

use std::time::{Duration, Instant};

use crate::time::Timestamp;

/// A point on a monotonic clock, as time elapsed since an arbitrary origin. Plain data, so tests can
/// place timers anywhere (for example 1000 hours in the past) without touching a real clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime(Duration);

impl MonoTime {
    /// The origin.
    pub const ZERO: MonoTime = MonoTime(Duration::ZERO);

    /// The instant `d` after the origin.
    pub const fn from_duration(d: Duration) -> Self {
        MonoTime(d)
    }

    /// Time since the origin.
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// Time elapsed from `earlier` to `self` (zero when `earlier` is later).
    pub fn since(self, earlier: MonoTime) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// The instant `d` after `self` (saturating).
    pub fn after(self, d: Duration) -> MonoTime {
        MonoTime(self.0.saturating_add(d))
    }
}

/// The current time given to one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For timers (failure detection, convergence, heartbeats).
    pub mono: MonoTime,
    /// For times stored in cluster data (`changeTime`, `lastHealthyTime`, dead keeper removal).
    pub wall: Timestamp,
}

/// Reads the real clocks for the IO loop: monotonic time is measured from the clock's creation.
#[derive(Debug, Clone, Copy)]
pub struct MonoClock {
    origin: Instant,
}

impl MonoClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonoClock { origin: Instant::now() }
    }

    /// The current time on both clocks.
    pub fn now(&self) -> Now {
        Now { mono: MonoTime(self.origin.elapsed()), wall: Timestamp::now() }
    }

    /// The real instant of `t` on this clock.
    pub fn instant_of(&self, t: MonoTime) -> Instant {
        self.origin + t.0
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        MonoClock::new()
    }
}
