//! SQL over TCP as the cluster's superuser: straight to a keeper's PostgreSQL or through a proxy.

use std::time::Duration;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use super::R;

/// The superuser every scenario's keepers create (stolon's test names).
pub const SU: &str = "stolon_superuser";
/// Its password.
pub const SU_PASSWORD: &str = "stolon_superuserpassword";
/// The replication user.
pub const REPL: &str = "stolon_repluser";
/// Its password.
pub const REPL_PASSWORD: &str = "stolon_replpassword";

/// The bound of one connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The bound of one statement issued by the harness.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to 127.0.0.1:`port` as `user`; the connection task runs until the client is dropped.
pub async fn connect_as(port: u16, user: &str, password: &str) -> R<Client> {
    connect_at("127.0.0.1", port, user, password).await
}

/// Connects to `host`:`port` as `user` (the nemesis's nodes have their own addresses); the connection task
/// runs until the client is dropped.
pub async fn connect_at(host: &str, port: u16, user: &str, password: &str) -> R<Client> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(host).port(port).user(user).password(password).dbname("postgres");
    cfg.connect_timeout(CONNECT_TIMEOUT);
    let (client, conn) = tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), cfg.connect(NoTls))
        .await
        .with_context(|| format!("connecting to {host}:{port} timed out"))?
        .with_context(|| format!("connecting to {host}:{port} as {user}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Connects to 127.0.0.1:`port` as the superuser.
pub async fn connect(port: u16) -> R<Client> {
    connect_as(port, SU, SU_PASSWORD).await
}

/// Runs `sql` (one or more statements, no parameters), bounded by [`STATEMENT_TIMEOUT`].
pub async fn exec(client: &Client, sql: &str) -> R<()> {
    tokio::time::timeout(STATEMENT_TIMEOUT, client.batch_execute(sql))
        .await
        .with_context(|| format!("{sql:?} timed out"))?
        .with_context(|| format!("{sql:?}"))
}

/// The first column of the first row of `sql` as text.
pub async fn query_text(client: &Client, sql: &str) -> R<String> {
    let row = tokio::time::timeout(STATEMENT_TIMEOUT, client.query_one(sql, &[]))
        .await
        .with_context(|| format!("{sql:?} timed out"))?
        .with_context(|| format!("{sql:?}"))?;
    Ok(row.try_get::<_, String>(0)?)
}

/// The test table stolon's scenarios write to.
pub const TABLE: &str = "table01";

/// Creates [`TABLE`] (id, value).
pub async fn create_table(client: &Client) -> R<()> {
    exec(client, "CREATE TABLE IF NOT EXISTS table01 (id INT PRIMARY KEY NOT NULL, value INT NOT NULL)").await
}

/// Inserts row `id` into [`TABLE`].
pub async fn write_row(client: &Client, id: i32) -> R<()> {
    exec(client, &format!("INSERT INTO table01 VALUES ({id}, {id})")).await
}

/// The ids in [`TABLE`], sorted.
pub async fn row_ids(client: &Client) -> R<Vec<i32>> {
    let rows = tokio::time::timeout(STATEMENT_TIMEOUT, client.query("SELECT id FROM table01 ORDER BY id", &[]))
        .await
        .context("reading table01 timed out")?
        .context("reading table01")?;
    rows.iter().map(|r| Ok(r.try_get::<_, i32>(0)?)).collect()
}

/// Whether the server is a standby (`pg_is_in_recovery()`).
pub async fn in_recovery(client: &Client) -> R<bool> {
    let row = tokio::time::timeout(STATEMENT_TIMEOUT, client.query_one("SELECT pg_is_in_recovery()", &[]))
        .await
        .context("pg_is_in_recovery() timed out")??;
    Ok(row.try_get::<_, bool>(0)?)
}

/// The parameters PostgreSQL took from its configuration file (stolon's GetPGParameters).
pub async fn file_parameters(client: &Client) -> R<std::collections::BTreeMap<String, String>> {
    let rows = tokio::time::timeout(
        STATEMENT_TIMEOUT,
        client.query("SELECT name, setting FROM pg_settings WHERE source = 'configuration file'", &[]),
    )
    .await
    .context("reading pg_settings timed out")??;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// The port the server listens on, as PostgreSQL reports it.
pub async fn server_port(client: &Client) -> R<u16> {
    Ok(query_text(client, "SHOW port").await?.parse()?)
}
