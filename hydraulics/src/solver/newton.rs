//! One hydraulic solve: EPANET 2.3's Global Gradient Algorithm loop (`hydsolve`) with its
//! relaxation, periodic status checks, convergence tests and ill-conditioning handling.

use super::coeffs::{
    demand_headloss, emitter_headloss, headloss_coeffs, leakage_headloss, matrix_coeffs, Workspace,
    MIN_PDA_PRESSURE_RANGE,
};
use super::data::{HydNetwork, HydState, LinkType, PumpType, SolveOutcome, Status};
use super::linear::{LinearSystem, SymbolicError};
use super::status::{link_status, pressure_switch, valve_status};
use crate::model::DemandModel;

/// Relaxation applied to flow changes once the error is below DAMPLIMIT.
const DAMPED_RELAXATION: f64 = 0.6;
/// Flow tolerance of the PDA and leakage convergence tests, cfs.
const DEMAND_FLOW_TOLERANCE: f64 = 0.0001;
/// Relative tolerance of the leakage convergence test.
const LEAKAGE_RELATIVE_TOLERANCE: f64 = 0.001;
/// Largest PDA demand change per iteration, as a fraction of the full demand.
const MAX_DEMAND_CHANGE: f64 = 0.4;

/// One network's solver: the symbolic factorization and work arrays, reused across periods.
pub struct Solver {
    system: Result<LinearSystem, SymbolicError>,
    work: Workspace,
}

/// Sums of one flow update: total flow, total change and the largest single change.
#[derive(Default)]
struct FlowUpdate {
    total: f64,
    total_change: f64,
    max_change: f64,
}

impl FlowUpdate {
    fn add(&mut self, flow: f64, change: f64) {
        self.total += flow.abs();
        self.total_change += change.abs();
        self.max_change = self.max_change.max(change.abs());
    }
}

impl Solver {
    /// Analyses the network's matrix pattern (fill-reducing ordering and symbolic
    /// factorization) and allocates every work array.
    pub fn new(network: &HydNetwork) -> Self {
        let system = LinearSystem::new(network.junctions, network.links.iter().map(|l| (l.from, l.to)));
        Self { system, work: Workspace::new(network) }
    }

    /// Solves the network equations for the current demands, tank heads, statuses and settings
    /// (EPANET's `hydsolve`), updating heads, flows and statuses in `state`.
    ///
    /// On entry `state.node_demand` holds the junctions' full demands of the period; on exit
    /// it holds each junction's actual outflow (delivered demand + emitter + leakage) and each
    /// tank's or reservoir's net inflow, with `demand_flow`, `emitter_flow` and
    /// `leakage_flow` filled. `state.emitter_flow` carries over between periods (EPANET starts
    /// it at 1 cfs at emitter junctions).
    pub fn solve(&mut self, network: &HydNetwork, state: &mut HydState) -> SolveOutcome {
        let Self { system, work } = self;
        let system = match system {
            Ok(system) => system,
            Err(_) => {
                return SolveOutcome { ill_conditioned_node: Some(0), ..SolveOutcome::default() };
            }
        };
        let options = &network.options;
        let junctions = network.junctions;
        work.full_demand.copy_from_slice(&state.node_demand[..junctions]);
        state.demand_flow[..junctions].copy_from_slice(&work.full_demand);

        work.relax = 1.0;
        let mut next_check = options.check_freq;
        let max_trials = options.max_trials + options.extra_trials.unwrap_or(0);
        let mut iteration = 1;
        let mut relative_error = 0.0;
        let mut converged = false;
        let mut ill_conditioned_node = None;
        while iteration <= max_trials {
            headloss_coeffs(network, state, work);
            matrix_coeffs(network, state, work, system);
            match system.solve() {
                Ok(heads) => state.head[..junctions].copy_from_slice(heads),
                Err(node) => {
                    if fix_bad_valve(network, state, node) {
                        continue;
                    }
                    ill_conditioned_node = Some(node);
                    break;
                }
            }
            let update = new_flows(network, state, work);
            relative_error = if update.total > options.accuracy {
                update.total_change / update.total
            } else {
                update.total_change
            };

            work.relax = 1.0;
            let mut valve_changed = false;
            if options.damp_limit > 0.0 {
                if relative_error <= options.damp_limit {
                    work.relax = DAMPED_RELAXATION;
                    valve_changed = valve_status(network, state);
                }
            } else {
                valve_changed = valve_status(network, state);
            }

            if has_converged(network, state, work, relative_error, update.max_change) {
                if iteration > options.max_trials {
                    converged = true;
                    break;
                }
                let links_changed = link_status(network, state);
                let switches_changed = pressure_switch(network, state);
                if !(valve_changed || links_changed || switches_changed) {
                    converged = true;
                    break;
                }
                next_check = iteration + options.check_freq;
            } else if iteration <= options.max_check && iteration == next_check {
                link_status(network, state);
                next_check += options.check_freq;
            }
            iteration += 1;
        }

        for i in 0..junctions {
            state.leakage_flow[i] = work.leakage.get(i).map_or(0.0, |leak| leak.qfa + leak.qva);
            state.node_demand[i] = state.demand_flow[i] + state.emitter_flow[i] + state.leakage_flow[i];
        }
        SolveOutcome { iterations: iteration, relative_error, converged, ill_conditioned_node }
    }
}

/// When the pivot of `node` failed and the first valve touching it is an active PRV, PSV or
/// FCV, marks that valve unable to control and returns `true` (EPANET's `badvalve`).
fn fix_bad_valve(network: &HydNetwork, state: &mut HydState, node: usize) -> bool {
    for &k in &network.valves {
        let link = &network.links[k];
        if node != link.from && node != link.to {
            continue;
        }
        let controlling = matches!(link.link_type, LinkType::Prv | LinkType::Psv | LinkType::Fcv);
        if controlling && state.status[k] == Status::Active {
            state.status[k] = if link.link_type == LinkType::Fcv { Status::XFcv } else { Status::XPressure };
            return true;
        }
        return false;
    }
    false
}

/// Updates link, emitter, demand and leakage flows from the new heads (EPANET's `newflows`).
fn new_flows(network: &HydNetwork, state: &mut HydState, work: &mut Workspace) -> FlowUpdate {
    let junctions = network.junctions;
    let relax = work.relax;
    let mut update = FlowUpdate::default();

    state.node_demand[junctions..].fill(0.0);
    for (k, link) in network.links.iter().enumerate() {
        let (n1, n2) = (link.from, link.to);
        let dh = state.head[n1] - state.head[n2];
        let mut dq = (work.y[k] - work.p[k] * dh) * relax;
        // A constant-power pump's flow must stay positive.
        if link.link_type == LinkType::Pump
            && dq > state.flow[k]
            && link.pump.and_then(|p| network.pumps.get(p)).is_some_and(|p| p.pump_type == PumpType::ConstHp)
        {
            dq = state.flow[k] / 2.0;
        }
        state.flow[k] -= dq;
        update.add(state.flow[k], dq);
        if !state.status[k].is_closed() {
            if n1 >= junctions {
                state.node_demand[n1] -= state.flow[k];
            }
            if n2 >= junctions {
                state.node_demand[n2] += state.flow[k];
            }
        }
    }

    for i in 0..junctions {
        let node = &network.nodes[i];
        if node.emitter_coeff == 0.0 {
            continue;
        }
        let (hloss, hgrad) = emitter_headloss(network, i, state.emitter_flow[i]);
        let dh = state.head[i] - node.elevation;
        let dq = (hloss - dh) / hgrad * relax;
        state.emitter_flow[i] -= dq;
        update.add(state.emitter_flow[i], dq);
    }

    let options = &network.options;
    if options.demand_model == DemandModel::Pda {
        let dp = (options.preq - options.pmin).max(MIN_PDA_PRESSURE_RANGE);
        let n = 1.0 / options.pexp;
        for i in 0..junctions {
            let full = work.full_demand[i];
            if full <= 0.0 {
                continue;
            }
            let (hloss, hgrad) = demand_headloss(state.demand_flow[i], full, dp, n);
            let dh = state.head[i] - network.nodes[i].elevation - options.pmin;
            let mut dq = (hloss - dh) / hgrad * relax;
            if dq.abs() > MAX_DEMAND_CHANGE * full {
                dq = MAX_DEMAND_CHANGE * dq.signum() * full;
            }
            state.demand_flow[i] -= dq;
            update.add(state.demand_flow[i], dq);
        }
    }

    for (i, leak) in work.leakage.iter_mut().enumerate() {
        if leak.cfa == 0.0 && leak.cva == 0.0 {
            continue;
        }
        let ((hfa, gfa), (hva, gva)) = leakage_headloss(leak, options.rqtol);
        let dh = state.head[i] - network.nodes[i].elevation;
        let mut dq = 0.0;
        if gfa > 0.0 {
            let change = (hfa - dh) / gfa * relax;
            leak.qfa -= change;
            dq += change;
        }
        if gva > 0.0 {
            let change = (hva - dh) / gva * relax;
            leak.qva -= change;
            dq += change;
        }
        state.leakage_flow[i] = leak.qfa + leak.qva;
        if dq != 0.0 {
            update.add(state.leakage_flow[i], dq);
        }
    }
    update
}

/// EPANET's `hasconverged`: relative flow change within ACCURACY, then the optional
/// HEADERROR and FLOWCHANGE limits, leakage and pressure-driven demand consistency.
fn has_converged(
    network: &HydNetwork,
    state: &HydState,
    work: &mut Workspace,
    relative_error: f64,
    max_flow_change: f64,
) -> bool {
    let options = &network.options;
    if relative_error > options.accuracy {
        return false;
    }
    if options.head_error_limit > 0.0 && max_head_error(network, state, work) > options.head_error_limit {
        return false;
    }
    if options.flow_change_limit > 0.0 && max_flow_change > options.flow_change_limit {
        return false;
    }
    if !leakage_converged(network, state, work) {
        return false;
    }
    options.demand_model != DemandModel::Pda || pda_converged(network, state, work)
}

/// Largest difference between a link's head loss from the heads and from its flow.
fn max_head_error(network: &HydNetwork, state: &HydState, work: &mut Workspace) -> f64 {
    headloss_coeffs(network, state, work);
    let mut max_error: f64 = 0.0;
    for (k, link) in network.links.iter().enumerate() {
        if state.status[k].is_closed() || work.p[k] == 0.0 {
            continue;
        }
        let dh = state.head[link.from] - state.head[link.to];
        let headloss = work.y[k] / work.p[k];
        max_error = max_error.max((dh - headloss).abs());
    }
    max_error
}

fn leakage_converged(network: &HydNetwork, state: &HydState, work: &Workspace) -> bool {
    work.leakage.iter().enumerate().all(|(i, leak)| {
        if leak.cfa == 0.0 && leak.cva == 0.0 {
            return true;
        }
        let h = state.head[i] - network.nodes[i].elevation;
        let mut reference = 0.0;
        if leak.cfa > 0.0 {
            reference = (h / leak.cfa).sqrt();
        }
        if leak.cva > 0.0 {
            reference += (h / leak.cva).powf(1.5);
        }
        let solution = leak.qfa + leak.qva;
        // Written as "not above" so that a negative pressure (NaN reference) passes, as in
        // EPANET.
        !((reference - solution).abs() > DEMAND_FLOW_TOLERANCE + LEAKAGE_RELATIVE_TOLERANCE * reference)
    })
}

/// Every pressure-driven demand agrees with the demand function at its node's pressure.
fn pda_converged(network: &HydNetwork, state: &HydState, work: &Workspace) -> bool {
    let options = &network.options;
    let dp = options.preq - options.pmin;
    (0..network.junctions).all(|i| {
        let full = work.full_demand[i];
        if full <= 0.0 {
            return true;
        }
        let pressure = state.head[i] - network.nodes[i].elevation;
        let expected = if pressure <= options.pmin {
            0.0
        } else if pressure >= options.preq {
            full
        } else {
            full * ((pressure - options.pmin) / dp).powf(options.pexp)
        };
        (expected - state.demand_flow[i]).abs() <= DEMAND_FLOW_TOLERANCE
    })
}

#[cfg(test)]
mod tests {
    use crate::results::{compare, ResultsDocument, Tolerances};
    use crate::solver::{simulate, SimOptions};
    use std::path::Path;

    /// Solves the first period of `name` and compares it with EPANET's steady reference.
    fn steady_parity(name: &str) -> Result<String, String> {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
        let network = crate::inp::read_file(&shared.join(format!("networks/{name}.inp")))
            .map_err(|e| e.to_string())?;
        let mut results = simulate(&network, &SimOptions { steady: true }).map_err(|e| e.to_string())?;
        for step in &mut results.steps {
            for (q, s) in step.flow.iter_mut().zip(&step.status) {
                if *s == 0 {
                    *q = 0.0;
                }
            }
        }
        let ours = ResultsDocument::from_simulation(&network, &results, name);
        let text = std::fs::read_to_string(shared.join(format!("reference/{name}.steady.json")))
            .map_err(|e| e.to_string())?;
        let reference: ResultsDocument = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let outcome = compare(&ours, &reference, &Tolerances::default());
        if outcome.passed() {
            Ok(outcome.verdict())
        } else {
            Err(format!("{}\n  {}", outcome.verdict(), outcome.problems.join("\n  ")))
        }
    }

    #[test]
    #[ignore = "survey of every shared network; run with --ignored --nocapture"]
    fn steady_parity_survey() {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
        let mut names: Vec<String> = std::fs::read_dir(&shared)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".steady.json").map(str::to_string))
            .collect();
        names.sort();
        for name in names {
            match steady_parity(&name) {
                Ok(verdict) => println!("PASS {name}: {verdict}"),
                Err(problem) => println!("FAIL {name}: {problem}"),
            }
        }
    }
}
#[cfg(test)]
mod debug_tmp {
    #[test]
    #[ignore]
    fn dump() {
        let name = std::env::var("NET").unwrap();
        let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
        let network = crate::inp::read_file(&shared.join(format!("networks/{name}.inp"))).unwrap();
        let results = crate::solver::simulate(&network, &crate::solver::SimOptions { steady: true }).unwrap();
        let s = &results.steps[0];
        println!("iters {} relerr {}", s.iterations, s.relative_error);
        for (i, l) in network.links.iter().enumerate() {
            println!("L {} flow {} status {} state {}", l.id, s.flow[i], s.status[i], s.state[i]);
        }
        for (i, n) in network.nodes.iter().enumerate() {
            println!("N {} head {} demand {}", n.id, s.head[i], s.demand[i]);
        }
    }
}
