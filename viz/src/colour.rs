//! What the viewer colours by, and how values become colours.
//!
//! Scales are fixed over a whole run (percentiles of every step), so a colour means the same
//! value at every time of the timeline, and the legend does not jump while playing.

use std::fmt;
use std::str::FromStr;

/// A quantity the network can be coloured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    Pressure,
    Head,
    Demand,
    Flow,
    Velocity,
    Headloss,
    Risk,
    Residual,
}

impl Quantity {
    /// Every quantity, in the order the `C` key cycles through them.
    pub const ALL: [Quantity; 8] = [
        Quantity::Pressure,
        Quantity::Head,
        Quantity::Demand,
        Quantity::Flow,
        Quantity::Velocity,
        Quantity::Headloss,
        Quantity::Risk,
        Quantity::Residual,
    ];

    /// The name used on the command line and on screen.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Pressure => "pressure",
            Quantity::Head => "head",
            Quantity::Demand => "demand",
            Quantity::Flow => "flow",
            Quantity::Velocity => "velocity",
            Quantity::Headloss => "headloss",
            Quantity::Risk => "risk",
            Quantity::Residual => "residual",
        }
    }

    /// Whether the quantity belongs to links (else to nodes; residuals belong to sensors,
    /// drawn at their nodes).
    pub fn on_links(self) -> bool {
        matches!(
            self,
            Quantity::Flow | Quantity::Velocity | Quantity::Headloss | Quantity::Risk
        )
    }

    /// Whether values have a sign whose meaning matters for colour (centred scale).
    pub fn diverging(self) -> bool {
        matches!(self, Quantity::Residual)
    }

    /// The next quantity (wrapping), for cycling with a key.
    pub fn next(self, forward: bool) -> Quantity {
        let index = Self::ALL.iter().position(|q| *q == self).unwrap_or(0);
        let count = Self::ALL.len();
        let next = if forward {
            (index + 1) % count
        } else {
            (index + count - 1) % count
        };
        Self::ALL[next]
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown quantity name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown quantity `{0}` (pressure, head, demand, flow, velocity, headloss, risk, residual)"
)]
pub struct UnknownQuantity(pub String);

impl FromStr for Quantity {
    type Err = UnknownQuantity;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownQuantity(text.to_string()))
    }
}

/// sRGB stops of the sequential palette (a blue-to-red ramp that stays distinguishable for
/// the common colour-vision deficiencies at its ends: dark blue, cyan, green, yellow, red).
const SEQUENTIAL: [[f32; 3]; 5] = [
    [0.17, 0.20, 0.62],
    [0.10, 0.62, 0.82],
    [0.25, 0.74, 0.35],
    [0.96, 0.82, 0.20],
    [0.86, 0.16, 0.13],
];

/// sRGB stops of the diverging palette (blue, near-white, red).
const DIVERGING: [[f32; 3]; 3] = [[0.13, 0.35, 0.80], [0.93, 0.93, 0.90], [0.84, 0.15, 0.15]];

/// Colour of values with no data (no value at this time, or not measured).
pub const NO_DATA: [f32; 3] = [0.45, 0.45, 0.48];

/// A value range mapped onto a palette.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourScale {
    /// Value at the palette's first colour.
    pub min: f32,
    /// Value at the palette's last colour.
    pub max: f32,
    /// Whether the palette is the diverging one (centred on zero).
    pub diverging: bool,
}

impl ColourScale {
    /// The scale for `quantity` covering the 2nd to 98th percentile of `values` (outliers
    /// saturate instead of flattening everything else), rounded outward to readable numbers.
    pub fn fit(quantity: Quantity, values: impl Iterator<Item = f32>) -> ColourScale {
        let mut finite: Vec<f32> = values.filter(|v| v.is_finite()).collect();
        let diverging = quantity.diverging();
        if finite.is_empty() {
            return ColourScale {
                min: 0.0,
                max: 1.0,
                diverging,
            };
        }
        finite.sort_by(f32::total_cmp);
        let at = |fraction: f32| finite[((finite.len() - 1) as f32 * fraction).round() as usize];
        let (low, high) = (at(0.02), at(0.98));
        if diverging {
            let bound = nice_ceiling(low.abs().max(high.abs()).max(f32::EPSILON));
            return ColourScale {
                min: -bound,
                max: bound,
                diverging,
            };
        }
        let (min, max) = if high - low <= f32::EPSILON * high.abs().max(1.0) {
            (low - 0.5, high + 0.5)
        } else {
            let step = nice_step((high - low) / 4.0);
            ((low / step).floor() * step, (high / step).ceil() * step)
        };
        ColourScale {
            min,
            max,
            diverging,
        }
    }

    /// Where `value` falls on the scale, 0 to 1 (clamped).
    pub fn fraction(&self, value: f32) -> f32 {
        ((value - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
    }

    /// The sRGB colour of `value`; [`NO_DATA`] for a value that is not a number.
    pub fn colour(&self, value: f32) -> [f32; 3] {
        if !value.is_finite() {
            return NO_DATA;
        }
        self.colour_at(self.fraction(value))
    }

    /// The sRGB colour at `fraction` (0 to 1) of the palette.
    pub fn colour_at(&self, fraction: f32) -> [f32; 3] {
        let stops: &[[f32; 3]] = if self.diverging {
            &DIVERGING
        } else {
            &SEQUENTIAL
        };
        let position = fraction.clamp(0.0, 1.0) * (stops.len() - 1) as f32;
        let index = (position.floor() as usize).min(stops.len() - 2);
        let t = position - index as f32;
        let (a, b) = (stops[index], stops[index + 1]);
        [
            a[0] + (b[0] - a[0]) * t,
            a[1] + (b[1] - a[1]) * t,
            a[2] + (b[2] - a[2]) * t,
        ]
    }

    /// `count` evenly spaced tick values from min to max.
    pub fn ticks(&self, count: usize) -> Vec<f32> {
        let count = count.max(2);
        (0..count)
            .map(|i| self.min + (self.max - self.min) * i as f32 / (count - 1) as f32)
            .collect()
    }
}

/// A 1, 2 or 5 times a power of ten at least `raw`.
fn nice_step(raw: f32) -> f32 {
    let raw = raw.max(f32::MIN_POSITIVE);
    let magnitude = 10f32.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `value`.
fn nice_ceiling(value: f32) -> f32 {
    nice_step(value)
}

/// Text for a tick or a value: few digits, no trailing noise.
pub fn format_value(value: f32) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".to_string()
    } else if !(0.01..100_000.0).contains(&magnitude) {
        format!("{value:.2e}")
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_cycle_visits_all() {
        for quantity in Quantity::ALL {
            assert_eq!(quantity.name().parse::<Quantity>(), Ok(quantity));
        }
        assert!("pressur".parse::<Quantity>().is_err());
        let mut seen = vec![Quantity::Pressure];
        let mut q = Quantity::Pressure;
        for _ in 1..Quantity::ALL.len() {
            q = q.next(true);
            seen.push(q);
        }
        assert_eq!(seen.len(), Quantity::ALL.len());
        assert_eq!(q.next(true), Quantity::Pressure);
        assert_eq!(Quantity::Pressure.next(false), Quantity::Residual);
    }

    #[test]
    fn scale_covers_the_bulk_and_saturates_outliers() {
        let mut values: Vec<f32> = (0..1000).map(|i| 40.0 + i as f32 * 0.03).collect();
        values.push(10_000.0);
        let scale = ColourScale::fit(Quantity::Pressure, values.into_iter());
        assert!(scale.min <= 40.6 && scale.min >= 30.0, "{scale:?}");
        assert!(scale.max >= 69.4 && scale.max <= 80.0, "{scale:?}");
        assert_eq!(scale.colour(10_000.0), scale.colour_at(1.0));
        assert_eq!(scale.colour(-5.0), scale.colour_at(0.0));
        assert_eq!(scale.colour(f32::NAN), NO_DATA);
    }

    #[test]
    fn colours_change_monotonically_in_hue_order() {
        let scale = ColourScale {
            min: 0.0,
            max: 100.0,
            diverging: false,
        };
        let low = scale.colour(0.0);
        let high = scale.colour(100.0);
        assert!(low[2] > low[0], "low end is blue: {low:?}");
        assert!(high[0] > high[2], "high end is red: {high:?}");
        let mid = scale.colour(50.0);
        assert_ne!(mid, low);
        assert_ne!(mid, high);
    }

    #[test]
    fn diverging_scale_is_symmetric_and_white_at_zero() {
        let scale = ColourScale::fit(Quantity::Residual, [-3.0, 1.0, 2.5].into_iter());
        assert_eq!(scale.min, -scale.max);
        assert!(scale.max >= 3.0);
        let zero = scale.colour(0.0);
        assert!(zero.iter().all(|c| *c > 0.85), "{zero:?}");
    }

    #[test]
    fn constant_values_get_a_non_empty_range() {
        let scale = ColourScale::fit(Quantity::Head, std::iter::repeat_n(12.0, 10));
        assert!(scale.max > scale.min);
        assert!(scale.fraction(12.0) > 0.0 && scale.fraction(12.0) < 1.0);
    }

    #[test]
    fn values_format_compactly() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(0.25), "0.250");
        assert_eq!(format_value(12.345), "12.3");
        assert_eq!(format_value(1234.5), "1234");
        assert_eq!(format_value(1.5e6), "1.50e6");
    }
}
