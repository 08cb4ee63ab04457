//! The noise of a signature's observations: each one's standard deviation and, where the
//! training window showed it, how they vary together (an hour's demand noise moves every
//! pressure sensor at once).

use nalgebra::DMatrix;

/// Standard deviations of the observations and their correlation.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationNoise {
    /// Standard deviation of each observation (`NaN` or 0: not usable).
    pub sigmas: Vec<f64>,
    /// Correlation of the observations (unit diagonal, observations x observations); `None`:
    /// independent.
    pub correlation: Option<DMatrix<f64>>,
}

impl ObservationNoise {
    /// Independent observations with standard deviations `sigmas`.
    pub fn independent(sigmas: Vec<f64>) -> Self {
        Self {
            sigmas,
            correlation: None,
        }
    }

    /// The observations that `values` and the standard deviations allow to use.
    pub fn usable(&self, values: &[f64]) -> Vec<usize> {
        (0..values.len().min(self.sigmas.len()))
            .filter(|&i| {
                values[i].is_finite() && self.sigmas[i].is_finite() && self.sigmas[i] > 0.0
            })
            .collect()
    }

    /// `standardized` (one row per observation of `used`, already divided by its standard
    /// deviation) whitened: multiplied by the inverse of the Cholesky factor of the rows'
    /// correlation, so that least squares on it weigh correlated noise as it is. Unchanged
    /// when the observations are independent, or their correlation is not positive definite.
    pub fn whiten(&self, used: &[usize], standardized: DMatrix<f64>) -> DMatrix<f64> {
        let Some(correlation) = &self.correlation else {
            return standardized;
        };
        if used.iter().any(|&i| i >= correlation.nrows()) {
            return standardized;
        }
        let among_used = DMatrix::from_fn(used.len(), used.len(), |a, b| {
            correlation[(used[a], used[b])]
        });
        match among_used.cholesky() {
            Some(factor) => factor
                .l()
                .solve_lower_triangular(&standardized)
                .unwrap_or(standardized),
            None => standardized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitening_undoes_a_known_correlation() {
        // Two observations with correlation 0.8: x = L z for independent z.
        let correlation = DMatrix::from_row_slice(2, 2, &[1.0, 0.8, 0.8, 1.0]);
        let noise = ObservationNoise {
            sigmas: vec![2.0, 3.0],
            correlation: Some(correlation.clone()),
        };
        let l = correlation
            .clone()
            .cholesky()
            .expect("positive definite")
            .l();
        let z = DMatrix::from_row_slice(2, 1, &[0.3, -1.2]);
        let x = &l * &z;
        let back = noise.whiten(&[0, 1], x);
        assert!((back - z).norm() < 1e-12);
        // Independent: unchanged; one observation: its own correlation is 1.
        let plain = DMatrix::from_row_slice(2, 1, &[0.5, 0.7]);
        let independent = ObservationNoise::independent(vec![1.0, 1.0]);
        assert_eq!(independent.whiten(&[0, 1], plain.clone()), plain);
        assert_eq!(
            noise.whiten(&[1], plain.rows(0, 1).into()),
            plain.rows(0, 1)
        );
        assert_eq!(noise.usable(&[1.0, f64::NAN]), vec![0]);
    }
}
