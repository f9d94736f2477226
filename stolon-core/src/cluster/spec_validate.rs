//! Validation of a cluster spec (the seven rules of reference §2.3) and of spec updates.

use super::enums::{ClusterInitMode, ClusterRole, SuReplAccessMode};
use super::spec::ClusterSpec;
use crate::duration::GoDuration;

/// Why a cluster spec is invalid. Each message names the JSON field and the rule broken;
/// [`SpecError::rule`] gives the rule number of reference §2.3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Rule 1: a duration is negative.
    #[error("{field} ({value}) must not be negative")]
    NegativeDuration {
        /// JSON field name.
        field: &'static str,
        /// The offending value.
        value: GoDuration,
    },
    /// Rule 2: `proxyCheckInterval` is not strictly lower than `proxyTimeout`.
    #[error("proxyCheckInterval ({check}) must be lower than proxyTimeout ({timeout})")]
    ProxyCheckIntervalNotLower {
        /// Defaulted `proxyCheckInterval`.
        check: GoDuration,
        /// Defaulted `proxyTimeout`.
        timeout: GoDuration,
    },
    /// Rule 3: a count that must be at least 1 is 0.
    #[error("{field} ({value}) must be at least 1")]
    CountTooLow {
        /// JSON field name.
        field: &'static str,
        /// The offending value.
        value: u16,
    },
    /// Rule 3: `maxSynchronousStandbys` < `minSynchronousStandbys`.
    #[error("maxSynchronousStandbys ({max}) must be greater than or equal to minSynchronousStandbys ({min})")]
    MaxSyncBelowMinSync {
        /// Defaulted `maxSynchronousStandbys`.
        max: u16,
        /// Defaulted `minSynchronousStandbys`.
        min: u16,
    },
    /// Rule 4: `initMode` is not set.
    #[error("initMode is required")]
    InitModeMissing,
    /// Rule 4: an `additionalMasterReplicationSlots` entry is not `^[a-z0-9_]+$`.
    #[error("additionalMasterReplicationSlots entry {0:?} must match ^[a-z0-9_]+$")]
    InvalidReplicationSlotName(String),
    /// Rule 4: an `additionalMasterReplicationSlots` entry uses the reserved `stolon_` prefix.
    #[error("additionalMasterReplicationSlots entry {0:?} must not start with the reserved prefix stolon_")]
    ReservedReplicationSlotName(String),
    /// Rule 5: a `pgHBA` entry contains a newline.
    #[error("pgHBA entry {index} must not contain a newline character")]
    PgHbaNewline {
        /// Position of the entry in `pgHBA`.
        index: usize,
    },
    /// Rule 6: `initMode` `new` with role standby.
    #[error("role must not be standby when initMode is new")]
    StandbyRoleWithNewInitMode,
    /// Rule 6: `initMode` `existing` without `existingConfig`.
    #[error("existingConfig is required when initMode is existing")]
    ExistingConfigMissing,
    /// Rule 6: `initMode` `existing` with an empty `existingConfig.keeperUID`.
    #[error("existingConfig.keeperUID must not be empty when initMode is existing")]
    ExistingKeeperUidMissing,
    /// Rule 6: `initMode` `pitr` without `pitrConfig`.
    #[error("pitrConfig is required when initMode is pitr")]
    PitrConfigMissing,
    /// Rule 6: `initMode` `pitr` with an empty `pitrConfig.dataRestoreCommand`.
    #[error("pitrConfig.dataRestoreCommand must not be empty when initMode is pitr")]
    PitrDataRestoreCommandMissing,
    /// Rule 6: `pitrConfig.recoveryTargetSettings` set while role is standby.
    #[error("pitrConfig.recoveryTargetSettings must not be set when role is standby")]
    RecoveryTargetWithStandbyRole,
    /// Rule 6: `initMode` is not new, existing or pitr.
    #[error("initMode {0:?} is unknown (expected new, existing or pitr)")]
    UnknownInitMode(String),
    /// Rule 7: `defaultSUReplAccessMode` is not all or strict.
    #[error("defaultSUReplAccessMode {0:?} is unknown (expected all or strict)")]
    UnknownSuReplAccessMode(String),
    /// Rule 7: `role` is not master or standby.
    #[error("role {0:?} is unknown (expected master or standby)")]
    UnknownRole(String),
    /// Rule 7: role standby without `standbyConfig`.
    #[error("standbyConfig is required when role is standby")]
    StandbyConfigMissing,
}

impl SpecError {
    /// The number (1 to 7) of the rule of reference §2.3 this error breaks.
    pub fn rule(&self) -> u8 {
        use SpecError::*;
        match self {
            NegativeDuration { .. } => 1,
            ProxyCheckIntervalNotLower { .. } => 2,
            CountTooLow { .. } | MaxSyncBelowMinSync { .. } => 3,
            InitModeMissing | InvalidReplicationSlotName(_) | ReservedReplicationSlotName(_) => 4,
            PgHbaNewline { .. } => 5,
            StandbyRoleWithNewInitMode
            | ExistingConfigMissing
            | ExistingKeeperUidMissing
            | PitrConfigMissing
            | PitrDataRestoreCommandMissing
            | RecoveryTargetWithStandbyRole
            | UnknownInitMode(_) => 6,
            UnknownSuReplAccessMode(_) | UnknownRole(_) | StandbyConfigMissing => 7,
        }
    }
}

/// Why a spec update is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecUpdateError {
    /// The new spec does not validate.
    #[error("invalid cluster spec: {0}")]
    Invalid(#[from] SpecError),
    /// `initMode` differs from the current one.
    #[error("initMode cannot be changed (from {old} to {new})")]
    InitModeChanged {
        /// Current `initMode` (`<unset>` when missing).
        old: String,
        /// Requested `initMode`.
        new: String,
    },
    /// `role` would go from master to standby.
    #[error("role cannot be changed from master to standby")]
    MasterToStandby,
}

/// A replication slot name PostgreSQL and stolon accept: `^[a-z0-9_]+$`.
fn is_valid_slot_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl ClusterSpec {
    /// Applies the seven rules of reference §2.3 to the defaulted spec, stopping at the first failure.
    ///
    /// `minSynchronousStandbys` may be 0 (reference §2.3: no fake standby, the primary never blocks).
    pub fn validate(&self) -> Result<(), SpecError> {
        let s = self.with_defaults();
        check_durations(&s)?;
        let check = s.proxy_check_interval.unwrap_or_default();
        let timeout = s.proxy_timeout.unwrap_or_default();
        if check >= timeout {
            return Err(SpecError::ProxyCheckIntervalNotLower { check, timeout });
        }
        for (field, value) in [
            ("maxStandbys", s.max_standbys()),
            ("maxStandbysPerSender", s.max_standbys_per_sender()),
            ("maxSynchronousStandbys", s.max_synchronous_standbys()),
        ] {
            if value < 1 {
                return Err(SpecError::CountTooLow { field, value });
            }
        }
        let (max, min) = (s.max_synchronous_standbys(), s.min_synchronous_standbys());
        if max < min {
            return Err(SpecError::MaxSyncBelowMinSync { max, min });
        }
        let Some(init_mode) = s.init_mode.as_ref() else {
            return Err(SpecError::InitModeMissing);
        };
        for slot in s.additional_master_replication_slots() {
            if !is_valid_slot_name(slot) {
                return Err(SpecError::InvalidReplicationSlotName(slot.clone()));
            }
            if slot.starts_with("stolon_") {
                return Err(SpecError::ReservedReplicationSlotName(slot.clone()));
            }
        }
        if let Some(index) = s.pg_hba.iter().flatten().position(|e| e.contains('\n')) {
            return Err(SpecError::PgHbaNewline { index });
        }
        check_init_mode(&s, init_mode)?;
        if let SuReplAccessMode::Unknown(v) = s.default_su_repl_access_mode() {
            return Err(SpecError::UnknownSuReplAccessMode(v));
        }
        match s.role() {
            ClusterRole::Master => Ok(()),
            ClusterRole::Standby if s.standby_config.is_none() => Err(SpecError::StandbyConfigMissing),
            ClusterRole::Standby => Ok(()),
            ClusterRole::Unknown(v) => Err(SpecError::UnknownRole(v)),
        }
    }

    /// Checks that `new` may replace `old` (stolonctl update/promote): `new` validates, `initMode` is
    /// unchanged, and the role does not go from master to standby (standby to master is allowed).
    pub fn check_update(old: &ClusterSpec, new: &ClusterSpec) -> Result<(), SpecUpdateError> {
        new.validate()?;
        if old.init_mode != new.init_mode {
            let show = |m: &Option<ClusterInitMode>| m.as_ref().map_or("<unset>".to_string(), |m| m.to_string());
            return Err(SpecUpdateError::InitModeChanged { old: show(&old.init_mode), new: show(&new.init_mode) });
        }
        if old.role() == ClusterRole::Master && new.role() == ClusterRole::Standby {
            return Err(SpecUpdateError::MasterToStandby);
        }
        Ok(())
    }
}

/// Rule 1 over the defaulted spec.
fn check_durations(s: &ClusterSpec) -> Result<(), SpecError> {
    let fields = [
        ("sleepInterval", s.sleep_interval),
        ("requestTimeout", s.request_timeout),
        ("convergenceTimeout", s.convergence_timeout),
        ("initTimeout", s.init_timeout),
        ("syncTimeout", s.sync_timeout),
        ("dbWaitReadyTimeout", s.db_wait_ready_timeout),
        ("failInterval", s.fail_interval),
        ("deadKeeperRemovalInterval", s.dead_keeper_removal_interval),
        ("proxyCheckInterval", s.proxy_check_interval),
        ("proxyTimeout", s.proxy_timeout),
    ];
    for (field, value) in fields {
        if let Some(value) = value.filter(GoDuration::is_negative) {
            return Err(SpecError::NegativeDuration { field, value });
        }
    }
    Ok(())
}

/// Rule 6 over the defaulted spec.
fn check_init_mode(s: &ClusterSpec, init_mode: &ClusterInitMode) -> Result<(), SpecError> {
    let standby = s.role() == ClusterRole::Standby;
    match init_mode {
        ClusterInitMode::New if standby => Err(SpecError::StandbyRoleWithNewInitMode),
        ClusterInitMode::New => Ok(()),
        ClusterInitMode::Existing => match &s.existing_config {
            None => Err(SpecError::ExistingConfigMissing),
            Some(c) if c.keeper_uid.is_empty() => Err(SpecError::ExistingKeeperUidMissing),
            Some(_) => Ok(()),
        },
        ClusterInitMode::Pitr => match &s.pitr_config {
            None => Err(SpecError::PitrConfigMissing),
            Some(c) if c.data_restore_command.is_empty() => Err(SpecError::PitrDataRestoreCommandMissing),
            Some(c) if c.recovery_target_settings.is_some() && standby => Err(SpecError::RecoveryTargetWithStandbyRole),
            Some(_) => Ok(()),
        },
        ClusterInitMode::Unknown(v) => Err(SpecError::UnknownInitMode(v.clone())),
    }
}
