//! One network's twin, period by period: the pure step that the `NetworkActor` (live) and
//! `aquatwin replay` (recorded telemetry) both call, so that both give identical results.
//!
//! Every period [`NetworkTwin::step`] takes the latest accepted measurement of each sensor (in
//! the network's units), turns the ones that are boundary conditions (tank levels, reservoir
//! heads, pump and valve states) into [`BoundaryConditions`], solves the period with the
//! [`SnapshotSolver`], and compares every other sensor with the simulated value (residual =
//! measured - simulated).
//!
//! Measured states the sensors do not give come from the network's own `[CONTROLS]`, evaluated
//! on the measured state (tank levels) and the clock, and a flow meter on a pump tells whether
//! it runs. When every link from a reservoir or tank is metered, the measured inflow is the
//! network's consumption: the period's demand multiplier is estimated from it (the consumption
//! it implies over the nominal one), so the residuals left are what demand cannot explain.
//! With detection on ([`NetworkTwin::with_detection`]), a [`LeakWatch`] learns on the training
//! window and then raises leak and burst events, each located by matching its residual
//! signature against the sensitivities averaged over the hours it was measured on
//! ([`Localizer`], [`hourly`]).

use std::collections::HashMap;

use hydraulics::model::{LinkKind, Network, NodeKind};
use hydraulics::solver::{BoundaryConditions, LinkState, SnapshotError, SnapshotSolver};
use hydraulics::SolverError;

use crate::detect::{regime_key, signature_window, Frame, LeakWatch, WatchConfig};
use crate::estimate::{nominal_demands, Observation, Sensitivity};
use crate::localize::Localizer;
use crate::reading::{NetworkUnits, Sensor, SensorKind, TargetKind};

mod alarms;
mod controls;
mod hourly;
mod secant;

pub use alarms::TwinEvent;
use alarms::{AlarmBook, Area};
use controls::TankTrail;
use hourly::HourlyStates;
use secant::secant_sensitivity;

/// A pump whose metered flow is below this share of its design flow is taken as stopped.
const PUMP_STOPPED_SHARE: f64 = 0.01;
/// Bounds of the demand multiplier estimated from the inflow (a meter outage must not empty
/// or flood the model).
const MULTIPLIER_RANGE: (f64, f64) = (0.2, 5.0);

/// Why a twin could not be built or stepped.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    /// A sensor names a node or link the network does not have.
    #[error("sensor {sensor}: the network has no {kind} {target}")]
    UnknownTarget {
        /// The sensor id.
        sensor: String,
        /// `node` or `link`.
        kind: &'static str,
        /// The id it names.
        target: String,
    },
    /// Two sensors share one id.
    #[error("sensor {0} is defined twice")]
    DuplicateSensor(String),
    /// The network cannot be compiled for the solver.
    #[error("network cannot be solved: {0}")]
    Solver(#[from] SolverError),
    /// A period's boundary conditions were rejected.
    #[error("period cannot be solved: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Where a sensor sits, resolved to an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Node(usize),
    Link(usize),
    Device,
}

/// How the twin maps wall-clock time onto the network's simulation clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinClock {
    /// Unix time (ms) that is simulation time 0 (pattern period 0).
    pub origin_ms: i64,
}

impl TwinClock {
    /// Simulation seconds at `timestamp_ms` (0 before the origin).
    pub fn sim_seconds(&self, timestamp_ms: i64) -> u64 {
        u64::try_from(timestamp_ms.saturating_sub(self.origin_ms) / 1000).unwrap_or(0)
    }
}

/// Measured minus simulated for one sensor in one period, in the network's units.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorResidual {
    /// The sensor id.
    pub sensor_id: String,
    /// What was measured.
    pub measured: f64,
    /// What the model gives at the same place.
    pub simulated: f64,
}

impl SensorResidual {
    /// `measured - simulated`.
    pub fn residual(&self) -> f64 {
        self.measured - self.simulated
    }
}

/// The estimated state of the network in one period, arrays aligned with the network's nodes
/// and links, in the network's own (file) units.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodState {
    /// Unix time of the period (ms).
    pub timestamp_ms: i64,
    /// Simulation seconds of the period.
    pub sim_seconds: u64,
    /// Whether the solver balanced the network.
    pub converged: bool,
    /// Node heads.
    pub head: Vec<f64>,
    /// Node pressures.
    pub pressure: Vec<f64>,
    /// Node demands (outflows).
    pub demand: Vec<f64>,
    /// Link flows.
    pub flow: Vec<f64>,
    /// Link velocities (ft/s or m/s; 0 for pumps and valves).
    pub velocity: Vec<f64>,
    /// Head at the start node minus head at the end node.
    pub headloss: Vec<f64>,
    /// Link status: 0 closed, 1 open, 2 active.
    pub status: Vec<u8>,
    /// Residuals of the sensors that measured something this period and are not boundary
    /// conditions.
    pub residuals: Vec<SensorResidual>,
    /// Leaks and bursts detected this period (empty unless detection is on).
    pub events: Vec<TwinEvent>,
}

/// The twin of one hydraulic network.
pub struct NetworkTwin {
    network: Network,
    units: NetworkUnits,
    solver: SnapshotSolver,
    sensors: Vec<Sensor>,
    targets: Vec<Target>,
    by_id: HashMap<String, usize>,
    clock: TwinClock,
    /// Pipe cross-section areas, ft2 (0 for pumps and valves).
    link_area: Vec<f64>,
    /// Sensors compared with the model and what they observe (rows of the sensitivities).
    observations: Vec<(usize, Observation)>,
    /// Flow sensors on every link leaving a reservoir or tank, with the sign that makes
    /// their flow point into the network; `None` when some such link is not metered.
    inflow_meters: Option<Vec<(usize, f64)>>,
    /// Flow sensors on pumps and the flow below which the pump is taken as stopped.
    pump_meters: Vec<(usize, f64)>,
    /// Pumps and the links that controls or rules switch: whether each is open is the
    /// period's operating regime.
    switched_links: Vec<usize>,
    /// Simulation seconds of the previous period (time controls fire in between).
    last_sim_seconds: Option<u64>,
    /// Heads of the previous period (level and pressure controls).
    last_head: Vec<f64>,
    /// Recent levels of the tanks that controls watch (how fast a tank was moving before it
    /// turned round).
    tank_trail: TankTrail,
    watch: Option<LeakWatch>,
    localizer: Localizer,
    alarms: AlarmBook,
    /// Demand group of each junction (the pattern of its first demand), for the multipliers.
    demand_groups: Vec<usize>,
    group_count: usize,
    /// The solved state at each hour of the last day: a signature's sensitivities.
    hourly: HourlyStates,
}

impl std::fmt::Debug for NetworkTwin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkTwin")
            .field("network", &self.network.title)
            .field("sensors", &self.sensors.len())
            .field("clock", &self.clock)
            .finish()
    }
}

impl NetworkTwin {
    /// The twin of `network` observed by `sensors`; every sensor must name an element of the
    /// network of the right kind (node or link).
    pub fn new(
        network: Network,
        sensors: Vec<Sensor>,
        clock: TwinClock,
    ) -> Result<Self, TwinError> {
        let mut targets = Vec::with_capacity(sensors.len());
        let mut by_id = HashMap::with_capacity(sensors.len());
        for (index, sensor) in sensors.iter().enumerate() {
            if by_id.insert(sensor.id.clone(), index).is_some() {
                return Err(TwinError::DuplicateSensor(sensor.id.clone()));
            }
            let unknown = |kind| TwinError::UnknownTarget {
                sensor: sensor.id.clone(),
                kind,
                target: sensor.target.clone(),
            };
            targets.push(match sensor.kind.target_kind() {
                TargetKind::Node => Target::Node(
                    network
                        .node_index(&sensor.target)
                        .ok_or_else(|| unknown("node"))?,
                ),
                TargetKind::Link => Target::Link(
                    network
                        .link_index(&sensor.target)
                        .ok_or_else(|| unknown("link"))?,
                ),
                TargetKind::Device => Target::Device,
            });
        }
        let units = NetworkUnits::new(&network.options);
        let solver = SnapshotSolver::new(&network)?;
        let link_area = network
            .links
            .iter()
            .map(|link| match &link.kind {
                LinkKind::Pipe(pipe) => {
                    let diameter = pipe.diameter / units.factors.diameter;
                    std::f64::consts::PI * diameter * diameter / 4.0
                }
                _ => 0.0,
            })
            .collect();
        let mut observations: Vec<(usize, Observation)> = sensors
            .iter()
            .zip(&targets)
            .enumerate()
            .filter_map(|(index, (sensor, target))| {
                let observation = match (sensor.kind, *target) {
                    (SensorKind::Pressure, Target::Node(n)) => Observation::Pressure(n),
                    (SensorKind::Head, Target::Node(n)) => Observation::Head(n),
                    (SensorKind::Demand, Target::Node(n)) => Observation::Demand(n),
                    (SensorKind::Flow, Target::Link(l)) => Observation::Flow(l),
                    _ => return None,
                };
                Some((index, observation))
            })
            .collect();
        let inflow_meters = source_meters(&network, &sensors, &targets);
        // Flows on the links from sources are in the flow balance; what each source supplies
        // is the model's to tell, not a leak signal.
        if let Some(meters) = &inflow_meters {
            observations.retain(|(index, _)| meters.iter().all(|m| m.0 != *index));
        }
        let pump_meters = sensors
            .iter()
            .zip(&targets)
            .enumerate()
            .filter_map(|(index, (sensor, target))| match (sensor.kind, *target) {
                (SensorKind::Flow, Target::Link(l)) => match &network.links[l].kind {
                    LinkKind::Pump(pump) => {
                        let design = pump
                            .head_curve
                            .and_then(|c| network.curves.get(c))
                            .map_or(0.0, |c| c.points.iter().fold(0.0_f64, |a, p| a.max(p.0)));
                        Some((index, PUMP_STOPPED_SHARE * design))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let localizer = Localizer::new(&network, &units);
        let last_head: Vec<f64> = network
            .nodes
            .iter()
            .map(|node| match &node.kind {
                NodeKind::Junction(j) => j.elevation,
                NodeKind::Reservoir(r) => r.head,
                NodeKind::Tank(t) => t.elevation + t.initial_level,
            })
            .collect();
        let (demand_groups, group_count) = demand_groups(&network);
        let switched_links = switched_links(&network);
        Ok(Self {
            tank_trail: TankTrail::new(&network),
            alarms: AlarmBook::default(),
            demand_groups,
            group_count,
            network,
            units,
            solver,
            sensors,
            targets,
            by_id,
            clock,
            link_area,
            observations,
            inflow_meters,
            pump_meters,
            switched_links,
            last_sim_seconds: None,
            last_head,
            watch: None,
            localizer,
            hourly: HourlyStates::default(),
        })
    }

    /// Turns detection on: the periods before `config.train_until_ms` train the detectors,
    /// later ones are watched for leaks and bursts ([`PeriodState::events`]).
    pub fn with_detection(mut self, config: WatchConfig) -> Self {
        self.watch = Some(LeakWatch::new(config));
        self
    }

    /// The detection stage, when on.
    pub fn watch(&self) -> Option<&LeakWatch> {
        self.watch.as_ref()
    }

    /// Whether the inflow is fully metered (the demand multiplier is then estimated).
    pub fn inflow_metered(&self) -> bool {
        self.inflow_meters.is_some()
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network's units.
    pub fn units(&self) -> &NetworkUnits {
        &self.units
    }

    /// The sensors, in the order given to [`NetworkTwin::new`].
    pub fn sensors(&self) -> &[Sensor] {
        &self.sensors
    }

    /// The clock.
    pub fn clock(&self) -> TwinClock {
        self.clock
    }

    /// Solves the period at `timestamp_ms` with `latest` (sensor id -> latest accepted value in
    /// the network's units; unknown ids are ignored) and returns the estimated state, with the
    /// detection stage's located leaks and bursts when detection is on.
    pub fn step(
        &mut self,
        timestamp_ms: i64,
        latest: &HashMap<String, f64>,
    ) -> Result<PeriodState, TwinError> {
        let sim_seconds = self.clock.sim_seconds(timestamp_ms);
        let mut conditions = BoundaryConditions {
            time: sim_seconds,
            ..BoundaryConditions::default()
        };
        self.apply_controls(sim_seconds, latest, &mut conditions);
        let mut observed = Vec::new();
        for (sensor_id, &value) in latest {
            let Some(&index) = self.by_id.get(sensor_id) else {
                continue;
            };
            if self.add_boundary_condition(index, value, &mut conditions) {
                continue;
            }
            observed.push(index);
        }
        for &(index, stopped_below) in &self.pump_meters {
            if let Some(value) = latest.get(&self.sensors[index].id) {
                let state = if value.abs() > stopped_below {
                    LinkState::Open
                } else {
                    LinkState::Closed
                };
                conditions
                    .link_states
                    .push((self.sensors[index].target.clone(), state));
            }
        }
        let option_multiplier = self.network.options.demand_multiplier;
        let mut nominal_by_group = vec![0.0; self.group_count];
        for (demand, &group) in nominal_demands(&self.network, sim_seconds)
            .iter()
            .zip(&self.demand_groups)
        {
            nominal_by_group[group] += demand * option_multiplier;
        }
        let nominal: f64 = nominal_by_group.iter().sum();
        let inflow = self.inflow_meters.as_ref().and_then(|meters| {
            meters
                .iter()
                .map(|&(index, sign)| latest.get(&self.sensors[index].id).map(|q| sign * q))
                .sum::<Option<f64>>()
        });
        if let Some(inflow) = inflow.filter(|_| nominal > 0.0) {
            let ratio = (inflow / nominal).clamp(MULTIPLIER_RANGE.0, MULTIPLIER_RANGE.1);
            conditions.demand_multiplier = Some(ratio * option_multiplier);
        }
        let snapshot = self.solver.solve(&conditions)?;
        self.last_sim_seconds = Some(sim_seconds);
        let result = snapshot.result;
        let factors = &self.units.factors;
        let velocity = result
            .flow
            .iter()
            .zip(&self.link_area)
            .map(|(&flow, &area)| {
                if area > 0.0 {
                    flow / factors.flow / area * factors.velocity
                } else {
                    0.0
                }
            })
            .collect();
        let headloss = self
            .network
            .links
            .iter()
            .map(|link| result.head[link.from] - result.head[link.to])
            .collect();
        observed.sort_unstable();
        let residuals = observed
            .into_iter()
            .filter_map(|index| {
                let sensor = &self.sensors[index];
                let simulated = match (sensor.kind, self.targets[index]) {
                    (SensorKind::Pressure, Target::Node(n)) => result.pressure[n],
                    (SensorKind::Head, Target::Node(n)) => result.head[n],
                    (SensorKind::Demand, Target::Node(n)) => result.demand[n],
                    (SensorKind::Flow, Target::Link(l)) => result.flow[l],
                    _ => return None,
                };
                Some(SensorResidual {
                    sensor_id: sensor.id.clone(),
                    measured: latest[&sensor.id],
                    simulated,
                })
            })
            .collect();
        self.last_head.clone_from(&result.head);
        self.tank_trail.record(&result.head);
        let mut state = PeriodState {
            timestamp_ms,
            sim_seconds,
            converged: snapshot.converged,
            head: result.head,
            pressure: result.pressure,
            demand: result.demand,
            flow: result.flow,
            velocity,
            headloss,
            status: result.status,
            residuals,
            events: Vec::new(),
        };
        state.events = self.detect(&state, latest, inflow, nominal_by_group);
        Ok(state)
    }

    /// Runs the detection stage on the solved period and locates what it raises.
    fn detect(
        &mut self,
        state: &PeriodState,
        latest: &HashMap<String, f64>,
        inflow: Option<f64>,
        nominal: Vec<f64>,
    ) -> Vec<TwinEvent> {
        let Some(watch) = self.watch.as_mut() else {
            return Vec::new();
        };
        let residuals = self
            .observations
            .iter()
            .map(|&(index, _)| {
                let simulated = state
                    .residuals
                    .iter()
                    .find(|r| r.sensor_id == self.sensors[index].id)
                    .map(|r| r.simulated);
                match (latest.get(&self.sensors[index].id), simulated) {
                    (Some(measured), Some(simulated)) => measured - simulated,
                    _ => f64::NAN,
                }
            })
            .collect();
        let regime = regime_key(
            self.switched_links
                .iter()
                .map(|&link| (link, state.status[link] != 0)),
        );
        let frame = Frame {
            time: state.timestamp_ms,
            inflow,
            nominal,
            residuals,
            regime,
        };
        let now = state.timestamp_ms;
        if let Some(alarm) = watch.observe(frame) {
            self.alarms.file(alarm, watch.config());
        }
        let solver = &self.solver;
        self.hourly
            .record(now, &state.head, &state.flow, &state.status, || {
                solver.keep_period()
            });
        let due = self.alarms.take_due(now, watch);
        let needs_signatures = watch.needs_signatures();
        if due.is_empty() && !needs_signatures {
            return Vec::new();
        }
        let observations: Vec<Observation> = self.observations.iter().map(|o| o.1).collect();
        let (network, units) = (&self.network, &self.units);
        let sensitivity_at = |head: &[f64], flow: &[f64], status: &[u8]| {
            Sensitivity::compute(network, units, head, flow, status, &observations)
        };
        let consumption: Vec<f64> = nominal_demands(&self.network, state.sim_seconds);
        if needs_signatures {
            let sensitivity = sensitivity_at(&state.head, &state.flow, &state.status);
            let uniform = sensitivity.spread_response(&consumption);
            let responses: Vec<Vec<f64>> = (0..sensitivity.junctions())
                .map(|j| {
                    sensitivity
                        .column(j)
                        .iter()
                        .zip(&uniform)
                        .map(|(s, u)| s - u)
                        .collect()
                })
                .collect();
            watch.set_signatures(&responses);
        }
        let mut events = Vec::new();
        for pending in due {
            let (from, to) = signature_window(pending.alarm().onset, now);
            let sensitivity = self
                .hourly
                .mean_sensitivity(from, to, sensitivity_at)
                .unwrap_or_else(|| sensitivity_at(&state.head, &state.flow, &state.status));
            let sensitivity = secant_sensitivity(
                &mut self.solver,
                &self.hourly,
                (from, to),
                pending.alarm(),
                self.alarms.reported(),
                &sensitivity,
                &consumption,
            );
            let area = Area {
                network,
                localizer: &self.localizer,
                sensitivity: &sensitivity,
                consumption: &consumption,
            };
            events.extend(self.alarms.locate_due(pending, now, watch.config(), &area));
        }
        events
    }

    /// Adds the measurement of sensor `index` to `conditions` when it is a boundary condition
    /// (tank level, reservoir head, pump or valve state); returns whether it was one.
    fn add_boundary_condition(
        &self,
        index: usize,
        value: f64,
        conditions: &mut BoundaryConditions,
    ) -> bool {
        let sensor = &self.sensors[index];
        match (sensor.kind, self.targets[index]) {
            (SensorKind::Level, Target::Node(n)) => match &self.network.nodes[n].kind {
                NodeKind::Tank(_) => {
                    conditions.tank_levels.push((sensor.target.clone(), value));
                    true
                }
                _ => false,
            },
            (SensorKind::Head, Target::Node(n)) => match &self.network.nodes[n].kind {
                NodeKind::Reservoir(_) => {
                    conditions
                        .reservoir_heads
                        .push((sensor.target.clone(), value));
                    true
                }
                _ => false,
            },
            (SensorKind::PumpStatus, Target::Link(_)) => {
                let state = if value > 0.5 {
                    LinkState::Open
                } else {
                    LinkState::Closed
                };
                conditions.link_states.push((sensor.target.clone(), state));
                true
            }
            // Only a shut valve is a boundary condition; a partly open one keeps its modelled
            // behaviour.
            (SensorKind::ValvePosition, Target::Link(_)) if value <= 0.0 => {
                conditions
                    .link_states
                    .push((sensor.target.clone(), LinkState::Closed));
                true
            }
            _ => false,
        }
    }
}

/// The flow sensors on every link between a reservoir or tank and the rest of the network,
/// with the sign that points their flow into the network; `None` when one such link has no
/// flow sensor (the inflow is then not known).
fn source_meters(
    network: &Network,
    sensors: &[Sensor],
    targets: &[Target],
) -> Option<Vec<(usize, f64)>> {
    let junctions = network.junction_count();
    let mut meters = Vec::new();
    for (index, link) in network.links.iter().enumerate() {
        let sign = match (link.from >= junctions, link.to >= junctions) {
            (true, false) => 1.0,
            (false, true) => -1.0,
            _ => continue,
        };
        let sensor = sensors
            .iter()
            .zip(targets)
            .position(|(s, t)| s.kind == SensorKind::Flow && *t == Target::Link(index))?;
        meters.push((sensor, sign));
    }
    (!meters.is_empty()).then_some(meters)
}

/// The pumps and every link a control or rule acts on, in index order.
fn switched_links(network: &Network) -> Vec<usize> {
    let mut links: Vec<usize> = network
        .links
        .iter()
        .enumerate()
        .filter(|(_, link)| matches!(link.kind, LinkKind::Pump(_)))
        .map(|(index, _)| index)
        .chain(network.controls.iter().map(|c| c.link))
        .chain(network.rules.iter().flat_map(|rule| {
            rule.then_actions
                .iter()
                .chain(&rule.else_actions)
                .map(|action| action.link)
        }))
        .collect();
    links.sort_unstable();
    links.dedup();
    links
}

/// The demand group of every junction: one group per pattern that drives a junction's first
/// demand (the default pattern where it names none), one for junctions without a pattern.
/// Returns the groups and their count.
fn demand_groups(network: &Network) -> (Vec<usize>, usize) {
    let default_pattern = network.default_pattern_index();
    let mut index: HashMap<Option<usize>, usize> = HashMap::new();
    let groups = network
        .nodes
        .iter()
        .take(network.junction_count())
        .map(|node| {
            let pattern = match &node.kind {
                NodeKind::Junction(j) => j
                    .demands
                    .first()
                    .and_then(|d| d.pattern.or(default_pattern)),
                _ => None,
            };
            let next = index.len();
            *index.entry(pattern).or_insert(next)
        })
        .collect();
    (groups, index.len().max(1))
}
