//! The keeper's HTTP API (`--api-listen-address`): Patroni's health and role endpoints, whose status code says
//! whether this member should receive a kind of traffic now, so that load balancers and probes can route.
//!
//! [`endpoint`] parses requests, [`verdict`] decides every answer as a pure function of the keeper's view
//! ([`view`]) and of PostgreSQL observed at the request ([`sample`]); [`server`] is the HTTP shell, with
//! [`tls`] and [`auth`]; [`client`] calls a keeper's API.

pub mod auth;
pub mod client;
pub mod endpoint;
pub mod sample;
pub mod server;
pub mod tls;
pub mod verdict;
pub mod view;

use std::net::{IpAddr, SocketAddr};

pub use auth::BasicAuth;
pub use client::{ApiClient, ApiClientError, ApiResponse, ClientOptions};
pub use endpoint::{Check, Endpoint};
pub use server::{ApiListener, ApiState, MetricsRender, ServeOptions};
pub use view::{KeeperLoop, KeeperView};

/// The URL published as `apiURL`: `http(s)://<host>:<port>` where the host is the listen address, or
/// `advertise_host` (the keeper's `--pg-advertise-address`) when it listens on every interface.
pub fn api_url(listen: SocketAddr, tls: bool, advertise_host: &str) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = if listen.ip().is_unspecified() { advertise_host.to_string() } else { listen.ip().to_string() };
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host,
    };
    format!("{scheme}://{host}:{}", listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_url() {
        assert_eq!(api_url("10.0.0.1:8008".parse().unwrap(), false, "db1"), "http://10.0.0.1:8008");
        assert_eq!(api_url("0.0.0.0:8008".parse().unwrap(), true, "10.1.2.3"), "https://10.1.2.3:8008");
        assert_eq!(api_url("[::]:8008".parse().unwrap(), false, "fd00::1"), "http://[fd00::1]:8008");
        assert_eq!(api_url("[::1]:8008".parse().unwrap(), false, "x"), "http://[::1]:8008");
        assert_eq!(api_url("0.0.0.0:8008".parse().unwrap(), false, "keeper-0.stolon"), "http://keeper-0.stolon:8008");
    }
}
