//! Signing keys: ES256 (P-256, default) and RS256; the libtrust key id; certificate creation.
use std::path::Path;

/// Key and certificate failures; messages name the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("signing failed")]
    Sign,
}

/// A parsed private key, kept parsed so each signature costs only the signature.
pub struct SigningKey {
    _private: (),
}

impl SigningKey {
    /// Parses a PKCS#8 PEM private key: EC P-256 (ES256) or RSA ≥ 2048 bits (RS256).
    pub fn from_pkcs8_pem(_pem: &str) -> Result<SigningKey, KeyError> {
        todo!("jwt helper")
    }
    /// `ES256` or `RS256`.
    pub fn alg(&self) -> &'static str {
        todo!("jwt helper")
    }
    /// libtrust key id of the public key (what registry 2.8 looks up by `kid`).
    pub fn kid(&self) -> &str {
        todo!("jwt helper")
    }
    /// Signature over `msg` in JWS form (raw r||s for ECDSA, PKCS#1 v1.5 for RSA).
    pub fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        todo!("jwt helper")
    }
}

/// libtrust key id of a PKIX SubjectPublicKeyInfo DER.
pub fn libtrust_key_id(_spki_der: &[u8]) -> String {
    todo!("jwt helper")
}

/// Loads the key at `key_path`, creating an ES256 key (PKCS#8 PEM, mode 0600) if it is missing,
/// and a self-signed certificate for it at `cert_path` if that is missing.
pub fn load_or_create(_key_path: &Path, _cert_path: &Path) -> Result<SigningKey, KeyError> {
    todo!("jwt helper")
}
