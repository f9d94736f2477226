//! Default values of the cluster spec, `ClusterSpec::with_defaults` and defaulted accessors.

use std::time::Duration;

use super::enums::{ClusterInitMode, ClusterRole, SuReplAccessMode};
use super::spec::{ClusterSpec, PgParameters};
use crate::duration::GoDuration;

/// Default values applied to unset spec fields (stolon 0.17's, except `MAX_STANDBY_LAG`).
pub mod defaults {
    use crate::duration::GoDuration;

    /// `sleepInterval`: 5s.
    pub const SLEEP_INTERVAL: GoDuration = GoDuration::from_secs(5);
    /// `requestTimeout`: 10s.
    pub const REQUEST_TIMEOUT: GoDuration = GoDuration::from_secs(10);
    /// `convergenceTimeout`: 30s.
    pub const CONVERGENCE_TIMEOUT: GoDuration = GoDuration::from_secs(30);
    /// `initTimeout`: 5m.
    pub const INIT_TIMEOUT: GoDuration = GoDuration::from_mins(5);
    /// `syncTimeout`: 0 (wait forever).
    pub const SYNC_TIMEOUT: GoDuration = GoDuration::ZERO;
    /// `dbWaitReadyTimeout`: 60s.
    pub const DB_WAIT_READY_TIMEOUT: GoDuration = GoDuration::from_secs(60);
    /// `failInterval`: 20s.
    pub const FAIL_INTERVAL: GoDuration = GoDuration::from_secs(20);
    /// `deadKeeperRemovalInterval`: 48h.
    pub const DEAD_KEEPER_REMOVAL_INTERVAL: GoDuration = GoDuration::from_hours(48);
    /// `proxyCheckInterval`: 5s.
    pub const PROXY_CHECK_INTERVAL: GoDuration = GoDuration::from_secs(5);
    /// `proxyTimeout`: 15s.
    pub const PROXY_TIMEOUT: GoDuration = GoDuration::from_secs(15);
    /// `maxStandbys`: 20.
    pub const MAX_STANDBYS: u16 = 20;
    /// `maxStandbysPerSender`: 3.
    pub const MAX_STANDBYS_PER_SENDER: u16 = 3;
    /// `maxStandbyLag`: 1 MiB (1048576 bytes).
    ///
    /// Deliberate fix: stolon's code computes `1024 * 1204` (1232896 bytes), a typo of the 1 MiB its
    /// documentation promises (reference §10 item 6). Only specs that leave the field unset differ.
    pub const MAX_STANDBY_LAG: u32 = 1024 * 1024;
    /// `synchronousReplication`: false.
    pub const SYNCHRONOUS_REPLICATION: bool = false;
    /// `minSynchronousStandbys`: 1.
    pub const MIN_SYNCHRONOUS_STANDBYS: u16 = 1;
    /// `maxSynchronousStandbys`: 1.
    pub const MAX_SYNCHRONOUS_STANDBYS: u16 = 1;
    /// `additionalWalSenders`: 5.
    pub const ADDITIONAL_WAL_SENDERS: u16 = 5;
    /// `usePgrewind`: false.
    pub const USE_PGREWIND: bool = false;
    /// `mergePgParameters`: true.
    pub const MERGE_PG_PARAMETERS: bool = true;
    /// `automaticPgRestart`: false.
    pub const AUTOMATIC_PG_RESTART: bool = false;
}

macro_rules! duration_accessors {
    ($($(#[$doc:meta])* $name:ident => $default:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            /// Defaulted; negative values (rejected by validation) read as zero.
            pub fn $name(&self) -> Duration {
                self.$name.unwrap_or(defaults::$default).to_std_saturating()
            }
        )+
    };
}

macro_rules! value_accessors {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => $default:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> $ty {
                self.$name.unwrap_or(defaults::$default)
            }
        )+
    };
}

impl ClusterSpec {
    /// A copy with every defaultable field filled (`initMode` and the config sub-objects, which have
    /// no default, are left as they are). Defaults are never written back to the store.
    pub fn with_defaults(&self) -> ClusterSpec {
        let mut s = self.clone();
        let set_d = |f: &mut Option<GoDuration>, d: GoDuration| {
            f.get_or_insert(d);
        };
        set_d(&mut s.sleep_interval, defaults::SLEEP_INTERVAL);
        set_d(&mut s.request_timeout, defaults::REQUEST_TIMEOUT);
        set_d(&mut s.convergence_timeout, defaults::CONVERGENCE_TIMEOUT);
        set_d(&mut s.init_timeout, defaults::INIT_TIMEOUT);
        set_d(&mut s.sync_timeout, defaults::SYNC_TIMEOUT);
        set_d(&mut s.db_wait_ready_timeout, defaults::DB_WAIT_READY_TIMEOUT);
        set_d(&mut s.fail_interval, defaults::FAIL_INTERVAL);
        set_d(&mut s.dead_keeper_removal_interval, defaults::DEAD_KEEPER_REMOVAL_INTERVAL);
        set_d(&mut s.proxy_check_interval, defaults::PROXY_CHECK_INTERVAL);
        set_d(&mut s.proxy_timeout, defaults::PROXY_TIMEOUT);
        s.max_standbys.get_or_insert(defaults::MAX_STANDBYS);
        s.max_standbys_per_sender.get_or_insert(defaults::MAX_STANDBYS_PER_SENDER);
        s.max_standby_lag.get_or_insert(defaults::MAX_STANDBY_LAG);
        s.synchronous_replication.get_or_insert(defaults::SYNCHRONOUS_REPLICATION);
        s.use_pgrewind.get_or_insert(defaults::USE_PGREWIND);
        s.min_synchronous_standbys.get_or_insert(defaults::MIN_SYNCHRONOUS_STANDBYS);
        s.max_synchronous_standbys.get_or_insert(defaults::MAX_SYNCHRONOUS_STANDBYS);
        s.additional_wal_senders.get_or_insert(defaults::ADDITIONAL_WAL_SENDERS);
        s.merge_pg_parameters.get_or_insert(defaults::MERGE_PG_PARAMETERS);
        s.default_su_repl_access_mode.get_or_insert(SuReplAccessMode::All);
        s.role.get_or_insert(ClusterRole::Master);
        s.automatic_pg_restart.get_or_insert(defaults::AUTOMATIC_PG_RESTART);
        s
    }

    duration_accessors! {
        /// `sleepInterval`.
        sleep_interval => SLEEP_INTERVAL,
        /// `requestTimeout`.
        request_timeout => REQUEST_TIMEOUT,
        /// `convergenceTimeout`.
        convergence_timeout => CONVERGENCE_TIMEOUT,
        /// `initTimeout`.
        init_timeout => INIT_TIMEOUT,
        /// `syncTimeout` (zero = no timeout).
        sync_timeout => SYNC_TIMEOUT,
        /// `dbWaitReadyTimeout`.
        db_wait_ready_timeout => DB_WAIT_READY_TIMEOUT,
        /// `failInterval`.
        fail_interval => FAIL_INTERVAL,
        /// `deadKeeperRemovalInterval`.
        dead_keeper_removal_interval => DEAD_KEEPER_REMOVAL_INTERVAL,
        /// `proxyCheckInterval`.
        proxy_check_interval => PROXY_CHECK_INTERVAL,
        /// `proxyTimeout`.
        proxy_timeout => PROXY_TIMEOUT,
    }

    value_accessors! {
        /// `maxStandbys`, defaulted.
        max_standbys: u16 => MAX_STANDBYS,
        /// `maxStandbysPerSender`, defaulted.
        max_standbys_per_sender: u16 => MAX_STANDBYS_PER_SENDER,
        /// `maxStandbyLag` in bytes, defaulted.
        max_standby_lag: u32 => MAX_STANDBY_LAG,
        /// `synchronousReplication`, defaulted.
        synchronous_replication: bool => SYNCHRONOUS_REPLICATION,
        /// `minSynchronousStandbys`, defaulted.
        min_synchronous_standbys: u16 => MIN_SYNCHRONOUS_STANDBYS,
        /// `maxSynchronousStandbys`, defaulted.
        max_synchronous_standbys: u16 => MAX_SYNCHRONOUS_STANDBYS,
        /// `additionalWalSenders`, defaulted.
        additional_wal_senders: u16 => ADDITIONAL_WAL_SENDERS,
        /// `usePgrewind`, defaulted.
        use_pgrewind: bool => USE_PGREWIND,
        /// `mergePgParameters`, defaulted.
        merge_pg_parameters: bool => MERGE_PG_PARAMETERS,
        /// `automaticPgRestart`, defaulted.
        automatic_pg_restart: bool => AUTOMATIC_PG_RESTART,
    }

    /// `role`, defaulted to master.
    pub fn role(&self) -> ClusterRole {
        self.role.clone().unwrap_or(ClusterRole::Master)
    }

    /// `defaultSUReplAccessMode`, defaulted to all.
    pub fn default_su_repl_access_mode(&self) -> SuReplAccessMode {
        self.default_su_repl_access_mode.clone().unwrap_or(SuReplAccessMode::All)
    }

    /// `initMode` (no default: required).
    pub fn init_mode(&self) -> Option<&ClusterInitMode> {
        self.init_mode.as_ref()
    }

    /// `pgParameters`, empty when unset.
    pub fn pg_parameters(&self) -> PgParameters {
        self.pg_parameters.clone().unwrap_or_default()
    }

    /// `additionalMasterReplicationSlots`, empty when unset.
    pub fn additional_master_replication_slots(&self) -> &[String] {
        self.additional_master_replication_slots.as_deref().unwrap_or_default()
    }

    /// Whether synchronous replication is in effect: requested and the cluster role is master.
    pub fn sync_replication_active(&self) -> bool {
        self.synchronous_replication() && self.role() == ClusterRole::Master
    }
}
