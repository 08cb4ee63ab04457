//! Network topology with petgraph: connected components and reachability from sources.
//!
//! Links are taken as undirected (a check valve still connects its end nodes). Queries may
//! leave out the links that are closed at the start of a simulation.

use crate::model::{Link, LinkKind, Network, NodeKind, PipeStatus, StatusSpec};
use petgraph::graph::{NodeIndex, UnGraph};
use petgraph::unionfind::UnionFind;
use petgraph::visit::Bfs;

/// Which links connect nodes in a topology query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Every link.
    All,
    /// Links that are not closed at the start (see [`is_initially_closed`]).
    InitiallyOpen,
}

/// `true` when the link starts closed: a `[STATUS]` CLOSED (or a zero pump speed there), or a
/// pipe written CLOSED in `[PIPES]` that `[STATUS]` does not reopen.
pub fn is_initially_closed(link: &Link) -> bool {
    match link.initial_status {
        Some(StatusSpec::Closed) => true,
        Some(StatusSpec::Open) => false,
        Some(StatusSpec::Value(speed)) => matches!(link.kind, LinkKind::Pump(_)) && speed == 0.0,
        None => matches!(&link.kind, LinkKind::Pipe(p) if p.status == PipeStatus::Closed),
    }
}

fn graph(net: &Network, links: Links) -> UnGraph<(), ()> {
    let mut g = UnGraph::with_capacity(net.nodes.len(), net.links.len());
    for _ in &net.nodes {
        g.add_node(());
    }
    let valid = |i: usize| i < net.nodes.len();
    for link in &net.links {
        let keep = links == Links::All || !is_initially_closed(link);
        if keep && valid(link.from) && valid(link.to) {
            g.add_edge(NodeIndex::new(link.from), NodeIndex::new(link.to), ());
        }
    }
    g
}

/// Connected components as lists of node indices, each sorted, ordered by their first node.
pub fn connected_components(net: &Network, links: Links) -> Vec<Vec<usize>> {
    let mut sets = UnionFind::<usize>::new(net.nodes.len());
    for edge in graph(net, links).raw_edges() {
        sets.union(edge.source().index(), edge.target().index());
    }
    let mut by_root: Vec<Option<usize>> = vec![None; net.nodes.len()];
    let mut components: Vec<Vec<usize>> = Vec::new();
    for node in 0..net.nodes.len() {
        let root = sets.find(node);
        match by_root[root] {
            Some(c) => components[c].push(node),
            None => {
                by_root[root] = Some(components.len());
                components.push(vec![node]);
            }
        }
    }
    components
}

/// Nodes that no reservoir or tank reaches through links open at the start, in index order.
pub fn unsupplied_nodes(net: &Network) -> Vec<usize> {
    let g = graph(net, Links::InitiallyOpen);
    let mut reached = vec![false; net.nodes.len()];
    for (i, node) in net.nodes.iter().enumerate() {
        if matches!(node.kind, NodeKind::Junction(_)) || reached[i] {
            continue;
        }
        let mut bfs = Bfs::new(&g, NodeIndex::new(i));
        while let Some(n) = bfs.next(&g) {
            reached[n.index()] = true;
        }
    }
    (0..net.nodes.len()).filter(|&i| !reached[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inp::read_str;

    const NET: &str = "
[JUNCTIONS]
 A 0 1
 B 0 1
 C 0 1
 D 0 1
 E 0 1
[RESERVOIRS]
 R 100
[PIPES]
 1 R A 100 10 100
 2 A B 100 10 100
 3 B C 100 10 100 0 CLOSED
 4 D E 100 10 100
 5 C D 100 10 100
[STATUS]
 5 CLOSED
[END]
";

    #[test]
    fn components_with_and_without_closed_links() {
        let net = read_str(NET, "t.inp").unwrap();
        assert_eq!(
            connected_components(&net, Links::All),
            vec![vec![0, 1, 2, 3, 4, 5]]
        );
        assert_eq!(
            connected_components(&net, Links::InitiallyOpen),
            vec![vec![0, 1, 5], vec![2], vec![3, 4]]
        );
    }

    #[test]
    fn nodes_cut_off_from_sources() {
        let net = read_str(NET, "t.inp").unwrap();
        assert_eq!(unsupplied_nodes(&net), vec![2, 3, 4]);
        let reopened = read_str(&NET.replace(" 5 CLOSED", " 3 OPEN"), "t.inp").unwrap();
        assert_eq!(unsupplied_nodes(&reopened), Vec::<usize>::new());
    }

    #[test]
    fn closed_states() {
        let net = read_str(NET, "t.inp").unwrap();
        let closed: Vec<bool> = net.links.iter().map(is_initially_closed).collect();
        assert_eq!(closed, vec![false, false, true, false, true]);
    }
}
