//! Piecewise-linear curve helpers, with EPANET's rules at the ends of a curve.

/// Differences in x below this are treated as a vertical segment (EPANET's `TINY`).
const TINY: f64 = 1.0e-6;

/// Interpolates `y` at `xx` on the curve `(x, y)`; below the first point it returns the first
/// `y`, beyond the last point the last `y` (EPANET's `interp`).
pub(crate) fn interpolate(x: &[f64], y: &[f64], xx: f64) -> f64 {
    let (Some(&x0), Some(&y0)) = (x.first(), y.first()) else {
        return 0.0;
    };
    if xx <= x0 {
        return y0;
    }
    for k in 1..x.len().min(y.len()) {
        if x[k] >= xx {
            let dx = x[k] - x[k - 1];
            let dy = y[k] - y[k - 1];
            if dx.abs() < TINY {
                return y[k];
            }
            return y[k] - (x[k] - xx) * dy / dx;
        }
    }
    y[x.len().min(y.len()) - 1]
}

/// The straight segment of the curve that brackets `xx` (the first or last segment outside
/// the curve's range), as `(intercept at x = 0, slope)` (EPANET's `curvecoeff`).
/// A curve needs at least two points.
pub(crate) fn segment(x: &[f64], y: &[f64], xx: f64) -> (f64, f64) {
    let points = x.len().min(y.len());
    if points < 2 {
        return (y.first().copied().unwrap_or(0.0), 0.0);
    }
    let mut upper = 0;
    while upper < points && x[upper] < xx {
        upper += 1;
    }
    let upper = upper.clamp(1, points - 1);
    let lower = upper - 1;
    let slope = (y[upper] - y[lower]) / (x[upper] - x[lower]);
    (y[lower] - slope * x[lower], slope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_inside_and_clamps_outside() {
        let x = [0.0, 10.0, 20.0];
        let y = [5.0, 15.0, 35.0];
        assert_eq!(interpolate(&x, &y, -1.0), 5.0);
        assert_eq!(interpolate(&x, &y, 5.0), 10.0);
        assert_eq!(interpolate(&x, &y, 15.0), 25.0);
        assert_eq!(interpolate(&x, &y, 30.0), 35.0);
    }

    #[test]
    fn finds_the_bracketing_segment() {
        let x = [0.0, 10.0, 20.0];
        let y = [100.0, 90.0, 60.0];
        assert_eq!(segment(&x, &y, 5.0), (100.0, -1.0));
        assert_eq!(segment(&x, &y, 15.0), (120.0, -3.0));
        // Beyond the ends the end segments are extended.
        assert_eq!(segment(&x, &y, -5.0), (100.0, -1.0));
        assert_eq!(segment(&x, &y, 50.0), (120.0, -3.0));
    }
}
