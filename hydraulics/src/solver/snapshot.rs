//! Single-period ("snapshot") solves for the live twin: each reporting period the network is
//! solved once with boundary conditions taken from measurements (reservoir heads, tank levels,
//! link statuses and settings, demand multipliers). Unlike [`super::simulate`] there is no
//! time stepping, no tank update and no simple or rule-based control: the measurements are
//! the truth. The compiled network, the solver's symbolic factorization and the flows of the
//! previous call are kept, so each period starts from the last one's solution.

use std::collections::HashMap;

use super::compile::{compile, valve_setting};
use super::data::{HydNetwork, HydState, LinkType, Status};
use super::eps::{initial_state, step_result, Clock, DemandTable};
use super::newton::Solver;
use super::rules::{set_link_setting, set_link_status};
use super::tanks::tank_volume;
use super::{SolverError, StepResult};
use crate::model::Network;
use crate::results::clock_time;

/// A measured open/closed state of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Open,
    Closed,
}

/// The boundary conditions of one period, in the network's own (file) units, elements named
/// by their ids. A reservoir head or demand not given is the network's own for the period
/// (patterns at `time`); a tank level, link state or setting not given is the previous
/// period's (the initial one's on the first call).
#[derive(Debug, Clone, Default)]
pub struct BoundaryConditions {
    /// Seconds since the start; selects the pattern period.
    pub time: u64,
    /// Replaces the network's `DEMAND MULTIPLIER` option.
    pub demand_multiplier: Option<f64>,
    /// Replaces a pattern's factor for this period (pattern id, factor); the factor then
    /// applies to everything on that pattern: demands, reservoir heads, pump speeds.
    pub pattern_factors: Vec<(String, f64)>,
    /// Reservoir heads (reservoir id, head).
    pub reservoir_heads: Vec<(String, f64)>,
    /// Tank water levels above the tank bottom (tank id, level).
    pub tank_levels: Vec<(String, f64)>,
    /// Measured open/closed states (link id, state). A link the solver itself holds shut
    /// (a check valve, a pump that cannot deliver head) counts as open: only the user-level
    /// closed status is set or cleared, so that the previous period's state carries over.
    pub link_states: Vec<(String, LinkState)>,
    /// Pump speeds and valve settings (link id, value), applied after `link_states`.
    pub link_settings: Vec<(String, f64)>,
}

/// The result of one snapshot solve.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Heads, flows, demands and statuses in file units, with the solver's iterations and
    /// relative error.
    pub result: StepResult,
    /// `true` when the network balanced within its trials.
    pub converged: bool,
}

/// Why a snapshot could not be solved.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Solver(#[from] SolverError),
    /// An id names no element of the kind looked for.
    #[error("unknown {kind} `{id}`")]
    UnknownElement { kind: &'static str, id: String },
    /// A kept period of another network (or an empty one) was given to solve again.
    #[error("the period given was not kept by this network's solver")]
    ForeignPeriod,
    /// An id names an element that cannot take this boundary condition.
    #[error("`{id}` is not {expected}")]
    WrongElementKind { id: String, expected: &'static str },
}

/// Boundary conditions resolved to element indices and internal units.
#[derive(Default)]
struct ResolvedConditions {
    pattern_factors: Vec<(usize, f64)>,
    /// Node and head, ft.
    reservoir_heads: Vec<(usize, f64)>,
    /// Tank index and head, ft.
    tank_heads: Vec<(usize, f64)>,
    link_states: Vec<(usize, LinkState)>,
    /// Link and setting in internal units.
    link_settings: Vec<(usize, f64)>,
}

/// A solved period of a [`SnapshotSolver`], kept to be solved again with a leak. The default
/// is an empty placeholder that no solver accepts.
#[derive(Debug, Clone, Default)]
pub struct KeptPeriod {
    state: HydState,
    /// The junctions' required demands of the period, before the solve (cfs).
    demand: Vec<f64>,
}

/// Solves one period at a time with given boundary conditions, keeping the compiled network
/// and the state between calls.
pub struct SnapshotSolver {
    network: HydNetwork,
    solver: Solver,
    state: HydState,
    clock: Clock,
    demands: DemandTable,
    node_index: HashMap<String, usize>,
    link_index: HashMap<String, usize>,
    pattern_index: HashMap<String, usize>,
    /// The junctions' required demands of the last period solved (cfs): after a solve the
    /// state holds the delivered ones.
    required_demand: Vec<f64>,
}

impl SnapshotSolver {
    /// Compiles `network` and analyses its matrix once; the first solve starts from the
    /// network's initial state.
    pub fn new(network: &Network) -> Result<Self, SolverError> {
        let hyd = compile(network)?;
        let index = |ids: Vec<&String>| -> HashMap<String, usize> {
            ids.into_iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect()
        };
        Ok(Self {
            solver: Solver::new(&hyd),
            state: initial_state(&hyd),
            clock: Clock::new(&hyd, true),
            demands: DemandTable::new(&hyd),
            node_index: index(hyd.nodes.iter().map(|n| &n.id).collect()),
            link_index: index(hyd.links.iter().map(|l| &l.id).collect()),
            pattern_index: index(network.patterns.iter().map(|p| &p.id).collect()),
            required_demand: vec![0.0; hyd.junctions],
            network: hyd,
        })
    }

    /// Solves the period described by `conditions`. On an error in the conditions nothing
    /// changes; the state of a solved period is the next one's starting point.
    pub fn solve(&mut self, conditions: &BoundaryConditions) -> Result<Snapshot, SnapshotError> {
        let resolved = self.resolve(conditions)?;
        let network = &self.network;
        let state = &mut self.state;
        let time = i64::try_from(conditions.time).unwrap_or(i64::MAX);
        self.clock.time = time;
        state.time = time;

        self.demands
            .set_period(network, self.clock.pattern_period());
        for &(pattern, factor) in &resolved.pattern_factors {
            self.demands.set_factor(pattern, factor);
        }
        let multiplier = conditions
            .demand_multiplier
            .unwrap_or(network.options.demand_multiplier);
        // A head measured last period must not outlive it: unpatterned reservoirs go back to
        // their own head, patterned ones get theirs from `apply`.
        for tank in network.tanks.iter().filter(|t| t.is_reservoir()) {
            state.head[tank.node] = tank.h0;
        }
        self.demands.apply(network, state, multiplier);
        self.required_demand
            .copy_from_slice(&state.node_demand[..network.junctions]);

        for &(node, head) in &resolved.reservoir_heads {
            state.head[node] = head;
        }
        for &(tank, head) in &resolved.tank_heads {
            let tank = &network.tanks[tank];
            state.head[tank.node] = head;
        }
        for (index, tank) in network.tanks.iter().enumerate() {
            state.tank_volume[index] = tank_volume(network, tank, state.head[tank.node]);
        }
        for &(link, measured) in &resolved.link_states {
            let user_closed = state.status[link] == Status::Closed;
            match measured {
                LinkState::Open if user_closed => set_link_status(network, state, link, true),
                LinkState::Closed if !user_closed => set_link_status(network, state, link, false),
                _ => {}
            }
        }
        for &(link, setting) in &resolved.link_settings {
            set_link_setting(network, state, link, setting);
        }

        let outcome = self.solver.solve(network, state);
        if let Some(node) = outcome.ill_conditioned_node {
            return Err(SolverError::IllConditioned {
                time: format!("{} hrs", clock_time(self.clock.now())),
                detail: format!("ill-conditioned at node {}", network.nodes[node].id),
            }
            .into());
        }
        Ok(Snapshot {
            result: step_result(
                network,
                state,
                self.clock.now(),
                self.clock.is_report_time(),
                &outcome,
            ),
            converged: outcome.converged,
        })
    }

    /// The period solved last, kept to be solved again later with a leak
    /// ([`Self::solve_with_leak`]).
    pub fn keep_period(&self) -> KeptPeriod {
        KeptPeriod {
            state: self.state.clone(),
            demand: self.required_demand.clone(),
        }
    }

    /// Solves `period` again with `flow` (network flow unit) of extra outflow at junction
    /// `junction` and every consumer's demand lowered in proportion, so that the outflow in
    /// all stays the period's: what a leak looks like to a twin whose demand follows
    /// the metered inflow. Starts from the period's own solution, so the answer does not
    /// depend on what was solved before; the solver's state is left as it was.
    pub fn solve_with_leak(
        &mut self,
        period: &KeptPeriod,
        junction: usize,
        flow: f64,
    ) -> Result<Snapshot, SnapshotError> {
        let network = &self.network;
        if junction >= network.junctions {
            return Err(SnapshotError::UnknownElement {
                kind: "junction",
                id: junction.to_string(),
            });
        }
        if period.demand.len() != network.junctions
            || period.state.head.len() != network.nodes.len()
            || period.state.flow.len() != network.links.len()
        {
            return Err(SnapshotError::ForeignPeriod);
        }
        let mut state = period.state.clone();
        let leak = flow / network.units.flow;
        let mut demand = period.demand.clone();
        let total: f64 = demand.iter().filter(|d| **d > 0.0).sum();
        if total > 0.0 {
            let kept = ((total - leak) / total).max(0.0);
            for value in demand.iter_mut().filter(|d| **d > 0.0) {
                *value *= kept;
            }
        }
        demand[junction] += leak;
        state.node_demand[..network.junctions].copy_from_slice(&demand);
        state.demand_flow[..network.junctions].copy_from_slice(&demand);
        let clock_time = self.clock.time;
        self.clock.time = state.time;
        let outcome = self.solver.solve(network, &mut state);
        let result = step_result(
            network,
            &state,
            self.clock.now(),
            self.clock.is_report_time(),
            &outcome,
        );
        self.clock.time = clock_time;
        Ok(Snapshot {
            result,
            converged: outcome.converged && outcome.ill_conditioned_node.is_none(),
        })
    }

    /// Checks every id of `conditions` and converts its values to internal units.
    fn resolve(
        &self,
        conditions: &BoundaryConditions,
    ) -> Result<ResolvedConditions, SnapshotError> {
        let network = &self.network;
        let units = &network.units;
        let mut resolved = ResolvedConditions::default();
        for (id, factor) in &conditions.pattern_factors {
            let pattern = lookup(&self.pattern_index, "pattern", id)?;
            resolved.pattern_factors.push((pattern, *factor));
        }
        for (id, head) in &conditions.reservoir_heads {
            let tank = self.tank_of(id)?;
            if !network.tanks[tank].is_reservoir() {
                return Err(wrong_kind(id, "a reservoir"));
            }
            resolved
                .reservoir_heads
                .push((network.tanks[tank].node, head / units.head));
        }
        for (id, level) in &conditions.tank_levels {
            let tank = self.tank_of(id)?;
            let node = network.tanks[tank].node;
            if network.tanks[tank].is_reservoir() {
                return Err(wrong_kind(id, "a tank"));
            }
            let head = network.nodes[node].elevation + level / units.elevation;
            resolved.tank_heads.push((tank, head));
        }
        for (id, measured) in &conditions.link_states {
            let link = lookup(&self.link_index, "link", id)?;
            resolved.link_states.push((link, *measured));
        }
        for (id, value) in &conditions.link_settings {
            let link = lookup(&self.link_index, "link", id)?;
            let link_type = network.links[link].link_type;
            // A GPV's setting is its head loss curve, which a measurement cannot change.
            if link_type.is_pipe() || link_type == LinkType::Gpv {
                return Err(wrong_kind(id, "a pump or a valve with a setting"));
            }
            let setting = valve_setting(link_type, *value, units);
            resolved.link_settings.push((link, setting));
        }
        Ok(resolved)
    }

    /// The index into the tanks of the tank or reservoir `id`.
    fn tank_of(&self, id: &str) -> Result<usize, SnapshotError> {
        let node = lookup(&self.node_index, "node", id)?;
        node.checked_sub(self.network.junctions)
            .ok_or_else(|| wrong_kind(id, "a tank or reservoir"))
    }
}

fn lookup(
    index: &HashMap<String, usize>,
    kind: &'static str,
    id: &str,
) -> Result<usize, SnapshotError> {
    index
        .get(id)
        .copied()
        .ok_or_else(|| SnapshotError::UnknownElement {
            kind,
            id: id.to_string(),
        })
}

fn wrong_kind(id: &str, expected: &'static str) -> SnapshotError {
    SnapshotError::WrongElementKind {
        id: id.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::{simulate, SimOptions};
    use std::path::Path;

    fn shared_network(name: &str) -> Network {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
        crate::inp::read_file(&shared.join(format!("networks/{name}.inp"))).unwrap()
    }

    fn ids(network: &Network, nodes: bool) -> Vec<String> {
        if nodes {
            network.nodes.iter().map(|n| n.id.clone()).collect()
        } else {
            network.links.iter().map(|l| l.id.clone()).collect()
        }
    }

    fn assert_close(ours: &[f64], theirs: &[f64], what: &str, t: u64) {
        for (index, (a, b)) in ours.iter().zip(theirs).enumerate() {
            let scale = a.abs().max(b.abs()).max(1.0);
            assert!(
                (a - b).abs() <= 1e-6 * scale,
                "{what} {index} at {t}: {a} vs {b}"
            );
        }
    }

    /// Every EPS step replayed as a snapshot, with the EPS's tank levels and the states of the
    /// links its controls act on, gives the EPS's heads and flows.
    fn replays_the_extended_period_run(name: &str) {
        let network = shared_network(name);
        let eps = simulate(&network, &SimOptions::default()).unwrap();
        let mut snapshot = SnapshotSolver::new(&network).unwrap();
        let hyd = &snapshot.network;
        let node_ids = ids(&network, true);
        let link_ids = ids(&network, false);
        let tanks: Vec<(String, usize, f64)> = hyd
            .tanks
            .iter()
            .filter(|t| !t.is_reservoir())
            .map(|t| {
                let elevation = hyd.nodes[t.node].elevation * hyd.units.elevation;
                (node_ids[t.node].clone(), t.node, elevation)
            })
            .collect();
        let mut controlled: Vec<usize> = hyd.controls.iter().map(|c| c.link).collect();
        controlled.sort_unstable();
        controlled.dedup();
        assert!(!controlled.is_empty());
        let mut reports = 0;
        for step in &eps.steps {
            let conditions = BoundaryConditions {
                time: step.t,
                tank_levels: tanks
                    .iter()
                    .map(|(id, node, elevation)| (id.clone(), step.head[*node] - elevation))
                    .collect(),
                link_states: controlled
                    .iter()
                    .map(|&link| {
                        let closed = step.state[link] == Status::Closed as u8;
                        let state = if closed {
                            LinkState::Closed
                        } else {
                            LinkState::Open
                        };
                        (link_ids[link].clone(), state)
                    })
                    .collect(),
                ..BoundaryConditions::default()
            };
            let solved = snapshot.solve(&conditions).unwrap();
            assert!(solved.converged);
            assert_close(&solved.result.head, &step.head, "head", step.t);
            assert_close(&solved.result.flow, &step.flow, "flow", step.t);
            assert_eq!(solved.result.status, step.status, "status at {}", step.t);
            reports += usize::from(step.report);
        }
        assert!(reports > 10, "{reports} reporting times");
    }

    #[test]
    fn net1_snapshots_match_the_extended_period_run() {
        replays_the_extended_period_run("Net1");
    }

    #[test]
    fn net3_snapshots_match_the_extended_period_run() {
        replays_the_extended_period_run("Net3");
    }

    fn link(network: &Network, id: &str) -> usize {
        network.links.iter().position(|l| l.id == id).unwrap()
    }

    #[test]
    fn reservoir_heads_closed_links_and_multipliers_change_the_solution() {
        let network = shared_network("Net1");
        let mut snapshot = SnapshotSolver::new(&network).unwrap();
        let base = snapshot
            .solve(&BoundaryConditions::default())
            .unwrap()
            .result;
        let pump = link(&network, "9");

        let raised = BoundaryConditions {
            reservoir_heads: vec![("9".into(), 900.0)],
            ..BoundaryConditions::default()
        };
        let raised = snapshot.solve(&raised).unwrap().result;
        assert!(raised.flow[pump] > base.flow[pump] + 1.0);

        let pipe = link(&network, "110");
        let closed = BoundaryConditions {
            link_states: vec![("110".into(), LinkState::Closed)],
            ..BoundaryConditions::default()
        };
        let closed = snapshot.solve(&closed).unwrap().result;
        assert_eq!((closed.flow[pipe], closed.status[pipe]), (0.0, 0));
        assert!(base.flow[pipe].abs() > 1.0);

        // Reopened, with the pattern's factor doubled by hand, as a global multiplier does.
        let doubled = BoundaryConditions {
            link_states: vec![("110".into(), LinkState::Open)],
            pattern_factors: vec![("1".into(), 2.0)],
            ..BoundaryConditions::default()
        };
        let by_pattern = snapshot.solve(&doubled).unwrap().result;
        let global = BoundaryConditions {
            demand_multiplier: Some(2.0),
            ..BoundaryConditions::default()
        };
        let by_multiplier = snapshot.solve(&global).unwrap().result;
        let node = network.nodes.iter().position(|n| n.id == "12").unwrap();
        assert!((by_pattern.demand[node] - 2.0 * base.demand[node]).abs() < 1e-9);
        assert!((by_multiplier.demand[node] - by_pattern.demand[node]).abs() < 1e-9);
        assert_eq!(by_pattern.status[pipe], 1);

        let again = snapshot
            .solve(&BoundaryConditions::default())
            .unwrap()
            .result;
        for (a, b) in again.head.iter().zip(&base.head) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn pump_speeds_and_valve_settings_are_set() {
        let network = shared_network("Net1");
        let mut snapshot = SnapshotSolver::new(&network).unwrap();
        let pump = link(&network, "9");
        let full = snapshot.solve(&BoundaryConditions::default()).unwrap();
        let slow = BoundaryConditions {
            link_settings: vec![("9".into(), 0.9)],
            ..BoundaryConditions::default()
        };
        let slow = snapshot.solve(&slow).unwrap();
        assert!(slow.result.flow[pump] < full.result.flow[pump]);
        let stopped = BoundaryConditions {
            link_settings: vec![("9".into(), 0.0)],
            ..BoundaryConditions::default()
        };
        let stopped = snapshot.solve(&stopped).unwrap();
        assert_eq!(stopped.result.flow[pump], 0.0);
    }

    #[test]
    fn unknown_ids_and_wrong_kinds_are_errors_naming_the_id() {
        let network = shared_network("Net1");
        let mut snapshot = SnapshotSolver::new(&network).unwrap();
        let cases = [
            (
                BoundaryConditions {
                    tank_levels: vec![("nowhere".into(), 10.0)],
                    ..BoundaryConditions::default()
                },
                "unknown node `nowhere`",
            ),
            (
                BoundaryConditions {
                    link_states: vec![("no-link".into(), LinkState::Open)],
                    ..BoundaryConditions::default()
                },
                "unknown link `no-link`",
            ),
            (
                BoundaryConditions {
                    pattern_factors: vec![("no-pattern".into(), 1.0)],
                    ..BoundaryConditions::default()
                },
                "unknown pattern `no-pattern`",
            ),
            (
                BoundaryConditions {
                    tank_levels: vec![("9".into(), 10.0)],
                    ..BoundaryConditions::default()
                },
                "`9` is not a tank",
            ),
            (
                BoundaryConditions {
                    reservoir_heads: vec![("2".into(), 10.0)],
                    ..BoundaryConditions::default()
                },
                "`2` is not a reservoir",
            ),
            (
                BoundaryConditions {
                    reservoir_heads: vec![("10".into(), 10.0)],
                    ..BoundaryConditions::default()
                },
                "`10` is not a tank or reservoir",
            ),
            (
                BoundaryConditions {
                    link_settings: vec![("10".into(), 1.0)],
                    ..BoundaryConditions::default()
                },
                "`10` is not a pump or a valve with a setting",
            ),
        ];
        for (conditions, message) in cases {
            let error = snapshot.solve(&conditions).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
        // A rejected call leaves the solver usable.
        assert!(snapshot.solve(&BoundaryConditions::default()).is_ok());
    }

    #[test]
    fn a_kept_period_solved_with_a_leak_is_the_network_with_that_leak_and_the_same_consumption() {
        let network =
            crate::inp::read_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("networks/Net3.inp"))
                .unwrap();
        let conditions = BoundaryConditions {
            time: 7200,
            ..Default::default()
        };
        let mut solver = SnapshotSolver::new(&network).unwrap();
        let period = solver.solve(&conditions).unwrap().result;
        let kept = solver.keep_period();
        let junction = network.node_index("123").unwrap();
        let (leak, consumption) = (500.0, {
            let junctions = &period.demand[..network.junction_count()];
            junctions.iter().filter(|d| **d > 0.0).sum::<f64>()
        });

        let again = solver.solve_with_leak(&kept, junction, 0.0).unwrap();
        assert_close(
            &again.result.head,
            &period.head,
            "head without a leak",
            7200,
        );

        // The same leak as a constant demand, the others lowered through the multiplier.
        let held = (consumption - leak) / consumption;
        let mut leaky = network.clone();
        leaky.options.demand_multiplier *= held;
        assert!(leaky.add_constant_outflow(junction, leak / leaky.options.demand_multiplier));
        let expected = SnapshotSolver::new(&leaky)
            .unwrap()
            .solve(&conditions)
            .unwrap()
            .result;
        let solved = solver.solve_with_leak(&kept, junction, leak).unwrap();
        assert!(solved.converged);
        let total: f64 = solved.result.demand[..network.junction_count()]
            .iter()
            .sum();
        assert!((total - consumption).abs() < 1e-6 * consumption, "{total}");
        for (node, (ours, theirs)) in solved.result.head.iter().zip(&expected.head).enumerate() {
            assert!(
                (ours - theirs).abs() < 0.01,
                "node {node}: {ours} against {theirs}"
            );
        }
        let drop = period.pressure[junction] - solved.result.pressure[junction];
        assert!(drop > 0.2, "{drop}");

        // The solver goes on from its own period, not from the leak's.
        let mut untouched = SnapshotSolver::new(&network).unwrap();
        untouched.solve(&conditions).unwrap();
        let next = BoundaryConditions {
            time: 10_800,
            ..Default::default()
        };
        assert_eq!(
            solver.solve(&next).unwrap().result.head,
            untouched.solve(&next).unwrap().result.head
        );
        assert!(solver
            .solve_with_leak(&kept, network.nodes.len(), 1.0)
            .is_err());
    }
}
