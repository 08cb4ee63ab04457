//! Extended period simulation, driven as EPANET 2.3's `hydraul.c` drives it: each period sets
//! the demands, reservoir heads and pump speeds of its pattern period, applies the simple
//! controls and solves; the next time is the earliest of the hydraulic step, the next pattern
//! period, the next report time, a tank filling or draining, a control firing and a rule
//! firing, and tank levels advance over the step.

use super::compile::compile;
use super::controls::{apply_controls, control_time_step};
use super::data::{HydNetwork, HydState, LinkType, SolveOutcome, Status, MISSING};
use super::newton::Solver;
use super::rules::{check_rules, set_link_setting};
use super::tanks::{tank_time_step, update_tank_levels, ZERO_FLOW};
use super::warnings::{junction_outflow, pump_state, WarningChecker, WarningLog};
use super::{Halt, SimOptions, SimResults, SolverError, StepResult};
use crate::model::Network;
use crate::results::clock_time;

/// Runs the network's extended period simulation (or one steady period).
pub fn simulate(network: &Network, options: &SimOptions) -> Result<SimResults, SolverError> {
    let hyd = compile(network)?;
    Ok(simulate_compiled(&hyd, options))
}

/// Runs the simulation of a compiled network.
fn simulate_compiled(hyd: &HydNetwork, options: &SimOptions) -> SimResults {
    let mut solver = Solver::new(hyd);
    let mut run = Simulation::new(hyd, options.steady);
    let mut results = SimResults::default();
    loop {
        let outcome = run.solve_period(&mut solver);
        if let Some(node) = outcome.ill_conditioned_node {
            results.halted = Some(Halt {
                t: run.clock.now(),
                message: format!(
                    "cannot solve network hydraulic equations at {} hrs: ill-conditioned at node {}",
                    clock_time(run.clock.now()),
                    hyd.nodes[node].id
                ),
            });
            break;
        }
        results.steps.push(step_result(
            hyd,
            &run.state,
            run.clock.now(),
            run.clock.is_report_time(),
            &outcome,
        ));
        if let Some(halt) = run.check_period(&outcome) {
            results.halted = Some(halt);
        }
        if run.advance() == 0 {
            break;
        }
    }
    results.warnings = run.warnings.into_warnings();
    results
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
    checker: WarningChecker,
    warnings: WarningLog,
    demands: DemandTable,
}

/// Every junction's demands in one contiguous table, with the pattern factors of the current
/// period worked out once per period: setting the demands then streams through two arrays
/// instead of visiting each junction's own list.
pub(crate) struct DemandTable {
    /// Base demand (cfs) and index into `factors` of each demand, junction after junction.
    base: Vec<f64>,
    factor_index: Vec<usize>,
    /// Where each junction's demands end in `base`.
    junction_end: Vec<usize>,
    /// Each pattern's factor for the current period, then 1.0 for demands without a pattern.
    factors: Vec<f64>,
}

impl DemandTable {
    pub(crate) fn new(network: &HydNetwork) -> Self {
        let patterns = network.patterns.len();
        let junctions = &network.nodes[..network.junctions];
        let demands = || junctions.iter().flat_map(|node| &node.demands);
        let mut end = 0;
        Self {
            base: demands().map(|demand| demand.base).collect(),
            factor_index: demands()
                .map(|demand| Self::factor_index(patterns, demand.pattern))
                .collect(),
            junction_end: junctions
                .iter()
                .map(|node| {
                    end += node.demands.len();
                    end
                })
                .collect(),
            factors: vec![1.0; patterns + 1],
        }
    }

    /// Where the factor of `pattern` is kept, with `patterns` patterns (a missing pattern
    /// counts as none).
    fn factor_index(patterns: usize, pattern: Option<usize>) -> usize {
        pattern.filter(|&p| p < patterns).unwrap_or(patterns)
    }

    /// The current period's factor of `pattern` (1.0 without one).
    fn factor(&self, pattern: Option<usize>) -> f64 {
        self.factors[Self::factor_index(self.factors.len() - 1, pattern)]
    }

    /// Looks up each pattern's factor for pattern period `period` (1.0 for an empty pattern).
    pub(crate) fn set_period(&mut self, network: &HydNetwork, period: usize) {
        for (factor, pattern) in self.factors.iter_mut().zip(&network.patterns) {
            *factor = if pattern.is_empty() {
                1.0
            } else {
                pattern[period % pattern.len()]
            };
        }
    }

    /// Replaces the current period's factor of pattern `pattern` (an index into the
    /// network's patterns; others are ignored).
    pub(crate) fn set_factor(&mut self, pattern: usize, factor: f64) {
        let patterns = self.factors.len() - 1;
        if pattern < patterns {
            self.factors[pattern] = factor;
        }
    }

    /// Sets junction demands (the factors times `demand_multiplier`), patterned reservoir
    /// heads and patterned pump speeds from the current period's factors (EPANET's
    /// `demands`).
    pub(crate) fn apply(&self, network: &HydNetwork, state: &mut HydState, demand_multiplier: f64) {
        state.system_demand = 0.0;
        let mut start = 0;
        for (node, &end) in self.junction_end.iter().enumerate() {
            let mut total = 0.0;
            for (base, &factor) in self.base[start..end]
                .iter()
                .zip(&self.factor_index[start..end])
            {
                let flow = base * self.factors[factor] * demand_multiplier;
                if flow > 0.0 {
                    state.system_demand += flow;
                }
                total += flow;
            }
            state.node_demand[node] = total;
            state.demand_flow[node] = total;
            start = end;
        }
        for tank in network.tanks.iter().filter(|t| t.is_reservoir()) {
            if tank.pattern.is_some() {
                state.head[tank.node] =
                    network.nodes[tank.node].elevation * self.factor(tank.pattern);
            }
        }
        for pump in &network.pumps {
            if pump.speed_pattern.is_some() {
                let speed = self.factor(pump.speed_pattern);
                set_link_setting(network, state, pump.link, speed);
            }
        }
    }
}

impl<'a> Simulation<'a> {
    fn new(network: &'a HydNetwork, steady: bool) -> Self {
        Self {
            network,
            state: initial_state(network),
            clock: Clock::new(network, steady),
            halting: false,
            checker: WarningChecker::new(network),
            warnings: WarningLog::default(),
            demands: DemandTable::new(network),
        }
    }

    /// Sets the period's demands and control actions and solves it (EPANET's `runhyd`).
    fn solve_period(&mut self, solver: &mut Solver) -> SolveOutcome {
        self.state.time = self.clock.time;
        self.set_demands();
        apply_controls(self.network, &mut self.state);
        solver.solve(self.network, &mut self.state)
    }

    /// Decides whether an unbalanced period halts the run and records the period's warnings.
    fn check_period(&mut self, outcome: &SolveOutcome) -> Option<Halt> {
        let options = &self.network.options;
        let unbalanced = outcome.relative_error > options.accuracy;
        self.halting = unbalanced && options.extra_trials.is_none();
        self.checker.check(
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
        self.demands
            .set_period(network, self.clock.pattern_period());
        self.demands
            .apply(network, &mut self.state, network.options.demand_multiplier);
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
    let units = &network.units;
    let head: Vec<f64> = state.head.iter().map(|h| h * units.head).collect();
    let pressure = (0..network.nodes.len())
        .map(|node| {
            let is_reservoir =
                node >= network.junctions && network.tanks[node - network.junctions].is_reservoir();
            if is_reservoir {
                0.0
            } else {
                (state.head[node] - network.nodes[node].elevation) * units.pressure
            }
        })
        .collect();
    let demand = (0..network.nodes.len())
        .map(|node| {
            let flow = if node < network.junctions {
                junction_outflow(state, node)
            } else {
                state.node_demand[node]
            };
            flow * units.flow
        })
        .collect();
    StepResult {
        t,
        report,
        head,
        pressure,
        demand,
        // A closed link carries no flow, whatever small flow the solver kept in it.
        flow: state
            .flow
            .iter()
            .zip(&state.status)
            .map(|(q, status)| {
                if status.is_closed() {
                    0.0
                } else {
                    q * units.flow
                }
            })
            .collect(),
        status: state.status.iter().map(|s| s.report_code()).collect(),
        state: network
            .links
            .iter()
            .enumerate()
            .map(|(link, data)| match data.pump {
                Some(pump) => pump_state(state, &network.pumps[pump]) as u8,
                None => state.status[link] as u8,
            })
            .collect(),
        iterations: outcome.iterations,
        relative_error: outcome.relative_error,
    }
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
mod tests {
    use super::*;
    use crate::results::{compare, ResultsDocument, Tolerances};
    use crate::solver::controls::apply_controls;
    use std::path::Path;

    /// A reservoir feeding a tank through a junction, in CFS and feet, with extra lines for
    /// `[CONTROLS]` (which may go on with further sections, e.g. `[RULES]`), `[TIMES]` and
    /// `[OPTIONS]`. The tank's diameter gives it an area of
    /// 100 ft2, so a 1 cfs inflow raises it 0.01 ft a second.
    fn tank_model(controls: &str, times: &str, options: &str) -> Network {
        let text = format!(
            "[JUNCTIONS]\n J1 0 0\n[RESERVOIRS]\n R1 100\n[TANKS]\n T1 0 10 0 20 \
             11.283791670955125 0\n[PIPES]\n P1 R1 J1 1000 12 100 0 Open\n P2 J1 T1 1000 12 100 \
             0 Open\n[CONTROLS]\n{controls}\n[TIMES]\n Duration 24:00\n{times}\n[OPTIONS]\n \
             Units CFS\n{options}\n[END]\n"
        );
        crate::inp::read_str(&text, "tank.inp").unwrap()
    }

    fn tank_network(controls: &str, times: &str) -> HydNetwork {
        compile(&tank_model(controls, times, "")).unwrap()
    }

    const TANK_NODE: usize = 2;

    /// The initial state with the tank filling at `inflow` cfs.
    fn filling_state(network: &HydNetwork, inflow: f64) -> HydState {
        let mut state = initial_state(network);
        state.node_demand[TANK_NODE] = inflow;
        state
    }

    fn clock(time: i64, next_report: i64, pattern_step: i64) -> Clock {
        Clock {
            time,
            next_report,
            duration: 86_400,
            hydraulic_step: 3600,
            pattern_step,
            pattern_start: 0,
            report_step: 3600,
            report_start: 0,
            rule_step: 360,
        }
    }

    #[test]
    fn steps_stop_at_pattern_periods_and_report_times() {
        assert_eq!(clock(0, 3600, 3600).base_step(), 3600);
        assert_eq!(clock(1800, 3600, 2700).base_step(), 900);
        assert_eq!(clock(3000, 3600, 7200).base_step(), 600);
        let mut at_report = clock(3000, 3600, 7200);
        at_report.advance(600);
        assert_eq!((at_report.time, at_report.next_report), (3600, 7200));
        assert!(at_report.is_report_time());
        at_report.advance(1000);
        assert!(!at_report.is_report_time());
    }

    #[test]
    fn tank_fill_and_drain_times_cut_the_step() {
        let network = tank_network("", "");
        // 10 ft to fill at 0.01 ft/s; 10 ft to drain at 0.02 ft/s.
        assert_eq!(
            tank_time_step(&network, &filling_state(&network, 1.0), 3600),
            1000
        );
        assert_eq!(
            tank_time_step(&network, &filling_state(&network, -2.0), 3600),
            500
        );
        assert_eq!(
            tank_time_step(&network, &filling_state(&network, 0.1), 3600),
            3600
        );
        assert_eq!(
            tank_time_step(&network, &filling_state(&network, 1e-7), 3600),
            3600
        );
    }

    #[test]
    fn tank_levels_advance_and_stop_at_full() {
        let network = tank_network("", "");
        let mut state = filling_state(&network, 1.0);
        update_tank_levels(&network, &mut state, 500);
        assert!((state.head[TANK_NODE] - 15.0).abs() < 1e-9);
        // Within a second of full, the tank is set full.
        update_tank_levels(&network, &mut state, 499);
        assert!((state.head[TANK_NODE] - 20.0).abs() < 1e-9);
    }

    #[test]
    fn level_and_time_controls_cut_the_step() {
        let network = tank_network("LINK P1 CLOSED IF NODE T1 ABOVE 15", "");
        assert_eq!(
            control_time_step(&network, &filling_state(&network, 1.0), 3600),
            500
        );
        // A draining tank never reaches the upper level.
        assert_eq!(
            control_time_step(&network, &filling_state(&network, -1.0), 3600),
            3600
        );

        let network = tank_network("LINK P1 CLOSED AT TIME 0:20", "");
        assert_eq!(
            control_time_step(&network, &filling_state(&network, 0.0), 3600),
            1200
        );

        // Clock time 23:50 with the start at 23:00: 50 minutes of simulated time.
        let network = tank_network(
            "LINK P1 CLOSED AT CLOCKTIME 23:50",
            " Start ClockTime 23:00",
        );
        assert_eq!(
            control_time_step(&network, &filling_state(&network, 0.0), 3600),
            3000
        );

        // A control that would not change its link does not cut the step.
        let network = tank_network("LINK P1 OPEN AT TIME 0:20", "");
        assert_eq!(
            control_time_step(&network, &filling_state(&network, 0.0), 3600),
            3600
        );
    }

    #[test]
    fn level_controls_fire_within_one_second_of_flow() {
        let network = tank_network("LINK P1 CLOSED IF NODE T1 ABOVE 15", "");
        // 0.02 ft below the control level is 2 ft3 short of its volume.
        let mut state = filling_state(&network, 1.0);
        state.head[TANK_NODE] = 14.98;
        assert_eq!(apply_controls(&network, &mut state), 0);
        assert_eq!(state.status[0], Status::Open);
        state.node_demand[TANK_NODE] = 3.0;
        assert_eq!(apply_controls(&network, &mut state), 1);
        assert_eq!(state.status[0], Status::Closed);
    }

    #[test]
    fn rules_are_checked_every_rule_step_and_end_the_step() {
        let rule = "[RULES]\nRULE 1\nIF TANK T1 LEVEL ABOVE 15\nTHEN PIPE P1 STATUS IS CLOSED";
        let network = tank_network(rule, "");
        assert_eq!(network.times.rule_step, 360);
        let mut run = Simulation::new(&network, false);
        run.state.node_demand[TANK_NODE] = 1.0;
        // The level passes 15 ft at 500 s; the rule sees it at the second rule step.
        assert_eq!(run.time_step(), 720);
        assert_eq!(run.state.status[0], Status::Closed);
        assert!((run.state.head[TANK_NODE] - 17.2).abs() < 1e-9);
        assert_eq!(run.state.time, 0);
    }

    #[test]
    fn a_steady_run_solves_one_period() {
        let steady = SimOptions { steady: true };
        let results = simulate(&tank_model("", "", ""), &steady).unwrap();
        assert_eq!(results.steps.len(), 1);
        assert!(results.steps[0].report);
        assert!(results.halted.is_none());
    }

    #[test]
    fn every_step_is_kept_and_reporting_times_are_marked() {
        // The tank fills in 1000 s at first, so the run takes a step that is not reported.
        let results = simulate(&tank_model("", "", ""), &SimOptions::default()).unwrap();
        let times: Vec<u64> = results.steps.iter().map(|s| s.t).collect();
        assert_eq!(times.first(), Some(&0));
        assert_eq!(times.last(), Some(&86_400));
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        for step in &results.steps {
            assert_eq!(step.report, step.t % 3600 == 0, "t={}", step.t);
        }
        assert!(results.steps.iter().any(|s| !s.report));
    }

    #[test]
    fn unbalanced_stop_halts_after_the_period() {
        let options = " Trials 1\n Accuracy 1e-12\n Unbalanced Stop";
        let results = simulate(&tank_model("", "", options), &SimOptions::default()).unwrap();
        assert_eq!(results.steps.len(), 1);
        assert_eq!(results.halted.as_ref().map(|h| h.t), Some(0));
        let messages: Vec<&str> = results
            .warnings
            .iter()
            .map(|w| w.message.as_str())
            .collect();
        assert!(
            messages.contains(&"WARNING: System unbalanced . Simulation halted."),
            "{messages:?}"
        );
    }

    #[test]
    fn unbalanced_continue_runs_to_the_end() {
        let options = " Trials 1\n Accuracy 1e-12\n Unbalanced Continue 0";
        let results = simulate(&tank_model("", "", options), &SimOptions::default()).unwrap();
        assert!(results.halted.is_none());
        assert_eq!(results.steps.last().map(|s| s.t), Some(86_400));
        let unbalanced = results
            .warnings
            .iter()
            .find(|w| w.message == "WARNING: System unbalanced .");
        // Later periods start from the previous flows and may balance within the one trial.
        assert!(unbalanced.is_some_and(|w| w.first_at == 0 && w.count >= 1));
    }

    /// Simulates `name` from the shared networks and compares every step with EPANET's, and
    /// when `with_warnings` the warnings and every link's internal state too.
    fn parity(name: &str, with_warnings: bool) -> Result<String, String> {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
        let (file, steady) = match name.strip_suffix(".steady") {
            Some(stem) => (stem, true),
            None => (name, false),
        };
        let network = crate::inp::read_file(&shared.join(format!("networks/{file}.inp")))
            .map_err(|e| e.to_string())?;
        let results = simulate(&network, &SimOptions { steady }).map_err(|e| e.to_string())?;
        let ours = ResultsDocument::from_simulation(&network, &results, name);
        let text = std::fs::read_to_string(shared.join(format!("reference/{name}.json")))
            .map_err(|e| e.to_string())?;
        let reference: ResultsDocument = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let tolerances = Tolerances {
            all_steps: true,
            ..Tolerances::default()
        };
        let outcome = compare(&ours, &reference, &tolerances);
        let mut warnings_differ = Vec::new();
        if with_warnings {
            warnings_differ.extend(warning_differences(&ours, &text));
            warnings_differ.extend(state_differences(&ours, &reference));
        }
        if outcome.passed() && warnings_differ.is_empty() {
            Ok(outcome.verdict())
        } else {
            Err(format!(
                "{}\n  {}\n  {}",
                outcome.verdict(),
                outcome.problems.join("\n  "),
                warnings_differ.join("\n  ")
            ))
        }
    }

    /// Differences between our warnings and EPANET's (message, count, first time) in the
    /// reference file's `epanet_warnings`; EPANET gives no time for the closed link blamed for
    /// a disconnection.
    fn warning_differences(ours: &ResultsDocument, reference_text: &str) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Reference {
            epanet_warnings: Vec<crate::results::WarningRecord>,
        }
        let Ok(reference) = serde_json::from_str::<Reference>(reference_text) else {
            return vec!["reference has no readable epanet_warnings".to_string()];
        };
        let key = |w: &crate::results::WarningRecord| {
            let first_at = if w.message.contains("because of Link") {
                String::new()
            } else {
                w.first_at.clone()
            };
            (w.message.clone(), w.count, first_at)
        };
        let ours: Vec<_> = ours.warnings.iter().map(key).collect();
        let expected: Vec<_> = reference.epanet_warnings.iter().map(key).collect();
        if ours == expected {
            Vec::new()
        } else {
            vec![format!("warnings: ours {ours:?}\n  EPANET's {expected:?}")]
        }
    }

    /// The first step and link where EPANET's internal link state differs from ours.
    fn state_differences(ours: &ResultsDocument, reference: &ResultsDocument) -> Option<String> {
        let by_time: std::collections::HashMap<u64, &crate::results::StepRecord> =
            ours.steps.iter().map(|s| (s.t, s)).collect();
        for expected in &reference.steps {
            let Some(step) = by_time.get(&expected.t) else {
                continue;
            };
            for (link, (a, b)) in step.state.iter().zip(&expected.state).enumerate() {
                if a != b {
                    let id = &reference.link_ids[link];
                    return Some(format!(
                        "state of {id} at t={}: ours {a}, EPANET's {b}",
                        expected.t
                    ));
                }
            }
        }
        None
    }

    fn check_parity(names: &[&str], with_warnings: bool) {
        let failures: Vec<String> = names
            .iter()
            .filter_map(|name| match parity(name, with_warnings) {
                Ok(verdict) => {
                    println!("{verdict}");
                    None
                }
                Err(problem) => Some(problem),
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Every step of these extended period runs, and their warnings, agree with EPANET's.
    #[test]
    fn extended_period_parity() {
        check_parity(
            &[
                "Net1",
                "Net2",
                "Net3",
                "latin1",
                "Anytown",
                "Anytown_multipointcurves",
                "BWSN_Network_1",
                "Jilin_including_water_quality",
                "New_York_Tunnels_including_water_quality",
                "msx_example",
                "msx_net2-cl2",
                "bad_times",
                "times",
                "io",
                "leaks",
                "epanet_leaks",
                "simulator",
                "cv_controls",
                "control_comb",
                "conditional_controls_1",
                "tank_controls_1",
                "tank_controls_2",
                "time_controls",
                "fcv_open_no_downstream_sources",
                "prv_open_no_upstream_sources",
                "psv_open_no_downstream_sources",
                "Net6",
                "Richmond_skeleton",
                "conditional_controls_2",
                "Anytown_wntrtest",
                "fcv_open_no_upstream_sources",
                "prv_closed_no_upstream_sources",
            ],
            true,
        );
    }

    /// Single-period networks (the solve itself; the driver runs one period).
    #[test]
    fn single_period_parity() {
        check_parity(
            &[
                "Awumah_layout1",
                "Balerma",
                "Extended_Hanoi",
                "KL",
                "RuralNetwork",
                "ZJ",
                "exnet-3",
                "foss_poly_1",
                "ky1",
                "ky3",
                "ky4",
                "ky5",
                "ky10",
                "nytun",
                "skeletonize",
            ],
            true,
        );
    }

    /// Rule-based controls (MICROPOLIS: 196 TCVs and rules), warnings and link states included.
    #[test]
    fn rule_based_parity() {
        check_parity(&["MICROPOLIS_v1"], true);
    }

    /// The first period alone (`SimOptions::steady`) of extended period networks. The
    /// references' warnings are those of the whole run, so they are not compared.
    #[test]
    fn steady_option_parity() {
        check_parity(
            &[
                "Net1.steady",
                "Net2.steady",
                "Net3.steady",
                "Net6.steady",
                "MICROPOLIS_v1.steady",
                "Richmond_skeleton.steady",
                "BWSN_Network_1.steady",
                "io.steady",
                "tank_controls_2.steady",
            ],
            false,
        );
    }
}
