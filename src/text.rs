//! Byte-level helpers for short text split at ASCII bytes, which the token endpoint runs on
//! every request (its query string, scopes, repository names, Basic credentials) and the log
//! runs on every value: the standard library's searchers are set up for long text (`memchr`)
//! and cost more than the search on a few dozen bytes. Knows nothing of ours.

/// Whether `test` holds for every byte of `bytes`. Without an early exit, so that the
/// compiler makes it a vector loop: nearly every call passes, and one byte at a time this was
/// a sixth of the decision's log line (benches/RESULTS.md).
#[inline]
pub fn all_bytes(bytes: &[u8], test: impl Fn(u8) -> bool) -> bool {
    bytes.iter().fold(true, |all, &b| all & test(b))
}

/// `s.split_once(sep as char)` for an ASCII `sep`, comparing bytes.
#[inline]
pub fn split_once_ascii(s: &str, sep: u8) -> Option<(&str, &str)> {
    debug_assert!(sep.is_ascii());
    // An ASCII byte is a whole character: both slices end on character boundaries.
    let i = s.bytes().position(|b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s.split(sep as char)` for an ASCII `sep`, comparing bytes.
#[inline]
pub fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match split_once_ascii(r, sep) {
            Some((piece, tail)) => {
                rest = Some(tail);
                Some(piece)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The byte splitters split as `str::split` and `str::split_once` do, empty pieces
        /// and all.
        #[test]
        fn split_ascii_splits_as_split_does(s in "[a ,é:]{0,12}", sep in proptest::sample::select(vec![b' ', b',', b':'])) {
            let ours: Vec<&str> = split_ascii(&s, sep).collect();
            let theirs: Vec<&str> = s.split(sep as char).collect();
            proptest::prop_assert_eq!(ours, theirs);
            proptest::prop_assert_eq!(split_once_ascii(&s, sep), s.split_once(sep as char));
        }

        /// `all_bytes` is `Iterator::all`.
        #[test]
        fn all_bytes_is_all(s in proptest::collection::vec(proptest::num::u8::ANY, 0..70)) {
            let test = |b: u8| b.is_ascii_graphic();
            proptest::prop_assert_eq!(all_bytes(&s, test), s.iter().all(|&b| test(b)));
        }
    }
}
