//! Two-sided tabular CUSUM on one residual series.

use super::stats::{cusum_threshold, LongRunScale};
use super::{check_open, check_training_margin, DetectError, Detection, Direction};

/// Parameters of a [`Cusum`].
#[derive(Debug, Clone, PartialEq)]
pub struct CusumConfig {
    /// Reference value `k` in standard deviations: half the shift the chart is tuned to.
    pub k: f64,
    /// Standardized residuals are clipped to `±clip` before they enter the statistic, so one
    /// spike cannot raise an alarm by itself while a sustained shift still does.
    pub clip: f64,
    /// Target in-control false-alarm rate, per sample, both sides together.
    pub false_alarm_rate: f64,
    /// The decision interval is at least this factor times the largest statistic reached on the
    /// training window (`0` disables the empirical calibration).
    pub training_margin: f64,
    /// How the residuals' scale is learned on the training window.
    pub scale: LongRunScale,
    /// After an alarm the side that alarmed stays quiet (statistic held at zero) until this many
    /// consecutive samples have been back on the in-control side of `k`; `0` restarts at once.
    pub rearm_samples: usize,
}

impl Default for CusumConfig {
    fn default() -> Self {
        Self {
            k: 0.5,
            clip: 4.0,
            false_alarm_rate: 1e-6,
            training_margin: 2.0,
            scale: LongRunScale::default(),
            rearm_samples: 12,
        }
    }
}

/// One side of the chart.
#[derive(Debug, Clone, Default, PartialEq)]
struct Side {
    /// The statistic (standard deviations).
    s: f64,
    /// Samples since the statistic was last zero.
    n: usize,
    /// Time of the first sample of the current positive run.
    run_start: Option<i64>,
    /// Alarmed and waiting to re-arm.
    latched: bool,
    /// Consecutive in-control samples while latched.
    calm: usize,
}

impl Side {
    /// Adds the standardized increment `z - k`; returns whether the statistic crossed `h`.
    fn step(&mut self, t: i64, z: f64, k: f64, h: f64, rearm: usize) -> bool {
        if self.latched {
            self.calm = if z < k { self.calm + 1 } else { 0 };
            if self.calm >= rearm {
                self.latched = false;
                self.calm = 0;
            }
            return false;
        }
        self.s = (self.s + z - k).max(0.0);
        if self.s > 0.0 {
            if self.n == 0 {
                self.run_start = Some(t);
            }
            self.n += 1;
        } else {
            self.n = 0;
            self.run_start = None;
        }
        self.s > h
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// A two-sided CUSUM with robustly learned location, scale and decision interval.
///
/// `update` ignores non-finite values and samples not later than the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct Cusum {
    config: CusumConfig,
    location: f64,
    scale: f64,
    threshold: f64,
    up: Side,
    down: Side,
    last_time: Option<i64>,
}

impl Cusum {
    /// Learns location (median), scale (MAD) and the decision interval from a leak-free training
    /// series.
    pub fn fit(config: CusumConfig, training: &[f64]) -> Result<Self, DetectError> {
        check_open("k", config.k, 10.0)?;
        check_open("clip", config.clip, f64::INFINITY)?;
        check_open("false_alarm_rate", config.false_alarm_rate, 0.5)?;
        check_training_margin(config.training_margin)?;
        let fit = config.scale.fit(training)?;
        let theory = cusum_threshold(config.k, config.false_alarm_rate);
        let mut det = Self {
            config,
            location: fit.location,
            scale: fit.scale,
            threshold: f64::INFINITY,
            up: Side::default(),
            down: Side::default(),
            last_time: None,
        };
        let (mut up, mut down, mut peak) = (0.0_f64, 0.0_f64, 0.0_f64);
        for z in training
            .iter()
            .filter(|x| x.is_finite())
            .map(|x| det.standardize(*x))
        {
            up = (up + z - det.config.k).max(0.0);
            down = (down - z - det.config.k).max(0.0);
            peak = peak.max(up).max(down);
        }
        det.threshold = theory.max(det.config.training_margin * peak);
        Ok(det)
    }

    fn standardize(&self, x: f64) -> f64 {
        ((x - self.location) / self.scale).clamp(-self.config.clip, self.config.clip)
    }

    /// Feeds one sample; returns an alarm when either side crosses the decision interval.
    pub fn update(&mut self, time: i64, value: f64) -> Option<Detection> {
        if !value.is_finite() || self.last_time.is_some_and(|last| time <= last) {
            return None;
        }
        self.last_time = Some(time);
        let z = self.standardize(value);
        let (k, h, rearm) = (self.config.k, self.threshold, self.config.rearm_samples);
        let up = self.up.step(time, z, k, h, rearm);
        let down = self.down.step(time, -z, k, h, rearm);
        let (side, direction) = match (up, down) {
            (true, _) => (&mut self.up, Direction::Up),
            (false, true) => (&mut self.down, Direction::Down),
            (false, false) => return None,
        };
        let detection = Detection {
            time,
            onset: side.run_start.unwrap_or(time),
            direction,
            statistic: side.s,
            threshold: h,
            shift: direction.sign() * self.scale * (k + side.s / side.n.max(1) as f64),
        };
        side.clear();
        side.latched = rearm > 0;
        Some(detection)
    }

    /// Clears both sides and any latch (e.g. after a repair or a new baseline).
    pub fn reset(&mut self) {
        self.up.clear();
        self.down.clear();
    }

    /// The learned in-control level (series units).
    pub fn location(&self) -> f64 {
        self.location
    }

    /// The learned scale (series units).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The decision interval (standard deviations).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The current upper and lower statistics (standard deviations).
    pub fn statistics(&self) -> (f64, f64) {
        (self.up.s, self.down.s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alternating(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect()
    }

    #[test]
    fn step_is_detected_with_onset_and_shift() {
        let cfg = CusumConfig {
            false_alarm_rate: 1e-3,
            ..CusumConfig::default()
        };
        let mut c = Cusum::fit(cfg, &alternating(200)).expect("fit");
        assert!(c.threshold() > 0.0);
        let mut hit = None;
        for i in 0..100_i64 {
            let x = if i >= 20 { 3.0 } else { 0.0 };
            if let Some(d) = c.update(i * 300_000, x) {
                hit = Some(d);
                break;
            }
        }
        let d = hit.expect("alarm");
        assert_eq!(d.direction, Direction::Up);
        assert_eq!(d.onset, 20 * 300_000);
        assert!(d.time < 30 * 300_000);
        assert!(d.shift > 1.5 && d.shift < 4.5, "{}", d.shift);
    }

    #[test]
    fn latch_holds_until_back_in_control() {
        let cfg = CusumConfig {
            false_alarm_rate: 1e-2,
            rearm_samples: 3,
            ..CusumConfig::default()
        };
        let mut c = Cusum::fit(cfg, &alternating(100)).expect("fit");
        let mut t = 0;
        let mut alarms = 0;
        for _ in 0..50 {
            t += 1;
            alarms += usize::from(c.update(t, -5.0).is_some());
        }
        assert_eq!(alarms, 1, "a persistent shift alarms once");
        for _ in 0..3 {
            t += 1;
            assert!(c.update(t, 0.0).is_none());
        }
        let again = (0..20).any(|_| {
            t += 1;
            c.update(t, -5.0).is_some()
        });
        assert!(again, "re-armed after three calm samples");
    }

    #[test]
    fn bad_samples_are_ignored_and_parameters_checked() {
        let mut c = Cusum::fit(CusumConfig::default(), &alternating(100)).expect("fit");
        assert!(c.update(10, f64::NAN).is_none());
        assert!(c.update(10, 0.0).is_none());
        assert!(c.update(5, 100.0).is_none(), "older sample ignored");
        assert_eq!(c.statistics(), (0.0, 0.0));
        let bad = CusumConfig {
            false_alarm_rate: 0.0,
            ..CusumConfig::default()
        };
        assert!(matches!(
            Cusum::fit(bad, &alternating(100)),
            Err(DetectError::InvalidParameter { .. })
        ));
    }
}
