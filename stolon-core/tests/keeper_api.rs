//! The keeper API's HTTP shell against a real PostgreSQL and a real etcd: methods, paths, bad queries, HEAD
//! and OPTIONS, `/status` and `/cluster`, the shared `/metrics`, TLS and basic authentication, and the
//! observation query on a running primary; the keeper's kept connection to its PostgreSQL. (Every check against a cluster of real keepers is in
//! stolon-daemons' `e2e_keeper_api`.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stolon_conformance::servers::{EtcdServer, POSTGRES_TEST_USER, PostgresServer, free_port};
use stolon_core::cluster::{ClusterData, ClusterSpec, Db, DbRole, Keeper};
use stolon_core::keeper::api::sample::PgSampler;
use stolon_core::keeper::api::server::{self, ApiListener, ApiState, ServeOptions};
use stolon_core::keeper::api::{ApiClient, BasicAuth, ClientOptions, KeeperLoop, KeeperView, tls};
use stolon_core::keeper::observation::{Failure, classify};
use stolon_core::postgres::query::LocalConn;
use stolon_core::store::ClusterStore;
use stolon_core::time::Timestamp;
use stolon_store::StoreBackend;

/// A cluster data where keeper `k0` holds the master DB `d0`.
fn cluster_data() -> ClusterData {
    let spec: ClusterSpec = serde_json::from_str(r#"{"initMode":"new"}"#).unwrap();
    let mut cd = ClusterData::new_initial("c1", spec, Timestamp::now());
    let mut db = Db { uid: "d0".into(), generation: 1, ..Db::default() };
    db.spec.keeper_uid = "k0".into();
    db.spec.role = Some(DbRole::Master);
    cd.dbs.insert("d0".into(), db);
    cd.keepers.insert("k0".into(), Keeper { uid: "k0".into(), ..Keeper::default() });
    cd.cluster.status.master = "d0".into();
    cd
}

struct Api {
    base: String,
    task: tokio::task::JoinHandle<()>,
    view: Arc<KeeperView>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(etcd: &EtcdServer, pg_port: u16, options: ServeOptions) -> Api {
    let raw = stolon_store::connect(&etcd.config(StoreBackend::EtcdV3, "api")).await.unwrap();
    let view = Arc::new(KeeperView::new());
    for l in KeeperLoop::ALL {
        view.beat(l);
    }
    let conn = LocalConn::new(pg_port, POSTGRES_TEST_USER, None, Duration::from_secs(5));
    let tls = options.tls.is_some();
    let listener = ApiListener::bind(format!("127.0.0.1:{}", free_port()).parse().unwrap(), options).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ApiState {
        keeper_uid: "k0".into(),
        view: view.clone(),
        sampler: PgSampler::new(conn),
        store: ClusterStore::new(raw),
        failsafe: Arc::new(stolon_core::failsafe::FailsafeKeeper::new("k0")),
    };
    let task = server::spawn(listener, Arc::new(state));
    Api { base: format!("{}://localhost:{}", if tls { "https" } else { "http" }, addr.port()), task, view }
}

fn client(ca: Option<&std::path::Path>, auth: Option<(&str, &str)>) -> ApiClient {
    ApiClient::new(&ClientOptions {
        ca_file: ca.map(|p| p.to_path_buf()),
        basic_auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn plain_http_answers_every_kind_of_request() {
    let etcd = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    // The keeper reaches its PostgreSQL over the unix socket in /tmp.
    let pg = PostgresServer::start_with(&[("unix_socket_directories", "/tmp")]).expect("a real PostgreSQL is needed");
    let api = start(&etcd, pg.port(), ServeOptions::default()).await;
    let c = client(None, None);
    let get = |path: &str| {
        let (c, url) = (c.clone(), format!("{}{path}", api.base));
        async move { c.get(&url).await.unwrap() }
    };

    // No cluster data read yet: PostgreSQL answers, but no role is trusted.
    let r = get("/health").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = r.json().unwrap();
    assert_eq!(body["postgres"]["running"], true);
    assert_eq!(body["postgres"]["inRecovery"], false);
    assert!(body["postgres"]["walPosition"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(body["check"]["endpoint"], "/health");
    let r = get("/primary").await;
    assert_eq!(r.status, 503);
    assert!(r.json().unwrap()["check"]["reason"].as_str().unwrap().contains("no cluster data"));
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");

    // The keeper read cluster data naming its DB master, and the local data directory holds it.
    api.view.cluster_read(cluster_data());
    api.view.set_local_db("d0");
    for path in ["/", "/primary", "/master", "/read-write", "/read-only", "/leader", "/readiness", "/liveness"] {
        assert_eq!(get(path).await.status, 200, "{path}");
    }
    for path in ["/replica", "/replica?lag=16MB", "/sync", "/async", "/standby-leader"] {
        assert_eq!(get(path).await.status, 503, "{path}");
    }
    let status = get("/status").await;
    assert_eq!(status.status, 200);
    let status = status.json().unwrap();
    assert_eq!((status["keeperUid"].as_str(), status["role"].as_str()), (Some("k0"), Some("master")));
    assert!(status.get("check").is_none());

    // Failsafe mode: off in this cluster data, neither endpoint confirms; on, the master's keeper still
    // answers 503 until the keeper of its standby DB confirmed, and as master it confirms following nobody.
    for path in ["/failsafe/follower", "/failsafe/master"] {
        let r = get(path).await;
        assert_eq!(r.status, 503, "{path}");
        assert!(r.json().unwrap()["error"].as_str().unwrap().contains("failsafeMode is off"), "{path}");
    }
    let mut failsafe = cluster_data();
    failsafe.cluster.spec.failsafe_mode = Some(true);
    let mut standby = Db { uid: "d1".into(), generation: 1, ..Db::default() };
    standby.spec.keeper_uid = "k1".into();
    standby.spec.role = Some(DbRole::Standby);
    failsafe.dbs.insert("d1".into(), standby);
    api.view.cluster_read(failsafe);
    let r = get("/failsafe/master").await;
    assert_eq!(r.status, 503);
    assert!(r.json().unwrap()["error"].as_str().unwrap().contains("keeper k1 has not confirmed"), "{:?}", r.body);
    let r = get("/failsafe/follower").await;
    assert_eq!(r.status, 503);
    assert!(r.json().unwrap()["error"].as_str().unwrap().contains("DB d0 is not a standby"), "{:?}", r.body);
    api.view.cluster_read(cluster_data());

    // HEAD and OPTIONS: the same status, no body.
    let head = c.request(hyper::Method::HEAD, &format!("{}/primary", api.base)).await.unwrap();
    assert_eq!((head.status, head.body.len()), (200, 0));
    let options = c.request(hyper::Method::OPTIONS, &format!("{}/replica", api.base)).await.unwrap();
    assert_eq!((options.status, options.body.len()), (503, 0));

    // Bad requests: 4xx with a JSON error naming what is wrong.
    let r = c.request(hyper::Method::POST, &format!("{}/primary", api.base)).await.unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.headers.get("allow").unwrap(), "GET, HEAD, OPTIONS");
    assert!(r.json().unwrap()["error"].as_str().unwrap().contains("POST"));
    let r = get("/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.json().unwrap()["error"].as_str().unwrap().contains("/nope"));
    let r = get("/replica?lag=16XB").await;
    assert_eq!(r.status, 400);
    assert!(r.json().unwrap()["error"].as_str().unwrap().contains("16XB"));
    let r = get("/metrics").await;
    assert_eq!(r.status, 404, "metrics are not served on a listener of their own");

    // /cluster: stolonctl status's JSON (no cluster data in this store).
    let r = get("/cluster").await;
    assert_eq!(r.status, 200);
    let doc = r.json().unwrap();
    assert_eq!(doc["cluster"]["available"], false);
    assert!(doc["keepers"].as_array().unwrap().is_empty());

    // PostgreSQL stops: health and the role checks fail, liveness (the keeper's loops) does not.
    pg.stop().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = get("/health").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json().unwrap()["postgres"]["running"], false);
    assert_eq!(get("/primary").await.status, 503);
    assert_eq!(get("/leader").await.status, 200, "the cluster data still names this keeper's DB master");
    assert_eq!(get("/liveness").await.status, 200);
    // It comes back: the kept connection is replaced.
    pg.restart().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get("/primary").await.status, 200);
}

/// A test CA and a server certificate for localhost signed by it: (CA, certificate, key) PEM files.
fn write_pki(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "stolon test ca");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    (write("ca.pem", ca.pem()), write("api.pem", cert.pem()), write("api-key.pem", key.serialize_pem()))
}

#[tokio::test]
async fn tls_basic_auth_and_shared_metrics() {
    let etcd = EtcdServer::start().expect("a real etcd is needed: apt-get install etcd-server");
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert_file, key_file) = write_pki(dir.path());
    let options = ServeOptions {
        tls: Some(tls::server_config(&cert_file, &key_file).unwrap()),
        auth: Some(BasicAuth::parse("probe:s3cret\n").unwrap()),
        metrics: Some(Arc::new(|| Ok("# EOF\n".to_string()))),
    };
    // No PostgreSQL on this port: the checks that need it fail, the shell still answers.
    let api = start(&etcd, free_port(), options).await;
    let url = |p: &str| format!("{}{p}", api.base);

    let anonymous = client(Some(&ca_file), None).get(&url("/liveness")).await.unwrap();
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.headers.get("www-authenticate").unwrap(), "Basic realm=\"stolon-keeper\"");
    let wrong = client(Some(&ca_file), Some(("probe", "guess"))).get(&url("/liveness")).await.unwrap();
    assert_eq!(wrong.status, 401);
    let ok = client(Some(&ca_file), Some(("probe", "s3cret")));
    assert_eq!(ok.get(&url("/liveness")).await.unwrap().status, 200);
    let health = ok.get(&url("/health")).await.unwrap();
    assert_eq!(health.status, 503);
    assert_eq!(health.json().unwrap()["postgres"]["running"], false);
    let metrics = ok.get(&url("/metrics")).await.unwrap();
    assert_eq!((metrics.status, &metrics.body[..]), (200, &b"# EOF\n"[..]));
    // An unknown CA or plain HTTP does not get an answer.
    assert!(client(None, Some(("probe", "s3cret"))).get(&url("/liveness")).await.is_err());
    let plain = url("/liveness").replace("https://", "http://");
    assert!(client(None, None).get(&plain).await.is_err());
}

/// The keeper's connection to its PostgreSQL: short queries share one kept connection (one backend however
/// many queries), a connection PostgreSQL closed is replaced at the next query without an error, and a
/// stopped PostgreSQL is an error the keeper classifies as down (reported unhealthy at once), not as slow.
#[tokio::test]
async fn the_kept_local_connection_is_reused_replaced_when_closed_and_down_when_stopped() {
    let pg = PostgresServer::start_with(&[("unix_socket_directories", "/tmp")]).expect("a real PostgreSQL is needed");
    let conn = LocalConn::new(pg.port(), POSTGRES_TEST_USER, None, Duration::from_secs(5));
    let admin = conn.separate().connect().await.unwrap();
    let others = "from pg_stat_activity where application_name = 'stolon-keeper' and pid <> pg_backend_pid()";
    let count = format!("select count(*) {others}");
    for _ in 0..5 {
        assert!(!conn.in_recovery().await.unwrap());
        conn.replication_slots().await.unwrap();
        conn.ping().await.unwrap();
    }
    let backends: i64 = admin.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(backends, 1, "fifteen queries on one kept connection");

    admin.execute(&format!("select pg_terminate_backend(pid) {others}"), &[]).await.unwrap();
    assert!(!conn.in_recovery().await.expect("a closed kept connection is replaced"));
    let backends: i64 = admin.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(backends, 1, "the replacement, and nothing left of the closed one");

    drop(admin);
    drop(pg);
    let err = conn.in_recovery().await.expect_err("PostgreSQL is stopped");
    assert_eq!(classify(&err), Failure::Down, "{err}");
}
