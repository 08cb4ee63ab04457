//! Map positions of a network's nodes for the viewer: the file's coordinates where it has them,
//! completed or computed where it has not.
//!
//! A computed layout starts from pivot MDS (Brandes and Pich, 2006) on shortest-path distances
//! along the links, which keeps the network's overall shape, then a few rounds of
//! Fruchterman-Reingold with a uniform grid separate the nodes MDS put on top of each other.
//! Everything is sequential and seeded from constants: a network always gets the same picture.

use hydraulics::generate::SplitMix64;
use hydraulics::model::{Link, LinkKind};
use hydraulics::Network;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::f64::consts::{PI, TAU};

/// Where the viewer's node positions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutSource {
    /// Every node has coordinates in the file.
    FromFile,
    /// The file's coordinates, completed: `placed` nodes had none and were placed near their
    /// neighbours, or computed in components without any coordinates.
    Completed { placed: usize },
    /// Fewer than half of the nodes have coordinates: every position was computed.
    Computed,
}

/// Landmarks of pivot MDS; more barely change the picture of a water network.
const PIVOTS: usize = 12;
/// Length given to pumps and valves, as a fraction of the median pipe length: they join nodes
/// that stand next to each other.
const SHORT_LINK_FRACTION: f64 = 0.01;
/// Node moves of the refinement, shared out over rounds: a small network gets more rounds
/// (up to `MAX_ROUNDS`) to untangle what MDS folded, a large one at least `MIN_ROUNDS`.
const REFINEMENT_MOVES: usize = 3_000_000;
const MIN_ROUNDS: usize = 30;
const MAX_ROUNDS: usize = 300;
/// Nodes of one grid cell a node is pushed away from in a round: bounds a round's cost where
/// MDS folded many nodes onto one spot.
const MAX_NODES_PER_CELL: usize = 32;
const SEED: u64 = 0x6c61_796f_7574;
const GOLDEN_FRACTION: f64 = 0.618_033_988_749_895;

/// A map position (x, y).
type Point = (f64, f64);

/// Map positions (x, y) of every node in network order, in the network's own coordinate units
/// when it has coordinates (in its length units when all were computed); what was done to get
/// them.
pub fn node_positions(network: &Network) -> (Vec<(f64, f64)>, LayoutSource) {
    let file: Vec<Option<Point>> = network
        .nodes
        .iter()
        .map(|node| {
            node.coordinates
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        })
        .collect();
    let with_coordinates = file.iter().flatten().count();
    if with_coordinates == file.len() {
        return (file.into_iter().flatten().collect(), LayoutSource::FromFile);
    }
    let graph = Graph::new(network);
    if with_coordinates * 2 >= file.len() {
        let placed = file.len() - with_coordinates;
        (complete(&graph, file), LayoutSource::Completed { placed })
    } else {
        let mut positions = vec![(0.0, 0.0); graph.node_count()];
        lay_out_components(&graph, &components(&graph), &mut positions);
        (positions, LayoutSource::Computed)
    }
}

/// The links as adjacency lists in compressed rows, each with its length along the network.
struct Graph {
    offsets: Vec<usize>,
    adjacent: Vec<(usize, f64)>,
    median_length: f64,
}

impl Graph {
    fn new(network: &Network) -> Self {
        let node_count = network.nodes.len();
        let pipe_length = |link: &Link| match &link.kind {
            LinkKind::Pipe(pipe) if pipe.length.is_finite() && pipe.length > 0.0 => {
                Some(pipe.length)
            }
            _ => None,
        };
        let median_pipe = median(network.links.iter().filter_map(pipe_length).collect());
        let short = median_pipe.unwrap_or(1.0) * SHORT_LINK_FRACTION;
        let edges: Vec<(usize, usize, f64)> = network
            .links
            .iter()
            .filter(|link| link.from != link.to && link.from.max(link.to) < node_count)
            .map(|link| (link.from, link.to, pipe_length(link).unwrap_or(short)))
            .collect();
        let mut offsets = vec![0; node_count + 1];
        for &(from, to, _) in &edges {
            offsets[from + 1] += 1;
            offsets[to + 1] += 1;
        }
        for node in 0..node_count {
            offsets[node + 1] += offsets[node];
        }
        let mut next = offsets.clone();
        let mut adjacent = vec![(0, 0.0); offsets[node_count]];
        for &(from, to, length) in &edges {
            adjacent[next[from]] = (to, length);
            next[from] += 1;
            adjacent[next[to]] = (from, length);
            next[to] += 1;
        }
        let median_length = median(edges.iter().map(|edge| edge.2).collect()).unwrap_or(1.0);
        Self {
            offsets,
            adjacent,
            median_length,
        }
    }

    fn node_count(&self) -> usize {
        self.offsets.len() - 1
    }

    fn neighbours(&self, node: usize) -> &[(usize, f64)] {
        &self.adjacent[self.offsets[node]..self.offsets[node + 1]]
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let middle = values.len() / 2;
    let (_, value, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    Some(*value)
}

/// Connected components, each in breadth-first order from its lowest-numbered node.
fn components(graph: &Graph) -> Vec<Vec<usize>> {
    let mut seen = vec![false; graph.node_count()];
    let mut found = Vec::new();
    for start in 0..graph.node_count() {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut members = vec![start];
        let mut next = 0;
        while next < members.len() {
            for &(neighbour, _) in graph.neighbours(members[next]) {
                if !seen[neighbour] {
                    seen[neighbour] = true;
                    members.push(neighbour);
                }
            }
            next += 1;
        }
        found.push(members);
    }
    found
}

/// Keeps the file's coordinates; places nodes without them outward from the placed ones, and
/// lays out components that have none beside the placed part.
fn complete(graph: &Graph, file: Vec<Option<Point>>) -> Vec<Point> {
    let units_per_length = coordinate_scale(graph, &file);
    let mut placed = file;
    let mut queued: Vec<bool> = placed.iter().map(Option::is_some).collect();
    let mut queue: VecDeque<usize> = (0..placed.len()).filter(|&n| queued[n]).collect();
    while let Some(node) = queue.pop_front() {
        if placed[node].is_none() {
            placed[node] = Some(position_among_neighbours(
                graph,
                &placed,
                node,
                units_per_length,
            ));
        }
        for &(neighbour, _) in graph.neighbours(node) {
            if !queued[neighbour] {
                queued[neighbour] = true;
                queue.push_back(neighbour);
            }
        }
    }
    let (min_x, _, max_x, max_y) = bounding_box(placed.iter().flatten().copied());
    let orphans: Vec<Vec<usize>> = components(graph)
        .into_iter()
        .filter(|members| placed[members[0]].is_none())
        .collect();
    let mut positions: Vec<Point> = placed.iter().map(|p| p.unwrap_or_default()).collect();
    if !orphans.is_empty() {
        lay_out_components(graph, &orphans, &mut positions);
        let computed = orphans.iter().flatten().map(|&node| positions[node]);
        let (orphan_min_x, _, _, orphan_max_y) = bounding_box(computed);
        let gap = 2.0 * graph.median_length * units_per_length;
        let (left, top) = if min_x.is_finite() {
            (max_x + gap, max_y)
        } else {
            (0.0, 0.0)
        };
        for &node in orphans.iter().flatten() {
            let (x, y) = positions[node];
            positions[node] = (
                left + (x - orphan_min_x) * units_per_length,
                top + (y - orphan_max_y) * units_per_length,
            );
        }
    }
    positions
}

/// Coordinate units per length unit: the median over links with both ends placed of their
/// straight length over their length, else the placed extent spread over the placed nodes.
fn coordinate_scale(graph: &Graph, placed: &[Option<Point>]) -> f64 {
    let mut ratios = Vec::new();
    for (node, position) in placed.iter().enumerate() {
        let Some(a) = position else { continue };
        for &(neighbour, length) in graph.neighbours(node) {
            if let (true, Some(b)) = (neighbour > node, placed[neighbour]) {
                ratios.push(distance(*a, b) / length);
            }
        }
    }
    let scale = median(ratios).unwrap_or_else(|| {
        let (min_x, min_y, max_x, max_y) = bounding_box(placed.iter().flatten().copied());
        let count = placed.iter().flatten().count() as f64;
        distance((min_x, min_y), (max_x, max_y)) / count.sqrt() / graph.median_length
    });
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    }
}

/// A node without coordinates: one link away from a single placed neighbour, continuing away
/// from that neighbour's own placed neighbours; else at the mean of its placed neighbours.
/// Turned by an angle of its own so that siblings and symmetric cases never coincide.
fn position_among_neighbours(
    graph: &Graph,
    placed: &[Option<Point>],
    node: usize,
    units_per_length: f64,
) -> Point {
    let anchors: Vec<(usize, Point, f64)> = graph
        .neighbours(node)
        .iter()
        .filter_map(|&(neighbour, length)| placed[neighbour].map(|p| (neighbour, p, length)))
        .collect();
    let own_angle = (node as f64 * GOLDEN_FRACTION).fract();
    if let [(anchor_node, anchor, length)] = anchors[..] {
        let behind: Vec<Point> = graph
            .neighbours(anchor_node)
            .iter()
            .filter_map(|&(neighbour, _)| placed[neighbour])
            .collect();
        let away = match centroid(&behind) {
            Some(back) => {
                (anchor.1 - back.1).atan2(anchor.0 - back.0) + (own_angle - 0.5) * PI / 3.0
            }
            None => own_angle * TAU,
        };
        let (dx, dy) = unit(away);
        let reach = length * units_per_length;
        return (anchor.0 + dx * reach, anchor.1 + dy * reach);
    }
    let points: Vec<Point> = anchors.iter().map(|anchor| anchor.1).collect();
    let mean = centroid(&points).unwrap_or_default();
    let mean_length = anchors.iter().map(|anchor| anchor.2).sum::<f64>() / points.len() as f64;
    let (dx, dy) = unit(own_angle * TAU);
    let offset = 0.05 * mean_length * units_per_length;
    (mean.0 + dx * offset, mean.1 + dy * offset)
}

fn centroid(points: &[Point]) -> Option<Point> {
    let count = points.len() as f64;
    let sum = points
        .iter()
        .fold((0.0, 0.0), |(x, y), (px, py)| (x + px, y + py));
    (!points.is_empty()).then(|| (sum.0 / count, sum.1 / count))
}

fn unit(angle: f64) -> Point {
    (angle.cos(), angle.sin())
}

fn distance(a: Point, b: Point) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

/// (min x, min y, max x, max y); infinite bounds when there is no point.
fn bounding_box(points: impl Iterator<Item = Point>) -> (f64, f64, f64, f64) {
    points.fold(
        (
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), (x, y)| (a.min(x), b.min(y), c.max(x), d.max(y)),
    )
}

/// Lays out each component in length units and packs them in rows, largest first.
fn lay_out_components(graph: &Graph, components: &[Vec<usize>], positions: &mut [Point]) {
    let mut local = vec![usize::MAX; graph.node_count()];
    let mut laid_out: Vec<(&[usize], Vec<Point>)> = Vec::with_capacity(components.len());
    for members in components {
        for (index, &node) in members.iter().enumerate() {
            local[node] = index;
        }
        laid_out.push((members, lay_out_component(graph, members, &local)));
    }
    laid_out.sort_by_key(|(members, _)| Reverse(members.len()));
    let gap = 2.0 * graph.median_length;
    let boxes: Vec<_> = laid_out
        .iter()
        .map(|(_, points)| bounding_box(points.iter().copied()))
        .collect();
    let area: f64 = boxes
        .iter()
        .map(|b| (b.2 - b.0 + gap) * (b.3 - b.1 + gap))
        .sum();
    let row_width = boxes.iter().map(|b| b.2 - b.0).fold(area.sqrt(), f64::max);
    let (mut left, mut top, mut row_height) = (0.0, 0.0, 0.0_f64);
    for ((members, points), (min_x, min_y, max_x, max_y)) in laid_out.iter().zip(boxes) {
        if left > 0.0 && left + (max_x - min_x) > row_width {
            (left, top, row_height) = (0.0, top - row_height - gap, 0.0);
        }
        for (&node, &(x, y)) in members.iter().zip(points) {
            positions[node] = (left + x - min_x, top - (max_y - y));
        }
        left += max_x - min_x + gap;
        row_height = row_height.max(max_y - min_y);
    }
}

/// One connected component in length units: pivot MDS, then refinement.
fn lay_out_component(graph: &Graph, members: &[usize], local: &[usize]) -> Vec<Point> {
    if members.len() == 1 {
        return vec![(0.0, 0.0)];
    }
    let pivot_distances = pivot_distances(graph, members, local);
    let mut points = pivot_mds(&pivot_distances, members.len());
    let spacing = scale_to_lengths(graph, members, local, &mut points);
    refine(graph, members, local, &mut points, spacing);
    scale_to_lengths(graph, members, local, &mut points);
    points
}

/// Shortest distances from up to `PIVOTS` pivots chosen farthest-first, one row per pivot.
fn pivot_distances(graph: &Graph, members: &[usize], local: &[usize]) -> Vec<Vec<f64>> {
    let from_first = dijkstra(graph, members, local, 0);
    let mut pivot = farthest(&from_first);
    let mut nearest_pivot = vec![f64::INFINITY; members.len()];
    let mut rows = Vec::with_capacity(PIVOTS);
    while rows.len() < PIVOTS.min(members.len()) {
        let row = dijkstra(graph, members, local, pivot);
        for (nearest, d) in nearest_pivot.iter_mut().zip(&row) {
            *nearest = nearest.min(*d);
        }
        rows.push(row);
        pivot = farthest(&nearest_pivot);
        if nearest_pivot[pivot] == 0.0 {
            break;
        }
    }
    rows
}

/// Index of the largest value, the first one among equals.
fn farthest(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// Distances along links from `source` (a local index) to every member of its component.
fn dijkstra(graph: &Graph, members: &[usize], local: &[usize], source: usize) -> Vec<f64> {
    let mut distances = vec![f64::INFINITY; members.len()];
    distances[source] = 0.0;
    // The bits of non-negative floats sort like the floats, and ties break on the index.
    let mut heap = BinaryHeap::from([Reverse((0_u64, source))]);
    while let Some(Reverse((bits, at))) = heap.pop() {
        let here = f64::from_bits(bits);
        if here > distances[at] {
            continue;
        }
        for &(neighbour, length) in graph.neighbours(members[at]) {
            let next = local[neighbour];
            let through = here + length;
            if through < distances[next] {
                distances[next] = through;
                heap.push(Reverse((through.to_bits(), next)));
            }
        }
    }
    distances
}

/// Pivot MDS: the double-centred squared distances to the pivots projected on the top two
/// eigenvectors of their k x k inner-product matrix.
fn pivot_mds(rows: &[Vec<f64>], count: usize) -> Vec<Point> {
    let mut centred: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| row.iter().map(|d| d * d).collect())
        .collect();
    let pivot_means: Vec<f64> = centred
        .iter()
        .map(|row: &Vec<f64>| row.iter().sum::<f64>() / count as f64)
        .collect();
    let grand_mean = pivot_means.iter().sum::<f64>() / rows.len() as f64;
    for node in 0..count {
        let node_mean = centred.iter().map(|row| row[node]).sum::<f64>() / rows.len() as f64;
        for (row, pivot_mean) in centred.iter_mut().zip(&pivot_means) {
            row[node] = -0.5 * (row[node] - pivot_mean - node_mean + grand_mean);
        }
    }
    let inner: Vec<Vec<f64>> = centred
        .iter()
        .map(|a| centred.iter().map(|b| dot(a, b)).collect())
        .collect();
    let (first, first_value) = top_eigenvector(&inner, None);
    let (second, second_value) = top_eigenvector(&inner, Some(&first));
    // Projections grow with the square of an eigenvalue of the pivots' inner products; MDS
    // coordinates with its square root. An axis with next to nothing along it (a path) is
    // rounding noise, better flat.
    let axis = |vector: &[f64], value: f64, node: usize| {
        let weight = if value > 1e-12 * first_value {
            value.powf(-0.25)
        } else {
            0.0
        };
        centred
            .iter()
            .zip(vector)
            .map(|(row, v)| row[node] * v)
            .sum::<f64>()
            * weight
    };
    (0..count)
        .map(|node| {
            (
                axis(&first, first_value, node),
                axis(&second, second_value, node),
            )
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Power iteration on a small symmetric matrix, orthogonal to `except`; (vector, eigenvalue).
fn top_eigenvector(matrix: &[Vec<f64>], except: Option<&[f64]>) -> (Vec<f64>, f64) {
    let mut random = SplitMix64::new(SEED);
    let mut vector: Vec<f64> = matrix.iter().map(|_| random.between(-1.0, 1.0)).collect();
    let mut value = 0.0;
    for _ in 0..200 {
        if let Some(other) = except {
            let along = dot(&vector, other);
            vector
                .iter_mut()
                .zip(other)
                .for_each(|(v, o)| *v -= along * o);
        }
        let norm = dot(&vector, &vector).sqrt();
        if norm == 0.0 {
            return (vector, 0.0);
        }
        vector.iter_mut().for_each(|v| *v /= norm);
        let product: Vec<f64> = matrix.iter().map(|row| dot(row, &vector)).collect();
        value = dot(&product, &vector);
        vector = product;
    }
    let norm = dot(&vector, &vector).sqrt().max(f64::MIN_POSITIVE);
    (vector.iter().map(|v| v / norm).collect(), value)
}

/// Scales the points so that the median link is as long as its length; returns the median
/// length of the component's links.
fn scale_to_lengths(
    graph: &Graph,
    members: &[usize],
    local: &[usize],
    points: &mut [Point],
) -> f64 {
    let mut ratios = Vec::new();
    let mut lengths = Vec::new();
    for (index, &node) in members.iter().enumerate() {
        for &(neighbour, length) in graph.neighbours(node) {
            if neighbour > node {
                ratios.push(distance(points[index], points[local[neighbour]]) / length);
                lengths.push(length);
            }
        }
    }
    let ratio = median(ratios).unwrap_or(1.0);
    if ratio.is_finite() && ratio > 0.0 {
        points
            .iter_mut()
            .for_each(|(x, y)| (*x, *y) = (*x / ratio, *y / ratio));
    }
    median(lengths).unwrap_or(1.0)
}

/// Fruchterman-Reingold rounds: links pull towards their length, nodes closer than `spacing`
/// push apart; each move is limited by a temperature that cools round after round.
fn refine(graph: &Graph, members: &[usize], local: &[usize], points: &mut [Point], spacing: f64) {
    let rounds = (REFINEMENT_MOVES / members.len()).clamp(MIN_ROUNDS, MAX_ROUNDS);
    let mut moves = vec![(0.0, 0.0); members.len()];
    for round in 0..rounds {
        let cells = CellGrid::new(points, spacing);
        for (index, step) in moves.iter_mut().enumerate() {
            let here = points[index];
            let (mut fx, mut fy) = cells.push_on(index, round, spacing);
            for &(neighbour, length) in graph.neighbours(members[index]) {
                let there = points[local[neighbour]];
                let (dx, dy) = (there.0 - here.0, there.1 - here.1);
                let d = dx.hypot(dy);
                if d > 0.0 {
                    let pull = (d - length) / d;
                    (fx, fy) = (fx + dx * pull, fy + dy * pull);
                }
            }
            *step = (fx, fy);
        }
        let temperature = 0.5 * spacing * (1.0 - round as f64 / rounds as f64);
        for (point, &(fx, fy)) in points.iter_mut().zip(&moves) {
            let size = fx.hypot(fy);
            if size > 0.0 {
                let limited = size.min(temperature) / size;
                (point.0, point.1) = (point.0 + fx * limited, point.1 + fy * limited);
            }
        }
    }
}

/// Points sorted into a uniform grid of square cells at least `spacing` wide, so that the
/// points nearer than `spacing` to one are in the 3 x 3 cells around its own: O(1) a point.
struct CellGrid {
    columns: usize,
    rows: usize,
    /// Where each cell's points start in `sorted`, and an end mark.
    starts: Vec<usize>,
    /// Cell of each point.
    cell_of: Vec<usize>,
    /// Position in `sorted` of each point.
    slot_of: Vec<usize>,
    /// The points in cell order, so that a cell's points are read contiguously.
    sorted: Vec<Point>,
}

impl CellGrid {
    fn new(points: &[Point], spacing: f64) -> Self {
        let (min_x, min_y, max_x, max_y) = bounding_box(points.iter().copied());
        let (width, height) = (max_x - min_x, max_y - min_y);
        // Cells wide enough that there are at most about 2n of them, whatever the shape.
        let most = 2.0 * points.len() as f64;
        let size = spacing
            .max(width / most)
            .max(height / most)
            .max((width * height / most).sqrt());
        let columns = (width / size) as usize + 1;
        let rows = (height / size) as usize + 1;
        let cell_of: Vec<usize> = points
            .iter()
            .map(|&(x, y)| {
                let column = (((x - min_x) / size) as usize).min(columns - 1);
                let row = (((y - min_y) / size) as usize).min(rows - 1);
                row * columns + column
            })
            .collect();
        let mut starts = vec![0_usize; columns * rows + 1];
        for &cell in &cell_of {
            starts[cell + 1] += 1;
        }
        for cell in 0..columns * rows {
            starts[cell + 1] += starts[cell];
        }
        let mut next = starts.clone();
        let mut slot_of = vec![0; points.len()];
        let mut sorted = vec![(0.0, 0.0); points.len()];
        for (index, &cell) in cell_of.iter().enumerate() {
            (slot_of[index], sorted[next[cell]]) = (next[cell], points[index]);
            next[cell] += 1;
        }
        Self {
            columns,
            rows,
            starts,
            cell_of,
            slot_of,
            sorted,
        }
    }

    /// The push of the points nearer than `spacing` on point `index`. A crowded cell is
    /// sampled, another slice each round, its pushes scaled up to the whole crowd's.
    fn push_on(&self, index: usize, round: usize, spacing: f64) -> Point {
        let slot = self.slot_of[index];
        let here = self.sorted[slot];
        let (row, column) = (
            self.cell_of[index] / self.columns,
            self.cell_of[index] % self.columns,
        );
        let (mut fx, mut fy) = (0.0, 0.0);
        for near_row in row.saturating_sub(1)..(row + 2).min(self.rows) {
            for near_column in column.saturating_sub(1)..(column + 2).min(self.columns) {
                let near = near_row * self.columns + near_column;
                let (first, crowd) = (self.starts[near], self.starts[near + 1] - self.starts[near]);
                let sampled = crowd.min(MAX_NODES_PER_CELL);
                let weight = crowd as f64 / sampled.max(1) as f64;
                let start = slot + round * MAX_NODES_PER_CELL;
                for other in (0..sampled).map(|k| first + (start + k) % crowd) {
                    let (dx, dy) = (here.0 - self.sorted[other].0, here.1 - self.sorted[other].1);
                    let d = dx.hypot(dy);
                    if other == slot || d >= spacing {
                        continue;
                    }
                    let push = weight * (spacing * spacing / d.max(1e-3 * spacing) - d);
                    let (ux, uy) = if d > 0.0 {
                        (dx / d, dy / d)
                    } else {
                        // Coincident points part along an angle of their pair, in opposite ways.
                        let (ux, uy) =
                            unit((slot.min(other) as f64 * GOLDEN_FRACTION).fract() * TAU);
                        if slot < other {
                            (ux, uy)
                        } else {
                            (-ux, -uy)
                        }
                    };
                    (fx, fy) = (fx + ux * push, fy + uy * push);
                }
            }
        }
        (fx, fy)
    }
}

#[cfg(test)]
mod tests;
