//! One hydraulic solve: EPANET 2.3's Global Gradient Algorithm loop (`hydsolve`) with its
//! relaxation, periodic status checks, convergence tests and ill-conditioning handling.

use std::cmp::Ordering;
use std::time::Instant;

use super::coeffs::{
    demand_headloss, emitter_headloss, headloss_coeffs, leakage_headloss, matrix_coeffs, Workspace,
    MIN_PDA_PRESSURE_RANGE,
};
use super::data::{HydNetwork, HydState, LinkType, PumpType, SolveOutcome, Status};
use super::eps::RunParts;
use super::fork_join::OwnHelper;
use super::linear::{LinearSystem, SymbolicError, MIN_SPLIT_WORK};
use super::status::{link_status, pressure_switch, valve_status};
use crate::model::DemandModel;

/// Relaxation applied to flow changes once the error is below DAMPLIMIT.
const DAMPED_RELAXATION: f64 = 0.6;
/// Flow tolerance of the PDA and leakage convergence tests, cfs.
const DEMAND_FLOW_TOLERANCE: f64 = 0.0001;
/// Relative tolerance of the leakage convergence test (EPANET 2.3.5's trial counts on leaking
/// networks show 1e-4, tighter than the 1e-3 of earlier 2.3 sources).
const LEAKAGE_RELATIVE_TOLERANCE: f64 = 0.0001;
/// Largest PDA demand change per iteration, as a fraction of the full demand.
const MAX_DEMAND_CHANGE: f64 = 0.4;

/// One network's solver: the symbolic factorization and work arrays, reused across periods.
#[derive(Clone)]
pub struct Solver {
    system: Result<LinearSystem, SymbolicError>,
    work: Workspace,
    /// What the last run that ended with [`super::PeriodRun::finish`] built from its network,
    /// for the next run of the same network with this solver.
    pub(super) run_parts: Option<Box<RunParts>>,
    /// The factor of the last solve's last Newton step is in `system` (its last
    /// factorization succeeded and nothing has cleared it since).
    factored: bool,
    /// Links joining a junction to a fixed-head node: link, the junction's position (in the
    /// elimination order), fixed-head node.
    fixed_head_links: Vec<(usize, usize, usize)>,
    /// Each link's end nodes as indices into `response_values`: a junction's position, a
    /// fixed-head node's own index.
    response_ends: Vec<(u32, u32)>,
    /// Work array of [`Self::linear_response`]: by position, the demand changes, then the
    /// junctions' head changes; beyond the junctions, the fixed-head nodes' head changes.
    response_values: Vec<f64>,
    /// The second thread of a split factorization, if any.
    helper: OwnHelper,
}

/// A Newton step's linearization kept apart from the solver (see [`Solver::linearization`]).
#[derive(Debug, Clone)]
pub struct Linearization {
    diagonal: Vec<f64>,
    lower: Vec<f64>,
    conductance: Vec<f64>,
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
        Self::with_threads(network, 1)
    }

    /// As [`Self::new`], for a solver that may use `threads` threads: with 2 or more, a
    /// network whose factorization splits into two large enough parts gets a helper thread
    /// (owned by this solver; a clone of it runs on one thread). The results are the same to
    /// the bit as with one thread.
    pub fn with_threads(network: &HydNetwork, threads: usize) -> Self {
        Self::with_split(network, (threads >= 2).then_some(MIN_SPLIT_WORK))
    }

    /// A solver whose factorization is split for a helper thread when the smaller part's
    /// estimated work is at least `min_part` (never with `None`).
    pub(crate) fn with_split(network: &HydNetwork, min_part: Option<usize>) -> Self {
        let system = LinearSystem::new(
            network.junctions,
            network.links.iter().map(|l| (l.from, l.to)),
            min_part,
        );
        let helper = match &system {
            Ok(system) if system.is_split() => OwnHelper::start(),
            _ => OwnHelper::default(),
        };
        let junctions = network.junctions;
        let (fixed_head_links, response_ends) = match &system {
            Ok(system) => {
                let positions = system.positions();
                let at = |node: usize| positions.get(node).copied().unwrap_or(node);
                let fixed = (network.links.iter().enumerate())
                    .filter_map(
                        |(k, link)| match (link.from < junctions, link.to < junctions) {
                            (true, false) => Some((k, at(link.from), link.to)),
                            (false, true) => Some((k, at(link.to), link.from)),
                            _ => None,
                        },
                    )
                    .collect();
                let ends = (network.links.iter())
                    .map(|link| (at(link.from) as u32, at(link.to) as u32))
                    .collect();
                (fixed, ends)
            }
            Err(_) => (Vec::new(), Vec::new()),
        };
        Self {
            system,
            work: Workspace::new(network),
            run_parts: None,
            factored: false,
            fixed_head_links,
            response_ends,
            response_values: vec![0.0; network.nodes.len()],
            helper,
        }
    }

    /// Whether the factorization is split for a helper thread.
    #[cfg(test)]
    pub(crate) fn is_split(&self) -> bool {
        self.system.as_ref().is_ok_and(LinearSystem::is_split)
    }

    /// The linearization of the last solve's last Newton step (its factor and the links'
    /// conductances), to be put back with [`Self::restore_linearization`] when a later
    /// linear response must start from it; `None` when no factor is kept.
    pub fn linearization(&self) -> Option<Linearization> {
        let system = self.system.as_ref().ok().filter(|_| self.factored)?;
        let (diagonal, lower) = system.factor();
        Some(Linearization {
            diagonal: diagonal.to_vec(),
            lower: lower.to_vec(),
            conductance: self.work.p.clone(),
        })
    }

    /// Makes `linearization` (taken from a solver of the same network) the one
    /// [`Self::linear_response`] uses, until the next solve; `false` when it does not fit.
    pub fn restore_linearization(&mut self, linearization: &Linearization) -> bool {
        let Ok(system) = &mut self.system else {
            return false;
        };
        let fits = linearization.conductance.len() == self.work.p.len()
            && system.restore_factor(&linearization.diagonal, &linearization.lower);
        if fits {
            self.work.p.copy_from_slice(&linearization.conductance);
        }
        self.factored = fits;
        fits
    }

    /// The first-order change of each link's flow when the junctions' demands change by
    /// `demand_change` (by junction) and the fixed-head nodes' heads by `head_change` (by
    /// node; junctions' entries unused), from the linearization of the last Newton step of
    /// the last solve, whose factor is kept: two substitutions instead of a Newton step.
    /// Links the linearization gives no conductance (active control valves) get NaN.
    /// Returns `false`, leaving `flow_change` as it was, when no factor is kept.
    pub fn linear_response(
        &mut self,
        network: &HydNetwork,
        demand_change: &[f64],
        head_change: &[f64],
        flow_change: &mut [f64],
    ) -> bool {
        let Self {
            system,
            work,
            factored,
            fixed_head_links,
            response_ends,
            response_values: values,
            ..
        } = self;
        let system = match system {
            Ok(system) if *factored => system,
            _ => return false,
        };
        let junctions = network.junctions;
        for (&d, &position) in demand_change[..junctions].iter().zip(system.positions()) {
            values[position] = -d;
        }
        let nodes = values.len();
        values[junctions..].copy_from_slice(&head_change[junctions..nodes]);
        for &(link, position, fixed) in fixed_head_links.iter() {
            values[position] += work.p[link] * values[fixed];
        }
        system.solve_factored(values);
        let links = flow_change
            .iter_mut()
            .zip(response_ends.iter())
            .zip(&work.p);
        let values = &values[..];
        for ((change, &(from, to)), &p) in links {
            // SAFETY: `response_ends` holds junctions' positions (below the junction count)
            // and fixed-head nodes' indices, all below the node count of the network `new`
            // was given, the length of `values` (made there too, never resized).
            let (from, to) = unsafe {
                (
                    *values.get_unchecked(from as usize),
                    *values.get_unchecked(to as usize),
                )
            };
            *change = if p == 0.0 { f64::NAN } else { p * (from - to) };
        }
        true
    }

    /// Solves the network equations for the current demands, tank heads, statuses and settings
    /// (EPANET's `hydsolve`), updating heads, flows and statuses in `state`.
    ///
    /// On entry `state.node_demand` holds the junctions' full demands of the period and
    /// `state.demand_flow` the delivered demands to start from (the full demands, as EPANET
    /// starts, unless the caller knows better). On exit `state.node_demand` holds each
    /// junction's actual outflow (delivered demand + emitter + leakage) and each tank's or
    /// reservoir's net inflow, with `demand_flow`, `emitter_flow` and `leakage_flow` filled.
    /// `state.emitter_flow` carries over between periods (EPANET starts it at 1 cfs at emitter
    /// junctions).
    pub fn solve(&mut self, network: &HydNetwork, state: &mut HydState) -> SolveOutcome {
        let Self {
            system,
            work,
            factored,
            helper,
            ..
        } = self;
        // Only a solver with a helper times its periods, to choose whether to use it.
        let started = helper.exists().then(Instant::now);
        let helper = helper.for_period();
        let with_helper = helper.is_some();
        *factored = false;
        let system = match system {
            Ok(system) => system,
            Err(_) => {
                return SolveOutcome {
                    ill_conditioned_node: Some(0),
                    ..SolveOutcome::default()
                };
            }
        };
        let options = &network.options;
        let junctions = network.junctions;
        work.full_demand
            .copy_from_slice(&state.node_demand[..junctions]);

        work.relax = 1.0;
        let mut next_check = options.check_freq;
        let max_trials = options.max_trials + options.extra_trials.unwrap_or(0);
        let mut iteration = 1;
        let mut relative_error = 0.0;
        let mut converged = false;
        let mut ill_conditioned_node = None;
        while iteration <= max_trials {
            matrix_coeffs(network, state, work, system, helper);
            *factored = false;
            match system.solve(&mut state.head[..junctions], helper) {
                Ok(()) => *factored = true,
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

        if let Some(started) = started {
            let iterations = u64::from(iteration);
            (self.helper).period_done(with_helper, started.elapsed(), iterations);
        }
        for i in 0..junctions {
            state.leakage_flow[i] = work.leakage.get(i).map_or(0.0, |leak| leak.qfa + leak.qva);
            state.node_demand[i] =
                state.demand_flow[i] + state.emitter_flow[i] + state.leakage_flow[i];
        }
        SolveOutcome {
            iterations: iteration,
            relative_error,
            converged,
            ill_conditioned_node,
        }
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
        let controlling = matches!(
            link.link_type,
            LinkType::Prv | LinkType::Psv | LinkType::Fcv
        );
        if controlling && state.status[k] == Status::Active {
            state.status[k] = if link.link_type == LinkType::Fcv {
                Status::XFcv
            } else {
                Status::XPressure
            };
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

    let HydState {
        head,
        flow: flows,
        status: statuses,
        node_demand,
        ..
    } = &mut *state;
    node_demand[junctions..].fill(0.0);
    let links = work.links.iter().zip(&work.y).zip(&work.p);
    let links = links.zip(flows.iter_mut()).zip(statuses.iter());
    for (k, ((((link, &y), &p), flow), status)) in links.enumerate() {
        let (n1, n2) = (link.from, link.to);
        let dh = head[n1] - head[n2];
        let mut dq = (y - p * dh) * relax;
        // A constant-power pump's flow must stay positive.
        if link.link_type == LinkType::Pump
            && dq > *flow
            && network.links[k]
                .pump
                .and_then(|pump| network.pumps.get(pump))
                .is_some_and(|pump| pump.pump_type == PumpType::ConstHp)
        {
            dq = *flow / 2.0;
        }
        *flow -= dq;
        update.add(*flow, dq);
        if !status.is_closed() {
            if n1 >= junctions {
                node_demand[n1] -= *flow;
            }
            if n2 >= junctions {
                node_demand[n2] += *flow;
            }
        }
    }

    for &i in &work.emitters {
        let node = &network.nodes[i];
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
        let demands = work.full_demand.iter().zip(&mut state.demand_flow);
        let nodes = state.head.iter().zip(&network.nodes[..junctions]);
        for ((&full, demand_flow), (&head, node)) in demands.zip(nodes) {
            if full <= 0.0 {
                continue;
            }
            let (hloss, hgrad) = demand_headloss(*demand_flow, full, dp, n);
            let dh = head - node.elevation - options.pmin;
            let mut dq = (hloss - dh) / hgrad * relax;
            if dq.abs() > MAX_DEMAND_CHANGE * full {
                dq = MAX_DEMAND_CHANGE * dq.signum() * full;
            }
            *demand_flow -= dq;
            update.add(*demand_flow, dq);
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
    if options.head_error_limit > 0.0
        && max_head_error(network, state, work) > options.head_error_limit
    {
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
        let tolerance = DEMAND_FLOW_TOLERANCE + LEAKAGE_RELATIVE_TOLERANCE * reference;
        // "Not above" rather than "at most", so that a negative pressure (a NaN reference)
        // passes, as in EPANET.
        (reference - solution).abs().partial_cmp(&tolerance) != Some(Ordering::Greater)
    })
}

/// Every pressure-driven demand agrees with the demand function at its node's pressure.
fn pda_converged(network: &HydNetwork, state: &HydState, work: &Workspace) -> bool {
    let options = &network.options;
    let dp = options.preq - options.pmin;
    let demands = work.full_demand.iter().zip(&state.demand_flow);
    let nodes = state.head.iter().zip(&network.nodes[..network.junctions]);
    demands
        .zip(nodes)
        .all(|((&full, &demand_flow), (&head, node))| {
            if full <= 0.0 {
                return true;
            }
            let pressure = head - node.elevation;
            let expected = if pressure <= options.pmin {
                0.0
            } else if pressure >= options.preq {
                full
            } else {
                full * ((pressure - options.pmin) / dp).powf(options.pexp)
            };
            (expected - demand_flow).abs() <= DEMAND_FLOW_TOLERANCE
        })
}

#[cfg(test)]
mod tests {
    use crate::solver::{simulate, SimOptions};

    /// Solves a network given as `.inp` text for one period; results in file units.
    fn solve_text(text: &str) -> crate::solver::StepResult {
        let network = crate::inp::read_str(text, "test.inp").unwrap();
        let mut results = simulate(
            &network,
            &SimOptions {
                steady: true,
                ..Default::default()
            },
        )
        .unwrap();
        results.steps.remove(0)
    }

    /// A looped network whose demands grow by 10 % and whose tank rises by 0.5 ft between two
    /// periods: the kept factor's linear response predicts the second period's flows to
    /// second order, much closer than the first period's flows are.
    #[test]
    fn linear_response_predicts_the_next_period() {
        let network = crate::inp::read_str(
            "[JUNCTIONS]\nA 0 100\nB 0 150\nC 0 120\n[RESERVOIRS]\nR 120\n[TANKS]\n\
             T 80 20 0 40 30 0\n[PIPES]\nP1 R A 1000 12 100 0 OPEN\nP2 A B 800 8 100 0 OPEN\n\
             P3 B C 900 8 100 0 OPEN\nP4 C A 700 6 100 0 OPEN\nP5 C T 500 10 100 0 OPEN\n\
             [TIMES]\nDURATION 1\n[OPTIONS]\nACCURACY 1e-9\n[END]\n",
            "test.inp",
        )
        .unwrap();
        let hyd = crate::solver::compile(&network).unwrap();
        let mut solver = crate::solver::Solver::new(&hyd);
        let mut run = crate::solver::PeriodRun::new(&hyd, &mut solver, &SimOptions::default());
        run.solve_period(|_| {}).unwrap();
        let before = run.state().clone();
        drop(run);
        let mut state = before.clone();
        let demand_change: Vec<f64> = before.demand_flow[..hyd.junctions]
            .iter()
            .map(|d| 0.1 * d)
            .collect();
        let mut head_change = vec![0.0; hyd.nodes.len()];
        let tank = hyd.nodes.len() - 1;
        head_change[tank] = 0.5;
        let mut predicted = vec![0.0; hyd.links.len()];
        assert!(solver.linear_response(&hyd, &demand_change, &head_change, &mut predicted));
        for (node, change) in demand_change.iter().enumerate() {
            state.node_demand[node] = before.demand_flow[node] + change;
            state.demand_flow[node] = state.node_demand[node];
        }
        state.head[tank] += 0.5;
        solver.solve(&hyd, &mut state);
        let size: f64 = before.flow.iter().map(|q| q.abs()).sum();
        let moved: f64 = (state.flow.iter().zip(&before.flow))
            .map(|(q, q0)| (q - q0).abs())
            .sum();
        let missed: f64 = (state.flow.iter().zip(&before.flow).zip(&predicted))
            .map(|((q, q0), dq)| (q - q0 - dq).abs())
            .sum();
        assert!(moved > 5e-3 * size, "{moved} of {size}");
        assert!(missed < 2e-2 * moved, "missed {missed} of {moved}");
    }

    #[test]
    fn single_pipe_head_loss_follows_hazen_williams() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 500\n[RESERVOIRS]\nR1 100\n[PIPES]\nP1 R1 J1 1000 12 100 0 OPEN\n[END]\n",
        );
        let q: f64 = 500.0 / 448.831;
        let expected = 100.0 - 4.727 * 1000.0 * q.powf(1.852) / 100f64.powf(1.852);
        assert!(
            (step.head[0] - expected).abs() < 1e-3,
            "{} vs {expected}",
            step.head[0]
        );
        assert!((step.flow[0] - 500.0).abs() < 1e-6);
        assert!(
            (step.demand[1] + 500.0).abs() < 1e-6,
            "reservoir supplies the demand"
        );
    }

    #[test]
    fn darcy_weisbach_single_pipe_matches_swamee_jain() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 50\n[RESERVOIRS]\nR1 50\n[PIPES]\nP1 R1 J1 500 300 0.1 0 OPEN\n\
             [OPTIONS]\nUNITS LPS\nHEADLOSS D-W\n[END]\n",
        );
        // SI by hand: v = Q/A, Re = v d / nu, f from Swamee-Jain, h = f L v^2 / (2 g d).
        let (q, d, length, nu, g): (f64, f64, f64, f64, f64) =
            (0.05, 0.3, 500.0, 1.1e-5 * 0.3048 * 0.3048, 32.2 * 0.3048);
        let v = q / (std::f64::consts::PI * d * d / 4.0);
        let re = v * d / nu;
        let f = 0.25 / (0.1e-3 / d / 3.7 + 5.74 / re.powf(0.9)).log10().powi(2);
        let expected = 50.0 - f * length * v * v / (2.0 * g * d);
        assert!(
            (step.head[0] - expected).abs() < 1e-4,
            "{} vs {expected}",
            step.head[0]
        );
    }

    #[test]
    fn emitter_outflow_follows_its_pressure() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 0\n[RESERVOIRS]\nR1 100\n[PIPES]\nP1 R1 J1 1000 6 100 0 OPEN\n\
             [EMITTERS]\nJ1 20\n[END]\n",
        );
        let pressure = step.pressure[0];
        let expected = 20.0 * pressure.sqrt();
        assert!(
            (step.demand[0] - expected).abs() < 1e-3 * expected,
            "{} vs {expected}",
            step.demand[0]
        );
        assert!((step.flow[0] - step.demand[0]).abs() < 1e-6);
    }

    #[test]
    fn pressure_driven_demand_is_reduced_below_required_pressure() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 300\n[RESERVOIRS]\nR1 40\n[PIPES]\nP1 R1 J1 2000 6 100 0 OPEN\n\
             [OPTIONS]\nDEMAND MODEL PDA\nMINIMUM PRESSURE 0\nREQUIRED PRESSURE 30\nPRESSURE EXPONENT 0.5\n[END]\n",
        );
        let pressure = step.pressure[0];
        assert!(pressure < 30.0);
        let expected = 300.0 * (pressure / 30.0).sqrt();
        assert!(
            (step.demand[0] - expected).abs() < 0.05,
            "{} vs {expected}",
            step.demand[0]
        );
    }

    #[test]
    fn active_prv_holds_its_downstream_pressure() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 0\nJ2 0 200\n[RESERVOIRS]\nR1 200\n[PIPES]\nP1 R1 J1 1000 12 100 0 OPEN\n\
             [VALVES]\nV1 J1 J2 12 PRV 30 0\n[END]\n",
        );
        assert!(
            (step.pressure[1] - 30.0).abs() < 1e-3,
            "{}",
            step.pressure[1]
        );
        assert_eq!(step.status[1], 2);
        assert!((step.flow[1] - 200.0).abs() < 1e-6);
    }

    #[test]
    fn active_fcv_passes_its_setting() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 0\nJ2 0 0\n[RESERVOIRS]\nR1 200\nR2 0\n[PIPES]\nP1 R1 J1 1000 12 100 0 OPEN\n\
             P2 J2 R2 1000 12 100 0 OPEN\n[VALVES]\nV1 J1 J2 12 FCV 250 0\n[END]\n",
        );
        assert!((step.flow[2] - 250.0).abs() < 1e-3, "{}", step.flow[2]);
        assert_eq!(step.status[2], 2);
    }

    #[test]
    fn check_valve_closes_against_reverse_head() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 100\n[RESERVOIRS]\nR1 100\nR2 200\n[PIPES]\nP1 R1 J1 1000 12 100 0 OPEN\n\
             P2 J1 R2 1000 12 100 0 CV\n[END]\n",
        );
        assert_eq!(step.status[1], 0);
        assert!((step.flow[0] - 100.0).abs() < 1e-3);
    }

    #[test]
    fn pump_lifts_along_its_curve() {
        let step = solve_text(
            "[JUNCTIONS]\nJ1 0 0\n[RESERVOIRS]\nR1 0\nR2 50\n[PIPES]\nP1 J1 R2 100 24 130 0 OPEN\n\
             [PUMPS]\nPU1 R1 J1 HEAD C1\n[CURVES]\nC1 1000 60\n[END]\n",
        );
        // One-point curve: h = 80.0004 - 0.00002000 q^2 (gpm); head at J1 is its lift.
        let q = step.flow[1];
        let lift = 1.33334 * 60.0 - (1.33334 * 60.0 - 60.0) * (q / 1000.0).powi(2);
        assert!(
            (step.head[0] - lift).abs() < 1e-2,
            "{} vs {lift}",
            step.head[0]
        );
    }
}
