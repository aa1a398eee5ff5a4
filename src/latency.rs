//! Latency histograms: recording in nanoseconds with hdrhistogram, and the two
//! ways jwtgate shows them, a percentile line for people and the classic
//! HdrHistogram percentile distribution (`.hgrm`) for plotting tools.
//!
//! Each thread records into its own [`LatencyHistogram`]; they are merged only
//! when read, so recording never contends.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency recorded without saturation: one minute.
const HIGHEST_NANOS: u64 = 60_000_000_000;

/// A latency histogram with 3 significant digits from 1 ns to 60 s.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHistogram {
    histogram: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram::new()
    }
}

/// The percentiles jwtgate reports everywhere.
pub(crate) const REPORTED_PERCENTILES: [(f64, &str); 4] =
    [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9")];

impl LatencyHistogram {
    /// An empty histogram (allocates its buckets once, here).
    pub(crate) fn new() -> LatencyHistogram {
        #[allow(clippy::expect_used)] // constant bounds: 1 ns..60 s at 3 digits is always valid
        let histogram =
            Histogram::new_with_bounds(1, HIGHEST_NANOS, 3).expect("valid histogram bounds");
        LatencyHistogram { histogram }
    }

    /// Records one latency; values beyond a minute count as a minute.
    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(nanos.clamp(1, HIGHEST_NANOS));
    }

    /// Adds every value of `other`.
    pub(crate) fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides, so adding cannot fail; should it, the sample
        // is dropped rather than the process.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Forgets every value.
    pub(crate) fn reset(&mut self) {
        self.histogram.reset();
    }

    /// How many values were recorded at or below `nanos`.
    pub(crate) fn count_at_or_below(&self, nanos: u64) -> u64 {
        self.histogram.count_between(0, nanos)
    }

    /// The mean of the recorded values, in nanoseconds.
    pub(crate) fn mean_nanos(&self) -> f64 {
        self.histogram.mean()
    }

    /// How many values were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The value at `percentile` (0–100), in nanoseconds.
    pub(crate) fn percentile_nanos(&self, percentile: f64) -> u64 {
        self.histogram.value_at_percentile(percentile)
    }

    /// The largest value recorded, in nanoseconds.
    pub(crate) fn max_nanos(&self) -> u64 {
        self.histogram.max()
    }

    /// `p50 1.2 µs, p90 …, max …` in microseconds.
    pub(crate) fn summary_line(&self) -> String {
        let mut line = String::new();
        for (percentile, label) in REPORTED_PERCENTILES {
            let _ = write!(
                line,
                "{label} {} µs, ",
                micros(self.percentile_nanos(percentile))
            );
        }
        let _ = write!(line, "max {} µs", micros(self.max_nanos()));
        line
    }

    /// The HdrHistogram percentile distribution in microseconds, the text format
    /// that HdrHistogram's plotter and `scripts/plot-latency.py` read.
    pub(crate) fn percentile_distribution(&self) -> String {
        let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
        let mut total = 0u64;
        for step in self.histogram.iter_quantiles(5) {
            total += step.count_since_last_iteration();
            let quantile = step.quantile_iterated_to();
            let value = self.histogram.highest_equivalent(step.value_iterated_to()) as f64 / 1000.0;
            if quantile < 1.0 {
                let inverse = 1.0 / (1.0 - quantile);
                let _ = writeln!(
                    out,
                    "{value:12.3} {quantile:14.12} {total:10} {inverse:14.2}"
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {quantile:14.12} {total:10}");
            }
        }
        let _ = writeln!(
            out,
            "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
            self.histogram.mean() / 1000.0,
            self.histogram.stdev() / 1000.0
        );
        let _ = writeln!(
            out,
            "#[Max     = {:12.3}, Total count    = {:12}]",
            self.histogram.max() as f64 / 1000.0,
            self.histogram.len()
        );
        // HdrHistogram's sub-bucket count: 2 * 10^digits rounded up to a power of two.
        let sub_buckets = (2.0 * 10f64.powi(i32::from(self.histogram.sigfig())))
            .log2()
            .ceil()
            .exp2();
        let _ = writeln!(
            out,
            "#[Buckets = {:12}, SubBuckets     = {:12}]",
            self.histogram.buckets(),
            sub_buckets
        );
        out
    }
}

/// Nanoseconds as microseconds with enough precision for sub-microsecond values.
fn micros(nanos: u64) -> String {
    let micros = nanos as f64 / 1000.0;
    if micros < 10.0 {
        format!("{micros:.2}")
    } else if micros < 1000.0 {
        format!("{micros:.1}")
    } else {
        format!("{micros:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recorded_values() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for micros in 1..=100u64 {
            a.record(Duration::from_micros(micros));
        }
        b.record(Duration::from_secs(3600));
        a.merge(&b);
        assert_eq!(a.count(), 101);
        let p50 = a.percentile_nanos(50.0);
        assert!((50_000..=51_100).contains(&p50), "{p50}");
        assert_eq!(a.max_nanos(), a.histogram.highest_equivalent(HIGHEST_NANOS));
        assert!(
            a.summary_line().starts_with("p50 5"),
            "{}",
            a.summary_line()
        );
    }

    #[test]
    fn distribution_has_the_hgrm_shape() {
        let mut h = LatencyHistogram::new();
        for micros in [5u64, 10, 20, 40] {
            h.record(Duration::from_micros(micros));
        }
        let text = h.percentile_distribution();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Max     =       40."), "{text}");
        assert!(text.contains("Total count    =            4]"), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        let rows = text
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count();
        assert!(rows >= 4, "{text}");
    }
}
