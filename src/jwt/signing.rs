//! The signing key: ES256 (P-256, default) or RS256, its libtrust key id, the certificate
//! chain that vouches for it (the JWT header's `x5c`), signing and verification.
//!
//! A [`SigningKey`] keeps ring's parsed key pair, so a signature costs only the signature
//! (no PKCS#8 parsing per token). Its public key is kept as PKIX SubjectPublicKeyInfo DER,
//! byte-for-byte what `openssl pkey -pubout -outform DER` prints, because that DER is what
//! the libtrust key id (the `kid` registry 2.8 looks up) is a hash of.
//!
//! Dependency direction: `signing -> codec`; used by `issuer` and `provision`.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};

use super::codec::{
    der_read, ec_spki_der, pem_encode, pkcs8_algorithm, pkcs8_der_from_pem, rsa_spki_der,
    OID_EC_PUBLIC_KEY, OID_P256, OID_RSA_ENCRYPTION, PKCS8_LABEL,
};
use super::KeyError;

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
    /// DER certificates, the one carrying this key first; empty until
    /// [`SigningKey::with_certificates`].
    certificates: Vec<Vec<u8>>,
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
            certificates: Vec::new(),
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

    /// This key with the certificate chain that vouches for it, reordered so that the
    /// certificate carrying this key's public key comes first (the others keep their order),
    /// as a JWT's `x5c` lists them. `None` when no certificate carries the key: the registry
    /// would refuse every token.
    ///
    /// An X.509 certificate embeds the SubjectPublicKeyInfo DER verbatim, so a byte search
    /// finds the key's certificate without a certificate parser.
    pub fn with_certificates(mut self, mut certificates: Vec<Vec<u8>>) -> Option<SigningKey> {
        let spki = self.spki_der.as_slice();
        let leaf = certificates
            .iter()
            .position(|der| der.windows(spki.len()).any(|w| w == spki))?;
        let leaf = certificates.remove(leaf);
        certificates.insert(0, leaf);
        self.certificates = certificates;
        Some(self)
    }

    /// The certificate chain as DER, this key's certificate first; empty when the key was
    /// loaded without one.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.certificates
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

    /// The public key as a JWK (RFC 7517): `kty`, `crv`/`x`/`y` (P-256) or `n`/`e` (RSA),
    /// plus `kid` (the RFC 7638 thumbprint), `alg` and `use: sig`, as 3.x's `jwks` reads it.
    pub fn jwk(&self) -> serde_json::Value {
        jwk_of_spki(&self.spki_der).map_or(serde_json::Value::Null, |(jwk, _)| jwk)
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url): the key's id in the keyring and the
    /// `kid` of its entry in the JWK Set.
    pub fn thumbprint(&self) -> String {
        jwk_of_spki(&self.spki_der).map_or_else(String::new, |(_, id)| id)
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

/// The JWK (with `kid`, `alg`, `use`) and RFC 7638 thumbprint of a P-256 or RSA
/// SubjectPublicKeyInfo DER; `None` for another kind of key.
pub(crate) fn jwk_of_spki(spki: &[u8]) -> Option<(serde_json::Value, String)> {
    let (0x30, body, _) = der_read(spki)? else {
        return None;
    };
    let (0x30, alg_id, rest) = der_read(body)? else {
        return None;
    };
    let (0x06, oid, params) = der_read(alg_id)? else {
        return None;
    };
    let (0x03, bits, _) = der_read(rest)? else {
        return None;
    };
    let key = bits.get(1..)?; // after the unused-bits byte
    let b64 = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
    // RFC 7638 §3.2: the required members only, in lexicographic order of their names.
    let (alg, members): (&str, Vec<(&str, String)>) = if oid == OID_EC_PUBLIC_KEY {
        let (0x06, curve, _) = der_read(params)? else {
            return None;
        };
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        if curve != OID_P256 || key.len() != 65 || key[0] != 4 {
            return None;
        }
        let (x, y) = key[1..].split_at(32);
        (
            "ES256",
            vec![
                ("crv", "P-256".into()),
                ("kty", "EC".into()),
                ("x", b64(x)),
                ("y", b64(y)),
            ],
        )
    } else if oid == OID_RSA_ENCRYPTION {
        let (0x30, rsa, _) = der_read(key)? else {
            return None;
        };
        let (0x02, n, rest) = der_read(rsa)? else {
            return None;
        };
        let (0x02, e, _) = der_read(rest)? else {
            return None;
        };
        let trim = |v: &[u8]| v.iter().take_while(|&&b| b == 0).count();
        (
            "RS256",
            vec![
                ("e", b64(&e[trim(e)..])),
                ("kty", "RSA".into()),
                ("n", b64(&n[trim(n)..])),
            ],
        )
    } else {
        return None;
    };
    // The canonical form is fixed by RFC 7638 §3: no white space, members in order. Every
    // value is base64url or a fixed name, so none needs JSON escaping.
    let canonical = members
        .iter()
        .map(|(name, value)| format!("\"{name}\":\"{value}\""))
        .collect::<Vec<_>>()
        .join(",");
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{{{canonical}}}").as_bytes());
    let id = b64(digest.as_ref());
    let mut jwk = serde_json::Map::new();
    for (name, value) in members {
        jwk.insert(name.into(), value.into());
    }
    jwk.insert("kid".into(), id.clone().into());
    jwk.insert("alg".into(), alg.into());
    jwk.insert("use".into(), "sig".into());
    Some((serde_json::Value::Object(jwk), id))
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jwt::codec::{der_read, P256_SPKI_PREFIX};

    pub(crate) const ES256_KEY: &str = include_str!("../../tests/fixtures/es256.key");
    pub(crate) const RS256_KEY: &str = include_str!("../../tests/fixtures/rs256.key");
    const ES256_PUB: &str = include_str!("../../tests/fixtures/es256.pub.pem");
    const RS256_PUB: &str = include_str!("../../tests/fixtures/rs256.pub.pem");
    const LIBTRUST_VECTOR: &str = include_str!("../../tests/fixtures/libtrust-vector.pem");
    /// `openssl pkey -in es256.key -pubout -outform DER | sha256 | first 30 bytes | base32`,
    /// see tests/fixtures/README.md.
    const ES256_KID: &str = "7C27:6JVF:MFSV:5QC2:AA7S:DYB2:CUAL:UQIX:A2WR:A362:JDCU:U4F7";
    pub(crate) const RS256_KID: &str =
        "RCL5:3VFX:CK4B:SNJZ:SPVD:SEX5:D6HY:3PI7:NDUN:UH3B:2Q4E:S62A";

    /// DER of the single `label` block in a PEM fixture.
    pub(crate) fn pem_der(pem: &str, label: &str) -> Vec<u8> {
        let blocks = pem::parse_many(pem).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].tag(), label);
        blocks[0].contents().to_vec()
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
    fn rfc7638_thumbprints_match_an_independent_computation() {
        // Computed with Python's json/hashlib from the `openssl pkey -pubout` fixtures.
        let es = SigningKey::from_pkcs8_pem(ES256_KEY).unwrap();
        assert_eq!(
            es.thumbprint(),
            "BMgoE9ZoH21VLxAsH7q4ivIEeDBKoTg-ox4hNSE6qlI"
        );
        let jwk = es.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["kid"], es.thumbprint().as_str());
        assert_eq!(jwk["alg"], "ES256");
        let rs = SigningKey::from_pkcs8_pem(RS256_KEY).unwrap();
        assert_eq!(
            rs.thumbprint(),
            "dSunaILduUCA1bDvzocVcSPsTAaag6UzCjhxXtGjt0I"
        );
        assert_eq!(rs.jwk()["e"], "AQAB");
        assert!(jwk_of_spki(b"garbage").is_none());
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
}
