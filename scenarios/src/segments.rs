//! Isolation segments: what stays connected when every isolation valve is closed, and what a
//! crew closes (and who loses water) to isolate a broken pipe.
//!
//! An isolation valve sits on a link next to one of its end nodes; closed, it separates the
//! link from that node. Nodes and links are joined into segments through every link end that
//! has no valve. Closing a segment closes every valve on its boundary; the links inside it and
//! the links those valves sit on carry no flow, and every junction that no reservoir or tank
//! reaches any more (the segment's own and any beyond it) is cut off.

use hydraulics::model::{LinkKind, Network, NodeKind, StatusSpec};
use hydraulics::topology::unsupplied_nodes;
use serde::Serialize;

/// An isolation valve on `link`, at its `node` end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IsolationValve {
    pub link: usize,
    pub node: usize,
}

/// Where the isolation valves are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValvePlacement {
    /// The model's own valves (PRV, TCV, ...): closing one separates its two end nodes.
    ModelValves,
    /// One valve at each end of every pipe (every pipe is its own segment), for models that
    /// carry no isolation valves.
    PipeEnds,
}

/// The isolation valves of `network` under `placement`.
pub fn place_valves(network: &Network, placement: ValvePlacement) -> Vec<IsolationValve> {
    let mut valves = Vec::new();
    for (index, link) in network.links.iter().enumerate() {
        match (placement, &link.kind) {
            (ValvePlacement::ModelValves, LinkKind::Valve(_)) => valves.push(IsolationValve {
                link: index,
                node: link.from,
            }),
            (ValvePlacement::PipeEnds, LinkKind::Pipe(_)) => {
                valves.push(IsolationValve {
                    link: index,
                    node: link.from,
                });
                valves.push(IsolationValve {
                    link: index,
                    node: link.to,
                });
            }
            _ => {}
        }
    }
    valves
}

impl IsolationValve {
    /// `link@node`: the valve on that link, at that node's end.
    pub fn name(&self, network: &Network) -> String {
        format!(
            "{}@{}",
            network.links[self.link].id, network.nodes[self.node].id
        )
    }
}

/// The segments of a network: each node's and each link's segment number.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub valves: Vec<IsolationValve>,
    pub of_node: Vec<usize>,
    pub of_link: Vec<usize>,
    pub count: usize,
}

/// What isolating a pipe takes and costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Isolation {
    /// Segments closed (one, or two when a valve fails to close).
    pub segments: Vec<usize>,
    /// Valves to operate (indices into [`Segments::valves`]), in order.
    pub valves: Vec<usize>,
    /// The valve that failed to close, if any.
    pub failed_valve: Option<usize>,
    /// Links that carry no flow while isolated.
    pub closed_links: Vec<usize>,
    /// Junctions no source reaches while isolated, in index order.
    pub cut_off: Vec<usize>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Finds the segments of `network` with these valves.
pub fn segments(network: &Network, valves: Vec<IsolationValve>) -> Segments {
    let nodes = network.nodes.len();
    let mut parent: Vec<usize> = (0..nodes + network.links.len()).collect();
    let mut has_valve = std::collections::HashSet::new();
    for valve in &valves {
        has_valve.insert((valve.link, valve.node));
    }
    for (index, link) in network.links.iter().enumerate() {
        for end in [link.from, link.to] {
            if !has_valve.contains(&(index, end)) {
                let (a, b) = (find(&mut parent, nodes + index), find(&mut parent, end));
                // The smaller root wins, so numbering follows element order.
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut number = vec![usize::MAX; parent.len()];
    let mut count = 0;
    let mut of_element = Vec::with_capacity(parent.len());
    for element in 0..parent.len() {
        let root = find(&mut parent, element);
        if number[root] == usize::MAX {
            number[root] = count;
            count += 1;
        }
        of_element.push(number[root]);
    }
    let of_link = of_element.split_off(nodes);
    Segments {
        valves,
        of_node: of_element,
        of_link,
        count,
    }
}

impl Segments {
    /// Isolating `link`: its segment closed with every valve working.
    pub fn isolate(&self, network: &Network, link: usize) -> Isolation {
        self.close(network, &[self.of_link[link]], None)
    }

    /// Isolating `link` when one of the valves around its segment fails to close (N-1): one
    /// isolation per boundary valve, the segment beyond that valve closed too.
    pub fn isolate_with_failure(&self, network: &Network, link: usize) -> Vec<Isolation> {
        let own = self.of_link[link];
        self.boundary(&[own])
            .into_iter()
            .map(|valve| {
                let v = self.valves[valve];
                let other = if self.of_node[v.node] == own {
                    self.of_link[v.link]
                } else {
                    self.of_node[v.node]
                };
                self.close(network, &[own, other], Some(valve))
            })
            .collect()
    }

    /// Valves with exactly one side in `closed`.
    fn boundary(&self, closed: &[usize]) -> Vec<usize> {
        (0..self.valves.len())
            .filter(|&i| {
                let v = self.valves[i];
                closed.contains(&self.of_link[v.link]) != closed.contains(&self.of_node[v.node])
            })
            .collect()
    }

    fn close(&self, network: &Network, closed: &[usize], failed: Option<usize>) -> Isolation {
        let valves = self.boundary(closed);
        let mut closed_links: Vec<usize> = (0..network.links.len())
            .filter(|&l| closed.contains(&self.of_link[l]))
            .chain(valves.iter().map(|&v| self.valves[v].link))
            .collect();
        closed_links.sort_unstable();
        closed_links.dedup();
        let mut shut = network.clone();
        for &link in &closed_links {
            shut.links[link].initial_status = Some(StatusSpec::Closed);
        }
        let cut_off = unsupplied_nodes(&shut)
            .into_iter()
            .filter(|&n| matches!(network.nodes[n].kind, NodeKind::Junction(_)))
            .collect();
        let mut segments = closed.to_vec();
        segments.dedup();
        Isolation {
            segments,
            valves,
            failed_valve: failed,
            closed_links,
            cut_off,
        }
    }
}

/// Base demand (times the demand multiplier) of the junctions `nodes`, flow units.
pub fn base_demand(network: &Network, nodes: &[usize]) -> f64 {
    let demands = nodes.iter().flat_map(|&n| match &network.nodes[n].kind {
        NodeKind::Junction(j) => j.demands.as_slice(),
        _ => &[],
    });
    crate::impact::sum_of(demands.map(|d| d.base)) * network.options.demand_multiplier
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydraulics::read_str;

    /// R -1- A =V1= B -2- C =V2= D -3- E, and B -4- F; V1 and V2 are TCVs (A->B, C->D).
    const VALVED: &str = "
[JUNCTIONS]
 A 0 1
 B 0 2
 C 0 3
 D 0 4
 E 0 5
 F 0 6
[RESERVOIRS]
 R 100
[PIPES]
 1 R A 100 10 100
 2 B C 100 10 100
 3 D E 100 10 100
 4 B F 100 10 100
[VALVES]
 V1 A B 10 TCV 0
 V2 C D 10 TCV 0
[END]
";

    fn ids(net: &Network, nodes: &[usize]) -> Vec<String> {
        nodes.iter().map(|&n| net.nodes[n].id.clone()).collect()
    }

    fn link_ids(net: &Network, links: &[usize]) -> Vec<String> {
        links.iter().map(|&l| net.links[l].id.clone()).collect()
    }

    #[test]
    fn model_valves_split_the_chain_into_three_segments() {
        let net = read_str(VALVED, "valved.inp").unwrap();
        let segs = segments(&net, place_valves(&net, ValvePlacement::ModelValves));
        assert_eq!(segs.count, 3);
        let seg = |id: &str| segs.of_node[net.node_index(id).unwrap()];
        let link_seg = |id: &str| segs.of_link[net.link_index(id).unwrap()];
        // {R, 1, A}, {V1, B, 2, C, 4, F}, {V2, D, 3, E}
        assert_eq!(seg("R"), seg("A"));
        assert_eq!(link_seg("1"), seg("A"));
        assert_eq!(link_seg("V1"), seg("B"));
        assert!([seg("C"), seg("F"), link_seg("2"), link_seg("4")]
            .iter()
            .all(|&s| s == seg("B")));
        assert_eq!(link_seg("V2"), seg("D"));
        assert_eq!(seg("E"), seg("D"));
        assert_ne!(seg("A"), seg("B"));
        assert_ne!(seg("B"), seg("D"));
    }

    #[test]
    fn isolating_a_pipe_closes_its_segment_and_cuts_off_what_lies_beyond() {
        let net = read_str(VALVED, "valved.inp").unwrap();
        let segs = segments(&net, place_valves(&net, ValvePlacement::ModelValves));
        let iso = segs.isolate(&net, net.link_index("2").unwrap());
        let operated: Vec<usize> = iso.valves.iter().map(|&v| segs.valves[v].link).collect();
        assert_eq!(link_ids(&net, &operated), ["V1", "V2"]);
        assert_eq!(link_ids(&net, &iso.closed_links), ["2", "4", "V1", "V2"]);
        assert_eq!(ids(&net, &iso.cut_off), ["B", "C", "D", "E", "F"]);
        // Demands 2 + 3 + 4 + 5 + 6.
        assert_eq!(base_demand(&net, &iso.cut_off), 20.0);
    }

    #[test]
    fn a_valve_that_fails_to_close_merges_the_next_segment() {
        let net = read_str(VALVED, "valved.inp").unwrap();
        let segs = segments(&net, place_valves(&net, ValvePlacement::ModelValves));
        let failures = segs.isolate_with_failure(&net, net.link_index("2").unwrap());
        assert_eq!(failures.len(), 2);
        // V1 stuck open: the reservoir's segment must close too, every junction is cut off.
        let v1 = &failures[0];
        assert_eq!(
            segs.valves[v1.failed_valve.unwrap()].link,
            net.link_index("V1").unwrap()
        );
        let operated: Vec<usize> = v1.valves.iter().map(|&v| segs.valves[v].link).collect();
        assert_eq!(link_ids(&net, &operated), ["V2"]);
        assert_eq!(ids(&net, &v1.cut_off), ["A", "B", "C", "D", "E", "F"]);
        // V2 stuck open: the downstream segment is closed with it; A keeps its water.
        let v2 = &failures[1];
        let operated: Vec<usize> = v2.valves.iter().map(|&v| segs.valves[v].link).collect();
        assert_eq!(link_ids(&net, &operated), ["V1"]);
        assert_eq!(ids(&net, &v2.cut_off), ["B", "C", "D", "E", "F"]);
    }

    /// A loop R -1- A -2- B -3- C -4- A with a branch C -5- D.
    const LOOP: &str = "
[JUNCTIONS]
 A 0 1
 B 0 1
 C 0 1
 D 0 1
[RESERVOIRS]
 R 100
[PIPES]
 1 R A 100 10 100
 2 A B 100 10 100
 3 B C 100 10 100
 4 C A 100 10 100
 5 C D 100 10 100
[END]
";

    #[test]
    fn valves_at_pipe_ends_isolate_single_pipes() {
        let net = read_str(LOOP, "loop.inp").unwrap();
        let segs = segments(&net, place_valves(&net, ValvePlacement::PipeEnds));
        // Five pipe segments and five node segments.
        assert_eq!(segs.count, 10);
        // Inside the loop nobody loses water; the branch's pipe cuts off D; the main cuts
        // off all.
        let cut = |id: &str| {
            ids(
                &net,
                &segs.isolate(&net, net.link_index(id).unwrap()).cut_off,
            )
        };
        assert!(cut("3").is_empty());
        assert_eq!(cut("5"), ["D"]);
        assert_eq!(cut("1"), ["A", "B", "C", "D"]);
        let iso = segs.isolate(&net, net.link_index("2").unwrap());
        assert_eq!(iso.valves.len(), 2);
        assert_eq!(link_ids(&net, &iso.closed_links), ["2"]);
        // A valve of pipe 2 stuck open: the node behind it closes too, and so do the valves
        // on its other pipes.
        let failures = segs.isolate_with_failure(&net, net.link_index("2").unwrap());
        let at_a = failures
            .iter()
            .find(|f| segs.valves[f.failed_valve.unwrap()].node == net.node_index("A").unwrap())
            .unwrap();
        assert_eq!(ids(&net, &at_a.cut_off), ["A", "B", "C", "D"]);
        assert_eq!(link_ids(&net, &at_a.closed_links), ["1", "2", "4"]);
    }
}
