//! The keeper's operator-visible log messages, worded exactly as stolon 0.17's keeper logs them: operators
//! match these lines in their log searches and alerts, so the words are an interface (structured fields may
//! differ). Every message is listed in docs/log-messages.md; tests assert each one as emitted.

use std::path::Path;

use super::plan::Action;

// Start-up: data directory, lock, keeper UID, advertised address.

/// `--data-dir` is missing.
pub const DATA_DIR_REQUIRED: &str = "data dir required";
/// The lock on `<data-dir>/lock` was taken.
pub const DATA_DIR_LOCKED: &str = "exclusive lock on data dir taken";
/// A new keeper UID was generated.
pub const UID_GENERATED: &str = "uid generated";
/// The keeper UID in use.
pub const KEEPER_UID: &str = "keeper uid";

/// `<data-dir>` cannot be created.
pub fn cannot_create_data_dir(err: &dyn std::fmt::Display) -> String {
    format!("cannot create data dir: {err}")
}

/// The lock on `<data-dir>/lock` cannot be taken (another keeper runs on this data directory).
pub fn data_dir_lock_failed(lock_file: &Path, err: &dyn std::fmt::Display) -> String {
    format!("cannot take exclusive lock on data dir {:?}: {err}", lock_file.display().to_string())
}

/// `--uid` has characters a replication slot name cannot have.
pub fn invalid_uid(uid: &str) -> String {
    format!(
        "keeper uid {uid:?} not valid. It can contain only lower-case letters, numbers and the underscore character"
    )
}

/// `--uid` differs from the UID saved in `keeperstate`.
pub fn saved_uid_differs(saved: &str, configured: &str) -> String {
    format!("saved uid {saved:?} differs from configuration uid: {configured:?}")
}

/// The advertised address (`flag` is `pg-advertise-address`, or `pg-listen-address` when it stands in) is a
/// host name.
pub fn advertise_address_is_hostname(flag: &str, address: &str) -> String {
    format!(
        "provided --{flag} {address:?}: is not an ip address but a hostname. This will be advertized to the other \
         components and may have undefined behaviors if resolved differently by other hosts"
    )
}

/// The advertised address is a loopback address.
pub fn advertise_address_is_loopback(flag: &str, address: &str) -> String {
    format!(
        "provided --{flag} {address:?} is a loopback ip. This will be advertized to the other components and \
         communication will fail if they are on different hosts"
    )
}

// Start-up: credentials and password files.

/// Replication user auth method is neither md5 nor trust.
pub const REPL_AUTH_METHOD_INVALID: &str = "--pg-repl-auth-method must be one of: md5, trust";
/// Superuser auth method is neither md5 nor trust (stolon's wording lists `password`, which it refuses too).
pub const SU_AUTH_METHOD_INVALID: &str = "--pg-su-auth-method must be one of: md5, password, trust";
/// `--pg-repl-username` is missing.
pub const REPL_USERNAME_REQUIRED: &str = "--pg-repl-username is required";
/// `--pg-listen-address` is missing.
pub const LISTEN_ADDRESS_REQUIRED: &str = "--pg-listen-address is required";
/// Replication with trust auth.
pub const REPL_TRUST_DANGEROUS: &str = "not utilizing a password for replication between hosts is extremely dangerous";
/// Superuser with trust auth.
pub const SU_TRUST_DANGEROUS: &str = "not utilizing a password for superuser is extremely dangerous";
/// Trust auth with a replication password.
pub const REPL_TRUST_WITH_PASSWORD: &str =
    "can not utilize --pg-repl-auth-method trust together with --pg-repl-password or --pg-repl-passwordfile";
/// Trust auth with a superuser password.
pub const SU_TRUST_WITH_PASSWORD: &str =
    "can not utilize --pg-su-auth-method trust together with --pg-su-password or --pg-su-passwordfile";
/// No replication password given.
pub const REPL_PASSWORD_REQUIRED: &str = "one of --pg-repl-password or --pg-repl-passwordfile is required";
/// Both replication password flags given.
pub const REPL_PASSWORD_TWICE: &str = "only one of --pg-repl-password or --pg-repl-passwordfile must be provided";
/// No superuser password given.
pub const SU_PASSWORD_REQUIRED: &str = "one of --pg-su-password or --pg-su-passwordfile is required";
/// Both superuser password flags given.
pub const SU_PASSWORD_TWICE: &str = "only one of --pg-su-password or --pg-su-passwordfile must be provided";
/// A password file readable by others than its owner.
pub const PASSWORD_FILE_TOO_OPEN: &str = "password file permissions are too open. This file should only be readable to the user executing stolon! \
     Continuing...";
/// The superuser password ends with CR/LF.
pub const SU_PASSWORD_TRAILING_NEWLINE: &str = "superuser password contain trailing new line, removing";
/// The superuser password was only CR/LF.
pub const SU_PASSWORD_EMPTY_AFTER_TRIM: &str = "superuser password is empty after removing trailing new line";
/// The replication password ends with CR/LF.
pub const REPL_PASSWORD_TRAILING_NEWLINE: &str = "replication user password contain trailing new line, removing";
/// The replication password was only CR/LF.
pub const REPL_PASSWORD_EMPTY_AFTER_TRIM: &str = "replication user password is empty after removing trailing new line";
/// Superuser and replication user are the same user.
pub const SAME_USERS: &str = "superuser name and replication user name are the same. Different users are suggested.";
/// ... with different auth methods.
pub const SAME_USERS_AUTH_DIFFERS: &str =
    "do not support different auth methods when utilizing superuser for replication.";
/// ... with different passwords.
pub const SAME_USERS_PASSWORD_DIFFERS: &str =
    "provided superuser name and replication user name are the same but provided passwords are different";

/// A password file cannot be read (`superuser` or replication user).
pub fn cannot_read_password(superuser: bool, file: &str, err: &dyn std::fmt::Display) -> String {
    let who = if superuser { "pg superuser" } else { "pg replication user" };
    format!("cannot read {who} password: unable to read password from file {file}: {err}")
}

// The state machine (one pass).

/// No cluster data in the store.
pub const NO_CLUSTER_DATA: &str = "no cluster data available, waiting for it to appear";
/// The cluster data has another format version.
pub const UNSUPPORTED_FORMAT_VERSION: &str = "unsupported clusterdata format version";
/// The cluster spec does not validate.
pub const CLUSTER_DATA_INVALID: &str = "clusterdata validation failed";
/// This keeper is not in the cluster data yet.
pub const KEEPER_NOT_IN_CLUSTER_DATA: &str = "our keeper data is not available, waiting for it to appear";
/// No DB is assigned to this keeper.
pub const NO_DB_ASSIGNED: &str = "no db assigned";
/// The cluster data does not carry this process's boot UUID yet: PostgreSQL is kept stopped.
pub const BOOT_UUID_DIFFERS: &str =
    "our db boot UID is different than the cluster data one, waiting for it to be updated";
/// A previous initialization or resync did not finish: its data is removed.
pub const DB_FAILED_TO_INITIALIZE: &str = "db failed to initialize or resync";
/// The local DB is not the assigned one.
pub const DB_UID_DIFFERS: &str = "current db UID different than cluster data db UID";
/// initdb of a new DB.
pub const INITIALIZING: &str = "initializing the database cluster";
/// Point-in-time recovery of a new DB.
pub const RESTORING: &str = "restoring the database cluster";
/// Resync of a new standby DB.
pub const RESYNCING: &str = "resyncing the database cluster";
/// Another local DB and init mode none: the keeper's files were lost.
pub const INIT_MODE_NONE_WITH_OTHER_DB: &str = "different local dbUID but init mode is none, this shouldn't happen. \
     Something bad happened to the keeper data. Check that keeper data is on a persistent volume and that the \
     keeper state files weren't removed";
/// The local data directory is not initialised.
pub const NOT_INITIALIZED: &str = "database cluster not initialized";
/// Master role asked of a data directory that is not initialised.
pub const NOT_INITIALIZED_BUT_MASTER: &str =
    "database cluster not initialized but requested role is master. This shouldn't happen!";
/// Target role master.
pub const ROLE_MASTER: &str = "our db requested role is master";
/// A standby is promoted.
pub const PROMOTING: &str = "promoting to master";
/// Already a primary.
pub const ALREADY_MASTER: &str = "already master";
/// Target role standby.
pub const ROLE_STANDBY: &str = "our db requested role is standby";
/// A primary is never turned into a standby.
pub const MASTER_TO_STANDBY: &str = "cannot move from master role to standby role";
/// Already a standby.
pub const ALREADY_STANDBY: &str = "already standby";
/// A standby restarts with new recovery parameters.
pub const RECOVERY_PARAMETERS_CHANGED: &str = "recovery parameters changed, restarting postgres instance";
/// A restarted synchronous primary serves only internal users.
pub const CLIENTS_BLOCKED_INSTANCE_WAS_DOWN: &str =
    "not allowing connection as normal users since synchronous replication is enabled and instance was down";
/// ... until its synchronous standbys are in sync.
pub const CLIENTS_BLOCKED_UNTIL_SYNCED: &str = "not allowing connection as normal users since synchronous \
     replication is enabled, instance was down and not all sync standbys are synced";
/// `synchronous_standby_names` changes.
pub const SYNC_STANDBY_NAMES_CHANGED: &str = "needed synchronous_standby_names changed";
/// Parameters change: reload.
pub const PARAMETERS_CHANGED: &str = "postgres parameters changed, reloading postgres instance";
/// Parameters unchanged.
pub const PARAMETERS_NOT_CHANGED: &str = "postgres parameters not changed";
/// pg_hba changes: reload.
pub const HBA_CHANGED: &str = "postgres hba entries changed, reloading postgres instance";
/// pg_hba unchanged.
pub const HBA_NOT_CHANGED: &str = "postgres hba entries not changed";
/// A pending restart is applied (`automaticPgRestart`).
pub const RESTARTING: &str = "restarting postgres";

// Resync and replication slots.

/// pg_rewind from the master.
pub const SYNCING_WITH_PG_REWIND: &str = "syncing using pg_rewind";
/// Base backup from the followed DB.
pub const SYNCING_FROM_FOLLOWED: &str = "syncing from followed db";
/// Resync done.
pub const SYNC_SUCCEEDED: &str = "sync succeeded";
/// pg_rewind failed.
pub const PG_REWIND_FAILED: &str = "error syncing with pg_rewind";
/// The rewound standby does not become ready: full resync.
pub const REWOUND_NOT_ACCEPTING: &str = "pg_rewinded standby is not accepting connection. it's probably waiting \
     for unavailable wals. Forcing a full resync";
/// A slot is dropped.
pub const DROPPING_SLOT: &str = "dropping replication slot";
/// A slot cannot be dropped.
pub const DROP_SLOT_FAILED: &str = "failed to drop replication slot";
/// A slot is created.
pub const CREATING_SLOT: &str = "creating replication slot";
/// Slots cannot be updated.
pub const UPDATE_SLOTS_FAILED: &str = "error updating replication slots";

// The PostgreSQL instance (stolon's postgresql manager).

/// Before `pg_ctl start`.
pub const STARTING_DATABASE: &str = "starting database";
/// Before `pg_ctl stop`.
pub const STOPPING_DATABASE: &str = "stopping database";
/// Before `pg_ctl reload`.
pub const RELOADING_DATABASE: &str = "reloading database configuration";
/// Before `pg_ctl promote`.
pub const PROMOTING_DATABASE: &str = "promoting database";
/// Before initdb's roles (superuser password, replication role).
pub const SETTING_ROLES: &str = "setting roles";

/// Every fixed message above (docs/log-messages.md lists each one).
pub const ALL: &[&str] = &[
    DATA_DIR_REQUIRED,
    DATA_DIR_LOCKED,
    UID_GENERATED,
    KEEPER_UID,
    REPL_AUTH_METHOD_INVALID,
    SU_AUTH_METHOD_INVALID,
    REPL_USERNAME_REQUIRED,
    LISTEN_ADDRESS_REQUIRED,
    REPL_TRUST_DANGEROUS,
    SU_TRUST_DANGEROUS,
    REPL_TRUST_WITH_PASSWORD,
    SU_TRUST_WITH_PASSWORD,
    REPL_PASSWORD_REQUIRED,
    REPL_PASSWORD_TWICE,
    SU_PASSWORD_REQUIRED,
    SU_PASSWORD_TWICE,
    SU_PASSWORD_TRAILING_NEWLINE,
    SU_PASSWORD_EMPTY_AFTER_TRIM,
    REPL_PASSWORD_TRAILING_NEWLINE,
    REPL_PASSWORD_EMPTY_AFTER_TRIM,
    SAME_USERS,
    SAME_USERS_AUTH_DIFFERS,
    SAME_USERS_PASSWORD_DIFFERS,
    PASSWORD_FILE_TOO_OPEN,
    NO_CLUSTER_DATA,
    UNSUPPORTED_FORMAT_VERSION,
    CLUSTER_DATA_INVALID,
    KEEPER_NOT_IN_CLUSTER_DATA,
    NO_DB_ASSIGNED,
    BOOT_UUID_DIFFERS,
    DB_FAILED_TO_INITIALIZE,
    DB_UID_DIFFERS,
    INITIALIZING,
    INIT_MODE_NONE_WITH_OTHER_DB,
    RESTORING,
    RESYNCING,
    NOT_INITIALIZED,
    NOT_INITIALIZED_BUT_MASTER,
    ROLE_MASTER,
    PROMOTING,
    ALREADY_MASTER,
    ROLE_STANDBY,
    MASTER_TO_STANDBY,
    ALREADY_STANDBY,
    RECOVERY_PARAMETERS_CHANGED,
    CLIENTS_BLOCKED_INSTANCE_WAS_DOWN,
    CLIENTS_BLOCKED_UNTIL_SYNCED,
    SYNC_STANDBY_NAMES_CHANGED,
    PARAMETERS_CHANGED,
    PARAMETERS_NOT_CHANGED,
    HBA_CHANGED,
    HBA_NOT_CHANGED,
    RESTARTING,
    SYNCING_WITH_PG_REWIND,
    SYNCING_FROM_FOLLOWED,
    SYNC_SUCCEEDED,
    REWOUND_NOT_ACCEPTING,
    PG_REWIND_FAILED,
    DROPPING_SLOT,
    DROP_SLOT_FAILED,
    CREATING_SLOT,
    UPDATE_SLOTS_FAILED,
    STARTING_DATABASE,
    STOPPING_DATABASE,
    RELOADING_DATABASE,
    PROMOTING_DATABASE,
    SETTING_ROLES,
];

/// The stolon message logged (at error, with the error) when `action` fails, for the actions stolon names.
pub fn failure_of(action: &Action) -> Option<&'static str> {
    Some(match action {
        Action::StopPostgres => "failed to stop pg instance",
        Action::RemovePgdata => "failed to remove the postgres data dir",
        Action::Initdb { .. } => "failed to initialize postgres database cluster",
        Action::RestoreBackup { .. } => "failed to restore postgres database cluster",
        Action::Start { temporary: true, .. } => "failed to start instance",
        Action::Start { temporary: false, .. } => "failed to start postgres",
        Action::WaitReady { .. } => "timeout waiting for instance to be ready",
        Action::WaitRecoveryEnd { .. } => "recovery not finished",
        Action::CaptureInitParameters => "failed to retrieve postgres parameters",
        Action::CreateRoles => "failed to setup roles",
        Action::Resync(_) => "failed to resync from followed instance",
        Action::Promote { .. } => "failed to promote instance",
        Action::Restart { .. } => "failed to restart postgres instance",
        Action::Reload { .. } | Action::Repoint { .. } => "failed to reload postgres instance",
        Action::CheckPendingRestart { automatic: true, .. } => "failed to restart postgres instance",
        Action::SaveDbState(_) | Action::MarkInitialized | Action::SaveGeneration(_) => "failed to save db local state",
        Action::RefreshSlots { .. } => UPDATE_SLOTS_FAILED,
        Action::SetRestrictedHba(_)
        | Action::CheckPendingRestart { automatic: false, .. }
        | Action::CheckpointAfterPromotion
        | Action::ReleaseSyncWaiters { .. } => return None,
    })
}
