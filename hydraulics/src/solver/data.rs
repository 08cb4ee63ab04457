//! The solver's compiled network and its mutable hydraulic state.
//!
//! Everything here is in EPANET's internal units: feet, cubic feet per second, seconds.
//! Node and link indices are those of the [`crate::model::Network`] it was compiled from
//! (junctions first, then reservoirs and tanks), so results map back without a lookup.
//!
//! The compiled network is immutable during a run; [`HydState`] holds what changes.

use crate::model;

/// EPANET's "no value" marker. A PRV, PSV, PBV, FCV, TCV or PCV whose `setting` is `MISSING`
/// has a fixed status (opened or closed by the user, a control or a rule) instead of
/// controlling; a control's missing setting is `None` instead.
pub const MISSING: f64 = -1.0e10;

/// Link types as the solver distinguishes them (EPANET's `LinkType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    CvPipe,
    Pipe,
    Pump,
    Prv,
    Psv,
    Pbv,
    Fcv,
    Tcv,
    Gpv,
    Pcv,
}

impl LinkType {
    pub fn is_valve(self) -> bool {
        matches!(
            self,
            Self::Prv | Self::Psv | Self::Pbv | Self::Fcv | Self::Tcv | Self::Gpv | Self::Pcv
        )
    }
    pub fn is_pipe(self) -> bool {
        matches!(self, Self::CvPipe | Self::Pipe)
    }
}

/// Link and tank status codes, numbered as EPANET's `StatusType` (the reference files'
/// `state` field uses these numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// Pump cannot deliver head (closed).
    XHead = 0,
    /// Temporarily closed (check valve, or pump/valve closed by the solver).
    TempClosed = 1,
    Closed = 2,
    Open = 3,
    /// Valve controlling.
    Active = 4,
    /// Pump exceeds maximum flow.
    XFlow = 5,
    /// FCV cannot supply flow.
    XFcv = 6,
    /// Valve cannot supply pressure.
    XPressure = 7,
    /// Tank filling.
    Filling = 8,
    /// Tank emptying.
    Emptying = 9,
    /// Tank overflowing.
    Overflowing = 10,
}

impl Status {
    /// `true` for the statuses EPANET treats as closed (`<= CLOSED`).
    pub fn is_closed(self) -> bool {
        self <= Status::Closed
    }
    /// The results' `status` field: 0 closed, 1 open, 2 active (controlling valve).
    pub fn report_code(self) -> u8 {
        match self {
            // EPANET reports every status up to CLOSED as closed, a pump that cannot deliver
            // head (XHEAD) included.
            Status::XHead | Status::TempClosed | Status::Closed => 0,
            Status::Active | Status::XFcv => 2,
            _ => 1,
        }
    }
}

/// A consumer demand at a junction.
#[derive(Debug, Clone, PartialEq)]
pub struct HydDemand {
    /// Base demand, cfs.
    pub base: f64,
    /// Pattern index, `None` = constant 1.0 (the default pattern is resolved at compile time).
    pub pattern: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HydNode {
    pub id: String,
    /// Elevation, ft (for a tank its bottom, for a reservoir its head).
    pub elevation: f64,
    pub demands: Vec<HydDemand>,
    /// Emitter coefficient in internal units as EPANET stores it (0 = no emitter).
    pub emitter_coeff: f64,
}

/// A tank or reservoir (EPANET's `Stank`). Reservoirs have `area == 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct HydTank {
    pub node: usize,
    /// Cross-section area, ft2; 0 for a reservoir.
    pub area: f64,
    /// Minimum, maximum and initial head (elevation + level), ft.
    pub hmin: f64,
    pub hmax: f64,
    pub h0: f64,
    /// Minimum, maximum and initial volume, ft3.
    pub vmin: f64,
    pub vmax: f64,
    pub v0: f64,
    /// Reservoir head pattern.
    pub pattern: Option<usize>,
    /// Volume curve, if any; compiled as level above the tank bottom (ft) to volume (ft3).
    pub volume_curve: Option<usize>,
    pub can_overflow: bool,
}

impl HydTank {
    pub fn is_reservoir(&self) -> bool {
        self.area == 0.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HydLink {
    pub id: String,
    pub from: usize,
    pub to: usize,
    pub link_type: LinkType,
    /// Diameter, ft.
    pub diameter: f64,
    /// Length, ft.
    pub length: f64,
    /// Roughness as EPANET stores it after conversion (H-W C, D-W roughness in ft, Manning n).
    pub roughness: f64,
    /// Minor loss coefficient in head = km * q^2 form (EPANET's converted `Km`).
    pub minor_loss: f64,
    /// Resistance coefficient (EPANET's `R`), computed at compile time.
    pub resistance: f64,
    /// Initial status and setting (pump speed, valve setting in internal units).
    pub initial_status: Status,
    pub initial_setting: f64,
    /// FAVAD leakage area and expansion coefficient as the file gives them (EPANET keeps
    /// them unconverted and scales them when it computes leakage).
    pub leak_area: f64,
    pub leak_expansion: f64,
    /// Index into [`HydNetwork::pumps`] for a pump, into valves' curve for GPV/PCV.
    pub pump: Option<usize>,
    pub curve: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpType {
    ConstHp,
    PowerFunc,
    Custom,
    NoCurve,
}

/// A pump's characteristic (EPANET's `Spump`), in internal units.
#[derive(Debug, Clone, PartialEq)]
pub struct HydPump {
    pub link: usize,
    pub pump_type: PumpType,
    /// Design flow, maximum flow, shutoff head, ... as EPANET derives them.
    pub q0: f64,
    pub qmax: f64,
    pub hmax: f64,
    pub h0: f64,
    pub r: f64,
    pub n: f64,
    pub head_curve: Option<usize>,
    pub efficiency_curve: Option<usize>,
    /// Speed pattern.
    pub speed_pattern: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HydCurve {
    pub id: String,
    pub kind: model::CurveKind,
    /// Points converted to internal units for the curve's use, except pump head curves and
    /// GPV head loss curves, which stay in file units (see `coeffs::head_curve_segment`).
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// Node below a grade.
    LowLevel,
    /// Node above a grade.
    HiLevel,
    /// At a time since the start.
    Timer,
    /// At a clock time of day.
    TimeOfDay,
}

/// A simple control (EPANET's `Scontrol`), internal units.
#[derive(Debug, Clone, PartialEq)]
pub struct HydControl {
    pub link: usize,
    pub node: Option<usize>,
    pub kind: ControlKind,
    /// Time (Timer, TimeOfDay), seconds.
    pub time: i64,
    /// Head the node is compared with (elevation + level or pressure), ft.
    pub grade: f64,
    pub status: Option<Status>,
    /// Setting in internal units; `None` when the control sets a status.
    pub setting: Option<f64>,
    pub enabled: bool,
}

/// Solver options in internal units (EPANET's `Hydraul` parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct HydOptions {
    pub headloss: model::HeadlossFormula,
    /// Relative flow-change convergence (ACCURACY).
    pub accuracy: f64,
    pub max_trials: u32,
    /// Extra trials when unbalanced (`None` = stop).
    pub extra_trials: Option<u32>,
    pub check_freq: u32,
    pub max_check: u32,
    pub damp_limit: f64,
    /// HEADERROR in ft (0 = off).
    pub head_error_limit: f64,
    /// FLOWCHANGE in cfs (0 = off).
    pub flow_change_limit: f64,
    /// Head tolerance for status checks, ft, and flow tolerance, cfs (EPANET Htol, Qtol).
    pub htol: f64,
    pub qtol: f64,
    /// Low-flow resistance threshold (EPANET RQtol).
    pub rqtol: f64,
    /// Kinematic viscosity, ft2/s.
    pub viscosity: f64,
    pub specific_gravity: f64,
    pub demand_multiplier: f64,
    /// Emitter exponent as EPANET stores it (`Qexp`, i.e. 1/exponent).
    pub emitter_exponent: f64,
    pub emitter_backflow: bool,
    pub demand_model: model::DemandModel,
    /// PDA minimum and required pressure, ft; exponent.
    pub pmin: f64,
    pub preq: f64,
    pub pexp: f64,
    /// Headloss formula exponent (1.852 H-W, 2 D-W and C-M).
    pub hexp: f64,
}

/// Time parameters, seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HydTimes {
    pub duration: i64,
    pub hydraulic_step: i64,
    pub pattern_step: i64,
    pub pattern_start: i64,
    pub report_step: i64,
    pub report_start: i64,
    pub rule_step: i64,
    pub start_clocktime: i64,
}

/// The network compiled for solving.
#[derive(Debug, Clone)]
pub struct HydNetwork {
    pub nodes: Vec<HydNode>,
    /// Number of junctions; nodes `0..junctions` are junctions, the rest tanks/reservoirs.
    pub junctions: usize,
    pub links: Vec<HydLink>,
    /// Tanks and reservoirs; `tank_of_node[n - junctions]` maps a node to its tank.
    pub tanks: Vec<HydTank>,
    pub pumps: Vec<HydPump>,
    /// Links that are valves.
    pub valves: Vec<usize>,
    pub patterns: Vec<Vec<f64>>,
    pub curves: Vec<HydCurve>,
    pub controls: Vec<HydControl>,
    /// Rules, with their values still in file units; the rule engine converts with `units`.
    pub rules: Vec<model::Rule>,
    pub options: HydOptions,
    pub times: HydTimes,
    pub units: crate::units::UnitFactors,
}

/// Everything that changes while solving (EPANET's hydraulic arrays).
#[derive(Debug, Clone, Default)]
pub struct HydState {
    /// Node heads, ft.
    pub head: Vec<f64>,
    /// Required (full) demand at junctions from patterns, cfs; for tanks and reservoirs the net
    /// outflow after a solve.
    pub node_demand: Vec<f64>,
    /// Consumer demand actually delivered (differs from the full demand under PDA), cfs.
    pub demand_flow: Vec<f64>,
    pub emitter_flow: Vec<f64>,
    pub leakage_flow: Vec<f64>,
    /// Link flows, cfs.
    pub flow: Vec<f64>,
    /// Pump speed or valve setting (internal units); [`MISSING`] for a valve with a fixed
    /// status, as EPANET does. Pipes hold their roughness, GPVs their curve index.
    pub setting: Vec<f64>,
    pub status: Vec<Status>,
    /// Tank volumes, ft3, indexed like `HydNetwork::tanks`.
    pub tank_volume: Vec<f64>,
    /// Current time since the start, seconds.
    pub time: i64,
    /// Sum of the positive junction demands of the current period (EPANET's `Dsystem`), cfs:
    /// set where the period's demands are computed, read by `SYSTEM DEMAND` rule premises.
    pub system_demand: f64,
}

/// What the solver reports about one hydraulic solve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SolveOutcome {
    /// Trials made (EPANET's count: one more than the limit when the limit was reached).
    pub iterations: u32,
    /// Sum of flow changes over sum of flows at the last trial (EPANET's relative error).
    pub relative_error: f64,
    /// `true` when the trials stopped because the network balanced; with more trials than
    /// `max_trials` that is EPANET's "may be hydraulically unstable" case.
    pub converged: bool,
    /// Set when the equations could not be solved (EPANET error 110): the node whose
    /// pivot failed and no active control valve could be fixed to cure it.
    pub ill_conditioned_node: Option<usize>,
}
