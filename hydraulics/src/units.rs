//! Conversion between a file's units and the solver's internal units (feet, cfs, seconds).
//!
//! The factors are EPANET's (`input1.c`), so converted values match EPANET to the last digit.
//! A value in file units = internal value * factor.

use crate::model::{FlowUnits, Options, PressureUnits};

pub const GPM_PER_CFS: f64 = 448.831;
pub const AFD_PER_CFS: f64 = 1.9837;
pub const MGD_PER_CFS: f64 = 0.64632;
pub const IMGD_PER_CFS: f64 = 0.5382;
pub const LPS_PER_CFS: f64 = 28.317;
pub const LPM_PER_CFS: f64 = 1699.0;
pub const CMS_PER_CFS: f64 = 0.028317;
pub const CMH_PER_CFS: f64 = 101.94;
pub const CMD_PER_CFS: f64 = 2446.6;
pub const MLD_PER_CFS: f64 = 2.4466;
pub const M3_PER_FT3: f64 = 0.028317;
pub const M_PER_FT: f64 = 0.3048;
pub const PSI_PER_FT: f64 = 0.4333;
pub const KPA_PER_PSI: f64 = 6.895;
pub const BAR_PER_PSI: f64 = 0.068948;
pub const KW_PER_HP: f64 = 0.7457;

/// Factors from internal units to the file's units, one per quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitFactors {
    pub flow: f64,
    pub elevation: f64,
    pub head: f64,
    pub length: f64,
    /// Pipe diameter (ft to in or mm).
    pub diameter: f64,
    pub pressure: f64,
    pub volume: f64,
    pub power: f64,
    pub velocity: f64,
    /// Headloss per 1000 length units.
    pub headloss: f64,
    pub si: bool,
}

impl UnitFactors {
    pub fn new(options: &Options) -> Self {
        let flow = flow_factor(options.flow_units);
        let si = !options.flow_units.is_us();
        let sg = options.specific_gravity;
        let pressure_units = options.pressure_units.unwrap_or(if si {
            PressureUnits::Meters
        } else {
            PressureUnits::Psi
        });
        let length_factor = if si { M_PER_FT } else { 1.0 };
        let pressure = match pressure_units {
            PressureUnits::Psi => PSI_PER_FT * sg,
            PressureUnits::Kpa => KPA_PER_PSI * PSI_PER_FT * sg,
            PressureUnits::Bar => BAR_PER_PSI * PSI_PER_FT * sg,
            PressureUnits::Meters => M_PER_FT * sg,
            PressureUnits::Feet => sg,
        };
        Self {
            flow,
            elevation: length_factor,
            head: length_factor,
            length: length_factor,
            diameter: if si { 1000.0 * M_PER_FT } else { 12.0 },
            pressure,
            // EPANET converts volumes with the cube of its length factor, not with M3_PER_FT3,
            // so that a tank's volume and its area times its level agree.
            volume: length_factor * length_factor * length_factor,
            power: if si { KW_PER_HP } else { 1.0 },
            velocity: length_factor,
            headloss: 1000.0,
            si,
        }
    }
}

/// Flow units per cfs.
pub fn flow_factor(units: FlowUnits) -> f64 {
    match units {
        FlowUnits::Cfs => 1.0,
        FlowUnits::Gpm => GPM_PER_CFS,
        FlowUnits::Mgd => MGD_PER_CFS,
        FlowUnits::Imgd => IMGD_PER_CFS,
        FlowUnits::Afd => AFD_PER_CFS,
        FlowUnits::Lps => LPS_PER_CFS,
        FlowUnits::Lpm => LPM_PER_CFS,
        FlowUnits::Mld => MLD_PER_CFS,
        FlowUnits::Cmh => CMH_PER_CFS,
        FlowUnits::Cmd => CMD_PER_CFS,
        FlowUnits::Cms => CMS_PER_CFS,
    }
}
