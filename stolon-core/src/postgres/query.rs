//! SQL on the local instance through tokio-postgres over the unix socket, as the superuser, database
//! `postgres`, each call bounded by the request timeout. Short queries share one kept connection
//! ([`LocalConn::kept`]), opened again when PostgreSQL closed it: a new connection per query costs a
//! backend start and an authentication, which on a loaded machine took seconds and made the keeper report a
//! healthy instance as failed.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::config::SOCKET_DIR;
use super::error::{PgError, PgResult};
use crate::cluster::PgParameters;

/// Superuser connection parameters to the local instance.
#[derive(Clone)]
pub struct LocalConn {
    /// `port`.
    pub port: u16,
    /// Superuser name.
    pub user: String,
    /// Superuser password (`None` with trust).
    pub password: Option<String>,
    /// Bound of every connection and query.
    pub timeout: Duration,
    /// The connection kept for short queries (shared by clones; see [`LocalConn::separate`]).
    kept: Arc<tokio::sync::Mutex<Option<Arc<Client>>>>,
}

impl std::fmt::Debug for LocalConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConn").field("port", &self.port).field("user", &self.user).finish_non_exhaustive()
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes an SQL string literal (standard_conforming_strings is on in every supported version).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Roles to create on a new database (reference 5.2).
#[derive(Clone)]
pub struct RolesSpec {
    /// Superuser name.
    pub su_user: String,
    /// Superuser password (`None` with trust auth).
    pub su_password: Option<String>,
    /// Replication user name.
    pub repl_user: String,
    /// Replication password (`None` with trust auth).
    pub repl_password: Option<String>,
}

/// The SQL statements creating the roles, run in one transaction after disabling statement logging.
pub fn role_statements(r: &RolesSpec) -> Vec<String> {
    let mut s = vec!["SET LOCAL log_statement = 'none'".to_string()];
    let pw = |p: &Option<String>| p.as_ref().filter(|p| !p.is_empty()).map(|p| quote_literal(p));
    if r.su_user == r.repl_user {
        let mut stmt = format!("ALTER ROLE {} WITH LOGIN REPLICATION", quote_ident(&r.su_user));
        if let Some(p) = pw(&r.su_password) {
            stmt.push_str(&format!(" ENCRYPTED PASSWORD {p}"));
        }
        s.push(stmt);
    } else {
        if let Some(p) = pw(&r.su_password) {
            s.push(format!("ALTER ROLE {} WITH ENCRYPTED PASSWORD {p}", quote_ident(&r.su_user)));
        }
        let mut stmt = format!("CREATE ROLE {} WITH LOGIN REPLICATION", quote_ident(&r.repl_user));
        if let Some(p) = pw(&r.repl_password) {
            stmt.push_str(&format!(" ENCRYPTED PASSWORD {p}"));
        }
        s.push(stmt);
    }
    s
}

/// Where a standby's replay stands, both positions read in one query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayPositions {
    /// The last WAL position replayed (`pg_last_wal_replay_lsn()`); 0 on an instance never in recovery.
    pub replayed: u64,
    /// The WAL end of the server the WAL receiver streams from, as that server last reported it
    /// (`pg_stat_wal_receiver.latest_end_lsn`); 0 when not streaming or nothing was reported yet.
    pub upstream_end: u64,
}

impl LocalConn {
    /// Superuser connection parameters; nothing is connected yet.
    pub fn new(port: u16, user: impl Into<String>, password: Option<String>, timeout: Duration) -> LocalConn {
        LocalConn { port, user: user.into(), password, timeout, kept: Arc::default() }
    }

    /// The same parameters with a kept connection of its own: its queries never wait behind another
    /// user's (the state machine's and the observation loop's).
    pub fn separate(&self) -> LocalConn {
        LocalConn { kept: Arc::default(), ..self.clone() }
    }

    /// The kept connection, opened when there is none or PostgreSQL closed it; `true` with one reused.
    async fn kept_client(&self) -> PgResult<(Arc<Client>, bool)> {
        let mut kept = self.kept.lock().await;
        if let Some(c) = kept.as_ref().filter(|c| !c.is_closed()) {
            return Ok((c.clone(), true));
        }
        *kept = None;
        let c = Arc::new(self.connect().await?);
        *kept = Some(c.clone());
        Ok((c, false))
    }

    /// Drops the kept connection if it is still `client` (a later query opens a new one).
    async fn forget(&self, client: &Arc<Client>) {
        let mut kept = self.kept.lock().await;
        if kept.as_ref().is_some_and(|k| Arc::ptr_eq(k, client)) {
            *kept = None;
        }
    }

    /// Runs `query` on the kept connection, bounded by the timeout. A reused connection found closed (a
    /// restart of PostgreSQL) is replaced once; one that timed out is dropped, so that the next query does
    /// not queue behind a statement still running.
    async fn on_kept<T, F, Fut>(&self, what: &'static str, query: F) -> PgResult<T>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let mut retried = false;
        loop {
            let (client, reused) = self.kept_client().await?;
            match tokio::time::timeout(self.timeout, query(client.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(source)) => {
                    if !connection_lost(&client, &source) {
                        return Err(PgError::Query { what, source });
                    }
                    self.forget(&client).await;
                    if !reused || retried {
                        return Err(PgError::Query { what, source });
                    }
                    tracing::debug!(error = %source, "the kept connection to postgres was closed: reconnecting");
                    retried = true;
                }
                Err(_) => {
                    self.forget(&client).await;
                    return Err(PgError::Timeout(format!("query {what} after {:?}", self.timeout)));
                }
            }
        }
    }

    async fn bounded<T, F: Future<Output = Result<T, tokio_postgres::Error>>>(
        &self,
        what: &'static str,
        f: F,
    ) -> PgResult<T> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r.map_err(|source| PgError::Query { what, source }),
            Err(_) => Err(PgError::Timeout(format!("query {what} after {:?}", self.timeout))),
        }
    }

    /// Opens a connection (its driver task runs in the background until the client is dropped).
    pub async fn connect(&self) -> PgResult<Client> {
        let mut c = tokio_postgres::Config::new();
        c.host_path(SOCKET_DIR).port(self.port).user(&self.user).dbname("postgres").connect_timeout(self.timeout);
        c.application_name("stolon-keeper");
        if let Some(p) = &self.password {
            c.password(p);
        }
        let (client, conn) = self.bounded("connect", c.connect(NoTls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// `select 1`: whether the instance accepts connections.
    pub async fn ping(&self) -> PgResult<()> {
        self.on_kept("ping", |c| async move { c.simple_query("select 1").await }).await.map(|_| ())
    }

    /// Polls [`Self::ping`] every 200ms until it succeeds or `timeout` elapses (`None` = forever).
    pub async fn wait_ready(&self, timeout: Option<Duration>) -> PgResult<()> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let err = match self.ping().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(PgError::Timeout(format!("postgres not ready: {err}")));
            }
            tokio::time::sleep(super::process::POLL_INTERVAL).await;
        }
    }

    /// Creates the superuser password and replication role of a new database.
    pub async fn create_roles(&self, roles: &RolesSpec) -> PgResult<()> {
        let mut c = self.connect().await?;
        let tx = self.bounded("begin", c.transaction()).await?;
        for stmt in role_statements(roles) {
            self.bounded("create roles", tx.batch_execute(&stmt)).await?;
        }
        self.bounded("commit", tx.commit()).await?;
        // The same events stolon logs (operators and the end-to-end tests look for them).
        if roles.su_user == roles.repl_user {
            tracing::info!(role = %roles.su_user, "replication role added to superuser");
        } else {
            if roles.su_password.as_deref().is_some_and(|p| !p.is_empty()) {
                tracing::info!(role = %roles.su_user, "superuser password set");
            }
            tracing::info!(role = %roles.repl_user, "replication role created");
        }
        Ok(())
    }

    /// Names of the physical, non-temporary replication slots.
    pub async fn replication_slots(&self) -> PgResult<BTreeSet<String>> {
        let sql = "select slot_name::text from pg_replication_slots where slot_type = 'physical' and not temporary";
        let rows = self.on_kept("replication slots", |c| async move { c.query(sql, &[]).await }).await?;
        Ok(rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect())
    }

    /// Creates a physical replication slot.
    pub async fn create_slot(&self, name: &str) -> PgResult<()> {
        let sql = "select pg_create_physical_replication_slot($1)";
        self.on_kept("create slot", |c| async move { c.execute(sql, &[&name]).await }).await.map(|_| ())
    }

    /// Drops a replication slot.
    pub async fn drop_slot(&self, name: &str) -> PgResult<()> {
        let sql = "select pg_drop_replication_slot($1)";
        self.on_kept("drop slot", |c| async move { c.execute(sql, &[&name]).await }).await.map(|_| ())
    }

    /// `application_name`s of the walsenders in `sync` state.
    pub async fn sync_standby_names(&self) -> PgResult<Vec<String>> {
        let sql = "select application_name::text from pg_stat_replication where sync_state = 'sync'";
        let rows = self.on_kept("pg_stat_replication", |c| async move { c.query(sql, &[]).await }).await?;
        Ok(rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect())
    }

    /// Where replay stands, read at one instant: see [`ReplayPositions`].
    pub async fn replay_positions(&self) -> PgResult<ReplayPositions> {
        let sql = "select pg_last_wal_replay_lsn()::text, \
                   (select latest_end_lsn::text from pg_stat_wal_receiver where status = 'streaming' limit 1)";
        let row = self.on_kept("replay positions", |c| async move { c.query_one(sql, &[]).await }).await?;
        let lsn = |i: usize, what: &'static str| -> PgResult<u64> {
            match row.try_get::<_, Option<String>>(i).ok().flatten() {
                None => Ok(0),
                Some(text) => super::replication::parse_lsn(&text).ok_or(PgError::Parse { what, detail: text }),
            }
        };
        Ok(ReplayPositions {
            replayed: lsn(0, "pg_last_wal_replay_lsn()")?,
            upstream_end: lsn(1, "pg_stat_wal_receiver.latest_end_lsn")?,
        })
    }

    /// Whether a changed parameter waits for a restart (`pg_settings.pending_restart`). Recovery parameters
    /// are left out: the keeper restarts a standby itself when they change, and a promotion removes them from
    /// the configuration, which PostgreSQL flags as pending for `recovery_target_timeline` although nothing
    /// changes for a primary.
    pub async fn pending_restart(&self) -> PgResult<bool> {
        let sql = "select bool_or(pending_restart) from pg_settings where name not like 'recovery\\_target%' \
                   and name not in ('primary_conninfo', 'primary_slot_name', 'restore_command')";
        let row = self.on_kept("pending restart", |c| async move { c.query_one(sql, &[]).await }).await?;
        Ok(row.try_get::<_, Option<bool>>(0).ok().flatten().unwrap_or(false))
    }

    /// Parameters set in the configuration files (`pg_file_settings`, later entries win).
    pub async fn file_settings(&self) -> PgResult<PgParameters> {
        let sql = "select name, setting from pg_file_settings where name is not null and setting is not null \
                   order by seqno";
        let rows = self.on_kept("pg_file_settings", |c| async move { c.query(sql, &[]).await }).await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.try_get::<_, String>(0).ok()?, r.try_get::<_, String>(1).ok()?)))
            .collect())
    }

    /// A setting's current value (`current_setting`).
    pub async fn setting(&self, name: &str) -> PgResult<String> {
        let sql = "select current_setting($1)";
        let row = self.on_kept("current_setting", |c| async move { c.query_one(sql, &[&name]).await }).await?;
        row.try_get(0).map_err(|source| PgError::Query { what: "current_setting", source })
    }

    /// `CHECKPOINT` (after a promotion, so that pg_control carries the new timeline at once).
    pub async fn checkpoint(&self) -> PgResult<()> {
        let c = self.connect().await?;
        self.bounded("checkpoint", c.batch_execute("CHECKPOINT")).await
    }

    /// Whether the instance is in recovery (a standby).
    pub async fn in_recovery(&self) -> PgResult<bool> {
        let sql = "select pg_is_in_recovery()";
        let row = self.on_kept("pg_is_in_recovery", |c| async move { c.query_one(sql, &[]).await }).await?;
        row.try_get(0).map_err(|source| PgError::Query { what: "pg_is_in_recovery", source })
    }
}

/// Whether `error` of a query on `client` means the connection is gone (PostgreSQL closed it, or ended its
/// backend: the `FATAL` "terminating connection" of a shutdown or of `pg_terminate_backend` arrives before
/// the connection is seen closed), rather than an error of the query.
fn connection_lost(client: &Client, error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::Severity;
    client.is_closed()
        || error.is_closed()
        || error.as_db_error().is_some_and(|db| matches!(db.parsed_severity(), Some(Severity::Fatal | Severity::Panic)))
}

/// Runs `CHECKPOINT` on a remote instance over TCP as `user`: pg_rewind reads the source's timeline from its
/// control file, which a freshly promoted primary updates only at its next checkpoint.
pub async fn remote_checkpoint(
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
    timeout: Duration,
) -> PgResult<()> {
    let mut c = tokio_postgres::Config::new();
    c.host(host).port(port).user(user).dbname("postgres").connect_timeout(timeout).application_name("stolon-keeper");
    if let Some(p) = password {
        c.password(p);
    }
    let run = async {
        let (client, conn) = c.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client.batch_execute("CHECKPOINT").await
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r.map_err(|source| PgError::Query { what: "remote checkpoint", source }),
        Err(_) => Err(PgError::Timeout("remote checkpoint".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn roles_for_distinct_and_shared_users() {
        let r = RolesSpec {
            su_user: "su".into(),
            su_password: Some("s'p".into()),
            repl_user: "repl".into(),
            repl_password: Some("rp".into()),
        };
        assert_eq!(
            role_statements(&r),
            [
                "SET LOCAL log_statement = 'none'",
                "ALTER ROLE \"su\" WITH ENCRYPTED PASSWORD 's''p'",
                "CREATE ROLE \"repl\" WITH LOGIN REPLICATION ENCRYPTED PASSWORD 'rp'"
            ]
        );
        let shared = RolesSpec { repl_user: "su".into(), repl_password: None, su_password: None, ..r };
        assert_eq!(role_statements(&shared)[1], "ALTER ROLE \"su\" WITH LOGIN REPLICATION");
    }
}
