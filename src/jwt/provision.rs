//! First-start provisioning of the signing key and its certificate: load the key, or create
//! an ES256 key (PKCS#8 PEM, mode 0600); load the certificate chain, or create a self-signed
//! certificate; check that the certificate carries the key; attach the chain to the key for
//! the JWT header's `x5c`.
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use chrono::{Datelike, Utc};

use super::codec::{certificates_from_pem, pkcs8_der_from_pem};
use super::{KeyError, SigningKey};
use crate::files::{write_new_file, WriteError};

const CERT_COMMON_NAME: &str = "regauth token signer";
const CERT_VALIDITY_YEARS: i32 = 10;

/// Loads the key at `key_path`, creating an ES256 key (PKCS#8 PEM, mode 0600) if it is missing,
/// and a self-signed certificate for it at `cert_path` if that is missing.
///
/// An existing certificate must carry the key's public key (the registry would reject every
/// token otherwise); a mismatch is an error naming both files. The returned key carries the
/// certificate chain, its own certificate first (see [`SigningKey::certificates`]).
pub fn load_or_create(key_path: &Path, cert_path: &Path) -> Result<SigningKey, KeyError> {
    let (key, pkcs8) = match fs::read_to_string(key_path) {
        Ok(pem) => {
            let pkcs8 = pkcs8_der_from_pem(&pem).map_err(|e| in_file(key_path, e))?;
            let key = SigningKey::from_pkcs8_der(&pkcs8).map_err(|e| in_file(key_path, e))?;
            (key, pkcs8)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let (key, pem) = SigningKey::generate_es256()?;
            write_new_file(key_path, pem.as_bytes(), 0o600).map_err(io_error)?;
            (key, pkcs8_der_from_pem(&pem)?)
        }
        Err(e) => {
            return Err(io_error(WriteError {
                path: key_path.into(),
                source: e,
            }))
        }
    };
    let chain = match fs::read_to_string(cert_path) {
        Ok(cert_pem) => check_certificate(&key, &cert_pem, key_path, cert_path)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let cert = self_signed_certificate(&pkcs8).map_err(|e| {
                KeyError::Invalid(format!(
                    "{}: cannot create a self-signed certificate for {} ({e}); supply one \
                     as `[jwt] certificate`",
                    cert_path.display(),
                    key_path.display()
                ))
            })?;
            write_new_file(cert_path, cert.pem().as_bytes(), 0o644).map_err(io_error)?;
            vec![cert.der().to_vec()]
        }
        Err(e) => {
            return Err(io_error(WriteError {
                path: cert_path.into(),
                source: e,
            }))
        }
    };
    // `check_certificate` found the key's certificate, and a fresh one is the key's own.
    key.with_certificates(chain).ok_or_else(|| {
        KeyError::Invalid(format!(
            "{}: no certificate of the key",
            cert_path.display()
        ))
    })
}

/// The certificates of `cert_pem` (DER), the one carrying `key`'s public key first; an error
/// naming both files when none does, or naming the certificate file when it holds none.
fn check_certificate(
    key: &SigningKey,
    cert_pem: &str,
    key_path: &Path,
    cert_path: &Path,
) -> Result<Vec<Vec<u8>>, KeyError> {
    let certs = certificates_from_pem(cert_pem)
        .map_err(|e| KeyError::Invalid(format!("{}: {e}", cert_path.display())))?;
    let spki = key.public_key_der();
    let Some(leaf) = certs
        .iter()
        .position(|der| der.windows(spki.len()).any(|w| w == spki))
    else {
        return Err(KeyError::Invalid(format!(
            "certificate {} does not match signing key {}: its public key differs, so the \
             registry would reject every token; supply the certificate of this key, or \
             remove {} to have a new one created",
            cert_path.display(),
            key_path.display(),
            cert_path.display()
        )));
    };
    let mut chain = certs;
    let leaf = chain.remove(leaf);
    chain.insert(0, leaf);
    Ok(chain)
}

/// A self-signed certificate for the PKCS#8 DER key `pkcs8`: CN "regauth token
/// signer", valid from today for ten years, not a CA. Works for P-256 (ECDSA-SHA256) and RSA
/// (PKCS#1 v1.5 SHA-256) keys.
pub(crate) fn self_signed_certificate(pkcs8: &[u8]) -> Result<rcgen::Certificate, rcgen::Error> {
    let today = Utc::now().date_naive();
    let days = today
        .with_year(today.year() + CERT_VALIDITY_YEARS)
        .map_or(3650, |later| (later - today).num_days());
    self_signed_certificate_for_days(pkcs8, days)
}

/// Like [`self_signed_certificate`], valid from today for `days` days (at least one).
pub(crate) fn self_signed_certificate_for_days(
    pkcs8: &[u8],
    days: i64,
) -> Result<rcgen::Certificate, rcgen::Error> {
    let key_pair = rcgen::KeyPair::try_from(pkcs8)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CERT_COMMON_NAME);
    let today = Utc::now().date_naive();
    let until = today
        .checked_add_signed(chrono::TimeDelta::days(days.max(1)))
        .unwrap_or(today);
    // Month and day come from real dates, so `date_time_ymd` (which panics on impossible
    // dates) never sees one.
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(today);
    params.not_after = ymd(until);
    params.self_signed(&key_pair)
}

fn io_error(e: WriteError) -> KeyError {
    KeyError::Io {
        path: e.path.display().to_string(),
        source: e.source,
    }
}

/// Prefixes an `Invalid` message with the file it is about.
fn in_file(path: &Path, err: KeyError) -> KeyError {
    match err {
        KeyError::Invalid(msg) => KeyError::Invalid(format!("{}: {msg}", path.display())),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::signing::tests::{openssl_spki, pem_der, RS256_KEY, RS256_KID};
    use std::os::unix::fs::PermissionsExt;

    fn invalid_message(result: Result<SigningKey, KeyError>) -> String {
        match result {
            Err(KeyError::Invalid(msg)) => msg,
            Err(other) => panic!("expected Invalid, got {other:?}"),
            Ok(key) => panic!("expected an error, got {key:?}"),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn load_or_create_creates_key_and_certificate_then_reloads_them() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("certs/nested/signing.key");
        let cert_path = dir.path().join("other/signing.crt");
        let key = load_or_create(&key_path, &cert_path).unwrap();
        assert_eq!(key.alg(), "ES256");
        assert_eq!(mode(&key_path), 0o600);
        let key_pem = fs::read_to_string(&key_path).unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let cert_pem = fs::read_to_string(&cert_path).unwrap();
        check_certificate(&key, &cert_pem, &key_path, &cert_path).unwrap();

        let again = load_or_create(&key_path, &cert_path).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(fs::read_to_string(&cert_path).unwrap(), cert_pem);
    }

    #[test]
    fn load_or_create_self_signs_an_operator_rsa_key() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("rs256.key");
        let cert_path = dir.path().join("rs256.crt");
        fs::write(&key_path, RS256_KEY).unwrap();
        let key = load_or_create(&key_path, &cert_path).unwrap();
        assert_eq!((key.alg(), key.kid()), ("RS256", RS256_KID));
        let cert_pem = fs::read_to_string(&cert_path).unwrap();
        let cert = pem_der(&cert_pem, "CERTIFICATE");
        let spki = openssl_spki("RS256");
        assert!(cert.windows(spki.len()).any(|w| w == spki.as_slice()));
        assert_eq!(
            load_or_create(&key_path, &cert_path).unwrap().kid(),
            RS256_KID
        );
    }

    #[test]
    fn load_or_create_names_the_file_of_a_garbage_key() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("garbage.key");
        let cert_path = dir.path().join("garbage.crt");
        fs::write(&key_path, "garbage").unwrap();
        let msg = invalid_message(load_or_create(&key_path, &cert_path));
        assert!(msg.starts_with(&key_path.display().to_string()), "{msg}");
        assert!(!cert_path.exists());
    }

    #[test]
    fn load_or_create_detects_a_certificate_of_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let (key_a, cert_a) = (dir.path().join("a.key"), dir.path().join("a.crt"));
        let (key_b, cert_b) = (dir.path().join("b.key"), dir.path().join("b.crt"));
        load_or_create(&key_a, &cert_a).unwrap();
        load_or_create(&key_b, &cert_b).unwrap();
        let msg = invalid_message(load_or_create(&key_a, &cert_b));
        assert!(msg.contains(&key_a.display().to_string()), "{msg}");
        assert!(msg.contains(&cert_b.display().to_string()), "{msg}");
        assert!(msg.contains("does not match"), "{msg}");

        fs::write(&cert_a, "not a certificate").unwrap();
        let msg = invalid_message(load_or_create(&key_a, &cert_a));
        assert!(msg.contains(&cert_a.display().to_string()), "{msg}");
    }

    #[test]
    fn unreadable_key_path_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the key should be: reading it fails with something else than
        // NotFound.
        let err = load_or_create(dir.path(), &dir.path().join("x.crt")).unwrap_err();
        match err {
            KeyError::Io { path, .. } => assert_eq!(path, dir.path().display().to_string()),
            other => panic!("expected Io, got {other:?}"),
        }
    }
}
