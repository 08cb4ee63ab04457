//! Bursts: a sudden pressure drop at several sensors at once together with an inlet flow rise.

use std::collections::VecDeque;

use super::stats::robust_fit;
use super::{unit_interval, DetectError, Snapshot};

/// Parameters of a [`BurstDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct BurstConfig {
    /// Samples averaged before the change (the reference level).
    pub before_samples: usize,
    /// Samples averaged after the change (the new level); 1 reacts at the first sample.
    pub after_samples: usize,
    /// Threshold in learned standard deviations of the step statistic.
    pub z: f64,
    /// Smallest pressure drop that counts (pressure units), whatever the noise.
    pub min_drop: f64,
    /// Smallest inlet flow rise that counts (flow units), whatever the noise.
    pub min_flow_rise: f64,
    /// Fewest sensors that must drop together.
    pub min_sensors: usize,
    /// Fewest sensors that must drop, as a fraction of those reporting.
    pub min_fraction: f64,
    /// Whether an inlet flow rise is required (set `false` where no inlet flow is measured).
    pub require_flow: bool,
    /// Snapshots skipped after a burst (one burst, one event).
    pub holdoff_samples: usize,
    /// Fewest training snapshots accepted.
    pub min_training: usize,
}

impl Default for BurstConfig {
    fn default() -> Self {
        Self {
            before_samples: 6,
            after_samples: 2,
            z: 5.0,
            min_drop: 0.0,
            min_flow_rise: 0.0,
            min_sensors: 2,
            min_fraction: 0.3,
            require_flow: true,
            holdoff_samples: 24,
            min_training: 48,
        }
    }
}

/// A detected burst.
#[derive(Debug, Clone, PartialEq)]
pub struct Burst {
    /// Detection time (ms).
    pub time: i64,
    /// Time of the first sample at the new level (ms).
    pub onset: i64,
    /// Indices of the sensors that dropped, largest drop first.
    pub sensors: Vec<usize>,
    /// Their drops (positive, pressure units; newest sample against the reference level), in the
    /// same order.
    pub drops: Vec<f64>,
    /// The inlet flow rise (flow units; newest sample against the reference level), when measured.
    pub flow_rise: Option<f64>,
    /// Confidence in `0..=1`: the share of reporting sensors that dropped, and how far the flow
    /// rise exceeds its threshold.
    pub confidence: f64,
}

/// Mean of the finite values (`NaN` when none).
fn finite_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|x| x.is_finite())
        .fold((0.0, 0_usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// Changes from the reference level: by the mean of the after-window (the detection statistic)
/// and by the newest sample alone (the reported size, complete as soon as the step is).
#[derive(Debug, Clone, PartialEq)]
struct Steps {
    pressures: Vec<f64>,
    flow: f64,
    latest_pressures: Vec<f64>,
    latest_flow: f64,
}

/// The reference and after windows of recent snapshots.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    before: usize,
    after: usize,
    rows: VecDeque<Snapshot>,
}

impl Window {
    fn new(before: usize, after: usize) -> Self {
        Self {
            before,
            after,
            rows: VecDeque::with_capacity(before + after + 1),
        }
    }

    /// Pushes a snapshot; returns the steps of every pressure and of the flow once full.
    fn push(&mut self, snap: &Snapshot) -> Option<Steps> {
        self.rows.push_back(snap.clone());
        if self.rows.len() > self.before + self.after {
            self.rows.pop_front();
        }
        if self.rows.len() < self.before + self.after {
            return None;
        }
        let (head, tail) = (
            self.rows.range(..self.before),
            self.rows.range(self.before..),
        );
        let step = |get: &dyn Fn(&Snapshot) -> f64| {
            let reference = finite_mean(head.clone().map(get));
            let latest = get(snap);
            let mean_step = finite_mean(tail.clone().map(get)) - reference;
            let latest_step = if latest.is_finite() {
                latest - reference
            } else {
                mean_step
            };
            (mean_step, latest_step)
        };
        let (pressures, latest_pressures) = (0..snap.pressures.len())
            .map(|i| step(&|s: &Snapshot| s.pressures.get(i).copied().unwrap_or(f64::NAN)))
            .unzip();
        let (flow, latest_flow) = step(&|s: &Snapshot| s.inlet_residual);
        Some(Steps {
            pressures,
            flow,
            latest_pressures,
            latest_flow,
        })
    }

    fn onset(&self) -> Option<i64> {
        self.rows.get(self.before).map(|s| s.time)
    }
}

/// Detects bursts in aligned snapshots of pressure residuals and the inlet flow residual.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstDetector {
    config: BurstConfig,
    drop_thresholds: Vec<f64>,
    flow_threshold: Option<f64>,
    window: Window,
    holdoff: usize,
}

impl BurstDetector {
    /// Learns the spread of the step statistics on leak-free snapshots. Sensors whose training
    /// steps have no spread use `min_drop` (and are never counted when it is 0); an inlet flow
    /// that was never measured disables the flow condition.
    pub fn fit(config: BurstConfig, training: &[Snapshot]) -> Result<Self, DetectError> {
        if config.before_samples == 0 || config.after_samples == 0 {
            return Err(DetectError::InvalidParameter {
                name: "before_samples",
                reason: "window lengths must be positive",
            });
        }
        if !(config.z > 0.0 && (0.0..=1.0).contains(&config.min_fraction)) {
            return Err(DetectError::InvalidParameter {
                name: "z",
                reason: "z must be positive and min_fraction in 0..=1",
            });
        }
        let n = training.first().map_or(0, |s| s.pressures.len());
        if let Some(bad) = training.iter().find(|s| s.pressures.len() != n) {
            return Err(DetectError::ShapeMismatch {
                time: bad.time,
                expected: n,
                got: bad.pressures.len(),
            });
        }
        let mut window = Window::new(config.before_samples, config.after_samples);
        let mut steps: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut flow_steps = Vec::new();
        for snap in training {
            if let Some(st) = window.push(snap) {
                for (acc, x) in steps.iter_mut().zip(st.pressures) {
                    acc.push(x);
                }
                flow_steps.push(st.flow);
            }
        }
        if flow_steps.len() < config.min_training.max(1) {
            return Err(DetectError::TooFewSamples {
                needed: config.min_training.max(1) + config.before_samples + config.after_samples,
                got: training.len(),
            });
        }
        let threshold =
            |values: &[f64], floor: f64| match robust_fit(values, config.min_training, 0.0) {
                Ok(fit) => (config.z * fit.scale).max(floor),
                Err(_) if floor > 0.0 => floor,
                Err(_) => f64::INFINITY,
            };
        let drop_thresholds = steps
            .iter()
            .map(|s| threshold(s, config.min_drop))
            .collect();
        let flow = threshold(&flow_steps, config.min_flow_rise);
        let flow_threshold = flow.is_finite().then_some(flow);
        if config.require_flow && flow_threshold.is_none() {
            return Err(DetectError::InvalidParameter {
                name: "require_flow",
                reason: "no usable inlet flow in training",
            });
        }
        Ok(Self {
            window: Window::new(config.before_samples, config.after_samples),
            config,
            drop_thresholds,
            flow_threshold,
            holdoff: 0,
        })
    }

    /// The per-sensor drop thresholds (pressure units).
    pub fn drop_thresholds(&self) -> &[f64] {
        &self.drop_thresholds
    }

    /// The inlet flow rise threshold (flow units), when the flow is used.
    pub fn flow_threshold(&self) -> Option<f64> {
        self.flow_threshold
    }

    /// Feeds one snapshot (same sensor order as in training; a wrong length is an error).
    pub fn update(&mut self, snap: &Snapshot) -> Result<Option<Burst>, DetectError> {
        if snap.pressures.len() != self.drop_thresholds.len() {
            return Err(DetectError::ShapeMismatch {
                time: snap.time,
                expected: self.drop_thresholds.len(),
                got: snap.pressures.len(),
            });
        }
        if self
            .window
            .rows
            .back()
            .is_some_and(|last| snap.time <= last.time)
        {
            return Ok(None);
        }
        let Some(st) = self.window.push(snap) else {
            return Ok(None);
        };
        if self.holdoff > 0 {
            self.holdoff -= 1;
            return Ok(None);
        }
        let reporting = st.pressures.iter().filter(|x| x.is_finite()).count();
        let mut dropped: Vec<(usize, f64)> = st
            .pressures
            .iter()
            .zip(&self.drop_thresholds)
            .enumerate()
            .filter(|(_, (d, th))| -**d > **th)
            .map(|(i, _)| (i, -st.latest_pressures[i]))
            .collect();
        let needed = self
            .config
            .min_sensors
            .max(1)
            .max((self.config.min_fraction * reporting as f64).ceil() as usize);
        if dropped.len() < needed {
            return Ok(None);
        }
        let flow_ok = self.flow_threshold.map(|th| st.flow > th);
        let flow_factor = match (flow_ok, self.config.require_flow) {
            (Some(true), _) => {
                unit_interval(0.5 + 0.25 * st.flow / self.flow_threshold.unwrap_or(st.flow))
            }
            (_, true) => return Ok(None),
            (_, false) => 0.5,
        };
        dropped.sort_by(|a, b| b.1.total_cmp(&a.1));
        self.holdoff = self.config.holdoff_samples;
        let share = dropped.len() as f64 / reporting.max(1) as f64;
        Ok(Some(Burst {
            time: snap.time,
            onset: self.window.onset().unwrap_or(snap.time),
            sensors: dropped.iter().map(|d| d.0).collect(),
            drops: dropped.iter().map(|d| d.1).collect(),
            flow_rise: flow_ok.filter(|ok| *ok).map(|_| st.latest_flow),
            confidence: unit_interval(share.sqrt() * flow_factor),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(i: i64, p: f64, q: f64) -> Snapshot {
        let wiggle = ((i * 37) % 11) as f64 / 50.0 - 0.1;
        Snapshot {
            time: i * 300_000,
            pressures: vec![p + wiggle, p - wiggle, p + 0.5 * wiggle],
            inlet_flow: 100.0 + q,
            inlet_residual: q + wiggle,
        }
    }

    #[test]
    fn step_drop_with_flow_rise_is_a_burst_and_pump_start_is_not() {
        let training: Vec<Snapshot> = (0..300).map(|i| snap(i, 0.0, 0.0)).collect();
        let mut d = BurstDetector::fit(BurstConfig::default(), &training).expect("fit");
        let mut bursts = vec![];
        for i in 300..400 {
            // A pump start at 320 (pressure and flow up) then a burst at 350.
            let (p, q) = match i {
                320..=330 => (3.0, 20.0),
                350.. => (-3.0, 20.0),
                _ => (0.0, 0.0),
            };
            if let Some(b) = d.update(&snap(i, p, q)).expect("shape") {
                bursts.push(b);
            }
        }
        assert_eq!(bursts.len(), 1, "{bursts:?}");
        let b = &bursts[0];
        assert_eq!(
            b.time,
            350 * 300_000,
            "flagged at the first sample after the step"
        );
        assert!((349 * 300_000..=350 * 300_000).contains(&b.onset));
        assert_eq!(b.sensors.len(), 3);
        assert!(b.flow_rise.is_some_and(|q| q > 15.0), "{b:?}");
        assert!(b.confidence > 0.5 && b.confidence <= 1.0);
        assert!(matches!(
            d.update(&Snapshot {
                time: 0,
                pressures: vec![],
                inlet_flow: 0.0,
                inlet_residual: 0.0
            }),
            Err(DetectError::ShapeMismatch { .. })
        ));
    }
}
