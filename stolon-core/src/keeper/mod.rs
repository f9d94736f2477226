//! The keeper: the pure plan from assigned DB spec and observed instance to actions ([`plan`]), its execution
//! ([`execute`]), the same-major guard on followed masters ([`major`]), local state files ([`state`]), the
//! published KeeperInfo ([`report`]), gauges ([`metrics`]) and the loops ([`run`]); its HTTP API ([`api`])
//! and its role label ([`labels`]).

pub mod api;
pub mod execute;
pub mod labels;
pub mod major;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod state;

pub use metrics::KeeperMetrics;
pub use plan::{Action, Applied, KeeperSettings, Observed, Outcome, Plan, PlanInput, plan};
pub use run::{KeeperConfig, KeeperError, run};
