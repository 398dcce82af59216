//! The bytes of sled's `id_buckets` tree: the index from token id to name key, one entry per
//! bucket of ids instead of one per id. Part of `store`: depends on `uuid` only; `sled.rs`
//! reads and rewrites the buckets inside its transactions.
//!
//! Why buckets: sled keeps state in memory for every page of every tree as soon as the
//! database is open, and a tree of 1 000 000 small entries has tens of thousands of pages.
//! An index with one entry per token cost 22–25 MB of RSS at 1 000 000 tokens
//! (`benches/RESULTS.md`); the token endpoint never reads it (it finds tokens by name), only
//! the admin API's reads and writes by id do. With 65 536 buckets a store of 1 000 000 tokens
//! has about 15 ids in each, and a read by id decodes one bucket of about a kilobyte.
//!
//! - **Key** ([`key`], 2 bytes): the XOR of the id's eight big-endian 16-bit words. Every bit
//!   of the id counts, so ids that differ only in their last bytes (ids a client chose by
//!   counting, or UUIDv7, whose first bytes are a timestamp) spread over the buckets as
//!   evenly as random ones. The key is part of the stored format: it never changes.
//! - **Value**: a format byte `1`, then each entry, in id order: the id (16 bytes), the name
//!   key's length (u16, big-endian) and the name key.
//!
//! A bucket that does not parse is an error naming what is wrong, never an id silently lost.
use uuid::Uuid;

/// The length of a bucket's key.
pub const KEY_LEN: usize = 2;

/// The only bucket format so far.
const FORMAT: u8 = 1;

const ID_LEN: usize = 16;
const LEN_LEN: usize = 2;

/// Why the bytes of a bucket are not one; `sled.rs` adds the bucket's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// One entry: a token id and its name key.
pub type Entry<'a> = (Uuid, &'a [u8]);

/// The key of the bucket that holds `id`.
pub fn key(id: Uuid) -> [u8; KEY_LEN] {
    let folded = id
        .as_bytes()
        .chunks_exact(KEY_LEN)
        .fold(0u16, |acc, w| acc ^ u16::from_be_bytes([w[0], w[1]]));
    folded.to_be_bytes()
}

/// The entries of `bucket`, in id order.
pub fn parse(bucket: &[u8]) -> Result<Vec<Entry<'_>>, Malformed> {
    let Some((&format, mut rest)) = bucket.split_first() else {
        return Err(Malformed("empty value"));
    };
    if format != FORMAT {
        return Err(Malformed("unknown format byte"));
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        if rest.len() < ID_LEN + LEN_LEN {
            return Err(Malformed("truncated entry"));
        }
        let (id, tail) = rest.split_at(ID_LEN);
        let (len, tail) = tail.split_at(LEN_LEN);
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if tail.len() < len {
            return Err(Malformed("truncated name key"));
        }
        let (name_key, tail) = tail.split_at(len);
        let id = Uuid::from_slice(id).map_err(|_| Malformed("bad id"))?;
        if entries.last().is_some_and(|(last, _)| *last >= id) {
            return Err(Malformed("ids out of order"));
        }
        entries.push((id, name_key));
        rest = tail;
    }
    if entries.is_empty() {
        return Err(Malformed("no entry"));
    }
    Ok(entries)
}

/// `entries` (in id order, at least one) as a bucket's bytes. A name key longer than 65 535
/// bytes cannot be written (registry ids and token names are far shorter).
pub fn encode(entries: &[Entry<'_>]) -> Result<Vec<u8>, Malformed> {
    let size = entries.iter().map(|(_, k)| ID_LEN + LEN_LEN + k.len());
    let mut out = Vec::with_capacity(1 + size.sum::<usize>());
    out.push(FORMAT);
    for (id, name_key) in entries {
        let len = u16::try_from(name_key.len()).map_err(|_| Malformed("name key too long"))?;
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(name_key);
    }
    Ok(out)
}

/// The name key of `id` in `bucket`, if it holds `id`.
pub fn find(bucket: &[u8], id: Uuid) -> Result<Option<&[u8]>, Malformed> {
    Ok(parse(bucket)?
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, k)| k))
}

/// `bucket` (or a new one) with `id` at `name_key`, replacing the entry of `id` if there is one.
pub fn with(bucket: Option<&[u8]>, id: Uuid, name_key: &[u8]) -> Result<Vec<u8>, Malformed> {
    merge(bucket, &[(id, name_key)])
}

/// `bucket` (or a new one) with every entry of `added`, each replacing the entry of its id if
/// there is one.
pub fn merge(bucket: Option<&[u8]>, added: &[Entry<'_>]) -> Result<Vec<u8>, Malformed> {
    let mut entries = bucket.map(parse).transpose()?.unwrap_or_default();
    for &(id, name_key) in added {
        match entries.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => entries[at].1 = name_key,
            Err(at) => entries.insert(at, (id, name_key)),
        }
    }
    encode(&entries)
}

/// `bucket` without the entry of `id`: `None` when no entry is left (the bucket goes).
pub fn without(bucket: &[u8], id: Uuid) -> Result<Option<Vec<u8>>, Malformed> {
    let mut entries = parse(bucket)?;
    entries.retain(|(i, _)| *i != id);
    if entries.is_empty() {
        return Ok(None);
    }
    encode(&entries).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn entries_round_trip_in_id_order() {
        let mut bucket = with(None, id(7), b"default\0seven").unwrap();
        bucket = with(Some(&bucket), id(3), b"default\0three").unwrap();
        bucket = with(Some(&bucket), id(9), b"other\0nine").unwrap();
        assert_eq!(
            parse(&bucket).unwrap(),
            [
                (id(3), &b"default\0three"[..]),
                (id(7), &b"default\0seven"[..]),
                (id(9), &b"other\0nine"[..]),
            ]
        );
        assert_eq!(find(&bucket, id(7)).unwrap(), Some(&b"default\0seven"[..]));
        assert_eq!(find(&bucket, id(8)).unwrap(), None);
        // The exact bytes: format, then id, u16 length, name key.
        let one = with(None, id(1), b"r\0n").unwrap();
        let mut expected = vec![1];
        expected.extend_from_slice(id(1).as_bytes());
        expected.extend_from_slice(&[0, 3]);
        expected.extend_from_slice(b"r\0n");
        assert_eq!(one, expected);
    }

    #[test]
    fn an_id_is_replaced_and_removed() {
        let bucket = with(None, id(1), b"r\0old").unwrap();
        let bucket = with(Some(&bucket), id(2), b"r\0two").unwrap();
        let renamed = with(Some(&bucket), id(1), b"r\0new").unwrap();
        let merged = merge(Some(&bucket), &[(id(1), b"r\0new"), (id(0), b"r\0zero")]).unwrap();
        assert_eq!(
            parse(&merged).unwrap(),
            [
                (id(0), &b"r\0zero"[..]),
                (id(1), &b"r\0new"[..]),
                (id(2), &b"r\0two"[..])
            ]
        );
        assert_eq!(
            parse(&renamed).unwrap(),
            [(id(1), &b"r\0new"[..]), (id(2), &b"r\0two"[..])]
        );
        let one_left = without(&renamed, id(1)).unwrap().unwrap();
        assert_eq!(parse(&one_left).unwrap(), [(id(2), &b"r\0two"[..])]);
        assert_eq!(without(&one_left, id(2)).unwrap(), None);
        // Removing an id that is not there changes nothing.
        assert_eq!(without(&renamed, id(5)).unwrap(), Some(renamed.clone()));
    }

    #[test]
    fn damaged_buckets_are_errors_that_say_why() {
        let good = with(Some(&with(None, id(1), b"r\0a").unwrap()), id(2), b"r\0b").unwrap();
        let cases: [(&[u8], &str); 5] = [
            (&[], "empty value"),
            (&[2, 0], "unknown format byte"),
            (&[1], "no entry"),
            (&good[..good.len() - 1], "truncated name key"),
            (&good[..10], "truncated entry"),
        ];
        for (bytes, why) in cases {
            assert_eq!(parse(bytes), Err(Malformed(why)), "{bytes:?}");
        }
        // Entries out of order: the second entry first.
        let first_len = 1 + ID_LEN + LEN_LEN + 3;
        let mut swapped = vec![1];
        swapped.extend_from_slice(&good[first_len..]);
        swapped.extend_from_slice(&good[1..first_len]);
        assert_eq!(parse(&swapped), Err(Malformed("ids out of order")));
        assert_eq!(find(&[1, 0], id(1)), Err(Malformed("truncated entry")));
        assert_eq!(
            encode(&[(id(1), &vec![b'a'; 70_000][..])]),
            Err(Malformed("name key too long"))
        );
    }

    #[test]
    fn the_key_folds_every_word_of_the_id() {
        assert_eq!(key(id(0)), [0, 0]);
        assert_eq!(key(id(0x0102)), [1, 2]);
        // The first word and the last fold into one key.
        assert_eq!(key(id(0xff00 << 112 | 0x00ff)), [0xff, 0xff]);
    }

    #[test]
    fn counted_and_random_ids_spread_over_the_buckets() {
        use std::collections::HashMap;
        // 65 536 ids counted from 0 (as a client might choose them) fill every bucket once.
        let mut counted: HashMap<[u8; KEY_LEN], usize> = HashMap::new();
        for n in 0..65_536u128 {
            *counted.entry(key(id(n))).or_default() += 1;
        }
        assert_eq!(counted.len(), 65_536);
        // UUIDv7s made in one millisecond share their first 7 bytes (timestamp, version);
        // only their tail is random (here: SHA-256 of a counter, so the test is repeatable).
        let mut v7: HashMap<[u8; KEY_LEN], usize> = HashMap::new();
        for n in 0..10_000u32 {
            let digest = ring::digest::digest(&ring::digest::SHA256, &n.to_be_bytes());
            let mut bytes = [0u8; 16];
            bytes[..7].copy_from_slice(&[0x01, 0x8f, 0x3a, 0x20, 0x00, 0x00, 0x70]);
            bytes[7..].copy_from_slice(&digest.as_ref()[..9]);
            *v7.entry(key(Uuid::from_bytes(bytes))).or_default() += 1;
        }
        // Random placement would fill about 9 270 buckets, at most 4 or 5 ids in one.
        assert!(v7.len() > 9_000, "{} buckets for 10 000 ids", v7.len());
        assert!(v7.values().all(|&n| n <= 5), "{:?}", v7.values().max());
    }
}
