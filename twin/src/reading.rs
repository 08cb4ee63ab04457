//! Telemetry readings, sensors and explicit unit conversion to a network's units.
//!
//! A [`Reading`] is what a device reported (value plus an optional unit). A [`Sensor`] says what
//! is measured ([`SensorKind`]), where (a node or link id) and in which unit the device reports by
//! default. [`NetworkUnits`] carries the units of one hydraulic network (its flow units and the
//! pressure and length factors of [`UnitFactors`]); [`Sensor::to_network`] converts a reading into
//! them. Unknown or incompatible units are errors, never guesses.

use std::fmt;
use std::str::FromStr;

use hydraulics::model::{FlowUnits, Options, PressureUnits};
use hydraulics::units::{flow_factor, UnitFactors, BAR_PER_PSI, KPA_PER_PSI, M_PER_FT, PSI_PER_FT};

use crate::quality::QualityFlags;
use crate::store::Point;

/// One value reported by a sensor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    /// Id of the sensor that reported the value.
    pub sensor_id: String,
    /// Milliseconds since the Unix epoch (UTC).
    pub timestamp: i64,
    /// The measured value, in `unit` (or the sensor's unit when `unit` is `None`).
    pub value: f64,
    /// Unit as reported by the device (e.g. `"kPa"`); `None` means the sensor's configured unit.
    pub unit: Option<String>,
    /// Data-quality flags set by [`crate::quality::QualityChecker`].
    pub flags: QualityFlags,
}

impl Reading {
    /// A reading with no unit of its own and no quality flags yet.
    pub fn new(sensor_id: impl Into<String>, timestamp: i64, value: f64) -> Self {
        Self {
            sensor_id: sensor_id.into(),
            timestamp,
            value,
            unit: None,
            flags: QualityFlags::empty(),
        }
    }

    /// The same reading with an explicit unit.
    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }
}

/// What a sensor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensorKind {
    /// Pressure at a node.
    Pressure,
    /// Hydraulic head at a node.
    Head,
    /// Water level in a tank (a node).
    Level,
    /// Flow through a link.
    Flow,
    /// Consumption at a node (demand / AMR meter), as a flow rate.
    Demand,
    /// Opening of a valve (a link).
    ValvePosition,
    /// On/off status of a pump (a link).
    PumpStatus,
    /// Battery of the device.
    Battery,
    /// Radio signal strength of the device.
    Signal,
}

impl SensorKind {
    /// Every kind, in declaration order.
    pub const ALL: [SensorKind; 9] = [
        Self::Pressure,
        Self::Head,
        Self::Level,
        Self::Flow,
        Self::Demand,
        Self::ValvePosition,
        Self::PumpStatus,
        Self::Battery,
        Self::Signal,
    ];

    /// The name used in configuration files (`pressure`, `valve_position`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pressure => "pressure",
            Self::Head => "head",
            Self::Level => "level",
            Self::Flow => "flow",
            Self::Demand => "demand",
            Self::ValvePosition => "valve_position",
            Self::PumpStatus => "pump_status",
            Self::Battery => "battery",
            Self::Signal => "signal",
        }
    }

    /// Whether the sensor is attached to a node or to a link of the network, or to neither
    /// (device health).
    pub fn target_kind(self) -> TargetKind {
        match self {
            Self::Pressure | Self::Head | Self::Level | Self::Demand => TargetKind::Node,
            Self::Flow | Self::ValvePosition | Self::PumpStatus => TargetKind::Link,
            Self::Battery | Self::Signal => TargetKind::Device,
        }
    }

    /// Whether `unit` can express this kind's quantity.
    pub fn accepts(self, unit: Unit) -> bool {
        match self {
            Self::Pressure => matches!(
                unit,
                Unit::Psi | Unit::Kpa | Unit::Bar | Unit::Meter | Unit::Foot
            ),
            Self::Head | Self::Level => matches!(unit, Unit::Meter | Unit::Foot),
            Self::Flow | Self::Demand => matches!(unit, Unit::Flow(_)),
            Self::ValvePosition => matches!(unit, Unit::Percent | Unit::Fraction),
            Self::PumpStatus => matches!(unit, Unit::Status),
            Self::Battery => matches!(unit, Unit::Volt | Unit::Millivolt | Unit::Percent),
            Self::Signal => matches!(unit, Unit::Dbm),
        }
    }
}

impl fmt::Display for SensorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SensorKind {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let kind = match lower.as_str() {
            "pressure" => Self::Pressure,
            "head" => Self::Head,
            "level" => Self::Level,
            "flow" => Self::Flow,
            "demand" | "amr" => Self::Demand,
            "valve_position" | "valve" => Self::ValvePosition,
            "pump_status" | "pump" => Self::PumpStatus,
            "battery" => Self::Battery,
            "signal" | "rssi" => Self::Signal,
            _ => return Err(UnitError::UnknownKind(s.to_string())),
        };
        Ok(kind)
    }
}

/// What a sensor is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A junction, reservoir or tank.
    Node,
    /// A pipe, pump or valve.
    Link,
    /// The device itself (battery, signal).
    Device,
}

/// A unit a device may report in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Pounds per square inch.
    Psi,
    /// Kilopascal.
    Kpa,
    /// Bar.
    Bar,
    /// Metre (a length, or a pressure as metres of water column).
    Meter,
    /// Foot (a length, or a pressure as feet of water column).
    Foot,
    /// A volumetric flow rate in one of EPANET's flow units.
    Flow(FlowUnits),
    /// Percent (valve opening, battery charge).
    Percent,
    /// Fraction 0..1 (valve opening).
    Fraction,
    /// On/off status, 0 or 1 (pump).
    Status,
    /// Volt (battery).
    Volt,
    /// Millivolt (battery).
    Millivolt,
    /// Decibel-milliwatt (radio signal).
    Dbm,
}

impl Unit {
    /// Canonical short name (`"kPa"`, `"LPS"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Psi => "psi",
            Self::Kpa => "kPa",
            Self::Bar => "bar",
            Self::Meter => "m",
            Self::Foot => "ft",
            Self::Flow(f) => f.name(),
            Self::Percent => "%",
            Self::Fraction => "fraction",
            Self::Status => "status",
            Self::Volt => "V",
            Self::Millivolt => "mV",
            Self::Dbm => "dBm",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Unit {
    type Err = UnitError;

    /// Parses a unit name, case-insensitively; `m3/h`-style spellings of flow units are accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let unit = match lower.as_str() {
            "psi" => Self::Psi,
            "kpa" => Self::Kpa,
            "bar" => Self::Bar,
            "m" | "meter" | "meters" | "metre" | "metres" | "mh2o" | "m h2o" => Self::Meter,
            "ft" | "foot" | "feet" | "fth2o" | "ft h2o" => Self::Foot,
            "cfs" | "ft3/s" => Self::Flow(FlowUnits::Cfs),
            "gpm" => Self::Flow(FlowUnits::Gpm),
            "mgd" => Self::Flow(FlowUnits::Mgd),
            "imgd" => Self::Flow(FlowUnits::Imgd),
            "afd" => Self::Flow(FlowUnits::Afd),
            "lps" | "l/s" => Self::Flow(FlowUnits::Lps),
            "lpm" | "l/min" => Self::Flow(FlowUnits::Lpm),
            "mld" | "ml/d" => Self::Flow(FlowUnits::Mld),
            "cmh" | "m3/h" | "m³/h" => Self::Flow(FlowUnits::Cmh),
            "cmd" | "m3/d" | "m³/d" => Self::Flow(FlowUnits::Cmd),
            "cms" | "m3/s" | "m³/s" => Self::Flow(FlowUnits::Cms),
            "%" | "percent" | "pct" => Self::Percent,
            "fraction" | "ratio" => Self::Fraction,
            "status" | "on/off" | "onoff" => Self::Status,
            "v" | "volt" | "volts" => Self::Volt,
            "mv" | "millivolt" | "millivolts" => Self::Millivolt,
            "dbm" => Self::Dbm,
            _ => return Err(UnitError::Unknown(s.to_string())),
        };
        Ok(unit)
    }
}

/// Unit and kind errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    /// The unit name is not one we know.
    #[error("unknown unit `{0}`")]
    Unknown(String),
    /// The sensor kind name is not one we know.
    #[error("unknown sensor kind `{0}`")]
    UnknownKind(String),
    /// The unit cannot express the sensor's quantity (e.g. a flow unit on a pressure sensor).
    #[error("unit `{unit}` cannot express a {kind} reading")]
    Incompatible {
        /// The offending unit.
        unit: Unit,
        /// The sensor kind it was used with.
        kind: SensorKind,
    },
    /// Two units of different quantities (e.g. volt and percent).
    #[error("cannot convert from `{from}` to `{to}`")]
    Inconvertible {
        /// Source unit.
        from: Unit,
        /// Target unit.
        to: Unit,
    },
    /// The reading is not finite (NaN or infinite).
    #[error("value {0} is not a finite number")]
    NotFinite(f64),
}

/// Factor from feet of water column to `unit` for a fluid of specific gravity `sg`
/// (EPANET's factors, as in [`UnitFactors::new`]); `None` if `unit` is not a pressure unit.
fn pressure_factor(unit: Unit, sg: f64) -> Option<f64> {
    match unit {
        Unit::Psi => Some(PSI_PER_FT * sg),
        Unit::Kpa => Some(KPA_PER_PSI * PSI_PER_FT * sg),
        Unit::Bar => Some(BAR_PER_PSI * PSI_PER_FT * sg),
        Unit::Meter => Some(M_PER_FT * sg),
        Unit::Foot => Some(sg),
        _ => None,
    }
}

/// Factor from feet to `unit`; `None` if `unit` is not a length.
fn length_factor(unit: Unit) -> Option<f64> {
    match unit {
        Unit::Meter => Some(M_PER_FT),
        Unit::Foot => Some(1.0),
        _ => None,
    }
}

/// Converts `value` between two units of the same non-hydraulic quantity (percent/fraction,
/// volt/millivolt, identical units).
pub fn convert_plain(value: f64, from: Unit, to: Unit) -> Result<f64, UnitError> {
    if from == to {
        return Ok(value);
    }
    match (from, to) {
        (Unit::Percent, Unit::Fraction) => Ok(value / 100.0),
        (Unit::Fraction, Unit::Percent) => Ok(value * 100.0),
        (Unit::Volt, Unit::Millivolt) => Ok(value * 1000.0),
        (Unit::Millivolt, Unit::Volt) => Ok(value / 1000.0),
        (Unit::Flow(a), Unit::Flow(b)) => Ok(value / flow_factor(a) * flow_factor(b)),
        (Unit::Meter | Unit::Foot, Unit::Meter | Unit::Foot) => {
            Ok(value / length_factor(from).unwrap_or(1.0) * length_factor(to).unwrap_or(1.0))
        }
        _ => Err(UnitError::Inconvertible { from, to }),
    }
}

/// The units of one hydraulic network: what estimation and comparison with the solver use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkUnits {
    /// The network's flow units.
    pub flow_units: FlowUnits,
    /// The network's pressure unit (the `PRESSURE` option, or psi/m by unit system).
    pub pressure_unit: Unit,
    /// Factors from internal units (ft, cfs) to the network's units.
    pub factors: UnitFactors,
    /// Specific gravity of the fluid (pressure to head).
    pub specific_gravity: f64,
}

impl NetworkUnits {
    /// The units of a network with these `[OPTIONS]`.
    pub fn new(options: &Options) -> Self {
        let factors = UnitFactors::new(options);
        let pressure_unit = match options.pressure_units {
            Some(PressureUnits::Psi) => Unit::Psi,
            Some(PressureUnits::Kpa) => Unit::Kpa,
            Some(PressureUnits::Bar) => Unit::Bar,
            Some(PressureUnits::Meters) => Unit::Meter,
            Some(PressureUnits::Feet) => Unit::Foot,
            None if factors.si => Unit::Meter,
            None => Unit::Psi,
        };
        Self {
            flow_units: options.flow_units,
            pressure_unit,
            factors,
            specific_gravity: options.specific_gravity,
        }
    }

    /// The network's length (head, level) unit.
    pub fn length_unit(&self) -> Unit {
        if self.factors.si {
            Unit::Meter
        } else {
            Unit::Foot
        }
    }

    /// Converts a pressure in `unit` to the network's pressure unit.
    pub fn pressure(&self, value: f64, unit: Unit) -> Result<f64, UnitError> {
        let from = pressure_factor(unit, self.specific_gravity).ok_or(UnitError::Incompatible {
            unit,
            kind: SensorKind::Pressure,
        })?;
        Ok(value / from * self.factors.pressure)
    }

    /// Converts a head or level in `unit` to the network's length unit.
    pub fn length(&self, value: f64, unit: Unit) -> Result<f64, UnitError> {
        let from = length_factor(unit).ok_or(UnitError::Incompatible {
            unit,
            kind: SensorKind::Head,
        })?;
        Ok(value / from * self.factors.head)
    }

    /// Converts a flow in `unit` to the network's flow unit.
    pub fn flow(&self, value: f64, unit: Unit) -> Result<f64, UnitError> {
        match unit {
            Unit::Flow(f) => Ok(value / flow_factor(f) * self.factors.flow),
            _ => Err(UnitError::Incompatible {
                unit,
                kind: SensorKind::Flow,
            }),
        }
    }
}

/// A sensor: what it measures, where, and its default unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// Unique id within its municipality.
    pub id: String,
    /// What is measured.
    pub kind: SensorKind,
    /// Id of the network node or link it is attached to (the device id for battery/signal).
    pub target: String,
    /// Unit of readings that carry none.
    pub unit: Unit,
}

impl Sensor {
    /// A sensor; fails when `unit` cannot express `kind`'s quantity.
    pub fn new(
        id: impl Into<String>,
        kind: SensorKind,
        target: impl Into<String>,
        unit: Unit,
    ) -> Result<Self, UnitError> {
        if !kind.accepts(unit) {
            return Err(UnitError::Incompatible { unit, kind });
        }
        Ok(Self {
            id: id.into(),
            kind,
            target: target.into(),
            unit,
        })
    }

    /// The unit of `reading`: its own (parsed and checked against the kind) or the sensor's.
    pub fn reading_unit(&self, reading: &Reading) -> Result<Unit, UnitError> {
        let unit = match &reading.unit {
            Some(name) => name.parse::<Unit>()?,
            None => self.unit,
        };
        if !self.kind.accepts(unit) {
            return Err(UnitError::Incompatible {
                unit,
                kind: self.kind,
            });
        }
        Ok(unit)
    }

    /// The reading's value in the sensor's own unit (what storage keeps).
    pub fn to_sensor_unit(&self, reading: &Reading) -> Result<f64, UnitError> {
        let unit = self.reading_unit(reading)?;
        if !reading.value.is_finite() {
            return Err(UnitError::NotFinite(reading.value));
        }
        match self.kind {
            // Stored exactly as reported: a round trip through feet could move the last bit.
            SensorKind::Pressure if unit == self.unit => Ok(reading.value),
            SensorKind::Pressure => {
                // Through feet of water column; the specific gravity cancels out.
                let ft = reading.value / pressure_factor(unit, 1.0).unwrap_or(1.0);
                Ok(ft * pressure_factor(self.unit, 1.0).unwrap_or(1.0))
            }
            _ => convert_plain(reading.value, unit, self.unit),
        }
    }

    /// The stored form of `reading`: its value in the sensor's unit, with its flags. A value that
    /// cannot be converted is kept as reported and flagged [`QualityFlags::INVALID`].
    pub fn to_point(&self, reading: &Reading) -> Point {
        match self.to_sensor_unit(reading) {
            Ok(value) => Point {
                timestamp: reading.timestamp,
                value,
                flags: reading.flags,
            },
            Err(_) => Point {
                timestamp: reading.timestamp,
                value: reading.value,
                flags: reading.flags | QualityFlags::INVALID,
            },
        }
    }

    /// The reading's value in the network's units: pressure, head/level and flow/demand are
    /// converted to `net`'s units; valve position to percent open; pump status, battery and
    /// signal stay in the sensor's unit.
    pub fn to_network(&self, reading: &Reading, net: &NetworkUnits) -> Result<f64, UnitError> {
        let unit = self.reading_unit(reading)?;
        let value = reading.value;
        if !value.is_finite() {
            return Err(UnitError::NotFinite(value));
        }
        match self.kind {
            SensorKind::Pressure => net.pressure(value, unit),
            SensorKind::Head | SensorKind::Level => net.length(value, unit),
            SensorKind::Flow | SensorKind::Demand => net.flow(value, unit),
            SensorKind::ValvePosition => convert_plain(value, unit, Unit::Percent),
            SensorKind::PumpStatus | SensorKind::Battery | SensorKind::Signal => {
                convert_plain(value, unit, self.unit)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(flow: FlowUnits, pressure: Option<PressureUnits>) -> Options {
        Options {
            flow_units: flow,
            pressure_units: pressure,
            ..Options::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn pressure_to_network_units() {
        let si = NetworkUnits::new(&options(FlowUnits::Lps, None));
        let pressure = Sensor::new("p1", SensorKind::Pressure, "J1", Unit::Meter).unwrap();
        // 1 psi = 1/0.4333 ft = 0.3048/0.4333 m of water.
        let r = Reading::new("p1", 0, 1.0).with_unit("psi");
        assert!(close(
            pressure.to_network(&r, &si).unwrap(),
            M_PER_FT / PSI_PER_FT
        ));
        let r = Reading::new("p1", 0, 100.0).with_unit("kPa");
        assert!(close(
            pressure.to_network(&r, &si).unwrap(),
            100.0 / (KPA_PER_PSI * PSI_PER_FT) * M_PER_FT
        ));
        let r = Reading::new("p1", 0, 2.0).with_unit("bar");
        assert!(close(
            pressure.to_network(&r, &si).unwrap(),
            2.0 / (BAR_PER_PSI * PSI_PER_FT) * M_PER_FT
        ));
        let r = Reading::new("p1", 0, 10.0).with_unit("ft");
        assert!(close(
            pressure.to_network(&r, &si).unwrap(),
            10.0 * M_PER_FT
        ));
        // No unit: the sensor's (metres), identity.
        let r = Reading::new("p1", 0, 42.5);
        assert!(close(pressure.to_network(&r, &si).unwrap(), 42.5));

        let us_kpa = NetworkUnits::new(&options(FlowUnits::Gpm, Some(PressureUnits::Kpa)));
        let r = Reading::new("p1", 0, 300.0).with_unit("kpa");
        assert!(close(pressure.to_network(&r, &us_kpa).unwrap(), 300.0));
        let us = NetworkUnits::new(&options(FlowUnits::Gpm, None));
        let r = Reading::new("p1", 0, 50.0).with_unit("psi");
        assert!(close(pressure.to_network(&r, &us).unwrap(), 50.0));
        assert_eq!(us.pressure_unit, Unit::Psi);
        assert_eq!(us_kpa.pressure_unit, Unit::Kpa);
        assert_eq!(si.pressure_unit, Unit::Meter);
    }

    #[test]
    fn level_and_head_to_network_units() {
        let us = NetworkUnits::new(&options(FlowUnits::Gpm, None));
        let level = Sensor::new("t1", SensorKind::Level, "T1", Unit::Meter).unwrap();
        let r = Reading::new("t1", 0, 3.048);
        assert!(close(level.to_network(&r, &us).unwrap(), 10.0));
        assert_eq!(us.length_unit(), Unit::Foot);
        let si = NetworkUnits::new(&options(FlowUnits::Cmh, None));
        let head = Sensor::new("h1", SensorKind::Head, "J1", Unit::Foot).unwrap();
        assert!(close(
            head.to_network(&Reading::new("h1", 0, 100.0), &si).unwrap(),
            30.48
        ));
    }

    #[test]
    fn flow_in_every_epanet_unit() {
        let all = [
            FlowUnits::Cfs,
            FlowUnits::Gpm,
            FlowUnits::Mgd,
            FlowUnits::Imgd,
            FlowUnits::Afd,
            FlowUnits::Lps,
            FlowUnits::Lpm,
            FlowUnits::Mld,
            FlowUnits::Cmh,
            FlowUnits::Cmd,
            FlowUnits::Cms,
        ];
        let flow = Sensor::new("f1", SensorKind::Flow, "P1", Unit::Flow(FlowUnits::Lps)).unwrap();
        for net_units in all {
            let net = NetworkUnits::new(&options(net_units, None));
            for reading_units in all {
                // 1 cfs expressed in the reading's units must become 1 cfs in the network's.
                let r = Reading::new("f1", 0, flow_factor(reading_units))
                    .with_unit(reading_units.name());
                let got = flow.to_network(&r, &net).unwrap();
                assert!(
                    close(got, flow_factor(net_units)),
                    "{reading_units:?} -> {net_units:?}: {got}"
                );
            }
        }
        let r = Reading::new("f1", 0, 3.6).with_unit("m3/h");
        let net = NetworkUnits::new(&options(FlowUnits::Lps, None));
        let got = flow.to_network(&r, &net).unwrap();
        assert!((got - 1.0).abs() < 1e-3, "{got}");
    }

    #[test]
    fn unknown_and_incompatible_units_are_errors() {
        let net = NetworkUnits::new(&options(FlowUnits::Lps, None));
        let pressure = Sensor::new("p1", SensorKind::Pressure, "J1", Unit::Meter).unwrap();
        let r = Reading::new("p1", 0, 1.0).with_unit("furlongs");
        assert_eq!(
            pressure.to_network(&r, &net),
            Err(UnitError::Unknown("furlongs".into()))
        );
        let r = Reading::new("p1", 0, 1.0).with_unit("gpm");
        assert!(matches!(
            pressure.to_network(&r, &net),
            Err(UnitError::Incompatible {
                kind: SensorKind::Pressure,
                ..
            })
        ));
        assert!(Sensor::new("f", SensorKind::Flow, "P1", Unit::Psi).is_err());
        let battery = Sensor::new("b", SensorKind::Battery, "dev", Unit::Volt).unwrap();
        let r = Reading::new("b", 0, 50.0).with_unit("%");
        assert!(matches!(
            battery.to_network(&r, &net),
            Err(UnitError::Inconvertible { .. })
        ));
        let r = Reading::new("b", 0, 3600.0).with_unit("mV");
        assert!(close(battery.to_network(&r, &net).unwrap(), 3.6));
        let r = Reading::new("p1", 0, f64::NAN);
        assert!(matches!(
            pressure.to_network(&r, &net),
            Err(UnitError::NotFinite(_))
        ));
        assert!("sideways".parse::<SensorKind>().is_err());
    }

    #[test]
    fn sensor_unit_and_valve_position() {
        let net = NetworkUnits::new(&options(FlowUnits::Lps, None));
        let pressure = Sensor::new("p1", SensorKind::Pressure, "J1", Unit::Kpa).unwrap();
        let r = Reading::new("p1", 0, 1.0).with_unit("bar");
        let got = pressure.to_sensor_unit(&r).unwrap();
        assert!((got - 100.0).abs() < 0.01, "{got}");
        let valve = Sensor::new("v1", SensorKind::ValvePosition, "V1", Unit::Fraction).unwrap();
        assert!(close(
            valve
                .to_network(&Reading::new("v1", 0, 0.25), &net)
                .unwrap(),
            25.0
        ));
        for kind in SensorKind::ALL {
            assert_eq!(kind.name().parse::<SensorKind>().unwrap(), kind);
        }
        for name in [
            "psi", "kPa", "bar", "m", "ft", "LPS", "%", "V", "mV", "dBm", "status",
        ] {
            let unit: Unit = name.parse().unwrap();
            assert_eq!(unit.name().parse::<Unit>().unwrap(), unit);
        }
        assert_eq!(SensorKind::Flow.target_kind(), TargetKind::Link);
        let p = pressure.to_point(&Reading::new("p1", 7, 2.0).with_unit("bar"));
        assert_eq!(p.timestamp, 7);
        assert!((p.value - 200.0).abs() < 0.01 && p.flags.is_empty());
        let bad = pressure.to_point(&Reading::new("p1", 8, 2.0).with_unit("gpm"));
        assert_eq!((bad.value, bad.flags), (2.0, QualityFlags::INVALID));
    }
}
