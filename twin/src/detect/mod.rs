//! Leak, burst, transient and sensor-fault detectors on telemetry residuals.
//!
//! Everything here is synchronous, deterministic and pure: the detectors consume time series
//! (milliseconds since the Unix epoch, values in network units) that the caller has already read,
//! quality-checked and, for residuals, differenced against a baseline (the solver's prediction, or
//! a [`ProfileBaseline`] learned from leak-free history). Thresholds are learned on a leak-free
//! training window with robust statistics (median and MAD) and a target false-alarm rate.
//!
//! - [`Cusum`] and [`Ewma`]: per-sensor two-sided change detectors on residuals. The CUSUM is the
//!   one that catches incipient (slowly growing) leaks: a ramp accumulates until it crosses the
//!   decision interval.
//! - [`NightFlowDetector`]: the minimum night flow of the inlet flow per night against its learned
//!   baseline; a sustained rise gives a leak signal with an estimated leak flow.
//! - [`BurstDetector`]: a sudden pressure drop at several sensors at once together with an inlet
//!   flow rise (abrupt leaks), with time and magnitude.
//! - [`TransientDetector`]: the rate of change of one pressure signal above a threshold.
//! - [`Monitor`]: all of the above over aligned [`Snapshot`]s of a network's pressure residuals and
//!   inlet flow residual, with the sensor-fault-versus-leak decision made from the correlation
//!   structure of the pressure sensors learned in training ([`NeighbourMap`]). It emits [`Event`]s.
//!
//! # Parameters (defaults, 5-minute data)
//! - CUSUM: reference `k = 0.5` (tuned to shifts of one standard deviation), standardized
//!   residuals clipped to `±4` (a lone spike cannot alarm), scale = the larger of the MAD and the
//!   long-run scale from 3-hour batch means (autocorrelated residuals), decision interval from
//!   Siegmund's approximation for a false-alarm rate of `1e-6` per sample and per detector (about
//!   one false alarm per 10 years at 5-minute sampling on white residuals), raised to `2 x` the
//!   largest statistic reached on the training window. A ramp that grows by `g` standard
//!   deviations per sample is caught roughly `sqrt(2 h / g)` samples after it reaches `k`; on
//!   the synthetic tests, leaks growing to 4 to 10 % of the inflow over 3 to 5 days are flagged
//!   10 to 24 h after they start, at about 1 % of the inflow.
//! - EWMA: `lambda = 0.1`, same clipping and scale, control limit from the normal quantile of the
//!   same rate, same training margin. Faster than the CUSUM for large shifts, slower for small.
//! - After an alarm a chart holds its statistic at zero until 12 calm samples (`rearm_samples`);
//!   the [`Monitor`] restarts at once instead and de-duplicates with holdoffs (72 h per leak, 24 h
//!   per sensor).
//! - Burst: drop statistic = the mean of the last 2 samples minus the mean of the 6 samples before
//!   them; at least 2 sensors (and at least 30 % of those reporting) must drop by more than
//!   `max(5 sigma, min_drop)` with the inlet flow up by more than `max(5 sigma, min_flow_rise)`.
//!   An abrupt step of 8 % of the inflow or more is flagged within one or two samples.
//! - Night flow: window 02:00 to 04:00 local time, minimum of a 3-sample moving average, alarm
//!   when the excess over the learned baseline exceeds `max(4 sigma, 3 % of baseline, min_excess)`
//!   for 2 nights in a row.
//! - Transients: `|dp/dt|` above `max(8 sigma of training rates, min_rate)` and above every rate
//!   seen in training (routine pump and valve operations).
//! - Sensor fault versus leak: neighbours are the (at most 4) sensors whose training residuals
//!   correlate at least 0.5; a neighbour moved when its 1-hour mean shifted by 2 learned standard
//!   deviations, its CUSUM is past half its threshold, or it alarmed the same way in the last 6 h.
//!   A pressure drop with half of its neighbours or the inlet flow (same rules, up) is a leak; an
//!   alarm still alone after 30 minutes is a sensor fault.

mod burst;
mod cusum;
mod ewma;
mod monitor;
mod night_flow;
mod profile;
mod regime;
pub mod stats;
pub mod threshold;
mod transient;
mod watch;

pub use burst::{Burst, BurstConfig, BurstDetector};
pub use cusum::{Cusum, CusumConfig};
pub use ewma::{Ewma, EwmaConfig};
pub use monitor::{Monitor, MonitorConfig, NeighbourMap};
pub use night_flow::{NightFlowConfig, NightFlowDetector, NightFlowRise};
pub use profile::ProfileBaseline;
pub use regime::{regime_key, RegimeOffsets};
pub use stats::LongRunScale;
pub use transient::{Transient, TransientConfig, TransientDetector};
pub use watch::{signature_window, Alarm, Frame, LeakWatch, WatchConfig};

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;

/// Why a detector could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    /// The training window holds too few usable (finite) samples.
    #[error("training window has {got} usable samples, needs at least {needed}")]
    TooFewSamples {
        /// Samples required.
        needed: usize,
        /// Usable samples given.
        got: usize,
    },
    /// The training data has no spread (constant signal) and no minimum scale was configured.
    #[error("training data has zero spread; set a minimum scale")]
    DegenerateScale,
    /// A configuration value is out of its range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Snapshots do not all carry the same number of pressure values as the sensor list.
    #[error("snapshot at {time} has {got} pressure values, expected {expected}")]
    ShapeMismatch {
        /// The snapshot's time.
        time: i64,
        /// Values expected (one per sensor).
        expected: usize,
        /// Values found.
        got: usize,
    },
}

/// Checks that `value` lies in the open interval (0, `max`).
pub(crate) fn check_open(name: &'static str, value: f64, max: f64) -> Result<(), DetectError> {
    if value > 0.0 && value < max {
        Ok(())
    } else {
        Err(DetectError::InvalidParameter {
            name,
            reason: "out of range",
        })
    }
}

/// Checks a chart's `training_margin`: finite and not negative (`0` turns the empirical
/// calibration off).
pub(crate) fn check_training_margin(value: f64) -> Result<(), DetectError> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(DetectError::InvalidParameter {
            name: "training_margin",
            reason: "must be finite and not negative",
        })
    }
}

/// Which way a residual moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Above the in-control level.
    Up,
    /// Below the in-control level.
    Down,
}

impl Direction {
    /// `+1.0` for up, `-1.0` for down.
    pub fn sign(self) -> f64 {
        match self {
            Self::Up => 1.0,
            Self::Down => -1.0,
        }
    }
}

/// An alarm of a per-sensor change detector ([`Cusum`] or [`Ewma`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Time of the sample that crossed the threshold (ms).
    pub time: i64,
    /// Estimated start of the change (ms): for the CUSUM the last time the statistic was zero.
    pub onset: i64,
    /// Direction of the change.
    pub direction: Direction,
    /// The statistic at the alarm (standard deviations).
    pub statistic: f64,
    /// The threshold it crossed (standard deviations).
    pub threshold: f64,
    /// Estimated size of the shift from the in-control level, in the series' own units (signed).
    pub shift: f64,
}

/// What an [`Event`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A coherent change (several correlated pressure sensors down and/or inlet flow up, or a
    /// sustained night-flow rise): a leak candidate.
    Leak,
    /// A sudden pressure drop at several sensors together with an inlet flow rise.
    Burst,
    /// One sensor drifting alone while its hydraulic neighbours and the inlet flow do not.
    SensorFault,
    /// A pressure rate of change above the threshold.
    Transient,
}

impl EventKind {
    /// The name used in reports and alerts (`leak`, `burst`, `sensor_fault`, `transient`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Leak => "leak",
            Self::Burst => "burst",
            Self::SensorFault => "sensor_fault",
            Self::Transient => "transient",
        }
    }
}

/// Which detector produced an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventSource {
    /// A per-sensor CUSUM alarm.
    Cusum,
    /// A per-sensor EWMA alarm.
    Ewma,
    /// The minimum-night-flow detector.
    NightFlow,
    /// The burst detector.
    Burst,
    /// The rate-of-change detector.
    RateOfChange,
}

/// A detection event, as handed on to localization, the leak report and the alert manager.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What was detected.
    pub kind: EventKind,
    /// Which detector raised it.
    pub source: EventSource,
    /// Detection time (ms since the Unix epoch).
    pub time: i64,
    /// Estimated start of the change (ms), where the detector can tell.
    pub onset: Option<i64>,
    /// The sensors involved (ids): those that moved, first the one that triggered the event.
    /// Empty when only the inlet flow is involved.
    pub sensors: Vec<String>,
    /// Size of what was detected: for `leak` and `burst` the mean pressure drop of the involved
    /// sensors (positive, pressure units) or, with no pressure sensor involved, the inlet flow rise;
    /// for `sensor_fault` the faulty sensor's shift (signed, its units); for `transient` the rate
    /// of change (units per second, signed).
    pub magnitude: f64,
    /// Estimated leak flow (network flow units) for `leak` and `burst` when the inlet flow tells.
    pub estimated_flow: Option<f64>,
    /// Confidence in `0..=1`.
    pub confidence: f64,
}

/// One time step of a network's telemetry, aligned across sensors: pressure residuals (measured
/// minus baseline, one per pressure sensor in the order the [`Monitor`] was given, `NaN` when
/// missing), and the total inlet flow both as measured and as a residual (`NaN` when not
/// measured).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Time (ms since the Unix epoch).
    pub time: i64,
    /// Pressure residuals, one per sensor.
    pub pressures: Vec<f64>,
    /// Total inlet flow as measured (network flow units): what minimum night flow looks at.
    pub inlet_flow: f64,
    /// Total inlet flow minus its baseline.
    pub inlet_residual: f64,
}

/// A clamp to the confidence range.
pub(crate) fn unit_interval(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// A standard normal draw (Box-Muller) for the unit tests.
#[cfg(test)]
pub(crate) fn gaussian(rng: &mut crate::testutil::Rng) -> f64 {
    let uniform = |rng: &mut crate::testutil::Rng| {
        ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let (u, v) = (uniform(rng), uniform(rng));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}
