//! etcd v2 backend over TLS against a real etcd that requires client certificates: CA file, client
//! certificate and key, skip-verify, and the errors when the material is missing.

mod support_etcd;
mod support_pki;

use std::path::PathBuf;
use std::time::Duration;

use stolon_store::{StoreBackend, StoreConfig, StoreError};
use support_etcd::CustomEtcd;
use support_pki::{Pki, write_pki};

fn start_tls_etcd() -> (CustomEtcd, Pki) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = write_pki(dir.path());
    let s = |p: &PathBuf| p.display().to_string();
    let flags = [
        "--enable-v2=true".to_string(),
        "--client-cert-auth".into(),
        format!("--trusted-ca-file={}", s(&pki.ca)),
        format!("--cert-file={}", s(&pki.server_cert)),
        format!("--key-file={}", s(&pki.server_key)),
    ];
    (CustomEtcd::start("https", dir, &flags), pki)
}

fn config(etcd: &CustomEtcd, cluster: &str) -> StoreConfig {
    let mut c = StoreConfig::new(StoreBackend::EtcdV2, cluster).with_endpoints(&etcd.endpoint).unwrap();
    c.timeout = Duration::from_secs(3);
    c
}

/// Connects and writes, retrying while etcd starts.
async fn connect_and_write(config: &StoreConfig) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = match stolon_store::connect(config).await {
            Ok(store) => store.put_cluster_data(b"{}").await.map(|_| ()),
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
async fn tls_with_ca_and_client_certificate() {
    let (etcd, pki) = start_tls_etcd();
    let mut c = config(&etcd, "tls-ok");
    c.tls.ca_file = Some(pki.ca.clone());
    c.tls.cert_file = Some(pki.client_cert.clone());
    c.tls.key_file = Some(pki.client_key.clone());
    connect_and_write(&c).await.expect("TLS with the right CA and client certificate");
    let store = stolon_store::connect(&c).await.unwrap();
    assert_eq!(store.get_cluster_data().await.unwrap().map(|d| d.value), Some(b"{}".to_vec()));

    // The server's certificate is not signed by a system root: without the CA it is refused...
    let mut no_ca = c.clone();
    no_ca.tls.ca_file = None;
    match connect_and_write(&no_ca).await {
        Err(StoreError::Auth(msg)) => assert!(msg.contains("TLS"), "{msg}"),
        other => panic!("expected a TLS failure without the CA, got {other:?}"),
    }
    // ...unless verification is skipped.
    no_ca.tls.skip_verify = true;
    connect_and_write(&no_ca).await.expect("TLS with --store-skip-tls-verify");
}

#[tokio::test]
async fn tls_without_the_required_client_certificate_fails_clearly() {
    let (etcd, pki) = start_tls_etcd();
    let mut c = config(&etcd, "tls-nocert");
    c.tls.ca_file = Some(pki.ca.clone());
    // Wait until the server serves, with the full material.
    let mut full = c.clone();
    full.tls.cert_file = Some(pki.client_cert.clone());
    full.tls.key_file = Some(pki.client_key.clone());
    connect_and_write(&full).await.expect("server up");
    match connect_and_write(&c).await {
        Err(e @ (StoreError::Auth(_) | StoreError::Unavailable { .. })) => {
            let msg = e.to_string().to_lowercase();
            assert!(msg.contains("certificate") || msg.contains("tls"), "{msg}");
            eprintln!("refused as expected: {e}");
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_material_errors_name_the_flag() {
    let mut c = StoreConfig::new(StoreBackend::EtcdV2, "c").with_endpoints("https://127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    c.tls.ca_file = Some(garbage);
    match stolon_store::connect(&c).await {
        Err(StoreError::Config(msg)) => assert!(msg.contains("--store-ca-file"), "{msg}"),
        other => panic!("expected a configuration error, got {:?}", other.map(|s| s.backend())),
    }
}
