//! Leak signatures: the direction a leak at each junction moves the standardized components,
//! projections on them, and the hourly step of every component.

use std::collections::VecDeque;

use nalgebra::{DMatrix, DVector};

use super::{Kept, WatchConfig};
use crate::detect::stats::median;

/// `a . u` over the finite entries of `u`.
pub(super) fn project(a: &[f64], u: &[f64]) -> f64 {
    a.iter()
        .zip(u)
        .filter(|(_, x)| x.is_finite())
        .map(|(a, x)| a * x)
        .sum()
}

/// The unit vector along which a leak at each junction moves the components standardized by
/// `sigmas` (the flow balance first, one for one, when `metered`).
pub(super) fn leak_directions(
    responses: &[Vec<f64>],
    metered: bool,
    sigmas: &[f64],
) -> Vec<Vec<f64>> {
    responses
        .iter()
        .map(|response| {
            let unscaled = metered
                .then_some(1.0)
                .into_iter()
                .chain(response.iter().copied());
            let mut a: Vec<f64> = unscaled
                .zip(sigmas)
                .map(|(x, s)| {
                    if s.is_finite() && x.is_finite() {
                        x / s
                    } else {
                        0.0
                    }
                })
                .collect();
            let norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                a.iter_mut().for_each(|x| *x /= norm);
            }
            a
        })
        .collect()
}

/// The direction with the largest projection of `u` and that projection.
pub(super) fn largest_projection(directions: &[Vec<f64>], u: &[f64]) -> (usize, f64) {
    directions
        .iter()
        .enumerate()
        .map(|(j, a)| (j, project(a, u)))
        .fold(
            (0, f64::NEG_INFINITY),
            |best, p| if p.1 > best.1 { p } else { best },
        )
}

/// Median of each component over the kept periods in `[from, to)`, `None` when there are
/// fewer than `min_count`.
pub(super) fn window_median(
    kept: &VecDeque<Kept>,
    from: i64,
    to: i64,
    min_count: usize,
) -> Option<Vec<f64>> {
    let start = kept.partition_point(|k| k.time < from);
    let end = kept.partition_point(|k| k.time < to);
    if end < start + min_count.max(1) {
        return None;
    }
    let width = kept[start].components.len();
    Some(
        (0..width)
            .map(|i| {
                let values: Vec<f64> = kept.range(start..end).map(|k| k.components[i]).collect();
                median(&values).unwrap_or(f64::NAN)
            })
            .collect(),
    )
}

/// The step of every component at `now`: its median over the last step window minus its
/// median over the reference window before (`None` until both are mostly filled).
pub(super) fn step_change(
    kept: &VecDeque<Kept>,
    now: i64,
    config: &WatchConfig,
) -> Option<Vec<f64>> {
    let period = match (kept.len().checked_sub(2).map(|i| &kept[i]), kept.back()) {
        (Some(a), Some(b)) if b.time > a.time => b.time - a.time,
        _ => 300_000,
    };
    let split = now - config.step_window_ms + 1;
    let expected = |ms: i64| usize::try_from(ms / period / 2).unwrap_or(0);
    let after = window_median(kept, split, now + 1, expected(config.step_window_ms))?;
    let before = window_median(
        kept,
        split - config.step_reference_ms,
        split,
        expected(config.step_reference_ms),
    )?;
    Some(after.iter().zip(&before).map(|(a, b)| a - b).collect())
}

/// `directions` whitened by the covariance of the training `rows` (its off-diagonal entries
/// shrunk by the share `shrinkage`): `b = S^-1 a / sqrt(a' S^-1 a)`, so that `b . u` has
/// about unit variance on the training window (exactly without shrinkage) and a component
/// counts by what the correlated noise leaves of it (an hour's demand noise moves every
/// pressure sensor at once; a component a leak does not move still tells how much of that
/// noise the others carry). Components missing from a tenth of the training rows or more get
/// no weight. Returned unchanged when the covariance cannot be estimated
/// ([`shrunk_covariance`]).
pub(super) fn whitened(
    directions: Vec<Vec<f64>>,
    rows: &[Vec<f64>],
    shrinkage: f64,
) -> Vec<Vec<f64>> {
    let width = directions.first().map_or(0, Vec::len);
    let used = mostly_present(rows, 0..width);
    let Some(cholesky) = shrunk_covariance(rows, &used, shrinkage).and_then(|c| c.cholesky())
    else {
        return directions;
    };
    directions
        .into_iter()
        .map(|a| {
            let within = DVector::from_iterator(used.len(), used.iter().map(|&i| a[i]));
            let solved = cholesky.solve(&within);
            let norm = within.dot(&solved).max(0.0).sqrt();
            let mut b = vec![0.0; width];
            if norm > 0.0 {
                for (k, &i) in used.iter().enumerate() {
                    b[i] = solved[k] / norm;
                }
            }
            b
        })
        .collect()
}

/// The correlation of the observations (the components from `first` on) over the training
/// `rows`, its off-diagonal entries shrunk by the share `shrinkage`; observations missing from
/// a tenth of the rows or more are uncorrelated with the rest. `None` when it cannot be
/// estimated ([`shrunk_covariance`]).
pub(super) fn correlation(rows: &[Vec<f64>], first: usize, shrinkage: f64) -> Option<DMatrix<f64>> {
    let width = rows.first()?.len().checked_sub(first)?;
    let used = mostly_present(rows, first..first + width);
    let covariance = shrunk_covariance(rows, &used, shrinkage)?;
    let mut correlation = DMatrix::identity(width, width);
    for (a, &i) in used.iter().enumerate() {
        for (b, &j) in used.iter().enumerate() {
            let scale = (covariance[(a, a)] * covariance[(b, b)]).sqrt();
            if a != b && scale > 0.0 {
                correlation[(i - first, j - first)] = covariance[(a, b)] / scale;
            }
        }
    }
    Some(correlation)
}

/// The components of `candidates` that are finite in at least nine of ten `rows`.
fn mostly_present(rows: &[Vec<f64>], candidates: std::ops::Range<usize>) -> Vec<usize> {
    candidates
        .filter(|&i| rows.iter().filter(|r| r[i].is_finite()).count() * 10 >= rows.len() * 9)
        .collect()
}

/// The sample covariance of components `columns` over the `rows` where all of them are
/// finite, its off-diagonal entries shrunk by the share `shrinkage`; `None` with fewer such
/// rows than twice the components, or none, or a component that never varied.
fn shrunk_covariance(rows: &[Vec<f64>], columns: &[usize], shrinkage: f64) -> Option<DMatrix<f64>> {
    let complete: Vec<&Vec<f64>> = rows
        .iter()
        .filter(|r| columns.iter().all(|&i| r[i].is_finite()))
        .collect();
    let n = columns.len();
    if n == 0 || complete.len() < 2 * n {
        return None;
    }
    let mut centered = DMatrix::from_fn(complete.len(), n, |r, c| complete[r][columns[c]]);
    for mut column in centered.column_iter_mut() {
        let mean = column.mean();
        column.add_scalar_mut(-mean);
    }
    let mut covariance = centered.tr_mul(&centered) / (complete.len() - 1) as f64;
    if (0..n).any(|i| covariance[(i, i)] <= 0.0) {
        return None;
    }
    for a in 0..n {
        for b in 0..n {
            if a != b {
                covariance[(a, b)] *= 1.0 - shrinkage;
            }
        }
    }
    Some(covariance)
}
