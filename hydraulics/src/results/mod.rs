//! Results in the layout of `shared/design.md` section 4 (the reference JSON layout), and their
//! comparison with a reference.
//!
//! [`ResultsDocument`] reads EPANET's reference files as well as it writes ours, so the two can
//! be compared with [`compare`], which follows `shared/tools/compare_results.py` rule for rule
//! (ids matched by name, steps matched by time, `atol + rtol * |reference|`, exact status).

use crate::model::{
    DemandModel, FlowUnits, HeadlossFormula, LinkKind, Network, NodeKind, PipeStatus, PressureUnits,
};
use crate::solver::{SimResults, SimWarning, StepResult};
use serde::{Deserialize, Deserializer, Serialize};

mod compare;

pub use compare::{
    compare, format_general, python_repr, Comparison, Quantity, QuantityComparison, Tolerances,
};

/// A whole results file: the network's ids and types, its units and options, and every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsDocument {
    /// Network name (the file stem).
    pub network: String,
    pub units: UnitsRecord,
    pub options: OptionsRecord,
    pub node_ids: Vec<String>,
    /// `JUNCTION`, `RESERVOIR` or `TANK`, aligned with `node_ids`.
    pub node_types: Vec<String>,
    pub link_ids: Vec<String>,
    /// `PIPE`, `CVPIPE`, `PUMP` or a valve type (`PRV` ... `PCV`), aligned with `link_ids`.
    pub link_types: Vec<String>,
    /// Warnings of the run as EPANET words them.
    #[serde(default)]
    pub warnings: Vec<WarningRecord>,
    /// Clock time (`H:MM:SS`) at which the run stopped early, if it did.
    #[serde(default)]
    pub halted_at: Option<String>,
    /// Why the run stopped early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_message: Option<String>,
    /// Nodes whose results are meaningless (disconnected or infeasible); not compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspect_nodes: Vec<String>,
    pub steps: Vec<StepRecord>,
}

/// The units of every value in the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitsRecord {
    /// Flow units keyword, e.g. `GPM`.
    pub flow: String,
    /// `US` or `SI`.
    pub system: String,
    /// `ft` or `m`.
    pub head: String,
    /// `psi`, `m`, `kPa`, `bar` or `ft`.
    pub pressure: String,
    /// EPANET's flow units code (CFS 0, GPM 1, ... CMS 10).
    #[serde(default)]
    pub flow_units_code: u8,
}

/// The options that shaped the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionsRecord {
    /// `H-W`, `D-W` or `C-M`.
    pub headloss: String,
    /// `DDA` or `PDA`.
    pub demand_model: String,
    /// PDA minimum pressure, required pressure and exponent; `None` for DDA.
    #[serde(default)]
    pub pda_pmin_preq_pexp: Option<[f64; 3]>,
    pub duration_s: u64,
    pub hyd_step_s: u64,
    pub report_step_s: u64,
    #[serde(default)]
    pub report_start_s: u64,
    #[serde(default)]
    pub pattern_step_s: u64,
    #[serde(default)]
    pub trials: u32,
    #[serde(default)]
    pub accuracy: f64,
    #[serde(default)]
    pub demand_multiplier: f64,
    #[serde(default)]
    pub viscosity: f64,
    #[serde(default)]
    pub specific_gravity: f64,
}

/// One warning, with how often it occurred and when first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningRecord {
    pub message: String,
    pub count: usize,
    /// Clock time of the first occurrence, `H:MM:SS`.
    pub first_at: String,
}

/// One hydraulic step. Arrays are aligned with the document's id lists, in file units; a
/// missing value (`null`, which is how JSON writes a NaN) reads as NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Seconds since the start.
    pub t: u64,
    /// `true` at reporting times.
    #[serde(default = "default_report")]
    pub report: bool,
    #[serde(default, deserialize_with = "floats_or_null")]
    pub head: Vec<f64>,
    #[serde(default, deserialize_with = "floats_or_null")]
    pub pressure: Vec<f64>,
    #[serde(default, deserialize_with = "floats_or_null")]
    pub demand: Vec<f64>,
    #[serde(default, deserialize_with = "floats_or_null")]
    pub flow: Vec<f64>,
    /// 0 closed, 1 open, 2 active.
    #[serde(default)]
    pub status: Vec<u8>,
    /// EPANET's internal status code of each link.
    #[serde(default)]
    pub state: Vec<u8>,
}

fn default_report() -> bool {
    true
}

fn floats_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
    let values = Vec::<Option<f64>>::deserialize(deserializer)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

impl ResultsDocument {
    /// Builds the document of a simulation of `network`; `name` is the network's name.
    pub fn from_simulation(network: &Network, results: &SimResults, name: &str) -> Self {
        Self {
            warnings: results.warnings.iter().map(WarningRecord::from).collect(),
            halted_at: results.halted.as_ref().map(|h| clock_time(h.t)),
            halt_message: results.halted.as_ref().map(|h| h.message.clone()),
            steps: results.steps.iter().map(StepRecord::from).collect(),
            ..Self::without_steps(network, name)
        }
    }

    /// The document of `network` (named `name`) with no steps, no warnings and no halt: for
    /// states computed elsewhere (a replay's estimates) to be added to.
    pub fn without_steps(network: &Network, name: &str) -> Self {
        Self {
            network: name.to_string(),
            units: UnitsRecord::of(network),
            options: OptionsRecord::of(network),
            node_ids: network.nodes.iter().map(|n| n.id.clone()).collect(),
            node_types: network
                .nodes
                .iter()
                .map(|n| node_type(&n.kind).to_string())
                .collect(),
            link_ids: network.links.iter().map(|l| l.id.clone()).collect(),
            link_types: network
                .links
                .iter()
                .map(|l| link_type(&l.kind).to_string())
                .collect(),
            warnings: Vec::new(),
            halted_at: None,
            halt_message: None,
            suspect_nodes: Vec::new(),
            steps: Vec::new(),
        }
    }
}

impl UnitsRecord {
    /// The units `network`'s results are in.
    pub fn of(network: &Network) -> Self {
        let flow = network.options.flow_units;
        let us = flow.is_us();
        let pressure = network.options.pressure_units.unwrap_or(if us {
            PressureUnits::Psi
        } else {
            PressureUnits::Meters
        });
        Self {
            flow: flow.name().to_string(),
            system: if us { "US" } else { "SI" }.to_string(),
            head: if us { "ft" } else { "m" }.to_string(),
            pressure: pressure_name(pressure).to_string(),
            flow_units_code: flow_units_code(flow),
        }
    }
}

impl OptionsRecord {
    /// The options of `network` that shape its results.
    pub fn of(network: &Network) -> Self {
        let options = &network.options;
        let times = &network.times;
        let pda = options.demand_model == DemandModel::Pda;
        Self {
            headloss: match options.headloss {
                HeadlossFormula::HazenWilliams => "H-W",
                HeadlossFormula::DarcyWeisbach => "D-W",
                HeadlossFormula::ChezyManning => "C-M",
            }
            .to_string(),
            demand_model: if pda { "PDA" } else { "DDA" }.to_string(),
            pda_pmin_preq_pexp: pda.then_some([
                options.minimum_pressure,
                options.required_pressure,
                options.pressure_exponent,
            ]),
            duration_s: times.duration,
            hyd_step_s: times.hydraulic_step,
            report_step_s: times.report_step,
            report_start_s: times.report_start,
            pattern_step_s: times.pattern_step,
            trials: options.trials,
            accuracy: options.accuracy,
            demand_multiplier: options.demand_multiplier,
            viscosity: options.viscosity,
            specific_gravity: options.specific_gravity,
        }
    }
}

impl From<&SimWarning> for WarningRecord {
    fn from(warning: &SimWarning) -> Self {
        Self {
            message: warning.message.clone(),
            count: warning.count,
            first_at: clock_time(warning.first_at),
        }
    }
}

impl From<&StepResult> for StepRecord {
    fn from(step: &StepResult) -> Self {
        Self {
            t: step.t,
            report: step.report,
            head: step.head.clone(),
            pressure: step.pressure.clone(),
            demand: step.demand.clone(),
            flow: step.flow.clone(),
            status: step.status.clone(),
            state: step.state.clone(),
        }
    }
}

/// The results' name of a node kind.
pub fn node_type(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Junction(_) => "JUNCTION",
        NodeKind::Reservoir(_) => "RESERVOIR",
        NodeKind::Tank(_) => "TANK",
    }
}

/// The results' name of a link kind (EPANET's link type keyword).
pub fn link_type(kind: &LinkKind) -> &'static str {
    match kind {
        LinkKind::Pipe(pipe) if pipe.status == PipeStatus::CheckValve => "CVPIPE",
        LinkKind::Pipe(_) => "PIPE",
        LinkKind::Pump(_) => "PUMP",
        LinkKind::Valve(valve) => valve.valve_type.keyword(),
    }
}

fn pressure_name(units: PressureUnits) -> &'static str {
    match units {
        PressureUnits::Psi => "psi",
        PressureUnits::Kpa => "kPa",
        PressureUnits::Meters => "m",
        PressureUnits::Bar => "bar",
        PressureUnits::Feet => "ft",
    }
}

fn flow_units_code(units: FlowUnits) -> u8 {
    match units {
        FlowUnits::Cfs => 0,
        FlowUnits::Gpm => 1,
        FlowUnits::Mgd => 2,
        FlowUnits::Imgd => 3,
        FlowUnits::Afd => 4,
        FlowUnits::Lps => 5,
        FlowUnits::Lpm => 6,
        FlowUnits::Mld => 7,
        FlowUnits::Cmh => 8,
        FlowUnits::Cmd => 9,
        FlowUnits::Cms => 10,
    }
}

/// Seconds as EPANET prints elapsed clock time: `H:MM:SS`, hours not wrapping at 24.
pub fn clock_time(seconds: u64) -> String {
    format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Junction, Link, Node, Pipe, Reservoir, Valve, ValveType};
    use crate::solver::Halt;

    fn document(steps: Vec<StepRecord>) -> ResultsDocument {
        ResultsDocument {
            network: "tiny".to_string(),
            units: UnitsRecord {
                flow: "GPM".to_string(),
                system: "US".to_string(),
                head: "ft".to_string(),
                pressure: "psi".to_string(),
                flow_units_code: 1,
            },
            options: OptionsRecord::of(&Network::default()),
            node_ids: vec!["J1".to_string(), "R1".to_string()],
            node_types: vec!["JUNCTION".to_string(), "RESERVOIR".to_string()],
            link_ids: vec!["P1".to_string()],
            link_types: vec!["PIPE".to_string()],
            warnings: Vec::new(),
            halted_at: None,
            halt_message: None,
            suspect_nodes: Vec::new(),
            steps,
        }
    }

    fn step(t: u64, report: bool, head: f64, flow: f64, status: u8) -> StepRecord {
        StepRecord {
            t,
            report,
            head: vec![head, 100.0],
            pressure: vec![head - 10.0, 0.0],
            demand: vec![5.0, -5.0],
            flow: vec![flow],
            status: vec![status],
            state: vec![3],
        }
    }

    #[test]
    fn formats_like_python_general_format() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (0.00123456, "0.00123"),
            (0.0001, "0.0001"),
            (0.00001234, "1.23e-05"),
            (123.456, "123"),
            (999.6, "1e+03"),
            (1234.5, "1.23e+03"),
            (0.1, "0.1"),
            (12.0, "12"),
            (9.995, "9.99"),
            (1e35, "1e+35"),
            (f64::NAN, "nan"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_general(value, 3), expected, "{value}");
        }
    }

    #[test]
    fn formats_like_python_repr() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (550.0, "550.0"),
            (213.29011492660118, "213.29011492660118"),
            (-5.092999e-05, "-5.092999e-05"),
            (0.0001, "0.0001"),
            (-3.250006e25, "-3.250006e+25"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (f64::NAN, "nan"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_repr(value), expected, "{value}");
        }
    }

    #[test]
    fn identical_documents_pass() {
        let reference = document(vec![
            step(0, true, 120.0, 5.0, 1),
            step(3600, true, 119.0, 4.0, 1),
        ]);
        let outcome = compare(&reference, &reference, &Tolerances::default());
        assert!(outcome.passed(), "{:?}", outcome.problems);
        assert_eq!(outcome.steps_compared, 2);
        assert_eq!(
            outcome.verdict(),
            "PASS tiny: 2/2 steps; max |dhead| 0, max |dflow| 0, max |ddemand| 0; status \
             mismatches 0"
        );
    }

    #[test]
    fn tolerance_is_absolute_plus_relative() {
        let reference = document(vec![step(0, true, 100.0, 1000.0, 1)]);
        // Allowed: head 0.01 + 1e-4 * 100 = 0.02; flow 0.01 + 1e-3 * 1000 = 1.01.
        let within = document(vec![step(0, true, 100.019, 1001.0, 1)]);
        assert!(compare(&within, &reference, &Tolerances::default()).passed());
        let outside = document(vec![step(0, true, 100.021, 1001.02, 1)]);
        let outcome = compare(&outside, &reference, &Tolerances::default());
        assert!(!outcome.passed());
        assert_eq!(outcome.head.out_of_tolerance, 1);
        assert_eq!(outcome.flow.out_of_tolerance, 1);
        assert_eq!(outcome.problems.len(), 2);
        assert!(outcome.problems[0].starts_with("1 head values out of tolerance; worst: node J1"));
    }

    #[test]
    fn status_must_match_exactly() {
        let reference = document(vec![step(0, true, 100.0, 0.0, 0)]);
        let result = document(vec![step(0, true, 100.0, 0.0, 1)]);
        let outcome = compare(&result, &reference, &Tolerances::default());
        assert_eq!(outcome.status_mismatches, 1);
        assert_eq!(
            outcome.problems,
            vec!["1 link status mismatches; first: link P1 t=0: result 1 vs reference 0"]
        );
    }

    #[test]
    fn only_reporting_steps_unless_all_steps() {
        let reference = document(vec![
            step(0, true, 100.0, 1.0, 1),
            step(1800, false, 90.0, 1.0, 1),
        ]);
        let result = document(vec![step(0, true, 100.0, 1.0, 1)]);
        assert!(compare(&result, &reference, &Tolerances::default()).passed());
        let all = Tolerances {
            all_steps: true,
            ..Tolerances::default()
        };
        let outcome = compare(&result, &reference, &all);
        assert_eq!(outcome.missing_steps, 1);
        assert_eq!(
            outcome.problems,
            vec!["1 reference steps missing from result (first t=1800)"]
        );
        assert!(outcome.verdict().starts_with("FAIL tiny: 1/2 steps"));
    }

    #[test]
    fn ids_are_matched_by_name_and_suspect_nodes_skipped() {
        let mut reference = document(vec![step(0, true, 100.0, 1.0, 1)]);
        let mut result = reference.clone();
        result.node_ids.reverse();
        for s in &mut result.steps {
            s.head.reverse();
            s.demand.reverse();
        }
        assert!(compare(&result, &reference, &Tolerances::default()).passed());

        result.steps[0].head[1] = 1e35; // J1 is now second in the result
        assert!(!compare(&result, &reference, &Tolerances::default()).passed());
        reference.suspect_nodes = vec!["J1".to_string()];
        assert!(compare(&result, &reference, &Tolerances::default()).passed());
    }

    #[test]
    fn missing_ids_and_values_fail() {
        let reference = document(vec![step(0, true, 100.0, 1.0, 1)]);
        let mut result = reference.clone();
        result.link_ids = vec!["other".to_string()];
        let outcome = compare(&result, &reference, &Tolerances::default());
        assert_eq!(
            outcome.problems[0],
            "missing ids: 0 nodes (e.g. []), 1 links (e.g. ['P1'])"
        );

        let mut result = reference.clone();
        result.steps[0].head[0] = f64::NAN;
        let outcome = compare(&result, &reference, &Tolerances::default());
        assert_eq!(outcome.head.out_of_tolerance, 1);
    }

    #[test]
    fn reads_nulls_as_nan_and_round_trips() {
        let reference = document(vec![step(0, true, f64::NAN, 1.0, 1)]);
        let text = serde_json::to_string(&reference).unwrap();
        assert!(text.contains("\"head\":[null,100.0]"));
        let back: ResultsDocument = serde_json::from_str(&text).unwrap();
        assert!(back.steps[0].head[0].is_nan());
        assert_eq!(back.steps[0].flow, vec![1.0]);
    }

    #[test]
    fn builds_the_document_of_a_simulation() {
        let junction = Node {
            id: "J1".to_string(),
            kind: NodeKind::Junction(Junction::default()),
            coordinates: None,
            tag: None,
            emitter_coefficient: 0.0,
        };
        let reservoir = Node {
            id: "R1".to_string(),
            kind: NodeKind::Reservoir(Reservoir::default()),
            ..junction.clone()
        };
        let pipe = Link {
            id: "P1".to_string(),
            from: 1,
            to: 0,
            kind: LinkKind::Pipe(Pipe {
                length: 100.0,
                diameter: 12.0,
                roughness: 100.0,
                minor_loss: 0.0,
                status: PipeStatus::CheckValve,
                leak_area: 0.0,
                leak_expansion: 0.0,
            }),
            vertices: Vec::new(),
            tag: None,
            initial_status: None,
        };
        let valve = Link {
            id: "V1".to_string(),
            kind: LinkKind::Valve(Valve {
                valve_type: ValveType::Prv,
                diameter: 12.0,
                setting: 30.0,
                curve: None,
                minor_loss: 0.0,
            }),
            ..pipe.clone()
        };
        let mut network = Network {
            nodes: vec![junction, reservoir],
            links: vec![pipe, valve],
            ..Network::default()
        };
        network.options.flow_units = FlowUnits::Lps;
        network.options.demand_model = DemandModel::Pda;
        let results = SimResults {
            steps: vec![StepResult {
                t: 7200,
                report: true,
                ..StepResult::default()
            }],
            warnings: vec![SimWarning {
                message: "WARNING: Negative pressures .".to_string(),
                count: 2,
                first_at: 186_476,
            }],
            halted: Some(Halt {
                t: 90_000,
                message: "unbalanced".to_string(),
            }),
        };
        let doc = ResultsDocument::from_simulation(&network, &results, "tiny");
        assert_eq!(doc.node_types, ["JUNCTION", "RESERVOIR"]);
        assert_eq!(doc.link_types, ["CVPIPE", "PRV"]);
        assert_eq!(doc.units.system, "SI");
        assert_eq!(doc.units.pressure, "m");
        assert_eq!(doc.units.flow_units_code, 5);
        assert_eq!(doc.options.pda_pmin_preq_pexp, Some([0.0, 0.1, 0.5]));
        assert_eq!(doc.warnings[0].first_at, "51:47:56");
        assert_eq!(doc.halted_at.as_deref(), Some("25:00:00"));
        assert_eq!(doc.steps[0].t, 7200);
    }
}
