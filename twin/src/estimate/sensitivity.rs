//! Observation sensitivities to extra outflow at every junction, from a solved period.

use hydraulics::model::{HeadlossFormula, LinkKind, Network, NodeKind, PipeStatus, ValveType};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::reading::NetworkUnits;

/// Hazen-Williams head loss exponent.
const HW_EXPONENT: f64 = 1.852;
/// Below this velocity (ft/s) a link's conductance is taken at this velocity: the head loss
/// curve is flat at zero flow and the linearization would make the link a short circuit.
const FLOOR_VELOCITY_FT_S: f64 = 0.05;
/// Conductance (relative to the largest pipe's) that ties the downstream node of an active
/// pressure-reducing valve (or the upstream node of a sustaining one) to its fixed head.
const FIXED_HEAD_TIE: f64 = 10.0;

/// One observed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Pressure at a node (network pressure unit).
    Pressure(usize),
    /// Hydraulic head at a node (network length unit).
    Head(usize),
    /// Flow in a link, positive from its start node (network flow unit).
    Flow(usize),
    /// Consumption metered at a node (AMR; network flow unit): blind to leaks.
    Demand(usize),
}

/// The response of each observation to one unit of extra outflow (network flow unit) at each
/// junction, around one solved period.
#[derive(Debug, Clone)]
pub struct Sensitivity {
    observations: Vec<Observation>,
    /// Observations x junctions.
    matrix: DMatrix<f64>,
    /// The linearization, where some columns of `matrix` were replaced by responses to leaks
    /// of a given size ([`Self::with_columns`]): the response to consumption spread over
    /// every junction stays the tangent's, since that spread is small at each junction.
    tangent: Option<DMatrix<f64>>,
}

impl Sensitivity {
    /// Linearizes the network around the solved period (`head`, `flow`, `status` in the
    /// network's units, arrays like [`crate::live::PeriodState`]'s) and computes the responses
    /// of `observations`.
    pub fn compute(
        network: &Network,
        units: &NetworkUnits,
        head: &[f64],
        flow: &[f64],
        status: &[u8],
        observations: &[Observation],
    ) -> Self {
        let junctions = network.junction_count();
        let mut laplacian = DMatrix::<f64>::zeros(junctions, junctions);
        let conductance = conductances(network, units, head, flow, status);
        let strongest = conductance.iter().fold(0.0_f64, |a, &g| a.max(g));
        let tie = FIXED_HEAD_TIE * strongest.max(f64::MIN_POSITIVE);
        let mut tied = vec![false; junctions];
        for (index, link) in network.links.iter().enumerate() {
            let g = conductance[index];
            let (a, b) = (link.from, link.to);
            if g > 0.0 {
                if a < junctions {
                    laplacian[(a, a)] += g;
                }
                if b < junctions {
                    laplacian[(b, b)] += g;
                }
                if a < junctions && b < junctions {
                    laplacian[(a, b)] -= g;
                    laplacian[(b, a)] -= g;
                }
            }
            if status.get(index) == Some(&2) {
                if let LinkKind::Valve(valve) = &link.kind {
                    let fixed = match valve.valve_type {
                        ValveType::Prv => Some(b),
                        ValveType::Psv => Some(a),
                        _ => None,
                    };
                    if let Some(node) = fixed.filter(|&n| n < junctions) {
                        laplacian[(node, node)] += tie;
                        tied[node] = true;
                    }
                }
            }
        }
        // Junctions cut off from every fixed head (behind closed links) cannot respond; they
        // are decoupled so that the rest of the matrix stays positive definite.
        let reachable = reachable_from_fixed_heads(network, &conductance, &tied);
        for j in (0..junctions).filter(|&j| !reachable[j]) {
            for k in 0..junctions {
                laplacian[(j, k)] = 0.0;
                laplacian[(k, j)] = 0.0;
            }
            laplacian[(j, j)] = 1.0;
        }
        let mut needed: Vec<usize> = observations
            .iter()
            .flat_map(|o| match *o {
                Observation::Pressure(n) | Observation::Head(n) => vec![n],
                Observation::Flow(l) => vec![network.links[l].from, network.links[l].to],
                Observation::Demand(_) => Vec::new(),
            })
            .filter(|&n| n < junctions && reachable[n])
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let rows = inverse_rows(laplacian, &needed);
        // dH_n/dq_j = -(L^-1)_{nj}; a fixed-head node does not move.
        let head_row = |node: usize| -> Option<&DVector<f64>> {
            needed
                .binary_search(&node)
                .ok()
                .map(|position| &rows[position])
        };
        let pressure_per_head = units.factors.pressure / units.factors.head;
        let mut matrix = DMatrix::<f64>::zeros(observations.len(), junctions);
        for (i, observation) in observations.iter().enumerate() {
            match *observation {
                Observation::Pressure(n) | Observation::Head(n) => {
                    let factor = if matches!(observation, Observation::Pressure(_)) {
                        pressure_per_head
                    } else {
                        1.0
                    };
                    if let Some(row) = head_row(n) {
                        for j in 0..junctions {
                            matrix[(i, j)] = -factor * row[j];
                        }
                    }
                }
                Observation::Flow(l) => {
                    let link = &network.links[l];
                    let g = conductance[l];
                    for j in 0..junctions {
                        let dh_from = head_row(link.from).map_or(0.0, |r| -r[j]);
                        let dh_to = head_row(link.to).map_or(0.0, |r| -r[j]);
                        matrix[(i, j)] = g * (dh_from - dh_to);
                    }
                }
                Observation::Demand(_) => {}
            }
        }
        Self {
            observations: observations.to_vec(),
            matrix,
            tangent: None,
        }
    }

    /// The elementwise mean of `parts` (same observations and junctions), `None` when empty.
    pub fn mean(parts: &[&Sensitivity]) -> Option<Sensitivity> {
        let first = parts.first()?;
        let mean = |of: fn(&Sensitivity) -> &DMatrix<f64>| {
            let mut sum = of(first).clone();
            for part in &parts[1..] {
                sum += of(part);
            }
            sum / parts.len() as f64
        };
        let tangent = parts
            .iter()
            .any(|part| part.tangent.is_some())
            .then(|| mean(Sensitivity::tangent));
        Some(Self {
            observations: first.observations.clone(),
            matrix: mean(|part| &part.matrix),
            tangent,
        })
    }

    /// These sensitivities with the columns of some junctions replaced (junction, responses
    /// in the order of the observations).
    pub fn with_columns(&self, columns: &[(usize, Vec<f64>)]) -> Sensitivity {
        let tangent = self.tangent().clone();
        let mut matrix = self.matrix.clone();
        for (junction, column) in columns {
            for (row, value) in column.iter().enumerate().take(matrix.nrows()) {
                matrix[(row, *junction)] = *value;
            }
        }
        Self {
            observations: self.observations.clone(),
            matrix,
            tangent: Some(tangent),
        }
    }

    /// The linearization (the matrix itself unless columns were replaced).
    fn tangent(&self) -> &DMatrix<f64> {
        self.tangent.as_ref().unwrap_or(&self.matrix)
    }

    /// Sensitivities given column by column (one per junction), for tests.
    #[cfg(test)]
    pub(crate) fn from_columns(observations: &[Observation], columns: &[Vec<f64>]) -> Self {
        Self {
            observations: observations.to_vec(),
            matrix: DMatrix::from_fn(observations.len(), columns.len(), |i, j| columns[j][i]),
            tangent: None,
        }
    }

    /// The observations, in the order of the rows.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// Number of junctions (columns).
    pub fn junctions(&self) -> usize {
        self.matrix.ncols()
    }

    /// Response of observation `row` to a unit leak at junction `junction`.
    pub fn get(&self, row: usize, junction: usize) -> f64 {
        self.matrix[(row, junction)]
    }

    /// The responses of every observation to a leak at `junction`.
    pub fn column(&self, junction: usize) -> Vec<f64> {
        self.matrix.column(junction).iter().copied().collect()
    }

    /// The responses of every observation to one unit of extra consumption shared among the
    /// junctions as `consumption` is (zero when there is none): the part of a leak's response
    /// that a demand multiplier following the inflow takes back.
    pub fn spread_response(&self, consumption: &[f64]) -> Vec<f64> {
        let total: f64 = consumption.iter().sum();
        if total > 0.0 {
            let share: Vec<f64> = consumption.iter().map(|d| d / total).collect();
            self.response_to(&share)
        } else {
            vec![0.0; self.observations.len()]
        }
    }

    /// The responses of every observation to extra consumption `extra[j]` at every junction
    /// (e.g. a demand multiplier raised by one: `extra` = the nominal demands), from the
    /// linearization; metered demands see their own node's share.
    pub fn response_to(&self, extra: &[f64]) -> Vec<f64> {
        let extra = DVector::from_iterator(
            self.junctions(),
            (0..self.junctions()).map(|j| extra.get(j).copied().unwrap_or(0.0)),
        );
        let mut response: Vec<f64> = (self.tangent() * &extra).iter().copied().collect();
        for (value, observation) in response.iter_mut().zip(&self.observations) {
            if let Observation::Demand(n) = *observation {
                *value += extra.get(n).copied().unwrap_or(0.0);
            }
        }
        response
    }
}

/// Rows `needed` of `L^-1` (`L` symmetric positive definite): one Cholesky factorization,
/// then the right-hand sides solved in parallel.
fn inverse_rows(laplacian: DMatrix<f64>, needed: &[usize]) -> Vec<DVector<f64>> {
    let n = laplacian.nrows();
    let Some(cholesky) = laplacian.clone().cholesky() else {
        // Not positive definite only when the network has no path to a fixed head with a
        // usable conductance; LU still solves a nonsingular system.
        let lu = laplacian.lu();
        return needed
            .iter()
            .map(|&k| {
                lu.solve(&DVector::from_fn(n, |i, _| f64::from(u8::from(i == k))))
                    .unwrap_or_else(|| DVector::zeros(n))
            })
            .collect();
    };
    needed
        .par_iter()
        .map(|&k| cholesky.solve(&DVector::from_fn(n, |i, _| f64::from(u8::from(i == k)))))
        .collect()
}

/// Link conductances `dQ/dh` (network flow unit per length unit) around the solved period;
/// 0 for closed links and for links that hold their flow (active flow control valves).
fn conductances(
    network: &Network,
    units: &NetworkUnits,
    head: &[f64],
    flow: &[f64],
    status: &[u8],
) -> Vec<f64> {
    let factors = &units.factors;
    let exponent = match network.options.headloss {
        HeadlossFormula::HazenWilliams => HW_EXPONENT,
        _ => 2.0,
    };
    network
        .links
        .iter()
        .enumerate()
        .map(|(index, link)| {
            if status.get(index).copied().unwrap_or(1) == 0 {
                return 0.0;
            }
            let q = flow.get(index).copied().unwrap_or(0.0).abs();
            let dh = (head[link.from] - head[link.to]).abs();
            match &link.kind {
                LinkKind::Pipe(pipe) => {
                    if pipe.status == PipeStatus::Closed {
                        return 0.0;
                    }
                    let diameter_ft = pipe.diameter / factors.diameter;
                    let area = std::f64::consts::PI * diameter_ft * diameter_ft / 4.0;
                    let floor = FLOOR_VELOCITY_FT_S * area * factors.flow;
                    if q > floor && dh > 0.0 {
                        q / (exponent * dh)
                    } else {
                        // Hazen-Williams resistance (C = roughness, or 100 for other formulas)
                        // at the floor flow, in the network's units.
                        let c = if exponent == HW_EXPONENT {
                            pipe.roughness.max(1.0)
                        } else {
                            100.0
                        };
                        let length_ft = pipe.length / factors.length;
                        let r_internal =
                            4.727 * length_ft / (c.powf(HW_EXPONENT) * diameter_ft.powf(4.871));
                        let q_cfs = floor / factors.flow;
                        let dh_dq =
                            HW_EXPONENT * r_internal * q_cfs.powf(HW_EXPONENT - 1.0) * factors.head
                                / factors.flow;
                        1.0 / dh_dq
                    }
                }
                LinkKind::Pump(pump) => {
                    let gain = -(head[link.from] - head[link.to]);
                    let shutoff = pump.head_curve.and_then(|c| network.curves.get(c)).map(
                        |curve| match curve.points.as_slice() {
                            [(_, h)] => 4.0 / 3.0 * h,
                            points => points.iter().fold(0.0_f64, |a, p| a.max(p.1)),
                        },
                    );
                    match shutoff {
                        Some(shutoff) => {
                            let speed = pump.speed.max(0.0);
                            let slope = 2.0 * (shutoff * speed * speed - gain).max(0.0);
                            if slope > 0.0 {
                                q / slope
                            } else {
                                q / gain.abs().max(1e-6)
                            }
                        }
                        None => q / gain.abs().max(1e-6),
                    }
                }
                LinkKind::Valve(_) => {
                    if status.get(index) == Some(&2) {
                        0.0
                    } else {
                        q / (2.0 * dh.max(1e-6))
                    }
                }
            }
        })
        .collect()
}

/// Which junctions reach a reservoir, a tank or a tied node through links that conduct.
fn reachable_from_fixed_heads(network: &Network, conductance: &[f64], tied: &[bool]) -> Vec<bool> {
    let nodes = network.nodes.len();
    let mut adjacency = vec![Vec::new(); nodes];
    for (index, link) in network.links.iter().enumerate() {
        if conductance[index] > 0.0 {
            adjacency[link.from].push(link.to);
            adjacency[link.to].push(link.from);
        }
    }
    let mut seen = vec![false; nodes];
    let mut stack: Vec<usize> = network
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, node)| {
            !matches!(node.kind, NodeKind::Junction(_)) || tied.get(*i).copied().unwrap_or(false)
        })
        .map(|(i, _)| i)
        .collect();
    for &s in &stack {
        seen[s] = true;
    }
    while let Some(node) = stack.pop() {
        for &next in &adjacency[node] {
            if !seen[next] {
                seen[next] = true;
                stack.push(next);
            }
        }
    }
    seen.truncate(network.junction_count());
    seen
}

/// Each junction's nominal consumption at simulation time `seconds` (base demands times their
/// patterns, demand multiplier option not applied), in the network's flow unit.
pub fn nominal_demands(network: &Network, seconds: u64) -> Vec<f64> {
    let default_pattern = network.default_pattern_index();
    let step = network.times.pattern_step.max(1);
    let period = (seconds + network.times.pattern_start) / step;
    let factor = |pattern: Option<usize>| -> f64 {
        pattern
            .and_then(|p| network.patterns.get(p))
            .filter(|p| !p.multipliers.is_empty())
            .map_or(1.0, |p| {
                let len = p.multipliers.len() as u64;
                p.multipliers[usize::try_from(period % len).unwrap_or(0)]
            })
    };
    network
        .nodes
        .iter()
        .take(network.junction_count())
        .map(|node| match &node.kind {
            NodeKind::Junction(junction) => junction
                .demands
                .iter()
                .map(|d| d.base * factor(d.pattern.or(default_pattern)))
                .sum(),
            _ => 0.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_columns_answer_for_leaks_and_the_tangent_for_spread_consumption() {
        let observations = [Observation::Pressure(0), Observation::Pressure(1)];
        let tangent =
            Sensitivity::from_columns(&observations, &[vec![-1.0, -0.5], vec![-0.2, -2.0]]);
        let secant = tangent.with_columns(&[(0, vec![-1.5, -0.6])]);
        assert_eq!(secant.column(0), vec![-1.5, -0.6]);
        assert_eq!(secant.column(1), vec![-0.2, -2.0]);
        assert_eq!(secant.response_to(&[1.0, 1.0]), vec![-1.2, -2.5]);
        // Averaged with another hour, each part keeps its own.
        let mean = Sensitivity::mean(&[&secant, &tangent]).expect("two hours");
        assert_eq!(mean.column(0), vec![-1.25, -0.55]);
        assert_eq!(mean.response_to(&[1.0, 0.0]), vec![-1.0, -0.5]);
    }
}
