//! The sentinel: the pure cluster-view decision and the election loop around it.
//!
//! The decision ([`decide`]) is a pure function: cluster data, keeper and proxy infos, the current time and
//! the leader's in-memory [`Histories`] go in; new cluster data and new histories (or a typed
//! [`DecideError`]) come out. It does no IO and draws no randomness of its own: UIDs and the initial
//! master choice come from an injected [`Entropy`]. The IO loop ([`run`]) wraps it: leader election,
//! SentinelInfo publication, reading infos, and compare-and-swap writes of the decision.
//!
//! Module map: [`health`] (keeper/DB health, timers), `assess` (DB validity and status), `init`
//! (initialization phase), `election` (master choice), [`candidacy`] (why a DB cannot be elected), `standbys`
//! (standby set), `major` (standbys only on keepers of the master's PostgreSQL major version), `sync`
//! (synchronous standbys), `sync_election` (a new master's synchronous standbys), [`proxies`] (active proxies
//! and gating), [`removed`] (removed keepers stay removed), [`decide`] (the entry points), `view` (the
//! watch-fed copies of the store a pass reads), `wake` (when a pass runs early), [`run`] (the loop), [`messages`] (its log messages, in
//! stolon's words).

mod assess;
pub mod candidacy;
mod clock;
pub mod decide;
pub(crate) mod election;
mod entropy;
mod error;
pub mod health;
mod init;
mod major;
pub mod messages;
mod model_ext;
pub mod proxies;
pub mod removed;
pub mod run;
mod standbys;
mod sync;
mod sync_election;
mod view;
mod wake;

pub use candidacy::Rejection;
pub use clock::{MonoClock, MonoTime, Now};
pub use decide::{Decision, decide, update_cluster};
pub use entropy::{Entropy, OsEntropy, SequentialUids};
pub use error::DecideError;
pub use health::{ConvergenceMark, Histories, KeeperInfoSeen, ProxyInfoSeen, update_keepers_status};
pub use model_ext::{FAKE_STANDBY_NAME, NOT_INCREASING_XLOGPOS_LIMIT, wal_segment_name_no_timeline};
pub use proxies::active_proxies;
pub use removed::{Screened, screen_keeper_infos};
pub use run::{ELECTION_TTL, KUBERNETES_ELECTION_TTL, Sentinel, SentinelConfig, SentinelStats, election_ttl_for};
pub use sync_election::awaiting_sync_confirmation;
