//! Real documents written by stolon 0.17 (`tests/fixtures/stolon-0.17/`, see its README): each one parses
//! into our model and re-serialises to a document with the same meaning, compared field by field: no field
//! lost, none added, every value equal (timestamps compared as instants, `null` and an absent key are the
//! same to Go's decoder).

use std::path::PathBuf;

use serde_json::Value;
use stolon_core::cluster::{
    ClusterData, ClusterInitMode, ClusterPhase, DbInitMode, DbLocalState, DbRole, FollowType, KeeperInfo,
    KeeperLocalState, ProxyInfo, SentinelInfo,
};
use stolon_core::duration::GoDuration;
use stolon_core::time::Timestamp;

/// The directory of the stolon 0.17 documents (shared with the end-to-end tests).
fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stolon-0.17")
}

fn read(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A `{"key": ..., "value": ...}` fixture: the store key as stolon wrote it and the document.
fn record(name: &str) -> (String, Value) {
    let v: Value = serde_json::from_slice(&read(name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
    let key = v["key"].as_str().unwrap_or_else(|| panic!("{name}: no key")).to_string();
    (key, v["value"].clone())
}

/// Every difference of meaning between what stolon wrote and what we wrote, one line per field path.
fn differences(path: &str, stolon: &Value, ours: &Value, out: &mut Vec<String>) {
    match (stolon, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (a.get(k).filter(|v| !v.is_null()), b.get(k).filter(|v| !v.is_null())) {
                    (Some(x), Some(y)) => differences(&p, x, y, out),
                    (Some(x), None) => out.push(format!("{p}: lost (stolon wrote {x})")),
                    (None, Some(y)) => out.push(format!("{p}: added ({y})")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (Value::String(a), Value::String(b)) if path.ends_with("Time") => {
            match (Timestamp::parse(a), Timestamp::parse(b)) {
                (Ok(x), Ok(y)) if x == y => {}
                _ => out.push(format!("{path}: {a:?} became {b:?}")),
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

fn assert_same_meaning(what: &str, stolon: &Value, ours: &[u8]) {
    let ours: Value = serde_json::from_slice(ours).expect("we write JSON");
    let mut diffs = Vec::new();
    differences(what, stolon, &ours, &mut diffs);
    assert!(diffs.is_empty(), "{what}: re-serialised document differs from stolon's:\n{}", diffs.join("\n"));
}

#[test]
fn cluster_data_is_read_and_written_back_with_the_same_meaning() {
    let (key, value) = record("clusterdata.json");
    assert_eq!(key, "stolon/cluster/bars24179/clusterdata");
    let bytes = serde_json::to_vec(&value).unwrap();
    let cd = ClusterData::from_json(&bytes).expect("stolon's cluster data parses").expect("not null");

    assert_eq!(cd.format_version, 1);
    assert_eq!(cd.change_time.to_string(), "2026-12-06T04:30:23.218502878Z");
    let c = &cd.cluster;
    assert_eq!((c.uid.as_str(), c.generation), ("a008687a", 1));
    assert_eq!(c.status.phase, Some(ClusterPhase::Normal));
    assert_eq!(c.status.master, "c7399fa2");
    let s = &c.spec;
    assert_eq!(s.sleep_interval, Some(GoDuration::from_secs(1)));
    assert_eq!(s.fail_interval, Some(GoDuration::from_secs(4)));
    assert_eq!(s.synchronous_replication, Some(true));
    assert_eq!((s.min_synchronous_standbys, s.max_synchronous_standbys), (Some(1), Some(1)));
    assert_eq!(s.init_mode, Some(ClusterInitMode::New));
    assert_eq!(s.additional_wal_senders, None);
    assert_eq!(s.pg_parameters.as_ref().map(|p| p.len()), Some(14));
    assert!(s.validate().is_ok(), "stolon's spec passes our validation");

    assert_eq!(cd.keepers.keys().collect::<Vec<_>>(), ["keeper0", "keeper1"]);
    let k0 = &cd.keepers["keeper0"];
    assert!(k0.status.healthy);
    assert_eq!(k0.status.boot_uuid, "e9b65698-cca1-4881-b0ec-9cf5d1d46978");
    assert_eq!((k0.status.postgres_binary_version.maj, k0.status.postgres_binary_version.min), (15, 18));
    assert_eq!((k0.status.can_be_master, k0.status.can_be_synchronous_replica), (Some(true), Some(true)));
    assert_eq!(k0.status.last_healthy_time.to_string(), "2026-12-06T04:30:23.209077536Z");

    let master = cd.master_db().expect("the master DB exists");
    assert_eq!((master.uid.as_str(), master.generation), ("c7399fa2", 4));
    assert_eq!(master.spec.keeper_uid, "keeper0");
    assert_eq!(master.spec.role, Some(DbRole::Master));
    assert_eq!(master.spec.init_mode, Some(DbInitMode::None));
    assert!(master.spec.synchronous_replication);
    assert_eq!(master.spec.request_timeout, GoDuration::from_secs(10));
    assert_eq!((master.spec.max_standbys, master.spec.additional_wal_senders), (20, 5));
    assert_eq!(master.spec.followers(), ["6d5132c2"]);
    assert_eq!(master.spec.synchronous_standbys.as_deref(), Some(&["6d5132c2".to_string()][..]));
    assert_eq!(master.spec.external_synchronous_standbys, Some(vec![]));
    assert_eq!(master.status.current_generation, 4);
    assert_eq!((master.status.listen_address.as_str(), master.status.port.as_str()), ("127.0.0.1", "34337"));
    assert_eq!(master.status.system_id, "7716043639102590950");
    assert_eq!((master.status.timeline_id, master.status.x_log_pos), (1, 50_331_648));
    assert_eq!(master.status.synchronous_standbys(), ["6d5132c2"]);
    assert_eq!(master.status.older_wal_file, "000000010000000000000001");

    let standby = &cd.dbs["6d5132c2"];
    assert_eq!(standby.spec.role, Some(DbRole::Standby));
    assert!(!standby.spec.synchronous_replication);
    let fc = standby.spec.follow_config.as_ref().expect("followConfig");
    assert_eq!((fc.follow_type.clone(), fc.db_uid.as_str()), (Some(FollowType::Internal), "c7399fa2"));
    assert_eq!(standby.spec.followers, Some(vec![]));
    assert_eq!(standby.spec.synchronous_standbys, None);
    assert_eq!(cd.db_of_keeper("keeper1").map(|d| d.uid.as_str()), Some("6d5132c2"));

    assert_eq!(cd.proxy.generation, 2);
    assert_eq!(cd.proxy.spec.master_db_uid, "c7399fa2");
    assert_eq!(cd.proxy.spec.enabled_proxies, ["565d49d5"]);

    let out = cd.to_json().expect("serialises");
    assert_same_meaning("clusterdata", &value, &out);
    let again = ClusterData::from_json(&out).expect("our output parses").expect("not null");
    assert_eq!(again, cd, "parse -> write -> parse is the identity");
}

#[test]
fn keeper_info_is_read_and_written_back_with_the_same_meaning() {
    let (key, value) = record("keepers-info.json");
    assert_eq!(key, "stolon/cluster/bars24179/keepers/info/keeper0");
    let ki: KeeperInfo = serde_json::from_value(value.clone()).expect("stolon's keeper info parses");
    assert_eq!((ki.info_uid.as_str(), ki.uid.as_str(), ki.cluster_uid.as_str()), ("d140d1d0", "keeper0", "a008687a"));
    assert_eq!(ki.boot_uuid, "e9b65698-cca1-4881-b0ec-9cf5d1d46978");
    assert_eq!((ki.postgres_binary_version.maj, ki.postgres_binary_version.min), (15, 18));
    assert_eq!((ki.can_be_master, ki.can_be_synchronous_replica), (Some(true), Some(true)));
    assert_eq!(ki.priority, None, "stolon 0.17 has no priority");
    let ps = ki.postgres_state.as_ref().expect("postgresState");
    assert_eq!((ps.uid.as_str(), ps.generation, ps.healthy), ("c7399fa2", 4, true));
    assert_eq!((ps.listen_address.as_str(), ps.port.as_str()), ("127.0.0.1", "34337"));
    assert_eq!((ps.system_id.as_str(), ps.timeline_id, ps.x_log_pos), ("7716043639102590950", 1, 50_331_648));
    assert_eq!(ps.synchronous_standbys.as_deref(), Some(&["6d5132c2".to_string()][..]));
    assert_eq!(ps.pg_parameters.get("wal_level").map(String::as_str), Some("replica"));
    assert_eq!(ps.older_wal_file, "000000010000000000000001");
    assert_same_meaning("keeperinfo", &value, &serde_json::to_vec(&ki).unwrap());
}

#[test]
fn sentinel_and_proxy_infos_are_read_and_written_back_with_the_same_meaning() {
    let (key, value) = record("sentinels-info.json");
    assert_eq!(key, "stolon/cluster/bars24179/sentinels/info/e25d2f27");
    let si: SentinelInfo = serde_json::from_value(value.clone()).expect("stolon's sentinel info parses");
    assert_eq!(si.uid, "e25d2f27");
    assert_same_meaning("sentinelinfo", &value, &serde_json::to_vec(&si).unwrap());

    let (key, value) = record("proxies-info.json");
    assert_eq!(key, "stolon/cluster/bars24179/proxies/info/565d49d5");
    let pi: ProxyInfo = serde_json::from_value(value.clone()).expect("stolon's proxy info parses");
    assert_eq!((pi.info_uid.as_str(), pi.uid.as_str(), pi.generation), ("77de05ff", "565d49d5", 2));
    assert_eq!(pi.proxy_timeout, GoDuration::from_secs(15), "ProxyTimeout is integer nanoseconds");
    assert_same_meaning("proxyinfo", &value, &serde_json::to_vec(&pi).unwrap());
}

#[test]
fn sentinel_leader_record_is_the_leaders_uid_under_the_election_prefix() {
    let (key, value) = record("sentinel-leader.json");
    let (prefix, lease) = key.rsplit_once('/').expect("a key with a lease suffix");
    assert_eq!(prefix, "stolon/cluster/bars24179/sentinel-leader", "etcd v3 election prefix");
    assert!(u64::from_str_radix(lease, 16).is_ok(), "the suffix is the lease id in hex: {lease}");
    let (_, sentinel) = record("sentinels-info.json");
    assert_eq!(value, sentinel["UID"], "the election value is the leading sentinel's UID");
}

#[test]
fn keeper_state_files_are_read_and_written_back_byte_for_byte() {
    let raw = read("keeper-datadir-keeperstate.json");
    let ks: KeeperLocalState = serde_json::from_slice(&raw).expect("keeperstate parses");
    assert_eq!((ks.uid.as_str(), ks.cluster_uid.as_str()), ("keeper0", "a008687a"));
    assert_eq!(serde_json::to_vec(&ks).unwrap(), raw.trim_ascii_end(), "keeperstate as stolon writes it");

    let raw = read("keeper-datadir-dbstate.json");
    let db: DbLocalState = serde_json::from_slice(&raw).expect("dbstate parses");
    assert_eq!((db.uid.as_str(), db.generation, db.initializing), ("c7399fa2", 4, false));
    let init = db.init_pg_parameters.clone().expect("InitPGParameters");
    assert_eq!(init.len(), 22);
    assert_eq!(init.get("max_wal_senders").map(String::as_str), Some("47"));
    assert_eq!(init.get("port").map(String::as_str), Some("34337"));
    assert_eq!(serde_json::to_vec(&db).unwrap(), raw.trim_ascii_end(), "dbstate as stolon writes it");
}

#[test]
fn the_comparison_reports_lost_added_and_changed_fields() {
    let stolon = serde_json::json!({"a": 1, "b": null, "t": {"changeTime": "2026-12-06T04:30:23.1Z"}, "l": [1, 2]});
    let same = br#"{"a": 1, "t": {"changeTime": "2026-12-06T04:30:23.100000000+00:00"}, "l": [1, 2]}"#;
    let mut diffs = Vec::new();
    differences("d", &stolon, &serde_json::from_slice(same).unwrap(), &mut diffs);
    assert!(diffs.is_empty(), "{diffs:?}");
    let other = serde_json::json!({"t": {"changeTime": "2026-12-06T04:30:23.2Z"}, "l": [2, 1], "x": false});
    differences("d", &stolon, &other, &mut diffs);
    assert_eq!(
        diffs,
        [
            "d.a: lost (stolon wrote 1)",
            "d.l[0]: 1 became 2",
            "d.l[1]: 2 became 1",
            "d.t.changeTime: \"2026-12-06T04:30:23.1Z\" became \"2026-12-06T04:30:23.2Z\"",
            "d.x: added (false)",
        ]
    );
}
