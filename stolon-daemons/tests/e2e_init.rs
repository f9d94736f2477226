//! stolon's initialisation scenarios (init_test.go and pitr_test.go): init modes new (with and without
//! merging the initdb parameters), existing and pitr (with and without a recovery target), the users the
//! keeper creates, the initial cluster spec, the data directory lock and password files.
//!
//! Where stolon waits for its keeper's log lines, these scenarios wait for the same lines, verbatim (the
//! keeper keeps stolon's wording: docs/log-messages.md), and also check what the log line claims (roles and
//! passwords in PostgreSQL).

#[path = "e2e/harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::json;
use stolon_core::cluster::ClusterPhase;
use tokio_postgres::Client;

use harness::sql;
use harness::{Env, R, Scenario, TestCluster, WAIT, base_spec, merged, wait_for};

/// Bound of the waits for a keeper's log line or exit.
const LOG_WAIT: Duration = Duration::from_secs(60);

fn main() {
    let mut all = vec![Scenario::full("TestInit", test_init)];
    for merge in [true, false] {
        let suffix = if merge { "Merge" } else { "NoMerge" };
        let new = Scenario::full(format!("TestInitNew{suffix}"), move |env| test_init_new(env, merge));
        let existing = Scenario::full(format!("TestInitExisting{suffix}"), move |env| test_init_existing(env, merge));
        // The merge variants capture initdb's parameters: the version-dependent half.
        all.extend(if merge { [new.across_versions(), existing.across_versions()] } else { [new, existing] });
    }
    all.extend([
        Scenario::full("TestInitUsers", test_init_users),
        Scenario::full("TestInitialClusterSpec", test_initial_cluster_spec),
        Scenario::full("TestExclusiveLock", test_exclusive_lock),
        Scenario::full("TestPasswordTrailingNewLine", test_password_trailing_new_line),
        Scenario::full("TestPITR", |env| test_pitr(env, false)).across_versions(),
        Scenario::full("TestPITRRecoveryTarget", |env| test_pitr(env, true)),
    ]);
    harness::runner::run(all);
}

/// One sentinel with the initial spec and one keeper: the DB comes up.
async fn test_init(env: Env) -> R<()> {
    let c = TestCluster::start(&env, &base_spec(), 1, 1, 0).await?;
    let uid = c.wait_master_ready().await?;
    sql::exec(&c.connect(&uid).await?, "SELECT 1").await
}

/// After a `new` init the spec holds initdb's parameters (`max_connections`) exactly when
/// `mergePgParameters` is on.
async fn test_init_new(env: Env, merge: bool) -> R<()> {
    let spec = merged(base_spec(), &json!({ "mergePgParameters": merge }));
    let c = TestCluster::start(&env, &spec, 1, 1, 0).await?;
    let uid = c.wait_master_ready().await?;
    c.wait_db_ready(&uid, WAIT).await?;
    let params = c.cd().await?.cluster.spec.pg_parameters.unwrap_or_default();
    ensure!(
        params.contains_key("max_connections") == merge,
        "mergePgParameters {merge}: max_connections in the spec's pgParameters: {:?}",
        params.get("max_connections")
    );
    Ok(())
}

/// `stolonctl init` in mode `existing` on the keeper of a running cluster keeps its data; the parameters of
/// the existing instance (`archive_mode`) are kept in the instance and the spec exactly when merging.
async fn test_init_existing(env: Env, merge: bool) -> R<()> {
    let spec = merged(base_spec(), &json!({ "pgParameters": { "archive_mode": "on" } }));
    let c = TestCluster::start(&env, &spec, 1, 1, 0).await?;
    let uid = c.wait_master_ready().await?;
    c.wait_db_ready(&uid, WAIT).await?;
    let k = c.connect(&uid).await?;
    sql::create_table(&k).await?;
    sql::write_row(&k, 1).await?;
    let old_cluster = c.cd().await?.cluster.uid;

    let existing = merged(
        base_spec(),
        &json!({ "initMode": "existing", "mergePgParameters": merge, "existingConfig": { "keeperUID": uid } }),
    );
    let file = c.dir().join("existing-spec.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&existing)?)?;
    stolonctl_init(&c, &file).await?;
    let cd = c.wait_cd("the cluster initialised again", WAIT, |cd| cd.cluster.uid != old_cluster).await?;
    ensure!(
        cd.cluster.status.phase == Some(ClusterPhase::Initializing),
        "a new cluster starts initializing, got {:?}",
        cd.cluster.status.phase
    );
    c.wait_master_is(&uid, WAIT).await?;
    c.wait_master().await?;
    c.wait_db_ready(&uid, WAIT).await?;
    c.wait_in_recovery(&uid, false, WAIT).await?;
    c.wait_rows(&uid, &[1], WAIT).await?;

    let archive_mode = sql::file_parameters(&c.connect(&uid).await?).await?.remove("archive_mode");
    let spec_archive_mode = c.cd().await?.cluster.spec.pg_parameters.unwrap_or_default().remove("archive_mode");
    let want = merge.then(|| "on".to_string());
    ensure!(archive_mode == want, "merge {merge}: archive_mode in the instance is {archive_mode:?}, want {want:?}");
    ensure!(
        spec_archive_mode == want,
        "merge {merge}: archive_mode in the spec is {spec_archive_mode:?}, want {want:?}"
    );
    Ok(())
}

/// Superuser and replication user: the same name with different passwords is refused at start; the same
/// name and password gives the superuser the replication role; different names set the superuser password
/// and create the replication role.
async fn test_init_users(env: Env) -> R<()> {
    let mut c = TestCluster::new(&env, &base_spec()).await?;
    let uid = new_keeper_with_users(&mut c, ("user01", "password01"), ("user01", "password02")).await?;
    let k = c.keeper(&uid)?;
    k.start()?;
    ensure!(!k.proc.wait_exited(LOG_WAIT).await?, "the keeper accepted different passwords for one user");
    ensure!(
        k.proc.log_text().contains(
            ": provided superuser name and replication user name are the same but provided passwords are different"
        ),
        "the keeper did not say why it refused the users"
    );

    // Same user and password.
    c.add_sentinel().await?;
    wait_phase(&c, ClusterPhase::Initializing).await?;
    let uid = new_keeper_with_users(&mut c, ("user01", "password"), ("user01", "password")).await?;
    let k = c.keeper(&uid)?;
    k.start()?;
    k.proc.wait_log(0, "replication role added to superuser", LOG_WAIT).await?;
    let port = k.pg_port;
    let client = wait_connect_as(port, "user01", "password").await?;
    ensure!(has_replication(&client, "user01").await?, "user01 has no REPLICATION");

    // Different users, in a cluster of their own.
    let mut c2 = TestCluster::new(&env, &base_spec()).await?;
    c2.add_sentinel().await?;
    wait_phase(&c2, ClusterPhase::Initializing).await?;
    let uid = new_keeper_with_users(&mut c2, ("user01", "password"), ("user02", "password")).await?;
    let k = c2.keeper(&uid)?;
    k.start()?;
    k.proc.wait_log(0, "superuser password set", LOG_WAIT).await?;
    k.proc.wait_log(0, "replication role created role=user02", LOG_WAIT).await?;
    let client = wait_connect_as(k.pg_port, "user01", "password").await?;
    ensure!(has_replication(&client, "user02").await?, "user02 has no REPLICATION");
    sql::exec(&wait_connect_as(k.pg_port, "user02", "password").await?, "SELECT 1").await
}

/// The first sentinel writes its initial cluster spec (with synchronous replication) to the store.
async fn test_initial_cluster_spec(env: Env) -> R<()> {
    let spec = merged(base_spec(), &json!({ "synchronousReplication": true }));
    let c = TestCluster::start(&env, &spec, 0, 1, 0).await?;
    wait_phase(&c, ClusterPhase::Initializing).await?;
    let got = c.cd().await?.cluster.spec.synchronous_replication;
    ensure!(got == Some(true), "synchronousReplication in the stored spec: {got:?}");
    Ok(())
}

/// A second keeper on the data directory of a running one cannot take the lock and exits.
async fn test_exclusive_lock(env: Env) -> R<()> {
    let mut c = TestCluster::new(&env, &base_spec()).await?;
    let first = c.add_keeper().await?;
    c.keeper_ref(&first)?.proc.wait_log(0, "exclusive lock on data dir taken", LOG_WAIT).await?;
    let data_dir = c.keeper_ref(&first)?.data_dir.to_string_lossy().into_owned();
    let second = c.new_keeper(&[]).await?;
    let k = c.keeper(&second)?;
    k.proc.set_arg("--uid", &first);
    k.proc.set_arg("--data-dir", &data_dir);
    k.start()?;
    ensure!(!k.proc.wait_exited(LOG_WAIT).await?, "a second keeper ran on a locked data directory");
    let locked = format!("ERROR stolon_keeper: cannot take exclusive lock on data dir \"{data_dir}/lock\": ");
    ensure!(k.proc.log_text().contains(&locked), "the second keeper did not report the lock ({locked:?})");
    ensure!(c.keeper(&first)?.proc.is_running(), "the first keeper stopped");
    Ok(())
}

/// Password files: trailing newlines are removed with a warning (the stripped password is the one that
/// works); a file holding only a newline is fatal, for the superuser and for the replication user.
async fn test_password_trailing_new_line(env: Env) -> R<()> {
    let mut c = TestCluster::start(&env, &base_spec(), 0, 1, 0).await?;
    let uid = new_keeper_with_files(&mut c, "stolon_superuserpassword\n", "stolon_replpassword\n").await?;
    let k = c.keeper(&uid)?;
    k.start()?;
    k.proc.wait_log(0, "superuser password contain trailing new line, removing", LOG_WAIT).await?;
    k.proc.wait_log(0, "replication user password contain trailing new line, removing", LOG_WAIT).await?;
    // The harness connects with the password without newline.
    c.wait_master_ready().await?;
    c.keeper(&uid)?.stop().await?;

    let fatal =
        [("stolon_superuserpassword\n", "\n", "replication user"), ("\n", "stolon_replpassword\n", "superuser")];
    for (su, repl, empty) in fatal {
        let uid = new_keeper_with_files(&mut c, su, repl).await?;
        let k = c.keeper(&uid)?;
        k.start()?;
        ensure!(!k.proc.wait_exited(LOG_WAIT).await?, "the keeper accepted an empty {empty} password");
        let log = k.proc.log_text();
        let stripped =
            format!("WARN stolon_daemons::keeper_checks: {empty} password contain trailing new line, removing");
        let refused = format!("ERROR stolon_keeper: {empty} password is empty after removing trailing new line");
        ensure!(log.contains(&stripped) && log.contains(&refused), "no {stripped:?} then {refused:?} in the log");
    }
    Ok(())
}

/// Point-in-time recovery: a cluster archives its WAL, a tar base backup is taken, the cluster data is
/// removed, and a sentinel initialises the cluster again in mode `pitr` from the backup and the archive: the
/// keeper comes back as master with the data and the new spec's parameters. With a recovery target time
/// (taken before the backup) the recovery stops there: a row written after the backup is not replayed,
/// while without a target it is (stolon checks only the row written before the backup).
async fn test_pitr(env: Env, recovery_target: bool) -> R<()> {
    let mut c = TestCluster::new(&env, &base_spec()).await?;
    let archive = shared_dir(c.dir(), "archive")?;
    let backup = c.dir().join("basebackup");
    let archive_command = format!("cp %p {}/%f", archive.display());
    c.set_initial_spec(&merged(
        base_spec(),
        &json!({ "pgParameters": { "archive_mode": "on", "archive_command": archive_command } }),
    ))?;
    let uid = c.add_keeper().await?;
    c.add_sentinel().await?;
    c.wait_master_is(&uid, WAIT).await?;
    c.wait_master_ready().await?;
    let k = c.connect(&uid).await?;
    sql::create_table(&k).await?;
    sql::write_row(&k, 2).await?;
    // The server's own clock and time zone, which the recovery reads the target in (stolon: the test's clock,
    // without time zone).
    let target_time = sql::query_text(&k, "SELECT to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS')").await?;
    tar_base_backup(&c, &uid, &backup).await?;
    sql::write_row(&k, 3).await?;
    switch_wal_and_wait_archived(&k).await?;

    c.sentinels[0].stop().await?;
    c.client.store().put_cluster_data(b"null").await.context("removing the cluster data")?;
    let mut pitr = json!({
        "dataRestoreCommand": format!("tar xvf {}/base.tar -C %d", backup.display()),
        "archiveRecoverySettings": { "restoreCommand": format!("cp {}/%f %p", archive.display()) },
    });
    if recovery_target {
        pitr["recoveryTargetSettings"] = json!({ "recoveryTargetTime": target_time });
    }
    c.set_initial_spec(&merged(
        base_spec(),
        &json!({ "initMode": "pitr", "pitrConfig": pitr, "pgParameters": { "max_prepared_transactions": "100" } }),
    ))?;
    c.sentinels[0].start()?;

    c.wait_cd("the pitr init started", WAIT, |cd| {
        cd.db_of_keeper(&uid).is_some_and(|db| db.spec.pitr_config.is_some())
    })
    .await?;
    c.wait_master_is(&uid, WAIT).await?;
    c.wait_master().await?;
    c.wait_db_ready(&uid, WAIT).await?;
    c.wait_in_recovery(&uid, false, WAIT).await?;
    let want: &[i32] = if recovery_target { &[2] } else { &[2, 3] };
    c.wait_rows(&uid, want, WAIT).await?;
    let prepared = sql::file_parameters(&c.connect(&uid).await?).await?.remove("max_prepared_transactions");
    ensure!(prepared.as_deref() == Some("100"), "max_prepared_transactions is {prepared:?}, want 100");
    Ok(())
}

/// `stolonctl init -y -f <file>`. It writes only over the cluster data it read and showed, and asks to be run
/// again when a sentinel wrote in between (as happens on a busy store): up to 3 attempts.
async fn stolonctl_init(c: &TestCluster, file: &Path) -> R<()> {
    let args = ["init", "-y", "-f", &file.to_string_lossy()];
    for _ in 0..2 {
        let out = c.stolonctl(&args).await?;
        if out.status.success() {
            return Ok(());
        }
        if !String::from_utf8_lossy(&out.stderr).contains("run the command again") {
            break;
        }
    }
    c.stolonctl_ok(&args).await.map(|_| ())
}

/// Adds (without starting) a keeper with the given superuser and replication user names and passwords.
async fn new_keeper_with_users(c: &mut TestCluster, su: (&str, &str), repl: (&str, &str)) -> R<String> {
    let uid = c.new_keeper(&[]).await?;
    let p = &mut c.keeper(&uid)?.proc;
    p.set_arg("--pg-su-username", su.0);
    p.set_arg("--pg-su-password", su.1);
    p.set_arg("--pg-repl-username", repl.0);
    p.set_arg("--pg-repl-password", repl.1);
    Ok(uid)
}

/// Adds (without starting) a keeper reading the harness users' passwords from files with these contents.
async fn new_keeper_with_files(c: &mut TestCluster, su: &str, repl: &str) -> R<String> {
    let uid = c.new_keeper(&[]).await?;
    let dir = c.dir().to_path_buf();
    let p = &mut c.keeper(&uid)?.proc;
    for (user, content) in [("su", su), ("repl", repl)] {
        let file = dir.join(format!("{uid}-{user}-password"));
        write_private(&file, content)?;
        p.set_arg(&format!("--pg-{user}-password"), "");
        p.set_arg(&format!("--pg-{user}-passwordfile"), &file.to_string_lossy());
    }
    Ok(uid)
}

/// Writes `content` to `path` readable by its owner only.
fn write_private(path: &Path, content: &str) -> R<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// A directory below `parent` that PostgreSQL (another OS user) can write to.
fn shared_dir(parent: &Path, name: &str) -> R<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join(name);
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    Ok(dir)
}

/// Waits for the cluster phase `phase`.
async fn wait_phase(c: &TestCluster, phase: ClusterPhase) -> R<()> {
    let what = format!("phase {phase}");
    c.wait_cd(&what, WAIT, |cd| cd.cluster.status.phase.as_ref() == Some(&phase)).await.map(|_| ())
}

/// Connects to `port` as `user` once PostgreSQL accepts it.
async fn wait_connect_as(port: u16, user: &str, password: &str) -> R<Client> {
    wait_for(&format!("a connection as {user}"), WAIT, || async {
        Ok(Some(sql::connect_as(port, user, password).await?))
    })
    .await
}

/// Whether role `name` has the REPLICATION attribute.
async fn has_replication(client: &Client, name: &str) -> R<bool> {
    let v =
        sql::query_text(client, &format!("SELECT rolreplication::text FROM pg_roles WHERE rolname = '{name}'")).await?;
    Ok(v == "true")
}

/// `pg_basebackup -F tar -X none` of keeper `uid` into `dir` as the replication user: the WAL it needs comes
/// from the archive only.
async fn tar_base_backup(c: &TestCluster, uid: &str, dir: &Path) -> R<()> {
    let port = c.keeper_ref(uid)?.pg_port;
    let pgpass = c.dir().join("pgpass");
    write_private(&pgpass, &format!("127.0.0.1:{port}:*:{}:{}\n", sql::REPL, sql::REPL_PASSWORD))?;
    let bin = stolon_conformance::servers::postgres_bin_dir()?.join("pg_basebackup");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["-F", "tar", "-X", "none", "-D"]).arg(dir);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", sql::REPL, "-w"]);
    cmd.env("PGPASSFILE", &pgpass).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .context("pg_basebackup did not finish within 120 s")??;
    if !out.status.success() {
        bail!("pg_basebackup failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    // The keeper runs the restore command as PostgreSQL's OS user; pg_basebackup wrote for us only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for f in std::fs::read_dir(dir)? {
        std::fs::set_permissions(f?.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// Switches to a new WAL segment and waits until the closed one is archived.
async fn switch_wal_and_wait_archived(client: &Client) -> R<()> {
    let closed = sql::query_text(client, "SELECT pg_walfile_name(pg_switch_wal())").await?;
    wait_for(&format!("WAL segment {closed} archived"), WAIT, || async {
        let last = sql::query_text(client, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").await?;
        Ok((last.as_str() >= closed.as_str()).then_some(()))
    })
    .await
}
