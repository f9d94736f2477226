//! The grouped operations scenarios of `e2e_ops` (one cluster per group of checks that do not interfere).

pub mod keepers;
pub mod pause;
pub mod requests;
