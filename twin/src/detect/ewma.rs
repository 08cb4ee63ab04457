//! Two-sided EWMA chart on one residual series.

use super::stats::{normal_upper_quantile, LongRunScale};
use super::{check_open, check_training_margin, DetectError, Detection, Direction};

/// Standardized level below which a latched EWMA counts a sample as back in control.
const CALM_LEVEL: f64 = 0.5;

/// Parameters of an [`Ewma`].
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaConfig {
    /// Smoothing weight of the newest sample, in (0, 1].
    pub lambda: f64,
    /// Standardized residuals are clipped to `±clip` first (one spike alone cannot alarm).
    pub clip: f64,
    /// Target in-control false-alarm rate, per sample, both sides together (a normal-quantile
    /// limit on the steady-state EWMA spread: conservative, exceedances come in clusters).
    pub false_alarm_rate: f64,
    /// The limit is at least this factor times the largest `|EWMA|` reached on the training
    /// window (`0` disables the empirical calibration).
    pub training_margin: f64,
    /// How the residuals' scale is learned on the training window.
    pub scale: LongRunScale,
    /// After an alarm the chart is held at zero and quiet in that direction until this many
    /// consecutive samples have stayed within half a standard deviation on the other side;
    /// `0` restarts at once.
    pub rearm_samples: usize,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        Self {
            lambda: 0.1,
            clip: 4.0,
            false_alarm_rate: 1e-6,
            training_margin: 2.0,
            scale: LongRunScale::default(),
            rearm_samples: 12,
        }
    }
}

/// A two-sided EWMA chart with robustly learned location, scale and control limit.
///
/// `update` ignores non-finite values and samples not later than the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct Ewma {
    config: EwmaConfig,
    location: f64,
    scale: f64,
    limit: f64,
    value: f64,
    /// Time the EWMA last moved away from zero on its current side.
    run_start: Option<i64>,
    latched: Option<Direction>,
    calm: usize,
    last_time: Option<i64>,
}

impl Ewma {
    /// Learns location (median), scale (MAD) and the control limit from a leak-free training
    /// series.
    pub fn fit(config: EwmaConfig, training: &[f64]) -> Result<Self, DetectError> {
        check_open("lambda", config.lambda, 1.0 + f64::EPSILON)?;
        check_open("clip", config.clip, f64::INFINITY)?;
        check_open("false_alarm_rate", config.false_alarm_rate, 0.5)?;
        check_training_margin(config.training_margin)?;
        let fit = config.scale.fit(training)?;
        let lambda = config.lambda;
        let spread = (lambda / (2.0 - lambda)).sqrt();
        let theory = normal_upper_quantile(config.false_alarm_rate / 2.0) * spread;
        let mut z = 0.0_f64;
        let mut peak = 0.0_f64;
        for x in training.iter().filter(|x| x.is_finite()) {
            let x = ((x - fit.location) / fit.scale).clamp(-config.clip, config.clip);
            z = lambda * x + (1.0 - lambda) * z;
            peak = peak.max(z.abs());
        }
        let limit = theory.max(config.training_margin * peak);
        Ok(Self {
            config,
            location: fit.location,
            scale: fit.scale,
            limit,
            value: 0.0,
            run_start: None,
            latched: None,
            calm: 0,
            last_time: None,
        })
    }

    /// Feeds one sample; returns an alarm when the EWMA leaves the control band.
    pub fn update(&mut self, time: i64, value: f64) -> Option<Detection> {
        if !value.is_finite() || self.last_time.is_some_and(|last| time <= last) {
            return None;
        }
        self.last_time = Some(time);
        let x = ((value - self.location) / self.scale).clamp(-self.config.clip, self.config.clip);
        if let Some(dir) = self.latched {
            self.calm = if x * dir.sign() < CALM_LEVEL {
                self.calm + 1
            } else {
                0
            };
            if self.calm < self.config.rearm_samples {
                return None;
            }
            self.latched = None;
            self.calm = 0;
        }
        let previous = self.value;
        self.value = self.config.lambda * x + (1.0 - self.config.lambda) * previous;
        if self.run_start.is_none() || previous.signum() != self.value.signum() {
            self.run_start = Some(time);
        }
        if self.value.abs() <= self.limit {
            return None;
        }
        let direction = if self.value > 0.0 {
            Direction::Up
        } else {
            Direction::Down
        };
        let detection = Detection {
            time,
            onset: self.run_start.unwrap_or(time),
            direction,
            statistic: self.value.abs(),
            threshold: self.limit,
            shift: self.value * self.scale,
        };
        self.value = 0.0;
        self.run_start = None;
        self.latched = (self.config.rearm_samples > 0).then_some(direction);
        Some(detection)
    }

    /// Clears the chart and any latch.
    pub fn reset(&mut self) {
        self.value = 0.0;
        self.run_start = None;
        self.latched = None;
        self.calm = 0;
    }

    /// The learned in-control level (series units).
    pub fn location(&self) -> f64 {
        self.location
    }

    /// The learned scale (series units).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The control limit on the standardized EWMA.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// The current standardized EWMA.
    pub fn value(&self) -> f64 {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_shift_alarms_quickly_and_once() {
        let training: Vec<f64> = (0..300)
            .map(|i| ((i * 7919) % 13) as f64 / 6.0 - 1.0)
            .collect();
        let cfg = EwmaConfig {
            false_alarm_rate: 1e-4,
            ..EwmaConfig::default()
        };
        let mut e = Ewma::fit(cfg, &training).expect("fit");
        let mut alarms = vec![];
        for i in 0..200_i64 {
            let x = if i >= 50 { -6.0 } else { 0.0 };
            if let Some(d) = e.update(i, x) {
                alarms.push(d);
            }
        }
        assert_eq!(alarms.len(), 1);
        assert_eq!(alarms[0].direction, Direction::Down);
        assert!(alarms[0].time - 50 < 10, "{:?}", alarms[0]);
        assert!(alarms[0].shift < 0.0);
        e.reset();
        assert_eq!(e.value(), 0.0);
    }

    #[test]
    fn lambda_is_checked() {
        let cfg = EwmaConfig {
            lambda: 1.5,
            ..EwmaConfig::default()
        };
        assert!(Ewma::fit(cfg, &[0.0, 1.0, 2.0]).is_err());
    }
}
