//! The proxy's operator-visible log messages, worded exactly as stolon 0.17's proxy logs them: operators
//! match these lines in their log searches and alerts, so the words are an interface (structured fields may
//! differ). Every message is listed in docs/log-messages.md; tests assert each one as emitted.

/// The proxy's UID at start.
pub const PROXY_UID: &str = "proxy uid";
/// The master port starts listening.
pub const STARTING_PROXYING: &str = "Starting proxying";
/// The master port stops listening (`--stop-listening`, after `proxyTimeout` without a successful check).
pub const STOPPING_LISTENING: &str = "Stopping listening";
/// No cluster data: every connection closed.
pub const NO_CLUSTER_DATA: &str = "no clusterdata available, closing connections to master";
/// No master DB in the proxy spec, or it is not in the cluster data: every connection closed.
pub const NO_DB_OBJECT: &str = "no db object available, closing connections to master";
/// The master's address cannot be resolved.
pub const CANNOT_RESOLVE_DB_ADDRESS: &str = "cannot resolve db address";
/// The master's address, on every check.
pub const MASTER_ADDRESS: &str = "master address";
/// Forwarding to the master.
pub const PROXYING_TO_MASTER: &str = "proxying to master address";
/// Not in `enabledProxies` yet: forwarding nowhere.
pub const NOT_PROXYING: &str = "not proxying to master address since we aren't in the enabled proxies list";
/// The proxy info cannot be published.
pub const FAILED_TO_UPDATE_PROXY_INFO: &str = "failed to update proxyInfo";
/// A check failed.
pub const CHECK_FUNCTION_ERROR: &str = "check function error";
/// No check succeeded for `proxyTimeout`: every connection closed.
pub const CHECK_TIMEOUT: &str = "check timeout timer fired";

/// The error of a check that found a cluster spec that does not validate.
pub fn cluster_data_invalid(err: &dyn std::fmt::Display) -> String {
    format!("clusterdata validation failed: {err}")
}

/// The error of a check that could not publish the proxy info while a master is defined.
pub fn proxy_info_not_updated(err: &dyn std::fmt::Display) -> String {
    format!("{FAILED_TO_UPDATE_PROXY_INFO}: {err}")
}

/// Every fixed message above (docs/log-messages.md lists each one).
pub const ALL: &[&str] = &[
    PROXY_UID,
    STARTING_PROXYING,
    STOPPING_LISTENING,
    NO_CLUSTER_DATA,
    NO_DB_OBJECT,
    CANNOT_RESOLVE_DB_ADDRESS,
    MASTER_ADDRESS,
    PROXYING_TO_MASTER,
    NOT_PROXYING,
    FAILED_TO_UPDATE_PROXY_INFO,
    CHECK_FUNCTION_ERROR,
    CHECK_TIMEOUT,
];
