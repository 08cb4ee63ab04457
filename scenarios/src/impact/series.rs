//! A run's per-step quantities over the original network's junctions (pressure deficits,
//! unmet demand, Todini's index), accumulated step by step from step results or straight from
//! the solver's state, and the totals made of them.

use super::RunSummary;
use crate::build::node_elevation;
use hydraulics::model::{LinkKind, Network, NodeKind};
use hydraulics::solver::data::{HydNetwork, HydState};
use hydraulics::solver::{StateValues, StepResult};
use hydraulics::units::{UnitFactors, M3_PER_FT3};
use hydraulics::SimResults;

/// The full (PDA) demand of a network's junctions in each pattern period, flow units: base
/// demands times their pattern and the demand multiplier. Each demand category is resolved
/// once (pattern and factor), since runs ask for every junction at every period.
struct DemandSchedule<'a> {
    network: &'a Network,
    /// `(junction slot, base demand, pattern)` per demand category.
    terms: Vec<(usize, f64, Option<usize>)>,
}

impl<'a> DemandSchedule<'a> {
    /// The schedule of `junctions` (node indices of `network`; slot `k` is `junctions[k]`).
    fn new(network: &'a Network, junctions: &[usize]) -> Self {
        let default_pattern = network.default_pattern_index();
        let terms = (junctions.iter().enumerate())
            .filter_map(|(slot, &node)| match &network.nodes[node].kind {
                NodeKind::Junction(junction) => Some((slot, junction)),
                _ => None,
            })
            .flat_map(|(slot, junction)| {
                junction.demands.iter().map(move |demand| {
                    let pattern = (demand.pattern.or(default_pattern))
                        .filter(|&p| !network.patterns[p].multipliers.is_empty());
                    (slot, demand.base, pattern)
                })
            })
            .collect();
        Self { network, terms }
    }

    /// The pattern period that time `t` (seconds) falls in.
    fn period(&self, t: u64) -> usize {
        let times = &self.network.times;
        ((t + times.pattern_start) / times.pattern_step.max(1)) as usize
    }

    /// Writes each junction's full demand in pattern period `period` (never negative) over
    /// `full`, one value per slot.
    fn fill(&self, period: usize, full: &mut [f64]) {
        let multiplier = self.network.options.demand_multiplier;
        full.fill(0.0);
        for &(slot, base, pattern) in &self.terms {
            let factor = pattern.map_or(1.0, |p| {
                let multipliers = &self.network.patterns[p].multipliers;
                multipliers[period % multipliers.len()]
            });
            full[slot] += base * factor * multiplier;
        }
        for demand in full {
            *demand = demand.max(0.0);
        }
    }
}

/// What a summary reads of one solved period, in the network's own units, as
/// [`StepResult`] has it.
trait StepValues {
    fn t(&self) -> u64;
    /// What leaves `node`, its pressure and its head; `None` past the run's nodes.
    fn node(&self, node: usize) -> Option<(f64, f64, f64)>;
    /// [`StepValues::node`] of nodes `0..n` in turn, when they are all there (and, for a
    /// solver's state, all junctions).
    fn leading(&self, n: usize) -> Option<impl Iterator<Item = (f64, f64, f64)> + '_>;
    /// What leaves the node (delivered demand, emitters and leaks; a tank's net inflow).
    fn demand(&self, node: usize) -> f64;
    fn pressure(&self, node: usize) -> f64;
    fn head(&self, node: usize) -> f64;
    fn flow(&self, link: usize) -> f64;
}

impl StepValues for StepResult {
    fn t(&self) -> u64 {
        self.t
    }
    #[inline(always)]
    fn node(&self, node: usize) -> Option<(f64, f64, f64)> {
        Some((
            *self.demand.get(node)?,
            *self.pressure.get(node)?,
            *self.head.get(node)?,
        ))
    }
    fn leading(&self, n: usize) -> Option<impl Iterator<Item = (f64, f64, f64)> + '_> {
        let values = (self.demand.get(..n)?.iter())
            .zip(self.pressure.get(..n)?)
            .zip(self.head.get(..n)?);
        Some(values.map(|((&demand, &pressure), &head)| (demand, pressure, head)))
    }
    fn demand(&self, node: usize) -> f64 {
        self.demand[node]
    }
    fn pressure(&self, node: usize) -> f64 {
        self.pressure[node]
    }
    fn head(&self, node: usize) -> f64 {
        self.head[node]
    }
    fn flow(&self, link: usize) -> f64 {
        self.flow[link]
    }
}

/// The period a [`hydraulics::solver::PeriodRun`] just solved, read straight from the solver's
/// state: the values its [`StepResult`] would hold, without writing them all out first.
struct SolvedState<'s> {
    t: u64,
    values: StateValues<'s>,
    junctions: usize,
    nodes: usize,
}

impl StepValues for SolvedState<'_> {
    fn t(&self) -> u64 {
        self.t
    }
    #[inline(always)]
    fn node(&self, node: usize) -> Option<(f64, f64, f64)> {
        let values = &self.values;
        (node < self.nodes).then(|| {
            (
                values.outflow(node),
                values.pressure(node),
                values.head(node),
            )
        })
    }
    fn leading(&self, n: usize) -> Option<impl Iterator<Item = (f64, f64, f64)> + '_> {
        (n <= self.junctions).then(|| self.values.first_junctions(n))
    }
    fn demand(&self, node: usize) -> f64 {
        self.values.outflow(node)
    }
    fn pressure(&self, node: usize) -> f64 {
        self.values.pressure(node)
    }
    fn head(&self, node: usize) -> f64 {
        self.values.head(node)
    }
    fn flow(&self, link: usize) -> f64 {
        self.values.flow(link)
    }
}

/// Per-step quantities of one run, over the original network's junctions.
pub(super) struct Series {
    pub(super) t: Vec<u64>,
    pub(super) weight: Vec<f64>,
    pub(super) below: Vec<usize>,
    pub(super) unmet: Vec<f64>,
    pub(super) required: Vec<f64>,
    pub(super) todini: Vec<f64>,
    /// Per junction (original index order): share of required demand at each step; empty
    /// when only the totals are wanted.
    pub(super) service: Vec<Vec<f64>>,
    pub(super) node_required_m3: Vec<f64>,
    pub(super) node_unmet_m3: Vec<f64>,
    pub(super) node_min_pressure: Vec<f64>,
}

/// Builds a [`Series`] one step at a time, so that a run's steps need not all be kept.
struct SeriesBuilder<'a> {
    map: &'a [usize],
    schedule: DemandSchedule<'a>,
    junctions: Vec<usize>,
    /// Each of `junctions`' elevation plus the required pressure as a head (the expected head
    /// of Todini's index).
    required_head: Vec<f64>,
    /// The full demand of each of `junctions` in pattern period `full_demand_period`: steps
    /// come several to a period.
    full_demand: Vec<f64>,
    full_demand_period: Option<usize>,
    /// With the totals alone, the full demands of each pattern period met so far, a row of
    /// `junctions.len()` each (`known` says which): a builder reused for run after run of the
    /// same network (a criticality sweep's) meets the same periods again.
    full_demand_rows: Vec<f64>,
    full_demand_known: Vec<bool>,
    reservoirs: Vec<usize>,
    pumps: Vec<(usize, usize, usize)>,
    required_pressure: f64,
    to_m3: f64,
    /// Whether the per-junction quantities are kept.
    per_node: bool,
    /// `junctions` are the nodes `0..junctions.len()` and `map` leaves them where they are:
    /// their values can be read in one pass.
    junctions_in_place: bool,
    /// Each junction's full and unmet demand at the last step, to be weighted by that step's
    /// length once the next step (or the end) says how long it was.
    pending: Vec<(f64, f64)>,
    series: Series,
}

impl<'a> SeriesBuilder<'a> {
    fn new(
        original: &'a Network,
        run_network: &Network,
        map: &'a [usize],
        required_pressure: f64,
        per_node: bool,
    ) -> Self {
        let units = UnitFactors::new(&original.options);
        let nodes = original.nodes.len();
        let per_node_len = if per_node { nodes } else { 0 };
        let junctions: Vec<usize> = (0..nodes)
            .filter(|&i| matches!(original.nodes[i].kind, NodeKind::Junction(_)))
            .collect();
        let junctions_in_place =
            (junctions.iter().enumerate()).all(|(k, &j)| k == j && map.get(j) == Some(&j));
        let head_star = required_pressure / units.pressure * units.head;
        // One step per hydraulic step (and a few more at tank and control events): room
        // enough that the series rarely grow, bounded against odd time options.
        let times = &run_network.times;
        let steps = (times.duration / times.hydraulic_step.max(1)).min(4096) as usize + 8;
        Self {
            map,
            schedule: DemandSchedule::new(original, &junctions),
            required_head: (junctions.iter())
                .map(|&j| head_star + node_elevation(&original.nodes[j]))
                .collect(),
            full_demand: vec![0.0; junctions.len()],
            junctions,
            full_demand_period: None,
            full_demand_rows: Vec::new(),
            full_demand_known: Vec::new(),
            reservoirs: (0..run_network.nodes.len())
                .filter(|&i| matches!(run_network.nodes[i].kind, NodeKind::Reservoir(_)))
                .collect(),
            pumps: (0..run_network.links.len())
                .filter(|&l| matches!(run_network.links[l].kind, LinkKind::Pump(_)))
                .map(|l| (l, run_network.links[l].from, run_network.links[l].to))
                .collect(),
            required_pressure,
            to_m3: M3_PER_FT3 / units.flow,
            per_node,
            junctions_in_place,
            pending: vec![(0.0, 0.0); per_node_len],
            series: Series {
                t: Vec::with_capacity(steps),
                weight: Vec::new(),
                below: Vec::with_capacity(steps),
                unmet: Vec::with_capacity(steps),
                required: Vec::with_capacity(steps),
                todini: Vec::with_capacity(steps),
                service: vec![Vec::new(); per_node_len],
                node_required_m3: vec![0.0; per_node_len],
                node_unmet_m3: vec![0.0; per_node_len],
                node_min_pressure: vec![f64::INFINITY; per_node_len],
            },
        }
    }

    fn push(&mut self, step: &impl StepValues) {
        let t = step.t();
        if let Some(&last) = self.series.t.last() {
            self.add_pending_volumes(t.saturating_sub(last) as f64);
        }
        let period = self.schedule.period(t);
        if self.full_demand_period != Some(period) {
            self.load_full_demand(period);
        }
        let (mut below, mut unmet, mut required) = (0, 0.0, 0.0);
        let (mut p_out, mut p_exp, mut p_in) = (0.0, 0.0, 0.0);
        let s = &mut self.series;
        let junctions = self.junctions.iter().zip(&self.full_demand);
        if self.per_node {
            for ((&j, &full), &required_head) in junctions.zip(&self.required_head) {
                let at = self.map[j];
                let delivered = step.demand(at);
                let short = (full - delivered).max(0.0);
                let pressure = step.pressure(at);
                if pressure < self.required_pressure {
                    below += 1;
                }
                unmet += short;
                required += full;
                s.node_min_pressure[j] = s.node_min_pressure[j].min(pressure);
                s.service[j].push(if full > 0.0 { delivered / full } else { 1.0 });
                self.pending[j] = (full, short);
                p_out += delivered * step.head(at);
                p_exp += delivered * required_head;
            }
        } else {
            // The totals alone (every period of a criticality sweep): the same sums in the
            // same order, without the per-junction bookkeeping.
            let required_pressure = self.required_pressure;
            let mut add = |(delivered, node_pressure, node_head): (f64, f64, f64),
                           full: f64,
                           required_head: f64| {
                below += usize::from(node_pressure < required_pressure);
                unmet += (full - delivered).max(0.0);
                required += full;
                p_out += delivered * node_head;
                p_exp += delivered * required_head;
            };
            let leading = (self.junctions_in_place)
                .then(|| step.leading(self.junctions.len()))
                .flatten();
            if let Some(values) = leading {
                let values = values.zip(&self.full_demand).zip(&self.required_head);
                for ((values, &full), &required_head) in values {
                    add(values, full, required_head);
                }
            } else {
                for ((&j, &full), &required_head) in junctions.zip(&self.required_head) {
                    if let Some(values) = step.node(self.map[j]) {
                        add(values, full, required_head);
                    }
                }
            }
        }
        for &i in &self.reservoirs {
            p_in -= step.demand(i) * step.head(i);
        }
        for &(l, from, to) in &self.pumps {
            let flow = step.flow(l);
            if flow > 0.0 {
                p_in += flow * (step.head(to) - step.head(from)).abs();
            }
        }
        let denominator = p_in - p_exp;
        s.todini.push(if denominator != 0.0 {
            (p_out - p_exp) / denominator
        } else {
            0.0
        });
        s.t.push(t);
        s.below.push(below);
        s.unmet.push(unmet);
        s.required.push(required);
    }

    /// Sets `full_demand` to pattern period `period`'s.
    fn load_full_demand(&mut self, period: usize) {
        /// Most full demands kept (32 MB).
        const MAX_KEPT: usize = 1 << 22;
        let n = self.full_demand.len();
        let end = (period.saturating_add(1))
            .checked_mul(n)
            .filter(|&end| !self.per_node && n > 0 && end <= MAX_KEPT);
        let Some(end) = end else {
            self.schedule.fill(period, &mut self.full_demand);
            self.full_demand_period = Some(period);
            return;
        };
        let row = end - n..end;
        if self.full_demand_known.get(period) == Some(&true) {
            self.full_demand
                .copy_from_slice(&self.full_demand_rows[row]);
        } else {
            self.schedule.fill(period, &mut self.full_demand);
            if self.full_demand_rows.len() < end {
                self.full_demand_rows.resize(end, 0.0);
            }
            if self.full_demand_known.len() <= period {
                self.full_demand_known.resize(period + 1, false);
            }
            self.full_demand_rows[row].copy_from_slice(&self.full_demand);
            self.full_demand_known[period] = true;
        }
        self.full_demand_period = Some(period);
    }

    fn add_pending_volumes(&mut self, weight: f64) {
        let s = &mut self.series;
        for (j, &(full, short)) in self.pending.iter().enumerate() {
            s.node_required_m3[j] += full * weight * self.to_m3;
            s.node_unmet_m3[j] += short * weight * self.to_m3;
        }
    }

    /// The series of a run that ends at `duration` seconds.
    fn finish(mut self, duration: u64) -> Series {
        self.weigh(duration);
        self.series
    }

    /// Weights the steps of a run that ends at `duration` seconds.
    fn weigh(&mut self, duration: u64) {
        if let Some(&last) = self.series.t.last() {
            self.add_pending_volumes(duration.saturating_sub(last) as f64);
        }
        let s = &mut self.series;
        s.weight.clear();
        s.weight.extend((0..s.t.len()).map(|k| {
            let next = s.t.get(k + 1).copied().unwrap_or(duration);
            next.saturating_sub(s.t[k]) as f64
        }));
    }

    /// Forgets the steps pushed so far, for the next run of the same network.
    fn clear(&mut self) {
        let s = &mut self.series;
        for values in [&mut s.weight, &mut s.unmet, &mut s.required, &mut s.todini] {
            values.clear();
        }
        s.t.clear();
        s.below.clear();
        for service in &mut s.service {
            service.clear();
        }
        s.node_required_m3.fill(0.0);
        s.node_unmet_m3.fill(0.0);
        s.node_min_pressure.fill(f64::INFINITY);
        self.pending.fill((0.0, 0.0));
    }
}

/// Analyses one run; `map` gives each original node's index in `run_network`.
pub(super) fn series(
    original: &Network,
    run_network: &Network,
    results: &SimResults,
    map: &[usize],
    required_pressure: f64,
) -> Series {
    let mut builder = SeriesBuilder::new(original, run_network, map, required_pressure, true);
    for step in &results.steps {
        builder.push(step);
    }
    builder.finish(run_network.times.duration)
}

impl Series {
    pub(super) fn summary(&self, to_m3: f64) -> RunSummary {
        let volume = |v: &[f64]| -> f64 {
            v.iter().zip(&self.weight).map(|(q, w)| q * w).sum::<f64>() * to_m3
        };
        let required_m3 = volume(&self.required);
        let unmet_m3 = volume(&self.unmet);
        RunSummary {
            required_m3,
            delivered_m3: required_m3 - unmet_m3,
            unmet_m3,
            unmet_percent: percent(unmet_m3, required_m3),
            max_nodes_below_required: self.below.iter().copied().max().unwrap_or(0),
            node_hours_below_required: self
                .below
                .iter()
                .zip(&self.weight)
                .map(|(&n, w)| n as f64 * w / 3600.0)
                .sum(),
            min_todini: self.todini.iter().copied().fold(f64::INFINITY, f64::min),
            water_service_availability: if required_m3 > 0.0 {
                1.0 - unmet_m3 / required_m3
            } else {
                1.0
            },
        }
    }

    /// The step in force at `t` (the last one at or before it).
    pub(super) fn at(&self, t: u64) -> usize {
        self.t.partition_point(|&s| s <= t).saturating_sub(1)
    }
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}

pub(super) fn wsa(unmet: f64, required: f64) -> f64 {
    if required > 0.0 {
        1.0 - unmet / required
    } else {
        1.0
    }
}

/// The totals of one run over the original network's junctions (`map`: each original node's
/// index in `run_network`).
pub fn summarize(
    original: &Network,
    run_network: &Network,
    results: &SimResults,
    map: &[usize],
    required_pressure: f64,
) -> RunSummary {
    let mut summary = SummaryBuilder::new(original, run_network, map, required_pressure);
    for step in &results.steps {
        summary.push(step);
    }
    summary.finish(run_network.times.duration)
}

/// [`summarize`] one step at a time, for runs whose steps are not kept.
pub struct SummaryBuilder<'a>(SeriesBuilder<'a>);

impl<'a> SummaryBuilder<'a> {
    pub fn new(
        original: &'a Network,
        run_network: &Network,
        map: &'a [usize],
        required_pressure: f64,
    ) -> Self {
        Self(SeriesBuilder::new(
            original,
            run_network,
            map,
            required_pressure,
            false,
        ))
    }

    pub fn push(&mut self, step: &StepResult) {
        self.0.push(step);
    }

    /// [`SummaryBuilder::push`] of the period that `state` holds, solved at `t` seconds on
    /// `network` (a [`hydraulics::solver::PeriodRun`]'s): the same totals, without writing
    /// the period's results out.
    pub fn push_state(&mut self, t: u64, network: &HydNetwork, state: &HydState) {
        self.0.push(&SolvedState {
            t,
            values: StateValues::new(network, state),
            junctions: network.junctions,
            nodes: network.nodes.len(),
        });
    }

    /// The totals of the run, which ended at `duration` seconds.
    pub fn finish(self, duration: u64) -> RunSummary {
        let to_m3 = self.0.to_m3;
        self.0.finish(duration).summary(to_m3)
    }

    /// [`SummaryBuilder::finish`] that keeps the builder for the next run of the same
    /// networks, emptied.
    pub fn finish_and_clear(&mut self, duration: u64) -> RunSummary {
        self.0.weigh(duration);
        let summary = self.0.series.summary(self.0.to_m3);
        self.0.clear();
        summary
    }
}
