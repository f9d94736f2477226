//! The proxy: the pure route decision and the connection forwarding that fences old masters.
//!
//! - [`route`]: what one check decides, from cluster data and this proxy's state (pure);
//! - [`forward`]: the forwarding engine, whose target changes close every forwarded connection first;
//! - [`listener`]: the client listening socket, stopped and restarted with the store's reachability;
//! - [`run`]: the check loop, the ProxyInfo heartbeat and the watchdog.

pub mod forward;
pub mod listener;
pub mod route;
pub mod run;

pub use forward::{ForwardStats, Forwarder, Keepalive};
pub use listener::Listener;
pub use route::{MasterEndpoint, Observation, Plan, Timing, plan};
pub use run::{ProxyConfig, ProxyStats, run};
