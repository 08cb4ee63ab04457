//! Robust statistics and the normal-distribution helpers the detectors use to turn a target
//! false-alarm rate into a threshold.

use super::DetectError;

/// Consistency factor that makes the MAD estimate the standard deviation of normal data.
pub(crate) const MAD_TO_SIGMA: f64 = 1.482_6;

/// The finite values of `values`, sorted.
fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn median_of_sorted(v: &[f64]) -> Option<f64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(0.5 * (v[n / 2 - 1] + v[n / 2])),
    }
}

/// The median of the finite values of `values` (`None` when there are none).
pub fn median(values: &[f64]) -> Option<f64> {
    median_of_sorted(&sorted_finite(values))
}

/// Robust location and scale of a training sample: the median and the normal-consistent MAD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustFit {
    /// The median.
    pub location: f64,
    /// `1.4826 * MAD`, floored at the caller's minimum scale.
    pub scale: f64,
    /// How many finite values the fit used.
    pub count: usize,
}

/// Median and MAD scale of the finite values of `values`. Errors when fewer than `min_count`
/// finite values are given or when the scale is not positive even after flooring it at
/// `min_scale` (a constant training signal with no floor).
pub fn robust_fit(
    values: &[f64],
    min_count: usize,
    min_scale: f64,
) -> Result<RobustFit, DetectError> {
    let v = sorted_finite(values);
    if v.len() < min_count.max(1) {
        return Err(DetectError::TooFewSamples {
            needed: min_count.max(1),
            got: v.len(),
        });
    }
    let location = median_of_sorted(&v).ok_or(DetectError::TooFewSamples { needed: 1, got: 0 })?;
    let mut dev: Vec<f64> = v.iter().map(|x| (x - location).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median_of_sorted(&dev).unwrap_or(0.0);
    let scale = (MAD_TO_SIGMA * mad).max(min_scale);
    if !(scale > 0.0 && scale.is_finite()) {
        return Err(DetectError::DegenerateScale);
    }
    Ok(RobustFit {
        location,
        scale,
        count: v.len(),
    })
}

/// How a detector learns the scale of its residuals on the training window, shared by the
/// CUSUM and EWMA charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongRunScale {
    /// Training samples per batch for the long-run scale: the scale used is the larger of the
    /// MAD of the samples and `sqrt(batch)` times the MAD of non-overlapping batch means, so that
    /// slowly wandering (autocorrelated) residuals do not make every small excursion an alarm.
    /// `1` uses the sample MAD alone.
    pub batch: usize,
    /// Fewest finite training samples accepted.
    pub min_training: usize,
    /// Floor for the learned scale (series units); `0` means none.
    pub min_scale: f64,
}

impl Default for LongRunScale {
    fn default() -> Self {
        Self {
            batch: 36,
            min_training: 48,
            min_scale: 0.0,
        }
    }
}

impl LongRunScale {
    /// Like [`robust_fit`], with the scale raised to the long-run scale: `sqrt(batch)` times the
    /// MAD scale of the means of consecutive batches of `batch` finite values (when there are at
    /// least 8 batches). For independent data both agree; for autocorrelated data the long-run
    /// one is larger, as the spread of sums (what CUSUM and EWMA accumulate) is.
    pub fn fit(&self, values: &[f64]) -> Result<RobustFit, DetectError> {
        let Self {
            batch,
            min_training: min_count,
            min_scale,
        } = *self;
        let mut fit = robust_fit(values, min_count, min_scale)?;
        if batch > 1 {
            let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
            let means: Vec<f64> = finite
                .chunks_exact(batch)
                .map(|c| c.iter().sum::<f64>() / batch as f64)
                .collect();
            if means.len() >= 8 {
                if let Ok(b) = robust_fit(&means, 8, 0.0) {
                    fit.scale = fit.scale.max(b.scale * (batch as f64).sqrt());
                }
            }
        }
        Ok(fit)
    }
}

/// The complementary error function (Chebyshev fit, relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// `P(Z > z)` for a standard normal `Z`.
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The `z` with `P(Z > z) = p` for a standard normal `Z` (`0 < p < 0.5`), by bisection.
pub fn normal_upper_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_upper_tail(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Siegmund's approximation of the in-control average run length (in samples) of a one-sided
/// CUSUM on standardized data with reference `k` and decision interval `h` (both in standard
/// deviations).
pub fn cusum_arl0(k: f64, h: f64) -> f64 {
    let b = h + 1.166;
    if k <= 1e-9 {
        return b * b;
    }
    let a = 2.0 * k * b;
    (a.exp() - a - 1.0) / (2.0 * k * k)
}

/// The decision interval `h` (in standard deviations) of a two-sided CUSUM with reference `k`
/// whose in-control false-alarm rate is `rate` per sample (each side gets half of it).
pub fn cusum_threshold(k: f64, rate: f64) -> f64 {
    let target = 2.0 / rate;
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while cusum_arl0(k, hi) < target && hi < 1e6 {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if cusum_arl0(k, mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Pearson correlation of two equally long series over the positions where both are finite
/// (`None` with fewer than 3 such positions or a constant series).
pub fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (*x, *y))
        .collect();
    if pairs.len() < 3 {
        return None;
    }
    let n = pairs.len() as f64;
    let (ma, mb) = pairs
        .iter()
        .fold((0.0, 0.0), |(sa, sb), (x, y)| (sa + x / n, sb + y / n));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return None;
    }
    Some(sab / (saa * sbb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_ignore_non_finite_values() {
        let fit = robust_fit(&[1.0, 2.0, f64::NAN, 3.0, 100.0], 3, 0.0).expect("fit");
        assert_eq!(fit.location, 2.5);
        assert_eq!(fit.count, 4);
        assert!((fit.scale - MAD_TO_SIGMA * 1.0).abs() < 1e-12);
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn constant_training_needs_a_scale_floor() {
        assert!(matches!(
            robust_fit(&[5.0; 10], 3, 0.0),
            Err(DetectError::DegenerateScale)
        ));
        assert_eq!(robust_fit(&[5.0; 10], 3, 0.1).map(|f| f.scale), Ok(0.1));
        assert!(matches!(
            robust_fit(&[1.0], 3, 0.0),
            Err(DetectError::TooFewSamples { needed: 3, got: 1 })
        ));
    }

    #[test]
    fn long_run_scale_grows_with_autocorrelation() {
        let mut rng = crate::testutil::Rng::new(3);
        let white: Vec<f64> = (0..4000)
            .map(|_| crate::detect::gaussian(&mut rng))
            .collect();
        let mut level = 0.0;
        let wandering: Vec<f64> = white
            .iter()
            .map(|e| {
                level = 0.95 * level + 0.3 * e;
                level
            })
            .collect();
        let w = LongRunScale {
            batch: 12,
            min_training: 10,
            min_scale: 0.0,
        }
        .fit(&white)
        .expect("fit");
        assert!((w.scale - 1.0).abs() < 0.15, "{}", w.scale);
        let short = robust_fit(&wandering, 10, 0.0).expect("fit").scale;
        let long = LongRunScale {
            batch: 12,
            min_training: 10,
            min_scale: 0.0,
        }
        .fit(&wandering)
        .expect("fit")
        .scale;
        assert!(long > 2.0 * short, "{short} {long}");
    }

    #[test]
    fn normal_tail_and_quantile_agree() {
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_quantile(0.001) - 3.090_232).abs() < 1e-4);
    }

    #[test]
    fn cusum_threshold_matches_siegmund() {
        // Textbook value: k = 0.5, h = 4 gives an in-control ARL of about 336 (one-sided).
        assert!((cusum_arl0(0.5, 4.0) - 336.0).abs() < 5.0);
        let h = cusum_threshold(0.5, 2.0 / 336.0);
        assert!((h - 4.0).abs() < 0.05, "{h}");
    }

    #[test]
    fn correlation_of_related_series() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 4.1, 5.9, 8.0];
        assert!(correlation(&a, &b).is_some_and(|r| r > 0.99));
        assert_eq!(correlation(&a, &[1.0; 4]), None);
    }
}
