//! ClusterSpec defaults, the seven validation rules of reference §2.3 and the spec update rules.

use std::time::Duration;

use stolon_core::cluster::{
    ClusterInitMode, ClusterRole, ClusterSpec, ExistingConfig, PitrConfig, RecoveryTargetSettings, SpecError,
    SpecUpdateError, StandbyConfig, StandbySettings, SuReplAccessMode, defaults,
};
use stolon_core::duration::GoDuration;

fn spec(json: &str) -> ClusterSpec {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("spec {json}: {e}"))
}

fn new_spec() -> ClusterSpec {
    ClusterSpec { init_mode: Some(ClusterInitMode::New), ..ClusterSpec::default() }
}

fn standby_config() -> StandbyConfig {
    StandbyConfig {
        standby_settings: Some(StandbySettings {
            primary_conninfo: "host=primary port=5432".into(),
            ..StandbySettings::default()
        }),
        archive_recovery_settings: None,
    }
}

/// Asserts `s` is rejected with `want`, under rule `rule`, and that the message contains `needles`.
fn rejected(s: &ClusterSpec, want: SpecError, rule: u8, needles: &[&str]) {
    let err = s.validate().expect_err("spec must be rejected");
    assert_eq!(err, want);
    assert_eq!(err.rule(), rule, "rule number of {err}");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} should contain {n:?}");
    }
}

// ---------------------------------------------------------------- defaults

#[test]
fn default_sleep_interval() {
    assert_eq!(new_spec().with_defaults().sleep_interval, Some(GoDuration::from_secs(5)));
    assert_eq!(new_spec().sleep_interval(), Duration::from_secs(5));
}

#[test]
fn default_request_timeout() {
    assert_eq!(new_spec().with_defaults().request_timeout, Some(GoDuration::from_secs(10)));
    assert_eq!(new_spec().request_timeout(), Duration::from_secs(10));
}

#[test]
fn default_convergence_timeout() {
    assert_eq!(new_spec().with_defaults().convergence_timeout, Some(GoDuration::from_secs(30)));
    assert_eq!(new_spec().convergence_timeout(), Duration::from_secs(30));
}

#[test]
fn default_init_timeout() {
    assert_eq!(new_spec().with_defaults().init_timeout, Some(GoDuration::from_mins(5)));
    assert_eq!(new_spec().init_timeout(), Duration::from_secs(300));
}

#[test]
fn default_sync_timeout() {
    assert_eq!(new_spec().with_defaults().sync_timeout, Some(GoDuration::ZERO));
    assert_eq!(new_spec().sync_timeout(), Duration::ZERO);
}

#[test]
fn default_db_wait_ready_timeout() {
    assert_eq!(new_spec().with_defaults().db_wait_ready_timeout, Some(GoDuration::from_secs(60)));
    assert_eq!(new_spec().db_wait_ready_timeout(), Duration::from_secs(60));
}

#[test]
fn default_fail_interval() {
    assert_eq!(new_spec().with_defaults().fail_interval, Some(GoDuration::from_secs(20)));
    assert_eq!(new_spec().fail_interval(), Duration::from_secs(20));
}

#[test]
fn default_dead_keeper_removal_interval() {
    assert_eq!(new_spec().with_defaults().dead_keeper_removal_interval, Some(GoDuration::from_hours(48)));
    assert_eq!(new_spec().dead_keeper_removal_interval(), Duration::from_secs(48 * 3600));
}

#[test]
fn default_proxy_check_interval() {
    assert_eq!(new_spec().with_defaults().proxy_check_interval, Some(GoDuration::from_secs(5)));
    assert_eq!(new_spec().proxy_check_interval(), Duration::from_secs(5));
}

#[test]
fn default_proxy_timeout() {
    assert_eq!(new_spec().with_defaults().proxy_timeout, Some(GoDuration::from_secs(15)));
    assert_eq!(new_spec().proxy_timeout(), Duration::from_secs(15));
}

#[test]
fn default_max_standbys() {
    assert_eq!(new_spec().with_defaults().max_standbys, Some(20));
    assert_eq!(new_spec().max_standbys(), 20);
}

#[test]
fn default_max_standbys_per_sender() {
    assert_eq!(new_spec().with_defaults().max_standbys_per_sender, Some(3));
    assert_eq!(new_spec().max_standbys_per_sender(), 3);
}

#[test]
fn default_max_standby_lag_is_one_mib_not_stolons_typo() {
    assert_eq!(new_spec().with_defaults().max_standby_lag, Some(1_048_576));
    assert_eq!(new_spec().max_standby_lag(), 1_048_576);
    assert_ne!(defaults::MAX_STANDBY_LAG, 1024 * 1204);
}

#[test]
fn default_synchronous_replication() {
    assert_eq!(new_spec().with_defaults().synchronous_replication, Some(false));
    assert!(!new_spec().synchronous_replication());
}

#[test]
fn default_min_synchronous_standbys() {
    assert_eq!(new_spec().with_defaults().min_synchronous_standbys, Some(1));
    assert_eq!(new_spec().min_synchronous_standbys(), 1);
}

#[test]
fn default_max_synchronous_standbys() {
    assert_eq!(new_spec().with_defaults().max_synchronous_standbys, Some(1));
    assert_eq!(new_spec().max_synchronous_standbys(), 1);
}

#[test]
fn default_additional_wal_senders() {
    assert_eq!(new_spec().with_defaults().additional_wal_senders, Some(5));
    assert_eq!(new_spec().additional_wal_senders(), 5);
}

#[test]
fn default_use_pgrewind() {
    assert_eq!(new_spec().with_defaults().use_pgrewind, Some(false));
    assert!(!new_spec().use_pgrewind());
}

#[test]
fn default_merge_pg_parameters() {
    assert_eq!(new_spec().with_defaults().merge_pg_parameters, Some(true));
    assert!(new_spec().merge_pg_parameters());
}

#[test]
fn default_role() {
    assert_eq!(new_spec().with_defaults().role, Some(ClusterRole::Master));
    assert_eq!(new_spec().role(), ClusterRole::Master);
}

#[test]
fn default_su_repl_access_mode() {
    assert_eq!(new_spec().with_defaults().default_su_repl_access_mode, Some(SuReplAccessMode::All));
    assert_eq!(new_spec().default_su_repl_access_mode(), SuReplAccessMode::All);
}

#[test]
fn default_automatic_pg_restart() {
    assert_eq!(new_spec().with_defaults().automatic_pg_restart, Some(false));
    assert!(!new_spec().automatic_pg_restart());
}

#[test]
fn defaults_leave_required_and_config_fields_alone() {
    let d = ClusterSpec::default().with_defaults();
    assert_eq!(d.init_mode, None);
    assert_eq!(d.new_config, None);
    assert_eq!(d.pitr_config, None);
    assert_eq!(d.existing_config, None);
    assert_eq!(d.standby_config, None);
    assert_eq!(d.pg_parameters, None);
    assert_eq!(d.pg_hba, None, "pgHBA null keeps its meaning");
    assert_eq!(d.additional_master_replication_slots, None);
}

#[test]
fn defaults_do_not_override_set_values() {
    let s = spec(
        r#"{"initMode": "new", "sleepInterval": "1s", "maxStandbys": 4, "usePgrewind": true,
            "mergePgParameters": false, "maxStandbyLag": 0, "syncTimeout": "1h", "role": "master",
            "defaultSUReplAccessMode": "strict", "automaticPgRestart": true, "additionalWalSenders": 0}"#,
    );
    let d = s.with_defaults();
    assert_eq!(d.sleep_interval, Some(GoDuration::from_secs(1)));
    assert_eq!(d.max_standbys, Some(4));
    assert_eq!(d.use_pgrewind, Some(true));
    assert_eq!(d.merge_pg_parameters, Some(false));
    assert_eq!(d.max_standby_lag, Some(0));
    assert_eq!(d.sync_timeout, Some(GoDuration::from_hours(1)));
    assert_eq!(d.default_su_repl_access_mode, Some(SuReplAccessMode::Strict));
    assert_eq!(d.automatic_pg_restart, Some(true));
    assert_eq!(d.additional_wal_senders, Some(0));
    assert_eq!(s.sync_timeout(), Duration::from_secs(3600));
}

#[test]
fn defaults_are_not_written_back() {
    let s = new_spec();
    let _ = s.with_defaults();
    let json = serde_json::to_value(&s).expect("serialises");
    assert!(json.get("sleepInterval").is_none());
    assert_eq!(json["additionalWalSenders"], serde_json::Value::Null);
}

#[test]
fn spec_durations_serialise_as_go_strings() {
    let s = spec(
        r#"{"initMode": "new", "deadKeeperRemovalInterval": "48h", "initTimeout": "300s", "failInterval": "1.5m"}"#,
    );
    let json = serde_json::to_value(&s).expect("serialises");
    assert_eq!(json["deadKeeperRemovalInterval"], "48h0m0s");
    assert_eq!(json["initTimeout"], "5m0s");
    assert_eq!(json["failInterval"], "1m30s");
}

// ---------------------------------------------------------------- valid specs

#[test]
fn minimal_new_spec_is_valid() {
    assert_eq!(new_spec().validate(), Ok(()));
}

#[test]
fn full_valid_specs_are_accepted() {
    let specs = [
        r#"{"initMode": "new", "synchronousReplication": true, "minSynchronousStandbys": 2, "maxSynchronousStandbys": 3,
            "additionalMasterReplicationSlots": ["backup_1", "logical_x"], "pgHBA": ["host all all 0.0.0.0/0 md5"],
            "proxyCheckInterval": "1s", "proxyTimeout": "2s", "defaultSUReplAccessMode": "strict"}"#,
        r#"{"initMode": "new", "minSynchronousStandbys": 0}"#,
        r#"{"initMode": "existing", "existingConfig": {"keeperUID": "keeper0"}}"#,
        r#"{"initMode": "pitr", "pitrConfig": {"dataRestoreCommand": "restore %d",
            "recoveryTargetSettings": {"recoveryTargetTime": "2026-01-01 00:00:00"}}}"#,
        r#"{"initMode": "pitr", "role": "standby", "standbyConfig": {"standbySettings": {"primaryConninfo": "host=x"}},
            "pitrConfig": {"dataRestoreCommand": "pg_basebackup -D %d"}}"#,
        r#"{"initMode": "existing", "role": "standby", "standbyConfig": {}, "existingConfig": {"keeperUID": "k"}}"#,
        r#"{"initMode": "new", "syncTimeout": "0s", "pgHBA": []}"#,
    ];
    for s in specs {
        assert_eq!(spec(s).validate(), Ok(()), "{s}");
    }
}

// ---------------------------------------------------------------- rule 1: durations >= 0

#[test]
fn rule1_negative_durations_are_rejected_one_by_one() {
    let fields = [
        "sleepInterval",
        "requestTimeout",
        "convergenceTimeout",
        "initTimeout",
        "syncTimeout",
        "dbWaitReadyTimeout",
        "failInterval",
        "deadKeeperRemovalInterval",
        "proxyCheckInterval",
        "proxyTimeout",
    ];
    for field in fields {
        let s = spec(&format!(r#"{{"initMode": "new", "{field}": "-1s"}}"#));
        rejected(
            &s,
            SpecError::NegativeDuration { field, value: GoDuration::from_secs(-1) },
            1,
            &[field, "-1s", "negative"],
        );
    }
}

// ---------------------------------------------------------------- rule 2: proxyCheckInterval < proxyTimeout

#[test]
fn rule2_proxy_check_interval_equal_to_timeout() {
    let s = spec(r#"{"initMode": "new", "proxyCheckInterval": "5s", "proxyTimeout": "5s"}"#);
    let check = GoDuration::from_secs(5);
    rejected(
        &s,
        SpecError::ProxyCheckIntervalNotLower { check, timeout: check },
        2,
        &["proxyCheckInterval (5s) must be lower than proxyTimeout (5s)"],
    );
}

#[test]
fn rule2_proxy_check_interval_above_default_timeout() {
    let s = spec(r#"{"initMode": "new", "proxyCheckInterval": "20s"}"#);
    let want =
        SpecError::ProxyCheckIntervalNotLower { check: GoDuration::from_secs(20), timeout: GoDuration::from_secs(15) };
    rejected(&s, want, 2, &["proxyCheckInterval (20s)", "proxyTimeout (15s)"]);
}

// ---------------------------------------------------------------- rule 3: counts

#[test]
fn rule3_max_standbys_zero() {
    let s = spec(r#"{"initMode": "new", "maxStandbys": 0}"#);
    rejected(&s, SpecError::CountTooLow { field: "maxStandbys", value: 0 }, 3, &["maxStandbys", "at least 1"]);
}

#[test]
fn rule3_max_standbys_per_sender_zero() {
    let s = spec(r#"{"initMode": "new", "maxStandbysPerSender": 0}"#);
    let want = SpecError::CountTooLow { field: "maxStandbysPerSender", value: 0 };
    rejected(&s, want, 3, &["maxStandbysPerSender", "at least 1"]);
}

#[test]
fn rule3_max_synchronous_standbys_zero() {
    let s = spec(r#"{"initMode": "new", "maxSynchronousStandbys": 0, "minSynchronousStandbys": 0}"#);
    let want = SpecError::CountTooLow { field: "maxSynchronousStandbys", value: 0 };
    rejected(&s, want, 3, &["maxSynchronousStandbys", "at least 1"]);
}

#[test]
fn rule3_max_synchronous_below_min() {
    let s = spec(r#"{"initMode": "new", "minSynchronousStandbys": 3, "maxSynchronousStandbys": 2}"#);
    rejected(
        &s,
        SpecError::MaxSyncBelowMinSync { max: 2, min: 3 },
        3,
        &["maxSynchronousStandbys (2)", "minSynchronousStandbys (3)"],
    );
}

#[test]
fn rule3_min_synchronous_above_default_max() {
    let s = spec(r#"{"initMode": "new", "minSynchronousStandbys": 2}"#);
    rejected(&s, SpecError::MaxSyncBelowMinSync { max: 1, min: 2 }, 3, &["maxSynchronousStandbys"]);
}

// ---------------------------------------------------------------- rule 4: initMode, replication slots

#[test]
fn rule4_init_mode_missing() {
    rejected(&ClusterSpec::default(), SpecError::InitModeMissing, 4, &["initMode"]);
}

#[test]
fn rule4_invalid_replication_slot_names() {
    for bad in ["Backup", "with-dash", "", "slot name", "ümlaut"] {
        let mut s = new_spec();
        s.additional_master_replication_slots = Some(vec!["good_one".into(), bad.into()]);
        rejected(
            &s,
            SpecError::InvalidReplicationSlotName(bad.into()),
            4,
            &["additionalMasterReplicationSlots", "^[a-z0-9_]+$"],
        );
    }
}

#[test]
fn rule4_reserved_replication_slot_prefix() {
    let mut s = new_spec();
    s.additional_master_replication_slots = Some(vec!["stolon_abc".into()]);
    rejected(
        &s,
        SpecError::ReservedReplicationSlotName("stolon_abc".into()),
        4,
        &["additionalMasterReplicationSlots", "stolon_"],
    );
}

// ---------------------------------------------------------------- rule 5: pgHBA

#[test]
fn rule5_pg_hba_newline() {
    let mut s = new_spec();
    s.pg_hba = Some(vec!["host all all 0.0.0.0/0 md5".into(), "host all all ::/0 md5\nlocal all all trust".into()]);
    rejected(&s, SpecError::PgHbaNewline { index: 1 }, 5, &["pgHBA", "newline"]);
}

// ---------------------------------------------------------------- rule 6: init modes

#[test]
fn rule6_new_with_standby_role() {
    let mut s = new_spec();
    s.role = Some(ClusterRole::Standby);
    s.standby_config = Some(standby_config());
    rejected(&s, SpecError::StandbyRoleWithNewInitMode, 6, &["role", "standby", "initMode is new"]);
}

#[test]
fn rule6_existing_without_config() {
    let s = spec(r#"{"initMode": "existing"}"#);
    rejected(&s, SpecError::ExistingConfigMissing, 6, &["existingConfig", "initMode is existing"]);
}

#[test]
fn rule6_existing_with_empty_keeper_uid() {
    let mut s = spec(r#"{"initMode": "existing"}"#);
    s.existing_config = Some(ExistingConfig::default());
    rejected(&s, SpecError::ExistingKeeperUidMissing, 6, &["existingConfig.keeperUID"]);
}

#[test]
fn rule6_pitr_without_config() {
    let s = spec(r#"{"initMode": "pitr"}"#);
    rejected(&s, SpecError::PitrConfigMissing, 6, &["pitrConfig", "initMode is pitr"]);
}

#[test]
fn rule6_pitr_without_data_restore_command() {
    let s = spec(r#"{"initMode": "pitr", "pitrConfig": {"archiveRecoverySettings": {"restoreCommand": "cp"}}}"#);
    rejected(&s, SpecError::PitrDataRestoreCommandMissing, 6, &["pitrConfig.dataRestoreCommand"]);
}

#[test]
fn rule6_pitr_recovery_target_with_standby_role() {
    let s = ClusterSpec {
        init_mode: Some(ClusterInitMode::Pitr),
        role: Some(ClusterRole::Standby),
        standby_config: Some(standby_config()),
        pitr_config: Some(PitrConfig {
            data_restore_command: "restore %d".into(),
            archive_recovery_settings: None,
            recovery_target_settings: Some(RecoveryTargetSettings {
                recovery_target: "immediate".into(),
                ..RecoveryTargetSettings::default()
            }),
        }),
        ..ClusterSpec::default()
    };
    rejected(&s, SpecError::RecoveryTargetWithStandbyRole, 6, &["pitrConfig.recoveryTargetSettings", "standby"]);
}

#[test]
fn rule6_unknown_init_mode() {
    let s = spec(r#"{"initMode": "clone"}"#);
    rejected(&s, SpecError::UnknownInitMode("clone".into()), 6, &["initMode", "\"clone\""]);
}

// ---------------------------------------------------------------- rule 7: access mode and role

#[test]
fn rule7_unknown_su_repl_access_mode() {
    let s = spec(r#"{"initMode": "new", "defaultSUReplAccessMode": "some"}"#);
    rejected(&s, SpecError::UnknownSuReplAccessMode("some".into()), 7, &["defaultSUReplAccessMode", "\"some\""]);
}

#[test]
fn rule7_unknown_role() {
    let s = spec(r#"{"initMode": "existing", "existingConfig": {"keeperUID": "k"}, "role": "replica"}"#);
    rejected(&s, SpecError::UnknownRole("replica".into()), 7, &["role", "\"replica\""]);
}

#[test]
fn rule7_standby_role_without_standby_config() {
    let s = spec(r#"{"initMode": "pitr", "role": "standby", "pitrConfig": {"dataRestoreCommand": "x"}}"#);
    rejected(&s, SpecError::StandbyConfigMissing, 7, &["standbyConfig", "role is standby"]);
}

// ---------------------------------------------------------------- update rules

#[test]
fn update_keeping_init_mode_is_allowed() {
    let old = new_spec();
    let new = spec(r#"{"initMode": "new", "synchronousReplication": true, "sleepInterval": "2s"}"#);
    assert_eq!(ClusterSpec::check_update(&old, &new), Ok(()));
}

#[test]
fn update_must_validate() {
    let old = new_spec();
    let new = spec(r#"{"initMode": "new", "maxStandbys": 0}"#);
    let err = ClusterSpec::check_update(&old, &new).expect_err("invalid");
    assert_eq!(err, SpecUpdateError::Invalid(SpecError::CountTooLow { field: "maxStandbys", value: 0 }));
    assert!(err.to_string().contains("maxStandbys"));
}

#[test]
fn update_cannot_change_init_mode() {
    let old = new_spec();
    let new = spec(r#"{"initMode": "existing", "existingConfig": {"keeperUID": "k0"}}"#);
    let err = ClusterSpec::check_update(&old, &new).expect_err("initMode changed");
    assert_eq!(err, SpecUpdateError::InitModeChanged { old: "new".into(), new: "existing".into() });
    assert!(err.to_string().contains("initMode"));
}

#[test]
fn update_standby_to_master_is_allowed() {
    let old = spec(
        r#"{"initMode": "pitr", "role": "standby", "standbyConfig": {}, "pitrConfig": {"dataRestoreCommand": "x"}}"#,
    );
    let new = spec(r#"{"initMode": "pitr", "role": "master", "pitrConfig": {"dataRestoreCommand": "x"}}"#);
    assert_eq!(ClusterSpec::check_update(&old, &new), Ok(()));
    let promoted_by_default = spec(r#"{"initMode": "pitr", "pitrConfig": {"dataRestoreCommand": "x"}}"#);
    assert_eq!(ClusterSpec::check_update(&old, &promoted_by_default), Ok(()));
}

#[test]
fn update_master_to_standby_is_refused() {
    let old = spec(r#"{"initMode": "pitr", "pitrConfig": {"dataRestoreCommand": "x"}}"#);
    let new = spec(
        r#"{"initMode": "pitr", "role": "standby", "standbyConfig": {}, "pitrConfig": {"dataRestoreCommand": "x"}}"#,
    );
    let err = ClusterSpec::check_update(&old, &new).expect_err("master to standby");
    assert_eq!(err, SpecUpdateError::MasterToStandby);
    assert!(err.to_string().contains("master to standby"));
}
