//! Per-thread stripes for state that every request writes: each thread updates a copy of
//! its own, on a cache line of its own, and readers combine the copies.
//!
//! Why: on the token path, a counter, a histogram or a map under one lock is written by every
//! worker thread for every request, so its cache line moves between cores each time. That
//! costs more than the instructions suggest: on the 2-core benchmark machine, the token path's
//! metrics and its last-use map cost about 1 % of `/auth`'s throughput for a few hundred
//! instructions (benches/RESULTS.md). Striped, a request writes only lines its own thread owns.
//!
//! A leaf: knows nothing of ours (`crossbeam-utils` gives the cache-line padding).
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Stripes per striped value. Threads beyond this share stripes (still correct, only slower).
pub const STRIPES: usize = 8;

/// The next thread's stripe.
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe, given out in turn as threads first use one.
    static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

/// This thread's stripe: an index below [`STRIPES`].
#[inline]
pub fn mine() -> usize {
    MINE.with(|s| *s)
}

/// [`STRIPES`] copies of a `T`, each on cache lines of its own.
#[derive(Debug)]
pub struct Striped<T>([CachePadded<T>; STRIPES]);

impl<T> Striped<T> {
    /// Every stripe made by `make`.
    pub fn new(mut make: impl FnMut() -> T) -> Striped<T> {
        Striped(std::array::from_fn(|_| CachePadded::new(make())))
    }

    /// This thread's stripe.
    #[inline]
    pub fn mine(&self) -> &T {
        &self.0[mine()]
    }

    /// Every stripe, for readers that combine them.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|s| &**s)
    }
}

impl<T: Default> Default for Striped<T> {
    fn default() -> Self {
        Striped::new(T::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread keeps its stripe; threads are given stripes in turn, so as many threads as
    /// there are stripes (started one after the other) use every stripe once.
    #[test]
    fn threads_get_stripes_in_turn_and_keep_them() {
        let first = mine();
        assert_eq!(mine(), first);
        let seen: Vec<usize> = (0..STRIPES)
            .map(|_| std::thread::spawn(|| (mine(), mine())).join().unwrap())
            .map(|(a, b)| {
                assert_eq!(a, b);
                a
            })
            .collect();
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        // Other tests' threads may take turns in between, so only "no stripe twice in a
        // row of STRIPES" is certain when nothing interleaves; at least half are distinct.
        assert!(sorted.len() >= STRIPES / 2, "stripes {seen:?}");
        assert!(seen.iter().all(|s| *s < STRIPES));
    }

    /// Each stripe is its own value, on its own cache line.
    #[test]
    fn stripes_are_separate_lines() {
        let s: Striped<u8> = Striped::new(|| 7);
        assert!(s.iter().all(|v| *v == 7));
        let addrs: Vec<usize> = s.iter().map(|v| v as *const u8 as usize).collect();
        assert!(addrs.windows(2).all(|w| w[1] - w[0] >= 64));
        assert!(std::ptr::eq(s.mine(), s.iter().nth(mine()).unwrap()));
    }
}
