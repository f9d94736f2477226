//! Why the decision refused to produce new cluster data. Every error means "write nothing this pass".

use crate::cluster::SpecError;

/// A decision that cannot be made from the given cluster data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The cluster data uses a format this version does not understand.
    #[error("unsupported clusterdata format version {0}")]
    UnsupportedFormatVersion(u64),
    /// The stored cluster spec does not validate.
    #[error("invalid cluster spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// No keeper can host the initial master.
    #[error("cannot choose initial master: {0}")]
    NoInitialMaster(&'static str),
    /// initMode existing names a keeper the sentinel has not seen.
    #[error("keeper {0:?} state not available")]
    ExistingKeeperMissing(String),
    /// `cluster.status.master` names a DB that is not in the cluster data.
    #[error("master db {0:?} is not in the cluster data")]
    MasterDbMissing(String),
    /// The cluster phase is neither initializing nor normal.
    #[error("unknown cluster phase {0:?}")]
    UnknownPhase(String),
    /// The cluster init mode is neither new, existing nor pitr.
    #[error("unknown init mode {0:?}")]
    UnknownInitMode(String),
    /// A DB has a role the sentinel cannot classify (neither master nor standby).
    #[error("db {db:?} has role {role:?}, expected master or standby")]
    InvalidDbRole {
        /// DB UID.
        db: String,
        /// The role found.
        role: String,
    },
}
