//! What the keeper's loops share with its HTTP API and its pod labeller: the last valid cluster data with the
//! time it was read, the local DB, and the loops' heartbeats.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cluster::ClusterData;
use crate::keeper::plan::Action;

/// The cluster data of the last successful read whose spec was valid, and when it was read.
#[derive(Debug, Clone)]
pub struct ClusterSnapshot {
    /// The cluster data.
    pub cd: Arc<ClusterData>,
    /// When the read that returned it completed.
    pub read_at: Instant,
}

/// The keeper's loops whose heartbeats `/liveness` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeeperLoop {
    /// Plans and executes a pass every `sleepInterval` and on every cluster data change.
    StateMachine,
    /// Observes PostgreSQL every `sleepInterval / 2`.
    PostgresState,
    /// Publishes the keeper info every `sleepInterval`.
    InfoPublication,
}

impl KeeperLoop {
    /// Every loop.
    pub const ALL: [KeeperLoop; 3] = [KeeperLoop::StateMachine, KeeperLoop::PostgresState, KeeperLoop::InfoPublication];

    /// The name used in `/liveness` answers.
    pub fn name(self) -> &'static str {
        match self {
            KeeperLoop::StateMachine => "state machine",
            KeeperLoop::PostgresState => "PostgreSQL observation",
            KeeperLoop::InfoPublication => "keeper info publication",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct Beat {
    last: Instant,
    open_ended: Option<(&'static str, Instant)>,
}

/// How one loop is doing, as `/liveness` judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopState {
    /// Which loop.
    pub which: KeeperLoop,
    /// Time since its last heartbeat (since the keeper started when it never beat).
    pub since_beat: Duration,
    /// An action without a fixed duration the loop is busy with (base backup, pg_rewind, initdb...), and
    /// for how long.
    pub open_ended: Option<(&'static str, Duration)>,
}

/// The state shared between the keeper's loops and its API. Cheap to read: the API reads it on every request.
#[derive(Debug)]
pub struct KeeperView {
    cluster: watch::Sender<Option<ClusterSnapshot>>,
    local_db: Mutex<String>,
    beats: Mutex<[Option<Beat>; 3]>,
    started: Instant,
}

impl Default for KeeperView {
    fn default() -> Self {
        KeeperView::new()
    }
}

impl KeeperView {
    /// A view with nothing read yet.
    pub fn new() -> KeeperView {
        KeeperView {
            cluster: watch::channel(None).0,
            local_db: Mutex::new(String::new()),
            beats: Mutex::new([None; 3]),
            started: Instant::now(),
        }
    }

    /// Records a successful read of valid cluster data, now.
    pub fn cluster_read(&self, cd: ClusterData) {
        self.cluster.send_replace(Some(ClusterSnapshot { cd: Arc::new(cd), read_at: Instant::now() }));
    }

    /// The last valid cluster data read, if any.
    pub fn cluster(&self) -> Option<ClusterSnapshot> {
        self.cluster.borrow().clone()
    }

    /// A receiver woken at every recorded read.
    pub fn subscribe(&self) -> watch::Receiver<Option<ClusterSnapshot>> {
        self.cluster.subscribe()
    }

    /// Records the DB UID the local data directory holds (the keeper's `dbstate`).
    pub fn set_local_db(&self, uid: &str) {
        if let Ok(mut db) = self.local_db.lock() {
            if *db != uid {
                *db = uid.to_string();
            }
        }
    }

    /// The DB UID the local data directory holds (empty when none).
    pub fn local_db(&self) -> String {
        self.local_db.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// A heartbeat of `which`: it started an iteration now. Clears its open-ended action.
    pub fn beat(&self, which: KeeperLoop) {
        if let Ok(mut beats) = self.beats.lock() {
            beats[which.index()] = Some(Beat { last: Instant::now(), open_ended: None });
        }
    }

    /// Marks `which` as busy with an action of no fixed duration (`Some(name)`) or done with it (`None`).
    pub fn open_ended(&self, which: KeeperLoop, action: Option<&'static str>) {
        if let Ok(mut beats) = self.beats.lock() {
            let now = Instant::now();
            let beat = beats[which.index()].get_or_insert(Beat { last: now, open_ended: None });
            beat.open_ended = action.map(|a| (a, now));
        }
    }

    /// How every loop is doing at `now`.
    pub fn loops(&self, now: Instant) -> Vec<LoopState> {
        let beats = self.beats.lock().map(|b| *b).unwrap_or([None; 3]);
        KeeperLoop::ALL
            .iter()
            .map(|&which| {
                let beat = beats[which.index()];
                LoopState {
                    which,
                    since_beat: now.saturating_duration_since(beat.map_or(self.started, |b| b.last)),
                    open_ended: beat
                        .and_then(|b| b.open_ended)
                        .map(|(name, since)| (name, now.saturating_duration_since(since))),
                }
            })
            .collect()
    }
}

/// The `/liveness` verdict: every loop beat within `bound`, or is busy with an open-ended action.
pub fn liveness(loops: &[LoopState], bound: Duration) -> Result<(), String> {
    for l in loops {
        if l.open_ended.is_none() && l.since_beat > bound {
            return Err(format!(
                "the keeper's {} loop has not started an iteration for {:.1}s (bound {:.0}s)",
                l.which.name(),
                l.since_beat.as_secs_f64(),
                bound.as_secs_f64()
            ));
        }
    }
    Ok(())
}

/// The first action of a pass whose duration depends on PostgreSQL and on the data size rather than on the
/// configured timeouts (initdb, restore, base backup or pg_rewind, start, promote, restart, waits for
/// readiness or for the end of recovery): while the state machine runs one, `/liveness` does not time it.
pub fn open_ended_action(actions: &[Action]) -> Option<&'static str> {
    actions.iter().find_map(|a| match a {
        Action::Initdb { .. } => Some("initdb"),
        Action::RestoreBackup { .. } => Some("backup restore"),
        Action::Resync(_) => Some("resynchronisation (pg_rewind or base backup)"),
        Action::Start { .. } => Some("PostgreSQL start"),
        Action::Restart { .. } => Some("PostgreSQL restart"),
        Action::Promote { .. } => Some("promotion"),
        Action::WaitReady { .. } => Some("wait for PostgreSQL to accept connections"),
        Action::WaitRecoveryEnd { .. } => Some("wait for the end of archive recovery"),
        _ => None,
    })
}

/// The liveness bound: four times (`sleepInterval` + `requestTimeout`), the longest a loop iteration takes
/// when every request it makes times out, several times over.
pub fn liveness_bound(sleep_interval: Duration, request_timeout: Duration) -> Duration {
    4 * (sleep_interval + request_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(which: KeeperLoop, secs: u64, open: Option<&'static str>) -> LoopState {
        LoopState { which, since_beat: Duration::from_secs(secs), open_ended: open.map(|a| (a, Duration::ZERO)) }
    }

    #[test]
    fn liveness_needs_every_loop_or_an_open_ended_action() {
        let bound = liveness_bound(Duration::from_secs(5), Duration::from_secs(10));
        assert_eq!(bound, Duration::from_secs(60));
        let ok: Vec<_> = KeeperLoop::ALL.iter().map(|&l| state(l, 59, None)).collect();
        assert_eq!(liveness(&ok, bound), Ok(()));
        let mut stuck = ok.clone();
        stuck[1].since_beat = Duration::from_secs(61);
        let e = liveness(&stuck, bound).unwrap_err();
        assert!(e.contains("PostgreSQL observation") && e.contains("61.0s"), "{e}");
        stuck[1] = state(KeeperLoop::PostgresState, 600, Some("base backup"));
        assert_eq!(liveness(&stuck, bound), Ok(()));
    }

    #[test]
    fn open_ended_actions() {
        assert_eq!(open_ended_action(&[Action::StopPostgres, Action::CreateRoles]), None);
        let wait = Action::WaitReady { timeout: None };
        assert_eq!(
            open_ended_action(&[Action::StopPostgres, wait, Action::CreateRoles]),
            Some("wait for PostgreSQL to accept connections")
        );
    }

    #[test]
    fn view_records_reads_beats_and_actions() {
        let v = KeeperView::new();
        assert!(v.cluster().is_none());
        let rx = v.subscribe();
        v.cluster_read(ClusterData::default());
        assert!(rx.has_changed().unwrap());
        assert!(v.cluster().unwrap().read_at.elapsed() < Duration::from_secs(5));
        v.set_local_db("d1");
        assert_eq!(v.local_db(), "d1");
        let later = Instant::now() + Duration::from_secs(100);
        let loops = v.loops(later);
        assert!(loops.iter().all(|l| l.since_beat >= Duration::from_secs(100) && l.open_ended.is_none()));
        v.beat(KeeperLoop::StateMachine);
        v.open_ended(KeeperLoop::StateMachine, Some("base backup"));
        let loops = v.loops(later);
        assert_eq!(loops[0].open_ended.map(|(a, _)| a), Some("base backup"));
        v.beat(KeeperLoop::StateMachine);
        assert_eq!(v.loops(Instant::now())[0].open_ended, None);
    }
}
