//! The rustls client configuration of the backends over HTTP (etcd v2, Consul, etcd v3's gRPC), with ring as the explicit crypto
//! provider: no second crypto stack, and no process-wide default is installed or needed.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{StoreError, StoreResult, TlsConfig};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The flags that carry a [`TlsConfig`], for messages: the store's (`--store-*`) or another client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsFlags {
    /// The client certificate flag.
    pub cert_file: &'static str,
    /// The client key flag.
    pub key_file: &'static str,
    /// The CA bundle flag.
    pub ca_file: &'static str,
    /// The skip-verification flag.
    pub skip_verify: &'static str,
    /// What the servers are, in the skip-verification warning (e.g. "the store servers").
    pub peer: &'static str,
}

impl TlsFlags {
    /// The `--store-*` flags.
    pub const STORE: TlsFlags = TlsFlags {
        cert_file: "--store-cert-file",
        key_file: "--store-key",
        ca_file: "--store-ca-file",
        skip_verify: "--store-skip-tls-verify",
        peer: "the store servers",
    };
}

/// The configuration for `https` endpoints: server verification with `--store-ca-file` (which replaces
/// the system roots) or the system roots, or none with `--store-skip-tls-verify`; a client certificate with
/// `--store-cert-file`/`--store-key`.
pub(crate) fn client_config(tls: &TlsConfig) -> StoreResult<ClientConfig> {
    client_config_with_flags(tls, &TlsFlags::STORE)
}

/// [`client_config`] for TLS settings given by other flags (named in errors and in the skip-verification
/// warning).
pub(crate) fn client_config_with_flags(tls: &TlsConfig, flags: &TlsFlags) -> StoreResult<ClientConfig> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS set-up: {e}")))?;
    let builder = if tls.skip_verify {
        tracing::warn!(
            "{}: the certificates of {} are not verified; anyone on the network path can impersonate them \
             (use it for testing only)",
            flags.skip_verify,
            flags.peer
        );
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServer(algorithms)))
    } else {
        builder.with_root_certificates(roots(tls, flags)?)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let (cert_flag, key_flag) = (flags.cert_file, flags.key_file);
            let chain = CertificateDer::pem_slice_iter(&TlsConfig::read(cert_flag, cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Config(format!("{cert_flag} {}: {e}", cert.display())))?;
            if chain.is_empty() {
                return Err(StoreError::Config(format!("{cert_flag} {}: no certificate found", cert.display())));
            }
            let key_der = PrivateKeyDer::from_pem_slice(&TlsConfig::read(key_flag, key)?)
                .map_err(|e| StoreError::Config(format!("{key_flag} {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                StoreError::Config(format!("{cert_flag} {} / {key_flag} {}: {e}", cert.display(), key.display()))
            })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The configuration for plain `http` endpoints (never used for a handshake).
pub(crate) fn plain_config() -> StoreResult<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS set-up: {e}")))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

fn roots(tls: &TlsConfig, flags: &TlsFlags) -> StoreResult<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &tls.ca_file {
        let bad = |why: String| StoreError::Config(format!("{} {}: {why}", flags.ca_file, ca.display()));
        for cert in CertificateDer::pem_slice_iter(&TlsConfig::read(flags.ca_file, ca)?) {
            roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate found".into()));
        }
        return Ok(roots);
    }
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(StoreError::Config(format!(
            "no system CA certificates found to verify {}; give {}",
            flags.peer, flags.ca_file
        )));
    }
    Ok(roots)
}

/// `--store-skip-tls-verify`: accepts any server certificate, still checking handshake signatures.
#[derive(Debug)]
struct AcceptAnyServer(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_material_names_the_flag() {
        let dir = std::env::temp_dir().join(format!("etcdv2-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let tls = TlsConfig { ca_file: Some(empty.clone()), ..TlsConfig::default() };
        let e = client_config(&tls).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("--store-ca-file") && e.contains("no certificate"), "{e}");
        let tls = TlsConfig {
            cert_file: Some(empty.clone()),
            key_file: Some(empty),
            skip_verify: true,
            ..TlsConfig::default()
        };
        let e = client_config(&tls).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("--store-cert-file"), "{e}");
        let tls = TlsConfig { ca_file: Some(dir.join("missing.pem")), ..TlsConfig::default() };
        let e = client_config(&tls).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("missing.pem") && e.contains("cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
        assert!(client_config(&TlsConfig { skip_verify: true, ..TlsConfig::default() }).is_ok());
    }
}
