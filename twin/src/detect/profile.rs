//! A periodic (time-of-day or time-of-week) baseline learned from leak-free history.

use super::stats::median;
use super::DetectError;

/// The median of training values per phase bin of a period (e.g. every 5 minutes of a day or a
/// week): a simple baseline to difference readings against when no model prediction is at hand.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileBaseline {
    period_ms: i64,
    bin_ms: i64,
    bins: Vec<Option<f64>>,
}

impl ProfileBaseline {
    /// Learns the profile from `(time_ms, value)` samples; non-finite values are skipped. Errors
    /// when the period is not a positive multiple of the bin width or no value is usable.
    pub fn fit(period_ms: i64, bin_ms: i64, training: &[(i64, f64)]) -> Result<Self, DetectError> {
        if bin_ms <= 0 || period_ms <= 0 || period_ms % bin_ms != 0 {
            return Err(DetectError::InvalidParameter {
                name: "bin_ms",
                reason: "period must be a positive multiple of the bin width",
            });
        }
        let n = usize::try_from(period_ms / bin_ms).map_err(|_| DetectError::InvalidParameter {
            name: "bin_ms",
            reason: "too many bins",
        })?;
        let mut per_bin: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut used = 0;
        for &(t, x) in training {
            if x.is_finite() {
                per_bin[Self::bin_of(t, period_ms, bin_ms)].push(x);
                used += 1;
            }
        }
        if used == 0 {
            return Err(DetectError::TooFewSamples { needed: 1, got: 0 });
        }
        let bins = per_bin.iter().map(|v| median(v)).collect();
        Ok(Self {
            period_ms,
            bin_ms,
            bins,
        })
    }

    fn bin_of(t: i64, period_ms: i64, bin_ms: i64) -> usize {
        // rem_euclid is in 0..period, so the quotient fits the bin count.
        (t.rem_euclid(period_ms) / bin_ms) as usize
    }

    /// The baseline at time `t` (`None` when training had no value in that bin).
    pub fn predict(&self, t: i64) -> Option<f64> {
        self.bins
            .get(Self::bin_of(t, self.period_ms, self.bin_ms))
            .copied()
            .flatten()
    }

    /// `value - baseline(t)`, or `NaN` when there is no baseline there or the value is missing.
    pub fn residual(&self, t: i64, value: f64) -> f64 {
        self.predict(t).map_or(f64::NAN, |b| value - b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::DAY_MS;

    #[test]
    fn daily_profile_predicts_by_time_of_day() {
        let hour = 3_600_000;
        let training: Vec<(i64, f64)> = (0..72)
            .map(|h| {
                (
                    h * hour,
                    (h % 24) as f64 + if h >= 48 { 100.0 } else { 0.0 },
                )
            })
            .collect();
        let p = ProfileBaseline::fit(DAY_MS, hour, &training).expect("fit");
        assert_eq!(p.predict(5 * DAY_MS + 7 * hour + 10), Some(7.0));
        assert_eq!(p.residual(7 * hour, 9.0), 2.0);
        assert!(ProfileBaseline::fit(DAY_MS, 7 * hour, &training).is_err());
        let sparse = ProfileBaseline::fit(DAY_MS, hour, &[(0, 1.0)]).expect("fit");
        assert!(sparse.residual(hour, 1.0).is_nan());
    }
}
