//! Where each period of a failure run starts its Newton iterations: the failure's own
//! first-order change or the baseline's (see [`WarmStart`]), and a closed link's flow rerouted
//! for the first period ([`Response::closure`]).

use super::BasePeriod;
use hydraulics::solver::data::{HydNetwork, HydState, Status};
use hydraulics::solver::{Linearization, Solver};

/// The delivered demand a junction starts a period with: the same share of its full demand
/// `full` as it delivered (`delivered_before`) of `full_before` in the period before.
fn delivered_share(full: f64, full_before: f64, delivered_before: f64) -> f64 {
    if full > 0.0 && full_before > 0.0 {
        (full * delivered_before / full_before).clamp(0.0, full)
    } else {
        full
    }
}

/// Whether every link has the same status in `a` and `b`: one pass without an early exit,
/// which the compiler vectorizes, where the slices' `==` compares link by link (a fifth of a
/// prediction's cost on Net6's 3,000 links, most of them compared for nothing).
fn same_statuses(a: &[Status], b: &[Status]) -> bool {
    a.len() == b.len()
        && (a.iter().zip(b)).fold(0, |differ, (&a, &b)| differ | (a as u8 ^ b as u8)) == 0
}

/// The first-order change of a run's flows from one period to the next: the response of the
/// last period's linearization (its factor kept by the solver) to the new period's change of
/// demands and tank and reservoir heads.
pub(super) struct Response {
    /// The last period's heads, by node, and its junctions' full demands.
    head: Vec<f64>,
    full: Vec<f64>,
    /// The full demands of the period before the one being seeded.
    full_before: Vec<f64>,
    demand_change: Vec<f64>,
    head_change: Vec<f64>,
    flow_change: Vec<f64>,
}

impl Response {
    pub(super) fn new(hyd: &HydNetwork) -> Self {
        let junctions = hyd.junctions;
        Self {
            head: Vec::new(),
            full: vec![0.0; junctions],
            full_before: vec![0.0; junctions],
            demand_change: vec![0.0; junctions],
            head_change: vec![0.0; hyd.nodes.len()],
            flow_change: vec![0.0; hyd.links.len()],
        }
    }

    /// The change from the last solved period, whose final link statuses are `status` and
    /// delivered demands `delivered`, to the period about to be solved in `state` (its
    /// demands, controls and tank levels set); `None` when a link's status differs (the
    /// linearization no longer holds) or the solver kept no factor. Call once per period.
    pub(super) fn predict(
        &mut self,
        hyd: &HydNetwork,
        solver: &mut Solver,
        state: &HydState,
        previous: Option<(&[Status], &[f64])>,
    ) -> Option<&[f64]> {
        let junctions = self.full.len();
        // The solve replaces the full demands with the outflows: keep them for the next period.
        std::mem::swap(&mut self.full, &mut self.full_before);
        self.full.copy_from_slice(&state.node_demand[..junctions]);
        let (status, delivered) = previous?;
        if self.head.is_empty() || !same_statuses(&state.status, status) {
            return None;
        }
        let demands = self.full.iter().zip(&self.full_before).zip(delivered);
        for (change, ((&full, &full_before), &before)) in self.demand_change.iter_mut().zip(demands)
        {
            *change = delivered_share(full, full_before, before) - before;
        }
        let fixed = junctions..self.head.len();
        for ((change, &now), &then) in (self.head_change[fixed.clone()].iter_mut())
            .zip(&state.head[fixed.clone()])
            .zip(&self.head[fixed])
        {
            *change = now - then;
        }
        let flow_change = &mut self.flow_change;
        (solver.linear_response(hyd, &self.demand_change, &self.head_change, flow_change))
            .then_some(&flow_change[..])
    }

    pub(super) fn remember(&mut self, state: &HydState) {
        self.head.clone_from(&state.head);
    }

    /// The first-order rerouting when `link`, which carried `flow`, closes, under
    /// `linearization` (of the network with the link open): the response to the link's flow
    /// staying in the balance of its end nodes, divided by `1 - p s` (Sherman and Morrison:
    /// the link's own conductance `p` leaves the matrix, and `p s` is the share of that flow
    /// it would carry back). `None` when the closure (nearly) cuts the network in two or
    /// the linearization does not fit.
    pub(super) fn closure(
        &mut self,
        hyd: &HydNetwork,
        solver: &mut Solver,
        linearization: &Linearization,
        link: usize,
        flow: f64,
    ) -> Option<&[f64]> {
        /// Below this `1 - p s` the link is (nearly) a bridge: nothing else can carry its flow.
        const MIN_REMAINING_SHARE: f64 = 1e-3;
        if flow == 0.0 || !solver.restore_linearization(linearization) {
            return None;
        }
        let junctions = hyd.junctions;
        self.demand_change.fill(0.0);
        self.head_change.fill(0.0);
        let ends = &hyd.links[link];
        // The flow that left `from` through the link stays there: less demand at `from`.
        if ends.from < junctions {
            self.demand_change[ends.from] = -flow;
        }
        if ends.to < junctions {
            self.demand_change[ends.to] = flow;
        }
        let flow_change = &mut self.flow_change;
        if !solver.linear_response(hyd, &self.demand_change, &self.head_change, flow_change) {
            return None;
        }
        // NaN (no conductance to respond with) fails the comparison too.
        let remaining = 1.0 - flow_change[link] / flow;
        if remaining.partial_cmp(&MIN_REMAINING_SHARE) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        for change in flow_change.iter_mut() {
            *change /= remaining;
        }
        Some(&flow_change[..])
    }
}

/// Starts each period of a failure run from the failure's own previous period. Where no link
/// changed status since, its flows move by their first-order change under the failure's own
/// linearization (its last Newton step's factor, kept by the solver), to which the second- and
/// higher-order part of the baseline's change between the same two times is added: the
/// failure's own response to the new demands and tank levels, with the curvature of the
/// head losses borrowed from the baseline, which is mostly the same network. Otherwise the
/// flows move by what the baseline's flows did between two of its periods (the failure's
/// rerouting kept, the new period's change added). Those two baseline periods are the ones at
/// the same two times unless the links' statuses there differ from the failure's (a pump
/// switched by a tank control, a link to a full tank closed, at another time than in the
/// baseline): then the baseline period whose statuses are most like the failure's, the
/// nearest in time of those, stands in, so that a switch is added to the flows when the
/// failure switches, not when the baseline does. Each junction delivers the same share of its
/// demand as before. The first period starts from the baseline's first period. Only the
/// starting point changes: the solve still iterates to the network's accuracy.
pub(super) struct WarmStart<'a> {
    base: &'a [BasePeriod],
    /// Links whose status changes during the baseline, those closed for the failure aside:
    /// the statuses compared with the failure's.
    switching: Vec<usize>,
    /// The failure's last solved period: time, link statuses and its junctions' delivered
    /// demands.
    previous: Option<u64>,
    status: Vec<Status>,
    delivered: Vec<f64>,
    response: Response,
    /// The baseline period (its index) chosen to stand for the failure's last period when it
    /// started, with the switching links' statuses it was chosen for: the same choice, made
    /// again for the period once solved, needs no search when no switching link changed in
    /// the solve.
    chosen: Option<(u64, usize)>,
    chosen_for: Vec<Status>,
    /// The one link closed for the failure and the baseline's first linearization: the first
    /// period starts from the baseline's flows with the link's flow rerouted.
    closure: Option<(usize, &'a Linearization)>,
}

impl<'a> WarmStart<'a> {
    pub(super) fn new(
        base: &'a [BasePeriod],
        switching: &[usize],
        hyd: &HydNetwork,
        closed: &[usize],
        closure: Option<(usize, &'a Linearization)>,
    ) -> Self {
        Self {
            base,
            switching: (switching.iter())
                .filter(|link| !closed.contains(link))
                .copied()
                .collect(),
            previous: None,
            status: Vec::new(),
            delivered: vec![0.0; hyd.junctions],
            response: Response::new(hyd),
            chosen: None,
            chosen_for: Vec::new(),
            closure,
        }
    }

    /// Whether the switching links have in `status` the statuses `chosen` was chosen for.
    fn as_chosen(&self, status: &[Status]) -> bool {
        (self.switching.iter().zip(&self.chosen_for))
            .all(|(&link, chosen)| status.get(link) == Some(chosen))
    }

    /// The baseline period in force at `t` (its index).
    fn base_at(&self, t: u64) -> Option<usize> {
        let after = self.base.partition_point(|period| period.t <= t);
        after.checked_sub(1)
    }

    /// How many switching links have in the baseline period the statuses of `status`.
    fn agreeing(&self, period: &BasePeriod, status: &[Status]) -> usize {
        (self.switching.iter())
            .filter(|&&link| period.status.get(link) == status.get(link))
            .count()
    }

    /// The baseline period in force at `t` if its switching links have the statuses of
    /// `status`, else the one where most of them have, the nearest to `t` of those (the
    /// earlier of two as near); its index.
    fn base_like(&self, t: u64, status: &[Status]) -> Option<usize> {
        let at = self.base_at(t)?;
        let all = self.switching.len();
        if self.agreeing(&self.base[at], status) == all {
            return Some(at);
        }
        (0..self.base.len()).min_by_key(|&index| {
            let period = &self.base[index];
            let disagreeing = all - self.agreeing(period, status);
            (disagreeing, period.t.abs_diff(t))
        })
    }

    pub(super) fn seed(&mut self, hyd: &HydNetwork, solver: &mut Solver, state: &mut HydState) {
        let junctions = self.delivered.len();
        let t = state.time.max(0) as u64;
        let like = self.previous.map(|previous| {
            let before = match self.chosen {
                Some((at, chosen)) if at == previous && self.as_chosen(&self.status) => {
                    Some(chosen)
                }
                _ => self.base_like(previous, &self.status),
            };
            (self.base_like(t, &state.status), before)
        });
        if let Some(like) = like {
            self.chosen = match like {
                (Some(now), Some(_)) => Some((t, now)),
                _ => None,
            };
            if self.chosen.is_some() {
                self.chosen_for.clear();
                (self.chosen_for).extend(self.switching.iter().map(|&link| state.status[link]));
            }
        }
        let previous = (self.previous).map(|_| (&self.status[..], &self.delivered[..]));
        let own = self.response.predict(hyd, solver, state, previous);
        let demands = (state.demand_flow.iter_mut()).zip(&state.node_demand[..junctions]);
        let Some(like) = like else {
            let Some(now) = self.base_at(t) else {
                return;
            };
            let now = &self.base[now];
            let rerouted = (self.closure).and_then(|(link, linearization)| {
                (self.response).closure(hyd, solver, linearization, link, now.flow[link])
            });
            let flows = state.flow.iter_mut().zip(&state.status).zip(&now.flow);
            match rerouted {
                Some(rerouted) => {
                    for (((q, status), &base), &change) in flows.zip(rerouted) {
                        if !status.is_closed() {
                            *q = if change.is_nan() { base } else { base + change };
                        }
                    }
                }
                None => {
                    for ((q, status), &base) in flows {
                        if !status.is_closed() {
                            *q = base;
                        }
                    }
                }
            }
            for ((delivered, &full), &base) in demands.zip(&now.demand_flow) {
                if full > 0.0 {
                    *delivered = base.clamp(0.0, full);
                }
            }
            return;
        };
        let (Some(now), Some(before)) = like else {
            return;
        };
        // The baseline's change beyond its first-order part, where its two periods are the
        // successive ones that part was worked out between.
        let rest = match &self.base[now].nonlinear {
            Some(rest) if before + 1 == now => Some(&rest[..]),
            _ => None,
        };
        let (now, before) = (&self.base[now].flow[..], &self.base[before].flow[..]);
        let flows = (state.flow.iter_mut().zip(&state.status)).zip(now.iter().zip(before));
        // One loop per kind of prediction: most periods of networks with many switches get
        // none, and checking for it link by link would cost them more than it saves.
        match (own, rest) {
            (None, _) => {
                for ((q, status), (&base, &base_before)) in flows {
                    if !status.is_closed() {
                        *q += base - base_before;
                    }
                }
            }
            (Some(own), None) => {
                for (((q, status), (&base, &base_before)), &own) in flows.zip(own) {
                    if !status.is_closed() {
                        *q += if own.is_nan() {
                            base - base_before
                        } else {
                            own
                        };
                    }
                }
            }
            (Some(own), Some(rest)) => {
                for (((q, status), (&base, &base_before)), (&own, &rest)) in
                    flows.zip(own.iter().zip(rest))
                {
                    if status.is_closed() {
                        continue;
                    }
                    *q += if !(own + rest).is_nan() {
                        own + rest
                    } else if !own.is_nan() {
                        own
                    } else {
                        base - base_before
                    };
                }
            }
        }
        let full_before = &self.response.full_before;
        for (((delivered, &full), &full_before), &delivered_before) in
            demands.zip(full_before).zip(&self.delivered)
        {
            if full > 0.0 && full_before > 0.0 {
                *delivered = delivered_share(full, full_before, delivered_before);
            }
        }
    }

    pub(super) fn remember(&mut self, t: u64, state: &HydState) {
        self.previous = Some(t);
        self.status.clone_from(&state.status);
        let junctions = self.delivered.len();
        self.delivered
            .copy_from_slice(&state.demand_flow[..junctions]);
        self.response.remember(state);
    }
}
