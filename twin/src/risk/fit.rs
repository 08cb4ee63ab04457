//! Maximum-likelihood fit of the Weibull proportional-hazards model.
//!
//! Internally the cumulative hazard of an interval `(s, u]` is written
//! `exp(b0 + beta_s . z) ((u / t0)^k - (s / t0)^k)` with `k = exp(a)`, standardised covariates
//! `z` and `t0` the geometric mean age at a break, which keeps the Newton iterations well
//! conditioned; the estimates and their covariance are mapped back to `k`, `lambda` and `beta`
//! per raw covariate unit at the end.

use std::collections::BTreeMap;

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use thiserror::Error;

use super::{Dataset, Factor, PipeHistory};

/// A covariate of the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Covariate {
    /// 1 when the pipe is of this material, else 0 (against the reference material).
    Material(String),
    /// `ln(diameter in mm)`.
    LogDiameter,
    /// `ln(length in m)`.
    LogLength,
    /// `ln(1 + n)`, `n` the breaks recorded on the pipe before the time in question.
    PreviousBreaks,
    /// Mean pressure, m.
    MeanPressure,
    /// Maximum pressure, m.
    MaxPressure,
    /// Transients per year.
    Transients,
}

impl Covariate {
    /// The factor this covariate belongs to.
    pub fn factor(&self) -> Factor {
        match self {
            Covariate::Material(_) => Factor::Material,
            Covariate::LogDiameter => Factor::Diameter,
            Covariate::LogLength => Factor::Length,
            Covariate::PreviousBreaks => Factor::PreviousBreaks,
            Covariate::MeanPressure => Factor::MeanPressure,
            Covariate::MaxPressure => Factor::MaxPressure,
            Covariate::Transients => Factor::Transients,
        }
    }

    /// The covariate's name in reports, e.g. `material=CI` or `ln_diameter_mm`.
    pub fn name(&self) -> String {
        match self {
            Covariate::Material(m) => format!("material={m}"),
            Covariate::LogDiameter => "ln_diameter_mm".into(),
            Covariate::LogLength => "ln_length_m".into(),
            Covariate::PreviousBreaks => "ln_1p_previous_breaks".into(),
            Covariate::MeanPressure => "mean_pressure_m".into(),
            Covariate::MaxPressure => "max_pressure_m".into(),
            Covariate::Transients => "transients_per_year".into(),
        }
    }

    /// The covariate's value for `pipe` after `previous` breaks. Pressure and transient
    /// covariates are NaN for a pipe without twin statistics (callers check first).
    pub(super) fn value(&self, pipe: &PipeHistory, previous: usize) -> f64 {
        let stats = pipe.stats.as_ref();
        match self {
            Covariate::Material(m) => f64::from(u8::from(pipe.asset.material == *m)),
            Covariate::LogDiameter => pipe.asset.diameter_mm.ln(),
            Covariate::LogLength => pipe.asset.length_m.ln(),
            Covariate::PreviousBreaks => (previous as f64).ln_1p(),
            Covariate::MeanPressure => stats.map_or(f64::NAN, |s| s.mean_pressure_m),
            Covariate::MaxPressure => stats.map_or(f64::NAN, |s| s.max_pressure_m),
            Covariate::Transients => stats.map_or(f64::NAN, |s| s.transients_per_year),
        }
    }
}

/// A parameter estimate with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// Its standard error (from the observed information; NaN when not estimated).
    pub std_error: f64,
}

/// A covariate's coefficient, per raw unit of the covariate.
#[derive(Debug, Clone, PartialEq)]
pub struct Coefficient {
    /// The covariate.
    pub covariate: Covariate,
    /// `beta` and its standard error.
    pub estimate: Estimate,
}

/// A Weibull proportional-hazards model of pipe breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct WeibullPh {
    /// Shape `k` (above 1: the break rate rises with age).
    pub shape: Estimate,
    /// Scale `lambda`, years.
    pub scale: Estimate,
    /// Coefficients `beta`.
    pub coefficients: Vec<Coefficient>,
    /// The material the material covariates compare against, if material is a factor.
    pub reference_material: Option<String>,
    /// Log-likelihood at the estimate (0 for a model given by its parameters).
    pub log_likelihood: f64,
    /// Newton iterations taken.
    pub iterations: usize,
    /// Pipes in service during the observation window.
    pub pipes: usize,
    /// Breaks in the fit.
    pub breaks: usize,
    /// Pipe-years under observation.
    pub pipe_years: f64,
}

impl WeibullPh {
    /// A model given by its parameters (for instance calibrated elsewhere), with no standard
    /// errors.
    pub fn with_parameters(
        shape: f64,
        scale: f64,
        coefficients: Vec<(Covariate, f64)>,
        reference_material: Option<String>,
    ) -> Self {
        let known = |value| Estimate {
            value,
            std_error: f64::NAN,
        };
        Self {
            shape: known(shape),
            scale: known(scale),
            coefficients: coefficients
                .into_iter()
                .map(|(covariate, beta)| Coefficient {
                    covariate,
                    estimate: known(beta),
                })
                .collect(),
            reference_material,
            log_likelihood: 0.0,
            iterations: 0,
            pipes: 0,
            breaks: 0,
            pipe_years: 0.0,
        }
    }

    /// The baseline cumulative hazard `(t / lambda)^k` at age `t >= 0`.
    pub fn baseline_cumulative_hazard(&self, t: f64) -> f64 {
        (t.max(0.0) / self.scale.value).powf(self.shape.value)
    }
}

/// Settings of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Factors left out of the model ([`Factor::Age`], the time axis, cannot be left out and
    /// is ignored here). Pressure and transients are only used when the data has twin
    /// statistics.
    pub exclude: Vec<Factor>,
    /// Most Newton iterations.
    pub max_iterations: usize,
    /// Convergence: stop when half the Newton decrement `g' I^-1 g / 2` (the predicted
    /// log-likelihood gain) falls below this.
    pub tolerance: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            exclude: Vec::new(),
            max_iterations: 100,
            tolerance: 1e-10,
        }
    }
}

/// Why the model could not be fitted.
#[derive(Debug, Error, PartialEq)]
pub enum FitError {
    /// No pipe was in service during the window.
    #[error("no pipe was in service during the observation window")]
    NoExposure,
    /// No break in the window.
    #[error("no breaks were recorded on the {pipes} pipe(s) in service: a failure model needs breaks to fit")]
    NoBreaks {
        /// Pipes in service.
        pipes: usize,
    },
    /// A covariate with the same value everywhere.
    #[error("covariate `{covariate}` has the same value on every pipe, so its effect cannot be estimated; exclude its factor")]
    Constant {
        /// Covariate name.
        covariate: String,
    },
    /// Covariates that are linear combinations of each other.
    #[error("covariates [{}] are collinear (one is a linear combination of the others), so their effects cannot be told apart; exclude one of their factors", .covariates.join(", "))]
    Collinear {
        /// Names of the covariates involved.
        covariates: Vec<String>,
    },
    /// Every break happened at the lowest (or highest) value of a covariate: the likelihood
    /// keeps rising as its coefficient goes to minus (plus) infinity.
    #[error("every break happened at the {side} value of covariate `{covariate}`, so its effect is unbounded and cannot be estimated; exclude its factor or merge materials")]
    Separation {
        /// Covariate name.
        covariate: String,
        /// `lowest` or `highest`.
        side: &'static str,
    },
    /// Newton-Raphson did not converge.
    #[error("the fit did not converge after {iterations} iteration(s): {reason}")]
    NotConverged {
        /// Iterations taken.
        iterations: usize,
        /// What went wrong.
        reason: String,
    },
    /// The observed information is singular at the estimate.
    #[error("the observed information matrix is singular at the estimate: the data cannot identify the model")]
    Singular,
}

/// One interval `(start, end]` of a pipe's observed life over which its covariates are
/// constant, ages in years, ending in a break or not.
struct Interval {
    start: f64,
    end: f64,
    event: bool,
}

/// The data of the fit: intervals and their standardised covariates (row-major).
struct Design {
    intervals: Vec<Interval>,
    z: Vec<f64>,
    p: usize,
    /// Reference age, years.
    t0: f64,
    events: usize,
}

/// Fits the model to `data` by maximum likelihood.
pub fn fit(data: &Dataset, options: &FitOptions) -> Result<WeibullPh, FitError> {
    let window_start = data.window.start().start();
    let window_end = data.window.end().end();
    let in_service: Vec<&PipeHistory> = data
        .pipes
        .iter()
        .filter(|p| window_end - f64::from(p.asset.install_year) > 0.0)
        .collect();
    if in_service.is_empty() {
        return Err(FitError::NoExposure);
    }
    let (covariates, reference_material) = choose_covariates(data, &in_service, options);

    // Split each pipe's observed life at its breaks.
    let p = covariates.len();
    let mut intervals = Vec::new();
    let mut raw = Vec::new();
    for pipe in &in_service {
        let install = f64::from(pipe.asset.install_year);
        let mut start = (window_start - install).max(0.0);
        for previous in 0..=pipe.breaks.len() {
            let (end, event) = match pipe.breaks.get(previous) {
                Some(&year) => (year - install, true),
                None => (window_end - install, false),
            };
            intervals.push(Interval { start, end, event });
            raw.extend(covariates.iter().map(|c| c.value(pipe, previous)));
            start = end;
        }
    }
    let events = intervals.iter().filter(|i| i.event).count();
    if events == 0 {
        return Err(FitError::NoBreaks {
            pipes: in_service.len(),
        });
    }
    let (mean, sd) = check_and_standardise(&covariates, &intervals, &mut raw)?;
    let t0 = (intervals
        .iter()
        .filter(|i| i.event)
        .map(|i| i.end.ln())
        .sum::<f64>()
        / events as f64)
        .exp();
    let design = Design {
        intervals,
        z: raw,
        p,
        t0,
        events,
    };

    let (theta, iterations) = newton(&design, &covariates, options)?;
    let at = evaluate(&design, &theta);
    let information = -at.hessian;
    let covariance = information.cholesky().ok_or(FitError::Singular)?.inverse();

    // Back to raw covariate units: b0_raw = b0 - sum beta_j mean_j / sd_j, beta_j / sd_j.
    let n = p + 2;
    let mut jacobian = DMatrix::<f64>::identity(n, n);
    for j in 0..p {
        jacobian[(1, 2 + j)] = -mean[j] / sd[j];
        jacobian[(2 + j, 2 + j)] = 1.0 / sd[j];
    }
    let theta_raw = &jacobian * &theta;
    let cov_raw = &jacobian * covariance * jacobian.transpose();
    let k = theta_raw[0].exp();
    let ln_scale = t0.ln() - theta_raw[1] / k;
    let gradient = [theta_raw[1] / k, -1.0 / k];
    let var_ln_scale = gradient[0] * gradient[0] * cov_raw[(0, 0)]
        + 2.0 * gradient[0] * gradient[1] * cov_raw[(0, 1)]
        + gradient[1] * gradient[1] * cov_raw[(1, 1)];
    let scale = ln_scale.exp();
    let coefficients = covariates
        .into_iter()
        .enumerate()
        .map(|(j, covariate)| Coefficient {
            covariate,
            estimate: Estimate {
                value: theta_raw[2 + j],
                std_error: cov_raw[(2 + j, 2 + j)].sqrt(),
            },
        })
        .collect();
    Ok(WeibullPh {
        shape: Estimate {
            value: k,
            std_error: k * cov_raw[(0, 0)].sqrt(),
        },
        scale: Estimate {
            value: scale,
            std_error: scale * var_ln_scale.sqrt(),
        },
        coefficients,
        reference_material,
        log_likelihood: at.log_likelihood,
        iterations,
        pipes: in_service.len(),
        breaks: design.events,
        pipe_years: design.intervals.iter().map(|i| i.end - i.start).sum(),
    })
}

/// The covariates of the model and the reference material.
fn choose_covariates(
    data: &Dataset,
    pipes: &[&PipeHistory],
    options: &FitOptions,
) -> (Vec<Covariate>, Option<String>) {
    let wanted = |f: Factor| !options.exclude.contains(&f);
    let mut covariates = Vec::new();
    let mut reference = None;
    if wanted(Factor::Material) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for pipe in pipes {
            *counts.entry(pipe.asset.material.as_str()).or_default() += 1;
        }
        // The most common material (the first by name among equals) is the reference.
        let most = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(m, _)| m.to_string());
        covariates.extend(
            counts
                .keys()
                .filter(|m| Some(**m) != most.as_deref())
                .map(|m| Covariate::Material(m.to_string())),
        );
        reference = most;
    }
    let mut others = vec![
        (Factor::Diameter, Covariate::LogDiameter),
        (Factor::Length, Covariate::LogLength),
        (Factor::PreviousBreaks, Covariate::PreviousBreaks),
    ];
    if data.has_twin_stats {
        others.extend([
            (Factor::MeanPressure, Covariate::MeanPressure),
            (Factor::MaxPressure, Covariate::MaxPressure),
            (Factor::Transients, Covariate::Transients),
        ]);
    }
    covariates.extend(
        others
            .into_iter()
            .filter(|(f, _)| wanted(*f))
            .map(|(_, c)| c),
    );
    (covariates, reference)
}

/// Checks that each covariate varies, does not separate breaks from non-breaks and is not a
/// linear combination of the others; standardises `raw` in place and returns the means and
/// standard deviations.
fn check_and_standardise(
    covariates: &[Covariate],
    intervals: &[Interval],
    raw: &mut [f64],
) -> Result<(Vec<f64>, Vec<f64>), FitError> {
    let p = covariates.len();
    let rows = intervals.len();
    let mut mean = vec![0.0; p];
    let mut sd = vec![0.0; p];
    for (j, covariate) in covariates.iter().enumerate() {
        let column = || (0..rows).map(|r| raw[r * p + j]);
        let (lo, hi) = column().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let m = column().sum::<f64>() / rows as f64;
        let s = (column().map(|v| (v - m) * (v - m)).sum::<f64>() / rows as f64).sqrt();
        if s.is_nan() || s <= 1e-12 * m.abs().max(1.0) {
            return Err(FitError::Constant {
                covariate: covariate.name(),
            });
        }
        let at_events = || {
            intervals
                .iter()
                .enumerate()
                .filter(|(_, i)| i.event)
                .map(|(r, _)| raw[r * p + j])
        };
        for (side, bound) in [("lowest", lo), ("highest", hi)] {
            if at_events().all(|v| v == bound) {
                return Err(FitError::Separation {
                    covariate: covariate.name(),
                    side,
                });
            }
        }
        mean[j] = m;
        sd[j] = s;
    }
    for r in 0..rows {
        for j in 0..p {
            raw[r * p + j] = (raw[r * p + j] - mean[j]) / sd[j];
        }
    }
    if p > 1 {
        let z = DMatrix::from_row_slice(rows, p, raw);
        let correlation = z.transpose() * &z / rows as f64;
        let eigen = SymmetricEigen::new(correlation);
        let (smallest, &value) = eigen
            .eigenvalues
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &1.0));
        if value < 1e-8 {
            let vector = eigen.eigenvectors.column(smallest);
            return Err(FitError::Collinear {
                covariates: covariates
                    .iter()
                    .zip(vector.iter())
                    .filter(|(_, w)| w.abs() > 0.1)
                    .map(|(c, _)| c.name())
                    .collect(),
            });
        }
    }
    Ok((mean, sd))
}

/// Log-likelihood, gradient and Hessian in the internal parameters `(a, b0, beta_s)`.
struct Evaluation {
    log_likelihood: f64,
    gradient: DVector<f64>,
    hessian: DMatrix<f64>,
}

/// `((t/t0)^k, (t/t0)^k L, (t/t0)^k L^2)` with `L = ln(t/t0)`; zeros at `t = 0`.
fn powers(t: f64, t0: f64, k: f64) -> (f64, f64, f64) {
    if t <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let l = (t / t0).ln();
    let e = (k * l).exp();
    (e, e * l, e * l * l)
}

fn evaluate(design: &Design, theta: &DVector<f64>) -> Evaluation {
    let p = design.p;
    let n = p + 2;
    let a = theta[0];
    let k = a.exp();
    let ln_t0 = design.t0.ln();
    let mut log_likelihood = 0.0;
    let mut gradient = DVector::zeros(n);
    let mut hessian = DMatrix::zeros(n, n);
    // x = (1, z): the intercept's "covariate" first.
    let mut x = vec![1.0; p + 1];
    for (r, interval) in design.intervals.iter().enumerate() {
        x[1..].copy_from_slice(&design.z[r * p..(r + 1) * p]);
        let eta: f64 = x.iter().zip(theta.iter().skip(1)).map(|(x, b)| x * b).sum();
        let w = eta.exp();
        let (eu, eul, eul2) = powers(interval.end, design.t0, k);
        let (es, esl, esl2) = powers(interval.start, design.t0, k);
        let d = eu - es;
        let d1 = k * (eul - esl);
        let d2 = d1 + k * k * (eul2 - esl2);
        log_likelihood -= w * d;
        gradient[0] -= w * d1;
        hessian[(0, 0)] -= w * d2;
        if interval.event {
            let l = (interval.end / design.t0).ln();
            log_likelihood += a - ln_t0 + (k - 1.0) * l + eta;
            gradient[0] += 1.0 + k * l;
            hessian[(0, 0)] += k * l;
        }
        for (i, xi) in x.iter().enumerate() {
            if interval.event {
                gradient[1 + i] += xi;
            }
            gradient[1 + i] -= w * d * xi;
            hessian[(0, 1 + i)] -= w * d1 * xi;
            for (j, xj) in x.iter().enumerate().skip(i) {
                hessian[(1 + i, 1 + j)] -= w * d * xi * xj;
            }
        }
    }
    hessian.fill_lower_triangle_with_upper_triangle();
    Evaluation {
        log_likelihood,
        gradient,
        hessian,
    }
}

/// Newton-Raphson with step halving; returns the estimate and the iterations taken.
fn newton(
    design: &Design,
    covariates: &[Covariate],
    options: &FitOptions,
) -> Result<(DVector<f64>, usize), FitError> {
    let n = design.p + 2;
    // Start from a constant break rate: k = 1, b0 = ln(breaks / exposure in units of t0).
    let exposure: f64 = design
        .intervals
        .iter()
        .map(|i| (i.end - i.start) / design.t0)
        .sum();
    let mut theta = DVector::zeros(n);
    theta[1] = (design.events as f64 / exposure).ln();
    let mut current = evaluate(design, &theta);
    let fail = |iterations, reason: String| FitError::NotConverged { iterations, reason };
    for iteration in 1..=options.max_iterations {
        let step = solve_damped(-&current.hessian, &current.gradient).ok_or_else(|| {
            fail(
                iteration,
                "no ascent direction (Hessian not invertible)".into(),
            )
        })?;
        let decrement = current.gradient.dot(&step);
        if decrement / 2.0 < options.tolerance {
            return Ok((theta, iteration - 1));
        }
        let mut length = 1.0;
        loop {
            let candidate = &theta + &step * length;
            let next = evaluate(design, &candidate);
            if next.log_likelihood >= current.log_likelihood {
                theta = candidate;
                current = next;
                break;
            }
            length /= 2.0;
            if length < 1e-12 {
                return Err(fail(
                    iteration,
                    "step halving found no increase of the likelihood".into(),
                ));
            }
        }
        if let Some(j) = (0..design.p).find(|&j| theta[2 + j].abs() > 50.0) {
            return Err(fail(
                iteration,
                format!(
                    "the coefficient of `{}` diverges (its effect is not identifiable from these breaks)",
                    covariates[j].name()
                ),
            ));
        }
        if theta[0].abs() > 7.0 {
            return Err(fail(iteration, "the Weibull shape diverges".into()));
        }
    }
    Err(fail(
        options.max_iterations,
        "iteration limit reached".into(),
    ))
}

/// Solves `a x = b` for symmetric `a`, adding a growing multiple of the identity until `a` is
/// positive definite (Levenberg damping) so that `x` is an ascent direction.
fn solve_damped(a: DMatrix<f64>, b: &DVector<f64>) -> Option<DVector<f64>> {
    let scale = a.diagonal().iter().fold(1.0_f64, |m, v| m.max(v.abs()));
    let mut shift = 0.0;
    for _ in 0..30 {
        let mut shifted = a.clone();
        for i in 0..shifted.nrows() {
            shifted[(i, i)] += shift;
        }
        if let Some(cholesky) = shifted.cholesky() {
            return Some(cholesky.solve(b));
        }
        shift = if shift == 0.0 {
            1e-10 * scale
        } else {
            shift * 10.0
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    /// A small random design with events at random interval ends.
    fn design(rng: &mut Rng) -> Design {
        let p = 3;
        let mut intervals = Vec::new();
        let mut z = Vec::new();
        for _ in 0..60 {
            let start = rng.below(40) as f64;
            let end = start + 0.5 + rng.below(200) as f64 / 10.0;
            intervals.push(Interval {
                start,
                end,
                event: rng.below(3) == 0,
            });
            z.extend((0..p).map(|_| rng.below(2001) as f64 / 1000.0 - 1.0));
        }
        let events = intervals.iter().filter(|i| i.event).count();
        Design {
            intervals,
            z,
            p,
            t0: 25.0,
            events,
        }
    }

    #[test]
    fn gradient_and_hessian_match_finite_differences() {
        let mut rng = Rng::new(7);
        let design = design(&mut rng);
        let theta = DVector::from_vec(vec![0.4, -1.2, 0.3, -0.2, 0.5]);
        let at = evaluate(&design, &theta);
        let h = 1e-6;
        for i in 0..theta.len() {
            let mut up = theta.clone();
            let mut down = theta.clone();
            up[i] += h;
            down[i] -= h;
            let (eu, ed) = (evaluate(&design, &up), evaluate(&design, &down));
            let numeric = (eu.log_likelihood - ed.log_likelihood) / (2.0 * h);
            assert!(
                (numeric - at.gradient[i]).abs() < 1e-5 * (1.0 + numeric.abs()),
                "gradient {i}: analytic {} numeric {numeric}",
                at.gradient[i]
            );
            for j in 0..theta.len() {
                let numeric = (eu.gradient[j] - ed.gradient[j]) / (2.0 * h);
                assert!(
                    (numeric - at.hessian[(i, j)]).abs() < 1e-5 * (1.0 + numeric.abs()),
                    "hessian ({i},{j}): analytic {} numeric {numeric}",
                    at.hessian[(i, j)]
                );
            }
        }
    }

    #[test]
    fn damped_solve_gives_an_ascent_direction_for_an_indefinite_matrix() {
        let a = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, -2.0]);
        let b = DVector::from_vec(vec![1.0, 1.0]);
        let x = solve_damped(a, &b).expect("damping makes it positive definite");
        assert!(b.dot(&x) > 0.0);
    }
}
