//! Extended period simulation, driven as EPANET 2.3's `hydraul.c` drives it: each period sets
//! the demands, reservoir heads and pump speeds of its pattern period, applies the simple
//! controls and solves; the next time is the earliest of the hydraulic step, the next pattern
//! period, the next report time, a tank filling or draining, a control firing and a rule
//! firing, and tank levels advance over the step.

use super::compile::compile;
use super::controls::{apply_controls, control_time_step};
use super::data::{HydNetwork, HydState, LinkType, SolveOutcome, Status, MISSING};
use super::newton::Solver;
use super::rules::check_rules;
use super::tanks::{tank_time_step, update_tank_levels, ZERO_FLOW};
use super::warnings::{junction_outflow, pump_state, WarningChecker, WarningLog};
use super::{Halt, SimOptions, SimResults, SolverError, StepResult};
use crate::model::Network;
use crate::results::clock_time;
use demands::DemandCache;
pub(crate) use demands::DemandTable;

mod demands;

/// Runs the network's extended period simulation (or one steady period).
pub fn simulate(network: &Network, options: &SimOptions) -> Result<SimResults, SolverError> {
    let hyd = compile(network)?;
    let mut solver = Solver::with_threads(&hyd, options.threads);
    Ok(simulate_with(&hyd, &mut solver, options))
}

/// Runs the simulation of a compiled network with `solver`.
fn simulate_with(hyd: &HydNetwork, solver: &mut Solver, options: &SimOptions) -> SimResults {
    let mut run = PeriodRun::new(hyd, solver, options);
    let mut results = SimResults::default();
    while let Some(period) = run.solve_period(|_| {}) {
        if period.solved {
            results.steps.push(step_result(
                hyd,
                run.state(),
                period.t,
                period.report,
                &period.outcome,
            ));
        }
        if period.halted.is_some() {
            results.halted = period.halted;
        }
    }
    results.warnings = run.into_warnings();
    results
}

/// One solved period of a [`PeriodRun`].
#[derive(Debug, Clone)]
pub struct Period {
    /// Seconds since the start.
    pub t: u64,
    /// `true` at reporting times.
    pub report: bool,
    pub outcome: SolveOutcome,
    /// `false` when the equations could not be solved (the state is then not a solution).
    pub solved: bool,
    /// Set when the run stops after this period.
    pub halted: Option<Halt>,
}

/// An extended period simulation taken one period at a time, for callers that read each
/// period's state as it comes (criticality sweeps keep only their own totals) or start each
/// period's solve from their own flows.
pub struct PeriodRun<'a> {
    simulation: Simulation<'a>,
    solver: &'a mut Solver,
    /// The clock must move on before the next period (done lazily, so that the state of the
    /// period just solved stays readable).
    solved_one: bool,
    finished: bool,
}

impl<'a> PeriodRun<'a> {
    /// A run of `hyd` with `solver`, which must have been made for `hyd` or for a network of
    /// the same links between the same nodes (reusing one saves its symbolic analysis; what a
    /// run left with it through [`PeriodRun::finish`] serves only a network it fits, and
    /// changes no result).
    pub fn new(hyd: &'a HydNetwork, solver: &'a mut Solver, options: &SimOptions) -> Self {
        let parts = match solver.run_parts.take() {
            Some(parts) if parts.fits(hyd) => *parts,
            _ => RunParts::new(hyd),
        };
        Self {
            simulation: Simulation::with_parts(hyd, options.steady, parts),
            solver,
            solved_one: false,
            finished: false,
        }
    }

    /// Ends the run, leaving with the solver what the run built from its network (the warning
    /// checks' adjacency lists, the demand table) and, from then on, the junctions' demands of
    /// each pattern period as worked out once: the next run of the same network, or of one
    /// whose links differ only in their initial statuses and settings (a criticality sweep's
    /// failures), starts from them instead of building them again.
    pub fn finish(self) {
        let mut parts = self.simulation.parts;
        if parts.demand_cache.is_none() {
            parts.demand_cache = DemandCache::new(self.simulation.network, &parts.demands);
        }
        self.solver.run_parts = Some(Box::new(parts));
    }

    /// Solves the next period, after `seed` has seen (and may change) the state the solve
    /// starts from: demands, controls and statuses of the period set, flows those of the
    /// period before. `None` once the run is over.
    pub fn solve_period(&mut self, seed: impl FnOnce(&mut HydState)) -> Option<Period> {
        self.solve_period_with(|state, _| seed(state))
    }

    /// [`Self::solve_period`] whose `seed` also gets the solver, still holding the last
    /// period's linearization (see [`Solver::linear_response`]).
    pub fn solve_period_with(
        &mut self,
        seed: impl FnOnce(&mut HydState, &mut Solver),
    ) -> Option<Period> {
        let run = &mut self.simulation;
        if self.solved_one && !self.finished && run.advance() == 0 {
            self.finished = true;
        }
        if self.finished {
            return None;
        }
        self.solved_one = true;
        let outcome = run.solve_period(self.solver, seed);
        let t = run.clock.now();
        let report = run.clock.is_report_time();
        if let Some(node) = outcome.ill_conditioned_node {
            self.finished = true;
            let halted = Some(Halt {
                t,
                message: format!(
                    "cannot solve network hydraulic equations at {} hrs: ill-conditioned at node {}",
                    clock_time(t),
                    run.network.nodes[node].id
                ),
            });
            return Some(Period {
                t,
                report,
                outcome,
                solved: false,
                halted,
            });
        }
        let halted = run.check_period(&outcome);
        Some(Period {
            t,
            report,
            outcome,
            solved: true,
            halted,
        })
    }

    /// The state of the period just solved (heads and flows in internal units, ft and cfs).
    pub fn state(&self) -> &HydState {
        &self.simulation.state
    }

    /// Writes the results of `period`, the period just solved, over `out` (in the network's
    /// own units, as [`SimResults`] has them), reusing its arrays, without the links' status
    /// codes (`status` and `state` are left empty): what a summary of the run reads, at a
    /// third less work per period.
    pub fn write_step_values(&self, period: &Period, out: &mut StepResult) {
        let run = &self.simulation;
        write_step_values(
            run.network,
            &run.state,
            period.t,
            period.report,
            &period.outcome,
            out,
        );
        out.status.clear();
        out.state.clear();
    }

    /// The warnings of the run so far, as EPANET words them.
    pub fn into_warnings(self) -> Vec<super::SimWarning> {
        self.simulation.warnings.into_warnings()
    }
}

/// The simulation clock, seconds (EPANET's `Htime`, `Rtime` and time options).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clock {
    /// Simulated time of the current period.
    pub(crate) time: i64,
    /// Next reporting time the steps must not jump over.
    next_report: i64,
    duration: i64,
    hydraulic_step: i64,
    pattern_step: i64,
    pattern_start: i64,
    report_step: i64,
    report_start: i64,
    rule_step: i64,
}

impl Clock {
    /// The clock of `network`'s time options (already adjusted as EPANET adjusts them:
    /// the hydraulic step no longer than the pattern and report steps, the rule step no
    /// longer than the hydraulic step); a zero step is taken as 1 s to keep the clock moving.
    pub(crate) fn new(network: &HydNetwork, steady: bool) -> Self {
        let times = &network.times;
        Self {
            time: 0,
            next_report: times.report_step.max(1),
            duration: if steady { 0 } else { times.duration.max(0) },
            hydraulic_step: times.hydraulic_step.max(1),
            pattern_step: times.pattern_step.max(1),
            pattern_start: times.pattern_start.max(0),
            report_step: times.report_step.max(1),
            report_start: times.report_start.max(0),
            rule_step: times.rule_step.max(1),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.time.max(0) as u64
    }

    /// The pattern period that the current time falls in, counted from the pattern start.
    pub(crate) fn pattern_period(&self) -> usize {
        ((self.time + self.pattern_start) / self.pattern_step).max(0) as usize
    }

    /// `true` when the current time is a reporting time.
    pub(crate) fn is_report_time(&self) -> bool {
        self.time >= self.report_start && (self.time - self.report_start) % self.report_step == 0
    }

    /// The step to take before looking at tanks, controls and rules: the hydraulic step, cut
    /// at the next pattern period and the next reporting time.
    fn base_step(&self) -> i64 {
        let mut step = self.hydraulic_step;
        // EPANET measures the next pattern period from time 0 even with a pattern start.
        let next_period = (self.time + self.pattern_start) / self.pattern_step + 1;
        let to_pattern = next_period * self.pattern_step - self.time;
        if to_pattern > 0 && to_pattern < step {
            step = to_pattern;
        }
        let to_report = self.next_report - self.time;
        if to_report > 0 && to_report < step {
            step = to_report;
        }
        step
    }

    /// Moves the clock on by `step`; at the end of the run (`step` 0) it moves past the end.
    fn advance(&mut self, step: i64) {
        if self.time < self.duration {
            self.time += step;
            if self.time >= self.next_report {
                self.next_report += self.report_step;
            }
        } else {
            self.time += 1;
        }
    }
}

/// One run's state between periods.
struct Simulation<'a> {
    network: &'a HydNetwork,
    state: HydState,
    clock: Clock,
    /// Set when the run must stop after the current period (unbalanced with `UNBALANCED STOP`).
    halting: bool,
    parts: RunParts,
    warnings: WarningLog,
}

/// What a run builds from its network that the next run of the same network can take over
/// (see [`PeriodRun::finish`]).
#[derive(Debug, Clone)]
pub(crate) struct RunParts {
    checker: WarningChecker,
    demands: DemandTable,
    /// The junctions' demands of each pattern period, once a run has handed the parts on.
    demand_cache: Option<DemandCache>,
}

impl RunParts {
    fn new(network: &HydNetwork) -> Self {
        Self {
            checker: WarningChecker::new(network),
            demands: DemandTable::new(network),
            demand_cache: None,
        }
    }

    /// Whether the parts serve `network` as parts made for it would.
    fn fits(&self, network: &HydNetwork) -> bool {
        self.checker.fits(network)
            && self.demands.fits(network)
            && (self.demand_cache.as_ref()).is_none_or(|cache| cache.fits(network))
    }
}

impl<'a> Simulation<'a> {
    #[cfg(test)]
    fn new(network: &'a HydNetwork, steady: bool) -> Self {
        Self::with_parts(network, steady, RunParts::new(network))
    }

    fn with_parts(network: &'a HydNetwork, steady: bool, parts: RunParts) -> Self {
        Self {
            network,
            state: initial_state(network),
            clock: Clock::new(network, steady),
            halting: false,
            parts,
            warnings: WarningLog::default(),
        }
    }

    /// Sets the period's demands and control actions and solves it (EPANET's `runhyd`).
    fn solve_period(
        &mut self,
        solver: &mut Solver,
        seed: impl FnOnce(&mut HydState, &mut Solver),
    ) -> SolveOutcome {
        self.state.time = self.clock.time;
        self.set_demands();
        apply_controls(self.network, &mut self.state);
        seed(&mut self.state, solver);
        solver.solve(self.network, &mut self.state)
    }

    /// Decides whether an unbalanced period halts the run and records the period's warnings.
    fn check_period(&mut self, outcome: &SolveOutcome) -> Option<Halt> {
        let options = &self.network.options;
        let unbalanced = outcome.relative_error > options.accuracy;
        self.halting = unbalanced && options.extra_trials.is_none();
        self.parts.checker.check(
            self.network,
            &self.state,
            outcome,
            self.halting,
            &mut self.warnings,
        );
        self.halting.then(|| Halt {
            t: self.clock.now(),
            message: format!(
                "system unbalanced at {} hrs; simulation halted",
                clock_time(self.clock.now())
            ),
        })
    }

    /// Finds the next time step, advancing tank levels over it, and moves the clock on
    /// (EPANET's `nexthyd`). Returns the step taken; 0 at the end of the run.
    fn advance(&mut self) -> i64 {
        if self.halting {
            self.clock.time = self.clock.duration;
        }
        let step = if self.clock.time < self.clock.duration {
            self.time_step()
        } else {
            0
        };
        self.clock.advance(step);
        self.state.time = self.clock.time;
        step
    }

    /// The length of the next time step (EPANET's `timestep`), with tanks advanced over it.
    fn time_step(&mut self) -> i64 {
        let mut step = self.clock.base_step();
        step = tank_time_step(self.network, &self.state, step);
        step = control_time_step(self.network, &self.state, step);
        if self.network.rules.is_empty() {
            update_tank_levels(self.network, &mut self.state, step);
            step
        } else {
            self.rule_time_step(step)
        }
    }

    /// Walks through the step in rule steps, advancing tanks and evaluating the rules, and
    /// ends the step early at the first rule step where a rule changes a link (EPANET's
    /// `ruletimestep`).
    fn rule_time_step(&mut self, step: i64) -> i64 {
        let start = self.clock.time;
        let end = start + step;
        let rule_step = self.clock.rule_step.min(step);
        // The first increment reaches the next multiple of the rule step.
        let mut increment = (self.clock.rule_step - start % self.clock.rule_step).min(step);
        if increment == 0 {
            increment = rule_step;
        }
        let mut time = start;
        loop {
            time += increment;
            self.state.time = time;
            update_tank_levels(self.network, &mut self.state, increment);
            if check_rules(self.network, &mut self.state, increment) > 0 {
                break;
            }
            increment = rule_step.min(end - time);
            if increment <= 0 {
                break;
            }
        }
        self.state.time = start;
        time - start
    }

    /// Sets junction demands, reservoir heads and pump speeds for the current pattern period.
    fn set_demands(&mut self) {
        let network = self.network;
        let period = self.clock.pattern_period();
        let RunParts {
            demands,
            demand_cache,
            ..
        } = &mut self.parts;
        demands.set_period(network, period);
        match demand_cache {
            Some(cache) => {
                cache.apply(demands, &mut self.state, period);
                demands.apply_boundaries(network, &mut self.state);
            }
            None => demands.apply(network, &mut self.state, network.options.demand_multiplier),
        }
    }
}

/// The results of the period just solved at time `t`, in the network's own units.
pub(crate) fn step_result(
    network: &HydNetwork,
    state: &HydState,
    t: u64,
    report: bool,
    outcome: &SolveOutcome,
) -> StepResult {
    let mut result = StepResult::default();
    write_step_result(network, state, t, report, outcome, &mut result);
    result
}

/// [`step_result`] written over `out`, reusing its arrays.
fn write_step_result(
    network: &HydNetwork,
    state: &HydState,
    t: u64,
    report: bool,
    outcome: &SolveOutcome,
    out: &mut StepResult,
) {
    write_step_values(network, state, t, report, outcome, out);
    write_step_statuses(network, state, out);
}

/// The numeric part of [`write_step_result`]: everything but the links' status codes.
fn write_step_values(
    network: &HydNetwork,
    state: &HydState,
    t: u64,
    report: bool,
    outcome: &SolveOutcome,
    out: &mut StepResult,
) {
    let values = StateValues::new(network, state);
    out.t = t;
    out.report = report;
    out.iterations = outcome.iterations;
    out.relative_error = outcome.relative_error;
    // Junctions and tanks apart, so that the junctions' loops need no test per node.
    let junctions = || values.first_junctions(network.junctions);
    let tanks = network.junctions..network.nodes.len();
    let tank_heads = tanks.clone().map(|node| values.head(node));
    refill(
        &mut out.head,
        junctions().map(|(_, _, head)| head).chain(tank_heads),
    );
    // Exactly one value per node: a run keeps every step, so no spare capacity.
    out.pressure.clear();
    out.pressure.reserve_exact(network.nodes.len());
    (out.pressure).extend(junctions().map(|(_, pressure, _)| pressure));
    (out.pressure).extend(tanks.clone().map(|node| values.pressure(node)));
    out.demand.clear();
    out.demand.reserve_exact(network.nodes.len());
    (out.demand).extend(junctions().map(|(outflow, _, _)| outflow));
    (out.demand).extend(tanks.map(|node| values.outflow(node)));
    refill(&mut out.flow, values.flows());
}

/// A solved period's values as its [`StepResult`] reports them, in the network's units, read
/// one at a time from the solver's state: for sums over a few of them (a criticality
/// summary) without writing a whole step result first.
#[derive(Debug, Clone, Copy)]
pub struct StateValues<'s> {
    network: &'s HydNetwork,
    state: &'s HydState,
}

impl<'s> StateValues<'s> {
    pub fn new(network: &'s HydNetwork, state: &'s HydState) -> Self {
        Self { network, state }
    }

    /// What leaves junction `node`: delivered demand, emitter and leakage flow.
    #[inline(always)]
    pub fn junction_outflow(&self, node: usize) -> f64 {
        junction_outflow(self.state, node) * self.network.units.flow
    }

    /// What leaves `node`: at a junction as [`StateValues::junction_outflow`], at a tank or
    /// reservoir its net outflow.
    #[inline(always)]
    pub fn outflow(&self, node: usize) -> f64 {
        if node < self.network.junctions {
            self.junction_outflow(node)
        } else {
            self.state.node_demand[node] * self.network.units.flow
        }
    }

    /// Outflow, pressure and head of junctions `0..n` in turn (`n` at most the number of
    /// junctions), as the accessors below give them, in one pass over the state.
    #[inline(always)]
    pub fn first_junctions(&self, n: usize) -> impl Iterator<Item = (f64, f64, f64)> + 's {
        let (state, network) = (self.state, self.network);
        let n = n.min(network.junctions);
        let units = &network.units;
        let (flow, pressure, head) = (units.flow, units.pressure, units.head);
        (state.demand_flow[..n].iter())
            .zip(&state.emitter_flow[..n])
            .zip(&state.leakage_flow[..n])
            .zip(&state.head[..n])
            .zip(&network.nodes[..n])
            .map(move |((((&demand, &emitter), &leakage), &h), node)| {
                (
                    (demand + emitter + leakage) * flow,
                    (h - node.elevation) * pressure,
                    h * head,
                )
            })
    }

    /// [`StateValues::flow`] of every link in turn, in one pass.
    #[inline(always)]
    pub fn flows(&self) -> impl Iterator<Item = f64> + 's {
        let flow = self.network.units.flow;
        (self.state.flow.iter())
            .zip(&self.state.status)
            .map(move |(q, status)| if status.is_closed() { 0.0 } else { q * flow })
    }

    #[inline(always)]
    pub fn junction_pressure(&self, node: usize) -> f64 {
        (self.state.head[node] - self.network.nodes[node].elevation) * self.network.units.pressure
    }

    /// `node`'s pressure; a reservoir reports none.
    #[inline(always)]
    pub fn pressure(&self, node: usize) -> f64 {
        let junctions = self.network.junctions;
        if node >= junctions && self.network.tanks[node - junctions].is_reservoir() {
            0.0
        } else {
            self.junction_pressure(node)
        }
    }

    #[inline(always)]
    pub fn head(&self, node: usize) -> f64 {
        self.state.head[node] * self.network.units.head
    }

    /// `link`'s flow; a closed link carries none, whatever small flow the solver kept in it.
    #[inline(always)]
    pub fn flow(&self, link: usize) -> f64 {
        if self.state.status[link].is_closed() {
            0.0
        } else {
            self.state.flow[link] * self.network.units.flow
        }
    }
}

/// The links' status codes of [`write_step_result`].
fn write_step_statuses(network: &HydNetwork, state: &HydState, out: &mut StepResult) {
    refill(
        &mut out.status,
        state.status.iter().map(|s| s.report_code()),
    );
    refill(
        &mut out.state,
        network
            .links
            .iter()
            .enumerate()
            .map(|(link, data)| match data.pump {
                Some(pump) => pump_state(state, &network.pumps[pump]) as u8,
                None => state.status[link] as u8,
            }),
    );
}

fn refill<T>(values: &mut Vec<T>, from: impl Iterator<Item = T>) {
    values.clear();
    values.extend(from);
}

/// The state at the start of a run (EPANET's `inithyd`): tanks at their initial levels, links
/// at their initial status and setting, control valves with a setting active, and initial
/// flows of a closed link ~0, of a pump its design flow at its speed, of anything else the
/// flow at 1 ft/s.
pub(crate) fn initial_state(network: &HydNetwork) -> HydState {
    let nodes = network.nodes.len();
    let links = network.links.len();
    let mut state = HydState {
        head: vec![0.0; nodes],
        node_demand: vec![0.0; nodes],
        demand_flow: vec![0.0; nodes],
        emitter_flow: vec![0.0; nodes],
        leakage_flow: vec![0.0; nodes],
        flow: vec![0.0; links],
        setting: vec![0.0; links],
        status: vec![Status::Open; links],
        tank_volume: vec![0.0; network.tanks.len()],
        time: 0,
        system_demand: 0.0,
    };
    for (index, tank) in network.tanks.iter().enumerate() {
        state.tank_volume[index] = tank.v0;
        state.head[tank.node] = tank.h0;
    }
    for (node, data) in network.nodes.iter().enumerate().take(network.junctions) {
        if data.emitter_coeff > 0.0 {
            state.emitter_flow[node] = 1.0;
        }
    }
    for (index, link) in network.links.iter().enumerate() {
        let setting = link.initial_setting;
        let mut status = link.initial_status;
        let controlling_valve = matches!(
            link.link_type,
            LinkType::Prv | LinkType::Psv | LinkType::Fcv
        );
        if controlling_valve && setting != MISSING {
            status = Status::Active;
        }
        state.status[index] = status;
        state.setting[index] = setting;
        state.flow[index] = if status.is_closed() {
            ZERO_FLOW
        } else if link.link_type == LinkType::Pump {
            link.pump.map_or(0.0, |p| setting * network.pumps[p].q0)
        } else {
            std::f64::consts::PI * (link.diameter * link.diameter) / 4.0
        };
    }
    state
}

#[cfg(test)]
mod tests;
