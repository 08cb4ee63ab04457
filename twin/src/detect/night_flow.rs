//! Minimum night flow (MNF) on the inlet flow.

use super::stats::{median, MAD_TO_SIGMA};
use super::{DetectError, DAY_MS};

/// Parameters of a [`NightFlowDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct NightFlowConfig {
    /// Start of the night window, ms after local midnight.
    pub window_start_ms: i64,
    /// End of the night window, ms after local midnight (may be before the start: the window
    /// then spans midnight).
    pub window_end_ms: i64,
    /// Local time minus UTC, ms.
    pub utc_offset_ms: i64,
    /// The night's minimum is taken over a moving average of this many samples.
    pub average_samples: usize,
    /// Nights with fewer samples in the window are skipped.
    pub min_samples_per_night: usize,
    /// Alarm threshold in learned standard deviations of the nightly minimum.
    pub z: f64,
    /// The threshold is at least this fraction of the baseline.
    pub min_rel_excess: f64,
    /// The threshold is at least this flow (network flow units).
    pub min_excess: f64,
    /// Consecutive nights above the threshold before the alarm.
    pub persist_nights: usize,
    /// Fewest complete training nights accepted.
    pub min_training_nights: usize,
}

impl Default for NightFlowConfig {
    fn default() -> Self {
        Self {
            window_start_ms: 2 * 3_600_000,
            window_end_ms: 4 * 3_600_000,
            utc_offset_ms: 0,
            average_samples: 3,
            min_samples_per_night: 6,
            z: 4.0,
            min_rel_excess: 0.03,
            min_excess: 0.0,
            persist_nights: 2,
            min_training_nights: 2,
        }
    }
}

/// A sustained rise of the minimum night flow: a leak signal.
#[derive(Debug, Clone, PartialEq)]
pub struct NightFlowRise {
    /// Time of the sample that closed the night that confirmed the rise (ms).
    pub time: i64,
    /// Time of the first sample of the first high night (ms).
    pub onset: i64,
    /// The last night's minimum flow.
    pub night_minimum: f64,
    /// The learned baseline minimum night flow.
    pub baseline: f64,
    /// Estimated leak flow: the median excess over the baseline of the high nights.
    pub estimated_flow: f64,
    /// The excess threshold.
    pub threshold: f64,
    /// Consecutive high nights so far.
    pub nights: usize,
}

/// The samples of the night in progress.
#[derive(Debug, Clone, PartialEq)]
struct Night {
    key: i64,
    first_time: i64,
    values: Vec<f64>,
}

/// Minimum of the moving average of `width` samples (of all of them when fewer).
fn min_moving_average(values: &[f64], width: usize) -> Option<f64> {
    let w = width.clamp(1, values.len().max(1));
    values
        .windows(w)
        .map(|win| win.iter().sum::<f64>() / w as f64)
        .min_by(f64::total_cmp)
}

/// Compares each night's minimum inlet flow with a baseline learned on leak-free nights.
///
/// A night is judged when the first sample after its window arrives. `update` ignores
/// non-finite values and samples not later than the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct NightFlowDetector {
    config: NightFlowConfig,
    baseline: f64,
    threshold: f64,
    night: Option<Night>,
    excesses: Vec<f64>,
    streak_onset: Option<i64>,
    alarmed: bool,
    last_time: Option<i64>,
}

impl NightFlowDetector {
    /// Learns the baseline and the threshold from a leak-free `(time_ms, flow)` series.
    pub fn fit(config: NightFlowConfig, training: &[(i64, f64)]) -> Result<Self, DetectError> {
        let length = (config.window_end_ms - config.window_start_ms).rem_euclid(DAY_MS);
        if length == 0 {
            return Err(DetectError::InvalidParameter {
                name: "window_end_ms",
                reason: "night window is empty",
            });
        }
        if !(config.z > 0.0 && config.min_rel_excess >= 0.0 && config.min_excess >= 0.0) {
            return Err(DetectError::InvalidParameter {
                name: "z",
                reason: "z must be positive, excess floors not negative",
            });
        }
        let mut det = Self {
            config,
            baseline: 0.0,
            threshold: f64::INFINITY,
            night: None,
            excesses: Vec::new(),
            streak_onset: None,
            alarmed: false,
            last_time: None,
        };
        let mut minima = Vec::new();
        for &(t, q) in training {
            if let Some((_, minimum)) = det.feed(t, q) {
                minima.push(minimum);
            }
        }
        if let Some(minimum) = det.night.take().and_then(|n| det.night_minimum(&n)) {
            minima.push(minimum);
        }
        let needed = det.config.min_training_nights.max(1);
        let baseline = median(&minima).filter(|_| minima.len() >= needed).ok_or(
            DetectError::TooFewSamples {
                needed,
                got: minima.len(),
            },
        )?;
        let deviations: Vec<f64> = minima.iter().map(|m| (m - baseline).abs()).collect();
        let scale = MAD_TO_SIGMA * median(&deviations).unwrap_or(0.0);
        let threshold = (det.config.z * scale)
            .max(det.config.min_rel_excess * baseline.abs())
            .max(det.config.min_excess);
        if !(threshold > 0.0 && threshold.is_finite()) {
            return Err(DetectError::DegenerateScale);
        }
        det.baseline = baseline;
        det.threshold = threshold;
        det.last_time = None;
        Ok(det)
    }

    /// Phase of `t` from the window start, and its night key.
    fn phase(&self, t: i64) -> (i64, i64) {
        let shifted = t + self.config.utc_offset_ms - self.config.window_start_ms;
        (shifted.rem_euclid(DAY_MS), shifted.div_euclid(DAY_MS))
    }

    fn night_minimum(&self, night: &Night) -> Option<f64> {
        if night.values.len() < self.config.min_samples_per_night.max(1) {
            return None;
        }
        min_moving_average(&night.values, self.config.average_samples)
    }

    /// Adds a sample; returns `(first time, minimum)` of a night this sample closed.
    fn feed(&mut self, t: i64, q: f64) -> Option<(i64, f64)> {
        if !q.is_finite() || self.last_time.is_some_and(|last| t <= last) {
            return None;
        }
        self.last_time = Some(t);
        let length = (self.config.window_end_ms - self.config.window_start_ms).rem_euclid(DAY_MS);
        let (phase, key) = self.phase(t);
        let inside = phase < length;
        let mut closed = None;
        if self.night.as_ref().is_some_and(|n| !inside || n.key != key) {
            if let Some(n) = self.night.take() {
                closed = self.night_minimum(&n).map(|m| (n.first_time, m));
            }
        }
        if inside {
            self.night
                .get_or_insert(Night {
                    key,
                    first_time: t,
                    values: Vec::new(),
                })
                .values
                .push(q);
        }
        closed
    }

    /// Feeds one inlet flow sample; returns a rise when a closed night confirms one.
    pub fn update(&mut self, time: i64, flow: f64) -> Option<NightFlowRise> {
        let (first_time, minimum) = self.feed(time, flow)?;
        let excess = minimum - self.baseline;
        if excess <= self.threshold {
            self.excesses.clear();
            self.streak_onset = None;
            self.alarmed = false;
            return None;
        }
        self.excesses.push(excess);
        let onset = *self.streak_onset.get_or_insert(first_time);
        if self.alarmed || self.excesses.len() < self.config.persist_nights.max(1) {
            return None;
        }
        self.alarmed = true;
        Some(NightFlowRise {
            time,
            onset,
            night_minimum: minimum,
            baseline: self.baseline,
            estimated_flow: median(&self.excesses).unwrap_or(excess),
            threshold: self.threshold,
            nights: self.excesses.len(),
        })
    }

    /// The learned baseline minimum night flow.
    pub fn baseline(&self) -> f64 {
        self.baseline
    }

    /// The excess threshold (flow units).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: i64 = 300_000;

    /// Diurnal flow with a night minimum of 10 plus `leak` from day `leak_day` on.
    fn flow(t: i64, leak_day: i64, leak: f64) -> f64 {
        let hour = (t % DAY_MS) as f64 / 3_600_000.0;
        let diurnal = 10.0 + 8.0 * (1.0 - ((hour - 3.0) / 24.0 * std::f64::consts::TAU).cos());
        let wiggle = ((t / STEP) % 7) as f64 * 0.05;
        diurnal + wiggle + if t >= leak_day * DAY_MS { leak } else { 0.0 }
    }

    #[test]
    fn sustained_rise_is_reported_with_its_flow() {
        let training: Vec<(i64, f64)> = (0..7 * DAY_MS / STEP)
            .map(|i| (i * STEP, flow(i * STEP, 99, 0.0)))
            .collect();
        let mut d = NightFlowDetector::fit(NightFlowConfig::default(), &training).expect("fit");
        assert!((d.baseline() - 10.1).abs() < 0.2, "{}", d.baseline());
        let mut rises = vec![];
        for i in 7 * DAY_MS / STEP..20 * DAY_MS / STEP {
            let t = i * STEP;
            rises.extend(d.update(t, flow(t, 10, 2.0)));
        }
        assert_eq!(rises.len(), 1, "{rises:?}");
        let r = &rises[0];
        assert_eq!(r.nights, 2);
        assert!(r.onset >= 10 * DAY_MS && r.time < 12 * DAY_MS, "{r:?}");
        assert!((r.estimated_flow - 2.0).abs() < 0.3, "{r:?}");
    }

    #[test]
    fn too_few_nights_or_empty_window_fail() {
        let short: Vec<(i64, f64)> = (0..DAY_MS / STEP).map(|i| (i * STEP, 1.0)).collect();
        assert!(matches!(
            NightFlowDetector::fit(NightFlowConfig::default(), &short),
            Err(DetectError::TooFewSamples { .. })
        ));
        let cfg = NightFlowConfig {
            window_end_ms: 2 * 3_600_000,
            ..NightFlowConfig::default()
        };
        assert!(NightFlowDetector::fit(cfg, &short).is_err());
    }
}
