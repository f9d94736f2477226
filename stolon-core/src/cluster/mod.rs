//! The stolon cluster data model, wire-compatible with stolon 0.17.
//!
//! Everything here is plain data plus pure helpers (defaults, validation, JSON decoding); no IO.
//! JSON keys, omitted-when-empty fields and always-emitted fields follow stolon's Go structs so that a
//! document written by Go stolon is read unchanged and vice versa. Maps are [`BTreeMap`]s so that
//! output is deterministic.
//!
//! [`BTreeMap`]: std::collections::BTreeMap

mod data;
mod db;
mod enums;
mod error;
mod info;
mod keeper;
mod local_state;
mod operations;
mod proxy;
mod restart_ops;
mod serde_util;
mod spec;
mod spec_defaults;
mod spec_validate;
mod uid;

pub use data::{CURRENT_FORMAT_VERSION, Cluster, ClusterData, ClusterStatus, INITIAL_GENERATION, RemovedKeeper};
pub use db::{Db, DbSpec, DbStatus, FollowConfig, PostgresTimelineHistory};
pub use enums::{ClusterInitMode, ClusterPhase, ClusterRole, DbInitMode, DbRole, FollowType, SuReplAccessMode};
pub use error::{ModelError, decode_json};
pub use info::{KeeperInfo, PostgresBinaryVersion, PostgresState, ProxyInfo, SentinelInfo};
pub use keeper::{Keeper, KeeperSpec, KeeperStatus};
pub use local_state::{DbLocalState, KeeperLocalState};
pub use operations::{Operations, Pause, Switchover, SwitchoverPhase, SwitchoverResult, outcome};
pub use proxy::{Proxy, ProxySpec, ProxyStatus};
pub use restart_ops::{OperationResult, Reinit, ReinitPhase, Restart, RestartStep};
pub use spec::{
    ArchiveRecoverySettings, ClusterSpec, ExistingConfig, NewConfig, PgParameters, PitrConfig, RecoveryTargetSettings,
    StandbyConfig, StandbySettings,
};
pub use spec_defaults::defaults;
pub use spec_validate::{SpecError, SpecUpdateError};
pub use uid::{new_boot_uuid, new_uid};
