//! Signing keys and JWTs for the registry: the key and its libtrust key id (`signing`), PEM
//! and DER codecs (`codec`), first-start provisioning of the key and its certificate
//! (`provision`), claims and signing (`issuer`), the keys' states and rotation rules
//! (`keyring`), and their files, the published trust and the swap of the signing key
//! (`keystore`).
mod codec;
pub mod issuer;
pub mod keyring;
pub mod keystore;
pub mod provision;
pub mod signing;

pub use issuer::{CurrentIssuer, Issuer};
pub use provision::load_or_create;
pub use signing::{libtrust_key_id, SigningKey};

/// Key and certificate failures; messages name the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key or certificate is unusable; the message says why (and names the file when
    /// there is one).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a key or certificate file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The signature (or the random `jti` that goes with it) could not be produced.
    #[error("signing failed")]
    Sign,
}
