//! The `proxy` object of cluster data: where proxies must route and which of them may.

use serde::{Deserialize, Serialize};

use super::serde_util::{is_zero, null_as_default};
use crate::time::Timestamp;

/// Proxy routing state written by the sentinel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proxy {
    /// Unused by stolon.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Bumped whenever `spec` changes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// Last change of this object.
    #[serde(default)]
    pub change_time: Timestamp,
    /// Routing target and enabled proxies. Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: ProxySpec,
    /// Empty object. Always emitted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: ProxyStatus,
}

/// Where proxies forward to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySpec {
    /// DB UID to forward to; empty = forward nowhere.
    #[serde(default, rename = "masterDbUid", skip_serializing_if = "String::is_empty")]
    pub master_db_uid: String,
    /// Sorted proxy UIDs allowed to forward.
    #[serde(
        default,
        rename = "enabledProxies",
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub enabled_proxies: Vec<String>,
}

/// Empty status object (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStatus {}
