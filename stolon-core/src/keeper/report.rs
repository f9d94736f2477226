//! The KeeperInfo a keeper publishes (reference 2.7).

use crate::cluster::{KeeperInfo, PostgresBinaryVersion, PostgresState, new_uid};
use crate::postgres::PgVersion;

/// Static parts of the keeper's info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportIdentity {
    /// Keeper UID.
    pub uid: String,
    /// This process's incarnation.
    pub boot_uuid: String,
    /// Binary version, if known.
    pub version: Option<PgVersion>,
    /// `--can-be-master`.
    pub can_be_master: bool,
    /// `--can-be-synchronous-replica`.
    pub can_be_synchronous_replica: bool,
    /// The keeper API's URL (empty when the API is off).
    pub api_url: String,
    /// `--priority`.
    pub priority: i64,
}

/// A KeeperInfo with a fresh `infoUID` (the sentinel's heartbeat).
pub fn keeper_info(id: &ReportIdentity, cluster_uid: &str, state: Option<PostgresState>) -> KeeperInfo {
    KeeperInfo {
        info_uid: new_uid(),
        uid: id.uid.clone(),
        cluster_uid: cluster_uid.to_string(),
        boot_uuid: id.boot_uuid.clone(),
        postgres_binary_version: id
            .version
            .map(|v| PostgresBinaryVersion { maj: i64::from(v.major), min: i64::from(v.minor) })
            .unwrap_or_default(),
        priority: Some(id.priority),
        postgres_state: state,
        can_be_master: Some(id.can_be_master),
        can_be_synchronous_replica: Some(id.can_be_synchronous_replica),
        api_url: id.api_url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_has_fresh_uid_and_versions() {
        let id = ReportIdentity {
            uid: "k1".into(),
            boot_uuid: "b".into(),
            version: Some(PgVersion { major: 15, minor: 4 }),
            can_be_master: false,
            can_be_synchronous_replica: true,
            api_url: String::new(),
            priority: 3,
        };
        let a = keeper_info(&id, "c", None);
        let b = keeper_info(&id, "c", None);
        assert_ne!(a.info_uid, b.info_uid);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["postgresBinaryVersion"], serde_json::json!({"Maj": 15, "Min": 4}));
        assert_eq!(json["canBeMaster"], false);
        assert_eq!(json["clusterUID"], "c");
        assert!(json.get("apiURL").is_none(), "no apiURL when the API is off: {json}");
        let with_api = keeper_info(&ReportIdentity { api_url: "https://10.0.0.1:8008".into(), ..id }, "c", None);
        assert_eq!(serde_json::to_value(&with_api).unwrap()["apiURL"], "https://10.0.0.1:8008");
        assert_eq!(json["priority"], 3);
    }
}
