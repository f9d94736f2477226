//! stolon-core: everything stolon-rs knows about running a highly available PostgreSQL cluster.
//!
//! The crate holds no `main` and parses no flags. Its layers follow the design:
//! - [`cluster`]: the wire-compatible data model (cluster data, spec, infos) with defaults and validation;
//! - [`duration`] and [`time`]: Go-compatible duration strings and RFC3339 timestamps;
//! - [`byte_size`]: 1024-based byte sizes (`16MB`) of flags and queries;
//! - [`store`]: typed access to a [`stolon_store::Store`] that owns the key layout and (de)serialisation;
//! - [`sentinel`], [`keeper`], [`postgres`], [`proxy`], [`ctl`]: the components' logic, each split into a
//!   pure decision part and a thin IO loop around it.

pub mod byte_size;
pub mod cluster;
pub mod ctl;
pub mod duration;
pub mod failsafe;
pub mod keeper;
pub mod ops;
pub mod postgres;
pub mod proxy;
pub mod sentinel;
pub mod store;
pub mod time;

pub use stolon_store;
