//! One network's twin, period by period: the pure step that the `NetworkActor` (live) and
//! `aquatwin replay` (recorded telemetry) both call, so that both give identical results.
//!
//! Every period [`NetworkTwin::step`] takes the latest accepted measurement of each sensor (in
//! the network's units), turns the ones that are boundary conditions (tank levels, reservoir
//! heads, pump and valve states) into [`BoundaryConditions`], solves the period with the
//! [`SnapshotSolver`], and compares every other sensor with the simulated value (residual =
//! measured - simulated).

use std::collections::HashMap;

use hydraulics::model::{LinkKind, Network, NodeKind};
use hydraulics::solver::{BoundaryConditions, LinkState, SnapshotError, SnapshotSolver};
use hydraulics::SolverError;

use crate::reading::{NetworkUnits, Sensor, SensorKind, TargetKind};

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
    pub fn new(network: Network, sensors: Vec<Sensor>, clock: TwinClock) -> Result<Self, TwinError> {
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
        Ok(Self {
            network,
            units,
            solver,
            sensors,
            targets,
            by_id,
            clock,
            link_area,
        })
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
    /// the network's units; unknown ids are ignored) and returns the estimated state.
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
        let snapshot = self.solver.solve(&conditions)?;
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
        Ok(PeriodState {
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
        })
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
                    conditions.reservoir_heads.push((sensor.target.clone(), value));
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
            (SensorKind::ValvePosition, Target::Link(_)) => {
                // Only a shut valve is a boundary condition; a partly open one keeps its
                // modelled behaviour.
                if value <= 0.0 {
                    conditions
                        .link_states
                        .push((sensor.target.clone(), LinkState::Closed));
                    true
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}
