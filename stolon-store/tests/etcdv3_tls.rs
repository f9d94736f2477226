//! etcd v3 backend over TLS against a real etcd that requires client certificates, with a throw-away CA
//! made by the test: the CA file and a client certificate (documents, member leases, watches and elections
//! over the TLS channel), failover past an unreachable endpoint, the refused handshake without the CA,
//! `--store-skip-tls-verify` and its warning in the log, and a missing client certificate.

mod support_etcd;
mod support_pki;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use stolon_store::{MemberKind, StoreBackend, StoreConfig, StoreError, WatchEvent};
use support_etcd::CustomEtcd;
use support_pki::{Pki, write_pki};

fn start_tls_etcd() -> (CustomEtcd, Pki) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = write_pki(dir.path());
    let s = |p: &std::path::PathBuf| p.display().to_string();
    let flags = [
        "--client-cert-auth".to_string(),
        format!("--trusted-ca-file={}", s(&pki.ca)),
        format!("--cert-file={}", s(&pki.server_cert)),
        format!("--key-file={}", s(&pki.server_key)),
    ];
    (CustomEtcd::start("https", dir, &flags), pki)
}

fn config(endpoints: &str, cluster: &str, pki: &Pki) -> StoreConfig {
    let mut c = StoreConfig::new(StoreBackend::EtcdV3, cluster).with_endpoints(endpoints).unwrap();
    c.timeout = Duration::from_secs(3);
    c.tls.ca_file = Some(pki.ca.clone());
    c.tls.cert_file = Some(pki.client_cert.clone());
    c.tls.key_file = Some(pki.client_key.clone());
    c
}

/// Connects and reads, retrying while etcd starts.
async fn connect_and_read(config: &StoreConfig) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = match stolon_store::connect(config).await {
            Ok(store) => store.get_cluster_data().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match res {
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test]
async fn every_operation_over_tls_with_ca_and_client_certificate() {
    let (etcd, pki) = start_tls_etcd();
    let c = config(&etcd.endpoint, "tls-ops", &pki);
    connect_and_read(&c).await.expect("TLS with the right CA and client certificate");
    let store = stolon_store::connect(&c).await.unwrap();
    let rev = store.put_cluster_data_cas(b"v1", None).await.unwrap();
    let mut watch = store.watch_cluster_data(Some(&rev)).await.unwrap();
    let rev2 = store.put_cluster_data_cas(b"v2", Some(&rev)).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(WatchEvent::Put(doc)))) => assert_eq!((doc.value, doc.revision), (b"v2".to_vec(), rev2)),
        other => panic!("watch over TLS: {other:?}"),
    }
    store.set_member(MemberKind::Keeper, "k1", b"info", Duration::from_secs(10)).await.unwrap();
    let members = store.list_members(MemberKind::Keeper).await.unwrap();
    assert_eq!(members.len(), 1);
    let leadership = store.campaign("sentinel-1", Duration::from_secs(10)).await.unwrap();
    assert_eq!(store.leader().await.unwrap().as_deref(), Some("sentinel-1"));
    leadership.resign().await.unwrap();

    // An unreachable first endpoint: the client moves on to the next one.
    let closed = stolon_conformance::servers::closed_port();
    let both = format!("https://127.0.0.1:{closed},{}", etcd.endpoint);
    let store = stolon_store::connect(&config(&both, "tls-ops", &pki)).await.unwrap();
    let doc = store.get_cluster_data().await.expect("read through the second endpoint").expect("document");
    assert_eq!(doc.value, b"v2");
}

/// A writer the test reads back: the log of the code under test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn without_the_ca_the_handshake_fails_unless_verification_is_skipped_with_a_warning() {
    let (etcd, pki) = start_tls_etcd();
    let c = config(&etcd.endpoint, "tls-skip", &pki);
    connect_and_read(&c).await.expect("server up");

    // The server's certificate is not signed by a system root: without the CA it is refused.
    let mut no_ca = c.clone();
    no_ca.tls.ca_file = None;
    match connect_and_read(&no_ca).await {
        Err(StoreError::Auth(msg)) => assert!(msg.contains("TLS") && msg.contains("certificate"), "{msg}"),
        other => panic!("expected a TLS failure without the CA, got {other:?}"),
    }

    // Skipping verification works, and says so in the log.
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer({
        let log = log.clone();
        move || log.clone()
    });
    let guard = tracing::subscriber::set_default(subscriber.with_ansi(false).finish());
    no_ca.tls.skip_verify = true;
    let store = stolon_store::connect(&no_ca).await.expect("connect with --store-skip-tls-verify");
    drop(guard);
    store.put_cluster_data(b"skipped").await.expect("write with --store-skip-tls-verify");
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("WARN") && text.contains("--store-skip-tls-verify") && text.contains("not verified"),
        "{text}"
    );
}

#[tokio::test]
async fn without_the_required_client_certificate_the_error_says_tls() {
    let (etcd, pki) = start_tls_etcd();
    let c = config(&etcd.endpoint, "tls-nocert", &pki);
    connect_and_read(&c).await.expect("server up");
    let mut no_cert = c.clone();
    no_cert.tls.cert_file = None;
    no_cert.tls.key_file = None;
    match connect_and_read(&no_cert).await {
        Err(e @ (StoreError::Auth(_) | StoreError::Unavailable { .. })) => {
            let msg = e.to_string().to_lowercase();
            assert!(msg.contains("certificate") || msg.contains("tls"), "{msg}");
            eprintln!("refused as expected: {e}");
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_material_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let mut c = StoreConfig::new(StoreBackend::EtcdV3, "c").with_endpoints("https://127.0.0.1:1").unwrap();
    c.tls.ca_file = Some(garbage);
    match stolon_store::connect(&c).await {
        Err(StoreError::Config(msg)) => assert!(msg.contains("--store-ca-file"), "{msg}"),
        other => panic!("expected a configuration error, got {:?}", other.map(|s| s.backend())),
    }
    let mut c = StoreConfig::new(StoreBackend::EtcdV3, "c").with_endpoints("http://127.0.0.1:1").unwrap();
    c.tls.ca_file = Some(dir.path().join("ca.pem"));
    match stolon_store::connect(&c).await {
        Err(StoreError::Config(msg)) => assert!(msg.contains("https"), "{msg}"),
        other => panic!("expected a configuration error, got {:?}", other.map(|s| s.backend())),
    }
}
