//! Encodings of keys and certificates: PEM (through the `pem` crate) and the little DER that
//! regauth needs without a full ASN.1 library: reading a PKCS#8 key's algorithm and writing a
//! public key as PKIX SubjectPublicKeyInfo.
use super::KeyError;

/// DER of `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) ...`
/// for a 65-byte uncompressed P-256 point: the fixed head of every P-256 SubjectPublicKeyInfo.
pub(crate) const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// OID 1.2.840.10045.2.1 (id-ecPublicKey), content bytes only.
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// OID 1.2.840.113549.1.1.1 (rsaEncryption), content bytes only.
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// OID 1.2.840.10045.3.1.7 (prime256v1 / P-256), content bytes only.
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// PEM label of a PKCS#8 private key.
pub(crate) const PKCS8_LABEL: &str = "PRIVATE KEY";
/// PEM label of an X.509 certificate.
pub(crate) const CERT_LABEL: &str = "CERTIFICATE";

/// All PEM blocks in `text` as (label, DER); text outside blocks is ignored (as OpenSSL does).
fn pem_blocks(text: &str) -> Result<Vec<pem::Pem>, String> {
    pem::parse_many(text).map_err(|e| match e {
        pem::PemError::InvalidData(e) => format!(
            "a PEM block is not valid base64 ({e}); if it is an encrypted key, write an \
             unencrypted PKCS#8 copy with `openssl pkcs8 -topk8 -nocrypt -in OLD.key -out NEW.key`"
        ),
        other => format!("not a valid PEM file: {other}"),
    })
}

/// The DER of the "PRIVATE KEY" block in `pem`, or an error that says what was found instead.
pub(crate) fn pkcs8_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let blocks = pem_blocks(pem).map_err(KeyError::Invalid)?;
    let labels: Vec<&str> = blocks.iter().map(pem::Pem::tag).collect();
    if let Some(block) = blocks.iter().find(|b| b.tag() == PKCS8_LABEL) {
        return Ok(block.contents().to_vec());
    }
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

/// The DER of every "CERTIFICATE" block in `pem`, in file order; `Err` when the text is not
/// PEM or holds no certificate.
pub(crate) fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let certs: Vec<Vec<u8>> = pem_blocks(pem)?
        .into_iter()
        .filter(|b| b.tag() == CERT_LABEL)
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err("no \"CERTIFICATE\" PEM block found".into());
    }
    Ok(certs)
}

/// `der` as a PEM block with `label`, in 64-character lines ending in `\n`.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// SubjectPublicKeyInfo DER for an uncompressed P-256 point (65 bytes, leading 0x04).
pub(crate) fn ec_spki_der(point: &[u8]) -> Vec<u8> {
    let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + point.len());
    der.extend_from_slice(&P256_SPKI_PREFIX);
    der.extend_from_slice(point);
    der
}

/// SubjectPublicKeyInfo DER for a PKCS#1 RSAPublicKey DER: algorithm rsaEncryption with NULL
/// parameters, the key in a BIT STRING with no unused bits.
pub(crate) fn rsa_spki_der(rsa_public_key: &[u8]) -> Vec<u8> {
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
pub(crate) fn der_read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
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
pub(crate) fn pkcs8_algorithm(der: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
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

/// The not-after of a DER X.509 certificate (UTCTime or GeneralizedTime), read by walking
/// `Certificate.tbsCertificate.validity`.
pub(crate) fn certificate_not_after(cert: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    let (0x30, certificate, _) = der_read(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der_read(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    // Optional explicit version [0].
    if rest.first() == Some(&0xa0) {
        rest = der_read(rest)?.2;
    }
    let rest = der_read(rest)?.2; // serialNumber
    let rest = der_read(rest)?.2; // signature AlgorithmIdentifier
    let rest = der_read(rest)?.2; // issuer
    let (0x30, validity, _) = der_read(rest)? else {
        return None;
    };
    let (_, _not_before, rest) = der_read(validity)?;
    let (tag, not_after, _) = der_read(rest)?;
    let text = std::str::from_utf8(not_after).ok()?;
    let text = match tag {
        // UTCTime: YYMMDDHHMMSSZ, years 50-99 are 19xx (RFC 5280 §4.1.2.5.1).
        0x17 => {
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 => text.to_string(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&text, "%Y%m%d%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// The SubjectPublicKeyInfo DER (whole element) inside a DER X.509 certificate.
pub(crate) fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, certificate, _) = der_read(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der_read(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_read(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = der_read(rest)?.2;
    }
    let (0x30, _, after) = der_read(rest)? else {
        return None;
    };
    Some(&rest[..rest.len() - after.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_and_public_key_are_read_from_a_generated_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let cert = params.clone().self_signed(&key).unwrap();
        let not_after = certificate_not_after(cert.der()).unwrap();
        assert_eq!(not_after.to_rfc3339(), "2031-07-09T00:00:00+00:00");
        let spki = certificate_spki(cert.der()).unwrap();
        assert_eq!(spki, key.public_key_der().as_slice());
        // GeneralizedTime past 2049.
        params.not_after = rcgen::date_time_ymd(2061, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_not_after(cert.der()).unwrap().to_rfc3339(),
            "2061-01-02T00:00:00+00:00"
        );
        assert!(certificate_not_after(b"junk").is_none());
    }
}
