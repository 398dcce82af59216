//! Signing keys and JWTs for the registry: key loading/generation, the self-signed certificate
//! for the registry's `rootcertbundle`, the libtrust key id, claims and signing.
//! Depends on `domain` (for [`crate::domain::Grant`]) only.
pub mod issuer;
pub mod keys;

pub use issuer::Issuer;
pub use keys::{libtrust_key_id, load_or_create, KeyError, SigningKey};
