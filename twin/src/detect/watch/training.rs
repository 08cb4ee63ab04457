//! What the leak watch learns on its leak-free training window: demand multipliers per demand
//! group from the flow balance, time-of-day baselines of the residuals, and the spread of
//! block means and hourly steps of every component.

use std::collections::VecDeque;

use super::signature::{correlation, step_change};
use super::{Frame, Kept, WatchConfig, PROFILE_MIN_TRAINING_MS};
use crate::detect::stats::{median, robust_fit};
use crate::detect::{Cusum, CusumConfig, DetectError, ProfileBaseline, RegimeOffsets, DAY_MS};

/// Rounds of the alternating fit of regime offsets and time-of-day profiles (each absorbs part
/// of the other: a pump that a tank level switches runs at about the same hours every day).
/// 3, 6 and 20 rounds were measured; 6 did best (BENCHMARKS, stop 22).
const REGIME_ROUNDS: usize = 6;

/// What the watch learned on the training window.
#[derive(Debug, Clone)]
pub(super) struct Fitted {
    /// Multiplier per demand group (`None` without a metered inflow).
    pub(super) multipliers: Option<Vec<f64>>,
    pub(super) profiles: Vec<Option<ProfileBaseline>>,
    /// Offsets of the residuals per operating regime, on top of the profiles.
    pub(super) regimes: RegimeOffsets,
    /// Standard deviation of a block mean per component (excess first when metered).
    pub(super) sigmas: Vec<f64>,
    /// Standardized training blocks, to calibrate the threshold once signatures are known.
    pub(super) training_blocks: Vec<Vec<f64>>,
    /// Two-sided chart on the excess block means: its falls are repairs.
    pub(super) balance: Option<Cusum>,
    /// Standard deviation of each component's step ([`step_change`]) on the training window.
    pub(super) step_sigmas: Vec<f64>,
    /// The training window's steps, standardized, to calibrate the step threshold.
    pub(super) training_steps: Vec<Vec<f64>>,
    /// Correlation of the observations' block means (the excess left out), for the noise of
    /// a signature.
    pub(super) observation_correlation: Option<nalgebra::DMatrix<f64>>,
}

/// Block medians of each component divided by `sigmas` (`NaN` where a component has none):
/// the median, so that one period solved with a pump in the wrong state (a control that
/// switched between two readings) does not move the block.
pub(super) fn block_means(block: &[&Kept], sigmas: &[f64]) -> Vec<f64> {
    sigmas
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let values: Vec<f64> = block.iter().map(|k| k.components[i]).collect();
            median(&values).map_or(f64::NAN, |m| m / s)
        })
        .collect()
}

/// The flow-balance excess (when metered) followed by the residuals less their time-of-day
/// and regime baselines.
pub(super) fn components(fitted: &Fitted, frame: &Frame) -> Vec<f64> {
    let excess = fitted.multipliers.as_ref().map(|m| excess(m, frame));
    excess
        .into_iter()
        .chain(deseasonalized(&fitted.profiles, &fitted.regimes, frame))
        .collect()
}

/// Each residual of `frame` less its regime offset and its time-of-day profile (`NaN` without
/// a profile).
fn deseasonalized(
    profiles: &[Option<ProfileBaseline>],
    regimes: &RegimeOffsets,
    frame: &Frame,
) -> Vec<f64> {
    frame
        .residuals
        .iter()
        .zip(profiles)
        .enumerate()
        .map(|(i, (&r, p))| {
            let r = r - regimes.offset(frame.regime, i);
            p.as_ref().map_or(f64::NAN, |p| p.residual(frame.time, r))
        })
        .collect()
}

/// Measured inflow minus the consumption the multipliers explain (`NaN` when not measured).
pub(super) fn excess(multipliers: &[f64], frame: &Frame) -> f64 {
    let explained: f64 = multipliers
        .iter()
        .zip(&frame.nominal)
        .map(|(m, n)| m * n)
        .sum();
    frame.inflow.map_or(f64::NAN, |q| q - explained)
}

/// Least-squares multipliers per demand group from the training flow balance, shrunk towards
/// the common ratio (a group that never varies on its own cannot be told apart).
pub(super) fn fit_multipliers(training: &[Frame]) -> Option<Vec<f64>> {
    let metered: Vec<&Frame> = training.iter().filter(|f| f.inflow.is_some()).collect();
    if metered.len() * 2 < training.len().max(1) {
        return None;
    }
    let groups = metered.first()?.nominal.len();
    let total: f64 = metered.iter().map(|f| f.nominal.iter().sum::<f64>()).sum();
    if total <= 0.0 {
        return None;
    }
    let ratio = metered.iter().filter_map(|f| f.inflow).sum::<f64>() / total;
    let mut normal = nalgebra::DMatrix::<f64>::zeros(groups, groups);
    let mut rhs = nalgebra::DVector::<f64>::zeros(groups);
    for f in &metered {
        let q = f.inflow.unwrap_or(0.0);
        for a in 0..groups {
            rhs[a] += f.nominal[a] * q;
            for b in 0..groups {
                normal[(a, b)] += f.nominal[a] * f.nominal[b];
            }
        }
    }
    // Ridge towards the common ratio with the weight of 1 % of the largest group's energy.
    let ridge = 0.01 * (0..groups).map(|g| normal[(g, g)]).fold(0.0, f64::max);
    for g in 0..groups {
        normal[(g, g)] += ridge;
        rhs[g] += ridge * ratio;
    }
    let solution = normal.cholesky()?.solve(&rhs);
    Some(solution.iter().map(|m| m.max(0.0)).collect())
}

pub(super) fn fit(config: &WatchConfig, training: &[Frame]) -> Result<Fitted, DetectError> {
    const MIN_BLOCKS: usize = 8;
    let multipliers = fit_multipliers(training);
    // A time-of-day baseline needs several days: learned on one, it is that day's noise.
    let span = match (training.first(), training.last()) {
        (Some(a), Some(b)) => b.time - a.time,
        _ => 0,
    };
    let bin_ms = if span >= PROFILE_MIN_TRAINING_MS {
        config.profile_bin_ms
    } else {
        DAY_MS
    };
    let width = training.first().map_or(0, |f| f.residuals.len());
    // Trained on less than about three days, a regime was seen in one stretch of one day: its
    // offset cannot be told from those hours' (on the shared examples, one day of training,
    // it added a false alarm).
    let learns_regimes = span >= PROFILE_MIN_TRAINING_MS;
    // The regimes are fitted first: while no leak changes when the pumps run, they switch at
    // nearly the same hours every day, and what a pump's regime does to a residual must stay
    // with the regime when a leak moves its hours.
    let mut regimes = RegimeOffsets::default();
    if learns_regimes {
        let raw: Vec<(u64, Vec<f64>)> = training
            .iter()
            .map(|f| (f.regime, f.residuals.clone()))
            .collect();
        regimes = RegimeOffsets::fit(&raw);
    }
    let rounds = if learns_regimes { REGIME_ROUNDS } else { 1 };
    let no_offsets = RegimeOffsets::default();
    let mut profiles = Vec::new();
    for round in 0..rounds {
        profiles = (0..width)
            .map(|i| {
                let series: Vec<(i64, f64)> = training
                    .iter()
                    .map(|f| (f.time, f.residuals[i] - regimes.offset(f.regime, i)))
                    .collect();
                ProfileBaseline::fit(DAY_MS, bin_ms, &series).ok()
            })
            .collect();
        if round + 1 < rounds {
            let without_profiles: Vec<(u64, Vec<f64>)> = training
                .iter()
                .map(|f| (f.regime, deseasonalized(&profiles, &no_offsets, f)))
                .collect();
            regimes = RegimeOffsets::fit(&without_profiles);
        }
    }
    let mut fitted = Fitted {
        multipliers,
        profiles,
        regimes,
        sigmas: Vec::new(),
        training_blocks: Vec::new(),
        balance: None,
        step_sigmas: Vec::new(),
        training_steps: Vec::new(),
        observation_correlation: None,
    };
    let kept: Vec<Kept> = training
        .iter()
        .map(|f| Kept {
            time: f.time,
            components: components(&fitted, f),
            raw: Vec::new(),
        })
        .collect();
    let start = kept.first().map_or(0, |k| k.time);
    let blocks: Vec<Vec<&Kept>> = kept
        .chunk_by(|a, b| (a.time - start) / config.block_ms == (b.time - start) / config.block_ms)
        .map(|b| b.iter().collect())
        .collect();
    if blocks.len() < MIN_BLOCKS {
        return Err(DetectError::TooFewSamples {
            needed: MIN_BLOCKS,
            got: blocks.len(),
        });
    }
    let ones = vec![1.0; kept.first().map_or(0, |k| k.components.len())];
    let raw: Vec<Vec<f64>> = blocks.iter().map(|b| block_means(b, &ones)).collect();
    fitted.sigmas = column_scales(&raw, ones.len(), config.min_sigma);
    fitted.training_blocks = standardized(&raw, &fitted.sigmas, config.clip);
    fitted.observation_correlation = correlation(
        &fitted.training_blocks,
        usize::from(fitted.multipliers.is_some()),
        config.signature_noise_shrinkage,
    );
    let mut window: VecDeque<Kept> = VecDeque::with_capacity(kept.len());
    let mut steps: Vec<Vec<f64>> = Vec::new();
    for k in &kept {
        window.push_back(k.clone());
        steps.extend(step_change(&window, k.time, config));
    }
    fitted.step_sigmas = column_scales(&steps, ones.len(), config.min_sigma);
    fitted.training_steps = standardized(&steps, &fitted.step_sigmas, config.clip);
    if fitted.multipliers.is_some() {
        let excess: Vec<f64> = fitted.training_blocks.iter().map(|b| b[0]).collect();
        fitted.balance = Some(Cusum::fit(
            CusumConfig {
                rearm_samples: 0,
                ..CusumConfig::default()
            },
            &excess,
        )?);
    }
    Ok(fitted)
}

/// The robust scale (at least `min_sigma`) of each of the `width` columns of `rows` (`NaN`
/// where a column has too few values).
fn column_scales(rows: &[Vec<f64>], width: usize, min_sigma: f64) -> Vec<f64> {
    (0..width)
        .map(|i| {
            let column: Vec<f64> = rows.iter().map(|row| row[i]).collect();
            robust_fit(&column, 2, min_sigma).map_or(f64::NAN, |r| r.scale)
        })
        .collect()
}

/// `rows` divided by `scales` column by column, clipped to `±clip`.
fn standardized(rows: &[Vec<f64>], scales: &[f64], clip: f64) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(scales)
                .map(|(x, s)| (x / s).clamp(-clip, clip))
                .collect()
        })
        .collect()
}
