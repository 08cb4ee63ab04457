//! Transients: the rate of change of one pressure signal above a threshold.

use super::stats::robust_fit;
use super::{unit_interval, DetectError};

/// Parameters of a [`TransientDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct TransientConfig {
    /// Threshold in learned standard deviations of the training rates.
    pub z: f64,
    /// Smallest rate that counts (pressure units per second), whatever the noise.
    pub min_rate: f64,
    /// The threshold is at least this factor times the largest `|rate|` seen in training
    /// (routine pump and valve operations); `0` disables it.
    pub training_margin: f64,
    /// Consecutive samples further apart than this (ms) give no rate.
    pub max_gap_ms: i64,
    /// Samples skipped after a transient.
    pub holdoff_samples: usize,
    /// Fewest training rates accepted.
    pub min_training: usize,
}

impl Default for TransientConfig {
    fn default() -> Self {
        Self {
            z: 8.0,
            min_rate: 0.0,
            training_margin: 1.0,
            max_gap_ms: 900_000,
            holdoff_samples: 3,
            min_training: 48,
        }
    }
}

/// A pressure rate of change above the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Transient {
    /// Time of the sample ending the fast change (ms).
    pub time: i64,
    /// The rate (pressure units per second, signed).
    pub rate: f64,
    /// The threshold on `|rate|`.
    pub threshold: f64,
    /// `1 - threshold / |rate|`: how far past the threshold.
    pub confidence: f64,
}

/// Rates between consecutive usable samples.
fn rate(prev: (i64, f64), next: (i64, f64), max_gap_ms: i64) -> Option<f64> {
    let dt = next.0 - prev.0;
    (dt > 0 && dt <= max_gap_ms).then(|| (next.1 - prev.1) / (dt as f64 / 1000.0))
}

/// Flags fast pressure changes of one sensor.
///
/// `update` ignores non-finite values and samples not later than the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct TransientDetector {
    config: TransientConfig,
    threshold: f64,
    previous: Option<(i64, f64)>,
    holdoff: usize,
}

impl TransientDetector {
    /// Learns the spread of the rate of change on a training `(time_ms, pressure)` series.
    pub fn fit(config: TransientConfig, training: &[(i64, f64)]) -> Result<Self, DetectError> {
        if !(config.z > 0.0
            && config.min_rate >= 0.0
            && config.training_margin >= 0.0
            && config.max_gap_ms > 0)
        {
            return Err(DetectError::InvalidParameter {
                name: "z",
                reason:
                    "z and max_gap_ms must be positive, min_rate and training_margin not negative",
            });
        }
        let usable: Vec<(i64, f64)> = training
            .iter()
            .copied()
            .filter(|s| s.1.is_finite())
            .collect();
        let rates: Vec<f64> = usable
            .windows(2)
            .filter_map(|w| rate(w[0], w[1], config.max_gap_ms))
            .collect();
        let fit = match robust_fit(&rates, config.min_training, 0.0) {
            Err(DetectError::DegenerateScale) if config.min_rate > 0.0 => None,
            other => Some(other?),
        };
        let largest = rates.iter().fold(0.0_f64, |m, r| m.max(r.abs()));
        let threshold = fit
            .map_or(config.min_rate, |f| {
                (config.z * f.scale).max(config.min_rate)
            })
            .max(config.training_margin * largest);
        Ok(Self {
            config,
            threshold,
            previous: None,
            holdoff: 0,
        })
    }

    /// The threshold on `|rate|` (pressure units per second).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Feeds one sample; returns a transient when the rate since the previous sample is too high.
    pub fn update(&mut self, time: i64, pressure: f64) -> Option<Transient> {
        if !pressure.is_finite() || self.previous.is_some_and(|p| time <= p.0) {
            return None;
        }
        let previous = self.previous.replace((time, pressure))?;
        if self.holdoff > 0 {
            self.holdoff -= 1;
            return None;
        }
        let r = rate(previous, (time, pressure), self.config.max_gap_ms)?;
        if r.abs() <= self.threshold {
            return None;
        }
        self.holdoff = self.config.holdoff_samples;
        Some(Transient {
            time,
            rate: r,
            threshold: self.threshold,
            confidence: unit_interval(1.0 - self.threshold / r.abs()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spike_in_rate_is_flagged_once_and_gaps_are_skipped() {
        let mut rng = crate::testutil::Rng::new(7);
        let mut series = |_: i64| 50.0 + 0.02 * crate::detect::gaussian(&mut rng);
        let training: Vec<(i64, f64)> = (0..200).map(|i| (i * 60_000, series(i))).collect();
        let mut d = TransientDetector::fit(TransientConfig::default(), &training).expect("fit");
        assert!(d.threshold() > 0.0);
        let mut hits = vec![];
        for i in 200..260 {
            let p = series(i) - if (230..236).contains(&i) { 10.0 } else { 0.0 };
            hits.extend(d.update(i * 60_000, p));
        }
        assert_eq!(hits.len(), 2, "down at 230 and back up at 236: {hits:?}");
        assert!(hits[0].rate < 0.0 && hits[1].rate > 0.0);
        // A large change across a long gap is not a rate.
        assert!(d.update(400 * 60_000, 0.0).is_none());
    }
}
