//! Residual offsets per operating regime: the model's error at a sensor often depends on which
//! pumps run (a pump curve or a station's piping modelled a little off), so a leak that changes
//! how long a pump runs would otherwise show up as a change of that sensor's residual.

use std::collections::HashMap;

use super::stats::median;

/// A regime seen in fewer training periods than this keeps no offset (its median would be
/// noise).
const MIN_REGIME_SAMPLES: usize = 12;

/// The key of an operating regime: the set of switched links that are open (closed ones add
/// nothing), folded into one number. Equal sets give equal keys; a different set gives a
/// different key unless two large sets collide, which only merges two regimes' offsets.
pub fn regime_key(open: impl IntoIterator<Item = (usize, bool)>) -> u64 {
    // FNV-1a over the indices of the open links.
    let mut key: u64 = 0xcbf2_9ce4_8422_2325;
    for (link, is_open) in open {
        if is_open {
            for byte in (link as u64).to_le_bytes() {
                key ^= u64::from(byte);
                key = key.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    key
}

/// How far the median of every series lies, in each regime, from its median over all
/// regimes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegimeOffsets {
    offsets: HashMap<u64, Vec<f64>>,
}

impl RegimeOffsets {
    /// Learns the offsets from `samples` (regime, one value per series; `NaN` = missing). A
    /// regime with too few samples of a series keeps no offset there.
    pub fn fit(samples: &[(u64, Vec<f64>)]) -> Self {
        let width = samples.first().map_or(0, |s| s.1.len());
        let overall: Vec<Option<f64>> = (0..width)
            .map(|i| median(&finite(samples.iter().map(|s| s.1[i]))))
            .collect();
        let mut by_regime: HashMap<u64, Vec<&Vec<f64>>> = HashMap::new();
        for (regime, values) in samples {
            by_regime.entry(*regime).or_default().push(values);
        }
        let offsets = by_regime
            .into_iter()
            .map(|(regime, rows)| {
                let offsets = (0..width)
                    .map(|i| {
                        let values = finite(rows.iter().map(|row| row[i]));
                        match (median(&values), overall[i]) {
                            (Some(m), Some(o)) if values.len() >= MIN_REGIME_SAMPLES => m - o,
                            _ => 0.0,
                        }
                    })
                    .collect();
                (regime, offsets)
            })
            .collect();
        Self { offsets }
    }

    /// The offset of series `i` in `regime` (0 for a regime not learned).
    pub fn offset(&self, regime: u64, i: usize) -> f64 {
        self.offsets
            .get(&regime)
            .and_then(|o| o.get(i))
            .copied()
            .unwrap_or(0.0)
    }
}

fn finite(values: impl Iterator<Item = f64>) -> Vec<f64> {
    values.filter(|v| v.is_finite()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_open_sets_apart() {
        let on = regime_key([(3, true), (7, false)]);
        assert_eq!(on, regime_key([(3, true), (7, false)]));
        assert_ne!(on, regime_key([(3, false), (7, true)]));
        assert_ne!(on, regime_key([(3, true), (7, true)]));
    }

    #[test]
    fn offsets_are_each_regimes_median_against_the_overall_one() {
        let pump_on = regime_key([(1, true)]);
        let pump_off = regime_key([(1, false)]);
        let rare = regime_key([(2, true)]);
        let mut samples: Vec<(u64, Vec<f64>)> = Vec::new();
        for k in 0..40 {
            let noise = f64::from(k % 3) * 0.01;
            samples.push((pump_on, vec![-2.4 + noise, 1.0]));
            samples.push((pump_off, vec![-0.4 + noise, 1.0]));
        }
        samples.push((pump_on, vec![f64::NAN, 1.0]));
        samples.extend((0..5).map(|_| (rare, vec![9.0, 9.0])));
        let fitted = RegimeOffsets::fit(&samples);
        let gap = fitted.offset(pump_on, 0) - fitted.offset(pump_off, 0);
        assert!((gap + 2.0).abs() < 1e-9, "gap {gap}");
        assert_eq!(fitted.offset(pump_on, 1), 0.0);
        assert_eq!(fitted.offset(rare, 0), 0.0, "too few samples to learn");
        assert_eq!(fitted.offset(regime_key([(5, true)]), 0), 0.0, "never seen");
    }
}
