//! The rustls client configuration of the Consul connection (ring provider only: no second crypto stack).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{StoreError, StoreResult, TlsConfig};

/// The client configuration for `https` endpoints: the CA of `--store-ca-file` (else the system's roots),
/// the client certificate when given, or no verification at all with `--store-skip-tls-verify`.
pub(crate) fn client_config(tls: &TlsConfig) -> StoreResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS setup: {e}")))?;
    let builder = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider.signature_verification_algorithms)))
    } else {
        builder.with_root_certificates(roots(tls)?)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem = TlsConfig::read("--store-cert-file", cert)?;
            let certs = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Config(format!("--store-cert-file {}: {e}", cert.display())))?;
            if certs.is_empty() {
                return Err(StoreError::Config(format!("--store-cert-file {}: no certificate", cert.display())));
            }
            let key_pem = TlsConfig::read("--store-key", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| StoreError::Config(format!("--store-key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| StoreError::Config(format!("--store-cert-file/--store-key: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// A client configuration for plain `http` endpoints (never used for a handshake).
pub(crate) fn plain_config() -> StoreResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

fn roots(tls: &TlsConfig) -> StoreResult<RootCertStore> {
    let mut store = RootCertStore::empty();
    if let Some(ca) = &tls.ca_file {
        let pem = TlsConfig::read("--store-ca-file", ca)?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| StoreError::Config(format!("--store-ca-file {}: {e}", ca.display())))?;
            store.add(cert).map_err(|e| StoreError::Config(format!("--store-ca-file {}: {e}", ca.display())))?;
        }
        if store.is_empty() {
            return Err(StoreError::Config(format!("--store-ca-file {}: no certificate", ca.display())));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(StoreError::Config(
                "no system CA certificates found to verify Consul; give its CA with --store-ca-file".into(),
            ));
        }
    }
    Ok(store)
}

/// Accepts any server certificate (`--store-skip-tls-verify`), still checking handshake signatures.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
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
