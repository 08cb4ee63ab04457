//! Likelihood of failure per pipe over a horizon, with the factors behind it.

use super::fit::{Covariate, WeibullPh};
use super::{DataError, Dataset, Factor, PipeHistory};

/// Settings of [`WeibullPh::score`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOptions {
    /// The moment the horizon starts, as a decimal year; `None`: the end of the observation
    /// window. Breaks up to this moment count as previous breaks.
    pub as_of: Option<f64>,
    /// Horizon, years.
    pub horizon_years: f64,
    /// How many factors each pipe's explanation keeps.
    pub top_factors: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            as_of: None,
            horizon_years: 5.0,
            top_factors: 3,
        }
    }
}

/// One factor's share in a pipe's likelihood of failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// The factor.
    pub factor: Factor,
    /// The pipe's value of the factor, for people (`"CI"`, `"152 mm"`, `"87 years"`).
    pub value: String,
    /// The natural log of the factor's multiplier on the pipe's expected breaks over the
    /// horizon, against the network's mean pipe: `beta_j (x_j - mean x_j)` summed over the
    /// factor's covariates, and for age `ln(dH0(age) / dH0(mean age))`, `dH0` the baseline
    /// cumulative hazard over the horizon. Positive raises the risk.
    pub log_ratio: f64,
}

/// A pipe's likelihood of failure over the horizon and its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct PipeRisk {
    /// Pipe id.
    pub pipe_id: String,
    /// Age at the start of the horizon, years (negative when not yet laid).
    pub age_years: f64,
    /// Breaks recorded on the pipe up to the start of the horizon.
    pub previous_breaks: usize,
    /// Probability of at least one break over the horizon.
    pub probability: f64,
    /// Expected breaks over the horizon relative to the network's mean pipe (the exponential
    /// of the sum of all factors' `log_ratio`).
    pub relative_risk: f64,
    /// The factors with the largest `|log_ratio|`, largest first.
    pub factors: Vec<Contribution>,
}

impl WeibullPh {
    /// The likelihood of failure of every pipe of `data` over the horizon, most likely first
    /// (ties by pipe id). The covariates are held at their values at the start of the horizon,
    /// which is exact for the first break to come.
    pub fn score(
        &self,
        data: &Dataset,
        options: &ScoreOptions,
    ) -> Result<Vec<PipeRisk>, DataError> {
        let uses_twin = self.coefficients.iter().any(|c| {
            matches!(
                c.covariate,
                Covariate::MeanPressure | Covariate::MaxPressure | Covariate::Transients
            )
        });
        if uses_twin && !data.has_twin_stats {
            return Err(DataError::NoTwinStats);
        }
        let as_of = options.as_of.unwrap_or_else(|| data.window.end().end());
        let horizon = options.horizon_years;
        let window_added = |t: f64| {
            self.baseline_cumulative_hazard(t + horizon) - self.baseline_cumulative_hazard(t)
        };
        let pipes: Vec<(&PipeHistory, f64, usize, Vec<f64>)> = data
            .pipes
            .iter()
            .map(|pipe| {
                let age = as_of - f64::from(pipe.asset.install_year);
                let previous = pipe.breaks.iter().filter(|&&b| b <= as_of).count();
                let x = self
                    .coefficients
                    .iter()
                    .map(|c| c.covariate.value(pipe, previous))
                    .collect();
                (pipe, age, previous, x)
            })
            .collect();
        let count = pipes.len().max(1) as f64;
        let mean_age = pipes.iter().map(|p| p.1.max(0.0)).sum::<f64>() / count;
        let mean_x: Vec<f64> = (0..self.coefficients.len())
            .map(|j| pipes.iter().map(|p| p.3[j]).sum::<f64>() / count)
            .collect();
        let reference = window_added(mean_age).max(f64::MIN_POSITIVE);

        let mut factors_in_model: Vec<Factor> = self
            .coefficients
            .iter()
            .map(|c| c.covariate.factor())
            .collect();
        factors_in_model.dedup();

        let mut risks: Vec<PipeRisk> = pipes
            .into_iter()
            .map(|(pipe, age, previous, x)| {
                let baseline = window_added(age).max(f64::MIN_POSITIVE);
                let eta: f64 = self
                    .coefficients
                    .iter()
                    .zip(&x)
                    .map(|(c, x)| c.estimate.value * x)
                    .sum();
                let probability = -(-window_added(age) * eta.exp()).exp_m1();
                let mut factors = vec![Contribution {
                    factor: Factor::Age,
                    value: describe(Factor::Age, pipe, age, previous),
                    log_ratio: (baseline / reference).ln(),
                }];
                for &factor in &factors_in_model {
                    let log_ratio = self
                        .coefficients
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.covariate.factor() == factor)
                        .map(|(j, c)| c.estimate.value * (x[j] - mean_x[j]))
                        .sum();
                    factors.push(Contribution {
                        factor,
                        value: describe(factor, pipe, age, previous),
                        log_ratio,
                    });
                }
                let relative_risk = factors.iter().map(|f| f.log_ratio).sum::<f64>().exp();
                factors.sort_by(|a, b| {
                    b.log_ratio
                        .abs()
                        .total_cmp(&a.log_ratio.abs())
                        .then(a.factor.cmp(&b.factor))
                });
                factors.truncate(options.top_factors);
                PipeRisk {
                    pipe_id: pipe.asset.id.clone(),
                    age_years: age,
                    previous_breaks: previous,
                    probability,
                    relative_risk,
                    factors,
                }
            })
            .collect();
        risks.sort_by(|a, b| {
            b.probability
                .total_cmp(&a.probability)
                .then_with(|| a.pipe_id.cmp(&b.pipe_id))
        });
        Ok(risks)
    }
}

/// The pipe's value of a factor, for people.
fn describe(factor: Factor, pipe: &PipeHistory, age: f64, previous: usize) -> String {
    let stats = pipe.stats.as_ref();
    match factor {
        Factor::Age => format!("{age:.0} years"),
        Factor::Material => pipe.asset.material.clone(),
        Factor::Diameter => format!("{:.0} mm", pipe.asset.diameter_mm),
        Factor::Length => format!("{:.0} m", pipe.asset.length_m),
        Factor::PreviousBreaks => format!("{previous} breaks"),
        Factor::MeanPressure => {
            stats.map_or_else(String::new, |s| format!("{:.1} m", s.mean_pressure_m))
        }
        Factor::MaxPressure => {
            stats.map_or_else(String::new, |s| format!("{:.1} m", s.max_pressure_m))
        }
        Factor::Transients => stats.map_or_else(String::new, |s| {
            format!("{:.2} per year", s.transients_per_year)
        }),
    }
}
