//! Serde round-trips of the cluster data model against hand-written stolon 0.17 JSON fixtures.

use std::path::PathBuf;

use serde_json::Value;
use stolon_core::cluster::{
    ClusterData, ClusterInitMode, ClusterPhase, ClusterRole, ClusterSpec, DbInitMode, DbLocalState, DbRole, FollowType,
    KeeperInfo, KeeperLocalState, ModelError, ProxyInfo, SentinelInfo, SuReplAccessMode, decode_json,
};
use stolon_core::duration::GoDuration;
use stolon_core::time::Timestamp;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn load(name: &str) -> ClusterData {
    match ClusterData::from_json(&fixture(name)) {
        Ok(Some(cd)) => cd,
        other => panic!("{name}: expected cluster data, got {other:?}"),
    }
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("valid test timestamp")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Serialises, checks the JSON re-parses to an equal value, and returns the JSON value.
fn roundtrip(cd: &ClusterData) -> Value {
    let bytes = cd.to_json().expect("serialises");
    let again = ClusterData::from_json(&bytes).expect("re-parses").expect("not null");
    assert_eq!(&again, cd, "parse -> serialise -> parse must be the identity");
    serde_json::from_slice(&bytes).expect("output is JSON")
}

/// The fixture as JSON, with the given time strings normalised as we write them (UTC, `Z`).
fn same_json_as_fixture(name: &str, out: &Value) {
    let input: Value = serde_json::from_slice(&fixture(name)).expect("fixture is JSON");
    let normalised = normalise_times(input);
    assert_eq!(&normalise_times(out.clone()), &normalised, "{name}: output differs from the fixture");
}

fn normalise_times(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (&v, k.ends_with("Time") || k == "changeTime") {
                        (Value::String(s), true) => Value::String(ts(s).to_string()),
                        _ => normalise_times(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise_times).collect()),
        other => other,
    }
}

#[test]
fn sync_cluster_fields() {
    let cd = load("clusterdata_sync.json");
    assert_eq!(cd.format_version, 1);
    assert_eq!(cd.change_time.to_string(), "2026-11-27T10:13:05.123456789Z");
    let c = &cd.cluster;
    assert_eq!(c.uid, "3e1c2a9f");
    assert_eq!(c.generation, 1);
    assert_eq!(c.change_time.to_string(), "2026-11-20T07:00:01.5Z", "offset converted to UTC");
    assert_eq!(c.status.phase, Some(ClusterPhase::Normal));
    assert_eq!(c.status.master, "a1b2c3d4");
    assert_eq!(c.status.current_generation, 0);

    let s = &c.spec;
    assert_eq!(s.sleep_interval, Some(GoDuration::from_secs(5)));
    assert_eq!(s.request_timeout, Some(GoDuration::from_secs(10)));
    assert_eq!(s.fail_interval, Some(GoDuration::from_secs(20)));
    assert_eq!(s.proxy_timeout, Some(GoDuration::from_secs(15)));
    assert_eq!(s.convergence_timeout, None);
    assert_eq!(s.max_standby_lag, Some(2_097_152));
    assert_eq!(s.synchronous_replication, Some(true));
    assert_eq!(s.min_synchronous_standbys, Some(1));
    assert_eq!(s.max_synchronous_standbys, Some(2));
    assert_eq!(s.additional_wal_senders, None);
    assert_eq!(s.additional_master_replication_slots, Some(strings(&["backup_slot"])));
    assert_eq!(s.use_pgrewind, Some(true));
    assert_eq!(s.init_mode, Some(ClusterInitMode::New));
    let nc = s.new_config.as_ref().expect("newConfig");
    assert_eq!((nc.locale.as_str(), nc.encoding.as_str(), nc.data_checksums), ("en_US.UTF-8", "UTF8", true));
    let params = s.pg_parameters.as_ref().expect("pgParameters");
    assert_eq!(params.get("shared_buffers").map(String::as_str), Some("256MB"));
    assert_eq!(params.len(), 3);
    assert_eq!(s.pg_hba, None);
    assert_eq!(s.automatic_pg_restart, None);
    assert!(s.validate().is_ok());

    assert_eq!(cd.keepers.len(), 3);
    let k0 = &cd.keepers["keeper0"];
    assert_eq!(k0.uid, "keeper0");
    assert_eq!(k0.generation, 1);
    assert!(k0.change_time.is_zero());
    assert!(k0.status.healthy);
    assert_eq!(k0.status.last_healthy_time.to_string(), "2026-11-27T10:13:04.987654321Z");
    assert_eq!(k0.status.boot_uuid, "0b7e6d1c-5a4f-4e3d-9c2b-1a0f9e8d7c6b");
    assert_eq!((k0.status.postgres_binary_version.maj, k0.status.postgres_binary_version.min), (15, 8));
    assert!(!k0.status.force_fail);
    assert_eq!(k0.status.can_be_master, None);
    let k1 = &cd.keepers["keeper1"];
    assert_eq!(k1.status.can_be_master, Some(false));
    assert_eq!(k1.status.can_be_synchronous_replica, None);
    let k2 = &cd.keepers["keeper2"];
    assert!(!k2.status.healthy);
    assert!(k2.status.force_fail);
    assert_eq!(k2.status.can_be_synchronous_replica, Some(false));
    assert_eq!(k2.status.postgres_binary_version.min, 7);

    let m = &cd.dbs["a1b2c3d4"];
    assert_eq!(m.generation, 7);
    assert_eq!(m.change_time.as_datetime().timestamp_subsec_nanos(), 1);
    assert_eq!(m.spec.keeper_uid, "keeper0");
    assert_eq!(m.spec.request_timeout, GoDuration::from_secs(10));
    assert_eq!(m.spec.max_standbys, 20);
    assert!(m.spec.synchronous_replication);
    assert!(m.spec.use_pgrewind);
    assert_eq!(m.spec.additional_wal_senders, 5);
    assert_eq!(m.spec.additional_replication_slots, Some(strings(&["backup_slot"])));
    assert_eq!(m.spec.init_mode, Some(DbInitMode::None));
    assert_eq!(m.spec.role, Some(DbRole::Master));
    assert_eq!(m.spec.follow_config, None);
    assert_eq!(m.spec.followers(), strings(&["e5f6a7b8", "f9e8d7c6"]).as_slice());
    assert_eq!(m.spec.synchronous_standbys, Some(strings(&["e5f6a7b8"])));
    assert_eq!(m.spec.external_synchronous_standbys, Some(vec![]));
    assert!(!m.spec.include_config);
    assert_eq!(m.spec.pg_hba, None);
    assert!(m.status.healthy);
    assert_eq!(m.status.current_generation, 7);
    assert_eq!(m.status.listen_address, "10.0.0.10");
    assert_eq!(m.status.port, "5432");
    assert_eq!(m.status.system_id, "7311822263417163543");
    assert_eq!(m.status.timeline_id, 3);
    assert_eq!(m.status.x_log_pos, 50_331_800);
    assert_eq!(m.status.timelines_history.len(), 2);
    assert_eq!(m.status.timelines_history[1].timeline_id, 2);
    assert_eq!(m.status.timelines_history[1].switch_point, 50_331_680);
    assert_eq!(m.status.timelines_history[0].reason, "no recovery target specified");
    assert_eq!(m.status.pg_parameters.get("datestyle").map(String::as_str), Some("iso, mdy"));
    assert_eq!(m.status.synchronous_standbys(), strings(&["e5f6a7b8"]).as_slice());
    assert_eq!(m.status.older_wal_file, "000000030000000000000003");
    assert!(m.status.cur_synchronous_standbys.is_empty());

    let s1 = &cd.dbs["e5f6a7b8"];
    assert_eq!(s1.spec.role, Some(DbRole::Standby));
    let fc = s1.spec.follow_config.as_ref().expect("followConfig");
    assert_eq!(fc.follow_type, Some(FollowType::Internal));
    assert_eq!(fc.db_uid, "a1b2c3d4");
    assert_eq!(s1.spec.additional_replication_slots, None);
    assert_eq!(s1.spec.synchronous_standbys, None);
    assert_eq!(s1.spec.followers, Some(vec![]));
    let s2 = &cd.dbs["f9e8d7c6"];
    assert_eq!(s2.spec.init_mode, Some(DbInitMode::Resync));
    assert!(s2.spec.include_config);
    assert!(s2.spec.pg_parameters.is_empty());
    assert!(!s2.status.healthy);
    assert_eq!(s2.status.port, "5433");
    assert_eq!(s2.status.system_id, "");
    assert_eq!(cd.db_of_keeper("keeper2").map(|d| d.uid.as_str()), Some("f9e8d7c6"));
    assert_eq!(cd.master_db().map(|d| d.uid.as_str()), Some("a1b2c3d4"));

    assert_eq!(cd.proxy.generation, 5);
    assert_eq!(cd.proxy.uid, "");
    assert_eq!(cd.proxy.spec.master_db_uid, "a1b2c3d4");
    assert_eq!(cd.proxy.spec.enabled_proxies, strings(&["1a2b3c4d", "5e6f7a8b"]));

    let out = roundtrip(&cd);
    same_json_as_fixture("clusterdata_sync.json", &out);
}

#[test]
fn sync_cluster_with_fake_standby() {
    let cd = load("clusterdata_sync_fake_standby.json");
    let m = &cd.dbs["a1b2c3d4"];
    assert_eq!(m.spec.synchronous_standbys, Some(vec![]));
    assert_eq!(m.spec.external_synchronous_standbys(), strings(&["stolonfakestandby"]).as_slice());
    assert_eq!(m.spec.pg_hba, Some(vec![]), "pgHBA [] is not null");
    assert_eq!(cd.cluster.spec.pg_hba, Some(vec![]));
    assert_eq!(cd.cluster.spec.automatic_pg_restart, Some(true));
    assert!(cd.proxy.spec.enabled_proxies.is_empty());
    assert!(cd.keepers.is_empty());
    let out = roundtrip(&cd);
    assert_eq!(out["cluster"]["spec"]["pgHBA"], serde_json::json!([]));
    assert_eq!(out["dbs"]["a1b2c3d4"]["spec"]["pgHBA"], serde_json::json!([]));
    assert!(out["proxy"]["spec"].get("enabledProxies").is_none(), "empty enabledProxies is omitted");
    same_json_as_fixture("clusterdata_sync_fake_standby.json", &out);
}

#[test]
fn initializing_cluster() {
    let cd = load("clusterdata_initializing.json");
    assert!(cd.change_time.is_zero());
    assert_eq!(cd.cluster.uid, "9f8e7d6c");
    assert_eq!(cd.cluster.status.phase, Some(ClusterPhase::Initializing));
    assert_eq!(cd.cluster.status.master, "");
    assert_eq!(cd.cluster.change_time.to_string(), "2026-11-27T09:59:58.204060801Z");
    assert_eq!(cd.cluster.spec.init_mode, Some(ClusterInitMode::New));
    assert_eq!(cd.cluster.spec.with_defaults().max_standbys, Some(20));
    assert!(cd.keepers.is_empty() && cd.dbs.is_empty());
    assert_eq!(cd.proxy.generation, 0);
    assert!(cd.proxy.change_time.is_zero());
    let out = roundtrip(&cd);
    same_json_as_fixture("clusterdata_initializing.json", &out);
    assert_eq!(out["changeTime"], "0001-01-01T00:00:00Z");
    assert_eq!(out["proxy"]["changeTime"], "0001-01-01T00:00:00Z");
}

#[test]
fn standby_cluster() {
    let cd = load("clusterdata_standby.json");
    let s = &cd.cluster.spec;
    assert_eq!(s.role, Some(ClusterRole::Standby));
    assert_eq!(s.init_mode, Some(ClusterInitMode::Pitr));
    assert_eq!(s.sleep_interval(), std::time::Duration::from_secs(2));
    assert_eq!(s.dead_keeper_removal_interval, Some(GoDuration::from_hours(24)));
    assert_eq!(s.additional_wal_senders, Some(2));
    assert_eq!(s.default_su_repl_access_mode, Some(SuReplAccessMode::Strict));
    assert_eq!(s.pg_hba.as_ref().map(Vec::len), Some(2));
    assert_eq!(s.automatic_pg_restart, Some(false));
    let pitr = s.pitr_config.as_ref().expect("pitrConfig");
    assert!(pitr.data_restore_command.starts_with("pg_basebackup -D %d"));
    assert_eq!(pitr.recovery_target_settings, None);
    assert_eq!(pitr.archive_recovery_settings.as_ref().map(|a| a.restore_command.as_str()), Some("cp /mnt/wal/%f %p"));
    let sc = s.standby_config.as_ref().expect("standbyConfig");
    let ss = sc.standby_settings.as_ref().expect("standbySettings");
    assert_eq!(ss.primary_conninfo, "host=primary.example.net port=5432 user=repluser sslmode=require");
    assert_eq!(ss.primary_slot_name, "standby_cluster");
    assert_eq!(ss.recovery_min_apply_delay, "30s");
    assert!(s.validate().is_ok());
    assert!(!s.sync_replication_active());

    let head = &cd.dbs["0c0ffee0"];
    assert_eq!(head.spec.role, Some(DbRole::Standby));
    let fc = head.spec.follow_config.as_ref().expect("followConfig");
    assert_eq!(fc.follow_type, Some(FollowType::External));
    assert_eq!(fc.db_uid, "");
    assert_eq!(fc.standby_settings.as_ref().map(|s| s.primary_slot_name.as_str()), Some("standby_cluster"));
    assert_eq!(fc.archive_recovery_settings.as_ref().map(|a| a.restore_command.as_str()), Some("cp /mnt/wal/%f %p"));
    assert!(head.spec.pitr_config.is_some());
    assert_eq!(head.status.x_log_pos, 117_440_512);
    assert_eq!(cd.keepers["k_east"].status.postgres_binary_version.maj, 16);
    let out = roundtrip(&cd);
    same_json_as_fixture("clusterdata_standby.json", &out);
}

#[test]
fn always_emitted_keys_are_written() {
    let cd = load("clusterdata_sync.json");
    let out = roundtrip(&cd);
    let spec = &out["cluster"]["spec"];
    for key in ["additionalWalSenders", "additionalMasterReplicationSlots", "pgHBA", "automaticPgRestart"] {
        assert!(spec.get(key).is_some(), "cluster.spec.{key} must be emitted");
    }
    assert_eq!(spec["additionalWalSenders"], Value::Null);
    assert_eq!(spec["pgHBA"], Value::Null);
    assert_eq!(spec["automaticPgRestart"], Value::Null);
    for (uid, db) in out["dbs"].as_object().expect("dbs object") {
        for key in [
            "requestTimeout",
            "additionalWalSenders",
            "additionalReplicationSlots",
            "pgHBA",
            "followers",
            "synchronousStandbys",
            "externalSynchronousStandbys",
        ] {
            assert!(db["spec"].get(key).is_some(), "dbs.{uid}.spec.{key} must be emitted");
        }
        assert!(db["status"].get("synchronousStandbys").is_some(), "dbs.{uid}.status.synchronousStandbys");
        assert!(db["status"].get("curSynchronousStandbys").is_none());
        assert!(db.get("changeTime").is_some());
    }
    assert_eq!(out["dbs"]["e5f6a7b8"]["spec"]["additionalReplicationSlots"], Value::Null);
    assert_eq!(out["dbs"]["e5f6a7b8"]["spec"]["followers"], serde_json::json!([]));
    for (uid, k) in out["keepers"].as_object().expect("keepers object") {
        assert_eq!(k["changeTime"], "0001-01-01T00:00:00Z", "keepers.{uid}.changeTime");
        assert_eq!(k["spec"], serde_json::json!({}), "keepers.{uid}.spec");
        assert!(k["status"].get("postgresBinaryVersion").is_some());
        assert!(k["status"].get("lastHealthyTime").is_some());
    }
    assert_eq!(out["proxy"]["status"], serde_json::json!({}));
}

#[test]
fn omitempty_fields_are_skipped() {
    let cd = load("clusterdata_sync.json");
    let out = roundtrip(&cd);
    let spec = &out["cluster"]["spec"];
    for key in
        ["convergenceTimeout", "role", "pitrConfig", "standbyConfig", "existingConfig", "defaultSUReplAccessMode"]
    {
        assert!(spec.get(key).is_none(), "cluster.spec.{key} must be omitted when unset");
    }
    let k0 = &out["keepers"]["keeper0"]["status"];
    for key in ["forceFail", "canBeMaster", "canBeSynchronousReplica"] {
        assert!(k0.get(key).is_none(), "keepers.keeper0.status.{key}");
    }
    let st = &out["dbs"]["f9e8d7c6"]["status"];
    for key in ["healthy", "systemdID", "timelineID", "xLogPos", "timelinesHistory", "pgParameters", "olderWalFile"] {
        assert!(st.get(key).is_none(), "dbs.f9e8d7c6.status.{key}");
    }
    assert!(out["cluster"]["status"].get("currentGeneration").is_none());
    assert!(out["proxy"].get("uid").is_none());
}

#[test]
fn new_initial_cluster_data() {
    let now = ts("2026-11-27T10:00:00.5Z");
    let spec = ClusterSpec { init_mode: Some(ClusterInitMode::New), ..ClusterSpec::default() };
    let cd = ClusterData::new_initial("abcd0123", spec.clone(), now);
    assert_eq!(cd.format_version, 1);
    assert_eq!(cd.cluster.uid, "abcd0123");
    assert_eq!(cd.cluster.generation, 1);
    assert_eq!(cd.cluster.change_time, now);
    assert_eq!(cd.cluster.spec, spec);
    assert_eq!(cd.cluster.status.phase, Some(ClusterPhase::Initializing));
    assert!(cd.keepers.is_empty() && cd.dbs.is_empty());
    assert_eq!(cd.proxy, Default::default());
    let out = roundtrip(&cd);
    assert_eq!(out["keepers"], serde_json::json!({}));
    assert_eq!(out["dbs"], serde_json::json!({}));
    assert_eq!(out["proxy"], serde_json::json!({"changeTime": "0001-01-01T00:00:00Z", "spec": {}, "status": {}}));
    assert_eq!(out["cluster"]["status"], serde_json::json!({"phase": "initializing"}));
    assert_eq!(
        out["cluster"]["spec"],
        serde_json::json!({
            "additionalWalSenders": null,
            "additionalMasterReplicationSlots": null,
            "initMode": "new",
            "pgHBA": null,
            "automaticPgRestart": null
        })
    );
}

#[test]
fn unknown_fields_and_missing_subobjects_are_tolerated() {
    let json = br#"{
        "formatVersion": 1,
        "futureTopLevel": {"x": 1},
        "cluster": {"uid": "u1", "spec": {"initMode": "new", "someNewKnob": "7s"}, "extra": [1, 2]},
        "keepers": {"k1": {"uid": "k1", "status": {"healthy": true, "newFlag": true}}},
        "dbs": {"d1": {"uid": "d1", "spec": null, "status": {"systemdID": "42", "weird": null}}},
        "proxy": null
    }"#;
    let cd = ClusterData::from_json(json).expect("tolerant").expect("not null");
    assert_eq!(cd.cluster.uid, "u1");
    assert!(cd.change_time.is_zero());
    assert_eq!(cd.cluster.status, Default::default());
    assert!(cd.keepers["k1"].status.healthy);
    assert_eq!(cd.keepers["k1"].spec, Default::default());
    assert_eq!(cd.dbs["d1"].spec, Default::default());
    assert_eq!(cd.dbs["d1"].status.system_id, "42");
    assert_eq!(cd.proxy, Default::default());
    let out = roundtrip(&cd);
    assert!(out.get("futureTopLevel").is_none());
    assert!(out["dbs"]["d1"].get("spec").is_some(), "spec always emitted");
}

#[test]
fn unknown_enum_values_are_kept() {
    let json = br#"{"formatVersion": 1, "cluster": {"spec": {"initMode": "clone", "role": "leader"},
        "status": {"phase": "degraded"}}, "keepers": {}, "dbs": {}, "proxy": {}}"#;
    let cd = ClusterData::from_json(json).expect("parses").expect("not null");
    assert_eq!(cd.cluster.spec.init_mode, Some(ClusterInitMode::Unknown("clone".into())));
    assert_eq!(cd.cluster.status.phase, Some(ClusterPhase::Unknown("degraded".into())));
    let out = roundtrip(&cd);
    assert_eq!(out["cluster"]["spec"]["role"], "leader");
}

#[test]
fn null_cluster_data_is_none() {
    assert_eq!(ClusterData::from_json(b"null"), Ok(None));
    assert_eq!(ClusterData::from_json(b"  null\n"), Ok(None));
}

#[test]
fn garbage_is_a_syntax_error() {
    match ClusterData::from_json(b"{\"formatVersion\": 1,") {
        Err(ModelError::Syntax { what, line, .. }) => {
            assert_eq!(what, "clusterdata");
            assert_eq!(line, 1);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(matches!(ClusterData::from_json(b"\xff\xfe"), Err(ModelError::Syntax { .. })));
    assert!(matches!(ClusterData::from_json(b""), Err(ModelError::Syntax { .. })));
}

#[test]
fn wrong_shape_names_the_path() {
    let json = br#"{"formatVersion": 1, "cluster": {"spec": {"initMode": "new", "maxStandbys": "many"}},
        "keepers": {}, "dbs": {}, "proxy": {}}"#;
    match ClusterData::from_json(json) {
        Err(ModelError::Shape { path, message, .. }) => {
            assert_eq!(path, "cluster.spec.maxStandbys");
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let json = br#"{"formatVersion": 1, "dbs": {"d1": {"spec": {"requestTimeout": "10 parsecs"}}}}"#;
    match ClusterData::from_json(json) {
        Err(e @ ModelError::Shape { .. }) => {
            let text = e.to_string();
            assert!(text.contains("dbs.d1.spec.requestTimeout"), "{text}");
            assert!(text.contains("unknown unit"), "{text}");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    match ClusterData::from_json(b"[1, 2]") {
        Err(ModelError::Shape { path, .. }) => assert_eq!(path, "."),
        other => panic!("expected a shape error, got {other:?}"),
    }
    let bad_time = br#"{"formatVersion": 1, "changeTime": "yesterday"}"#;
    assert!(matches!(ClusterData::from_json(bad_time), Err(ModelError::Shape { path, .. }) if path == "changeTime"));
}

#[test]
fn unsupported_format_version() {
    let json = br#"{"formatVersion": 2, "cluster": "a different shape"}"#;
    match ClusterData::from_json(json) {
        Err(e @ ModelError::UnsupportedFormatVersion { found: 2, supported: 1 }) => {
            assert!(e.to_string().contains("unsupported clusterdata format version 2"));
        }
        other => panic!("expected unsupported format version, got {other:?}"),
    }
    assert_eq!(
        ClusterData::from_json(br#"{"cluster": {}}"#),
        Err(ModelError::UnsupportedFormatVersion { found: 0, supported: 1 })
    );
    assert!(matches!(
        ClusterData::from_json(br#"{"formatVersion": "1"}"#),
        Err(ModelError::Shape { path, .. }) if path == "formatVersion"
    ));
}

#[test]
fn keeper_info_fields_and_roundtrip() {
    let ki: KeeperInfo = decode_json("keeperinfo", &fixture("keeperinfo.json")).expect("keeper info");
    assert_eq!(ki.info_uid, "6d5c4b3a");
    assert_eq!(ki.uid, "keeper1");
    assert_eq!(ki.cluster_uid, "3e1c2a9f");
    assert_eq!(ki.boot_uuid, "7d3c1f0a-2b9e-4c8d-8a7f-6e5d4c3b2a19");
    assert_eq!((ki.postgres_binary_version.maj, ki.postgres_binary_version.min), (15, 8));
    assert_eq!(ki.can_be_master, Some(false));
    assert_eq!(ki.can_be_synchronous_replica, Some(true));
    assert_eq!(ki.priority, None);
    let ps = ki.postgres_state.as_ref().expect("postgresState");
    assert_eq!(ps.uid, "e5f6a7b8");
    assert_eq!(ps.generation, 4);
    assert_eq!(ps.listen_address, "10.0.0.11");
    assert_eq!(ps.port, "5432");
    assert!(ps.healthy);
    assert_eq!(ps.system_id, "7311822263417163543");
    assert_eq!(ps.timeline_id, 3);
    assert_eq!(ps.x_log_pos, 50_331_800);
    assert_eq!(ps.timelines_history.len(), 1);
    assert_eq!(ps.timelines_history[0].switch_point, 50_331_680);
    assert_eq!(ps.pg_parameters.get("wal_level").map(String::as_str), Some("replica"));
    assert_eq!(ps.synchronous_standbys, Some(vec![]));
    assert_eq!(ps.older_wal_file, "000000030000000000000002");
    let out = serde_json::to_value(&ki).expect("serialises");
    assert_eq!(out["postgresState"]["systemID"], "7311822263417163543", "systemID, not systemdID");
    let input: Value = serde_json::from_slice(&fixture("keeperinfo.json")).expect("json");
    assert_eq!(out, input);

    let min: KeeperInfo = decode_json("keeperinfo", &fixture("keeperinfo_minimal.json")).expect("minimal");
    let ps = min.postgres_state.as_ref().expect("postgresState");
    assert!(!ps.healthy);
    assert_eq!(ps.synchronous_standbys, None);
    assert_eq!(min.can_be_master, None);
    let out = serde_json::to_value(&min).expect("serialises");
    assert_eq!(out["postgresBinaryVersion"], serde_json::json!({"Maj": 0, "Min": 0}));
    assert_eq!(out["postgresState"]["synchronousStandbys"], Value::Null);
    let input: Value = serde_json::from_slice(&fixture("keeperinfo_minimal.json")).expect("json");
    assert_eq!(out, input);
}

#[test]
fn proxy_and_sentinel_info() {
    let pi: ProxyInfo = decode_json("proxyinfo", &fixture("proxyinfo.json")).expect("proxy info");
    assert_eq!(pi.info_uid, "c0ffee11");
    assert_eq!(pi.uid, "1a2b3c4d");
    assert_eq!(pi.generation, 5);
    assert_eq!(pi.proxy_timeout, GoDuration::from_secs(15));
    let out = serde_json::to_value(&pi).expect("serialises");
    assert_eq!(
        out,
        serde_json::json!({"infoUID": "c0ffee11", "UID": "1a2b3c4d", "Generation": 5, "ProxyTimeout": 15_000_000_000i64})
    );
    let bad = decode_json::<ProxyInfo>("proxyinfo", br#"{"UID": "x", "ProxyTimeout": "15s"}"#);
    assert!(matches!(bad, Err(ModelError::Shape { path, .. }) if path == "ProxyTimeout"));

    let si: SentinelInfo = decode_json("sentinelinfo", &fixture("sentinelinfo.json")).expect("sentinel info");
    assert_eq!(si.uid, "b16b00b5");
    assert_eq!(serde_json::to_string(&si).expect("serialises"), r#"{"UID":"b16b00b5"}"#);
}

#[test]
fn keeper_local_state_files() {
    let ks: KeeperLocalState = decode_json("keeperstate", &fixture("keeperstate.json")).expect("keeperstate");
    assert_eq!(ks.uid, "keeper1");
    assert_eq!(ks.cluster_uid, "3e1c2a9f");
    assert_eq!(serde_json::to_string(&ks).expect("ok"), r#"{"UID":"keeper1","ClusterUID":"3e1c2a9f"}"#);

    let ds: DbLocalState = decode_json("dbstate", &fixture("dbstate.json")).expect("dbstate");
    assert_eq!(ds.uid, "e5f6a7b8");
    assert_eq!(ds.generation, 4);
    assert!(!ds.initializing);
    let params = ds.init_pg_parameters.as_ref().expect("params");
    assert_eq!(params.get("max_connections").map(String::as_str), Some("100"));
    let out = serde_json::to_value(&ds).expect("ok");
    let input: Value = serde_json::from_slice(&fixture("dbstate.json")).expect("json");
    assert_eq!(out, input);

    let fresh = DbLocalState {
        uid: "d1".into(),
        generation: 1,
        initializing: true,
        init_pg_parameters: None,
        ..DbLocalState::default()
    };
    assert_eq!(
        serde_json::to_string(&fresh).expect("ok"),
        r#"{"UID":"d1","Generation":1,"Initializing":true,"InitPGParameters":null}"#
    );
}
