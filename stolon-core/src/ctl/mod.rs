//! The operations behind stolonctl, usable by any tool that embeds stolon-core.
//!
//! Operations take a [`ClusterStore`](crate::store::ClusterStore) and return data or rendered strings; they
//! never print and never read stdin, so the caller decides about prompts and output. Every write is a
//! compare-and-swap: read-modify-write operations retry on concurrent changes ([`retry`]); whole-document
//! replacements (`init`, `clusterdata write`) are split into a plan (validated input plus what it replaces,
//! to show the user) and an apply that fails if the store changed in between.

pub mod clusterdata;
pub mod consul;
pub mod current;
pub mod error;
pub mod init;
pub mod json;
pub mod keepers;
pub mod ops;
pub mod promote;
pub mod register;
pub mod restart;
pub mod retry;
pub mod spec;
pub mod status;
pub mod status_ops;
mod table;
pub mod update;

pub use clusterdata::{WritePlan, apply_write, parse_cluster_data, plan_write, read_cluster_data};
pub use current::{ExistingClusterData, describe, existing_cluster_data, usable_cluster_data};
pub use error::CtlError;
pub use init::{InitOutcome, InitPlan, apply_init, default_init_spec, init_spec, plan_init};
pub use keepers::{RemovedKeeper, fail_keeper, remove_keeper};
pub use ops::{
    AcceptedSwitchover, SwitchoverRequest, cancel_switchover, pause, request_switchover, resume, set_maintenance,
    wait_switchover,
};
pub use promote::{PromoteOutcome, promote};
pub use restart::{OperationKind, request_reinit, request_restart, wait_operation};
pub use retry::{Decision, MAX_ATTEMPTS, Modified, modify_cluster_data};
pub use spec::{current_spec, parse_spec, render_spec};
pub use status::{Status, StatusReport, gather_status, render_json, render_text};
pub use update::{SpecUpdate, merge_patch, update_spec, update_spec_with_attempts};
