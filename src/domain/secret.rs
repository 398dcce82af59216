//! Token secrets and refresh tokens: generation, checksum and hashing.
//!
//! Passwords are `rga_` + 43 base62 characters (256 random bits) + 6 base62 characters of
//! CRC32 over the preceding text, so a secret scanner can recognise and verify a leaked one.
//! Refresh tokens use the same format with prefix `rgr_`; those handed out now also name their
//! token: `rgr_` + the token's id (32 lowercase hex digits, not secret) + `_` + the same 43 + 6
//! characters, with the CRC32 over everything before it, so a refused one can be named in the
//! log after its grant is gone. Only SHA-256 of a secret is stored:
//! with 256 random bits a fast hash is right (a slow password hash would only slow the hot path).
use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Prefix of token passwords.
pub const PASSWORD_PREFIX: &str = "rga_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "rgr_";
/// Prefix of the temporary passwords a token exchange hands out (federated tokens).
pub const TEMPORARY_PREFIX: &str = "rgt_";

/// Base62 characters of randomness: 43 × log2(62) ≈ 256.03 bits.
const RANDOM_LEN: usize = 43;
/// Base62 characters of the CRC32 (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;
/// Length of every password and refresh token.
pub const SECRET_LEN: usize = 4 + RANDOM_LEN + CHECKSUM_LEN;

/// Length of a refresh token that names its token (`rgr_<id>_…`).
pub const NAMED_REFRESH_LEN: usize = SECRET_LEN + 33;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SHA-256 of a secret. Serialised as lowercase hex. Compared in constant time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hashes a presented secret.
    pub fn of(secret: &str) -> SecretHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        SecretHash(out)
    }

    /// 64 bits of the hash, never 0: enough to tell recent failed secrets apart (the
    /// throttle counts a retried one once) without keeping the hash.
    pub fn fingerprint(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b).max(1)
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl TryFrom<String> for SecretHash {
    type Error = String;
    /// Exactly 64 lowercase hex digits.
    fn try_from(s: String) -> Result<Self, Self::Error> {
        const RULE: &str = "a secret hash must be 64 lowercase hex digits (SHA-256)";
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(RULE.to_string());
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            match (hex_value(pair[0]), hex_value(pair[1])) {
                (Some(hi), Some(lo)) => *o = hi << 4 | lo,
                _ => return Err(RULE.to_string()),
            }
        }
        Ok(SecretHash(out))
    }
}

impl From<SecretHash> for String {
    fn from(h: SecretHash) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in h.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A new random password (`rga_...`).
///
/// Fails only if the operating system's random number generator does; see [`try_new_secret`].
pub fn new_password() -> Result<String, ring::error::Unspecified> {
    try_new_secret(PASSWORD_PREFIX)
}

/// A new random refresh token (`rgr_...`).
///
/// Fails only if the operating system's random number generator does.
pub fn new_refresh_token() -> Result<String, ring::error::Unspecified> {
    try_new_secret(REFRESH_PREFIX)
}

/// A new random refresh token naming its token: `rgr_<token id as 32 hex digits>_...`.
///
/// Fails only if the operating system's random number generator does.
pub fn new_named_refresh_token(token_id: uuid::Uuid) -> Result<String, ring::error::Unspecified> {
    try_new_secret(&format!("{REFRESH_PREFIX}{}_", token_id.simple()))
}

/// The token id a refresh token of the `rgr_<id>_…` format names (its checksum checked);
/// `None` for the older `rgr_…` format and anything malformed.
pub fn refresh_token_id(secret: &str) -> Option<uuid::Uuid> {
    if secret.len() != NAMED_REFRESH_LEN || !has_valid_checksum(secret) {
        return None;
    }
    let id = secret.get(REFRESH_PREFIX.len()..REFRESH_PREFIX.len() + 32)?;
    uuid::Uuid::try_parse(id).ok()
}

/// `prefix` + 43 uniformly random base62 characters + 6 base62 characters of CRC32 over
/// everything before them. Fails only if the system random number generator does.
pub fn try_new_secret(prefix: &str) -> Result<String, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut s = String::with_capacity(prefix.len() + RANDOM_LEN + CHECKSUM_LEN);
    s.push_str(prefix);
    let mut drawn = 0;
    let mut buf = [0u8; 64];
    while drawn < RANDOM_LEN {
        rng.fill(&mut buf)?;
        // Rejection sampling: 248 = 4 × 62, so bytes below it map onto base62 uniformly.
        for &b in buf.iter().filter(|&&b| b < 248).take(RANDOM_LEN - drawn) {
            s.push(char::from(BASE62[usize::from(b % 62)]));
            drawn += 1;
        }
    }
    let checksum = crc32fast::hash(s.as_bytes());
    s.push_str(&checksum_chars(checksum));
    Ok(s)
}

/// CRC32 in base62, big-endian, zero-padded to 6 characters.
fn checksum_chars(mut crc: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Whether `secret` has a known prefix, the right length and a matching checksum: `rga_`,
/// `rgr_` or `rgt_` + 43 + 6 base62 characters, or `rgr_` + 32 lowercase hex digits + `_` +
/// 43 + 6.
pub fn has_valid_checksum(secret: &str) -> bool {
    let bytes = secret.as_bytes();
    let random_from = if secret.len() == SECRET_LEN
        && (secret.starts_with(PASSWORD_PREFIX)
            || secret.starts_with(REFRESH_PREFIX)
            || secret.starts_with(TEMPORARY_PREFIX))
    {
        PASSWORD_PREFIX.len()
    } else if secret.len() == NAMED_REFRESH_LEN
        && secret.starts_with(REFRESH_PREFIX)
        && bytes[REFRESH_PREFIX.len()..REFRESH_PREFIX.len() + 32]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && bytes[REFRESH_PREFIX.len() + 32] == b'_'
    {
        REFRESH_PREFIX.len() + 33
    } else {
        return false;
    };
    // Checked before splitting: only then is every byte index a character boundary.
    if !bytes[random_from..].iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let (body, checksum) = secret.split_at(secret.len() - CHECKSUM_LEN);
    checksum_chars(crc32fast::hash(body.as_bytes())) == checksum
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sha256_known_vectors() {
        // FIPS 180-2 test vectors.
        assert_eq!(
            String::from(SecretHash::of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            String::from(SecretHash::of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ct_eq_compares_whole_hash() {
        let a = SecretHash::of("rga_one");
        assert!(a.ct_eq(&SecretHash::of("rga_one")));
        assert!(!a.ct_eq(&SecretHash::of("rga_two")));
        let mut last_byte_differs = a;
        last_byte_differs.0[31] ^= 1;
        assert!(!a.ct_eq(&last_byte_differs));
    }

    #[test]
    fn hex_round_trip_and_rejections() {
        let h = SecretHash::of("x");
        let s = String::from(h);
        assert_eq!(s.len(), 64);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(SecretHash::try_from(s.clone()), Ok(h));
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<SecretHash>(&json).unwrap(), h);

        for bad in [
            String::new(),
            s[..63].to_string(),
            format!("{s}0"),
            s.to_uppercase(),
            format!("{}g", &s[..63]),
            format!("{}é", &s[..62]),
            format!(" {}", &s[..63]),
        ] {
            let e = SecretHash::try_from(bad.clone()).unwrap_err();
            assert!(e.contains("64 lowercase hex"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn debug_hides_the_hash() {
        assert_eq!(format!("{:?}", SecretHash::of("secret")), "SecretHash(..)");
    }

    #[test]
    fn format_of_new_secrets() {
        for (s, prefix) in [
            (new_password().unwrap(), "rga_"),
            (new_refresh_token().unwrap(), "rgr_"),
            (try_new_secret(TEMPORARY_PREFIX).unwrap(), "rgt_"),
        ] {
            assert_eq!(s.len(), 53, "{s}");
            assert_eq!(SECRET_LEN, 53);
            assert!(s.starts_with(prefix), "{s}");
            assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
            assert!(has_valid_checksum(&s), "{s}");
        }
    }

    #[test]
    fn new_secrets_are_unique_and_use_the_whole_alphabet() {
        let drawn: Vec<String> = (0..2000).map(|_| new_password().unwrap()).collect();
        let unique: HashSet<&String> = drawn.iter().collect();
        assert_eq!(unique.len(), drawn.len());
        // 2000 × 43 draws: every base62 character shows up (P(miss) ≈ 62 × e^-1387).
        let seen: HashSet<u8> = drawn.iter().flat_map(|s| s[4..47].bytes()).collect();
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn random_part_is_roughly_uniform() {
        // Without rejection sampling, `byte % 62` would draw '0'..'7' (256 % 62 = 8 of them)
        // with probability 5/256 instead of 1/62: about 21% too often. Tolerance here is
        // 12%, about 5.5 standard deviations for 129,000 draws.
        let mut counts = [0usize; 62];
        let n = 3000;
        for _ in 0..n {
            for b in new_password().unwrap()[4..47].bytes() {
                let i = BASE62.iter().position(|&c| c == b).unwrap();
                counts[i] += 1;
            }
        }
        let expected = (n * 43) as f64 / 62.0; // ≈ 2081
        for (i, &c) in counts.iter().enumerate() {
            let dev = (c as f64 - expected).abs() / expected;
            assert!(
                dev < 0.12,
                "char {} seen {c} times, expected ≈ {expected}",
                BASE62[i] as char
            );
        }
    }

    #[test]
    fn checksum_detects_any_single_changed_character() {
        let s = new_password().unwrap();
        let bytes = s.as_bytes();
        for i in 4..bytes.len() {
            for &c in BASE62.iter().filter(|&&c| c != bytes[i]) {
                let mut changed = bytes.to_vec();
                changed[i] = c;
                let changed = String::from_utf8(changed).unwrap();
                assert!(!has_valid_checksum(&changed), "{changed} passed");
            }
        }
    }

    #[test]
    fn checksum_rejects_wrong_shapes() {
        let s = new_password().unwrap();
        let body = &s[..47];
        // Right checksum, wrong prefix.
        let other = format!("xyz_{}", &body[4..]);
        let other = format!(
            "{other}{}",
            checksum_chars(crc32fast::hash(other.as_bytes()))
        );
        assert!(!has_valid_checksum(&other));
        // Prefix is covered by the checksum: switching rga_ to rgr_ breaks it.
        assert!(!has_valid_checksum(&s.replacen("rga_", "rgr_", 1)));
        assert!(!has_valid_checksum(&s[..52]));
        assert!(!has_valid_checksum(&format!("{s}0")));
        assert!(!has_valid_checksum(""));
        // Right length and checksum, but a non-base62 character.
        let odd = format!("rga_{}-", &body[4..46]);
        let odd = format!("{odd}{}", checksum_chars(crc32fast::hash(odd.as_bytes())));
        assert_eq!(odd.len(), 53);
        assert!(!has_valid_checksum(&odd));
        // Non-ASCII of the right byte length must not panic.
        assert!(!has_valid_checksum(&format!(
            "rga_{}",
            "é".repeat(24) + "a"
        )));
    }

    /// Refresh tokens handed out now name their token's id in clear (for the log of a refused
    /// one); the checksum covers it, and the older format without an id stays valid.
    #[test]
    fn named_refresh_tokens_carry_the_token_id_under_the_checksum() {
        let id = uuid::Uuid::new_v4();
        let s = new_named_refresh_token(id).unwrap();
        assert_eq!(s.len(), NAMED_REFRESH_LEN);
        assert!(s.starts_with(&format!("rgr_{}_", id.simple())), "{s}");
        assert!(has_valid_checksum(&s));
        assert_eq!(refresh_token_id(&s), Some(id));
        // The older format: valid, names nothing.
        let old = new_refresh_token().unwrap();
        assert!(has_valid_checksum(&old));
        assert_eq!(refresh_token_id(&old), None);
        // Any changed character of the id (or elsewhere) breaks the checksum.
        let bytes = s.as_bytes();
        for i in 4..bytes.len() {
            for &c in b"0af_Zz" {
                if c == bytes[i] {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[i] = c;
                let changed = String::from_utf8(changed).unwrap();
                assert!(!has_valid_checksum(&changed), "{changed} passed");
                assert_eq!(refresh_token_id(&changed), None);
            }
        }
        // Right checksum, but upper-case hex or no separator: not this format.
        for bad in [
            format!("rgr_{}_", id.simple().to_string().to_uppercase()),
            format!("rgr_{}0", id.simple()),
            format!("rga_{}_", id.simple()),
        ] {
            let body = format!("{bad}{}", &s[37..80]);
            let bad = format!("{body}{}", checksum_chars(crc32fast::hash(body.as_bytes())));
            assert_eq!(bad.len(), NAMED_REFRESH_LEN);
            assert!(!has_valid_checksum(&bad), "{bad}");
            assert_eq!(refresh_token_id(&bad), None);
        }
    }

    #[test]
    fn checksum_encoding() {
        assert_eq!(checksum_chars(0), "000000");
        assert_eq!(checksum_chars(61), "00000z");
        assert_eq!(checksum_chars(62), "000010");
        // 4294967295 = 4·62^5 + 42·62^4 + 41·62^3 + 15·62^2 + 12·62 + 3, most significant first.
        assert_eq!(checksum_chars(u32::MAX), "4gfFC3");
    }
}
