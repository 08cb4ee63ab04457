//! The junctions' demands of each pattern period: the table that sets them (with reservoir
//! heads and pump speeds) and the cache that keeps them for the next run of the network.

use super::super::data::{HydNetwork, HydState};
use super::super::rules::set_link_setting;

/// The junctions' demands (and the system demand) of the pattern periods seen so far, worked
/// out by [`DemandTable::apply_junctions`] once and copied in afterwards: every failure of a
/// criticality sweep has the same demands at the same times.
#[derive(Debug, Clone)]
pub(super) struct DemandCache {
    /// Pattern periods repeat after this many: every demand pattern's length divides it.
    cycle: usize,
    junctions: usize,
    /// `cycle` rows of `junctions` demands, cfs; a row counts once `known`.
    demands: Vec<f64>,
    system: Vec<f64>,
    known: Vec<bool>,
    /// What the demands were worked out from: the network's patterns and demand multiplier.
    patterns: Vec<Vec<f64>>,
    multiplier: f64,
}

impl DemandCache {
    /// Most demands kept (16 MB, for each worker of a sweep): past that the patterns' cycle
    /// is too long to be worth it.
    const MAX_VALUES: usize = 1 << 21;

    /// A cache for `network`, `None` when its demand patterns' cycle is too long to keep.
    pub(super) fn new(network: &HydNetwork, table: &DemandTable) -> Option<Self> {
        let patterns = network.patterns.len();
        let mut cycle = 1usize;
        for &index in &table.factor_index {
            let length = network.patterns.get(index).map_or(0, Vec::len);
            if index < patterns && length > 0 {
                cycle = cycle.checked_mul(length / gcd(cycle, length))?;
                if cycle.checked_mul(network.junctions)? > Self::MAX_VALUES {
                    return None;
                }
            }
        }
        Some(Self {
            cycle,
            junctions: network.junctions,
            demands: vec![0.0; cycle * network.junctions],
            system: vec![0.0; cycle],
            known: vec![false; cycle],
            patterns: network.patterns.clone(),
            multiplier: network.options.demand_multiplier,
        })
    }

    pub(super) fn fits(&self, network: &HydNetwork) -> bool {
        self.junctions == network.junctions
            && self.multiplier.to_bits() == network.options.demand_multiplier.to_bits()
            && self.patterns.len() == network.patterns.len()
            && (self.patterns.iter())
                .zip(&network.patterns)
                .all(|(ours, theirs)| {
                    ours.len() == theirs.len()
                        && ours
                            .iter()
                            .zip(theirs)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                })
    }

    /// Sets the junctions' demands of pattern period `period` as `table` (its factors those
    /// of `period`) sets them, from the cache once worked out.
    pub(super) fn apply(&mut self, table: &DemandTable, state: &mut HydState, period: usize) {
        let row = period % self.cycle;
        let junctions = self.junctions;
        let cached = &mut self.demands[row * junctions..(row + 1) * junctions];
        if self.known[row] {
            state.node_demand[..junctions].copy_from_slice(cached);
            state.demand_flow[..junctions].copy_from_slice(cached);
            state.system_demand = self.system[row];
        } else {
            table.apply_junctions(state, self.multiplier);
            cached.copy_from_slice(&state.node_demand[..junctions]);
            self.system[row] = state.system_demand;
            self.known[row] = true;
        }
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Every junction's demands in one contiguous table, with the pattern factors of the current
/// period worked out once per period: setting the demands then streams through two arrays
/// instead of visiting each junction's own list.
#[derive(Debug, Clone)]
pub(crate) struct DemandTable {
    /// Base demand (cfs) and index into `factors` of each demand, junction after junction.
    base: Vec<f64>,
    factor_index: Vec<usize>,
    /// Where each junction's demands end in `base`.
    junction_end: Vec<usize>,
    /// Each pattern's factor for the current period, then 1.0 for demands without a pattern.
    factors: Vec<f64>,
}

impl DemandTable {
    pub(crate) fn new(network: &HydNetwork) -> Self {
        let patterns = network.patterns.len();
        let junctions = &network.nodes[..network.junctions];
        let demands = || junctions.iter().flat_map(|node| &node.demands);
        let mut end = 0;
        Self {
            base: demands().map(|demand| demand.base).collect(),
            factor_index: demands()
                .map(|demand| Self::factor_index(patterns, demand.pattern))
                .collect(),
            junction_end: junctions
                .iter()
                .map(|node| {
                    end += node.demands.len();
                    end
                })
                .collect(),
            factors: vec![1.0; patterns + 1],
        }
    }

    /// Whether the table made for one network holds the junction demands of `network`.
    pub(super) fn fits(&self, network: &HydNetwork) -> bool {
        let patterns = network.patterns.len();
        let junctions = &network.nodes[..network.junctions];
        let mut demands = junctions.iter().flat_map(|node| &node.demands);
        let mut end = 0;
        self.factors.len() == patterns + 1
            && self.junction_end.len() == junctions.len()
            && (junctions.iter().zip(&self.junction_end)).all(|(node, &ours)| {
                end += node.demands.len();
                end == ours
            })
            && self.base.len() == end
            && (self.base.iter().zip(&self.factor_index)).all(|(&base, &index)| {
                demands.next().is_some_and(|demand| {
                    demand.base.to_bits() == base.to_bits()
                        && Self::factor_index(patterns, demand.pattern) == index
                })
            })
    }

    /// Where the factor of `pattern` is kept, with `patterns` patterns (a missing pattern
    /// counts as none).
    fn factor_index(patterns: usize, pattern: Option<usize>) -> usize {
        pattern.filter(|&p| p < patterns).unwrap_or(patterns)
    }

    /// The current period's factor of `pattern` (1.0 without one).
    fn factor(&self, pattern: Option<usize>) -> f64 {
        self.factors[Self::factor_index(self.factors.len() - 1, pattern)]
    }

    /// Looks up each pattern's factor for pattern period `period` (1.0 for an empty pattern).
    pub(crate) fn set_period(&mut self, network: &HydNetwork, period: usize) {
        for (factor, pattern) in self.factors.iter_mut().zip(&network.patterns) {
            *factor = if pattern.is_empty() {
                1.0
            } else {
                pattern[period % pattern.len()]
            };
        }
    }

    /// Replaces the current period's factor of pattern `pattern` (an index into the
    /// network's patterns; others are ignored).
    pub(crate) fn set_factor(&mut self, pattern: usize, factor: f64) {
        let patterns = self.factors.len() - 1;
        if pattern < patterns {
            self.factors[pattern] = factor;
        }
    }

    /// Sets junction demands (the factors times `demand_multiplier`), patterned reservoir
    /// heads and patterned pump speeds from the current period's factors (EPANET's
    /// `demands`).
    pub(crate) fn apply(&self, network: &HydNetwork, state: &mut HydState, demand_multiplier: f64) {
        self.apply_junctions(state, demand_multiplier);
        self.apply_boundaries(network, state);
    }

    /// The junction demands of [`DemandTable::apply`].
    fn apply_junctions(&self, state: &mut HydState, demand_multiplier: f64) {
        state.system_demand = 0.0;
        let mut start = 0;
        for (node, &end) in self.junction_end.iter().enumerate() {
            let mut total = 0.0;
            for (base, &factor) in self.base[start..end]
                .iter()
                .zip(&self.factor_index[start..end])
            {
                let flow = base * self.factors[factor] * demand_multiplier;
                if flow > 0.0 {
                    state.system_demand += flow;
                }
                total += flow;
            }
            state.node_demand[node] = total;
            state.demand_flow[node] = total;
            start = end;
        }
    }

    /// The reservoir heads and pump speeds of [`DemandTable::apply`].
    pub(super) fn apply_boundaries(&self, network: &HydNetwork, state: &mut HydState) {
        for tank in network.tanks.iter().filter(|t| t.is_reservoir()) {
            if tank.pattern.is_some() {
                state.head[tank.node] =
                    network.nodes[tank.node].elevation * self.factor(tank.pattern);
            }
        }
        for pump in &network.pumps {
            if pump.speed_pattern.is_some() {
                let speed = self.factor(pump.speed_pattern);
                set_link_setting(network, state, pump.link, speed);
            }
        }
    }
}
