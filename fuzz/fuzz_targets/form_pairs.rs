//! Query strings and `application/x-www-form-urlencoded` bodies (the token endpoint's
//! `scope`, `service`, `username`, ..., the admin list's `offset`, `limit`, `filter.name`).
//!
//! Invariants: decoding keeps every pair in order (repeated keys too); re-encoding the
//! decoded pairs and decoding again gives the same pairs; `last` is the last of `all`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regauth::api::parse_duration;
use regauth::http::extract::{all, last, parse_pairs};

fuzz_target!(|data: &[u8]| {
    let pairs = parse_pairs(data);
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        ser.append_pair(k, v);
    }
    let encoded = ser.finish();
    let again = parse_pairs(encoded.as_bytes());
    assert_eq!(pairs, again, "re-encoded as {encoded:?}");
    for key in [
        "scope",
        "service",
        "grant_type",
        "username",
        "password",
        "limit",
    ] {
        assert_eq!(last(&pairs, key), all(&pairs, key).last(), "{key}");
    }
    let n: usize = pairs.iter().filter(|(k, _)| k == "scope").count();
    assert_eq!(all(&pairs, "scope").count(), n);
    // The admin list's `expiringWithin` value.
    if let Some(text) = last(&pairs, "expiringWithin") {
        match parse_duration(text) {
            Ok(d) => assert!(d >= chrono::TimeDelta::zero(), "{text:?} -> {d}"),
            Err(e) => assert!(!e.is_empty()),
        }
    }
});
