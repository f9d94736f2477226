//! TLS of the keeper API with rustls and the ring provider (the crypto stack the rest of stolon-rs uses):
//! the server's configuration from `--api-tls-cert-file` and `--api-tls-key-file`, and a client's.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))
}

fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&read(flag, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{flag} {}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

/// The server configuration (HTTP/1.1 over TLS 1.2 or 1.3) from a PEM certificate chain and its PEM key.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates("--api-tls-cert-file", cert_file)?;
    let key = PrivateKeyDer::from_pem_slice(&read("--api-tls-key-file", key_file)?)
        .map_err(|e| format!("--api-tls-key-file {}: {e}", key_file.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!("--api-tls-cert-file {} / --api-tls-key-file {}: {e}", cert_file.display(), key_file.display())
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration verifying servers with the PEM CA bundle `ca_file` (`flag` names it in errors), or
/// with the system's roots when `None`.
pub fn client_config(flag: &str, ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(flag, path)? {
                roots.add(cert).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(format!("no system CA certificates found to verify keeper APIs: give {flag}"));
            }
        }
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_material_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = server_config(&empty, &empty).unwrap_err();
        assert!(e.contains("--api-tls-cert-file") && e.contains("no PEM certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = server_config(&missing, &empty).unwrap_err();
        assert!(e.contains("--api-tls-cert-file") && e.contains("missing.pem"), "{e}");
        let e = client_config("--ca", Some(&empty)).unwrap_err();
        assert!(e.contains("--ca"), "{e}");
    }
}
