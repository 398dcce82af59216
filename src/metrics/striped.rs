//! Metrics the token endpoint updates on every request, striped per thread
//! ([`crate::stripes`]): each thread adds to a stripe of its own, and a scrape sums them.
//!
//! [`StripedU64`] is an atomic for `prometheus-client`'s `Counter`, so striped counters stay
//! `Counter`s in `Family`s and encode as before; [`StripedHistogram`] replaces the crate's
//! histogram (a mutex around its buckets) and encodes as its classic histogram does (the same
//! buckets, `+Inf` included, sum and count).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Atomic;
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::stripes::Striped;

/// A `u64` counter value striped per thread; its value is the sum of its slots.
#[derive(Debug, Default)]
pub struct StripedU64(Striped<AtomicU64>);

impl Atomic<u64> for StripedU64 {
    /// Adds one; returns this thread's slot before (not the total: nobody reads it).
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    /// Adds `v`; returns this thread's slot before (not the total: nobody reads it).
    fn inc_by(&self, v: u64) -> u64 {
        self.0.mine().fetch_add(v, Ordering::Relaxed)
    }

    /// The sum of every thread's slot.
    fn get(&self) -> u64 {
        self.0
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.load(Ordering::Relaxed)))
    }
}

/// One thread's part of a [`StripedHistogram`].
#[derive(Debug)]
struct HistogramStripe<const B: usize> {
    /// Observations per bucket (not cumulative); the last bucket is `+Inf`. Their sum is
    /// the count, so that the count a scrape reads always equals its `+Inf` bucket, as
    /// OpenMetrics requires, even while requests are being counted.
    buckets: [AtomicU64; B],
    /// Sum of the observations in nanoseconds (exact; 584 years before it wraps).
    sum_nanos: AtomicU64,
}

/// A histogram of durations with `N` finite upper bounds (seconds) and `+Inf`, striped per
/// thread. `B` is `N + 1` (a const parameter, as stable Rust cannot write `N + 1` there).
/// Clones share the counts, as `prometheus-client`'s metrics do.
#[derive(Debug, Clone)]
pub struct StripedHistogram<const N: usize, const B: usize> {
    bounds: [f64; N],
    stripes: Arc<Striped<HistogramStripe<B>>>,
}

impl<const N: usize, const B: usize> StripedHistogram<N, B> {
    /// A histogram with buckets up to each of `bounds` (ascending, finite) and `+Inf`.
    pub fn new(bounds: [f64; N]) -> Self {
        const { assert!(B == N + 1, "B must be N + 1") };
        let stripe = || HistogramStripe {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        };
        StripedHistogram {
            bounds,
            stripes: Arc::new(Striped::new(stripe)),
        }
    }

    /// Counts one observation of `took`.
    #[inline]
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self.bounds.iter().position(|b| seconds <= *b).unwrap_or(N);
        let s = self.stripes.mine();
        s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        s.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Sum (seconds), count and per-bucket counts (upper bound, count; not cumulative) over
    /// every stripe.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|b| (b, 0))
            .collect();
        let mut nanos = 0u64;
        for s in self.stripes.iter() {
            for (total, n) in buckets.iter_mut().zip(&s.buckets) {
                total.1 = total.1.wrapping_add(n.load(Ordering::Relaxed));
            }
            nanos = nanos.wrapping_add(s.sum_nanos.load(Ordering::Relaxed));
        }
        let count = buckets.iter().fold(0u64, |c, b| c.wrapping_add(b.1));
        (Duration::from_nanos(nanos).as_secs_f64(), count, buckets)
    }
}

impl<const N: usize, const B: usize> TypedMetric for StripedHistogram<N, B> {
    const TYPE: MetricType = MetricType::Histogram;
}

impl<const N: usize, const B: usize> EncodeMetric for StripedHistogram<N, B> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    fn text(
        name: &str,
        metric: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static,
    ) -> String {
        let mut registry = Registry::default();
        registry.register(name, "help", metric);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    /// Increments from many threads, more than there are stripes, all count.
    #[test]
    fn a_striped_counter_sums_every_thread() {
        let counter: Counter<u64, StripedU64> = Counter::default();
        std::thread::scope(|s| {
            for t in 0..(2 * crate::stripes::STRIPES + 3) as u64 {
                let counter = &counter;
                s.spawn(move || {
                    for _ in 0..1000 {
                        counter.inc();
                    }
                    counter.inc_by(t);
                });
            }
        });
        let threads = (2 * crate::stripes::STRIPES + 3) as u64;
        assert_eq!(counter.get(), threads * 1000 + threads * (threads - 1) / 2);
        assert_eq!(
            text("c", counter.clone()),
            text("c", {
                let plain: Counter = Counter::default();
                plain.inc_by(counter.get());
                plain
            })
        );
    }

    /// The same observations, from several threads, encode exactly as the crate's own
    /// histogram encodes them (buckets, `+Inf`, sum and count). Multiples of 2^-9 s, so that
    /// both sums are exact whatever the order of the additions.
    #[test]
    fn a_striped_histogram_encodes_as_the_crates_histogram() {
        const BOUNDS: [f64; 4] = [0.001, 0.01, 0.1, 1.0];
        let striped = StripedHistogram::<4, 5>::new(BOUNDS);
        let plain = Histogram::new(BOUNDS);
        // Zero, between bounds, on the last bound (1 s) and beyond it.
        let observations: Vec<Duration> = [0, 1, 4, 32, 256, 512, 1536]
            .into_iter()
            .map(|k| Duration::from_nanos(k * 1_953_125))
            .collect();
        std::thread::scope(|s| {
            for chunk in observations.chunks(2) {
                let striped = &striped;
                s.spawn(move || chunk.iter().for_each(|d| striped.observe(*d)));
            }
        });
        for d in &observations {
            plain.observe(d.as_secs_f64());
        }
        let (sum, count, buckets) = striped.snapshot();
        assert_eq!((sum, count), (4.572265625, 7));
        assert_eq!(
            buckets,
            [
                (0.001, 1),
                (0.01, 2),
                (0.1, 1),
                (1.0, 2),
                (f64::INFINITY, 1)
            ]
        );
        assert_eq!(text("h", striped), text("h", plain));
    }

    /// An observation on a bound counts in that bound's bucket, as the crate's does.
    #[test]
    fn an_observation_on_a_bound_is_in_its_bucket() {
        let striped = StripedHistogram::<2, 3>::new([0.001, 0.01]);
        striped.observe(Duration::from_millis(1));
        striped.observe(Duration::from_nanos(1_000_001));
        striped.observe(Duration::from_millis(10));
        assert_eq!(
            striped.snapshot().2,
            [(0.001, 1), (0.01, 2), (f64::INFINITY, 0)]
        );
    }
}
