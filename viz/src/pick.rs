//! Which element is under the cursor, decided in screen space: the user clicks what they see,
//! however thin a pipe is drawn at the current zoom.

use bevy::math::{Vec2, Vec3};

use crate::geometry::Geometry;

/// Pixels within which a click selects a node (nodes win over the pipes that meet there).
const NODE_TOLERANCE: f32 = 10.0;
/// Pixels within which a click selects a link.
const LINK_TOLERANCE: f32 = 7.0;

/// A selected element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Node(usize),
    Link(usize),
}

/// The element nearest to `cursor`, if one is close enough. `project` maps a world point to the
/// screen (`None` when behind the camera or off screen).
pub fn pick(
    cursor: Vec2,
    geometry: &Geometry,
    project: impl Fn(Vec3) -> Option<Vec2>,
) -> Option<Selection> {
    let mut best_node: Option<(f32, usize)> = None;
    for (index, node) in geometry.nodes.iter().enumerate() {
        if let Some(screen) = project(node.position) {
            let distance = screen.distance(cursor);
            if distance <= NODE_TOLERANCE && best_node.is_none_or(|(d, _)| distance < d) {
                best_node = Some((distance, index));
            }
        }
    }
    if let Some((_, index)) = best_node {
        return Some(Selection::Node(index));
    }
    let mut best_link: Option<(f32, usize)> = None;
    for (index, link) in geometry.links.iter().enumerate() {
        let screen: Vec<Option<Vec2>> = link.points.iter().map(|p| project(*p)).collect();
        for pair in screen.windows(2) {
            let (Some(a), Some(b)) = (pair[0], pair[1]) else {
                continue;
            };
            let distance = distance_to_segment(cursor, a, b);
            if distance <= LINK_TOLERANCE && best_link.is_none_or(|(d, _)| distance < d) {
                best_link = Some((distance, index));
            }
        }
    }
    best_link.map(|(_, index)| Selection::Link(index))
}

fn distance_to_segment(point: Vec2, a: Vec2, b: Vec2) -> f32 {
    let along = b - a;
    let length_squared = along.length_squared();
    if length_squared == 0.0 {
        return point.distance(a);
    }
    let t = ((point - a).dot(along) / length_squared).clamp(0.0, 1.0);
    point.distance(a + along * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looking straight down, one world unit per pixel, origin at the screen's centre.
    fn top_down(point: Vec3) -> Option<Vec2> {
        Some(Vec2::new(point.x + 640.0, point.z + 360.0))
    }

    #[test]
    fn a_click_on_a_node_selects_it() {
        let geometry = crate::testing::net3_geometry();
        let node = geometry.find_node("Lake").unwrap();
        let at = top_down(geometry.nodes[node].position).unwrap() + Vec2::new(2.0, -1.0);
        assert_eq!(pick(at, &geometry, top_down), Some(Selection::Node(node)));
    }

    #[test]
    fn a_click_on_a_pipe_between_nodes_selects_the_pipe() {
        let geometry = crate::testing::net3_geometry();
        // The longest single-segment pipe: its middle is far from every node.
        let (index, link) = geometry
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.points.len() == 2)
            .max_by(|a, b| {
                let length = |l: &crate::geometry::LinkGeometry| l.points[0].distance(l.points[1]);
                length(a.1).total_cmp(&length(b.1))
            })
            .unwrap();
        let (middle, _) = link.point_along(0.5);
        let at = top_down(middle).unwrap();
        assert_eq!(pick(at, &geometry, top_down), Some(Selection::Link(index)));
    }

    #[test]
    fn a_click_on_nothing_selects_nothing() {
        let geometry = crate::testing::net3_geometry();
        assert_eq!(pick(Vec2::new(-5000.0, -5000.0), &geometry, top_down), None);
        assert_eq!(pick(Vec2::ZERO, &geometry, |_| None), None);
    }
}
