//! Regularized weighted least squares (one Gauss-Newton step around the solved period) of
//! demand-multiplier corrections and leak outflows.

use nalgebra::{DMatrix, DVector};

use super::{ObservationNoise, Sensitivity};

/// Priors of the estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateConfig {
    /// Standard deviation of a demand-multiplier correction around the nominal model (relative).
    pub multiplier_prior_sd: f64,
    /// Standard deviation of a leak outflow around zero (network flow unit): a weak prior that
    /// keeps the system solvable when a candidate is unobservable.
    pub leak_prior_sd: f64,
}

impl Default for EstimateConfig {
    fn default() -> Self {
        Self {
            multiplier_prior_sd: 0.1,
            leak_prior_sd: 1.0e6,
        }
    }
}

/// What the estimate found.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Relative correction of each demand group's multiplier (`0.05` = 5 % more consumption).
    pub multiplier_corrections: Vec<f64>,
    /// Leak outflow at each candidate junction kept in the model (junction index, flow >= 0).
    pub leaks: Vec<(usize, f64)>,
    /// Weighted sum of squared residuals left, plus the prior terms.
    pub cost: f64,
    /// Observations used.
    pub observations_used: usize,
}

/// Why an estimate could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimateError {
    /// Residuals or standard deviations do not match the observations.
    #[error("{got} {what} for {expected} observations")]
    Shape {
        /// `residuals` or `standard deviations`.
        what: &'static str,
        /// Values given.
        got: usize,
        /// Observations.
        expected: usize,
    },
    /// The normal equations are singular even with the priors (non-positive prior).
    #[error("the normal equations are singular")]
    Singular,
}

/// Estimates, from `residuals` (measured - simulated per observation; `NaN` = not observed)
/// with their `noise` (standard deviations and correlation), the multiplier correction of
/// each demand group (the consumption it adds per unit correction: `groups[g][j]` at junction
/// `j`) and the outflow of a leak at each of `candidates` (junction indices). Leak outflows are kept non-negative
/// (active set: the most negative one is dropped and the rest solved again).
pub fn estimate(
    sensitivity: &Sensitivity,
    residuals: &[f64],
    noise: &ObservationNoise,
    groups: &[Vec<f64>],
    candidates: &[usize],
    config: &EstimateConfig,
) -> Result<Estimate, EstimateError> {
    let rows = sensitivity.observations().len();
    for (what, got) in [
        ("residuals", residuals.len()),
        ("standard deviations", noise.sigmas.len()),
    ] {
        if got != rows {
            return Err(EstimateError::Shape {
                what,
                got,
                expected: rows,
            });
        }
    }
    let used = noise.usable(residuals);
    let group_columns: Vec<Vec<f64>> = groups.iter().map(|g| sensitivity.response_to(g)).collect();
    // The multiplier columns, every candidate's column and the residuals (last), standardized
    // and whitened once: the active set below only picks columns from it.
    let all = groups.len() + candidates.len();
    let system = noise.whiten(
        &used,
        DMatrix::from_fn(used.len(), all + 1, |r, k| {
            let i = used[r];
            let value = if k < groups.len() {
                group_columns[k][i]
            } else if k < all {
                sensitivity.get(i, candidates[k - groups.len()])
            } else {
                residuals[i]
            };
            value / noise.sigmas[i]
        }),
    );
    let rhs: DVector<f64> = system.column(all).into_owned();
    // Positions in `candidates` of the leaks still in the model.
    let mut active: Vec<usize> = (0..candidates.len()).collect();
    loop {
        let unknowns = groups.len() + active.len();
        let columns: Vec<usize> = (0..groups.len())
            .chain(active.iter().map(|&p| groups.len() + p))
            .collect();
        let jacobian = system.select_columns(&columns);
        let mut normal = jacobian.transpose() * &jacobian;
        for k in 0..unknowns {
            let sd = if k < groups.len() {
                config.multiplier_prior_sd
            } else {
                config.leak_prior_sd
            };
            normal[(k, k)] += 1.0 / (sd * sd);
        }
        let gradient = jacobian.transpose() * &rhs;
        let theta = normal
            .cholesky()
            .ok_or(EstimateError::Singular)?
            .solve(&gradient);
        let most_negative = (groups.len()..unknowns)
            .filter(|&k| theta[k] < 0.0)
            .min_by(|&a, &b| theta[a].total_cmp(&theta[b]));
        if let Some(k) = most_negative {
            active.remove(k - groups.len());
            continue;
        }
        let misfit = (&rhs - &jacobian * &theta).norm_squared();
        let prior: f64 = (0..unknowns)
            .map(|k| {
                let sd = if k < groups.len() {
                    config.multiplier_prior_sd
                } else {
                    config.leak_prior_sd
                };
                (theta[k] / sd).powi(2)
            })
            .sum();
        return Ok(Estimate {
            multiplier_corrections: (0..groups.len()).map(|k| theta[k]).collect(),
            leaks: active
                .iter()
                .enumerate()
                .map(|(i, &p)| (candidates[p], theta[groups.len() + i]))
                .collect(),
            cost: misfit + prior,
            observations_used: used.len(),
        });
    }
}
