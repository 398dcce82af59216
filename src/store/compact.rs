//! `regauth store compact`: rewrites the sled store of a stopped regauth into a fresh database
//! and puts it in the old one's place. Part of `store`: depends on `store::sled` (and sled,
//! rustix) only.
//!
//! Why: sled's log keeps every version of a page until its segment is cleaned, and sled keeps
//! state in memory for every page id it has handed out, live or freed. A store that has been
//! rewritten a lot (moved into the bucketed index of ids by a newer version, or filled by
//! many creates and deletes) opens with more memory and more disk than the same tokens
//! written once: at 1 000 000 tokens, a store moved in place opened at 99 MB against 55 MB
//! for a freshly written one (`benches/RESULTS.md`). A copy writes every page once.
//!
//! Safe at any point of a crash: the copy is written into `<store>.compacting` beside the
//! store, flushed, and read back against the store entry by entry; then the two directories
//! trade places in one `renameat2(RENAME_EXCHANGE)`, so `<store>` is always a whole store,
//! old or new. What is left in `<store>.compacting` (the old store after the exchange, a copy
//! that failed, or one cut short by a crash) is removed at the end, or by the next run.
use std::path::{Path, PathBuf};

use super::sled::SledStore;
use super::StoreError;

/// Entries per sled batch while copying.
const BATCH: usize = 10_000;

/// sled's page cache for each of the two databases while copying: every page is read or
/// written once, so a cache buys nothing, and sled's nodes in memory take several times
/// their bytes on disk.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// Keys copied, over every tree.
    pub entries: usize,
    /// Bytes of the store's files before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Ids moved from an older version's index on the way (see `SledStore::reindexed`).
    pub reindexed: Option<usize>,
}

/// Compacts the sled store in `dir` (see the module doc). regauth must be stopped: sled's
/// lock on `dir` makes this fail naming the holder otherwise.
pub fn compact(dir: &Path) -> Result<Compacted, StoreError> {
    if !dir.join("db").is_file() {
        return Err(StoreError::message(format!(
            "no sled store in {} (no file db there)",
            dir.display()
        )));
    }
    let scratch = scratch_dir(dir)?;
    remove_leftover(&scratch)?;
    let bytes_before = dir_bytes(dir)?;
    let store = SledStore::open_with_caches(dir, CACHE_BYTES, 0)?;
    let reindexed = store.reindexed();
    let swapped = copy_and_swap(store.db(), dir, &scratch);
    drop(store);
    // What `<store>.compacting` holds now goes: the old store after the swap, or a copy that
    // failed.
    let removed = remove_leftover(&scratch);
    let entries = swapped?;
    removed?;
    Ok(Compacted {
        entries,
        bytes_before,
        bytes_after: dir_bytes(dir)?,
        reindexed,
    })
}

/// Copies `old` (the store in `dir`) into a new database in `scratch`, compares the two, and
/// swaps the directories; returns how many entries it copied. Both databases stay open
/// until after the swap, so their locks keep a regauth that starts meanwhile off either
/// directory (sled writes nothing by path after opening, only through its open files).
fn copy_and_swap(old: &sled::Db, dir: &Path, scratch: &Path) -> Result<usize, StoreError> {
    let copy = sled::Config::new()
        .path(scratch)
        .cache_capacity(CACHE_BYTES)
        .open()
        .map_err(|e| StoreError::backend(format!("creating {}", scratch.display()), e))?;
    let failed = |what: &str, e: sled::Error| StoreError::backend(what.to_string(), e);
    let mut entries = 0;
    for name in old.tree_names() {
        let from = old
            .open_tree(&name)
            .map_err(|e| failed("opening a tree", e))?;
        let to = copy
            .open_tree(&name)
            .map_err(|e| failed("creating a tree", e))?;
        let mut batch = sled::Batch::default();
        for entry in from.iter() {
            let (key, value) = entry.map_err(|e| failed("reading the store", e))?;
            batch.insert(key, value);
            entries += 1;
            if entries % BATCH == 0 {
                to.apply_batch(std::mem::take(&mut batch))
                    .map_err(|e| failed("writing the copy", e))?;
            }
        }
        to.apply_batch(batch)
            .map_err(|e| failed("writing the copy", e))?;
    }
    copy.flush().map_err(|e| failed("flushing the copy", e))?;
    let compared = compare(old, &copy).map_err(|why| {
        StoreError::message(format!(
            "the copy is not the store: {why}; the store stays as it was"
        ))
    })?;
    if compared != entries {
        return Err(StoreError::message(format!(
            "the copy holds {compared} entries but {entries} were copied; the store stays as it \
             was"
        )));
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        scratch,
        rustix::fs::CWD,
        dir,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(|e| {
        StoreError::backend(
            format!(
                "cannot swap {} and {} in one step (the file system must support \
                 renameat2's RENAME_EXCHANGE); the store stays as it was",
                scratch.display(),
                dir.display()
            ),
            std::io::Error::from(e),
        )
    })?;
    Ok(entries)
}

/// Reads `old` and `copy` side by side, tree by tree; returns how many entries are equal, or
/// the first difference. (sled's own `checksum` holds every tree locked and all it reads in
/// memory until it ends: 460 MB more at 1 000 000 tokens.)
fn compare(old: &sled::Db, copy: &sled::Db) -> Result<usize, String> {
    let mut equal = 0;
    for name in old.tree_names() {
        let shown = String::from_utf8_lossy(&name).into_owned();
        let open = |db: &sled::Db| {
            db.open_tree(&name)
                .map_err(|e| format!("tree {shown}: {e}"))
        };
        let (a, b) = (open(old)?, open(copy)?);
        let mut theirs = b.iter();
        for entry in a.iter() {
            let mine = entry.map_err(|e| format!("reading tree {shown}: {e}"))?;
            match theirs.next() {
                Some(Ok(copied)) if copied == mine => equal += 1,
                Some(Ok(_)) => return Err(format!("tree {shown} differs at entry {equal}")),
                Some(Err(e)) => return Err(format!("reading the copy of tree {shown}: {e}")),
                None => return Err(format!("the copy of tree {shown} ends at entry {equal}")),
            }
        }
        if theirs.next().is_some() {
            return Err(format!("the copy of tree {shown} has more entries"));
        }
    }
    Ok(equal)
}

/// `<dir>.compacting`, beside `dir`.
pub fn scratch_dir(dir: &Path) -> Result<PathBuf, StoreError> {
    let Some(name) = dir.file_name() else {
        return Err(StoreError::message(format!(
            "{} has no directory name to put a copy beside",
            dir.display()
        )));
    };
    let mut name = name.to_os_string();
    name.push(".compacting");
    Ok(dir.with_file_name(name))
}

fn remove_leftover(scratch: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::backend(
            format!("removing {}", scratch.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// The bytes of the files directly and further below `dir`.
fn dir_bytes(dir: &Path) -> Result<u64, StoreError> {
    let read = |e| StoreError::backend(format!("reading {}", dir.display()), e);
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let meta = entry.metadata().map_err(read)?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::Token;
    use crate::store::conformance::{grant, use_of, used};
    use crate::store::Store;
    use crate::testing::{reopen_sled, t0, token};

    /// Everything a store answers about `tokens` (by id, by name, listed, counted, their
    /// grant and last use).
    async fn answers(s: &SledStore, tokens: &[Token]) -> String {
        let mut out = format!("count {}\n", s.count().await.unwrap());
        for registry in ["default", "other"] {
            let page = s.list(registry, 0, 1000).await.unwrap();
            out += &format!("{registry}: {} {:?}\n", page.total, page.items);
        }
        for t in tokens {
            let by_id = s.get(&t.registry, t.id).await.unwrap();
            let by_name = s.find_by_name(&t.registry, t.name.as_str()).await.unwrap();
            let grant = s.find_refresh(&grant(t, 1, t0()).hash).await.unwrap();
            out += &format!("{by_id:?} {by_name:?} {grant:?}\n");
        }
        out
    }

    /// Issue 22: a store rewritten many times comes out of `compact` answering exactly as
    /// before, in less disk, with no copy left beside it.
    #[tokio::test]
    async fn a_compacted_store_answers_the_same_in_less_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let tokens: Vec<Token> = (0..200)
            .map(|i| token(["default", "other"][i % 2], &format!("tok-{i}")))
            .collect();
        let before = {
            let s = SledStore::open(&path).unwrap();
            for t in &tokens {
                s.create(t).await.unwrap();
            }
            // Garbage in the log: every token rewritten a few times, half of them deleted.
            for round in 0..3 {
                for t in &tokens {
                    let changed = Token {
                        modified: t0() + Duration::minutes(round),
                        ..t.clone()
                    };
                    s.update(&changed).await.unwrap();
                }
            }
            for t in tokens.iter().step_by(2) {
                assert!(s.delete(&t.registry, t.id).await.unwrap());
            }
            let kept = &tokens[1];
            s.add_refresh(&grant(kept, 1, t0()), 10).await.unwrap();
            let last = used(t0() + Duration::hours(1), "192.0.2.7");
            assert_eq!(s.record_uses(&[use_of(kept, last)]).await.unwrap(), 1);
            answers(&s, &tokens).await
        };
        // Wait until the store's lock is free, as the command runs after regauth stopped.
        let done = reopen_sled(|| compact(&path));
        assert_eq!(done.reindexed, None);
        assert!(
            done.bytes_after < done.bytes_before,
            "{} -> {}",
            done.bytes_before,
            done.bytes_after
        );
        assert!(done.entries >= 100, "{}", done.entries);
        assert!(!scratch_dir(&path).unwrap().exists());
        let s = reopen_sled(|| SledStore::open(&path));
        assert_eq!(answers(&s, &tokens).await, before);
    }

    /// A copy left by an interrupted run is removed; a store in the layout of an older
    /// version is moved into buckets on the way.
    #[tokio::test]
    async fn a_leftover_copy_goes_and_an_older_store_is_moved_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let tokens = [token("default", "older-one"), token("other", "older-two")];
        crate::store::sled::write_old_layout(&path, &tokens, |_| {});
        let scratch = scratch_dir(&path).unwrap();
        std::fs::create_dir_all(scratch.join("sub")).unwrap();
        std::fs::write(scratch.join("sub/db"), b"half a copy").unwrap();
        let done = reopen_sled(|| compact(&path));
        assert_eq!(done.reindexed, Some(2));
        assert!(!scratch.exists());
        let s = reopen_sled(|| SledStore::open(&path));
        assert_eq!(s.reindexed(), None);
        for t in &tokens {
            let found = s.get(&t.registry, t.id).await.unwrap();
            assert_eq!(found.map(|f| f.name), Some(t.name.clone()));
        }
    }

    /// A store in use is left alone, and so is a directory that holds no store.
    #[test]
    fn a_held_store_or_no_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let held = SledStore::open(&path).unwrap();
        let e = compact(&path).unwrap_err().to_string();
        assert!(e.contains(crate::store::sled::HELD), "{e}");
        assert!(!scratch_dir(&path).unwrap().exists());
        drop(held);
        let e = compact(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("no sled store in") && e.contains("no file db"),
            "{e}"
        );
    }
}
