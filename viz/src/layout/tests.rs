//! Tests of the layout: kept coordinates, computed and completed layouts, determinism.
use super::*;
use hydraulics::generate::{grid, GridSpec};
use std::path::Path;
use std::time::Instant;

fn net3() -> Network {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/networks/Net3.inp");
    hydraulics::read_file(&path).unwrap()
}

fn strip(mut network: Network, keep: impl Fn(usize) -> bool) -> Network {
    for (index, node) in network.nodes.iter_mut().enumerate() {
        if !keep(index) {
            node.coordinates = None;
        }
    }
    network
}

/// The coordinates of a network that has them all.
fn drawn(network: &Network) -> Vec<(f64, f64)> {
    let coordinates = network.nodes.iter().map(|n| n.coordinates.unwrap());
    coordinates.collect()
}

fn pipes(network: &Network) -> Vec<(usize, usize, f64)> {
    let pipes = network.links.iter().filter_map(|link| match &link.kind {
        LinkKind::Pipe(pipe) => Some((link.from, link.to, pipe.length)),
        _ => None,
    });
    pipes.collect()
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn pair_distances(points: &[(f64, f64)]) -> Vec<f64> {
    let pairs = (0..points.len()).flat_map(|i| (0..i).map(move |j| (i, j)));
    pairs.map(|(i, j)| distance(points[i], points[j])).collect()
}

/// Straight length over pipe length of every pipe, times `units_per_length`.
fn pipe_ratios(network: &Network, points: &[(f64, f64)], units_per_length: f64) -> Vec<f64> {
    let ratios = pipes(network)
        .into_iter()
        .map(|(from, to, length)| distance(points[from], points[to]) / (length * units_per_length));
    sorted(ratios.collect())
}

#[test]
fn coordinates_of_the_file_are_returned_as_they_are() {
    let network = net3();
    let (points, source) = node_positions(&network);
    assert_eq!(source, LayoutSource::FromFile);
    assert_eq!(points, drawn(&network));
}

#[test]
fn net3_without_coordinates_is_spread_out_with_neighbours_near() {
    let network = strip(net3(), |_| false);
    let (points, source) = node_positions(&network);
    assert_eq!(source, LayoutSource::Computed);
    assert_eq!(points.len(), network.nodes.len());
    let lengths = sorted(pipes(&network).iter().map(|p| p.2).collect());
    let median_pipe = lengths[lengths.len() / 2];
    let closest = pair_distances(&points)
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    assert!(closest > 0.05 * median_pipe, "{closest} vs {median_pipe}");
    let ratios = pipe_ratios(&network, &points, 1.0);
    let median_ratio = ratios[ratios.len() / 2];
    assert!((0.5..2.0).contains(&median_ratio), "{median_ratio}");
    let links: Vec<f64> = pipes(&network)
        .iter()
        .map(|&(from, to, _)| distance(points[from], points[to]))
        .collect();
    // Compared with the map drawn for Net3 (its long supply mains make the mean larger).
    let file = drawn(&net3());
    let drawn_links: Vec<f64> = pipes(&network)
        .iter()
        .map(|&(from, to, _)| distance(file[from], file[to]))
        .collect();
    let locality = mean(&links) / mean(&pair_distances(&points));
    let drawn_locality = mean(&drawn_links) / mean(&pair_distances(&file));
    assert!(locality <= drawn_locality, "{locality} vs {drawn_locality}");
    let typical = sorted(links)[pipes(&network).len() / 2] / mean(&pair_distances(&points));
    assert!(
        typical < 0.1,
        "median link / mean pair distance = {typical}"
    );
}

#[test]
fn grid_without_coordinates_comes_back_as_a_grid() {
    let original = grid(&GridSpec::new(400)).unwrap();
    let network = strip(original.clone(), |_| false);
    let (points, source) = node_positions(&network);
    assert_eq!(source, LayoutSource::Computed);
    let ratios = pipe_ratios(&network, &points, 1.0);
    let (low, high) = (ratios[ratios.len() / 20], ratios[ratios.len() * 19 / 20]);
    assert!(
        low > 0.5 && high < 2.0,
        "5% to 95% of link ratios: {low} to {high}"
    );
    // Distances between all pairs follow those of the true grid: nothing folded over.
    let file = drawn(&original);
    let (truth, laid_out) = (pair_distances(&file), pair_distances(&points));
    let (mean_truth, mean_laid_out) = (mean(&truth), mean(&laid_out));
    let (mut covariance, mut var_truth, mut var_laid_out) = (0.0, 0.0, 0.0);
    for (t, l) in truth.iter().zip(&laid_out) {
        covariance += (t - mean_truth) * (l - mean_laid_out);
        var_truth += (t - mean_truth).powi(2);
        var_laid_out += (l - mean_laid_out).powi(2);
    }
    let correlation = covariance / (var_truth * var_laid_out).sqrt();
    assert!(
        correlation > 0.95,
        "correlation with the true grid {correlation}"
    );
}

/// Coordinates per length unit of the file, from its pipes with both ends placed.
fn file_scale(network: &Network) -> f64 {
    let ratios = pipes(network).into_iter().filter_map(|(from, to, length)| {
        let (a, b) = (
            network.nodes[from].coordinates?,
            network.nodes[to].coordinates?,
        );
        Some(distance(a, b) / length)
    });
    let ratios = sorted(ratios.collect());
    ratios[ratios.len() / 2]
}

#[test]
fn partial_coordinates_are_kept_and_the_rest_placed_among_neighbours() {
    let network = strip(net3(), |index| index % 3 != 0);
    let missing = network
        .nodes
        .iter()
        .filter(|n| n.coordinates.is_none())
        .count();
    let (points, source) = node_positions(&network);
    assert_eq!(source, LayoutSource::Completed { placed: missing });
    for (node, point) in network.nodes.iter().zip(&points) {
        if let Some(file) = node.coordinates {
            assert_eq!(file, *point);
        }
    }
    assert!(pair_distances(&points).into_iter().all(|d| d > 0.0));
    let scale = file_scale(&network);
    let touching_placed: Vec<f64> = pipe_ratios(&network, &points, scale)
        .into_iter()
        .zip(pipes(&network))
        .filter(|(_, (from, to, _))| from % 3 == 0 || to % 3 == 0)
        .map(|(ratio, _)| ratio)
        .collect();
    let median_ratio = sorted(touching_placed.clone())[touching_placed.len() / 2];
    assert!((0.3..3.0).contains(&median_ratio), "{median_ratio}");
}

#[test]
fn component_without_coordinates_is_laid_out_beside_the_others() {
    let network = net3();
    let (_, _, file_max_x, _) = bounding_box(network.nodes.iter().filter_map(|n| n.coordinates));
    let island = strip(grid(&GridSpec::new(25)).unwrap(), |_| false);
    let (network, first) = beside(network, &island);
    let (points, source) = node_positions(&network);
    let placed = island.nodes.len();
    assert_eq!(source, LayoutSource::Completed { placed });
    assert!(points[first..].iter().all(|&(x, _)| x > file_max_x));
    let scale = file_scale(&network);
    let ratios = pipe_ratios(&island, &points[first..], scale);
    assert!(ratios.iter().all(|r| (0.3..3.0).contains(r)), "{ratios:?}");
}

/// `second`'s nodes and links appended to `first`'s; where `second`'s nodes start.
fn beside(mut first: Network, second: &Network) -> (Network, usize) {
    let start = first.nodes.len();
    first.nodes.extend(second.nodes.iter().cloned());
    first
        .links
        .extend(second.links.iter().cloned().map(|mut link| {
            (link.from, link.to) = (link.from + start, link.to + start);
            link
        }));
    (first, start)
}

#[test]
fn components_are_laid_out_apart_largest_first() {
    let small = strip(net3(), |_| false);
    let large = strip(grid(&GridSpec::new(400)).unwrap(), |_| false);
    let (network, start) = beside(small, &large);
    let (points, source) = node_positions(&network);
    assert_eq!(source, LayoutSource::Computed);
    let (small_box, large_box) = (
        bounding_box(points[..start].iter().copied()),
        bounding_box(points[start..].iter().copied()),
    );
    let apart = small_box.0 > large_box.2
        || large_box.0 > small_box.2
        || small_box.1 > large_box.3
        || large_box.1 > small_box.3;
    assert!(apart, "{small_box:?} overlaps {large_box:?}");
    // Rows fill left to right, then downwards.
    let first = large_box.2 < small_box.0 || large_box.1 > small_box.3;
    assert!(first, "the larger component comes first");
    // Each keeps the layout it gets on its own, moved.
    let (alone, _) = node_positions(&large);
    let shift = (points[start].0 - alone[0].0, points[start].1 - alone[0].1);
    for (moved, own) in points[start..].iter().zip(&alone) {
        assert!(distance(*moved, (own.0 + shift.0, own.1 + shift.1)) < 1e-6);
    }
}

#[test]
fn layouts_are_deterministic() {
    for network in [
        strip(net3(), |_| false),
        strip(net3(), |index| index % 4 != 0),
        strip(grid(&GridSpec::new(900)).unwrap(), |_| false),
    ] {
        assert_eq!(node_positions(&network), node_positions(&network));
    }
}

#[test]
#[ignore = "timing: cargo test -p viz --release --lib layout -- --ignored --nocapture"]
fn lays_out_100k_nodes_in_seconds() {
    let network = strip(grid(&GridSpec::new(100_000)).unwrap(), |_| false);
    let started = Instant::now();
    let (points, source) = node_positions(&network);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "layout of {} nodes without coordinates: {seconds:.2} s",
        points.len()
    );
    assert_eq!(source, LayoutSource::Computed);
    let ratios = pipe_ratios(&network, &points, 1.0);
    let median_ratio = ratios[ratios.len() / 2];
    assert!((0.5..2.0).contains(&median_ratio), "{median_ratio}");
}
