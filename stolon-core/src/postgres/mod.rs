//! One PostgreSQL instance: versions, configuration files, pg_hba, processes (initdb, postmaster, pg_ctl),
//! local queries, replication facts, resync (pg_basebackup, pg_rewind), the observed state and the release of
//! commits waiting for synchronous standbys.

pub mod config;
pub mod control;
pub mod control_data;
pub mod error;
pub mod hba;
pub mod observe;
pub mod os_user;
pub mod process;
pub mod query;
pub mod replication;
pub mod resync;
pub mod secret_file;
pub mod sync_release;
pub mod version;

pub use error::{PgError, PgResult};
pub use hba::AuthMethod;
pub use os_user::OsUser;
pub use process::{PgProcess, StopMode};
pub use version::PgVersion;
