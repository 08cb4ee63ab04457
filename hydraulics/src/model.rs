//! The network model as an EPANET `.inp` file states it.
//!
//! Values are kept in the file's own units (the units that `[OPTIONS] UNITS` selects), so that
//! reading and writing a file is exact. The solver converts to its internal units when it
//! compiles a [`Network`] (see `solver::compile`).
//!
//! Cross references (a demand's pattern, a link's end nodes, a pump's curve) are indices into
//! the vectors of [`Network`]; the reader resolves names and rejects undefined ones.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A whole water distribution network with its options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Network {
    /// Lines of the `[TITLE]` section.
    pub title: Vec<String>,
    /// Junctions first, then reservoirs and tanks in file order (EPANET's node order).
    pub nodes: Vec<Node>,
    /// Pipes, pumps and valves in file order.
    pub links: Vec<Link>,
    pub patterns: Vec<Pattern>,
    pub curves: Vec<Curve>,
    pub controls: Vec<Control>,
    pub rules: Vec<Rule>,
    pub options: Options,
    pub times: Times,
    pub energy: Energy,
    /// `[REPORT]` lines, kept as written.
    pub report: Vec<String>,
    /// `[LABELS]` entries.
    pub labels: Vec<Label>,
    /// `[BACKDROP]` lines, kept as written.
    pub backdrop: Vec<String>,
    /// Water-quality sections (`QUALITY`, `SOURCES`, `REACTIONS`, `MIXING`) and sections this
    /// reader does not know, kept as written, in file order.
    pub kept_sections: Vec<KeptSection>,
}

/// Id of the flat pattern that [`Network::add_constant_outflow`] gives its demands.
pub const CONSTANT_PATTERN_ID: &str = "AQUATWIN-CONSTANT";

impl Network {
    /// Index of the node with this id.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
    /// Index of the link with this id.
    pub fn link_index(&self, id: &str) -> Option<usize> {
        self.links.iter().position(|l| l.id == id)
    }
    /// Index of the pattern of demands that name none: the `PATTERN` option, else a pattern
    /// named "1" (EPANET's rule); `None`: such demands are constant.
    pub fn default_pattern_index(&self) -> Option<usize> {
        let id = self.options.default_pattern.as_deref().unwrap_or("1");
        self.patterns
            .iter()
            .position(|p| p.id.eq_ignore_ascii_case(id))
    }
    /// Map from node id to index, for callers that look up many ids.
    pub fn node_ids(&self) -> HashMap<&str, usize> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect()
    }
    /// Map from link id to index.
    pub fn link_ids(&self) -> HashMap<&str, usize> {
        self.links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.id.as_str(), i))
            .collect()
    }
    /// Adds a constant extra outflow `flow` (network flow unit) at junction `node`: a demand
    /// with a flat pattern of its own, which the default pattern does not modulate (a leak or
    /// a burst in a what-if). `false` when `node` is not a junction.
    pub fn add_constant_outflow(&mut self, node: usize, flow: f64) -> bool {
        let pattern = match self
            .patterns
            .iter()
            .position(|p| p.id == CONSTANT_PATTERN_ID)
        {
            Some(index) => index,
            None => {
                self.patterns.push(Pattern {
                    id: CONSTANT_PATTERN_ID.into(),
                    multipliers: vec![1.0],
                });
                self.patterns.len() - 1
            }
        };
        let Some(NodeKind::Junction(junction)) = self.nodes.get_mut(node).map(|n| &mut n.kind)
        else {
            return false;
        };
        junction.demands.push(Demand {
            base: flow,
            pattern: Some(pattern),
            category: None,
        });
        true
    }
    pub fn junction_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Junction(_)))
            .count()
    }
}

/// A section kept verbatim (its data lines, comments excluded).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeptSection {
    /// Upper-case name without brackets, e.g. `QUALITY`.
    pub name: String,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub coordinates: Option<(f64, f64)>,
    pub tag: Option<String>,
    /// `[EMITTERS]` flow coefficient (flow units per pressure unit ^ emitter exponent); 0 = none.
    pub emitter_coefficient: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeKind {
    Junction(Junction),
    Reservoir(Reservoir),
    Tank(Tank),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Junction {
    /// Elevation, in length units.
    pub elevation: f64,
    /// Demand categories. `[JUNCTIONS]`' own demand is the first entry unless `[DEMANDS]`
    /// replaced it (EPANET's rule).
    pub demands: Vec<Demand>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Demand {
    /// Base demand, in flow units.
    pub base: f64,
    /// Pattern index; `None` means the network's default pattern.
    pub pattern: Option<usize>,
    /// Category name (`[DEMANDS]` comment after `;`).
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reservoir {
    /// Total head, in length units.
    pub head: f64,
    /// Head pattern index.
    pub pattern: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tank {
    /// Bottom elevation, in length units.
    pub elevation: f64,
    pub initial_level: f64,
    pub min_level: f64,
    pub max_level: f64,
    pub diameter: f64,
    /// Minimum volume, in volume units (ft3 or m3).
    pub min_volume: f64,
    /// Volume curve index (volume vs level).
    pub volume_curve: Option<usize>,
    /// `true` when the tank may overflow (EPANET 2.2+ `YES` in the overflow column).
    pub overflow: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub id: String,
    pub from: usize,
    pub to: usize,
    pub kind: LinkKind,
    /// Intermediate map points from `[VERTICES]`.
    pub vertices: Vec<(f64, f64)>,
    pub tag: Option<String>,
    /// Initial status or setting from `[STATUS]`, overriding the one in the link's section.
    /// The reader records it only where EPANET's `changestatus` acts: pipes and GPVs get
    /// `Open`/`Closed` only; pumps get `Open` (speed 1), `Closed` (speed 0) or `Value(speed)`
    /// (closed when 0); other valves get `Open`/`Closed` (fixed status) or `Value(setting)`
    /// (active with that setting). Check valves never have one.
    pub initial_status: Option<StatusSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LinkKind {
    Pipe(Pipe),
    Pump(Pump),
    Valve(Valve),
}

/// An initial status given as a keyword or a number (pump speed, valve setting).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum StatusSpec {
    Open,
    Closed,
    Value(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PipeStatus {
    Open,
    Closed,
    /// Check valve: flow only from `from` to `to`.
    CheckValve,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipe {
    /// Length, in length units.
    pub length: f64,
    /// Diameter, in inches (US) or millimetres (SI).
    pub diameter: f64,
    /// Hazen-Williams C, Darcy-Weisbach roughness (millifeet or mm) or Manning n.
    pub roughness: f64,
    pub minor_loss: f64,
    pub status: PipeStatus,
    /// `[LEAKAGE]` area per 100 length units (mm2 or in2 per ...), 0 = none.
    pub leak_area: f64,
    /// `[LEAKAGE]` expansion coefficient.
    pub leak_expansion: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pump {
    /// Head curve (`HEAD id`) index, if given.
    pub head_curve: Option<usize>,
    /// Constant power (`POWER value`), in kW or hp.
    pub power: Option<f64>,
    /// Relative speed (`SPEED value`), default 1.
    pub speed: f64,
    /// Speed pattern (`PATTERN id`).
    pub pattern: Option<usize>,
    /// `[ENERGY] PUMP id EFFIC curve`.
    pub efficiency_curve: Option<usize>,
    /// `[ENERGY] PUMP id PRICE value`.
    pub energy_price: Option<f64>,
    /// `[ENERGY] PUMP id PATTERN pat`.
    pub price_pattern: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValveType {
    /// Pressure reducing.
    Prv,
    /// Pressure sustaining.
    Psv,
    /// Pressure breaker.
    Pbv,
    /// Flow control.
    Fcv,
    /// Throttle control.
    Tcv,
    /// General purpose (headloss curve).
    Gpv,
    /// Positional control (EPANET 2.3; setting is % open, curve gives the loss ratio).
    Pcv,
}

impl ValveType {
    /// The type's keyword in `.inp` files and results (`PRV`, `PSV`, ...).
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Prv => "PRV",
            Self::Psv => "PSV",
            Self::Pbv => "PBV",
            Self::Fcv => "FCV",
            Self::Tcv => "TCV",
            Self::Gpv => "GPV",
            Self::Pcv => "PCV",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Valve {
    pub valve_type: ValveType,
    /// Diameter, in inches or millimetres.
    pub diameter: f64,
    /// Pressure, flow or loss coefficient depending on type; unused for GPV.
    pub setting: f64,
    /// GPV headloss curve or PCV valve curve.
    pub curve: Option<usize>,
    pub minor_loss: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pattern {
    pub id: String,
    pub multipliers: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CurveKind {
    /// Not stated (no comment such as `PUMP:` in the file) or not yet used.
    #[default]
    Generic,
    Pump,
    Efficiency,
    Volume,
    Headloss,
    Valve,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Curve {
    pub id: String,
    /// From the curve's use (pump head, tank volume, GPV headloss, PCV, pump efficiency);
    /// an unused curve keeps the kind the file states (a `;PUMP:`-style comment before its
    /// first point, or a type word after a point), else `Generic`.
    pub kind: CurveKind,
    /// (x, y) points in file units, x increasing.
    pub points: Vec<(f64, f64)>,
}

/// What a control or rule does to a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LinkAction {
    Open,
    Closed,
    /// Pump speed or valve setting, in file units.
    Setting(f64),
    /// Rule-only: `STATUS IS ACTIVE` for a valve.
    Active,
}

/// A `[CONTROLS]` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    pub link: usize,
    /// As EPANET reads it: a number on a pipe becomes `Open`/`Closed` (zero closes); on a
    /// pump, `Setting(speed)` closes it when 0 and opens it otherwise; on a valve it is the
    /// new setting (valve active). Never `Active`.
    pub action: LinkAction,
    pub condition: ControlCondition,
    /// `false` for a control written with `DISABLED`.
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlCondition {
    /// `IF NODE id ABOVE value`: pressure for junctions, level for tanks, head for reservoirs
    /// (file units).
    NodeAbove {
        node: usize,
        value: f64,
    },
    NodeBelow {
        node: usize,
        value: f64,
    },
    /// `AT TIME t`, seconds since the start.
    AtTime(u64),
    /// `AT CLOCKTIME t`, seconds since midnight.
    AtClockTime(u64),
}

/// A `[RULES]` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub premises: Vec<Premise>,
    pub then_actions: Vec<RuleAction>,
    pub else_actions: Vec<RuleAction>,
    /// `PRIORITY` value; 0 when not given.
    pub priority: f64,
    /// `false` for a rule marked `DISABLED` (EPANET 2.3); disabled rules are never evaluated.
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PremiseLogic {
    If,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleObject {
    Node(usize),
    Link(usize),
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleVariable {
    Demand,
    Head,
    Grade,
    Level,
    Pressure,
    Flow,
    Status,
    Setting,
    Power,
    Time,
    ClockTime,
    FillTime,
    DrainTime,
}

/// A premise's relation as written. EPANET treats `Is` as `Eq`, `Not` as `Ne`, `Below` as
/// `Lt` and `Above` as `Gt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
    Is,
    Not,
    Below,
    Above,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum PremiseValue {
    /// A number in file units (time variables: seconds, clock time: seconds after midnight).
    Number(f64),
    Open,
    Closed,
    Active,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Premise {
    pub logic: PremiseLogic,
    pub object: RuleObject,
    pub variable: RuleVariable,
    pub relation: Relation,
    pub value: PremiseValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleAction {
    pub link: usize,
    pub action: LinkAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FlowUnits {
    Cfs,
    #[default]
    Gpm,
    Mgd,
    Imgd,
    Afd,
    Lps,
    Lpm,
    Mld,
    Cmh,
    Cmd,
    Cms,
}

impl FlowUnits {
    /// `true` for US customary units (CFS GPM MGD IMGD AFD), which also select feet and psi.
    pub fn is_us(self) -> bool {
        matches!(
            self,
            Self::Cfs | Self::Gpm | Self::Mgd | Self::Imgd | Self::Afd
        )
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Cfs => "CFS",
            Self::Gpm => "GPM",
            Self::Mgd => "MGD",
            Self::Imgd => "IMGD",
            Self::Afd => "AFD",
            Self::Lps => "LPS",
            Self::Lpm => "LPM",
            Self::Mld => "MLD",
            Self::Cmh => "CMH",
            Self::Cmd => "CMD",
            Self::Cms => "CMS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PressureUnits {
    Psi,
    Kpa,
    Meters,
    Bar,
    Feet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HeadlossFormula {
    #[default]
    HazenWilliams,
    DarcyWeisbach,
    ChezyManning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DemandModel {
    /// Demand driven.
    #[default]
    Dda,
    /// Pressure driven.
    Pda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Unbalanced {
    #[default]
    Stop,
    /// Continue for this many more trials with status checks frozen, then go on.
    Continue(u32),
}

/// `[OPTIONS]`. Values in file units; defaults are EPANET 2.3's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub flow_units: FlowUnits,
    /// `PRESSURE` option; `None` = the default of the unit system (psi or metres).
    pub pressure_units: Option<PressureUnits>,
    pub headloss: HeadlossFormula,
    pub specific_gravity: f64,
    /// Relative kinematic viscosity (1 = water at 20 C). The reader converts a file value up
    /// to 1e-3, which EPANET takes as a kinematic viscosity in ft2/s or m2/s, to this ratio.
    pub viscosity: f64,
    pub trials: u32,
    /// Clamped to [1e-5, 0.1] by the reader, as EPANET does.
    pub accuracy: f64,
    pub unbalanced: Unbalanced,
    /// `PATTERN` option: the default demand pattern id. `None`: pattern "1" if it exists.
    pub default_pattern: Option<String>,
    pub demand_multiplier: f64,
    pub emitter_exponent: f64,
    /// `EMITTER BACKFLOW` (EPANET 2.3): emitters may take inflow.
    pub emitter_backflow: bool,
    pub check_freq: u32,
    pub max_check: u32,
    pub damp_limit: f64,
    /// `HEADERROR`; 0 = not used.
    pub head_error: f64,
    /// `FLOWCHANGE`; 0 = not used.
    pub flow_change: f64,
    pub demand_model: DemandModel,
    /// `MINIMUM PRESSURE` for PDA, pressure units.
    pub minimum_pressure: f64,
    /// `REQUIRED PRESSURE` for PDA, pressure units.
    pub required_pressure: f64,
    /// `PRESSURE EXPONENT` for PDA.
    pub pressure_exponent: f64,
    /// Water-quality and other options this crate does not use, kept as written
    /// (`QUALITY`, `DIFFUSIVITY`, `TOLERANCE`, `HYDRAULICS`, `MAP`, ...).
    pub other: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            flow_units: FlowUnits::Gpm,
            pressure_units: None,
            headloss: HeadlossFormula::HazenWilliams,
            specific_gravity: 1.0,
            viscosity: 1.0,
            trials: 200,
            accuracy: 0.001,
            unbalanced: Unbalanced::Stop,
            default_pattern: None,
            demand_multiplier: 1.0,
            emitter_exponent: 0.5,
            emitter_backflow: true,
            check_freq: 2,
            max_check: 10,
            damp_limit: 0.0,
            head_error: 0.0,
            flow_change: 0.0,
            demand_model: DemandModel::Dda,
            minimum_pressure: 0.0,
            required_pressure: 0.1,
            pressure_exponent: 0.5,
            other: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Statistic {
    #[default]
    None,
    Average,
    Minimum,
    Maximum,
    Range,
}

/// `[TIMES]`, all in seconds. Defaults are EPANET's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Times {
    pub duration: u64,
    pub hydraulic_step: u64,
    /// `None` = EPANET's default (hydraulic step / 10).
    pub quality_step: Option<u64>,
    pub pattern_step: u64,
    pub pattern_start: u64,
    pub report_step: u64,
    pub report_start: u64,
    /// `None` = EPANET's default (hydraulic step / 10).
    pub rule_step: Option<u64>,
    /// Clock time of the start, seconds after midnight.
    pub start_clocktime: u64,
    pub statistic: Statistic,
}

impl Default for Times {
    fn default() -> Self {
        Self {
            duration: 0,
            hydraulic_step: 3600,
            quality_step: None,
            pattern_step: 3600,
            pattern_start: 0,
            report_step: 3600,
            report_start: 0,
            rule_step: None,
            start_clocktime: 0,
            statistic: Statistic::None,
        }
    }
}

/// `[ENERGY]` global values (per-pump values live in [`Pump`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    /// Global efficiency, percent.
    pub global_efficiency: f64,
    pub global_price: f64,
    pub global_pattern: Option<usize>,
    pub demand_charge: f64,
}

impl Default for Energy {
    fn default() -> Self {
        Self {
            global_efficiency: 75.0,
            global_price: 0.0,
            global_pattern: None,
            demand_charge: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Label {
    pub x: f64,
    pub y: f64,
    pub text: String,
    /// Anchor node id, if any.
    pub anchor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_outflows_share_one_flat_pattern_and_only_junctions_take_them() {
        let text = include_str!("../networks/Net3.inp");
        let mut network = crate::read_str(text, "Net3.inp").expect("Net3 parses");
        let patterns = network.patterns.len();
        let (junction, other) = (
            network.node_index("105").expect("105 exists"),
            network.node_index("Lake").expect("Lake exists"),
        );
        let demands = |network: &Network| match &network.nodes[junction].kind {
            NodeKind::Junction(j) => j.demands.clone(),
            _ => Vec::new(),
        };
        let before = demands(&network).len();
        assert!(network.add_constant_outflow(junction, 50.0));
        assert!(network.add_constant_outflow(junction, 25.0));
        assert!(!network.add_constant_outflow(other, 10.0));
        assert_eq!(network.patterns.len(), patterns + 1);
        let flat = &network.patterns[patterns];
        assert_eq!(
            (flat.id.as_str(), &flat.multipliers[..]),
            (CONSTANT_PATTERN_ID, &[1.0][..])
        );
        let added: Vec<(f64, Option<usize>)> = demands(&network)[before..]
            .iter()
            .map(|d| (d.base, d.pattern))
            .collect();
        assert_eq!(added, vec![(50.0, Some(patterns)), (25.0, Some(patterns))]);
    }
}
