//! The proxy: the pure route decisions and the connection forwarding that fences old masters.
//!
//! - [`route`]: what one check decides for the master port, from cluster data and this proxy's state (pure);
//! - [`read_only`]: which standbys the read-only port may use, and its targets (pure);
//! - [`forward`]: the master port's forwarding engine, whose target changes close every forwarded
//!   connection first;
//! - [`kernel`]: kernel forwarding (eBPF sockmap), used by both engines with `--forwarding kernel`;
//! - [`balance`]: the read-only port's engine: several targets, least connections, the same per-target
//!   fencing;
//! - [`listener`]: a client listening socket, stopped and restarted with the store's reachability;
//! - [`read_only_port`]: the read-only port's listener, engine and steps within a check;
//! - [`run`]: the check loop, the ProxyInfo heartbeat and the watchdog;
//! - [`store_contact`]: where a check takes the cluster data from (the watch-fed copy or the store) and what
//!   its publish proves (pure);
//! - [`messages`]: its operator-visible log messages, in stolon's words.

pub mod balance;
pub mod forward;
pub mod kernel;
pub mod listener;
pub mod messages;
pub mod read_only;
pub mod read_only_port;
pub mod route;
pub mod run;
pub mod store_contact;

pub use balance::Balancer;
pub use forward::{ForwardStats, Forwarder, Keepalive};
pub use kernel::{Forwarding, ForwardingMode};
pub use listener::Listener;
pub use read_only::{Fallback, Target, TargetRole, eligible_standbys};
pub use read_only_port::{ReadOnlyConfig, ReadOnlyStats};
pub use route::{MasterEndpoint, Observation, Plan, Timing, plan};
pub use run::{ProxyConfig, ProxyStats, run};
