//! Comparison of a results document with a reference, rule for rule as
//! `shared/tools/compare_results.py` (ids matched by name, steps matched by time,
//! `atol + rtol * |reference|`, exact status), with the script's report text.

use super::{ResultsDocument, StepRecord};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// How far a result may be from the reference: `|result - reference| <= atol + rtol *
/// |reference|`. The defaults are `compare_results.py`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub head_atol: f64,
    pub head_rtol: f64,
    pub flow_atol: f64,
    pub flow_rtol: f64,
    pub demand_atol: f64,
    pub demand_rtol: f64,
    /// Compare every reference step, not only reporting steps.
    pub all_steps: bool,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            head_atol: 0.01,
            head_rtol: 1e-4,
            flow_atol: 0.01,
            flow_rtol: 1e-3,
            demand_atol: 0.01,
            demand_rtol: 1e-3,
            all_steps: false,
        }
    }
}

/// A compared quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    Head,
    Demand,
    Flow,
}

impl Quantity {
    /// In the order the comparison reports them.
    pub const ALL: [Quantity; 3] = [Quantity::Head, Quantity::Demand, Quantity::Flow];

    fn name(self) -> &'static str {
        match self {
            Quantity::Head => "head",
            Quantity::Demand => "demand",
            Quantity::Flow => "flow",
        }
    }
    fn of_links(self) -> bool {
        self == Quantity::Flow
    }
    fn values(self, step: &StepRecord) -> &[f64] {
        match self {
            Quantity::Head => &step.head,
            Quantity::Demand => &step.demand,
            Quantity::Flow => &step.flow,
        }
    }
    fn tolerance(self, tolerances: &Tolerances) -> (f64, f64) {
        match self {
            Quantity::Head => (tolerances.head_atol, tolerances.head_rtol),
            Quantity::Demand => (tolerances.demand_atol, tolerances.demand_rtol),
            Quantity::Flow => (tolerances.flow_atol, tolerances.flow_rtol),
        }
    }
}

/// Agreement of one quantity over all compared steps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuantityComparison {
    /// Largest absolute difference seen.
    pub max_abs: f64,
    /// Values outside the tolerance (or missing from the result).
    pub out_of_tolerance: usize,
    /// The value furthest outside its tolerance, relative to it, and where it was.
    pub worst: Option<(f64, String)>,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub network: String,
    pub steps_compared: usize,
    pub steps_in_reference: usize,
    pub head: QuantityComparison,
    pub demand: QuantityComparison,
    pub flow: QuantityComparison,
    pub status_mismatches: usize,
    pub missing_steps: usize,
    /// Every reason the comparison fails, in the script's order; empty when it passes.
    pub problems: Vec<String>,
}

impl Comparison {
    /// `true` when the result agrees with the reference everywhere.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// The agreement of one quantity.
    pub fn quantity(&self, quantity: Quantity) -> &QuantityComparison {
        match quantity {
            Quantity::Head => &self.head,
            Quantity::Demand => &self.demand,
            Quantity::Flow => &self.flow,
        }
    }

    fn quantity_mut(&mut self, quantity: Quantity) -> &mut QuantityComparison {
        match quantity {
            Quantity::Head => &mut self.head,
            Quantity::Demand => &mut self.demand,
            Quantity::Flow => &mut self.flow,
        }
    }

    /// What `compare_results.py` prints: each problem on an indented line, then the verdict.
    pub fn report(&self) -> String {
        let mut text = String::new();
        for problem in &self.problems {
            let _ = writeln!(text, "  {problem}");
        }
        text + &self.verdict() + "\n"
    }

    /// The one-line verdict, worded and formatted exactly as `compare_results.py` prints it.
    pub fn verdict(&self) -> String {
        format!(
            "{} {}: {}/{} steps; max |dhead| {}, max |dflow| {}, max |ddemand| {}; status \
             mismatches {}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.network,
            self.steps_compared,
            self.steps_in_reference,
            format_general(self.head.max_abs, 3),
            format_general(self.flow.max_abs, 3),
            format_general(self.demand.max_abs, 3),
            self.status_mismatches
        )
    }
}

/// Compares `result` with `reference` (see the module documentation for the rules).
pub fn compare(
    result: &ResultsDocument,
    reference: &ResultsDocument,
    tolerances: &Tolerances,
) -> Comparison {
    let result_nodes = index_of(&result.node_ids);
    let result_links = index_of(&result.link_ids);
    let suspect: HashSet<&str> = reference.suspect_nodes.iter().map(String::as_str).collect();
    let mut outcome = Comparison {
        network: reference.network.clone(),
        steps_compared: 0,
        steps_in_reference: 0,
        head: QuantityComparison::default(),
        demand: QuantityComparison::default(),
        flow: QuantityComparison::default(),
        status_mismatches: 0,
        missing_steps: 0,
        problems: Vec::new(),
    };

    let missing_nodes = missing_ids(&reference.node_ids, &result_nodes);
    let missing_links = missing_ids(&reference.link_ids, &result_links);
    if !missing_nodes.is_empty() || !missing_links.is_empty() {
        outcome.problems.push(format!(
            "missing ids: {} nodes (e.g. {}), {} links (e.g. {})",
            missing_nodes.len(),
            python_list(&missing_nodes[..missing_nodes.len().min(3)]),
            missing_links.len(),
            python_list(&missing_links[..missing_links.len().min(3)])
        ));
    }

    // The first result step at a time wins, as in the script.
    let mut result_steps: HashMap<u64, &StepRecord> = HashMap::new();
    for step in &result.steps {
        result_steps.entry(step.t).or_insert(step);
    }
    let reference_steps: Vec<&StepRecord> = reference
        .steps
        .iter()
        .filter(|s| tolerances.all_steps || s.report)
        .collect();
    outcome.steps_in_reference = reference_steps.len();

    let mut first_missing_step = None;
    let mut first_status_mismatch = None;
    for reference_step in reference_steps {
        let t = reference_step.t;
        let Some(result_step) = result_steps.get(&t) else {
            outcome.missing_steps += 1;
            first_missing_step.get_or_insert(t);
            continue;
        };
        outcome.steps_compared += 1;
        for quantity in Quantity::ALL {
            let (ids, positions) = if quantity.of_links() {
                (&reference.link_ids, &result_links)
            } else {
                (&reference.node_ids, &result_nodes)
            };
            let reference_values = quantity.values(reference_step);
            let result_values = quantity.values(result_step);
            if reference_values.is_empty() && !ids.is_empty() {
                continue;
            }
            if result_values.is_empty() && !positions.is_empty() {
                outcome
                    .problems
                    .push(format!("t={t}: result has no '{}'", quantity.name()));
                continue;
            }
            let (atol, rtol) = quantity.tolerance(tolerances);
            let kind = if quantity.of_links() { "link" } else { "node" };
            let record = outcome.quantity_mut(quantity);
            for (id, &expected) in ids.iter().zip(reference_values) {
                let Some(&position) = positions.get(id.as_str()) else {
                    continue;
                };
                if (!quantity.of_links() && suspect.contains(id.as_str())) || expected.is_nan() {
                    continue;
                }
                let actual = result_values.get(position).copied().unwrap_or(f64::NAN);
                if actual.is_nan() {
                    record.out_of_tolerance += 1;
                    continue;
                }
                let difference = (actual - expected).abs();
                let allowed = atol + rtol * expected.abs();
                record.max_abs = record.max_abs.max(difference);
                if difference > allowed {
                    record.out_of_tolerance += 1;
                    let ratio = difference / allowed;
                    if record
                        .worst
                        .as_ref()
                        .is_none_or(|(worst, _)| ratio > *worst)
                    {
                        record.worst = Some((
                            ratio,
                            format!(
                                "{kind} {id} t={t}: result {} vs reference {}",
                                python_repr(actual),
                                python_repr(expected)
                            ),
                        ));
                    }
                }
            }
        }
        if reference_step.status.is_empty() || result_step.status.is_empty() {
            continue;
        }
        for (id, &expected) in reference.link_ids.iter().zip(&reference_step.status) {
            let Some(&position) = result_links.get(id.as_str()) else {
                continue;
            };
            let actual = result_step.status.get(position).copied();
            if actual != Some(expected) {
                outcome.status_mismatches += 1;
                first_status_mismatch.get_or_insert_with(|| {
                    let shown = actual.map_or_else(|| "none".to_string(), |a| a.to_string());
                    format!("link {id} t={t}: result {shown} vs reference {expected}")
                });
            }
        }
    }

    if let Some(first) = first_missing_step {
        outcome.problems.push(format!(
            "{} reference steps missing from result (first t={first})",
            outcome.missing_steps
        ));
    }
    for quantity in Quantity::ALL {
        let record = outcome.quantity(quantity);
        if record.out_of_tolerance > 0 {
            let worst = record
                .worst
                .as_ref()
                .map_or("None", |(_, detail)| detail.as_str());
            let line = format!(
                "{} {} values out of tolerance; worst: {worst}",
                record.out_of_tolerance,
                quantity.name()
            );
            outcome.problems.push(line);
        }
    }
    if let Some(first) = first_status_mismatch {
        outcome.problems.push(format!(
            "{} link status mismatches; first: {first}",
            outcome.status_mismatches
        ));
    }
    outcome
}

fn index_of(ids: &[String]) -> HashMap<&str, usize> {
    let mut positions = HashMap::with_capacity(ids.len());
    // Later duplicates win, as a Python dict comprehension does.
    for (position, id) in ids.iter().enumerate() {
        positions.insert(id.as_str(), position);
    }
    positions
}

/// A list of strings as Python prints it, e.g. `['a', 'b']`.
fn python_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn missing_ids<'a>(wanted: &'a [String], present: &HashMap<&str, usize>) -> Vec<&'a str> {
    wanted
        .iter()
        .map(String::as_str)
        .filter(|id| !present.contains_key(id))
        .collect()
}

/// Formats a number as Python's `format(x, ".{precision}g")` does (e.g. `0.00123`, `1.5e+03`).
pub fn format_general(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let precision = precision.max(1);
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rounding to `precision` significant digits first gives the exponent Python decides on.
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i64 {
        let mut text = trim_fraction(mantissa).to_string();
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(text, "e{sign}{:02}", exponent.abs());
        text
    } else {
        let decimals = (precision as i64 - 1 - exponent).max(0) as usize;
        trim_fraction(&format!("{value:.decimals$}")).to_string()
    }
}

/// Formats a number as Python's `repr` does: the shortest text that reads back to the same
/// number, `.0` on whole numbers, scientific below 1e-4 and from 1e16 (e.g. `-5.092999e-05`).
pub fn python_repr(value: f64) -> String {
    if !value.is_finite() {
        return format_general(value, 1);
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    if value != 0.0 && !(-4..16).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let fixed = value.to_string();
        if fixed.contains('.') {
            fixed
        } else {
            fixed + ".0"
        }
    }
}

fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}
