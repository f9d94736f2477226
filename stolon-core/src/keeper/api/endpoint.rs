//! Requests of the keeper API: which endpoint (Patroni's names and aliases), which method, which query
//! parameters. Parsing is pure; a bad request is an [`ApiError`] naming what is wrong.

use std::fmt;

/// The role and health checks: the status code is the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// `/`, `/primary`, `/master`, `/read-write`: the cluster's writable master.
    Primary,
    /// `/standby-leader`: the master of a standby cluster (a standby of the external primary).
    StandbyLeader,
    /// `/leader`: the cluster data names this keeper's DB master, whatever PostgreSQL does.
    Leader,
    /// `/replica`: a healthy standby streaming from the current master.
    Replica,
    /// `/read-only`: the primary or such a replica.
    ReadOnly,
    /// `/synchronous`, `/sync`: a replica that is a synchronous standby of the master.
    Synchronous,
    /// `/asynchronous`, `/async`: a replica that is not a synchronous standby.
    Asynchronous,
    /// `/health`: PostgreSQL runs and answers.
    Health,
    /// `/liveness`: the keeper's loops are alive.
    Liveness,
    /// `/readiness`: ready to serve the role the cluster data gives this keeper (a standby within `?lag=`).
    Readiness,
}

impl Check {
    /// Whether `?lag=` applies to this check.
    pub fn takes_lag(self) -> bool {
        matches!(self, Check::Replica | Check::ReadOnly | Check::Synchronous | Check::Asynchronous | Check::Readiness)
    }

    /// The canonical path.
    pub fn path(self) -> &'static str {
        match self {
            Check::Primary => "/primary",
            Check::StandbyLeader => "/standby-leader",
            Check::Leader => "/leader",
            Check::Replica => "/replica",
            Check::ReadOnly => "/read-only",
            Check::Synchronous => "/synchronous",
            Check::Asynchronous => "/asynchronous",
            Check::Health => "/health",
            Check::Liveness => "/liveness",
            Check::Readiness => "/readiness",
        }
    }
}

/// Every endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A role or health check.
    Check(Check),
    /// `/status` (alias `/patroni`): this member as JSON.
    Status,
    /// `/cluster`: the document of `stolonctl status -f json`.
    Cluster,
    /// `/metrics`: Prometheus metrics, when the API shares the metrics listener.
    Metrics,
    /// `/failsafe/follower`: a standby confirms it follows the master (failsafe mode, docs/reliability.md).
    FailsafeFollower,
    /// `/failsafe/master`: the master says how long proxies may keep forwarding to it (failsafe mode).
    FailsafeMaster,
}

impl Endpoint {
    /// The endpoint of `path` (without the query), if any.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        use Check::*;
        Some(match path {
            "/" | "/primary" | "/master" | "/read-write" => Endpoint::Check(Primary),
            "/standby-leader" => Endpoint::Check(StandbyLeader),
            "/leader" => Endpoint::Check(Leader),
            "/replica" => Endpoint::Check(Replica),
            "/read-only" => Endpoint::Check(ReadOnly),
            "/synchronous" | "/sync" => Endpoint::Check(Synchronous),
            "/asynchronous" | "/async" => Endpoint::Check(Asynchronous),
            "/health" => Endpoint::Check(Health),
            "/liveness" => Endpoint::Check(Liveness),
            "/readiness" => Endpoint::Check(Readiness),
            "/status" | "/patroni" => Endpoint::Status,
            "/cluster" => Endpoint::Cluster,
            "/metrics" => Endpoint::Metrics,
            "/failsafe/follower" => Endpoint::FailsafeFollower,
            "/failsafe/master" => Endpoint::FailsafeMaster,
            _ => return None,
        })
    }
}

/// The HTTP methods the API answers; any other is refused with 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Status code and JSON body.
    Get,
    /// Status code and headers only.
    Head,
    /// Status code only, as Patroni answers it (for load balancers that check with OPTIONS).
    Options,
}

impl Method {
    /// Parses a request method.
    pub fn parse(m: &str) -> Option<Method> {
        match m {
            "GET" => Some(Method::Get),
            "HEAD" => Some(Method::Head),
            "OPTIONS" => Some(Method::Options),
            _ => None,
        }
    }

    /// Whether the response carries a body.
    pub fn has_body(self) -> bool {
        self == Method::Get
    }
}

/// A parsed, valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub endpoint: Endpoint,
    /// How.
    pub method: Method,
    /// `?lag=`: the largest replay lag accepted, in bytes.
    pub max_lag: Option<u64>,
}

/// A refused request: the status code and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// 400, 401, 404 or 405.
    pub status: u16,
    /// What is wrong, naming the path, method or parameter.
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
}

/// Parses the method and the request target (`/path?query`).
pub fn parse_request(method: &str, target: &str) -> Result<Request, ApiError> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let endpoint = Endpoint::from_path(path).ok_or_else(|| {
        ApiError::new(404, format!("unknown path {path:?}: see docs/keeper.md for the endpoints of the keeper API"))
    })?;
    let method = Method::parse(method).ok_or_else(|| {
        ApiError::new(405, format!("method {method} is not allowed: the keeper API answers GET, HEAD and OPTIONS"))
    })?;
    let mut max_lag = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (name, endpoint) {
            ("lag", Endpoint::Check(c)) if c.takes_lag() => {
                if max_lag.is_some() {
                    return Err(ApiError::new(400, "query parameter lag is given twice"));
                }
                max_lag = Some(parse_lag(value).map_err(|m| ApiError::new(400, m))?);
            }
            ("lag", _) => {
                return Err(ApiError::new(
                    400,
                    format!(
                        "query parameter lag does not apply to {path}: only to /replica, /read-only, /synchronous and /asynchronous"
                    ),
                ));
            }
            _ => return Err(ApiError::new(400, format!("unknown query parameter {name:?} for {path}"))),
        }
    }
    Ok(Request { endpoint, method, max_lag })
}

/// Parses a lag bound: a byte size as `--read-only-max-lag` takes it ([`crate::byte_size`]): bytes, or a number
/// with a `kB`, `MB`, `GB` or `TB` suffix, 1024-based and case-insensitive.
pub fn parse_lag(value: &str) -> Result<u64, String> {
    crate::byte_size::parse_byte_size(value).map_err(|e| format!("query parameter lag: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patroni_paths_and_aliases() {
        for (path, check) in [
            ("/", Check::Primary),
            ("/primary", Check::Primary),
            ("/master", Check::Primary),
            ("/read-write", Check::Primary),
            ("/standby-leader", Check::StandbyLeader),
            ("/leader", Check::Leader),
            ("/replica", Check::Replica),
            ("/read-only", Check::ReadOnly),
            ("/synchronous", Check::Synchronous),
            ("/sync", Check::Synchronous),
            ("/asynchronous", Check::Asynchronous),
            ("/async", Check::Asynchronous),
            ("/health", Check::Health),
            ("/liveness", Check::Liveness),
            ("/readiness", Check::Readiness),
        ] {
            assert_eq!(Endpoint::from_path(path), Some(Endpoint::Check(check)), "{path}");
            assert_eq!(Endpoint::from_path(check.path()), Some(Endpoint::Check(check)));
        }
        assert_eq!(Endpoint::from_path("/status"), Some(Endpoint::Status));
        assert_eq!(Endpoint::from_path("/patroni"), Some(Endpoint::Status));
        assert_eq!(Endpoint::from_path("/cluster"), Some(Endpoint::Cluster));
        assert_eq!(Endpoint::from_path("/metrics"), Some(Endpoint::Metrics));
        assert_eq!(Endpoint::from_path("/failsafe/follower"), Some(Endpoint::FailsafeFollower));
        assert_eq!(Endpoint::from_path("/failsafe/master"), Some(Endpoint::FailsafeMaster));
        assert_eq!(Endpoint::from_path("/primary/"), None);
        assert_eq!(Endpoint::from_path(""), None);
    }

    #[test]
    fn methods() {
        let r = parse_request("HEAD", "/replica").unwrap();
        assert_eq!((r.method, r.max_lag), (Method::Head, None));
        assert_eq!(parse_request("OPTIONS", "/").unwrap().method, Method::Options);
        assert!(Method::Get.has_body() && !Method::Head.has_body() && !Method::Options.has_body());
        let e = parse_request("POST", "/primary").unwrap_err();
        assert_eq!(e.status, 405);
        assert!(e.message.contains("POST"), "{e}");
        // An unknown path is a 404 whatever the method.
        assert_eq!(parse_request("DELETE", "/nope").unwrap_err().status, 404);
    }

    #[test]
    fn lag_values() {
        assert_eq!(parse_lag("1048576"), Ok(1 << 20));
        assert_eq!(parse_lag("1024kB"), Ok(1 << 20));
        assert_eq!(parse_lag("16MB"), Ok(16 << 20));
        assert_eq!(parse_lag("1GB"), Ok(1 << 30));
        for bad in ["MB", "-1", "1.5MB", "16XB", "0x10"] {
            let e = parse_lag(bad).unwrap_err();
            assert!(e.contains("lag") && e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(parse_lag("").unwrap_err().contains("empty"));
    }

    #[test]
    fn query_parameters() {
        let r = parse_request("GET", "/replica?lag=16MB").unwrap();
        assert_eq!(r.max_lag, Some(16 << 20));
        assert_eq!(parse_request("GET", "/read-only?lag=1").unwrap().max_lag, Some(1));
        assert_eq!(parse_request("GET", "/sync?lag=1kB").unwrap().max_lag, Some(1024));
        assert_eq!(parse_request("GET", "/async?lag=1kB&").unwrap().max_lag, Some(1024));
        assert_eq!(parse_request("GET", "/readiness?lag=16MB").unwrap().max_lag, Some(16 << 20));
        let e = parse_request("GET", "/replica?lag=lots").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("\"lots\""), "{e}");
        let e = parse_request("GET", "/primary?lag=1").unwrap_err();
        assert!(e.status == 400 && e.message.contains("/primary"), "{e}");
        let e = parse_request("GET", "/replica?lag=1&lag=2").unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = parse_request("GET", "/replica?tag_nofailover=true").unwrap_err();
        assert!(e.status == 400 && e.message.contains("tag_nofailover"), "{e}");
    }
}
