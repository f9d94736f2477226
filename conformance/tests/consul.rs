//! The whole conformance suite against a real Consul agent with Consul's default settings (`consul agent
//! -dev`, 1.15.4, built by scripts/build-consul), run by the `stolon-conformance` binary as users run it;
//! `server_restart` on a private server the suite stops and restarts. Then checks of stolon's key layout
//! and sessions, the agent's KV value limit, a refused ACL token, and a Consul without a leader.

#[allow(dead_code)] // run_suite is for the etcd suites
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::future::BoxFuture;
use libtest_mimic::{Failed, Trial};
use serde_json::Value;
use stolon_conformance::servers::{ConsulFactory, ConsulServer, LeaderlessConsul, TestPki};
use stolon_conformance::{Outcome, StoreFactory, cases, unique_cluster_name};
use stolon_store::consul::DEFAULT_KV_MAX_VALUE_SIZE;
use stolon_store::{MemberKind, StoreError};

/// The case the runner cannot run: it needs a server the suite stops and starts.
const NEEDS_PRIVATE_SERVER: &str = "server_restart";

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let server = match ConsulServer::start() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("cannot run the consul conformance suite: {e:#}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let factory: Arc<dyn StoreFactory> = Arc::new(ConsulFactory::new(server.clone(), support::TIMEOUT));
    let handle = runtime.handle().clone();
    let mut trials: Vec<Trial> = Vec::new();
    let endpoint = server.endpoint();
    trials.push(Trial::test("consul::runner_on_a_default_agent", move || {
        let args = ["--store-backend", "consul", "--store-endpoints", &endpoint, "--store-timeout", "3s"];
        let run = support::run_runner(&args.map(String::from), &[("CONSUL_HTTP_TOKEN", "")], None);
        run.check_all_passed_but(&[NEEDS_PRIVATE_SERVER]).map_err(|e| Failed::from(format!("{e:#}")))
    }));
    for case in cases::all().into_iter().filter(|c| c.name == NEEDS_PRIVATE_SERVER) {
        let (factory, handle) = (factory.clone(), handle.clone());
        trials.push(Trial::test(format!("consul::{}", case.name), move || match handle.block_on(case.run(factory)) {
            Ok(Outcome::Passed) => Ok(()),
            Ok(Outcome::Skipped(why)) => Err(Failed::from(format!("skipped in a run that owns its server: {why}"))),
            Err(e) => Err(Failed::from(format!("{e:#}"))),
        }));
    }
    let mut check = |name: &str, f: fn(Arc<ConsulServer>) -> BoxFuture<'static, anyhow::Result<()>>| {
        let (server, handle) = (server.clone(), handle.clone());
        trials.push(Trial::test(format!("consul::{name}"), move || {
            handle.block_on(f(server)).map_err(|e| Failed::from(format!("{e:#}")))
        }));
    };
    check("stolon_layout_and_sessions", |s| Box::pin(stolon_layout_and_sessions(s)));
    check("document_over_the_default_limit", |s| Box::pin(document_over_the_default_limit(s)));
    check("wrong_token_is_an_auth_error_and_limit_is_read", |_| Box::pin(wrong_token_is_an_auth_error()));
    check("no_leader_is_retried_then_reported", |_| Box::pin(no_leader_is_retried_then_reported()));
    check("tls_with_ca_client_certificate_and_skip_verify", |_| Box::pin(tls_checks()));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(factory);
    drop(runtime);
    drop(server);
    conclusion.exit();
}

/// A plain HTTP GET on the agent: status and body.
async fn get(endpoint: &str, path: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    let addr = endpoint.trim_start_matches("http://").to_string();
    let path = path.to_string();
    let token = token.map(str::to_string);
    tokio::task::spawn_blocking(move || -> anyhow::Result<(u16, String)> {
        let mut s = TcpStream::connect(&addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let auth = token.map(|t| format!("X-Consul-Token: {t}\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).context("no HTTP status")?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    })
    .await?
}

/// The JSON entry of `key` (404: `None`).
async fn kv_entry(endpoint: &str, key: &str) -> anyhow::Result<Option<Value>> {
    let (status, body) = get(endpoint, &format!("/v1/kv/{key}"), None).await?;
    match status {
        404 => Ok(None),
        200 => {
            let list: Value = serde_json::from_str(&body)?;
            Ok(list.get(0).cloned())
        }
        s => bail!("GET {key}: HTTP {s}: {body}"),
    }
}

/// The session `id` as Consul describes it (`None` once it is gone).
async fn session(endpoint: &str, id: &str) -> anyhow::Result<Option<Value>> {
    let (status, body) = get(endpoint, &format!("/v1/session/info/{id}"), None).await?;
    ensure!(status == 200, "session info: HTTP {status}: {body}");
    let list: Value = serde_json::from_str(&body)?;
    Ok(list.get(0).cloned())
}

fn session_of(entry: &Value) -> Option<String> {
    entry.get("Session").and_then(Value::as_str).map(str::to_string)
}

/// stolon's keys, member sessions (behavior delete, TTL/2, reused on refresh), the leader lock (flags of
/// Consul's Go lock, behavior release) and the clean-up on resign and delete.
async fn stolon_layout_and_sessions(server: Arc<ConsulServer>) -> anyhow::Result<()> {
    let cluster = unique_cluster_name("layout");
    let store = stolon_store::connect(&server.config(&cluster)).await?;
    let ep = server.endpoint();
    let base = format!("stolon/cluster/{cluster}");

    store.put_cluster_data_cas(b"{\"cluster\":{}}", None).await?;
    let (status, raw) = get(&ep, &format!("/v1/kv/{base}/clusterdata?raw"), None).await?;
    ensure!(status == 200 && raw == "{\"cluster\":{}}", "clusterdata: {status} {raw:?}");

    store.set_member(MemberKind::Keeper, "k1", b"{\"uid\":\"k1\"}", Duration::from_secs(20)).await?;
    let entry = kv_entry(&ep, &format!("{base}/keepers/info/k1")).await?.context("keeper record missing")?;
    let sid = session_of(&entry).context("keeper record not held by a session")?;
    let info = session(&ep, &sid).await?.context("member session missing")?;
    ensure!(info["Behavior"] == "delete", "member session behavior: {info}");
    ensure!(info["TTL"] == "10s", "member session TTL must be half of 20s: {info}");
    store.set_member(MemberKind::Keeper, "k1", b"{\"uid\":\"k1\",\"n\":2}", Duration::from_secs(20)).await?;
    let entry = kv_entry(&ep, &format!("{base}/keepers/info/k1")).await?.context("keeper record missing")?;
    ensure!(session_of(&entry).as_deref() == Some(sid.as_str()), "a refresh must reuse the session: {entry}");

    let lead = store.campaign("sentinel-1", Duration::from_secs(20)).await?;
    let entry = kv_entry(&ep, &format!("{base}/sentinel-leader")).await?.context("leader key missing")?;
    ensure!(entry["Flags"].as_u64() == Some(stolon_store::consul::LOCK_FLAGS), "lock flags: {entry}");
    let lock_sid = session_of(&entry).context("leader key not locked")?;
    let info = session(&ep, &lock_sid).await?.context("lock session missing")?;
    ensure!(info["Behavior"] == "release" && info["LockDelay"].as_u64() == Some(0), "lock session: {info}");
    let (_, raw) = get(&ep, &format!("/v1/kv/{base}/sentinel-leader?raw"), None).await?;
    ensure!(raw == "sentinel-1", "leader key value {raw:?}");

    lead.resign().await?;
    let entry = kv_entry(&ep, &format!("{base}/sentinel-leader")).await?.context("leader key missing")?;
    ensure!(session_of(&entry).is_none(), "the lock must be released on resign: {entry}");
    ensure!(session(&ep, &lock_sid).await?.is_none(), "the lock session must be destroyed on resign");
    ensure!(store.leader().await?.is_none(), "no leader after the resign");

    store.delete_member(MemberKind::Keeper, "k1").await?;
    ensure!(kv_entry(&ep, &format!("{base}/keepers/info/k1")).await?.is_none(), "record left after delete");
    ensure!(session(&ep, &sid).await?.is_none(), "member session left after delete");
    Ok(())
}

/// On an agent with Consul's default limits, the backend declares 512 KiB: a document of that size is
/// stored, a larger one is refused with a clear invalid-data error and the stored one is kept.
async fn document_over_the_default_limit(server: Arc<ConsulServer>) -> anyhow::Result<()> {
    let store = stolon_store::connect(&server.config(&unique_cluster_name("limit"))).await?;
    let limit = store.capabilities().max_document_size;
    ensure!(limit == Some(DEFAULT_KV_MAX_VALUE_SIZE), "declared limit {limit:?} on a default agent");
    let fits = vec![b'a'; DEFAULT_KV_MAX_VALUE_SIZE];
    let rev = store.put_cluster_data_cas(&fits, None).await.context("a document of exactly the limit")?;
    match store.put_cluster_data_cas(&vec![b'b'; DEFAULT_KV_MAX_VALUE_SIZE + 1], Some(&rev)).await {
        Err(e @ StoreError::InvalidData { .. }) => {
            let msg = e.to_string();
            ensure!(msg.contains("clusterdata") && msg.contains("kv_max_value_size"), "unclear error: {msg}");
        }
        other => bail!("a document one byte over the limit: expected invalid data, got {other:?}"),
    }
    let doc = store.get_cluster_data().await?.context("document missing")?;
    ensure!(doc.value == fits && doc.revision == rev, "a refused write changed the document");
    Ok(())
}

/// With ACLs on, a wrong token is refused with an error that says so; the right one works. The agent has a
/// raised KV value limit: the right token reads it from the agent, the wrong one falls back to the default.
async fn wrong_token_is_an_auth_error() -> anyhow::Result<()> {
    const TOKEN: &str = "6f1c2a1e-5d57-4b43-9a55-0c3f1d1e2b7a";
    const RAISED: usize = 3 * 1024 * 1024;
    let limits = vec![format!("limits {{ kv_max_value_size = {RAISED} }}")];
    let server =
        Arc::new(tokio::task::spawn_blocking(move || ConsulServer::start_with_acl_and_hcl(TOKEN, &limits)).await??);
    let cluster = unique_cluster_name("acl");
    let mut config = server.config(&cluster);
    config.timeout = support::TIMEOUT;
    config.token = Some("a4c0c7d4-0000-4000-8000-000000000000".into());
    let wrong = stolon_store::connect(&config).await?;
    let limit = wrong.capabilities().max_document_size;
    ensure!(limit == Some(DEFAULT_KV_MAX_VALUE_SIZE), "a token that cannot read the agent: {limit:?}");
    for (what, res) in [
        ("get_cluster_data", wrong.get_cluster_data().await.map(|_| ())),
        ("set_member", wrong.set_member(MemberKind::Proxy, "p", b"x", Duration::from_secs(20)).await),
        ("leader", wrong.leader().await.map(|_| ())),
    ] {
        match res {
            Err(StoreError::Auth(msg)) => {
                ensure!(msg.contains("refused the configured ACL token"), "{what}: unclear message {msg:?}");
                ensure!(!msg.contains("a4c0c7d4"), "{what}: the token must never be shown: {msg:?}");
            }
            other => bail!("{what} with a wrong token: expected an auth error, got {other:?}"),
        }
    }
    config.token = Some(TOKEN.into());
    let right = stolon_store::connect(&config).await?;
    ensure!(right.capabilities().max_document_size == Some(RAISED), "the agent's limit must be read");
    let big = vec![b'x'; 2 * 1024 * 1024];
    let rev = right.put_cluster_data_cas(&big, None).await.context("put 2 MiB with the right token")?;
    ensure!(right.get_cluster_data().await?.map(|d| d.revision) == Some(rev), "read back with the right token");
    right.set_member(MemberKind::Proxy, "p", b"x", Duration::from_secs(20)).await.context("session with the token")?;
    Ok(())
}

/// A Consul whose servers have no leader is retried until the store timeout, then reported as such.
async fn no_leader_is_retried_then_reported() -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking(LeaderlessConsul::start).await??;
    let mut config = stolon_store::StoreConfig::new(stolon_store::StoreBackend::Consul, "noleader")
        .with_endpoints(&server.endpoint())?;
    config.timeout = Duration::from_secs(2);
    let store = stolon_store::connect(&config).await?;
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(10), store.get_cluster_data()).await.context("hung")?;
    let took = started.elapsed();
    match res {
        Err(e @ StoreError::Unavailable { .. }) => {
            let msg = e.to_string();
            ensure!(msg.contains("Consul has no leader"), "unclear message {msg:?}");
        }
        other => bail!("expected an unavailable error naming the missing leader, got {other:?}"),
    }
    ensure!(took >= Duration::from_millis(1500), "gave up after {took:?}, before the 2 s store timeout");
    Ok(())
}

/// An HTTPS listener that requires client certificates: the CA file and a client certificate work, so does
/// skipping verification; without the CA (system roots only) the handshake fails with a TLS error.
async fn tls_checks() -> anyhow::Result<()> {
    let pki = Arc::new(tokio::task::spawn_blocking(TestPki::create).await??);
    let (server, endpoint) = tokio::task::spawn_blocking({
        let pki = pki.clone();
        move || ConsulServer::start_https(&pki)
    })
    .await??;
    let config = |ca: bool, skip: bool| -> anyhow::Result<stolon_store::StoreConfig> {
        let mut c = stolon_store::StoreConfig::new(stolon_store::StoreBackend::Consul, unique_cluster_name("tls"))
            .with_endpoints(&endpoint)?;
        c.timeout = support::TIMEOUT;
        c.tls.ca_file = ca.then(|| pki.ca());
        c.tls.cert_file = Some(pki.client_cert());
        c.tls.key_file = Some(pki.client_key());
        c.tls.skip_verify = skip;
        Ok(c)
    };
    let verified = stolon_store::connect(&config(true, false)?).await?;
    let rev = verified.put_cluster_data_cas(b"tls", None).await.context("put over verified TLS")?;
    ensure!(verified.get_cluster_data().await?.map(|d| d.revision) == Some(rev), "read back over TLS");
    verified.set_member(MemberKind::Keeper, "k", b"x", Duration::from_secs(20)).await.context("session over TLS")?;
    let skipping = stolon_store::connect(&config(false, true)?).await?;
    skipping.get_cluster_data().await.context("read with --store-skip-tls-verify")?;
    match stolon_store::connect(&config(false, false)?).await {
        Err(StoreError::Config(msg)) if msg.contains("system CA") => {}
        Err(e) => bail!("unexpected error without the CA: {e}"),
        Ok(unverified) => match unverified.get_cluster_data().await {
            Err(StoreError::Auth(msg)) if msg.contains("TLS") => {}
            other => bail!("without the CA the handshake must fail with a TLS error, got {other:?}"),
        },
    }
    drop(server);
    Ok(())
}
