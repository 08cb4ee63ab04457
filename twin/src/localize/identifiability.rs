//! Identifiability of leak locations: with given sensors, noise and model error, which
//! junctions could a leak at junction `j` be mistaken for, whatever the localizer?
//!
//! A leak of size `q` at `j` moves the observations by `q s_j` (a column of [`Signatures`]:
//! the linearization's [`Sensitivity`], or the solver's response to a leak of that size, which
//! large leaks need). A localizer that knows the model can only tell `j` from `k` if no leak at
//! `k` (any non-negative size `a`), together with a uniform change of consumption (size `b`,
//! free: the estimation fits a demand multiplier, so that part of any signature is explained
//! away), reproduces `q s_j` to within the noise. The separation
//!
//! ```text
//! lambda_jk = min_{a >= 0, b} (q s_j - a s_k - b u)^T C_j^-1 (q s_j - a s_k - b u)
//! ```
//!
//! is the noiseless misfit in units of the noise (`u`: the response to one unit of extra
//! consumption spread like the consumption; `C_j`: the covariance of the signature's error,
//! [`noise_covariance`] plus the model error of `j`'s own signature). Between two simple
//! Gaussian hypotheses `lambda` apart, the likelier one is the wrong one with probability
//! `Phi(-sqrt(lambda) / 2)`, so `lambda_jk < 4` means `k` wins at least one time in six:
//! indistinguishable. A leak at `j` is locatable within `radius_m` when every indistinguishable
//! `k` lies within that pipe distance of `j`; [`ideal_success`] simulates the chance that the
//! least-misfit junction lies within it. The analysis is pure and synchronous: it takes one
//! period's signatures and answers for every junction.

use nalgebra::{DMatrix, DVector};

use super::Localizer;
use crate::estimate::Sensitivity;

/// Default separation below which two leak places count as indistinguishable: the wrong one
/// is likelier with probability `Phi(-1)` = 16 % or more.
pub const INDISTINGUISHABLE_BELOW: f64 = 4.0;

/// What blurs a leak signature (the change of the observations between a window after the
/// leak began and the same hours before it), in the network's units.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseModel {
    /// Standard deviation of one reading, per observation (sensor noise and rounding).
    pub reading_sd: Vec<f64>,
    /// Readings per hour of each observation.
    pub readings_per_hour: f64,
    /// Relative standard deviation of each junction's consumption, drawn independently per
    /// junction and hour.
    pub demand_noise: f64,
    /// Each junction's consumption in the period (network flow unit).
    pub consumption: Vec<f64>,
    /// Hours averaged on each side of the signature.
    pub window_hours: f64,
    /// Relative error of a modelled leak signature per observation (the nominal model's
    /// roughness and demands against the real network's, and the linearization): observation
    /// `i` of `q s_j` is off by about `model_error[i] * |q s_j[i]|`.
    pub model_error: Vec<f64>,
}

/// How locatable a leak at one junction is.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The leak's junction.
    pub junction: usize,
    /// Junctions farther than the radius that it cannot be told from: (junction, separation,
    /// pipe distance in m; infinite when not connected by pipes).
    pub far_confusers: Vec<(usize, f64, f64)>,
    /// Indistinguishable junctions within the radius, itself included.
    pub near_confusers: usize,
    /// Union bound of the probability that a junction beyond the radius fits the signature
    /// better than the leak's own (0..1): one minus it bounds from below the chance that the
    /// likeliest junction lies within the radius.
    pub confusion: f64,
    /// The largest probability that one junction beyond the radius fits better than the
    /// leak's own: one minus it approximates that chance from above (not a strict bound:
    /// junctions within the radius can beat a far one that beats the leak's own; compare
    /// [`ideal_success`], which simulates it).
    pub worst_confusion: f64,
    /// Every indistinguishable junction lies within the radius.
    pub locatable: bool,
}

/// The covariance of the signature's error from sensor noise and hourly demand noise (through
/// the linear signatures `linear`: each junction's noise is small): both
/// windows (after and before) average `window_hours` of independent hours, so each source's
/// variance is halved per doubling of the window and doubled by the difference.
pub fn noise_covariance(linear: &Signatures, noise: &NoiseModel) -> DMatrix<f64> {
    let m = linear.observations();
    let n = linear.junctions();
    let hours = noise.window_hours.max(f64::MIN_POSITIVE);
    let readings = (noise.readings_per_hour * hours).max(1.0);
    // S diag(sd_j^2) S^T: each junction's demand noise seen by every observation.
    let scaled = DMatrix::from_fn(m, n, |i, j| {
        let sd = noise.demand_noise * noise.consumption.get(j).copied().unwrap_or(0.0).abs();
        linear.get(i, j) * sd
    });
    let mut covariance = (&scaled * scaled.transpose()) * (2.0 / hours);
    for i in 0..m {
        let sd = noise.reading_sd.get(i).copied().unwrap_or(0.0);
        covariance[(i, i)] += 2.0 * sd * sd / readings;
    }
    covariance
}

/// The signature of a unit leak at every junction and of a unit of extra consumption spread
/// like the consumption, observations x junctions.
#[derive(Debug, Clone, PartialEq)]
pub struct Signatures {
    matrix: DMatrix<f64>,
    uniform: DVector<f64>,
}

impl Signatures {
    /// The linearization's signatures: `sensitivity`'s columns, and its response to
    /// `consumption` scaled to one unit in all.
    pub fn linear(sensitivity: &Sensitivity, consumption: &[f64]) -> Self {
        let m = sensitivity.observations().len();
        let total: f64 = consumption.iter().sum();
        let uniform = if total > 0.0 {
            let share: Vec<f64> = consumption.iter().map(|d| d / total).collect();
            DVector::from_vec(sensitivity.response_to(&share))
        } else {
            DVector::zeros(m)
        };
        Self {
            matrix: DMatrix::from_fn(m, sensitivity.junctions(), |i, j| sensitivity.get(i, j)),
            uniform,
        }
    }

    /// Signatures given junction by junction (e.g. the solver's response to a leak of the
    /// size studied at each junction, divided by that size: the linearization is off for
    /// large leaks that start or reverse flows), with the uniform response `uniform`.
    /// Missing values are 0.
    pub fn from_columns(columns: &[Vec<f64>], uniform: Vec<f64>) -> Self {
        let matrix = DMatrix::from_fn(uniform.len(), columns.len(), |i, j| {
            columns[j].get(i).copied().unwrap_or(0.0)
        });
        Self {
            uniform: DVector::from_vec(uniform),
            matrix,
        }
    }

    /// The response of every observation to one unit of extra consumption spread like the
    /// consumption.
    pub fn uniform(&self) -> &[f64] {
        self.uniform.as_slice()
    }

    /// Observations (rows).
    pub fn observations(&self) -> usize {
        self.matrix.nrows()
    }

    /// Junctions (columns).
    pub fn junctions(&self) -> usize {
        self.matrix.ncols()
    }

    /// The response of observation `row` to a unit leak at `junction`.
    pub fn get(&self, row: usize, junction: usize) -> f64 {
        self.matrix[(row, junction)]
    }
}

/// The signature of a leak of `leak_flow` at `junction`, and the covariance of its reading:
/// `base` (noise) plus the model error, relative to the signature, on the diagonal.
fn leak_covariance(
    signatures: &Signatures,
    base: &DMatrix<f64>,
    noise: &NoiseModel,
    leak_flow: f64,
    junction: usize,
) -> (DVector<f64>, DMatrix<f64>) {
    let target: DVector<f64> = signatures.matrix.column(junction) * leak_flow;
    let mut covariance = base.clone();
    for (i, value) in target.iter().enumerate() {
        let e = noise.model_error.get(i).copied().unwrap_or(0.0) * value;
        covariance[(i, i)] += e * e;
    }
    (target, covariance)
}

/// The separations `lambda_jk` of a leak of `leak_flow` at `junction` from a leak at every
/// junction `k` (see the module's documentation), given the covariance `base` of
/// [`noise_covariance`]. `None` when the covariance is not positive definite (no noise at
/// all, or an observation that nothing moves and nothing blurs).
pub fn separations(
    signatures: &Signatures,
    base: &DMatrix<f64>,
    noise: &NoiseModel,
    leak_flow: f64,
    junction: usize,
) -> Option<Vec<f64>> {
    let n = signatures.junctions();
    let (target, covariance) = leak_covariance(signatures, base, noise, leak_flow, junction);
    let cholesky = covariance.cholesky()?;
    let uniform = &signatures.uniform;
    let columns = &signatures.matrix;
    // Inner products in the metric C^-1: <a, b> = a^T C^-1 b.
    let weighted_target = cholesky.solve(&target);
    let weighted_uniform = cholesky.solve(uniform);
    let weighted_columns = cholesky.solve(columns);
    let yy = target.dot(&weighted_target);
    let uu = uniform.dot(&weighted_uniform);
    let uy = uniform.dot(&weighted_target);
    // The uniform term is free: project it out of the target and of every column.
    let project = |a_u: f64, b_u: f64| if uu > 0.0 { a_u * b_u / uu } else { 0.0 };
    let yy_p = yy - project(uy, uy);
    Some(
        (0..n)
            .map(|k| {
                let xy = columns.column(k).dot(&weighted_target);
                let xx = columns.column(k).dot(&weighted_columns.column(k));
                let ux = uniform.dot(&weighted_columns.column(k));
                let xy_p = xy - project(ux, uy);
                let xx_p = xx - project(ux, ux);
                let size = if xx_p > 0.0 {
                    (xy_p / xx_p).max(0.0)
                } else {
                    0.0
                };
                (yy_p - 2.0 * size * xy_p + size * size * xx_p).max(0.0)
            })
            .collect(),
    )
}

/// The verdict for a leak of `leak_flow` at each of `junctions`: which junctions it cannot be
/// told from (separation below `threshold`), and whether all of them lie within `radius_m`
/// pipe distance, given the covariance `base` of [`noise_covariance`]. Junctions whose
/// covariance is singular get no verdict.
#[allow(clippy::too_many_arguments)]
pub fn analyse(
    signatures: &Signatures,
    base: &DMatrix<f64>,
    localizer: &Localizer,
    noise: &NoiseModel,
    leak_flow: f64,
    junctions: &[usize],
    threshold: f64,
    radius_m: f64,
) -> Vec<Verdict> {
    junctions
        .iter()
        .filter_map(|&junction| {
            let lambda = separations(signatures, base, noise, leak_flow, junction)?;
            let distance = localizer.distances(junction, f64::INFINITY);
            let mut far_confusers = Vec::new();
            let (mut near_confusers, mut confusion, mut worst_confusion) = (0, 0.0, 0.0_f64);
            for (k, &separation) in lambda.iter().enumerate() {
                let far = distance[k] > radius_m;
                if far {
                    let p = wrong_choice_probability(separation);
                    confusion += p;
                    worst_confusion = worst_confusion.max(p);
                }
                if separation < threshold {
                    if far {
                        far_confusers.push((k, separation, distance[k]));
                    } else {
                        near_confusers += 1;
                    }
                }
            }
            Some(Verdict {
                junction,
                locatable: far_confusers.is_empty(),
                far_confusers,
                near_confusers,
                confusion: confusion.min(1.0),
                worst_confusion,
            })
        })
        .collect()
}

/// The chance that an ideal localizer puts a leak of `leak_flow` at `junction` on a junction
/// `k` with `within[k]`, by simulation: `samples` signatures `q s_j + e` with `e` drawn from
/// the signature's error (covariance `base` plus `junction`'s model error), each located at the
/// junction of least misfit (best non-negative size, free uniform term, weighted by that
/// covariance: the localizer is granted the true noise level). `None` when the covariance is
/// not positive definite.
#[allow(clippy::too_many_arguments)]
pub fn ideal_success(
    signatures: &Signatures,
    base: &DMatrix<f64>,
    noise: &NoiseModel,
    leak_flow: f64,
    junction: usize,
    within: &[bool],
    samples: usize,
    seed: u64,
) -> Option<f64> {
    let m = signatures.observations();
    let n = signatures.junctions();
    let (target, covariance) = leak_covariance(signatures, base, noise, leak_flow, junction);
    let lower = covariance.cholesky()?.l();
    // Whitened by L^-1 the error is standard normal; the uniform term is projected out.
    let whiten = |v: &DMatrix<f64>| lower.solve_lower_triangular(v);
    let uniform = whiten(&DMatrix::from_column_slice(
        m,
        1,
        signatures.uniform.as_slice(),
    ))?;
    let uniform: Vec<f64> = uniform.iter().copied().collect();
    let uu: f64 = uniform.iter().map(|x| x * x).sum();
    let project_out = |v: &mut [f64]| {
        if uu > 0.0 {
            let c = v.iter().zip(&uniform).map(|(a, b)| a * b).sum::<f64>() / uu;
            for (x, u) in v.iter_mut().zip(&uniform) {
                *x -= c * u;
            }
        }
    };
    let mut target: Vec<f64> = whiten(&DMatrix::from_column_slice(m, 1, target.as_slice()))?
        .iter()
        .copied()
        .collect();
    project_out(&mut target);
    let whitened = whiten(&signatures.matrix)?;
    let columns: Vec<(Vec<f64>, f64)> = (0..n)
        .map(|k| {
            let mut x: Vec<f64> = whitened.column(k).iter().copied().collect();
            project_out(&mut x);
            let xx = x.iter().map(|a| a * a).sum::<f64>();
            (x, xx)
        })
        .collect();
    let mut rng = hydraulics::generate::SplitMix64::new(seed);
    let mut uniform01 = move || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let mut hits = 0_usize;
    let mut y = vec![0.0; m];
    for _ in 0..samples {
        for (value, t) in y.iter_mut().zip(&target) {
            let (a, b) = (uniform01(), uniform01());
            *value = t + (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos();
        }
        project_out(&mut y);
        // Least misfit = largest explained part (x.y)^2 / x.x with a non-negative size.
        let best = columns
            .iter()
            .enumerate()
            .map(|(k, (x, xx))| {
                let xy: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
                let explained = if *xx > 0.0 && xy > 0.0 {
                    xy * xy / xx
                } else {
                    0.0
                };
                (k, explained)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, _)| k);
        if best.is_some_and(|k| within.get(k).copied().unwrap_or(false)) {
            hits += 1;
        }
    }
    Some(hits as f64 / samples.max(1) as f64)
}

/// Weighted shares of leaks located within the radius.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// Locatable by the threshold.
    pub locatable: f64,
    /// Lower bound of the likeliest junction's chance to lie within the radius (union bound).
    pub at_least: f64,
    /// Approximate upper bound of that chance (the single worst far junction).
    pub at_most: f64,
}

/// Shares of `verdicts` weighted by `weight(junction)`.
pub fn locatable_share(verdicts: &[Verdict], weight: impl Fn(usize) -> f64) -> Share {
    let (mut total, mut locatable, mut at_least, mut at_most) = (0.0, 0.0, 0.0, 0.0);
    for verdict in verdicts {
        let w = weight(verdict.junction).max(0.0);
        total += w;
        if verdict.locatable {
            locatable += w;
        }
        at_least += w * (1.0 - verdict.confusion);
        at_most += w * (1.0 - verdict.worst_confusion);
    }
    let share = |x: f64| if total > 0.0 { x / total } else { 0.0 };
    Share {
        locatable: share(locatable),
        at_least: share(at_least),
        at_most: share(at_most),
    }
}

/// Relative error of modelled signatures against simulated ones, pooled per observation:
/// `sqrt(sum (simulated - modelled)^2 / sum modelled^2)` over the pairs given, each pair one
/// leak's signatures.
pub fn relative_model_error(pairs: &[(Vec<f64>, Vec<f64>)], observations: usize) -> Vec<f64> {
    (0..observations)
        .map(|i| {
            let (mut error, mut size) = (0.0, 0.0);
            for (modelled, simulated) in pairs {
                if let (Some(m), Some(s)) = (modelled.get(i), simulated.get(i)) {
                    error += (s - m) * (s - m);
                    size += m * m;
                }
            }
            if size > 0.0 {
                (error / size).sqrt()
            } else {
                0.0
            }
        })
        .collect()
}

/// Probability that the wrong one of two hypotheses `separation` apart is the likelier:
/// `Phi(-sqrt(separation) / 2)`.
pub fn wrong_choice_probability(separation: f64) -> f64 {
    standard_normal_cdf(-separation.max(0.0).sqrt() / 2.0)
}

/// `Phi(x)` by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
fn standard_normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-z * z).exp();
    if x >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::Observation;
    use crate::reading::NetworkUnits;
    use hydraulics::model::Network;

    /// A reservoir feeding a main (J1-J2-J3) with two equal dead-end branches off J3 (J4-J5
    /// and J6-J7); every pipe 1,200 ft (366 m), so neighbours are beyond 300 m.
    const TREE: &str = "\
[JUNCTIONS]
J1 100 10
J2 100 10
J3 100 10
J4 100 10
J5 100 10
J6 100 10
J7 100 10
[RESERVOIRS]
R 250
[PIPES]
P0 R J1 1200 12 100
P1 J1 J2 1200 12 100
P2 J2 J3 1200 12 100
P3 J3 J4 1200 8 100
P4 J4 J5 1200 8 100
P5 J3 J6 1200 8 100
P6 J6 J7 1200 8 100
[OPTIONS]
Units GPM
Headloss H-W
[END]
";

    struct Case {
        network: Network,
        signatures: Signatures,
        localizer: Localizer,
        consumption: Vec<f64>,
    }

    fn case(sensor_nodes: &[&str]) -> Case {
        let network = hydraulics::read_str(TREE, "tree.inp").unwrap();
        let units = NetworkUnits::new(&network.options);
        let observations: Vec<Observation> = sensor_nodes
            .iter()
            .map(|id| Observation::Pressure(network.node_index(id).unwrap()))
            .collect();
        let (_, sensitivity) = crate::testutil::linearized(&network, &observations);
        let localizer = Localizer::new(&network, &units);
        let consumption = crate::estimate::nominal_demands(&network, 0);
        Case {
            network,
            signatures: Signatures::linear(&sensitivity, &consumption),
            localizer,
            consumption,
        }
    }

    fn noise(case: &Case, sd: f64, model_error: f64) -> NoiseModel {
        let m = case.signatures.observations();
        NoiseModel {
            reading_sd: vec![sd; m],
            readings_per_hour: 12.0,
            demand_noise: 0.0,
            consumption: case.consumption.clone(),
            window_hours: 1.0,
            model_error: vec![model_error; m],
        }
    }

    /// Verdicts for a 50 gpm leak at each of `junctions` with the default threshold.
    fn verdicts(case: &Case, model: &NoiseModel, junctions: &[usize]) -> Vec<Verdict> {
        let base = noise_covariance(&case.signatures, model);
        analyse(
            &case.signatures,
            &base,
            &case.localizer,
            model,
            50.0,
            junctions,
            INDISTINGUISHABLE_BELOW,
            300.0,
        )
    }

    fn junction(case: &Case, id: &str) -> usize {
        case.network.node_index(id).unwrap()
    }

    #[test]
    fn a_leak_is_at_zero_separation_from_itself_and_scales_with_its_size_squared() {
        let case = case(&["J2", "J5", "J7"]);
        let model = noise(&case, 0.05, 0.0);
        let base = noise_covariance(&case.signatures, &model);
        let j = junction(&case, "J5");
        let small = separations(&case.signatures, &base, &model, 20.0, j).unwrap();
        let large = separations(&case.signatures, &base, &model, 40.0, j).unwrap();
        assert!(small[j] < 1e-9, "{}", small[j]);
        for k in 0..small.len() {
            assert!(
                (large[k] - 4.0 * small[k]).abs() <= 1e-6 * large[k].max(1.0),
                "{k}: {} {}",
                large[k],
                small[k]
            );
        }
        // A leak at J7 cannot mimic one at J5: only J5's branch moves the J5 sensor most.
        assert!(small[junction(&case, "J7")] > small[junction(&case, "J4")]);
    }

    #[test]
    fn symmetric_unobserved_branches_are_confused_and_not_locatable() {
        // Only the main is observed: the two branches look the same from there.
        let case = case(&["J1", "J2"]);
        let model = noise(&case, 0.05, 0.0);
        let j5 = junction(&case, "J5");
        let verdicts = verdicts(&case, &model, &[j5]);
        let verdict = &verdicts[0];
        assert!(!verdict.locatable);
        let j7 = junction(&case, "J7");
        let confused = verdict.far_confusers.iter().find(|c| c.0 == j7).unwrap();
        assert!(confused.1 < 1e-6, "{}", confused.1);
        // J5 -> J4 -> J3 -> J6 -> J7: four pipes of 1,200 ft.
        assert!((confused.2 - 4.0 * 1200.0 * 0.3048).abs() < 1e-6);
        // Exact twins: the wrong one is likelier half of the time.
        assert!((verdict.worst_confusion - 0.5).abs() < 1e-6);
        assert!(verdict.confusion >= verdict.worst_confusion);
    }

    #[test]
    fn a_sensor_at_every_junction_with_little_noise_locates_every_leak() {
        let case = case(&["J1", "J2", "J3", "J4", "J5", "J6", "J7"]);
        let model = noise(&case, 0.001, 0.0);
        let all: Vec<usize> = (0..7).collect();
        let located = verdicts(&case, &model, &all);
        assert_eq!(located.len(), 7);
        assert!(located.iter().all(|v| v.locatable), "{located:?}");
        assert!(located.iter().all(|v| v.near_confusers == 1));
        let share = locatable_share(&located, |_| 1.0);
        assert_eq!(share.locatable, 1.0);
        assert!(
            share.at_least > 0.99 && share.at_most >= share.at_least,
            "{share:?}"
        );
        // Noise large enough drowns everything: nothing is locatable any more.
        let loud = noise(&case, 1000.0, 0.0);
        let drowned = verdicts(&case, &loud, &all);
        let share = locatable_share(&drowned, |_| 1.0);
        assert_eq!(share.locatable, 0.0);
        assert!(
            share.at_most < 0.6 && share.at_least <= share.at_most,
            "{share:?}"
        );
    }

    #[test]
    fn model_error_and_demand_noise_shrink_separations_and_longer_windows_grow_them() {
        let case = case(&["J2", "J5", "J7"]);
        let j = junction(&case, "J4");
        let lambda = |model: &NoiseModel| {
            let base = noise_covariance(&case.signatures, model);
            separations(&case.signatures, &base, model, 30.0, j).unwrap()
        };
        let plain = noise(&case, 0.05, 0.0);
        let with_error = noise(&case, 0.05, 0.2);
        let mut with_demand = plain.clone();
        with_demand.demand_noise = 0.05;
        let mut longer = with_demand.clone();
        longer.window_hours = 12.0;
        let (a, b, c, d) = (
            lambda(&plain),
            lambda(&with_error),
            lambda(&with_demand),
            lambda(&longer),
        );
        let k = junction(&case, "J7");
        assert!(
            b[k] < a[k] && c[k] < a[k] && d[k] > c[k],
            "{a:?} {b:?} {c:?} {d:?}"
        );
        let covariance = noise_covariance(&case.signatures, &with_demand);
        assert!((covariance.clone() - covariance.transpose()).amax() < 1e-12);
    }

    #[test]
    fn an_ideal_localizer_is_right_with_little_noise_and_guesses_between_twins() {
        let case = case(&["J1", "J2"]);
        let quiet = noise(&case, 1e-4, 0.0);
        let base = noise_covariance(&case.signatures, &quiet);
        let (j1, j5) = (junction(&case, "J1"), junction(&case, "J5"));
        let only = |k: usize| -> Vec<bool> { (0..7).map(|i| i == k).collect() };
        let right =
            ideal_success(&case.signatures, &base, &quiet, 50.0, j1, &only(j1), 200, 1).unwrap();
        assert_eq!(right, 1.0);
        // J5's branch: J4, J5, J6, J7 leave the same shape at J1 and J2 (sizes differ), so
        // the pick among them is noise: J5 itself is chosen far from always.
        let twins =
            ideal_success(&case.signatures, &base, &quiet, 50.0, j5, &only(j5), 400, 2).unwrap();
        assert!(twins < 0.8, "{twins}");
        // The same columns given one by one give the same answers.
        let columns: Vec<Vec<f64>> = (0..7)
            .map(|k| (0..2).map(|i| case.signatures.get(i, k)).collect())
            .collect();
        let again = Signatures::from_columns(&columns, case.signatures.uniform().to_vec());
        assert_eq!(again, case.signatures);
    }

    #[test]
    fn model_error_is_pooled_per_observation_and_probabilities_are_normal() {
        let pairs = vec![
            (vec![1.0, 2.0], vec![1.1, 2.0]),
            (vec![-1.0, 0.0], vec![-0.9, 0.5]),
        ];
        let error = relative_model_error(&pairs, 2);
        assert!((error[0] - 0.1).abs() < 1e-12, "{error:?}");
        assert!((error[1] - 0.25).abs() < 1e-12, "{error:?}");
        assert!((standard_normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((standard_normal_cdf(-1.0) - 0.158_655_25).abs() < 2e-7);
        assert!((standard_normal_cdf(1.959_964) - 0.975).abs() < 2e-7);
        assert!((wrong_choice_probability(INDISTINGUISHABLE_BELOW) - 0.158_655_25).abs() < 2e-7);
    }
}
