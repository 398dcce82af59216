//! The `rga_` password and `rgr_` refresh-token format: `rga_` + 43 base62 characters + 6
//! base62 characters of CRC32 (IEEE) over everything before them (a refresh token may name its
//! token: `rgr_` + 32 lowercase hex digits + `_` before the 43 + 6); and the hex form of a
//! secret's SHA-256.
//!
//! Invariants: `has_valid_checksum` agrees with the format re-implemented here from its
//! description (a secret scanner's view); a secret built from the input with the right
//! checksum is valid, and changing any one character of it makes it invalid; a hash's hex
//! form round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regauth::domain::secret::{has_valid_checksum, SECRET_LEN};
use regauth::domain::SecretHash;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn checksum(body: &str) -> String {
    let mut crc = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

fn oracle(s: &str) -> bool {
    let b = s.as_bytes();
    let old = b.len() == 53
        && (s.starts_with("rga_") || s.starts_with("rgr_"))
        && b[4..].iter().all(u8::is_ascii_alphanumeric)
        && checksum(&s[..47]) == s[47..];
    // A refresh token naming its token: rgr_ + 32 lowercase hex digits + _ + 43 + 6.
    let named = b.len() == 86
        && s.starts_with("rgr_")
        && b[4..36]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && b[36] == b'_'
        && b[37..].iter().all(u8::is_ascii_alphanumeric)
        && checksum(&s[..80]) == s[80..];
    old || named
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(SECRET_LEN, 53);
    let text = String::from_utf8_lossy(data);
    assert_eq!(has_valid_checksum(&text), oracle(&text), "{text:?}");

    // A well-formed secret from the input's bytes.
    let prefix = if data.first().is_some_and(|b| b & 1 == 1) {
        "rgr_"
    } else {
        "rga_"
    };
    let mut body = String::from(prefix);
    body.extend(
        (0..43).map(|i| char::from(BASE62[usize::from(*data.get(i + 1).unwrap_or(&0)) % 62])),
    );
    let secret = format!("{body}{}", checksum(&body));
    assert!(has_valid_checksum(&secret), "{secret:?}");
    // Any single changed character is caught (CRC32 detects every error burst up to 32 bits;
    // a changed checksum character no longer matches).
    let at = usize::from(*data.get(44).unwrap_or(&0)) % secret.len();
    let with = char::from(BASE62[usize::from(*data.get(45).unwrap_or(&1)) % 62]);
    if secret.as_bytes()[at] != with as u8 {
        let mut changed = secret.clone().into_bytes();
        changed[at] = with as u8;
        let changed = String::from_utf8(changed).expect("ASCII");
        assert!(
            !has_valid_checksum(&changed),
            "{changed:?} passes as {secret:?}"
        );
    }

    // The stored hash's hex form.
    if let Ok(h) = SecretHash::try_from(text.to_string()) {
        assert_eq!(String::from(h), text, "hex form does not round-trip");
    }
    let h = SecretHash::of(&text);
    assert_eq!(SecretHash::try_from(String::from(h)).map(|x| x.0), Ok(h.0));
});
