//! Synthetic sensors on a network and their values: our solver's extended-period results,
//! interpolated at the fleet's simulation clock, plus noise, with an optional leak.

use hydraulics::model::{Demand, Junction, NodeKind, Pattern};
use hydraulics::solver::StepResult;
use hydraulics::{Network, SimOptions};
use rand::rngs::SmallRng;
use rand::Rng as _;
use twin::reading::{NetworkUnits, TargetKind, Unit};
use twin::{Sensor, SensorKind};

use crate::BadInput;

/// Extra demand at a node from a simulation time on (`--leak NODE:FLOW:FROM`).
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    /// Junction id.
    pub node: String,
    /// Outflow, network flow units.
    pub flow: f64,
    /// Simulation seconds from which it flows.
    pub from_seconds: u64,
}

impl std::str::FromStr for Leak {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{text}` is not NODE:FLOW:FROM (FROM in seconds or H:MM)");
        let mut parts = text.splitn(3, ':');
        let (Some(node), Some(flow), Some(from)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(usage());
        };
        let flow: f64 = flow.parse().map_err(|_| usage())?;
        if !(flow.is_finite() && flow > 0.0) {
            return Err(format!("{text}: the leak flow must be positive"));
        }
        let from_seconds = match from.split_once(':') {
            Some((hours, minutes)) => {
                let hours: u64 = hours.parse().map_err(|_| usage())?;
                let minutes: u64 = minutes.parse().map_err(|_| usage())?;
                hours * 3600 + minutes * 60
            }
            None => from.parse().map_err(|_| usage())?,
        };
        Ok(Self {
            node: node.to_string(),
            flow,
            from_seconds,
        })
    }
}

/// `count` sensors on `network`: every tank's level first, then junction pressures and pipe
/// flows in turn; past the network's elements, further copies get a `-2`, `-3`, ... suffix.
pub fn layout(network: &Network, count: usize) -> Vec<Sensor> {
    let units = NetworkUnits::new(&network.options);
    let mut elements: Vec<(SensorKind, &str, &str)> = network
        .nodes
        .iter()
        .filter(|node| matches!(node.kind, NodeKind::Tank(_)))
        .map(|node| (SensorKind::Level, "L", node.id.as_str()))
        .collect();
    let junctions = network
        .nodes
        .iter()
        .filter(|node| matches!(node.kind, NodeKind::Junction(_)));
    let pipes = network
        .links
        .iter()
        .filter(|link| matches!(link.kind, hydraulics::model::LinkKind::Pipe(_)));
    let mut junctions = junctions.map(|node| (SensorKind::Pressure, "P", node.id.as_str()));
    let mut pipes = pipes.map(|link| (SensorKind::Flow, "F", link.id.as_str()));
    loop {
        let (junction, pipe) = (junctions.next(), pipes.next());
        if junction.is_none() && pipe.is_none() {
            break;
        }
        elements.extend(junction);
        elements.extend(pipe);
    }
    if elements.is_empty() {
        return Vec::new();
    }
    (0..count)
        .filter_map(|i| {
            let (kind, prefix, target) = elements[i % elements.len()];
            let copy = i / elements.len();
            let id = if copy == 0 {
                format!("{prefix}-{target}")
            } else {
                format!("{prefix}-{target}-{}", copy + 1)
            };
            let unit = match kind {
                SensorKind::Pressure => units.pressure_unit,
                SensorKind::Flow => Unit::Flow(units.flow_units),
                _ => units.length_unit(),
            };
            Sensor::new(id, kind, target, unit).ok()
        })
        .collect()
}

/// Where a sensor reads its value in the solver's results.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Pressure(usize),
    Head(usize),
    Level {
        node: usize,
        elevation: f64,
    },
    Flow(usize),
    Demand(usize),
    /// Not hydraulic (battery, signal, pump status, valve position): a constant.
    Constant(f64),
}

/// Values of sensors at any simulation time.
pub struct Synthesizer {
    probes: Vec<Probe>,
    steps: Vec<StepResult>,
    leak_steps: Vec<StepResult>,
    leak_from: u64,
    /// Length of the simulated horizon; the fleet's clock wraps around it.
    horizon: u64,
}

impl Synthesizer {
    /// Simulates `network` (and, with `leak`, the network with the leak) for `sensors`.
    pub fn new(network: &Network, sensors: &[Sensor], leak: Option<&Leak>) -> anyhow::Result<Self> {
        let probes = sensors
            .iter()
            .map(|sensor| probe(network, sensor))
            .collect::<Result<Vec<_>, _>>()?;
        let steps = simulate(network)?;
        let (leak_steps, leak_from) = match leak {
            None => (Vec::new(), u64::MAX),
            Some(leak) => (simulate(&with_leak(network, leak)?)?, leak.from_seconds),
        };
        let horizon = steps.last().map_or(0, |step| step.t).max(1);
        Ok(Self {
            probes,
            steps,
            leak_steps,
            leak_from,
            horizon,
        })
    }

    /// The value of sensor `index` at simulation time `seconds` with noise from `rng`, or
    /// `None` for an index out of range.
    pub fn value(&self, index: usize, seconds: f64, rng: &mut SmallRng) -> Option<f64> {
        let probe = *self.probes.get(index)?;
        let exact = self.exact(probe, seconds);
        let sigma = 0.002 * exact.abs() + 0.01;
        // A sum of three uniforms: bell-shaped, bounded, cheap.
        let noise: f64 = (0..3).map(|_| rng.random::<f64>()).sum::<f64>() - 1.5;
        Some(exact + sigma * noise)
    }

    /// The noiseless value of `probe` at `seconds`.
    fn exact(&self, probe: Probe, seconds: f64) -> f64 {
        let wrapped = seconds.max(0.0) % self.horizon as f64;
        let steps = if (seconds.max(0.0) as u64) >= self.leak_from && !self.leak_steps.is_empty() {
            &self.leak_steps
        } else {
            &self.steps
        };
        let after = steps.partition_point(|step| (step.t as f64) <= wrapped);
        let (a, b) = match after {
            0 => (&steps[0], &steps[0]),
            n if n >= steps.len() => (&steps[n - 1], &steps[n - 1]),
            n => (&steps[n - 1], &steps[n]),
        };
        let weight = if b.t > a.t {
            (wrapped - a.t as f64) / (b.t - a.t) as f64
        } else {
            0.0
        };
        let at = |step: &StepResult| match probe {
            Probe::Pressure(i) => step.pressure[i],
            Probe::Head(i) => step.head[i],
            Probe::Level { node, elevation } => step.head[node] - elevation,
            Probe::Flow(i) => step.flow[i],
            Probe::Demand(i) => step.demand[i],
            Probe::Constant(value) => value,
        };
        at(a) + weight * (at(b) - at(a))
    }
}

fn probe(network: &Network, sensor: &Sensor) -> Result<Probe, BadInput> {
    let missing = || {
        BadInput(format!(
            "sensor {}: {} `{}` is not in the network",
            sensor.id,
            if sensor.kind.target_kind() == TargetKind::Link {
                "link"
            } else {
                "node"
            },
            sensor.target
        ))
    };
    let node = || network.node_index(&sensor.target).ok_or_else(missing);
    let link = || network.link_index(&sensor.target).ok_or_else(missing);
    Ok(match sensor.kind {
        SensorKind::Pressure => Probe::Pressure(node()?),
        SensorKind::Head => Probe::Head(node()?),
        SensorKind::Level => {
            let index = node()?;
            let elevation = match &network.nodes[index].kind {
                NodeKind::Tank(tank) => tank.elevation,
                NodeKind::Junction(junction) => junction.elevation,
                NodeKind::Reservoir(_) => 0.0,
            };
            Probe::Level {
                node: index,
                elevation,
            }
        }
        SensorKind::Flow => Probe::Flow(link()?),
        SensorKind::Demand => Probe::Demand(node()?),
        SensorKind::PumpStatus | SensorKind::ValvePosition => Probe::Constant(1.0),
        SensorKind::Battery => Probe::Constant(3.6),
        SensorKind::Signal => Probe::Constant(-80.0),
    })
}

fn simulate(network: &Network) -> anyhow::Result<Vec<StepResult>> {
    let results = hydraulics::simulate(network, &SimOptions::default())
        .map_err(|err| BadInput(format!("the network does not simulate: {err}")))?;
    if results.steps.is_empty() {
        return Err(BadInput("the network's simulation has no time step".into()).into());
    }
    Ok(results.steps)
}

/// `network` with the leak as an extra constant demand at its node.
fn with_leak(network: &Network, leak: &Leak) -> Result<Network, BadInput> {
    let mut leaky = network.clone();
    let index = leaky
        .node_index(&leak.node)
        .ok_or_else(|| BadInput(format!("leak node `{}` is not in the network", leak.node)))?;
    let constant = leaky.patterns.len();
    leaky.patterns.push(Pattern {
        id: "AQUATWIN-LEAK".into(),
        multipliers: vec![1.0],
    });
    match &mut leaky.nodes[index].kind {
        NodeKind::Junction(Junction { demands, .. }) => demands.push(Demand {
            base: leak.flow,
            pattern: Some(constant),
            category: Some("leak".into()),
        }),
        _ => {
            return Err(BadInput(format!(
                "leak node `{}` is not a junction",
                leak.node
            )))
        }
    }
    Ok(leaky)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net3() -> Network {
        hydraulics::read_str(
            include_str!("../../hydraulics/networks/Net3.inp"),
            "Net3.inp",
        )
        .unwrap()
    }

    #[test]
    fn layout_puts_tanks_first_and_names_copies() {
        let network = net3();
        let elements = network.junction_count() + network.links.len() + 3;
        let sensors = layout(&network, elements + 10);
        assert_eq!(sensors.len(), elements + 10);
        assert_eq!(sensors[0].kind, SensorKind::Level);
        let ids: std::collections::HashSet<_> = sensors.iter().map(|s| &s.id).collect();
        assert_eq!(ids.len(), sensors.len(), "ids are unique");
    }

    #[test]
    fn values_follow_the_simulation_and_the_leak_lowers_pressure() {
        let network = net3();
        let sensors = vec![Sensor::new("P", SensorKind::Pressure, "123", Unit::Psi).unwrap()];
        let results = hydraulics::simulate(&network, &SimOptions::default()).unwrap();
        let node = network.node_index("123").unwrap();
        let mut rng = <SmallRng as rand::SeedableRng>::seed_from_u64(1);
        let plain = Synthesizer::new(&network, &sensors, None).unwrap();
        // At a step's time, the step's value; half-way, between the two steps' values.
        let (a, b) = (&results.steps[5], &results.steps[6]);
        let near =
            |value: f64, expected: f64| (value - expected).abs() < 0.01 * expected.abs() + 0.05;
        assert!(near(
            plain.value(0, a.t as f64, &mut rng).unwrap(),
            a.pressure[node]
        ));
        let middle = (a.t + b.t) as f64 / 2.0;
        let expected = (a.pressure[node] + b.pressure[node]) / 2.0;
        assert!(near(plain.value(0, middle, &mut rng).unwrap(), expected));
        // At time 0 tanks and pumps are as in the base run: only the leak differs.
        let value = plain.value(0, 0.0, &mut rng).unwrap();
        let leak = Leak {
            node: "123".into(),
            flow: 2000.0,
            from_seconds: 0,
        };
        let leaky = Synthesizer::new(&network, &sensors, Some(&leak)).unwrap();
        let leaked = leaky.value(0, 0.0, &mut rng).unwrap();
        assert!(leaked < value - 1.0, "{leaked} vs {value}");
    }

    #[test]
    fn leak_parses_seconds_and_clock_times() {
        let leak: Leak = "123:50:2:30".parse().unwrap();
        assert_eq!(leak.from_seconds, 9000);
        assert!("123:-5:0".parse::<Leak>().is_err());
    }
}
