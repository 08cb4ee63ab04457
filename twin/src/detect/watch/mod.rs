//! The per-period detection stage behind [`crate::live::NetworkTwin::step`].
//!
//! It learns on a leak-free training window: demand multipliers per demand group from the
//! flow balance (measured inflow against each group's nominal consumption, least squares),
//! the baseline of every observation's residual (an offset per operating regime, which pumps
//! and switched links are open, plus a time-of-day profile), and the spread of everything in
//! half-hour block means (the residuals are autocorrelated: demand noise lasts an hour). Then,
//! per block, the standardized vector `u` (flow-balance excess and deseasonalized residuals)
//! is projected on the leak signature of every junction `j` (the unit vector `a_j` that a leak
//! at `j` would move `u` along: excess and sensitivities, [`LeakWatch::set_signatures`],
//! whitened by the covariance of `u` on the training window, so that noise common to many
//! sensors weighs as noise once), and one CUSUM per junction accumulates `b_j . u - k`. The
//! largest crossing its threshold raises an alarm that carries the onset, the leak size and
//! the signature (how every observation moved since just before the onset) for localization.
//! This combines the flow balance and all pressure sensors in one test, so a leak too small
//! for either alone is still found.
//!
//! Half-hour blocks and a CUSUM take hours to see even a large burst, so every period also
//! runs a step test: the median of each component over the last hour against the six hours
//! before, standardized by the spread of that difference on the training window, projected on
//! the same junction signatures; it alarms when the largest projection stays over its
//! threshold (learned on the training window) for half an hour and the flow balance stepped
//! up with it. Its onset is the change point of the projected series.
//!
//! After an alarm the new level becomes the reference (a reported leak is not raised twice);
//! a fall of the flow balance (a repair) also resets the reference, and tells an alarm still
//! waiting for its location ([`LeakWatch::fell_after`]) that its rise was a transient the
//! model misses (pump and tank regimes), not a leak.

use std::collections::VecDeque;

mod signature;
mod training;

use crate::detect::stats::median;
use crate::estimate::ObservationNoise;
use signature::{largest_projection, leak_directions, project, step_change, whitened};
use training::{block_means, components, fit, Fitted};
/// Training shorter than this (ms) learns one level per observation, not a time-of-day profile.
const PROFILE_MIN_TRAINING_MS: i64 = 3 * DAY_MS - 3_600_000;
/// A change came at once when its first hour brought at least this share of its rise.
const AT_ONCE_SHARE: f64 = 0.5;
/// Days whose same hours a signature is measured against.
const REFERENCE_DAYS: i64 = 3;
/// How long periods are kept for signatures (ms): the reference days and a day of leak.
const HISTORY_MS: i64 = (REFERENCE_DAYS + 1) * DAY_MS;

use super::{DetectError, Direction, EventKind, DAY_MS};

/// The periods `[from, to]` a signature of a change that began at `onset` is measured on,
/// as of `now`: since the onset, the last day at most.
pub fn signature_window(onset: i64, now: i64) -> (i64, i64) {
    (onset.max(now - DAY_MS + 1), now)
}

/// Parameters of a [`LeakWatch`].
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Periods before this time (ms) are leak-free training data.
    pub train_until_ms: i64,
    /// Width of the blocks the residuals are averaged over (ms).
    pub block_ms: i64,
    /// CUSUM reference value (standard deviations of a block mean).
    pub k: f64,
    /// The charts project on signature directions whitened by the training window's
    /// covariance, its off-diagonal entries shrunk by this share (1: each component on its
    /// own, as before stop 25). At 0.1, with the margins below at 6 and 2 (3 and 1 before),
    /// the abrupt leaks located at 30 sensors were reported in about half the time (medians
    /// of five sets 4-9 h against 9-18 h), and of 1,120 generated leaks 24 more were
    /// detected and 9 more located, for 7 more false alarms (BENCHMARKS, stop 25).
    pub noise_shrinkage: f64,
    /// The same for the correlation of the observations that an alarm's signature carries
    /// for its localization ([`crate::estimate::ObservationNoise`]). At 0.3, of 1,120
    /// generated leaks 15 more were located and 38 fewer false alarms raised than with
    /// independent observations (0.1: 12 more and 26 fewer; 0.5: 12 and 36; BENCHMARKS,
    /// stop 25).
    pub signature_noise_shrinkage: f64,
    /// The decision interval is at least this factor times the largest statistic any junction
    /// reached on the training window ...
    pub training_margin: f64,
    /// ... and at least this (standard deviations).
    pub min_threshold: f64,
    /// Width of the time-of-day bins of the residual baselines (ms), used when the training
    /// window spans about three days or more (one level per observation otherwise).
    pub profile_bin_ms: i64,
    /// Length of the pre-onset window the signature is measured against (ms).
    pub baseline_ms: i64,
    /// An alarm whose onset is at most this long before it is a burst (ms).
    pub burst_within_ms: i64,
    /// Smallest standard deviation of a block mean (its units): rounding of the readings.
    pub min_sigma: f64,
    /// With a metered inflow, an alarm stands only when the flow balance (mean of the last two
    /// blocks) rose since before the onset by this many of its standard deviations.
    pub balance_z: f64,
    /// A rise of the flow balance above this many standard deviations of a block is a burst
    /// whenever it was detected.
    pub burst_z: f64,
    /// A gradual leak is first located this long after its alarm (ms), when its signature
    /// has built up.
    pub gradual_report_delay_ms: i64,
    /// A burst is first located this long after its alarm (ms): the hour after an abrupt
    /// change is too short for a signature that the hourly demand noise does not blur.
    pub burst_report_delay_ms: i64,
    /// An alarm is reported once its location's confidence reaches this ... (0.9 rather
    /// than 0.8: with the signatures matched against hourly averaged sensitivities, waiting
    /// for 0.9 raised 22 fewer false alarms on 712 generated leaks for 3 more located;
    /// BENCHMARKS, stop 23)
    pub locate_confidence: f64,
    /// ... or once it is this old (ms) with a confidence of at least
    /// [`Self::late_confidence`] ...
    pub locate_max_wait_ms: i64,
    /// ... (0.7: an incipient leak located early at a neighbour with little confidence was a
    /// false alarm, and hours later its place was clear; waiting for 0.7 or 18 h raised 47
    /// fewer false alarms on 960 generated leaks for 6 more located; BENCHMARKS, stop 24)
    pub late_confidence: f64,
    /// ... or once it is this old (ms) whatever the confidence: an alarm is never dropped for
    /// lack of confidence.
    pub locate_last_wait_ms: i64,
    /// Until then it is located again this often (ms), with the evidence grown.
    pub relocate_every_ms: i64,
    /// How long the charts pause after a change before its level becomes the reference (ms).
    pub settle_ms: i64,
    /// Standardized block values are clipped to `±clip`: a sustained change still builds up,
    /// a short disturbance cannot alarm alone.
    pub clip: f64,
    /// The step test compares, every period, the median of this last window (ms) ...
    pub step_window_ms: i64,
    /// ... with the median of this window just before it (ms).
    pub step_reference_ms: i64,
    /// Its decision threshold is at least this factor times the largest projected step seen
    /// on the training window ...
    pub step_margin: f64,
    /// ... and at least this (standard deviations of a step).
    pub step_min_threshold: f64,
    /// Consecutive periods the step must stay over the threshold.
    pub step_persistence: usize,
    /// With a metered inflow, the flow balance must have stepped up by this many of its
    /// standard deviations as well.
    pub step_balance_z: f64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            train_until_ms: i64::MIN,
            block_ms: 1_800_000,
            k: 0.5,
            noise_shrinkage: 0.1,
            signature_noise_shrinkage: 0.3,
            training_margin: 6.0,
            min_threshold: 8.0,
            profile_bin_ms: 3_600_000,
            baseline_ms: 6 * 3_600_000,
            burst_within_ms: 3_600_000,
            min_sigma: 0.005,
            clip: 4.0,
            settle_ms: 2 * 3_600_000,
            gradual_report_delay_ms: 12 * 3_600_000,
            burst_report_delay_ms: 3_600_000,
            locate_confidence: 0.9,
            locate_max_wait_ms: 12 * 3_600_000,
            late_confidence: 0.7,
            locate_last_wait_ms: 18 * 3_600_000,
            relocate_every_ms: 3_600_000,
            burst_z: 2.0,
            balance_z: 2.0,
            step_window_ms: 3_600_000,
            step_reference_ms: 6 * 3_600_000,
            step_margin: 2.0,
            step_min_threshold: 4.0,
            step_persistence: 6,
            step_balance_z: 3.0,
        }
    }
}

/// One period as the watch sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Time (ms).
    pub time: i64,
    /// Total measured inflow into the network (network flow unit), when fully metered.
    pub inflow: Option<f64>,
    /// Nominal consumption of each demand group for the period (network flow unit).
    pub nominal: Vec<f64>,
    /// Measured minus simulated per observation (`NaN` = not observed).
    pub residuals: Vec<f64>,
    /// The operating regime the period was solved in ([`crate::detect::regime_key`]): the
    /// residuals' baseline is learned per regime.
    pub regime: u64,
}

/// A leak alarm, ready for localization.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// `Leak` (gradual) or `Burst` (abrupt).
    pub kind: EventKind,
    /// Time of the alarm (ms).
    pub time: i64,
    /// Estimated start of the leak (ms).
    pub onset: i64,
    /// The junction whose CUSUM crossed (index into the signatures).
    pub junction: usize,
    /// Estimated leak outflow from the flow balance (network flow unit), when metered.
    pub flow: Option<f64>,
    /// The CUSUM statistic over its threshold (`>= 1`).
    pub strength: f64,
    /// Mean change of each observation's residual since before the onset.
    pub signature: Vec<f64>,
    /// Noise of the signature: the standard deviation of each observation's residual (block
    /// means) and their correlation on the training window.
    pub noise: ObservationNoise,
}

/// Per-junction signature directions and CUSUMs.
#[derive(Debug, Clone)]
struct Charts {
    /// Unit vectors, junction x component.
    directions: Vec<Vec<f64>>,
    statistics: Vec<f64>,
    run_start: Vec<Option<i64>>,
    threshold: f64,
    /// Unit vectors of the step test (weighted by the steps' standard deviations).
    step_directions: Vec<Vec<f64>>,
    step_threshold: f64,
    /// Consecutive periods the step test has been over its threshold.
    step_run: usize,
}

/// Components of one period kept for signatures (excess first when metered).
#[derive(Debug, Clone)]
struct Kept {
    time: i64,
    /// Relative to the reference (leaks already reported taken off).
    components: Vec<f64>,
    /// As measured: for signatures against the same hours of the days before.
    raw: Vec<f64>,
}

/// The detection stage's state.
#[derive(Debug, Clone)]
pub struct LeakWatch {
    config: WatchConfig,
    training: Vec<Frame>,
    fitted: Option<Result<Fitted, DetectError>>,
    charts: Option<Charts>,
    history: VecDeque<Kept>,
    /// Level of each component explained by leaks already reported (or repaired).
    offset: Vec<f64>,
    block: Vec<Kept>,
    /// A change's onset and when it was seen, while its new level settles.
    settling: Option<(i64, i64)>,
    /// Onset and size (network flow unit) of the last fall of the flow balance.
    fell_at: Option<(i64, f64)>,
}

impl LeakWatch {
    /// A watch that trains on the periods before `config.train_until_ms`.
    pub fn new(config: WatchConfig) -> Self {
        Self {
            config,
            training: Vec::new(),
            fitted: None,
            charts: None,
            history: VecDeque::new(),
            offset: Vec::new(),
            block: Vec::new(),
            settling: None,
            fell_at: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// Why the watch could not be trained (it then raises nothing).
    pub fn training_error(&self) -> Option<&DetectError> {
        self.fitted.as_ref().and_then(|f| f.as_ref().err())
    }

    /// Whether the training window is over and the watch learned from it.
    pub fn is_trained(&self) -> bool {
        matches!(self.fitted, Some(Ok(_)))
    }

    /// Whether the watch is trained and waits for [`LeakWatch::set_signatures`].
    pub fn needs_signatures(&self) -> bool {
        self.is_trained() && self.charts.is_none()
    }

    /// Gives the leak responses: `responses[j][i]` = how observation `i`'s residual moves per
    /// unit of leak at junction `j` (the period's multiplier re-estimation already taken
    /// off). The flow balance moves one for one. Calibrates the thresholds on the training
    /// window.
    pub fn set_signatures(&mut self, responses: &[Vec<f64>]) {
        let Some(Ok(fitted)) = &self.fitted else {
            return;
        };
        let metered = fitted.multipliers.is_some();
        let shrinkage = self.config.noise_shrinkage;
        let directions = whitened(
            leak_directions(responses, metered, &fitted.sigmas),
            &fitted.training_blocks,
            shrinkage,
        );
        let mut statistics = vec![0.0; directions.len()];
        let mut peak = 0.0_f64;
        for block in &fitted.training_blocks {
            for (s, a) in statistics.iter_mut().zip(&directions) {
                *s = (*s + project(a, block) - self.config.k).max(0.0);
                peak = peak.max(*s);
            }
        }
        let step_directions = whitened(
            leak_directions(responses, metered, &fitted.step_sigmas),
            &fitted.training_steps,
            shrinkage,
        );
        let step_peak = fitted
            .training_steps
            .iter()
            .map(|step| largest_projection(&step_directions, step).1)
            .fold(0.0_f64, f64::max);
        self.charts = Some(Charts {
            statistics: vec![0.0; directions.len()],
            run_start: vec![None; directions.len()],
            directions,
            threshold: (self.config.training_margin * peak).max(self.config.min_threshold),
            step_directions,
            step_threshold: (self.config.step_margin * step_peak)
                .max(self.config.step_min_threshold),
            step_run: 0,
        });
    }

    /// Feeds one period; returns a leak alarm when one is raised.
    pub fn observe(&mut self, frame: Frame) -> Option<Alarm> {
        if frame.time < self.config.train_until_ms {
            self.training.push(frame);
            return None;
        }
        if self.fitted.is_none() {
            self.fitted = Some(fit(&self.config, &self.training));
        }
        let Some(Ok(fitted)) = &self.fitted else {
            return None;
        };
        if self.history.is_empty() {
            // The training window is the day before the first watched hours.
            let training = std::mem::take(&mut self.training);
            self.history = training
                .iter()
                .map(|f| {
                    let raw = components(fitted, f);
                    Kept {
                        time: f.time,
                        components: raw.clone(),
                        raw,
                    }
                })
                .collect();
        }
        let raw = components(fitted, &frame);
        self.offset.resize(raw.len(), 0.0);
        let kept = Kept {
            time: frame.time,
            components: raw.iter().zip(&self.offset).map(|(c, o)| c - o).collect(),
            raw,
        };
        self.history.push_back(kept.clone());
        while self
            .history
            .front()
            .is_some_and(|k| k.time < frame.time - HISTORY_MS)
        {
            self.history.pop_front();
        }
        if let Some(alarm) = self.step_test(frame.time) {
            self.block.clear();
            return Some(alarm);
        }
        let block_start = self.block.first().map_or(frame.time, |k| k.time);
        self.block.push(kept);
        if frame.time - block_start + self.period_ms() < self.config.block_ms {
            return None;
        }
        let block = std::mem::take(&mut self.block);
        let Some(Ok(fitted)) = &self.fitted else {
            return None;
        };
        let means: Vec<f64> = block_means(&block.iter().collect::<Vec<_>>(), &fitted.sigmas)
            .into_iter()
            .map(|u| u.clamp(-self.config.clip, self.config.clip))
            .collect();
        self.update_charts(frame.time, block_start, &means)
    }

    /// The reporting period, from the last two periods seen (5 minutes before there are two).
    fn period_ms(&self) -> i64 {
        let mut times = self.history.iter().rev().map(|k| k.time);
        match (times.next(), times.next()) {
            (Some(a), Some(b)) if a > b => a - b,
            _ => 300_000,
        }
    }

    /// After a change (a reported leak or a repair) the charts pause until the new level has
    /// settled; that level then becomes the reference.
    fn settle(&mut self, onset: i64, now: i64) {
        self.settling = Some((onset, now));
        if let Some(charts) = self.charts.as_mut() {
            charts.statistics.iter_mut().for_each(|s| *s = 0.0);
            charts.run_start.iter_mut().for_each(|r| *r = None);
        }
        if let Some(Ok(fitted)) = self.fitted.as_mut() {
            if let Some(balance) = fitted.balance.as_mut() {
                balance.reset();
            }
        }
    }

    fn update_charts(&mut self, now: i64, block_start: i64, u: &[f64]) -> Option<Alarm> {
        if let Some((onset, since)) = self.settling {
            if now - since < self.config.settle_ms {
                return None;
            }
            self.settling = None;
            self.recenter(onset, since, now);
            return None;
        }
        let Some(Ok(fitted)) = &mut self.fitted else {
            return None;
        };
        if let Some(balance) = fitted.balance.as_mut() {
            if let Some(change) = balance.update(now, u[0]) {
                balance.reset();
                if change.direction == Direction::Down {
                    // How far below the reference the balance stands since the fall began
                    // (the chart's own estimate is capped by the clipping of its blocks).
                    let level = self.window_median(change.onset, now, false);
                    let size = -level.first().copied().unwrap_or(0.0);
                    self.fell_at = Some((change.onset, size));
                    self.settle(change.onset, now);
                    return None;
                }
            }
        }
        let charts = self.charts.as_mut()?;
        let mut best: Option<(usize, f64)> = None;
        for (j, a) in charts.directions.iter().enumerate() {
            let s = &mut charts.statistics[j];
            *s = (*s + project(a, u) - self.config.k).max(0.0);
            if *s > 0.0 {
                charts.run_start[j].get_or_insert(block_start);
            } else {
                charts.run_start[j] = None;
            }
            if *s > charts.threshold && best.is_none_or(|b| *s > b.1) {
                best = Some((j, *s));
            }
        }
        let (junction, statistic) = best?;
        let threshold = charts.threshold;
        let onset = charts.run_start[junction].unwrap_or(block_start);
        charts.statistics.iter_mut().for_each(|s| *s = 0.0);
        charts.run_start.iter_mut().for_each(|r| *r = None);
        if let Some(balance) = fitted.balance.as_mut() {
            balance.reset();
        }
        self.raise(now, onset, junction, statistic / threshold, false)
    }

    /// The alarm of a change at `junction` that began at `onset`, seen at `now` with
    /// `strength`; `None` when a metered flow balance did not rise with it. `step`: found by
    /// the step test (always abrupt).
    fn raise(
        &mut self,
        now: i64,
        onset: i64,
        junction: usize,
        strength: f64,
        step: bool,
    ) -> Option<Alarm> {
        let Some(Ok(fitted)) = &self.fitted else {
            return None;
        };
        let metered = fitted.multipliers.is_some();
        let noise = ObservationNoise {
            sigmas: fitted.sigmas[usize::from(metered)..].to_vec(),
            correlation: fitted.observation_correlation.clone(),
        };
        let balance_sigma = fitted.sigmas.first().copied().unwrap_or(f64::NAN);
        // The level now (the last two blocks: the onset estimate can be early) against the
        // level before the onset.
        let (before, after) = (
            self.window_median(onset - self.config.baseline_ms, onset - 1, false),
            self.window_median(onset.max(now - 2 * self.config.block_ms + 1), now, false),
        );
        let day_change = self.day_change(onset, now);
        let mut change: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let skip = usize::from(metered);
        change[skip..].copy_from_slice(&day_change[skip..]);
        let (flow, signature) = if metered {
            // A leak must show in the flow balance: its rise, or its level over the reference
            // (the leaks reported so far), has to stand out of the noise of a two-block mean.
            // The level, because a chart that crossed without such a rise starts again, and
            // the window before its next run carries the leak already.
            let noise = balance_sigma / std::f64::consts::SQRT_2;
            change[0] = change[0].max(after[0]);
            if change[0] < self.config.balance_z * noise {
                return None;
            }
            self.settle(onset, now);
            (Some(change[0]), change[1..].to_vec())
        } else {
            self.settle(onset, now);
            (None, change)
        };
        // Abrupt: the change came fast, or the flow balance jumped by far more than its noise.
        let abrupt = step
            || now - onset <= self.config.burst_within_ms
            || flow.is_some_and(|q| q > self.config.burst_z * balance_sigma);
        Some(Alarm {
            kind: if abrupt {
                EventKind::Burst
            } else {
                EventKind::Leak
            },
            time: now,
            onset,
            junction,
            flow,
            strength,
            signature,
            noise,
        })
    }

    /// The step test of the period at `now`: the step of every component (its median over the
    /// last [`WatchConfig::step_window_ms`] against the window before), projected on every
    /// junction's signature. It catches an abrupt leak within the hour, where the block CUSUM
    /// needs hours; persistence and a rise of the flow balance keep it from alarming on one
    /// noisy hour.
    fn step_test(&mut self, now: i64) -> Option<Alarm> {
        if self.settling.is_some() {
            return None;
        }
        let Some(Ok(fitted)) = &self.fitted else {
            return None;
        };
        let charts = self.charts.as_mut()?;
        let metered = fitted.multipliers.is_some();
        let Some(change) = step_change(&self.history, now, &self.config) else {
            charts.step_run = 0;
            return None;
        };
        let change: Vec<f64> = change
            .iter()
            .zip(&fitted.step_sigmas)
            .map(|(c, s)| (c / s).clamp(-self.config.clip, self.config.clip))
            .collect();
        let (junction, statistic) = largest_projection(&charts.step_directions, &change);
        let balance_rose = !metered || change[0] > self.config.step_balance_z;
        if statistic > charts.step_threshold && balance_rose {
            charts.step_run += 1;
        } else {
            charts.step_run = 0;
        }
        if charts.step_run < self.config.step_persistence {
            return None;
        }
        charts.step_run = 0;
        let strength = statistic / charts.step_threshold;
        let onset = self.step_onset(now, junction);
        self.raise(now, onset, junction, strength, true)
    }

    /// When the step seen at `now` began: the split of the last two step windows that
    /// separates the projection on `junction`'s signature best (a change point).
    fn step_onset(&self, now: i64, junction: usize) -> i64 {
        let fallback = now - self.config.step_window_ms;
        let (Some(Ok(fitted)), Some(charts)) = (&self.fitted, &self.charts) else {
            return fallback;
        };
        let direction = &charts.step_directions[junction];
        let from = now - self.config.step_window_ms - self.config.step_reference_ms;
        let series: Vec<(i64, f64)> = self
            .history
            .iter()
            .filter(|k| k.time >= from)
            .map(|k| {
                let standardized: Vec<f64> = k
                    .components
                    .iter()
                    .zip(&fitted.step_sigmas)
                    .map(|(c, s)| c / s)
                    .collect();
                (k.time, project(direction, &standardized))
            })
            .collect();
        let earliest = now - 2 * self.config.step_window_ms;
        let total: f64 = series.iter().map(|p| p.1).sum();
        let mut before = 0.0;
        let mut best = (f64::NEG_INFINITY, fallback);
        for (split, &(time, value)) in series.iter().enumerate() {
            if split > 0 && time >= earliest {
                let (n_before, n_after) = (split as f64, (series.len() - split) as f64);
                let jump = (total - before) / n_after - before / n_before;
                let score = jump * (n_before * n_after / (n_before + n_after)).sqrt();
                if score > best.0 {
                    best = (score, time);
                }
            }
            before += value;
        }
        best.1
    }

    /// How every observation's residual moved since `onset` (at most the last day), against
    /// the same hours of the [`REFERENCE_DAYS`] days before, pooled: the model's errors follow
    /// the time of day, a leak does not. One day's hours alone are as noisy as the window
    /// measured against them (the demand noise and the pump and tank regimes differ from day
    /// to day); three days pooled located more leaks with a quarter fewer false alarms on the
    /// generated Net3 scenarios (BENCHMARKS, stop 20). The flow balance first when metered.
    fn day_change(&self, onset: i64, now: i64) -> Vec<f64> {
        let (from, now) = signature_window(onset, now);
        let today = self.window_median(from, now, true);
        let reference: Vec<(i64, i64)> = (1..=REFERENCE_DAYS)
            .map(|days| (from - days * DAY_MS, now - days * DAY_MS))
            .collect();
        let before = self.median_over(&reference, true);
        today.iter().zip(&before).map(|(a, b)| a - b).collect()
    }

    /// The residual signature of a change that began at `onset`, as of `now` (see
    /// [`Alarm::signature`]); empty before training.
    pub fn signature(&self, onset: i64, now: i64) -> Vec<f64> {
        let skip = match &self.fitted {
            Some(Ok(fitted)) => usize::from(fitted.multipliers.is_some()),
            _ => return Vec::new(),
        };
        self.day_change(onset, now).split_off(skip)
    }

    /// Whether the change that began at `onset` came at once (a burst) rather than grew (a
    /// gradual leak), as of `now`: the flow balance's rise over the hour after the onset
    /// against its rise over the last hour, each against the same hours of the days before
    /// (as a signature is measured: the balance's own error follows the hour of the day).
    /// `None` without a metered inflow, before two hours have passed, or without a rise.
    pub fn came_at_once(&self, onset: i64, now: i64) -> Option<bool> {
        let Some(Ok(fitted)) = &self.fitted else {
            return None;
        };
        fitted.multipliers.as_ref()?;
        let hour = self.config.step_window_ms;
        if now - onset < 2 * hour {
            return None;
        }
        let rise = |from: i64, to: i64| self.day_change(from, to).first().copied();
        let first = rise(onset, onset + hour)?;
        let last = rise(now - hour + 1, now)?;
        (last > 0.0).then_some(first >= AT_ONCE_SHARE * last)
    }

    /// Whether the flow balance fell after `onset` by at least half of `rise` (network flow
    /// unit): the rise a pending alarm was raised on went away. A smaller fall is no evidence:
    /// the reference set after an alarm is measured on two hours and can sit a little high.
    pub fn fell_after(&self, onset: i64, rise: f64) -> bool {
        self.fell_at
            .is_some_and(|(fell, size)| fell > onset && size >= 0.5 * rise)
    }

    /// Makes the level from `since` to `now` the reference in place of the level before
    /// `onset`.
    fn recenter(&mut self, onset: i64, since: i64, now: i64) {
        let before = self.window_median(onset - self.config.baseline_ms, onset - 1, false);
        let recent = self.window_median(since, now, false);
        for ((o, r), b) in self.offset.iter_mut().zip(&recent).zip(&before) {
            let shift = r - b;
            if shift.is_finite() {
                *o += shift;
            }
        }
        let shifts: Vec<f64> = recent
            .iter()
            .zip(&before)
            .map(|(r, b)| if (r - b).is_finite() { r - b } else { 0.0 })
            .collect();
        for kept in &mut self.history {
            for (c, s) in kept.components.iter_mut().zip(&shifts) {
                if kept.time >= onset {
                    *c -= s;
                }
            }
        }
    }

    /// Median of each component (`raw`: as measured, else relative to the reference) over the
    /// kept periods in `[from, to]` (0 when none). Not the mean: a pump that switched one
    /// reading before or after the twin saw its tank reach the control level leaves a single
    /// reading tens of psi off, which would dominate an hour's mean.
    fn window_median(&self, from: i64, to: i64, raw: bool) -> Vec<f64> {
        self.median_over(&[(from, to)], raw)
    }

    /// [`Self::window_median`] over the kept periods of several windows `[from, to]` together.
    fn median_over(&self, windows: &[(i64, i64)], raw: bool) -> Vec<f64> {
        let kept: Vec<&Kept> = self
            .history
            .iter()
            .filter(|k| {
                windows
                    .iter()
                    .any(|&(from, to)| k.time >= from && k.time <= to)
            })
            .collect();
        let width = self.history.back().map_or(0, |k| k.components.len());
        (0..width)
            .map(|i| {
                let values: Vec<f64> = kept
                    .iter()
                    .map(|k| if raw { k.raw[i] } else { k.components[i] })
                    .collect();
                median(&values).unwrap_or(0.0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
