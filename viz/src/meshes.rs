//! Vertex data of the merged meshes: every pipe in one tube mesh, every junction in one marker
//! mesh, every flow arrow in one arrow mesh. One draw call each, whatever the network's size;
//! colours and arrow directions are rewritten in place when the time changes.

use std::ops::Range;

use bevy::math::Vec3;

use crate::geometry::{Geometry, LinkShape, NodeShape};

/// Links past which a network counts as large: thinner meshes, and arrows and junction
/// markers start hidden (millions of sub-pixel triangles cost much and show nothing).
pub const LARGE_NETWORK_LINKS: usize = 20_000;

/// Sides of a pipe's tube cross-section: 6 looks round; 3 (a prism) for large networks, where a
/// pipe is a pixel or two wide.
pub fn tube_sides(link_count: usize) -> usize {
    if link_count > LARGE_NETWORK_LINKS {
        3
    } else {
        6
    }
}
/// Sides of an arrow's cone.
const ARROW_SIDES: usize = 6;
/// Vertices of one arrow: the tip, then the base ring.
pub const ARROW_VERTICES: usize = ARROW_SIDES + 1;
/// Where along a link its arrow sits (away from the middle, which the inspector probes).
pub const ARROW_POSITION: f32 = 0.3;

/// Positions, normals and triangles of one merged mesh, and which vertices belong to which
/// element.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshData {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    pub indices: Vec<u32>,
    /// Vertex range of each element, in element order (empty where it has none).
    pub ranges: Vec<Range<u32>>,
}

impl MeshData {
    fn begin(&mut self) -> u32 {
        self.positions.len() as u32
    }

    fn end(&mut self, start: u32) {
        self.ranges.push(start..self.positions.len() as u32);
    }
}

/// Two unit vectors perpendicular to `direction` and to each other.
fn frame(direction: Vec3) -> (Vec3, Vec3) {
    let reference = if direction.y.abs() < 0.9 {
        Vec3::Y
    } else {
        Vec3::X
    };
    let u = direction.cross(reference).normalize_or_zero();
    (u, u.cross(direction).normalize_or_zero())
}

/// One tube per pipe (pumps and valves too: they are drawn as short tubes with a marker), one
/// prism per segment between vertices.
pub fn tubes(geometry: &Geometry) -> MeshData {
    let sides = tube_sides(geometry.links.len());
    let mut mesh = MeshData::default();
    for link in &geometry.links {
        let start = mesh.begin();
        for pair in link.points.windows(2) {
            let direction = (pair[1] - pair[0]).normalize_or_zero();
            if direction == Vec3::ZERO {
                continue;
            }
            let (u, v) = frame(direction);
            let base = mesh.positions.len() as u32;
            for end in pair {
                for side in 0..sides {
                    let angle = side as f32 / sides as f32 * std::f32::consts::TAU;
                    let normal = u * angle.cos() + v * angle.sin();
                    mesh.positions
                        .push((*end + normal * link.radius).to_array());
                    mesh.normals.push(normal.to_array());
                }
            }
            let sides = sides as u32;
            for side in 0..sides {
                let next = (side + 1) % sides;
                let (a, b) = (base + side, base + next);
                let (c, d) = (base + sides + side, base + sides + next);
                mesh.indices.extend_from_slice(&[a, c, b, b, c, d]);
            }
        }
        mesh.end(start);
    }
    mesh
}

/// An octahedron per junction (reservoirs and tanks are drawn apart, with their own shapes).
pub fn junction_markers(geometry: &Geometry) -> MeshData {
    const CORNERS: [[f32; 3]; 6] = [
        [1.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, -1.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, -1.0],
    ];
    const FACES: [[u32; 3]; 8] = [
        [0, 2, 4],
        [4, 2, 1],
        [1, 2, 5],
        [5, 2, 0],
        [4, 3, 0],
        [1, 3, 4],
        [5, 3, 1],
        [0, 3, 5],
    ];
    let mut mesh = MeshData::default();
    for node in &geometry.nodes {
        let start = mesh.begin();
        if node.shape == NodeShape::Junction {
            for corner in CORNERS {
                let normal = Vec3::from_array(corner);
                mesh.positions
                    .push((node.position + normal * node.size).to_array());
                mesh.normals.push(corner);
            }
            for face in FACES {
                mesh.indices.extend(face.iter().map(|i| start + i));
            }
        }
        mesh.end(start);
    }
    mesh
}

/// One cone per link, pointing from its from-node to its to-node; [`orient_arrows`] turns
/// them with the flow.
pub fn arrows(geometry: &Geometry) -> MeshData {
    let mut mesh = MeshData::default();
    for _ in &geometry.links {
        let start = mesh.begin();
        mesh.positions.extend([[0.0; 3]; ARROW_VERTICES]);
        mesh.normals.extend([[0.0, 1.0, 0.0]; ARROW_VERTICES]);
        let sides = ARROW_SIDES as u32;
        for side in 0..sides {
            let next = (side + 1) % sides;
            mesh.indices
                .extend_from_slice(&[start, start + 1 + side, start + 1 + next]);
        }
        mesh.end(start);
    }
    orient_arrows(geometry, &mut mesh.positions, &mut mesh.normals, |_| 1);
    mesh
}

/// Rewrites every arrow's vertices in place: `direction(link)` is +1 (flow from -> to), -1
/// (reverse) or 0 (no flow: the arrow collapses to a point and draws nothing).
pub fn orient_arrows(
    geometry: &Geometry,
    positions: &mut [[f32; 3]],
    normals: &mut [[f32; 3]],
    direction: impl Fn(usize) -> i8,
) {
    for (index, link) in geometry.links.iter().enumerate() {
        let vertices = index * ARROW_VERTICES..(index + 1) * ARROW_VERTICES;
        let (Some(positions), Some(normals)) = (
            positions.get_mut(vertices.clone()),
            normals.get_mut(vertices),
        ) else {
            return;
        };
        let sign = direction(index);
        let (centre, along) = link.point_along(ARROW_POSITION);
        if sign == 0 || along == Vec3::ZERO || matches!(link.shape, LinkShape::Pump) {
            positions.fill(centre.to_array());
            continue;
        }
        let along = along * f32::from(sign);
        let length = link.radius * 5.0;
        let width = link.radius * 2.0;
        let (u, v) = frame(along);
        positions[0] = (centre + along * length * 0.5).to_array();
        normals[0] = along.to_array();
        for side in 0..ARROW_SIDES {
            let angle = side as f32 / ARROW_SIDES as f32 * std::f32::consts::TAU;
            let out = u * angle.cos() + v * angle.sin();
            positions[1 + side] = (centre - along * length * 0.5 + out * width).to_array();
            normals[1 + side] = out.to_array();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tubes_have_one_range_per_link_and_valid_triangles() {
        let geometry = crate::testing::net3_geometry();
        let mesh = tubes(&geometry);
        assert_eq!(mesh.ranges.len(), geometry.links.len());
        assert_eq!(mesh.positions.len(), mesh.normals.len());
        assert!(mesh
            .indices
            .iter()
            .all(|&i| (i as usize) < mesh.positions.len()));
        assert_eq!(mesh.indices.len() % 3, 0);
        for (link, range) in geometry.links.iter().zip(&mesh.ranges) {
            let segments = link.points.windows(2).filter(|w| w[0] != w[1]).count();
            assert_eq!(range.len(), segments * 2 * 6, "link {}", link.id);
            // Every vertex of a tube lies at the tube's radius from its axis ends' line.
            let first = Vec3::from_array(mesh.positions[range.start as usize]);
            let distance = first.distance(link.points[0]);
            assert!((distance - link.radius).abs() < 1e-3);
        }
    }

    #[test]
    fn junction_markers_skip_tanks_and_reservoirs() {
        let geometry = crate::testing::net3_geometry();
        let mesh = junction_markers(&geometry);
        for (node, range) in geometry.nodes.iter().zip(&mesh.ranges) {
            let expected = if node.shape == NodeShape::Junction {
                6
            } else {
                0
            };
            assert_eq!(range.len(), expected, "node {}", node.id);
        }
    }

    #[test]
    fn arrows_turn_with_the_flow_and_vanish_without_it() {
        let geometry = crate::testing::net3_geometry();
        let mut mesh = arrows(&geometry);
        let pipe = geometry
            .links
            .iter()
            .position(|l| l.shape == LinkShape::Pipe)
            .unwrap();
        let link = &geometry.links[pipe];
        let tip = |mesh: &MeshData| Vec3::from_array(mesh.positions[pipe * ARROW_VERTICES]);
        let towards_end = tip(&mesh).distance(*link.points.last().unwrap());
        orient_arrows(&geometry, &mut mesh.positions, &mut mesh.normals, |_| -1);
        let reversed = tip(&mesh).distance(*link.points.last().unwrap());
        assert!(reversed > towards_end);
        orient_arrows(&geometry, &mut mesh.positions, &mut mesh.normals, |_| 0);
        let range = pipe * ARROW_VERTICES..(pipe + 1) * ARROW_VERTICES;
        let first = mesh.positions[range.start];
        assert!(mesh.positions[range].iter().all(|p| *p == first));
    }
}
