//! stolon 0.17's operator-visible log lines, asserted verbatim as the real binaries emit them
//! (docs/log-messages.md): the keeper's start-up checks (credentials, password files, data directory lock,
//! UID), the sentinel's leadership and pass, and the proxy's routing, against a real etcd. The decisions'
//! lines are asserted on the decision code itself (stolon-core's `keeper_log_messages` and
//! `sentinel_log_messages`), and the end-to-end scenarios wait for the keeper's reload and start lines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stolon_conformance::servers::{EtcdServer, free_port};
use stolon_core::cluster::{ClusterData, ClusterInitMode, ClusterSpec, Db, DbStatus, ProxySpec};
use stolon_core::duration::GoDuration;
use stolon_core::stolon_store::{self, StoreBackend};
use stolon_core::store::ClusterStore;
use stolon_core::time::Timestamp;

const WAIT: Duration = Duration::from_secs(30);

/// Whether `log` has a line of `level` whose message is exactly `message` (followed by its fields, if any).
fn has_line(log: &str, level: &str, message: &str) -> bool {
    log.lines().any(|l| {
        l.split_once(&format!(" {level} ")).and_then(|(_, rest)| rest.split_once(": ")).is_some_and(|(_, msg)| {
            msg.strip_prefix(message).is_some_and(|after| after.is_empty() || after.starts_with(' '))
        })
    })
}

/// Asserts that `log` has a line of `level` whose message is exactly `message`.
#[track_caller]
fn assert_line(log: &str, level: &str, message: &str) {
    assert!(has_line(log, level, message), "no {level} line {message:?} in:\n{log}");
}

/// A daemon whose stderr goes to a log file; killed on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(bin: &str, args: &[&str], dir: &Path, name: &str) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(bin)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("daemon starts");
        Daemon { child, log }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `message` at `level`.
    async fn wait_line(&self, level: &str, message: &str) {
        let start = Instant::now();
        while !has_line(&self.text(), level, message) {
            assert!(start.elapsed() < WAIT, "no {level} line {message:?} in:\n{}", self.text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn store_args<'a>(etcd: &'a str, cluster: &'a str) -> Vec<&'a str> {
    vec!["--cluster-name", cluster, "--store-backend", "etcdv3", "--store-endpoints", etcd, "--store-timeout", "2s"]
}

/// A real etcd and a store client for `cluster` on it.
async fn etcd_and_store(cluster: &str) -> (EtcdServer, ClusterStore) {
    let etcd = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let config = etcd.config(StoreBackend::EtcdV3, cluster);
    let store = ClusterStore::new(stolon_store::connect(&config).await.expect("store client"));
    (etcd, store)
}

fn spec() -> ClusterSpec {
    ClusterSpec {
        init_mode: Some(ClusterInitMode::New),
        sleep_interval: Some(GoDuration::from_secs(1)),
        proxy_check_interval: Some(GoDuration::from_secs(1)),
        proxy_timeout: Some(GoDuration::from_secs(3)),
        ..ClusterSpec::default()
    }
}

/// Phase normal, master DB `db1` advertised on `port` (nothing needs to listen there), `enabled` proxies.
fn routed(port: u16, enabled: &[String]) -> ClusterData {
    let mut cd = ClusterData::new_initial("c1", spec(), Timestamp::now());
    cd.cluster.status.phase = Some(stolon_core::cluster::ClusterPhase::Normal);
    let status = DbStatus { listen_address: "127.0.0.1".into(), port: port.to_string(), ..DbStatus::default() };
    cd.dbs.insert("db1".into(), Db { uid: "db1".into(), generation: 1, status, ..Db::default() });
    cd.cluster.status.master = "db1".into();
    cd.proxy.generation = 3;
    cd.proxy.spec = ProxySpec { master_db_uid: "db1".into(), enabled_proxies: enabled.to_vec() };
    cd
}

#[tokio::test]
async fn sentinel_and_proxy_lines() {
    let (etcd, store) = etcd_and_store("logs").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoint = etcd.endpoint();

    // Without an initial spec a sentinel waits for the cluster data.
    let mut waiting = Daemon::start(
        env!("CARGO_BIN_EXE_stolon-sentinel"),
        &store_args(&endpoint, "logs"),
        dir.path(),
        "waiting-sentinel",
    );
    waiting.wait_line("INFO", "no cluster data available, waiting for it to appear").await;
    waiting.terminate();

    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec()).expect("spec JSON")).expect("spec file");
    let mut args = store_args(&endpoint, "logs");
    let spec_path = spec_file.to_string_lossy().into_owned();
    args.extend(["--initial-cluster-spec", &spec_path]);
    let mut sentinel = Daemon::start(env!("CARGO_BIN_EXE_stolon-sentinel"), &args, dir.path(), "sentinel");
    sentinel.wait_line("INFO", "sentinel uid").await;
    sentinel.wait_line("INFO", "Trying to acquire sentinels leadership").await;
    sentinel.wait_line("INFO", "writing initial cluster data").await;
    sentinel.wait_line("INFO", "sentinel leadership acquired").await;
    // No keeper: the initialization pass cannot choose a master.
    sentinel.wait_line("INFO", "trying to find initial master").await;
    sentinel.wait_line("ERROR", "failed to update cluster data").await;
    assert!(sentinel.text().contains("cannot choose initial master: no keepers registered"), "{}", sentinel.text());

    let mut args = store_args(&endpoint, "logs");
    let port = free_port().to_string();
    args.extend(["--listen-address", "127.0.0.1", "--port", &port]);
    let proxy = Daemon::start(env!("CARGO_BIN_EXE_stolon-proxy"), &args, dir.path(), "proxy");
    proxy.wait_line("INFO", "proxy uid").await;
    proxy.wait_line("INFO", "Starting proxying").await;
    proxy.wait_line("INFO", "no db object available, closing connections to master").await;

    // Cluster data the sentinel must not act on.
    let doc = |v: serde_json::Value| serde_json::to_vec(&v).expect("JSON");
    store.store().put_cluster_data(&doc(serde_json::json!({"formatVersion": 2}))).await.expect("written");
    sentinel.wait_line("ERROR", "unsupported clusterdata format version").await;
    let mut invalid = routed(free_port(), &[]);
    invalid.cluster.spec.sleep_interval = Some(GoDuration::from_secs(-1));
    store.put_cluster_data(&invalid).await.expect("cluster data written");
    sentinel.wait_line("ERROR", "clusterdata validation failed").await;
    sentinel.terminate();
    sentinel.wait_line("INFO", "stopping stolon sentinel").await;

    let uid = {
        let start = Instant::now();
        loop {
            let infos = store.proxy_infos().await.expect("proxy infos");
            if let Some(uid) = infos.valid.keys().next() {
                break uid.clone();
            }
            assert!(start.elapsed() < WAIT, "the proxy published no info");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let master_port = free_port();
    store.put_cluster_data(&routed(master_port, &[])).await.expect("cluster data written");
    proxy.wait_line("INFO", "master address").await;
    proxy.wait_line("INFO", "not proxying to master address since we aren't in the enabled proxies list").await;
    store.put_cluster_data(&routed(master_port, &[uid])).await.expect("cluster data written");
    proxy.wait_line("INFO", "proxying to master address").await;
    store.store().put_cluster_data(b"null").await.expect("null cluster data written");
    proxy.wait_line("INFO", "no clusterdata available, closing connections to master").await;
    let mut invalid = routed(master_port, &[]);
    invalid.cluster.spec.sleep_interval = Some(GoDuration::from_secs(-1));
    store.put_cluster_data(&invalid).await.expect("cluster data written");
    proxy.wait_line("WARN", "check function error").await;
    assert!(
        proxy.text().contains("error=clusterdata validation failed: sleepInterval (-1s) must not be negative"),
        "{}",
        proxy.text()
    );
    let mut unresolvable = routed(master_port, &[]);
    unresolvable.dbs.get_mut("db1").expect("db1").status.listen_address = "no-such-host.invalid".into();
    store.put_cluster_data(&unresolvable).await.expect("cluster data written");
    proxy.wait_line("ERROR", "cannot resolve db address").await;
    store.put_cluster_data(&routed(master_port, &[])).await.expect("cluster data written");

    // A leader that loses the store: its reads fail, its leadership ends, campaigning fails.
    let mut args = store_args(&endpoint, "logs");
    args.extend(["--election-ttl", "3s"]);
    let leader = Daemon::start(env!("CARGO_BIN_EXE_stolon-sentinel"), &args, dir.path(), "leader");
    leader.wait_line("INFO", "sentinel leadership acquired").await;
    drop(etcd);
    proxy.wait_line("WARN", "check timeout timer fired").await;
    proxy.wait_line("INFO", "Stopping listening").await;
    leader.wait_line("ERROR", "error retrieving cluster data").await;
    leader.wait_line("INFO", "sentinel leadership lost").await;
    leader.wait_line("ERROR", "election loop error").await;
}

/// Runs `stolon-keeper` with the store and `args` until it exits; returns its stderr.
fn keeper_fails(dir: &Path, args: &[&str]) -> String {
    let data_dir = dir.join("data").to_string_lossy().into_owned();
    let mut all = vec!["--cluster-name", "c", "--store-backend", "etcdv3", "--store-endpoints", "127.0.0.1:1"];
    all.extend(["--data-dir", &data_dir, "--pg-os-user", "postgres"]);
    all.extend(args);
    let out = Command::new(env!("CARGO_BIN_EXE_stolon-keeper"))
        .args(&all)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("stolon-keeper runs");
    assert!(!out.status.success(), "stolon-keeper {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn keeper_start_up_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let base = ["--pg-listen-address", "127.0.0.1", "--pg-repl-username", "repl"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(extra).copied().collect()
    }
    let log = keeper_fails(d, &["--pg-repl-username", "repl"]);
    assert_line(&log, "ERROR", "--pg-listen-address is required");
    assert_line(&keeper_fails(d, &["--pg-listen-address", "127.0.0.1"]), "ERROR", "--pg-repl-username is required");

    let log = keeper_fails(d, &with(&base, &["--pg-repl-auth-method", "password"]));
    assert_line(
        &log,
        "WARN",
        "provided --pg-listen-address \"127.0.0.1\" is a loopback ip. This will be advertized to the other components and communication will fail if they are on different hosts",
    );
    assert_line(&log, "ERROR", "--pg-repl-auth-method must be one of: md5, trust");
    let log = keeper_fails(d, &with(&base, &[]));
    assert_line(&log, "ERROR", "one of --pg-repl-password or --pg-repl-passwordfile is required");
    let log = keeper_fails(d, &with(&base, &["--pg-repl-password", "a", "--pg-repl-passwordfile", "/f"]));
    assert_line(&log, "ERROR", "only one of --pg-repl-password or --pg-repl-passwordfile must be provided");
    let log = keeper_fails(d, &with(&base, &["--pg-repl-auth-method", "trust", "--pg-repl-password", "a"]));
    assert_line(&log, "WARN", "not utilizing a password for replication between hosts is extremely dangerous");
    assert_line(
        &log,
        "ERROR",
        "can not utilize --pg-repl-auth-method trust together with --pg-repl-password or --pg-repl-passwordfile",
    );
    let log = keeper_fails(d, &with(&base, &["--pg-repl-password", "r", "--pg-su-auth-method", "x"]));
    assert_line(&log, "ERROR", "--pg-su-auth-method must be one of: md5, password, trust");
    let log = keeper_fails(d, &with(&base, &["--pg-repl-password", "r"]));
    assert_line(&log, "ERROR", "one of --pg-su-password or --pg-su-passwordfile is required");
    let log = keeper_fails(
        d,
        &with(&base, &["--pg-repl-password", "r", "--pg-su-password", "s", "--pg-su-passwordfile", "/f"]),
    );
    assert_line(&log, "ERROR", "only one of --pg-su-password or --pg-su-passwordfile must be provided");
    let log = keeper_fails(
        d,
        &with(&base, &["--pg-repl-password", "r", "--pg-su-auth-method", "trust", "--pg-su-password", "s"]),
    );
    assert_line(&log, "WARN", "not utilizing a password for superuser is extremely dangerous");
    assert_line(
        &log,
        "ERROR",
        "can not utilize --pg-su-auth-method trust together with --pg-su-password or --pg-su-passwordfile",
    );

    // Password files.
    let pw = |name: &str, content: &str, mode: u32| -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = d.join(name);
        std::fs::write(&p, content).expect("password file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p.to_string_lossy().into_owned()
    };
    let (open, empty) = (pw("open", "r\n", 0o644), pw("empty", "\n", 0o600));
    let log = keeper_fails(d, &with(&base, &["--pg-repl-passwordfile", &open, "--pg-su-passwordfile", &empty]));
    assert_line(
        &log,
        "WARN",
        "password file permissions are too open. This file should only be readable to the user executing stolon! Continuing...",
    );
    assert_line(&log, "WARN", "replication user password contain trailing new line, removing");
    assert_line(&log, "WARN", "superuser password contain trailing new line, removing");
    assert_line(&log, "ERROR", "superuser password is empty after removing trailing new line");
    let missing = d.join("missing").to_string_lossy().into_owned();
    let log = keeper_fails(d, &with(&base, &["--pg-repl-passwordfile", &missing]));
    let want = format!(
        "ERROR stolon_keeper: cannot read pg replication user password: unable to read password from file {missing}: "
    );
    assert!(log.contains(&want), "{log}");

    // Superuser and replication user are the same user.
    let same = ["--pg-repl-password", "a", "--pg-su-password", "b", "--pg-su-username", "repl"];
    let log = keeper_fails(d, &with(&base, &same));
    assert_line(&log, "WARN", "superuser name and replication user name are the same. Different users are suggested.");
    assert_line(
        &log,
        "ERROR",
        "provided superuser name and replication user name are the same but provided passwords are different",
    );
    let log = keeper_fails(
        d,
        &with(&base, &["--pg-repl-password", "a", "--pg-su-auth-method", "trust", "--pg-su-username", "repl"]),
    );
    assert_line(&log, "ERROR", "do not support different auth methods when utilizing superuser for replication.");

    // The data directory lock, held by this process (fcntl locks belong to a process), and the keeper UID.
    let ok = ["--pg-repl-password", "r", "--pg-su-password", "s", "--pg-su-username", "su"];
    let data = d.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let held = stolon_daemons::keeper_checks::lock_data_dir(&data).expect("the test takes the lock");
    let log = keeper_fails(d, &with(&base, &ok));
    let lock = data.canonicalize().expect("path").join("lock");
    let want = format!("ERROR stolon_keeper: cannot take exclusive lock on data dir \"{}\": ", lock.display());
    assert!(log.contains(&want), "{want}\n{log}");
    drop(held);
    let log = keeper_fails(d, &with(&base, &[&ok[..], &["--uid", "Keeper-1"]].concat()));
    assert_line(&log, "INFO", "exclusive lock on data dir taken");
    assert_line(
        &log,
        "ERROR",
        "keeper uid \"Keeper-1\" not valid. It can contain only lower-case letters, numbers and the underscore character",
    );
    std::fs::write(data.join("keeperstate"), r#"{"UID":"keeper0","ClusterUID":""}"#).expect("keeperstate");
    let log = keeper_fails(d, &with(&base, &[&ok[..], &["--uid", "keeper1"]].concat()));
    assert_line(&log, "ERROR", "saved uid \"keeper0\" differs from configuration uid: \"keeper1\"");
    let out = Command::new(env!("CARGO_BIN_EXE_stolon-keeper"))
        .args(["--cluster-name", "c", "--store-backend", "etcdv3", "--pg-listen-address", "127.0.0.1"])
        .env_remove("RUST_LOG")
        .output()
        .expect("stolon-keeper runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert_line(&log, "ERROR", "data dir required");
}

#[tokio::test]
async fn keeper_pass_lines() {
    let (etcd, store) = etcd_and_store("klogs").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoint = etcd.endpoint();
    let data_dir = dir.path().join("k").to_string_lossy().into_owned();
    let bin_dir = stolon_conformance::servers::postgres_bin_dir().expect("PostgreSQL binaries");
    let bin_dir = bin_dir.to_string_lossy().into_owned();
    let port = free_port().to_string();
    let mut args = store_args(&endpoint, "klogs");
    args.extend(["--data-dir", &data_dir, "--pg-listen-address", "127.0.0.1", "--pg-port", &port]);
    args.extend(["--pg-bin-path", &bin_dir, "--pg-os-user", "postgres", "--pg-su-username", "su"]);
    args.extend(["--pg-su-password", "s", "--pg-repl-username", "repl", "--pg-repl-password", "r"]);
    let keeper = Daemon::start(env!("CARGO_BIN_EXE_stolon-keeper"), &args, dir.path(), "keeper");
    keeper.wait_line("INFO", "exclusive lock on data dir taken").await;
    keeper.wait_line("INFO", "uid generated").await;
    keeper.wait_line("INFO", "keeper uid").await;
    keeper.wait_line("INFO", "no cluster data available, waiting for it to appear").await;
    store.store().put_cluster_data(br#"{"formatVersion":2}"#).await.expect("written");
    keeper.wait_line("ERROR", "unsupported clusterdata format version").await;
    let mut cd = routed(free_port(), &[]);
    cd.cluster.spec.sleep_interval = Some(GoDuration::from_secs(-1));
    store.put_cluster_data(&cd).await.expect("cluster data written");
    keeper.wait_line("ERROR", "clusterdata validation failed").await;
    store.put_cluster_data(&routed(free_port(), &[])).await.expect("cluster data written");
    keeper.wait_line("INFO", "our keeper data is not available, waiting for it to appear").await;
}

/// etcd users for `store_refusing_writes_lines`: each reads what it needs and may write only some keys.
async fn etcd_with_users(etcd: &EtcdServer, users: &[(&str, Vec<etcd_client::Permission>)]) {
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None).await.expect("etcd client");
    // Everything is set up before authentication is on: changing roles afterwards would invalidate the
    // tokens the daemons hold ("auth: revision in header is old").
    for (user, permissions) in users {
        client.user_add(*user, *user, None).await.expect("user added");
        client.role_add(*user).await.expect("role added");
        for p in permissions {
            client.role_grant_permission(*user, p.clone()).await.expect("permission granted");
        }
        client.user_grant_role(*user, *user).await.expect("role granted");
    }
    client.user_add("root", "root", None).await.expect("root added");
    client.user_grant_role("root", "root").await.expect("root role granted");
    client.auth_enable().await.expect("authentication enabled");
}

/// A store client for `cluster` logged in as etcd's root.
async fn root_store(etcd: &EtcdServer, cluster: &str) -> ClusterStore {
    let mut config = etcd.config(StoreBackend::EtcdV3, cluster);
    config.username = Some("root".into());
    config.password = Some("root".into());
    ClusterStore::new(stolon_store::connect(&config).await.expect("root store client"))
}

/// The lines of a sentinel and a proxy whose store allows reads and refuses writes (a real etcd with
/// authentication, users whose roles can read but not write some of the cluster's keys).
#[tokio::test]
async fn store_refusing_writes_lines() {
    use etcd_client::Permission;
    let etcd = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let path = |cluster: &str| format!("{}/", etcd.config(StoreBackend::EtcdV3, cluster).cluster_path());
    let read_all = |c: &str| Permission::read(path(c)).with_prefix();
    let sentinel_keys = |c: &str| {
        vec![
            Permission::read_write(format!("{}sentinels/", path(c))).with_prefix(),
            Permission::read_write(format!("{}sentinel-leader/", path(c))).with_prefix(),
        ]
    };
    let cluster_data = |c: &str| Permission::read(format!("{}clusterdata", path(c)));
    let keepers = |c: &str| Permission::read(format!("{}keepers/", path(c))).with_prefix();
    etcd_with_users(
        &etcd,
        &[
            // Reads everything, writes nothing.
            ("reader", vec![read_all("ro")]),
            // Publishes its info and campaigns, but cannot read the keepers' or the proxies' infos.
            ("nokeepers", [sentinel_keys("nok"), vec![cluster_data("nok")]].concat()),
            ("noproxies", [sentinel_keys("nop"), vec![cluster_data("nop"), keepers("nop")]].concat()),
            // Reads everything, publishes and campaigns, cannot write the cluster data.
            ("leader", [sentinel_keys("nocd"), vec![read_all("nocd")]].concat()),
        ],
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let endpoint = etcd.endpoint();
    let as_user = |cluster: &'static str, user: &'static str| {
        let mut args = store_args(&endpoint, cluster);
        args.extend(["--store-username", user, "--store-password", user]);
        args
    };
    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec()).expect("spec JSON")).expect("spec file");
    let spec_path = spec_file.to_string_lossy().into_owned();
    let sentinel = env!("CARGO_BIN_EXE_stolon-sentinel");

    // No cluster data and a reader: the initial cluster data cannot be written.
    let mut args = as_user("ro", "reader");
    args.extend(["--initial-cluster-spec", &spec_path]);
    let reader = Daemon::start(sentinel, &args, dir.path(), "reader");
    reader.wait_line("INFO", "writing initial cluster data").await;
    reader.wait_line("ERROR", "error saving cluster data").await;
    let ro = root_store(&etcd, "ro").await;
    ro.put_cluster_data(&routed(free_port(), &[])).await.expect("cluster data written");
    reader.wait_line("ERROR", "cannot update sentinel info").await;
    assert!(reader.text().contains("etcd refused access to"), "{}", reader.text());

    let mut args = as_user("ro", "reader");
    let port = free_port().to_string();
    args.extend(["--listen-address", "127.0.0.1", "--port", &port]);
    let proxy = Daemon::start(env!("CARGO_BIN_EXE_stolon-proxy"), &args, dir.path(), "proxy");
    // A master is defined: the check fails with stolon's error.
    proxy.wait_line("WARN", "check function error").await;
    assert!(proxy.text().contains(" error=failed to update proxyInfo: "), "{}", proxy.text());
    // No master: connections are closed, then the proxy info cannot be published.
    let mut no_master = routed(free_port(), &[]);
    no_master.proxy.spec.master_db_uid.clear();
    no_master.proxy.generation += 1;
    ro.put_cluster_data(&no_master).await.expect("cluster data written");
    proxy.wait_line("ERROR", "failed to update proxyInfo").await;

    let nok = Daemon::start(sentinel, &as_user("nok", "nokeepers"), dir.path(), "nokeepers");
    root_store(&etcd, "nok").await.put_cluster_data(&routed(free_port(), &[])).await.expect("written");
    nok.wait_line("ERROR", "cannot get keepers info").await;
    let nop = Daemon::start(sentinel, &as_user("nop", "noproxies"), dir.path(), "noproxies");
    root_store(&etcd, "nop").await.put_cluster_data(&routed(free_port(), &[])).await.expect("written");
    nop.wait_line("ERROR", "failed to get proxies info").await;

    // A new keeper's info: the leader's decision adds it to the cluster data, which it cannot write.
    let nocd = root_store(&etcd, "nocd").await;
    let cd = ClusterData::new_initial("c1", spec(), Timestamp::now());
    nocd.put_cluster_data(&cd).await.expect("cluster data written");
    // The keeper publishes a new info every half second, as a running keeper does (bounded: 60 s).
    let cluster_uid = cd.cluster.uid.clone();
    let keeper = tokio::spawn(async move {
        for i in 0..120 {
            let info = stolon_core::cluster::KeeperInfo {
                uid: "keeper1".into(),
                info_uid: format!("info{i}"),
                cluster_uid: cluster_uid.clone(),
                boot_uuid: "boot1".into(),
                ..Default::default()
            };
            nocd.set_keeper_info(&info, Duration::from_secs(20)).await.expect("keeper info written");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let leader = Daemon::start(sentinel, &as_user("nocd", "leader"), dir.path(), "leader");
    leader.wait_line("INFO", "sentinel leadership acquired").await;
    leader.wait_line("ERROR", "error saving clusterdata").await;
    keeper.abort();
    assert!(leader.text().contains("etcd refused access to"), "{}", leader.text());
}
