//! Multiple minimum (external) degree ordering, Liu's GENMMD as EPANET runs it to number the
//! junctions before factorizing.
//!
//! EPANET's answers on nearly singular networks (parts cut off from every source) are decided
//! by round-off, so the elimination order must be EPANET's to the last tie: this follows the
//! same quotient-graph algorithm, the same tie-breaking (degree lists are stacks, neighbours are
//! scanned in adjacency order) and EPANET's parameters (one elimination per degree update).
//!
//! The quotient graph is kept in place in one adjacency vector. Node numbers are 1-based and
//! signed there because the algorithm stores links to eliminated elements as negated node
//! numbers and uses 0 to end a shortened list.

/// Marks merged nodes and nodes outside the degree structure; larger than any tag reached.
const MAX_TAG: isize = isize::MAX;

/// Work arrays of the ordering, all indexed by 1-based node number.
struct MinimumDegree {
    xadj: Vec<usize>,
    adjncy: Vec<isize>,
    /// Head of the list of nodes of each degree.
    degree_head: Vec<isize>,
    /// Degree lists, forward: next node; negative once eliminated or merged.
    forward: Vec<isize>,
    /// Degree lists, backward: previous node, or minus the degree at the head of a list.
    backward: Vec<isize>,
    /// Size of each supernode (0 once merged into another).
    supernode_size: Vec<isize>,
    /// Temporary linked lists of nodes.
    next_in_list: Vec<isize>,
    marker: Vec<isize>,
    tag: isize,
}

/// Orders `neighbours.len()` nodes, each with its neighbours (0-based, no duplicates, no
/// self-loops) in the order EPANET lists them; returns the node eliminated at each position.
pub(crate) fn minimum_degree_order(neighbours: &[Vec<usize>]) -> Vec<usize> {
    let count = neighbours.len();
    if count == 0 {
        return Vec::new();
    }
    let mut xadj = Vec::with_capacity(count + 2);
    xadj.push(0);
    // One spare slot ahead (1-based) and one behind, which the in-place updates may touch.
    let mut adjncy: Vec<isize> = vec![0];
    for list in neighbours {
        xadj.push(adjncy.len());
        adjncy.extend(list.iter().map(|&node| node as isize + 1));
    }
    xadj.push(adjncy.len());
    adjncy.push(0);
    let mut ordering = MinimumDegree {
        xadj,
        adjncy,
        degree_head: vec![0; count + 2],
        forward: vec![0; count + 1],
        backward: vec![0; count + 1],
        supernode_size: vec![1; count + 1],
        next_in_list: vec![0; count + 1],
        marker: vec![0; count + 1],
        tag: 0,
    };
    ordering.run(count as isize);
    ordering.number(count)[1..]
        .iter()
        .map(|&node| node as usize - 1)
        .collect()
}

/// Walks the members of a node's list in the quotient graph: a negative entry continues the
/// walk in the list of that (eliminated) node, a zero or the end of the last list ends it.
///
/// The arrays are passed to every step, not held, because the walks run while the
/// algorithm updates them; each entry is read when the walk reaches it.
struct Members {
    at: usize,
    end: usize,
}

impl Members {
    fn of(xadj: &[usize], node: usize) -> Self {
        Self {
            at: xadj[node],
            end: xadj[node + 1],
        }
    }

    fn next(&mut self, xadj: &[usize], adjncy: &[isize]) -> Option<usize> {
        while self.at < self.end {
            let member = adjncy[self.at];
            self.at += 1;
            if member > 0 {
                return Some(member as usize);
            }
            if member == 0 {
                return None;
            }
            *self = Self::of(xadj, (-member) as usize);
        }
        None
    }
}

impl MinimumDegree {
    /// Puts every node in the list of its degree (plus one), each list a stack.
    fn initialise(&mut self, count: usize) {
        for node in 1..=count {
            let degree = self.xadj[node + 1] - self.xadj[node] + 1;
            let head = self.degree_head[degree];
            self.forward[node] = head;
            self.degree_head[degree] = node as isize;
            if head > 0 {
                self.backward[head as usize] = node as isize;
            }
            self.backward[node] = -(degree as isize);
        }
    }

    /// Eliminates nodes of minimum degree one at a time, updating degrees after each,
    /// leaving in `forward` minus each node's elimination number (or minus the node it
    /// merged into).
    fn run(&mut self, count: isize) {
        self.initialise(count as usize);
        let mut number = 1;
        // Isolated nodes come first.
        let mut next = self.degree_head[1];
        while next > 0 {
            let node = next as usize;
            next = self.forward[node];
            self.marker[node] = MAX_TAG;
            self.forward[node] = -number;
            number += 1;
        }
        if number > count {
            return;
        }
        self.tag = 1;
        self.degree_head[1] = 0;
        let mut min_degree = 2;
        loop {
            while self.degree_head[min_degree] <= 0 {
                min_degree += 1;
            }
            let eliminated = self.degree_head[min_degree] as usize;
            let next = self.forward[eliminated];
            self.degree_head[min_degree] = next;
            if next > 0 {
                self.backward[next as usize] = -(min_degree as isize);
            }
            self.forward[eliminated] = -number;
            if number + self.supernode_size[eliminated] > count {
                return;
            }
            self.tag += 1;
            self.eliminate(eliminated);
            number += self.supernode_size[eliminated];
            if number > count {
                return;
            }
            self.update_degrees(eliminated, &mut min_degree);
        }
    }

    /// Eliminates `eliminated` from the quotient graph: its reachable set replaces its
    /// adjacency, and each reachable node leaves the degree lists and is flagged for a degree
    /// update (or merges into `eliminated` when it has no other neighbour).
    fn eliminate(&mut self, eliminated: usize) {
        let tag = self.tag;
        self.marker[eliminated] = tag;
        let (start, stop) = (self.xadj[eliminated], self.xadj[eliminated + 1]);
        let mut elements = 0;
        let mut store_at = start;
        let mut store_end = stop - 1;
        for i in start..stop {
            let neighbour = self.adjncy[i];
            if neighbour == 0 {
                break;
            }
            let n = neighbour as usize;
            if self.marker[n] >= tag {
                continue;
            }
            self.marker[n] = tag;
            if self.forward[n] < 0 {
                self.next_in_list[n] = elements;
                elements = neighbour;
            } else {
                self.adjncy[store_at] = neighbour;
                store_at += 1;
            }
        }

        // Merge in the nodes reachable through eliminated neighbours (elements), borrowing
        // their storage once this node's own runs out.
        while elements > 0 {
            self.adjncy[store_end] = -elements;
            let mut members = Members::of(&self.xadj, elements as usize);
            while let Some(n) = members.next(&self.xadj, &self.adjncy) {
                if self.marker[n] >= tag || self.forward[n] < 0 {
                    continue;
                }
                self.marker[n] = tag;
                while store_at >= store_end {
                    let borrowed = (-self.adjncy[store_end]) as usize;
                    store_at = self.xadj[borrowed];
                    store_end = self.xadj[borrowed + 1] - 1;
                }
                self.adjncy[store_at] = n as isize;
                store_at += 1;
            }
            elements = self.next_in_list[elements as usize];
        }
        if store_at <= store_end {
            self.adjncy[store_at] = 0;
        }

        let mut reachable = Members::of(&self.xadj, eliminated);
        while let Some(reached) = reachable.next(&self.xadj, &self.adjncy) {
            self.reach(reached, eliminated);
        }
    }

    /// One node of the reachable set of `eliminated` (see [`Self::eliminate`]).
    fn reach(&mut self, node: usize, eliminated: usize) {
        let previous = self.backward[node];
        if previous != 0 && previous != -MAX_TAG {
            let next = self.forward[node];
            if next > 0 {
                self.backward[next as usize] = previous;
            }
            if previous > 0 {
                self.forward[previous as usize] = next;
            } else {
                self.degree_head[(-previous) as usize] = next;
            }
        }
        // Drop neighbours that are now inside the new element.
        let (start, stop) = (self.xadj[node], self.xadj[node + 1]);
        let mut kept_end = start;
        for j in start..stop {
            let neighbour = self.adjncy[j];
            if neighbour == 0 {
                break;
            }
            if self.marker[neighbour as usize] >= self.tag {
                continue;
            }
            self.adjncy[kept_end] = neighbour;
            kept_end += 1;
        }
        let kept = kept_end - start;
        if kept == 0 {
            self.supernode_size[eliminated] += self.supernode_size[node];
            self.supernode_size[node] = 0;
            self.marker[node] = MAX_TAG;
            self.forward[node] = -(eliminated as isize);
            self.backward[node] = -MAX_TAG;
        } else {
            self.forward[node] = kept as isize + 1;
            self.backward[node] = 0;
            self.adjncy[kept_end] = eliminated as isize;
            kept_end += 1;
            if kept_end < stop {
                self.adjncy[kept_end] = 0;
            }
        }
    }

    /// Recomputes the external degree of the nodes flagged by eliminating `element` and puts
    /// them back in the degree lists, merging indistinguishable nodes on the way.
    fn update_degrees(&mut self, element: usize, min_degree: &mut usize) {
        let element_tag = self.tag + *min_degree as isize - 1;
        // Nodes of the element, split by whether they have exactly two quotient neighbours.
        let mut two_neighbours = 0;
        let mut more_neighbours = 0;
        let mut element_size = 0;
        let mut members = Members::of(&self.xadj, element);
        while let Some(m) = members.next(&self.xadj, &self.adjncy) {
            if self.supernode_size[m] == 0 {
                continue;
            }
            element_size += self.supernode_size[m];
            self.marker[m] = element_tag;
            if self.backward[m] != 0 {
                continue;
            }
            if self.forward[m] == 2 {
                self.next_in_list[m] = two_neighbours;
                two_neighbours = m as isize;
            } else {
                self.next_in_list[m] = more_neighbours;
                more_neighbours = m as isize;
            }
        }

        let mut node = two_neighbours;
        while node > 0 {
            let n = node as usize;
            if self.backward[n] == 0 {
                let degree = self.two_neighbour_degree(n, element, element_size);
                self.insert_by_degree(n, degree, min_degree);
            }
            node = self.next_in_list[n];
        }
        let mut node = more_neighbours;
        while node > 0 {
            let n = node as usize;
            if self.backward[n] == 0 {
                let degree = self.general_degree(n, element_size);
                self.insert_by_degree(n, degree, min_degree);
            }
            node = self.next_in_list[n];
        }
        self.tag = element_tag;
    }

    /// Degree of a node whose quotient neighbours are `element` and one other, merging nodes
    /// indistinguishable from it.
    fn two_neighbour_degree(&mut self, node: usize, element: usize, element_size: isize) -> isize {
        self.tag += 1;
        let tag = self.tag;
        let mut degree = element_size;
        let first = self.xadj[node];
        let mut other = self.adjncy[first];
        if other == element as isize {
            other = self.adjncy[first + 1];
        }
        let other = other as usize;
        if self.forward[other] >= 0 {
            return degree + self.supernode_size[other];
        }
        let mut members = Members::of(&self.xadj, other);
        while let Some(m) = members.next(&self.xadj, &self.adjncy) {
            if m == node || self.supernode_size[m] == 0 {
                continue;
            }
            if self.marker[m] < tag {
                self.marker[m] = tag;
                degree += self.supernode_size[m];
            } else if self.backward[m] == 0 {
                if self.forward[m] == 2 {
                    self.supernode_size[node] += self.supernode_size[m];
                    self.supernode_size[m] = 0;
                    self.marker[m] = MAX_TAG;
                    self.forward[m] = -(node as isize);
                }
                // Merged, or outmatched by `node`: either way no longer needs an update.
                self.backward[m] = -MAX_TAG;
            }
        }
        degree
    }

    /// Degree of a node with more than two quotient neighbours.
    fn general_degree(&mut self, node: usize, element_size: isize) -> isize {
        self.tag += 1;
        let tag = self.tag;
        let mut degree = element_size;
        for i in self.xadj[node]..self.xadj[node + 1] {
            let neighbour = self.adjncy[i];
            if neighbour == 0 {
                break;
            }
            let n = neighbour as usize;
            if self.marker[n] >= tag {
                continue;
            }
            self.marker[n] = tag;
            if self.forward[n] >= 0 {
                degree += self.supernode_size[n];
                continue;
            }
            let mut members = Members::of(&self.xadj, n);
            while let Some(m) = members.next(&self.xadj, &self.adjncy) {
                if self.marker[m] < tag {
                    self.marker[m] = tag;
                    degree += self.supernode_size[m];
                }
            }
        }
        degree
    }

    /// Pushes `node` on the list of its external degree (`degree` less its own size, plus one).
    fn insert_by_degree(&mut self, node: usize, degree: isize, min_degree: &mut usize) {
        let degree = (degree - self.supernode_size[node] + 1) as usize;
        let head = self.degree_head[degree];
        self.forward[node] = head;
        self.backward[node] = -(degree as isize);
        if head > 0 {
            self.backward[head as usize] = node as isize;
        }
        self.degree_head[degree] = node as isize;
        *min_degree = (*min_degree).min(degree);
    }

    /// Numbers merged nodes right after the node they merged into; returns the node at each
    /// position (both 1-based).
    fn number(self, count: usize) -> Vec<isize> {
        let Self {
            forward: mut position,
            backward: mut node_at,
            supernode_size,
            ..
        } = self;
        for node in 1..=count {
            node_at[node] = if supernode_size[node] <= 0 {
                position[node]
            } else {
                -position[node]
            };
        }
        for node in 1..=count {
            if node_at[node] > 0 {
                continue;
            }
            let mut root = node;
            while node_at[root] <= 0 {
                root = (-node_at[root]) as usize;
            }
            let number = node_at[root] + 1;
            position[node] = -number;
            node_at[root] = number;
            // Point the whole merge chain straight at its root.
            let mut father = node;
            loop {
                let next = -node_at[father];
                if next <= 0 {
                    break;
                }
                node_at[father] = -(root as isize);
                father = next as usize;
            }
        }
        for node in 1..=count {
            node_at[(-position[node]) as usize] = node as isize;
        }
        node_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neighbour lists of an undirected graph, each in the order the edges are given.
    fn graph(count: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut lists = vec![Vec::new(); count];
        for &(a, b) in edges {
            lists[a].push(b);
            lists[b].push(a);
        }
        lists
    }

    fn is_permutation(order: &[usize], count: usize) -> bool {
        let mut seen = vec![false; count];
        order.len() == count
            && order
                .iter()
                .all(|&n| !std::mem::replace(&mut seen[n], true))
    }

    #[test]
    fn orders_a_path_from_its_last_end() {
        // Both ends have the least degree; the degree lists are stacks, so the end listed
        // last goes first and the elimination walks the path back.
        let order = minimum_degree_order(&graph(5, &[(0, 1), (1, 2), (2, 3), (3, 4)]));
        assert_eq!(order, [4, 3, 2, 1, 0]);
    }

    #[test]
    fn isolated_nodes_come_first_and_every_node_once() {
        let order = minimum_degree_order(&graph(6, &[(0, 1), (1, 2), (2, 0), (4, 5)]));
        assert_eq!(order[0], 3);
        assert!(is_permutation(&order, 6));
    }

    #[test]
    fn orders_a_grid_as_a_permutation() {
        let side = 12;
        let mut edges = Vec::new();
        for r in 0..side {
            for c in 0..side {
                let node = r * side + c;
                if c + 1 < side {
                    edges.push((node, node + 1));
                }
                if r + 1 < side {
                    edges.push((node, node + side));
                }
            }
        }
        let order = minimum_degree_order(&graph(side * side, &edges));
        assert!(is_permutation(&order, side * side));
        // A corner (degree 2) is eliminated first.
        assert!([0, side - 1, side * (side - 1), side * side - 1].contains(&order[0]));
    }

    #[test]
    fn orders_nothing() {
        assert!(minimum_degree_order(&[]).is_empty());
    }
}
