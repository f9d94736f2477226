//! The sentinel's operator-visible log messages, worded exactly as stolon 0.17's sentinel logs them:
//! operators match these lines in their log searches and alerts, so the words are an interface (structured
//! fields may differ). Every message is listed in docs/log-messages.md; tests assert each one as emitted.

// Start, leadership and the pass around the decision.

/// The sentinel's UID at start.
pub const SENTINEL_UID: &str = "sentinel uid";
/// Campaigning for leadership.
pub const TRYING_TO_ACQUIRE_LEADERSHIP: &str = "Trying to acquire sentinels leadership";
/// Elected.
pub const LEADERSHIP_ACQUIRED: &str = "sentinel leadership acquired";
/// No longer the leader.
pub const LEADERSHIP_LOST: &str = "sentinel leadership lost";
/// The election failed.
pub const ELECTION_LOOP_ERROR: &str = "election loop error";
/// Stopping on a signal.
pub const STOPPING: &str = "stopping stolon sentinel";
/// The cluster data cannot be read.
pub const CANNOT_READ_CLUSTER_DATA: &str = "error retrieving cluster data";
/// The cluster data has another format version.
pub const UNSUPPORTED_FORMAT_VERSION: &str = "unsupported clusterdata format version";
/// The cluster spec does not validate.
pub const CLUSTER_DATA_INVALID: &str = "clusterdata validation failed";
/// No cluster data and no initial spec.
pub const NO_CLUSTER_DATA: &str = "no cluster data available, waiting for it to appear";
/// Creating the cluster data from `--initial-cluster-spec`.
pub const WRITING_INITIAL_CLUSTER_DATA: &str = "writing initial cluster data";
/// The initial cluster data cannot be written.
pub const CANNOT_SAVE_INITIAL_CLUSTER_DATA: &str = "error saving cluster data";
/// The sentinel info cannot be published.
pub const CANNOT_UPDATE_SENTINEL_INFO: &str = "cannot update sentinel info";
/// The keeper infos cannot be read.
pub const CANNOT_GET_KEEPERS_INFO: &str = "cannot get keepers info";
/// The proxy infos cannot be read.
pub const CANNOT_GET_PROXIES_INFO: &str = "failed to get proxies info";
/// The decision failed.
pub const CANNOT_UPDATE_CLUSTER_DATA: &str = "failed to update cluster data";
/// The decision cannot be written.
pub const CANNOT_SAVE_CLUSTER_DATA: &str = "error saving clusterdata";

// Initialization.

/// Choosing the keeper of the initial master (modes new and pitr).
pub const TRYING_TO_FIND_INITIAL_MASTER: &str = "trying to find initial master";
/// The initial master's keeper (mode new).
pub const INITIALIZING_CLUSTER: &str = "initializing cluster";
/// The keeper named by `existingConfig` (mode existing).
pub const TRYING_TO_USE_KEEPER_AS_INITIAL_MASTER: &str = "trying to use keeper as initial master";
/// The initial master's keeper (modes existing and pitr).
pub const INITIALIZING_CLUSTER_WITH_KEEPER: &str = "initializing cluster using selected keeper as master db owner";
/// The initial master DB is ready: phase normal.
pub const DB_INITIALIZED: &str = "db initialized";
/// The initial master DB is not ready yet.
pub const WAITING_FOR_DB: &str = "waiting for db";
/// The initial master DB did not initialize in time: another keeper is tried.
pub const DB_FAILED_TO_INITIALIZE: &str = "db failed to initialize";

// Failure detection and election.

/// A keeper without a DB unhealthy for `deadKeeperRemovalInterval`.
pub const REMOVING_OLD_DEAD_KEEPER: &str = "removing old dead keeper";
/// The master DB failed.
pub const MASTER_DB_FAILED: &str = "master db is failed";
/// Looking for a new master.
pub const TRYING_TO_FIND_NEW_MASTER: &str = "trying to find a new master to replace failed master";
/// No DB can be elected.
pub const NO_ELIGIBLE_MASTERS: &str = "no eligible masters";
/// The new master.
pub const ELECTING_NEW_MASTER: &str = "electing db as the new master";
/// Synchronous replication: the reported and the configured synchronous standbys have nothing in common.
pub const NO_COMMON_SYNC_STANDBYS: &str = "cannot choose synchronous standby since there are no common elements \
     between the latest master reported synchronous standbys and the db spec ones";
/// Synchronous replication: none of the confirmed synchronous standbys can be elected.
pub const NO_ELECTABLE_SYNC_STANDBY: &str = "cannot choose synchronous standby since there's not match between the \
     possible masters and the usable synchronousStandbys";

// Standbys and synchronous standbys.

/// Previous masters go once the new master is healthy and converged.
pub const REMOVING_OLD_MASTER_DB: &str = "removing old master db";
/// Another system or a diverged timeline.
pub const REMOVING_INVALID_DB: &str = "removing invalid db";
/// The master no longer has the WAL the standby needs.
pub const REMOVING_DB_THAT_CANNOT_SYNC: &str =
    "removing db that won't be able to sync due to missing wals on current master";
/// A standby that is not good, when enough are.
pub const REMOVING_NON_GOOD_STANDBY: &str = "removing non good standby";
/// A good standby over `maxStandbysPerSender`.
pub const REMOVING_GOOD_STANDBY_IN_EXCESS: &str = "removing good standby in excess";
/// A new standby DB on a free keeper.
pub const ADDED_NEW_STANDBY_DB: &str = "added new standby db";
/// A configured but unconfirmed synchronous standby is gone or not good: back to the confirmed ones.
pub const SYNC_STANDBYS_BACK_TO_CONFIRMED: &str =
    "setting the expected sync-standbys to the current known in sync sync-standbys";
/// The configured synchronous standbys are not all confirmed yet.
pub const WAITING_FOR_SYNC_STANDBYS: &str = "waiting for new defined synchronous standbys to be in sync";
/// The synchronous standby set changed.
pub const SYNC_STANDBYS_CHANGED: &str = "synchronousStandbys changed";
/// Fewer real synchronous standbys than `minSynchronousStandbys`.
pub const USING_FAKE_SYNC_STANDBY: &str =
    "using a fake synchronous standby since there are not enough real standbys available";

// Proxies.

/// A new master is published only once every active proxy acknowledged the empty target.
pub const WAITING_FOR_PROXIES: &str = "waiting for proxies to be converged to the current generation";

/// Every fixed message above (docs/log-messages.md lists each one).
pub const ALL: &[&str] = &[
    SENTINEL_UID,
    TRYING_TO_ACQUIRE_LEADERSHIP,
    LEADERSHIP_ACQUIRED,
    LEADERSHIP_LOST,
    ELECTION_LOOP_ERROR,
    STOPPING,
    CANNOT_READ_CLUSTER_DATA,
    UNSUPPORTED_FORMAT_VERSION,
    CLUSTER_DATA_INVALID,
    NO_CLUSTER_DATA,
    WRITING_INITIAL_CLUSTER_DATA,
    CANNOT_SAVE_INITIAL_CLUSTER_DATA,
    CANNOT_UPDATE_SENTINEL_INFO,
    CANNOT_GET_KEEPERS_INFO,
    CANNOT_GET_PROXIES_INFO,
    CANNOT_UPDATE_CLUSTER_DATA,
    CANNOT_SAVE_CLUSTER_DATA,
    TRYING_TO_FIND_INITIAL_MASTER,
    INITIALIZING_CLUSTER,
    TRYING_TO_USE_KEEPER_AS_INITIAL_MASTER,
    INITIALIZING_CLUSTER_WITH_KEEPER,
    DB_INITIALIZED,
    WAITING_FOR_DB,
    DB_FAILED_TO_INITIALIZE,
    REMOVING_OLD_DEAD_KEEPER,
    MASTER_DB_FAILED,
    TRYING_TO_FIND_NEW_MASTER,
    NO_ELIGIBLE_MASTERS,
    ELECTING_NEW_MASTER,
    NO_COMMON_SYNC_STANDBYS,
    NO_ELECTABLE_SYNC_STANDBY,
    REMOVING_OLD_MASTER_DB,
    REMOVING_INVALID_DB,
    REMOVING_DB_THAT_CANNOT_SYNC,
    REMOVING_NON_GOOD_STANDBY,
    REMOVING_GOOD_STANDBY_IN_EXCESS,
    ADDED_NEW_STANDBY_DB,
    SYNC_STANDBYS_BACK_TO_CONFIRMED,
    WAITING_FOR_SYNC_STANDBYS,
    SYNC_STANDBYS_CHANGED,
    USING_FAKE_SYNC_STANDBY,
    WAITING_FOR_PROXIES,
];
