//! TLS to PostgreSQL, on rustls (the TLS stack regauth already uses for HTTPS clients; no
//! OpenSSL to install or patch). Part of `store::postgres`; depends on rustls and
//! `tokio-postgres-rustls`.
//!
//! `prefer` and `require` encrypt without checking the server's certificate (what libpq's
//! `sslmode` of the same names do); `verify-full` checks the chain against a CA file (or the
//! built-in web roots) and the host name against the certificate.
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::Tls;
use crate::store::StoreError;

/// The connector for `mode` (not used at all with [`Tls::Disable`]).
pub fn connector(mode: Tls, ca_file: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::backend("TLS set-up", e))?;
    let config = match mode {
        Tls::VerifyFull => builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth(),
        Tls::Disable | Tls::Prefer | Tls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The CA certificates in `ca_file`, or the web roots without one.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    let Some(path) = ca_file else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let named = |what: &str| format!("store CA file {}: {what}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| StoreError::backend(named("cannot read it"), e))?;
    for cert in certs {
        let cert = cert.map_err(|e| StoreError::backend(named("not PEM certificates"), e))?;
        roots
            .add(cert)
            .map_err(|e| StoreError::backend(named("a certificate is not usable as a CA"), e))?;
    }
    if roots.is_empty() {
        return Err(StoreError::message(named("holds no certificate")));
    }
    Ok(roots)
}

/// Accepts any certificate (but still checks the handshake signatures made with it).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
