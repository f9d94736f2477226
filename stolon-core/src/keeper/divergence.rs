//! Whether data left by pg_rewind can stream from the DB it must follow. pg_rewind compares timelines
//! only: on the same timeline it answers "no rewind required" even when the local WAL goes further than
//! the source's (an old master of a standby cluster, or any instance that outran the DB elected after it
//! without a timeline switch). Such data can never stream from the source (it asks for WAL the source does
//! not have, or whose records differ: "invalid record length", "incorrect prev-link"), so the resync
//! takes a base backup at once instead of waiting for the not-ready fallback.
//!
//! On an earlier timeline pg_rewind judges the local WAL by its end as `pg_control` records it (the last
//! checkpoint, or a standby's minimum recovery point, which is where its replay stood). A standby that
//! received WAL past the point where the source left its timeline but had not replayed it gets "no rewind
//! required" too, and replays that WAL as soon as it starts ("new timeline forked off current database
//! system timeline before current recovery point"). [`fork_point`] says where to look for such WAL.

use std::fmt;

use crate::cluster::PostgresTimelineHistory;

/// A point of a WAL history: a timeline and a position reached on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPoint {
    /// Timeline.
    pub timeline: u64,
    /// Position (bytes).
    pub pos: u64,
}

/// Why local data cannot follow its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// The local data is on a later timeline than the source.
    LaterTimeline {
        /// Local timeline.
        local: u64,
        /// Source timeline.
        source: u64,
    },
    /// Same timeline, and the local WAL already reaches beyond the source's position.
    AheadOnSameTimeline {
        /// Position the local WAL reaches.
        local: u64,
        /// Source's current position.
        source: u64,
    },
    /// An earlier timeline of the source's history, and the local WAL holds a record at or after the point
    /// where the source left that timeline.
    PastForkPoint {
        /// Local timeline.
        timeline: u64,
        /// Where the source's history leaves it.
        fork: u64,
    },
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Divergence::LaterTimeline { local, source } => {
                write!(f, "local timeline {local} is later than the source's timeline {source}")
            }
            Divergence::AheadOnSameTimeline { local, source } => write!(
                f,
                "on the source's timeline the local WAL reaches {} beyond the source's position {}",
                lsn(*local),
                lsn(*source)
            ),
            Divergence::PastForkPoint { timeline, fork } => write!(
                f,
                "the local WAL of timeline {timeline} goes past {}, where the source's timeline history leaves it",
                lsn(*fork)
            ),
        }
    }
}

fn lsn(pos: u64) -> String {
    format!("{:X}/{:X}", pos >> 32, pos & 0xffff_ffff)
}

/// The divergence of `local` (what the stopped data reaches) from `source` (the followed DB's current
/// position), if any. Earlier timelines are pg_rewind's business (it rewinds them) and are not judged here.
pub fn divergence(local: WalPoint, source: WalPoint) -> Option<Divergence> {
    if local.timeline > source.timeline {
        return Some(Divergence::LaterTimeline { local: local.timeline, source: source.timeline });
    }
    if local.timeline == source.timeline && local.pos > source.pos {
        return Some(Divergence::AheadOnSameTimeline { local: local.pos, source: source.pos });
    }
    None
}

/// Where the source's history leaves the local timeline, when the local data is on an earlier timeline
/// of the source's (`history`: the source's timeline history, one entry per ended timeline). Local WAL at
/// or after that point diverged from the source; whether there is any is for the caller to read.
pub fn fork_point(local_timeline: u64, source_timeline: u64, history: &[PostgresTimelineHistory]) -> Option<u64> {
    if local_timeline >= source_timeline {
        return None;
    }
    history.iter().find(|h| h.timeline_id == local_timeline).map(|h| h.switch_point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(timeline: u64, pos: u64) -> WalPoint {
        WalPoint { timeline, pos }
    }

    #[test]
    fn ahead_on_the_same_timeline_or_on_a_later_one_diverges() {
        assert_eq!(
            divergence(p(1, 0x500_0060), p(1, 0x300_0000)),
            Some(Divergence::AheadOnSameTimeline { local: 0x500_0060, source: 0x300_0000 })
        );
        assert_eq!(divergence(p(3, 1), p(2, 100)), Some(Divergence::LaterTimeline { local: 3, source: 2 }));
        assert_eq!(
            divergence(p(1, 0x1_0500_0060), p(1, 0x1_0300_0000)).unwrap().to_string(),
            "on the source's timeline the local WAL reaches 1/5000060 beyond the source's position 1/3000000"
        );
    }

    #[test]
    fn behind_or_equal_on_the_same_timeline_and_earlier_timelines_can_follow() {
        assert_eq!(divergence(p(1, 100), p(1, 100)), None);
        assert_eq!(divergence(p(1, 99), p(1, 100)), None);
        assert_eq!(divergence(p(1, 1000), p(2, 100)), None, "an earlier timeline is rewound, not judged here");
    }

    #[test]
    fn the_fork_point_is_where_the_source_left_an_earlier_local_timeline() {
        let h =
            |timeline_id, switch_point| PostgresTimelineHistory { timeline_id, switch_point, reason: String::new() };
        let history = [h(1, 0x702_1a70), h(2, 0x900_0000)];
        assert_eq!(fork_point(1, 3, &history), Some(0x702_1a70));
        assert_eq!(fork_point(2, 3, &history), Some(0x900_0000));
        assert_eq!(fork_point(3, 3, &history), None, "same timeline: AheadOnSameTimeline's case");
        assert_eq!(fork_point(4, 3, &history), None, "later timeline: LaterTimeline's case");
        assert_eq!(fork_point(1, 2, &[]), None, "no history reported: nothing to compare");
        assert_eq!(
            Divergence::PastForkPoint { timeline: 1, fork: 0x702_1a70 }.to_string(),
            "the local WAL of timeline 1 goes past 0/7021A70, where the source's timeline history leaves it"
        );
    }
}
