//! The values shown over time: one frame per results step or per live period.
//!
//! Values are kept per quantity as one flat array (step-major), in the network's element order,
//! so a frame's colours are one slice away and playback allocates nothing.

use std::collections::HashMap;

use hydraulics::model::{LinkKind, Network};
use hydraulics::results::ResultsDocument;
use hydraulics::units::UnitFactors;

use crate::colour::Quantity;

/// Largest number of values kept for live streams; the oldest frames go first.
const LIVE_VALUE_BUDGET: usize = 64_000_000;

/// What frame times count from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Seconds since the start of a simulation (results files).
    Elapsed,
    /// Seconds since 1970 (live twins, replays).
    Unix,
}

/// One time's values, in network order (NaN where unknown).
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Seconds, on the frames' clock.
    pub time: f64,
    /// Node quantities present in this frame.
    pub nodes: Vec<(Quantity, Vec<f32>)>,
    /// Link quantities present in this frame.
    pub links: Vec<(Quantity, Vec<f32>)>,
    /// Link status (0 closed, 1 open, 2 active); empty when unknown.
    pub status: Vec<u8>,
}

/// A results document does not fit the network it is shown on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramesError {
    #[error("the results name {kind} `{id}`, which the network does not have (another network's results?)")]
    UnknownElement { kind: &'static str, id: String },
    #[error("step {step} of the results has {found} {what} values for {expected} ids")]
    Misaligned {
        step: usize,
        what: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("the results have no steps")]
    Empty,
}

/// Every frame of a run.
#[derive(Debug, Clone)]
pub struct Frames {
    pub clock: Clock,
    node_count: usize,
    link_count: usize,
    times: Vec<f64>,
    series: HashMap<Quantity, Vec<f32>>,
    /// Values that do not change with time (risk), one per link or node.
    fixed: HashMap<Quantity, Vec<f32>>,
    status: Vec<u8>,
    has_status: bool,
}

impl Frames {
    /// No frames yet (a live stream fills them).
    pub fn new(network: &Network, clock: Clock) -> Frames {
        Frames {
            clock,
            node_count: network.nodes.len(),
            link_count: network.links.len(),
            times: Vec::new(),
            series: HashMap::new(),
            fixed: HashMap::new(),
            status: Vec::new(),
            has_status: false,
        }
    }

    /// Every step of a results file (`aquatwin simulate --out`, `aquatwin scenario
    /// --results`), with velocities and unit headlosses derived from flows and heads.
    pub fn from_results(
        network: &Network,
        results: &ResultsDocument,
    ) -> Result<Frames, FramesError> {
        if results.steps.is_empty() {
            return Err(FramesError::Empty);
        }
        let node_index = network.node_ids();
        let link_index = network.link_ids();
        let map = |ids: &[String], index: &HashMap<&str, usize>, kind| {
            ids.iter()
                .map(|id| {
                    index
                        .get(id.as_str())
                        .copied()
                        .ok_or(FramesError::UnknownElement {
                            kind,
                            id: id.clone(),
                        })
                })
                .collect::<Result<Vec<usize>, _>>()
        };
        let nodes = map(&results.node_ids, &node_index, "node")?;
        let links = map(&results.link_ids, &link_index, "link")?;
        let mut frames = Frames::new(network, Clock::Elapsed);
        let derive = Derivation::new(network);
        for (number, step) in results.steps.iter().enumerate() {
            let spread = |what: &'static str, values: &[f64], at: &[usize], count: usize| {
                if values.len() != at.len() {
                    return Err(FramesError::Misaligned {
                        step: number,
                        what,
                        found: values.len(),
                        expected: at.len(),
                    });
                }
                let mut out = vec![f32::NAN; count];
                for (&value, &index) in values.iter().zip(at) {
                    out[index] = value as f32;
                }
                Ok(out)
            };
            let (node_count, link_count) = (frames.node_count, frames.link_count);
            let head = spread("head", &step.head, &nodes, node_count)?;
            let pressure = spread("pressure", &step.pressure, &nodes, node_count)?;
            let demand = spread("demand", &step.demand, &nodes, node_count)?;
            let flow = spread("flow", &step.flow, &links, link_count)?;
            let mut status = vec![1u8; link_count];
            for (&value, &index) in step.status.iter().zip(&links) {
                status[index] = value;
            }
            let velocity = derive.velocities(&flow);
            let headloss = derive.headlosses(&head);
            frames.push(Frame {
                time: step.t as f64,
                nodes: vec![
                    (Quantity::Head, head),
                    (Quantity::Pressure, pressure),
                    (Quantity::Demand, demand),
                ],
                links: vec![
                    (Quantity::Flow, flow),
                    (Quantity::Velocity, velocity),
                    (Quantity::Headloss, headloss),
                ],
                status,
            });
        }
        Ok(frames)
    }

    /// Appends a frame (live: the newest period). Quantities the frame lacks are NaN there.
    /// Live streams keep a bounded history: past the budget the oldest frame goes.
    pub fn push(&mut self, frame: Frame) {
        let before = self.times.len();
        let width = |q: Quantity| {
            if q.on_links() {
                self.link_count
            } else {
                self.node_count
            }
        };
        for (quantity, values) in frame.nodes.into_iter().chain(frame.links) {
            let count = width(quantity);
            let series = self
                .series
                .entry(quantity)
                .or_insert_with(|| vec![f32::NAN; before * count]);
            let mut values = values;
            values.resize(count, f32::NAN);
            series.extend_from_slice(&values);
        }
        for (&quantity, series) in &mut self.series {
            let count = if quantity.on_links() {
                self.link_count
            } else {
                self.node_count
            };
            series.resize((before + 1) * count, f32::NAN);
        }
        let mut status = frame.status;
        self.has_status |= !status.is_empty();
        status.resize(self.link_count, 1);
        self.status.extend_from_slice(&status);
        self.times.push(frame.time);
        if self.clock == Clock::Unix {
            self.trim_to_budget();
        }
    }

    fn trim_to_budget(&mut self) {
        let per_frame: usize = self
            .series
            .keys()
            .map(|q| {
                if q.on_links() {
                    self.link_count
                } else {
                    self.node_count
                }
            })
            .sum::<usize>()
            .max(1);
        let keep = (LIVE_VALUE_BUDGET / per_frame).max(2);
        if self.times.len() <= keep {
            return;
        }
        let drop = self.times.len() - keep;
        self.times.drain(..drop);
        for (&quantity, series) in &mut self.series {
            let count = if quantity.on_links() {
                self.link_count
            } else {
                self.node_count
            };
            series.drain(..drop * count);
        }
        self.status.drain(..drop * self.link_count);
    }

    /// Sets a quantity that does not change over time (e.g. risk per pipe), NaN where unknown.
    pub fn set_fixed(&mut self, quantity: Quantity, values: Vec<f32>) {
        self.fixed.insert(quantity, values);
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether there is no frame yet.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Frame times, seconds on [`Frames::clock`].
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// Values of `quantity` at frame `step`, in network order; `None` if never given.
    pub fn values(&self, quantity: Quantity, step: usize) -> Option<&[f32]> {
        if let Some(values) = self.fixed.get(&quantity) {
            return Some(values);
        }
        let count = if quantity.on_links() {
            self.link_count
        } else {
            self.node_count
        };
        let series = self.series.get(&quantity)?;
        series.get(step * count..(step + 1) * count)
    }

    /// Every value of `quantity` over all frames (to fit a colour scale).
    pub fn all_values(&self, quantity: Quantity) -> impl Iterator<Item = f32> + '_ {
        let values = self
            .fixed
            .get(&quantity)
            .or_else(|| self.series.get(&quantity));
        let magnitude = quantity == Quantity::Flow;
        values
            .into_iter()
            .flatten()
            .map(move |v| if magnitude { v.abs() } else { *v })
    }

    /// Whether `quantity` has any value.
    pub fn has(&self, quantity: Quantity) -> bool {
        self.fixed.contains_key(&quantity) || self.series.contains_key(&quantity)
    }

    /// Link status at `step` (0 closed, 1 open, 2 active); `None` when the source gave none.
    pub fn status(&self, step: usize) -> Option<&[u8]> {
        if !self.has_status {
            return None;
        }
        self.status
            .get(step * self.link_count..(step + 1) * self.link_count)
    }

    /// The last frame at or before `time` (the first frame if `time` is earlier).
    pub fn step_at(&self, time: f64) -> usize {
        self.times.partition_point(|&t| t <= time).saturating_sub(1)
    }
}

/// Velocities and unit headlosses from flows and heads (what results files leave out).
struct Derivation {
    /// Per link: flow (file units) to velocity (file units), 0 where not a pipe or valve.
    velocity_factor: Vec<f32>,
    /// Per link: (from, to, 1000 / length) for pipes, length 0 gives plain head difference.
    ends: Vec<(usize, usize, f32)>,
}

impl Derivation {
    fn new(network: &Network) -> Derivation {
        let units = UnitFactors::new(&network.options);
        let velocity_factor = network
            .links
            .iter()
            .map(|link| {
                let diameter = match &link.kind {
                    LinkKind::Pipe(pipe) => pipe.diameter,
                    LinkKind::Valve(valve) => valve.diameter,
                    LinkKind::Pump(_) => 0.0,
                };
                if diameter <= 0.0 {
                    return 0.0;
                }
                let diameter_ft = diameter / units.diameter;
                let area_ft2 = std::f64::consts::PI / 4.0 * diameter_ft * diameter_ft;
                (units.velocity / (units.flow * area_ft2)) as f32
            })
            .collect();
        let ends = network
            .links
            .iter()
            .map(|link| {
                let per_length = match &link.kind {
                    LinkKind::Pipe(pipe) if pipe.length > 0.0 => (1000.0 / pipe.length) as f32,
                    _ => 1.0,
                };
                (link.from, link.to, per_length)
            })
            .collect();
        Derivation {
            velocity_factor,
            ends,
        }
    }

    fn velocities(&self, flow: &[f32]) -> Vec<f32> {
        flow.iter()
            .zip(&self.velocity_factor)
            .map(|(q, factor)| q.abs() * factor)
            .collect()
    }

    /// Head loss per 1000 length units for pipes (EPANET's report), head difference for pumps
    /// and valves.
    fn headlosses(&self, head: &[f32]) -> Vec<f32> {
        self.ends
            .iter()
            .map(|&(from, to, scale)| (head[from] - head[to]).abs() * scale)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net3() -> (Network, ResultsDocument) {
        let network = crate::testing::net3();
        let results = hydraulics::simulate(&network, &hydraulics::SimOptions::default()).unwrap();
        let document = ResultsDocument::from_simulation(&network, &results, "Net3");
        (network, document)
    }

    #[test]
    fn results_become_frames_in_network_order() {
        let (network, document) = net3();
        let frames = Frames::from_results(&network, &document).unwrap();
        assert_eq!(frames.len(), document.steps.len());
        let step = document.steps.len() / 2;
        let pressure = frames.values(Quantity::Pressure, step).unwrap();
        for (i, id) in document.node_ids.iter().enumerate() {
            let index = network.node_index(id).unwrap();
            assert_eq!(pressure[index], document.steps[step].pressure[i] as f32);
        }
        assert_eq!(frames.step_at(document.steps[step].t as f64 + 0.5), step);
        assert_eq!(frames.step_at(-10.0), 0);
        assert!(frames.status(0).is_some());
    }

    #[test]
    fn derived_velocity_matches_the_solver() {
        let (network, document) = net3();
        let frames = Frames::from_results(&network, &document).unwrap();
        let velocity = frames.values(Quantity::Velocity, 0).unwrap();
        // Net3 is in GPM with diameters in inches: v (ft/s) = Q / 448.831 / (pi/4 (D/12)^2).
        let pipe = network.link_index("101").unwrap();
        let LinkKind::Pipe(spec) = &network.links[pipe].kind else {
            panic!("101 is a pipe")
        };
        let flow = frames.values(Quantity::Flow, 0).unwrap()[pipe] as f64;
        let expected =
            flow.abs() / 448.831 / (std::f64::consts::PI / 4.0 * (spec.diameter / 12.0).powi(2));
        assert!((velocity[pipe] as f64 - expected).abs() < 1e-3 * expected.max(1.0));
    }

    #[test]
    fn other_networks_results_are_refused() {
        let (network, mut document) = net3();
        document.link_ids[0] = "not-here".into();
        let error = Frames::from_results(&network, &document).unwrap_err();
        assert!(error.to_string().contains("not-here"), "{error}");
    }

    #[test]
    fn live_frames_fill_gaps_with_nan_and_fixed_values_apply_to_every_step() {
        let (network, _) = net3();
        let mut frames = Frames::new(&network, Clock::Unix);
        let links = network.links.len();
        frames.push(Frame {
            time: 100.0,
            links: vec![(Quantity::Flow, vec![1.0; links])],
            ..Frame::default()
        });
        frames.push(Frame {
            time: 200.0,
            nodes: vec![(Quantity::Pressure, vec![50.0; network.nodes.len()])],
            ..Frame::default()
        });
        assert!(frames.values(Quantity::Pressure, 0).unwrap()[0].is_nan());
        assert_eq!(frames.values(Quantity::Pressure, 1).unwrap()[0], 50.0);
        assert!(frames.values(Quantity::Flow, 1).unwrap()[0].is_nan());
        assert!(frames.status(0).is_none());
        frames.set_fixed(Quantity::Risk, vec![0.5; links]);
        assert_eq!(frames.values(Quantity::Risk, 1).unwrap()[3], 0.5);
        assert_eq!(frames.step_at(150.0), 0);
    }
}
