//! Synthetic networks for benchmarks and tests (e.g. large grids).
//!
//! The grid is deterministic for a given [`GridSpec`]: the same spec always gives the same
//! network, so benchmark figures are comparable between runs and machines.

use crate::model::{
    Demand, FlowUnits, HeadlossFormula, Junction, Link, LinkKind, Network, Node, NodeKind, Pattern,
    Pipe, PipeStatus, Reservoir,
};

/// Junctions fed by one reservoir when the spec leaves the count to [`GridSpec::new`].
const JUNCTIONS_PER_RESERVOIR: usize = 10_000;
/// Every `TRUNK_EVERY`-th row and column of the grid is a trunk main.
const TRUNK_EVERY: usize = 8;
/// Distribution pipe, trunk main and reservoir outlet diameters, mm.
const DISTRIBUTION_DIAMETER_MM: f64 = 150.0;
const TRUNK_DIAMETER_MM: f64 = 300.0;
const OUTLET_DIAMETER_MM: f64 = 600.0;
/// Typical base demand of a junction, L/s (a few dozen homes).
const MEAN_BASE_DEMAND_LPS: f64 = 0.05;
/// Ground level around which the terrain undulates, and the reservoirs' head, m.
const BASE_ELEVATION_M: f64 = 50.0;
const RESERVOIR_HEAD_M: f64 = 120.0;
/// A residential day in 24 hourly multipliers (night low, morning and evening peaks).
const DIURNAL_PATTERN: [f64; 24] = [
    0.5, 0.4, 0.4, 0.4, 0.5, 0.7, 1.1, 1.5, 1.4, 1.2, 1.1, 1.0, 1.0, 1.0, 0.9, 0.9, 1.0, 1.2, 1.4,
    1.5, 1.3, 1.0, 0.8, 0.6,
];

/// What grid to build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridSpec {
    /// Number of junctions (the grid is filled row by row, the last row may be partial).
    pub junctions: usize,
    /// Number of reservoirs, spread evenly along the grid's first row.
    pub reservoirs: usize,
    /// Distance between neighbouring junctions, m.
    pub spacing_m: f64,
    /// Seed of the pseudo-random variation of lengths, roughness and demands.
    pub seed: u64,
}

impl GridSpec {
    /// A grid of `junctions` junctions with one reservoir per 10,000 junctions (at least one),
    /// 100 m apart.
    pub fn new(junctions: usize) -> Self {
        Self {
            junctions,
            reservoirs: junctions.div_ceil(JUNCTIONS_PER_RESERVOIR).max(1),
            spacing_m: 100.0,
            seed: 1,
        }
    }
}

/// Why a grid cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    #[error("a grid needs at least one junction")]
    NoJunctions,
    #[error("a grid needs at least one reservoir")]
    NoReservoirs,
    #[error("{reservoirs} reservoirs do not fit along a first row of {row} junctions")]
    TooManyReservoirs { reservoirs: usize, row: usize },
    #[error("the spacing must be a positive length, not {0}")]
    BadSpacing(f64),
}

/// Builds a square grid network in SI units (LPS, Hazen-Williams, metres), steady state
/// (duration 0) with a diurnal demand pattern ready for an extended period run.
///
/// Junction `J{k}` sits at row `(k-1) / side`, column `(k-1) % side` with `side =
/// ceil(sqrt(junctions))`; neighbours along rows and columns are joined by pipes, every 8th row
/// and column being a larger trunk main; reservoirs `R{i}` feed the first row through large
/// outlet mains.
pub fn grid(spec: &GridSpec) -> Result<Network, GenerateError> {
    if spec.junctions == 0 {
        return Err(GenerateError::NoJunctions);
    }
    if spec.reservoirs == 0 {
        return Err(GenerateError::NoReservoirs);
    }
    if !(spec.spacing_m > 0.0 && spec.spacing_m.is_finite()) {
        return Err(GenerateError::BadSpacing(spec.spacing_m));
    }
    let side = side_of(spec.junctions);
    if spec.reservoirs > side {
        return Err(GenerateError::TooManyReservoirs {
            reservoirs: spec.reservoirs,
            row: side,
        });
    }

    let mut random = SplitMix64(spec.seed);
    let mut network = Network {
        title: vec![format!(
            "Synthetic {side}x{side} grid: {} junctions, {} reservoirs",
            spec.junctions, spec.reservoirs
        )],
        patterns: vec![Pattern {
            id: "1".to_string(),
            multipliers: DIURNAL_PATTERN.to_vec(),
        }],
        ..Network::default()
    };
    network.options.flow_units = FlowUnits::Lps;
    network.options.headloss = HeadlossFormula::HazenWilliams;
    network.times.duration = 0;

    let extent = side as f64 * spec.spacing_m;
    for k in 0..spec.junctions {
        let (x, y) = position(k, side, spec.spacing_m);
        let terrain = 10.0
            * (x / extent * std::f64::consts::TAU).sin()
            * (y / extent * std::f64::consts::PI).cos();
        let base = MEAN_BASE_DEMAND_LPS * random.between(0.4, 1.6);
        network.nodes.push(Node {
            id: format!("J{}", k + 1),
            kind: NodeKind::Junction(Junction {
                elevation: round_to(BASE_ELEVATION_M + terrain, 2),
                demands: vec![Demand {
                    base: round_to(base, 4),
                    pattern: Some(0),
                    category: None,
                }],
            }),
            coordinates: Some((x, y)),
            tag: None,
            emitter_coefficient: 0.0,
        });
    }

    for k in 0..spec.junctions {
        let (row, column) = (k / side, k % side);
        if column + 1 < side && k + 1 < spec.junctions {
            let trunk = row % TRUNK_EVERY == 0;
            let pipe = grid_pipe(&mut random, spec.spacing_m, trunk);
            push_pipe(&mut network, k, k + 1, pipe);
        }
        if k + side < spec.junctions {
            let trunk = column % TRUNK_EVERY == 0;
            let pipe = grid_pipe(&mut random, spec.spacing_m, trunk);
            push_pipe(&mut network, k, k + side, pipe);
        }
    }

    for r in 0..spec.reservoirs {
        // Centre each reservoir in its share of the first row.
        let fed = (2 * r + 1) * side / (2 * spec.reservoirs);
        let (x, y) = position(fed, side, spec.spacing_m);
        let reservoir = network.nodes.len();
        network.nodes.push(Node {
            id: format!("R{}", r + 1),
            kind: NodeKind::Reservoir(Reservoir {
                head: RESERVOIR_HEAD_M,
                pattern: None,
            }),
            coordinates: Some((x, y - spec.spacing_m)),
            tag: None,
            emitter_coefficient: 0.0,
        });
        let outlet = Pipe {
            diameter: OUTLET_DIAMETER_MM,
            roughness: 130.0,
            ..plain_pipe(spec.spacing_m)
        };
        push_pipe(&mut network, reservoir, fed, outlet);
    }
    Ok(network)
}

/// Junctions per row of a grid of `junctions` junctions.
fn side_of(junctions: usize) -> usize {
    let mut side = (junctions as f64).sqrt() as usize;
    while side * side < junctions {
        side += 1;
    }
    side
}

fn position(k: usize, side: usize, spacing: f64) -> (f64, f64) {
    ((k % side) as f64 * spacing, (k / side) as f64 * spacing)
}

fn plain_pipe(length: f64) -> Pipe {
    Pipe {
        length,
        diameter: DISTRIBUTION_DIAMETER_MM,
        roughness: 120.0,
        minor_loss: 0.0,
        status: PipeStatus::Open,
        leak_area: 0.0,
        leak_expansion: 0.0,
    }
}

/// A grid pipe: lengths vary around the spacing (streets are not straight), roughness with the
/// pipe's age and material (old cast iron ~100 to new PVC ~140).
fn grid_pipe(random: &mut SplitMix64, spacing: f64, trunk: bool) -> Pipe {
    Pipe {
        length: round_to(spacing * random.between(0.9, 1.3), 1),
        diameter: if trunk {
            TRUNK_DIAMETER_MM
        } else {
            DISTRIBUTION_DIAMETER_MM
        },
        roughness: (random.between(100.0, 140.0) / 5.0).round() * 5.0,
        ..plain_pipe(spacing)
    }
}

fn push_pipe(network: &mut Network, from: usize, to: usize, pipe: Pipe) {
    network.links.push(Link {
        id: format!("P{}", network.links.len() + 1),
        from,
        to,
        kind: LinkKind::Pipe(pipe),
        vertices: Vec::new(),
        tag: None,
        initial_status: None,
    });
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64); enough for
/// reproducible variation, no cryptographic use.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)`.
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        low + (high - low) * unit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes reachable from node 0 through links.
    fn reachable(network: &Network) -> usize {
        let mut neighbours = vec![Vec::new(); network.nodes.len()];
        for link in &network.links {
            neighbours[link.from].push(link.to);
            neighbours[link.to].push(link.from);
        }
        let mut seen = vec![false; network.nodes.len()];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(node) = stack.pop() {
            for &next in &neighbours[node] {
                if !seen[next] {
                    seen[next] = true;
                    stack.push(next);
                }
            }
        }
        seen.iter().filter(|&&s| s).count()
    }

    #[test]
    fn full_square_has_expected_sizes_and_is_connected() {
        let network = grid(&GridSpec::new(100)).unwrap();
        assert_eq!(network.junction_count(), 100);
        assert_eq!(network.nodes.len(), 101);
        // 10 rows of 9 horizontal pipes, 9 rows of 10 vertical pipes, one outlet.
        assert_eq!(network.links.len(), 90 + 90 + 1);
        assert_eq!(reachable(&network), network.nodes.len());
    }

    #[test]
    fn partial_last_row_stays_connected() {
        for junctions in [1, 2, 3, 5, 10, 17, 1234] {
            let network = grid(&GridSpec::new(junctions)).unwrap();
            assert_eq!(network.junction_count(), junctions);
            assert_eq!(
                reachable(&network),
                network.nodes.len(),
                "{junctions} junctions"
            );
        }
    }

    #[test]
    fn reservoirs_scale_with_size_and_ids_are_unique() {
        let spec = GridSpec::new(25_000);
        assert_eq!(spec.reservoirs, 3);
        let network = grid(&spec).unwrap();
        let reservoirs = network
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Reservoir(_)))
            .count();
        assert_eq!(reservoirs, 3);
        assert_eq!(network.node_ids().len(), network.nodes.len());
        assert_eq!(network.link_ids().len(), network.links.len());
    }

    #[test]
    fn values_are_realistic_and_deterministic() {
        let spec = GridSpec::new(400);
        let network = grid(&spec).unwrap();
        assert_eq!(network, grid(&spec).unwrap());
        for node in &network.nodes {
            if let NodeKind::Junction(junction) = &node.kind {
                let demand = junction.demands[0].base;
                assert!((0.02..=0.08).contains(&demand), "{demand}");
                assert!((40.0..=60.0).contains(&junction.elevation));
            }
            assert!(node.coordinates.is_some());
        }
        for link in &network.links {
            let LinkKind::Pipe(pipe) = &link.kind else {
                panic!("only pipes")
            };
            assert!((90.0..=130.0).contains(&pipe.length), "{}", pipe.length);
            assert!((100.0..=140.0).contains(&pipe.roughness));
            assert!([150.0, 300.0, 600.0].contains(&pipe.diameter));
        }
        let other_seed = grid(&GridSpec { seed: 2, ..spec }).unwrap();
        assert_ne!(network, other_seed);
    }

    #[test]
    fn rejects_impossible_specs() {
        assert_eq!(grid(&GridSpec::new(0)), Err(GenerateError::NoJunctions));
        let spec = GridSpec {
            reservoirs: 0,
            ..GridSpec::new(9)
        };
        assert_eq!(grid(&spec), Err(GenerateError::NoReservoirs));
        let spec = GridSpec {
            reservoirs: 4,
            ..GridSpec::new(9)
        };
        assert_eq!(
            grid(&spec),
            Err(GenerateError::TooManyReservoirs {
                reservoirs: 4,
                row: 3
            })
        );
        let spec = GridSpec {
            spacing_m: -1.0,
            ..GridSpec::new(9)
        };
        assert_eq!(grid(&spec), Err(GenerateError::BadSpacing(-1.0)));
    }
}
