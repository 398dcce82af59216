//! The store's record decoder (tokens and refresh grants, formats 1, 2 and 3): what a
//! damaged or hostile sled file feeds the server.
//!
//! Invariants: decoding never panics; a decoded token or grant encodes, and that encoding
//! decodes to the same value and is canonical (encode(decode(encode(t))) is the same bytes);
//! a decoded token breaks no rule the admin API enforces on input (valid name, valid scopes,
//! at most 100 and one per type and name); an error is a message, never empty.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regauth::domain::validate_scope_list;
use regauth::fuzzing::{decode_grant, decode_token, encode_grant, encode_token};

fuzz_target!(|data: &[u8]| {
    match decode_token(data) {
        Ok(token) => {
            assert_eq!(validate_scope_list(&token.scopes), Ok(()), "{token:?}");
            let bytes = encode_token(&token).expect("a decoded token encodes");
            let again = decode_token(&bytes).expect("an encoded token decodes");
            assert_eq!(again, token);
            assert_eq!(
                encode_token(&again).as_ref(),
                Ok(&bytes),
                "encoding is not canonical"
            );
        }
        Err(e) => assert!(!e.is_empty()),
    }
    match decode_grant(data) {
        Ok(grant) => {
            let bytes = encode_grant(&grant).expect("a decoded grant encodes");
            let again = decode_grant(&bytes).expect("an encoded grant decodes");
            assert_eq!(again, grant);
            assert_eq!(
                encode_grant(&again).as_ref(),
                Ok(&bytes),
                "encoding is not canonical"
            );
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
