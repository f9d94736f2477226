//! The keeper: the pure plan from assigned DB spec and observed instance to actions ([`plan`]) and what the
//! DB spec means for the local instance ([`db_config`]: parameters, pg_hba, recovery, slots), its execution
//! ([`execute`]), the check that rewound data can follow its source ([`divergence`]), the same-major guard on
//! followed masters ([`major`]), what a slow or dead instance is reported as ([`observation`]), local state
//! files ([`state`]), the published KeeperInfo ([`report`]), gauges
//! ([`metrics`]) and the loops ([`run`]); its HTTP API ([`api`]) and its role label ([`labels`]); its log
//! messages in stolon's words ([`messages`]), the events of a pass derived from its plan ([`events`]) and the
//! synchronous-failover shortcuts ([`fast_sync`]).

pub mod api;
pub mod db_config;
pub mod divergence;
pub mod events;
pub mod execute;
pub mod fast_sync;
pub mod labels;
pub mod major;
pub mod messages;
pub mod metrics;
pub mod observation;
pub mod plan;
pub mod report;
pub mod run;
pub mod state;

pub use metrics::KeeperMetrics;
pub use plan::{Action, Applied, KeeperSettings, Observed, Outcome, Plan, PlanInput, plan};
pub use run::{KeeperConfig, KeeperError, run};
