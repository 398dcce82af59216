//! Signing keys: ES256 (P-256, default) and RS256; the libtrust key id; certificate creation.
//!
//! A [`SigningKey`] keeps ring's parsed key pair, so a signature costs only the signature
//! (no PKCS#8 parsing per token). Its public key is kept as PKIX SubjectPublicKeyInfo DER,
//! byte-for-byte what `openssl pkey -pubout -outform DER` prints, because that DER is what
//! the libtrust key id (the `kid` registry 2.8 looks up) is a hash of.
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{Datelike, Utc};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};

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

/// DER of `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) ...`
/// for a 65-byte uncompressed P-256 point: the fixed head of every P-256 SubjectPublicKeyInfo.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// OID 1.2.840.10045.2.1 (id-ecPublicKey), content bytes only.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// OID 1.2.840.113549.1.1.1 (rsaEncryption), content bytes only.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// OID 1.2.840.10045.3.1.7 (prime256v1 / P-256), content bytes only.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

const PKCS8_LABEL: &str = "PRIVATE KEY";
const CERT_LABEL: &str = "CERTIFICATE";
const CERT_COMMON_NAME: &str = "regauth token signer";
const CERT_VALIDITY_YEARS: i32 = 10;

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A parsed private key, kept parsed so each signature costs only the signature.
pub struct SigningKey {
    pair: Pair,
    rng: SystemRandom,
    spki_der: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    /// Shows the algorithm and key id only, never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 PEM private key: EC P-256 (ES256) or RSA ≥ 2048 bits (RS256).
    ///
    /// SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) PEMs are refused with the
    /// `openssl` command that converts them; other PKCS#8 algorithms (P-384, Ed25519, ...)
    /// are refused by name.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        SigningKey::from_pkcs8_der(&pkcs8_der_from_pem(pem)?)
    }

    /// Parses a PKCS#8 DER private key: EC P-256 (ES256) or RSA 2048–4096 bits (RS256).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        let (alg_oid, curve_oid) = pkcs8_algorithm(der).ok_or_else(|| {
            KeyError::Invalid(
                "not a P-256 or RSA PKCS#8 key: the DER does not parse as PKCS#8".into(),
            )
        })?;
        let rng = SystemRandom::new();
        let (pair, spki_der) = if alg_oid == OID_EC_PUBLIC_KEY {
            if curve_oid != Some(OID_P256) {
                return Err(KeyError::Invalid(
                    "not a P-256 or RSA PKCS#8 key: the EC key is not on curve P-256 \
                     (only ES256 is supported)"
                        .into(),
                ));
            }
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                .map_err(|e| {
                    KeyError::Invalid(format!(
                        "P-256 PKCS#8 key rejected ({e}); it must include its public key, \
                         as keys written by `openssl genpkey` do"
                    ))
                })?;
            let spki = ec_spki_der(pair.public_key().as_ref());
            (Pair::Ec(pair), spki)
        } else if alg_oid == OID_RSA_ENCRYPTION {
            let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| {
                KeyError::Invalid(format!(
                    "RSA PKCS#8 key rejected ({e}); RS256 needs a 2048–4096 bit RSA key"
                ))
            })?;
            let spki = rsa_spki_der(pair.public().as_ref());
            (Pair::Rsa(pair), spki)
        } else {
            return Err(KeyError::Invalid(
                "not a P-256 or RSA PKCS#8 key: registry 2.8 verifies only ES256 (P-256) and \
                 RS256 (RSA) tokens from regauth"
                    .into(),
            ));
        };
        let kid = libtrust_key_id(&spki_der);
        Ok(SigningKey {
            pair,
            rng,
            spki_der,
            kid,
        })
    }

    /// A fresh ES256 (P-256) key and its PKCS#8 PEM ("PRIVATE KEY").
    pub fn generate_es256() -> Result<(SigningKey, String), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Invalid("could not generate a P-256 key".into()))?;
        let key = SigningKey::from_pkcs8_der(pkcs8.as_ref())?;
        Ok((key, pem_encode(PKCS8_LABEL, pkcs8.as_ref())))
    }

    /// `ES256` or `RS256`.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Ec(_) => "ES256",
            Pair::Rsa(_) => "RS256",
        }
    }

    /// libtrust key id of the public key (what registry 2.8 looks up by `kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as PKIX SubjectPublicKeyInfo DER (`openssl pkey -pubout -outform DER`).
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Signature over `msg` in JWS form (raw r||s for ECDSA, PKCS#1 v1.5 for RSA).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&self.rng, msg)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }

    /// Whether `sig` is a valid JWS signature by this key over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.pair {
            Pair::Ec(pair) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key())
                .verify(msg, sig)
                .is_ok(),
            Pair::Rsa(pair) => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public())
                .verify(msg, sig)
                .is_ok(),
        }
    }

    /// Checks a compact JWT signed by this key (three base64url parts, `alg` and `kid` equal
    /// to this key's, valid signature) and returns its decoded header and claims. Claims
    /// (`exp`, `aud`, ...) are not checked: that is the registry's job; this is for tests and
    /// diagnostics.
    pub fn verify_jwt(
        &self,
        jwt: &str,
    ) -> Result<(serde_json::Value, serde_json::Value), KeyError> {
        let bad = |why: &str| KeyError::Invalid(format!("JWT rejected: {why}"));
        let mut parts = jwt.split('.');
        let (Some(header), Some(claims), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not three dot-separated parts"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| bad("bad base64url"))
        };
        let sig = decode(sig)?;
        if !self.verify(&jwt.as_bytes()[..header.len() + 1 + claims.len()], &sig) {
            return Err(bad("bad signature"));
        }
        let json = |part: &str| -> Result<serde_json::Value, KeyError> {
            serde_json::from_slice(&decode(part)?).map_err(|_| bad("part is not JSON"))
        };
        let (header, claims) = (json(header)?, json(claims)?);
        if header["alg"] != self.alg() || header["kid"] != self.kid() {
            return Err(bad("alg or kid is not this key's"));
        }
        Ok((header, claims))
    }
}

/// The DER of the "PRIVATE KEY" block in `pem`, or an error that says what was found instead.
fn pkcs8_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let blocks = parse_pem(pem).map_err(KeyError::Invalid)?;
    if let Some(block) = blocks.iter().find(|b| b.label == PKCS8_LABEL) {
        return Ok(block.der.clone());
    }
    let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
    let legacy = labels
        .iter()
        .find(|l| matches!(**l, "EC PRIVATE KEY" | "RSA PRIVATE KEY"));
    let msg = if let Some(label) = legacy {
        format!(
            "the key is an \"{label}\" PEM (SEC1/PKCS#1), not PKCS#8; convert it with \
             `openssl pkcs8 -topk8 -nocrypt -in OLD.key -out NEW.key`"
        )
    } else if labels.contains(&"ENCRYPTED PRIVATE KEY") {
        "the key is encrypted; write an unencrypted PKCS#8 copy with \
         `openssl pkcs8 -topk8 -nocrypt -in OLD.key -out NEW.key`"
            .into()
    } else if labels.is_empty() {
        "no PEM block found; expected a PKCS#8 \"PRIVATE KEY\" (P-256 or RSA)".into()
    } else {
        format!(
            "no \"PRIVATE KEY\" PEM block found (found {}); expected a P-256 or RSA PKCS#8 key",
            labels.join(", ")
        )
    };
    Err(KeyError::Invalid(msg))
}

/// libtrust key id of a PKIX SubjectPublicKeyInfo DER.
///
/// SHA-256 of the DER, first 240 bits, base32 (RFC 4648 alphabet) without padding, in twelve
/// groups of four joined by `:` (docker/libtrust `keyIDFromCryptoKey`).
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let b32 = data_encoding::BASE32_NOPAD.encode(&digest.as_ref()[..30]);
    let groups: Vec<&str> = (0..b32.len())
        .step_by(4)
        .map(|i| &b32[i..(i + 4).min(b32.len())])
        .collect();
    groups.join(":")
}

/// Loads the key at `key_path`, creating an ES256 key (PKCS#8 PEM, mode 0600) if it is missing,
/// and a self-signed certificate for it at `cert_path` if that is missing.
///
/// An existing certificate must carry the key's public key (the registry would reject every
/// token otherwise); a mismatch is an error naming both files.
pub fn load_or_create(key_path: &Path, cert_path: &Path) -> Result<SigningKey, KeyError> {
    let (key, pkcs8) = match fs::read_to_string(key_path) {
        Ok(pem) => {
            let pkcs8 = pkcs8_der_from_pem(&pem).map_err(|e| in_file(key_path, e))?;
            let key = SigningKey::from_pkcs8_der(&pkcs8).map_err(|e| in_file(key_path, e))?;
            (key, pkcs8)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let (key, pem) = SigningKey::generate_es256()?;
            write_new_file(key_path, pem.as_bytes(), 0o600)?;
            (key, pkcs8_der_from_pem(&pem)?)
        }
        Err(e) => return Err(io_error(key_path, e)),
    };
    match fs::read_to_string(cert_path) {
        Ok(cert_pem) => check_certificate(&key, &cert_pem, key_path, cert_path)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let cert_pem = self_signed_certificate(&pkcs8).map_err(|e| {
                KeyError::Invalid(format!(
                    "{}: cannot create a self-signed certificate for {} ({e}); supply one \
                     as `[jwt] certificate`",
                    cert_path.display(),
                    key_path.display()
                ))
            })?;
            write_new_file(cert_path, cert_pem.as_bytes(), 0o644)?;
        }
        Err(e) => return Err(io_error(cert_path, e)),
    }
    Ok(key)
}

/// Fails unless some certificate in `cert_pem` carries `key`'s public key. An X.509
/// certificate embeds the SubjectPublicKeyInfo DER verbatim, so a byte search is exact
/// enough without a certificate parser.
fn check_certificate(
    key: &SigningKey,
    cert_pem: &str,
    key_path: &Path,
    cert_path: &Path,
) -> Result<(), KeyError> {
    let blocks = parse_pem(cert_pem).map_err(|e| in_file(cert_path, KeyError::Invalid(e)))?;
    let certs: Vec<&[u8]> = blocks
        .iter()
        .filter(|b| b.label == CERT_LABEL)
        .map(|b| b.der.as_slice())
        .collect();
    if certs.is_empty() {
        return Err(KeyError::Invalid(format!(
            "{}: no \"CERTIFICATE\" PEM block found",
            cert_path.display()
        )));
    }
    let spki = key.public_key_der();
    if certs
        .iter()
        .any(|der| der.windows(spki.len()).any(|w| w == spki))
    {
        Ok(())
    } else {
        Err(KeyError::Invalid(format!(
            "certificate {} does not match signing key {}: its public key differs, so the \
             registry would reject every token; supply the certificate of this key, or \
             remove {} to have a new one created",
            cert_path.display(),
            key_path.display(),
            cert_path.display()
        )))
    }
}

/// A self-signed certificate (PEM) for the PKCS#8 DER key `pkcs8`: CN "regauth token
/// signer", valid from today for ten years, not a CA. Works for P-256 (ECDSA-SHA256) and RSA
/// (PKCS#1 v1.5 SHA-256) keys.
fn self_signed_certificate(pkcs8: &[u8]) -> Result<String, rcgen::Error> {
    let key_pair = rcgen::KeyPair::try_from(pkcs8)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CERT_COMMON_NAME);
    let today = Utc::now().date_naive();
    // Day clamped to 28 so that `date_time_ymd` (which panics on impossible dates) never sees
    // 29 February of a non-leap year; month and day come from a real date, so they are in range.
    let (month, day) = (today.month() as u8, today.day().min(28) as u8);
    params.not_before = rcgen::date_time_ymd(today.year(), month, day);
    params.not_after = rcgen::date_time_ymd(today.year() + CERT_VALIDITY_YEARS, month, day);
    Ok(params.self_signed(&key_pair)?.pem())
}

/// Creates `path` (and its parent directories) with `mode`, writes `contents` and syncs the
/// file and its directory so the key survives a crash right after start-up.
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.write_all(contents).map_err(|e| io_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))?;
    let dir = parent.unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

fn io_error(path: &Path, source: std::io::Error) -> KeyError {
    KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Prefixes an `Invalid` message with the file it is about.
fn in_file(path: &Path, err: KeyError) -> KeyError {
    match err {
        KeyError::Invalid(msg) => KeyError::Invalid(format!("{}: {msg}", path.display())),
        other => other,
    }
}

/// SubjectPublicKeyInfo DER for an uncompressed P-256 point (65 bytes, leading 0x04).
fn ec_spki_der(point: &[u8]) -> Vec<u8> {
    let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + point.len());
    der.extend_from_slice(&P256_SPKI_PREFIX);
    der.extend_from_slice(point);
    der
}

/// SubjectPublicKeyInfo DER for a PKCS#1 RSAPublicKey DER: algorithm rsaEncryption with NULL
/// parameters, the key in a BIT STRING with no unused bits.
fn rsa_spki_der(rsa_public_key: &[u8]) -> Vec<u8> {
    let mut alg = der_tlv(0x06, OID_RSA_ENCRYPTION);
    alg.extend_from_slice(&[0x05, 0x00]);
    let mut bits = Vec::with_capacity(rsa_public_key.len() + 1);
    bits.push(0x00);
    bits.extend_from_slice(rsa_public_key);
    let mut body = der_tlv(0x30, &alg);
    body.extend_from_slice(&der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Splits one DER element off `input`: (tag, content, rest). Definite lengths only.
fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The algorithm OID of a PKCS#8 PrivateKeyInfo and, when the parameters are an OID (a named
/// EC curve), that OID too.
fn pkcs8_algorithm(der: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (0x30, info, _) = der_read(der)? else {
        return None;
    };
    let (0x02, _version, rest) = der_read(info)? else {
        return None;
    };
    let (0x30, alg_id, _) = der_read(rest)? else {
        return None;
    };
    let (0x06, oid, params) = der_read(alg_id)? else {
        return None;
    };
    let curve = match der_read(params) {
        Some((0x06, curve, _)) => Some(curve),
        _ => None,
    };
    Some((oid, curve))
}

/// One `-----BEGIN label-----` ... `-----END label-----` block, base64-decoded.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// All PEM blocks in `text`; text outside blocks is ignored (as OpenSSL does).
fn parse_pem(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(&str, String)> = None;
    for line in text.lines().map(str::trim) {
        match &mut open {
            None => {
                if let Some(label) = pem_marker(line, "BEGIN") {
                    open = Some((label, String::new()));
                }
            }
            Some((label, body)) => {
                if let Some(end) = pem_marker(line, "END") {
                    if end != *label {
                        return Err(format!("PEM block \"{label}\" ends with \"{end}\""));
                    }
                    let der = STANDARD
                        .decode(body.as_bytes())
                        .map_err(|_| format!("PEM block \"{label}\" is not valid base64"))?;
                    blocks.push(PemBlock {
                        label: label.to_string(),
                        der,
                    });
                    open = None;
                } else if line.contains(':') {
                    // RFC 1421 headers such as `Proc-Type: 4,ENCRYPTED` (legacy encrypted keys).
                    return Err(format!(
                        "PEM block \"{label}\" has headers (an encrypted key?); write an \
                         unencrypted PKCS#8 copy with `openssl pkcs8 -topk8 -nocrypt`"
                    ));
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    match open {
        Some((label, _)) => Err(format!("PEM block \"{label}\" has no END line")),
        None => Ok(blocks),
    }
}

fn pem_marker<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_prefix(kind)?
        .strip_prefix(' ')?
        .strip_suffix("-----")
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    // 48 bytes encode to one 64-character line.
    for chunk in der.chunks(48) {
        STANDARD.encode_string(chunk, &mut out);
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) const ES256_KEY: &str = include_str!("../../tests/fixtures/es256.key");
    pub(crate) const RS256_KEY: &str = include_str!("../../tests/fixtures/rs256.key");
    const ES256_PUB: &str = include_str!("../../tests/fixtures/es256.pub.pem");
    const RS256_PUB: &str = include_str!("../../tests/fixtures/rs256.pub.pem");
    const LIBTRUST_VECTOR: &str = include_str!("../../tests/fixtures/libtrust-vector.pem");
    /// `openssl pkey -in es256.key -pubout -outform DER | sha256 | first 30 bytes | base32`,
    /// see tests/fixtures/README.md.
    const ES256_KID: &str = "7C27:6JVF:MFSV:5QC2:AA7S:DYB2:CUAL:UQIX:A2WR:A362:JDCU:U4F7";
    const RS256_KID: &str = "RCL5:3VFX:CK4B:SNJZ:SPVD:SEX5:D6HY:3PI7:NDUN:UH3B:2Q4E:S62A";

    /// DER of the single `label` block in a PEM fixture.
    pub(crate) fn pem_der(pem: &str, label: &str) -> Vec<u8> {
        let blocks = parse_pem(pem).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].label, label);
        blocks[0].der.clone()
    }

    /// SPKI DER of the fixture key, as `openssl pkey -pubout` wrote it.
    pub(crate) fn openssl_spki(alg: &str) -> Vec<u8> {
        match alg {
            "ES256" => pem_der(ES256_PUB, "PUBLIC KEY"),
            "RS256" => pem_der(RS256_PUB, "PUBLIC KEY"),
            _ => unreachable!(),
        }
    }

    /// Verifies a JWS signature with ring against an SPKI DER, independently of `SigningKey`.
    pub(crate) fn verify_with_spki(alg: &str, spki: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        let (0x30, body, _) = der_read(spki).unwrap() else {
            panic!("SPKI is not a SEQUENCE")
        };
        let (0x30, _alg_id, rest) = der_read(body).unwrap() else {
            panic!("no AlgorithmIdentifier")
        };
        let (0x03, bits, _) = der_read(rest).unwrap() else {
            panic!("no BIT STRING")
        };
        assert_eq!(bits[0], 0, "unused bits");
        let key = &bits[1..];
        let verified = match alg {
            "ES256" => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key).verify(msg, sig),
            "RS256" => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key).verify(msg, sig),
            _ => unreachable!(),
        };
        verified.is_ok()
    }

    fn invalid_message(result: Result<SigningKey, KeyError>) -> String {
        match result {
            Err(KeyError::Invalid(msg)) => msg,
            Err(other) => panic!("expected Invalid, got {other:?}"),
            Ok(key) => panic!("expected an error, got {key:?}"),
        }
    }

    #[test]
    fn libtrust_kid_of_the_distribution_docs_key() {
        // The P-256 key printed in distribution's docs/spec/auth/jwt.md (x, y of its JWK).
        let spki = pem_der(LIBTRUST_VECTOR, "PUBLIC KEY");
        assert_eq!(
            libtrust_key_id(&spki),
            "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6"
        );
        // And it is that doc's key: its private scalar `d` belongs to this public point.
        // (The doc's example signature does not verify against its own example token, so it
        // cannot serve as a check.)
        let d = URL_SAFE_NO_PAD
            .decode("R7OnbfMaD5J2jl7GeE8ESo7CnHSBm_1N2k9IXYFrKJA")
            .unwrap();
        let point = &spki[P256_SPKI_PREFIX.len()..];
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &d,
            point,
            &SystemRandom::new(),
        )
        .unwrap();
        // The prefix we put in front of a P-256 point is the one every P-256 SPKI has.
        assert_eq!(spki[..P256_SPKI_PREFIX.len()], P256_SPKI_PREFIX);
    }

    #[test]
    fn kid_shape() {
        let kid = libtrust_key_id(b"anything");
        assert_eq!(kid.len(), 59);
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| g.len() == 4
            && g.bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))));
    }

    #[test]
    fn es256_fixture_matches_openssl() {
        let key = SigningKey::from_pkcs8_pem(ES256_KEY).unwrap();
        assert_eq!(key.alg(), "ES256");
        assert_eq!(key.public_key_der(), openssl_spki("ES256").as_slice());
        assert_eq!(key.kid(), ES256_KID);
    }

    #[test]
    fn rs256_fixture_matches_openssl() {
        let key = SigningKey::from_pkcs8_pem(RS256_KEY).unwrap();
        assert_eq!(key.alg(), "RS256");
        assert_eq!(key.public_key_der(), openssl_spki("RS256").as_slice());
        assert_eq!(key.kid(), RS256_KID);
    }

    #[test]
    fn signatures_verify_with_the_openssl_public_key() {
        for (pem, alg, sig_len) in [(ES256_KEY, "ES256", 64), (RS256_KEY, "RS256", 256)] {
            let key = SigningKey::from_pkcs8_pem(pem).unwrap();
            let sig = key.sign(b"header.claims").unwrap();
            assert_eq!(sig.len(), sig_len, "{alg}");
            let spki = openssl_spki(alg);
            assert!(
                verify_with_spki(alg, &spki, b"header.claims", &sig),
                "{alg}"
            );
            assert!(
                !verify_with_spki(alg, &spki, b"header.claimz", &sig),
                "{alg}"
            );
            assert!(key.verify(b"header.claims", &sig), "{alg}");
            assert!(!key.verify(b"header.claimz", &sig), "{alg}");
        }
    }

    #[test]
    fn generated_key_round_trips_through_its_pem() {
        let (key, pem) = SigningKey::generate_es256().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let reloaded = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(reloaded.kid(), key.kid());
        assert_eq!(reloaded.public_key_der(), key.public_key_der());
        let sig = key.sign(b"m").unwrap();
        assert!(verify_with_spki("ES256", key.public_key_der(), b"m", &sig));
    }

    #[test]
    fn legacy_and_encrypted_pems_are_refused_with_the_conversion_command() {
        for label in ["EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] {
            let pem = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
            let msg = invalid_message(SigningKey::from_pkcs8_pem(&pem));
            assert!(msg.contains("openssl pkcs8 -topk8 -nocrypt"), "{msg}");
        }
        let legacy_encrypted = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                                AAAA\n-----END EC PRIVATE KEY-----\n";
        let msg = invalid_message(SigningKey::from_pkcs8_pem(legacy_encrypted));
        assert!(msg.contains("openssl pkcs8 -topk8 -nocrypt"), "{msg}");
    }

    #[test]
    fn garbage_is_refused() {
        let msg = invalid_message(SigningKey::from_pkcs8_pem("not a key"));
        assert!(msg.contains("no PEM block"), "{msg}");
        let msg = invalid_message(SigningKey::from_pkcs8_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ));
        assert!(msg.contains("not a P-256 or RSA PKCS#8 key"), "{msg}");
        let msg = invalid_message(SigningKey::from_pkcs8_pem(
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        ));
        assert!(msg.contains("base64"), "{msg}");
        let msg = invalid_message(SigningKey::from_pkcs8_pem(ES256_PUB));
        assert!(msg.contains("found PUBLIC KEY"), "{msg}");
    }

    #[test]
    fn other_algorithms_are_refused_by_name() {
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let msg = invalid_message(SigningKey::from_pkcs8_pem(&p384.serialize_pem()));
        assert!(msg.contains("not a P-256 or RSA PKCS#8 key"), "{msg}");
        assert!(msg.contains("P-256"), "{msg}");
        let ed = ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let msg = invalid_message(SigningKey::from_pkcs8_der(ed.as_ref()));
        assert!(msg.contains("not a P-256 or RSA PKCS#8 key"), "{msg}");
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
