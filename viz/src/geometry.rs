//! Where every element of a network sits in the viewer's world, and how big it is drawn.
//!
//! World axes: x east, y up (elevation times the exaggeration), z south (Bevy's right-handed
//! y-up frame, so the map reads the usual way from above). The network is centred on the origin
//! and scaled so its plan spans [`WORLD_EXTENT`] units, whatever its coordinate units (feet,
//! metres, degrees): camera speeds and marker sizes then need no per-network tuning.

use bevy::math::Vec3;
use hydraulics::model::{LinkKind, Network, NodeKind, ValveType};

use crate::layout::{node_positions, LayoutSource};

/// Plan size of every network in world units.
pub const WORLD_EXTENT: f32 = 1000.0;

/// Share of the plan extent that the elevation range spans with the automatic exaggeration.
const AUTO_RELIEF: f64 = 0.08;

/// Tube radius of a pipe of median diameter, world units.
const BASE_RADIUS: f32 = 3.0;

/// How a node is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeShape {
    Junction,
    Reservoir,
    /// A tank; levels are heads (file units) so results' heads give the fill.
    Tank {
        bottom_head: f32,
        min_head: f32,
        max_head: f32,
    },
}

/// How a link is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkShape {
    Pipe,
    Pump,
    Valve(ValveType),
}

impl LinkShape {
    /// The type's word, as in results files.
    pub fn name(self) -> &'static str {
        match self {
            LinkShape::Pipe => "PIPE",
            LinkShape::Pump => "PUMP",
            LinkShape::Valve(valve) => valve.keyword(),
        }
    }
}

/// A node's place and size.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeGeometry {
    pub id: String,
    pub shape: NodeShape,
    /// Elevation (junctions, tank bottoms) or head (reservoirs), file units.
    pub elevation: f32,
    pub position: Vec3,
    /// Marker radius, world units.
    pub size: f32,
}

/// A link's path and thickness.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkGeometry {
    pub id: String,
    pub shape: LinkShape,
    pub from: usize,
    pub to: usize,
    /// From node, vertices, to node.
    pub points: Vec<Vec3>,
    /// Tube radius, world units.
    pub radius: f32,
    /// Diameter (in or mm; 0 for pumps), for the inspector and velocities.
    pub diameter: f32,
    /// Length (file units; 0 for pumps and valves).
    pub length: f32,
}

impl LinkGeometry {
    /// The point `fraction` (0 to 1) of the way along the drawn path, and the path's direction
    /// there.
    pub fn point_along(&self, fraction: f32) -> (Vec3, Vec3) {
        let total: f32 = self.points.windows(2).map(|w| w[0].distance(w[1])).sum();
        let mut remaining = total * fraction.clamp(0.0, 1.0);
        for pair in self.points.windows(2) {
            let length = pair[0].distance(pair[1]);
            if remaining <= length && length > 0.0 {
                let direction = (pair[1] - pair[0]) / length;
                return (pair[0] + direction * remaining, direction);
            }
            remaining -= length;
        }
        let last = self.points[self.points.len() - 1];
        let first = self.points[0];
        (last, (last - first).normalize_or_zero())
    }
}

/// The whole drawn network.
#[derive(Debug, Clone)]
pub struct Geometry {
    pub nodes: Vec<NodeGeometry>,
    pub links: Vec<LinkGeometry>,
    pub layout: LayoutSource,
    /// World units per elevation unit.
    pub height_scale: f32,
    /// Vertical exaggeration: height scale over plan scale.
    pub exaggeration: f32,
    /// Elevation (file units) drawn at world y = 0.
    pub base_elevation: f32,
    /// Bounding box, world units.
    pub min: Vec3,
    pub max: Vec3,
}

impl Geometry {
    /// Places `network`. `exaggeration`: vertical over horizontal scale; `None` picks one so the
    /// relief spans a few percent of the plan.
    pub fn new(network: &Network, exaggeration: Option<f32>) -> Geometry {
        let (plan, layout) = node_positions(network);
        let elevations: Vec<f64> = network.nodes.iter().map(node_elevation).collect();
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut grow = |x: f64, y: f64| {
            low = low.min(x.min(y));
            high = high.max(x.max(y));
        };
        let (mut min_x, mut max_x, mut min_y, mut max_y) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in plan
            .iter()
            .chain(network.links.iter().flat_map(|l| &l.vertices))
        {
            min_x = min_x.min(x);
            max_x = max_x.max(x);
            min_y = min_y.min(y);
            max_y = max_y.max(y);
        }
        for &elevation in &elevations {
            grow(elevation, elevation);
        }
        let span = (max_x - min_x).max(max_y - min_y);
        let span = if span.is_finite() && span > 0.0 {
            span
        } else {
            1.0
        };
        let plan_scale = f64::from(WORLD_EXTENT) / span;
        let (centre_x, centre_y) = ((min_x + max_x) / 2.0, (min_y + max_y) / 2.0);
        let relief = if high > low { high - low } else { 0.0 };
        let exaggeration = match exaggeration {
            Some(value) => f64::from(value),
            None if relief > 0.0 => AUTO_RELIEF * span / relief,
            None => 1.0,
        };
        let base = if low.is_finite() { low } else { 0.0 };
        let height_scale = plan_scale * exaggeration;
        let place = |x: f64, y: f64, elevation: f64| {
            Vec3::new(
                ((x - centre_x) * plan_scale) as f32,
                ((elevation - base) * height_scale) as f32,
                (-(y - centre_y) * plan_scale) as f32,
            )
        };
        let nodes: Vec<NodeGeometry> = network
            .nodes
            .iter()
            .zip(&plan)
            .zip(&elevations)
            .map(|((node, &(x, y)), &elevation)| {
                let (shape, size) = match &node.kind {
                    NodeKind::Junction(_) => (NodeShape::Junction, BASE_RADIUS * 1.3),
                    NodeKind::Reservoir(_) => (NodeShape::Reservoir, BASE_RADIUS * 6.0),
                    NodeKind::Tank(tank) => (
                        NodeShape::Tank {
                            bottom_head: tank.elevation as f32,
                            min_head: (tank.elevation + tank.min_level) as f32,
                            max_head: (tank.elevation + tank.max_level) as f32,
                        },
                        BASE_RADIUS * 6.0,
                    ),
                };
                NodeGeometry {
                    id: node.id.clone(),
                    shape,
                    elevation: elevation as f32,
                    position: place(x, y, elevation),
                    size,
                }
            })
            .collect();
        let median_diameter = median_pipe_diameter(network);
        let links = network
            .links
            .iter()
            .map(|link| {
                let (shape, diameter, length) = match &link.kind {
                    LinkKind::Pipe(pipe) => (LinkShape::Pipe, pipe.diameter, pipe.length),
                    LinkKind::Pump(_) => (LinkShape::Pump, median_diameter, 0.0),
                    LinkKind::Valve(valve) => {
                        (LinkShape::Valve(valve.valve_type), valve.diameter, 0.0)
                    }
                };
                let (from, to) = (nodes[link.from].position, nodes[link.to].position);
                let mut points = Vec::with_capacity(link.vertices.len() + 2);
                points.push(from);
                let steps = link.vertices.len() + 1;
                for (i, &(x, y)) in link.vertices.iter().enumerate() {
                    // Vertices carry no elevation: interpolate between the ends.
                    let t = (i + 1) as f64 / steps as f64;
                    let elevation = elevations[link.from] * (1.0 - t) + elevations[link.to] * t;
                    points.push(place(x, y, elevation));
                }
                points.push(to);
                let relative = if median_diameter > 0.0 && diameter > 0.0 {
                    (diameter / median_diameter).sqrt().clamp(0.5, 3.0)
                } else {
                    1.0
                };
                LinkGeometry {
                    id: link.id.clone(),
                    shape,
                    from: link.from,
                    to: link.to,
                    points,
                    radius: BASE_RADIUS * relative as f32,
                    diameter: if matches!(shape, LinkShape::Pump) {
                        0.0
                    } else {
                        diameter as f32
                    },
                    length: length as f32,
                }
            })
            .collect::<Vec<_>>();
        let (mut min, mut max) = (Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY));
        for point in nodes
            .iter()
            .map(|n| n.position)
            .chain(links.iter().flat_map(|l| l.points.iter().copied()))
        {
            min = min.min(point);
            max = max.max(point);
        }
        if !min.is_finite() {
            (min, max) = (Vec3::ZERO, Vec3::ZERO);
        }
        Geometry {
            nodes,
            links,
            layout,
            height_scale: height_scale as f32,
            exaggeration: exaggeration as f32,
            base_elevation: base as f32,
            min,
            max,
        }
    }

    /// Centre of the bounding box.
    pub fn centre(&self) -> Vec3 {
        (self.min + self.max) / 2.0
    }

    /// Radius of a sphere around the bounding box.
    pub fn radius(&self) -> f32 {
        ((self.max - self.min).length() / 2.0).max(1.0)
    }

    /// Index of the node with this id (exact, then ignoring case).
    pub fn find_node(&self, id: &str) -> Option<usize> {
        find(self.nodes.iter().map(|n| n.id.as_str()), id)
    }

    /// Index of the link with this id (exact, then ignoring case).
    pub fn find_link(&self, id: &str) -> Option<usize> {
        find(self.links.iter().map(|l| l.id.as_str()), id)
    }

    /// World y of a head (file units), on the same vertical scale as the elevations.
    pub fn height_of(&self, head: f32) -> f32 {
        (head - self.base_elevation) * self.height_scale
    }
}

fn find<'a>(mut ids: impl Iterator<Item = &'a str> + Clone, wanted: &str) -> Option<usize> {
    let wanted = wanted.trim();
    ids.clone()
        .position(|id| id == wanted)
        .or_else(|| ids.position(|id| id.eq_ignore_ascii_case(wanted)))
}

/// Elevation of a junction or tank bottom; head of a reservoir (its water level).
fn node_elevation(node: &hydraulics::model::Node) -> f64 {
    match &node.kind {
        NodeKind::Junction(junction) => junction.elevation,
        NodeKind::Reservoir(reservoir) => reservoir.head,
        NodeKind::Tank(tank) => tank.elevation,
    }
}

fn median_pipe_diameter(network: &Network) -> f64 {
    let mut diameters: Vec<f64> = network
        .links
        .iter()
        .filter_map(|link| match &link.kind {
            LinkKind::Pipe(pipe) if pipe.diameter > 0.0 => Some(pipe.diameter),
            _ => None,
        })
        .collect();
    if diameters.is_empty() {
        return 0.0;
    }
    diameters.sort_by(f64::total_cmp);
    diameters[diameters.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::net3;

    #[test]
    fn plan_fits_the_world_extent_and_keeps_shape() {
        let network = net3();
        let geometry = Geometry::new(&network, None);
        assert_eq!(geometry.nodes.len(), network.nodes.len());
        assert!(matches!(geometry.layout, LayoutSource::FromFile));
        let span = (geometry.max.x - geometry.min.x).max(geometry.max.z - geometry.min.z);
        assert!((span - WORLD_EXTENT).abs() < 1.0, "span {span}");
        // Plan distances keep the file's proportions.
        let (a, b, c) = (0, 1, 2);
        let file = |i: usize| network.nodes[i].coordinates.unwrap();
        let world = |i: usize| geometry.nodes[i].position.with_y(0.0);
        let ratio = |i: usize, j: usize| {
            let (p, q) = (file(i), file(j));
            world(i).distance(world(j)) as f64 / (p.0 - q.0).hypot(p.1 - q.1)
        };
        assert!((ratio(a, b) / ratio(b, c) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn automatic_relief_is_a_few_percent_of_the_plan() {
        let geometry = Geometry::new(&net3(), None);
        let relief = geometry.max.y - geometry.min.y;
        assert!(
            relief > 0.02 * WORLD_EXTENT && relief < 0.2 * WORLD_EXTENT,
            "{relief}"
        );
        let flat = Geometry::new(&net3(), Some(0.0));
        assert!(flat.max.y.abs() < 1e-3);
    }

    #[test]
    fn links_run_from_node_to_node_through_their_vertices() {
        let network = net3();
        let geometry = Geometry::new(&network, None);
        for (link, drawn) in network.links.iter().zip(&geometry.links) {
            assert_eq!(drawn.points.len(), link.vertices.len() + 2);
            assert_eq!(drawn.points[0], geometry.nodes[link.from].position);
            assert_eq!(
                *drawn.points.last().unwrap(),
                geometry.nodes[link.to].position
            );
            assert!(drawn.radius > 0.0);
        }
        let (middle, direction) = geometry.links[0].point_along(0.5);
        assert!(direction.length() > 0.99);
        let ends = &geometry.links[0].points;
        assert!(middle.distance(ends[0]) > 0.0 && middle.distance(*ends.last().unwrap()) > 0.0);
    }

    #[test]
    fn ids_are_found_exactly_then_ignoring_case() {
        let geometry = Geometry::new(&net3(), None);
        let pipe = geometry.find_link("101").unwrap();
        assert_eq!(geometry.links[pipe].id, "101");
        assert_eq!(geometry.find_node("lake"), geometry.find_node("Lake"));
        assert!(geometry.find_node("Lake").is_some());
        assert!(geometry.find_node("nowhere").is_none());
    }
}
