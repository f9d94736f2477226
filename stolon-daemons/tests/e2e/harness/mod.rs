//! The end-to-end harness: real stores, real PostgreSQL, the four binaries as processes. Every
//! `tests/e2e_*.rs` binary includes it and uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod cluster;
pub mod haproxy;
pub mod keeper;
pub mod never;
pub mod process;
pub mod recovery;
pub mod runner;
pub mod scenario;
pub mod sentinels;
pub mod spec;
pub mod sql;
pub mod stolon_fixtures;
pub mod store;
pub mod wait;
pub mod writes;

/// Results of the harness and the scenarios.
pub type R<T> = anyhow::Result<T>;

pub use cluster::{Proxy, TestCluster, WAIT, db_ready, master_keeper, summary};
pub use never::never;
pub use scenario::{Env, Scenario, Tier};
pub use spec::{Variant, base_spec, ha_spec, merged};
pub use store::Backend;
pub use wait::wait_for;
