//! Coefficients of the linearized network equations (EPANET's `hydcoeffs.c` and the solver
//! side of `leakage.c`): for every link its inverse head loss gradient `P` and flow
//! correction `Y`, then the junction matrix `A` and right-hand side `F`, including emitters,
//! pressure-driven demands, pipe leakage and the control valves' special equations.

use super::curves::segment;
use super::data::{HydCurve, HydLink, HydNetwork, HydState, LinkType, PumpType, Status, MISSING};
use super::fork_join::{Helper, SharedSlice, Wait};
use super::linear::LinearSystem;
use super::vector_math::abs_powers;
use crate::model::HeadlossFormula;
use crate::units::UnitFactors;
use darcy_weisbach::{
    darcy_weisbach_pass, swamee_jain_terms, DarcyWeisbachPipe, DarcyWeisbachPipes,
};
pub(crate) use nodes::{demand_headloss, emitter_headloss, leakage_headloss, NodeLeakage};
use nodes::{demand_matrix_coeffs, emitter_matrix_coeffs, leakage_matrix_coeffs, node_leakage};
use power_law::{power_law_pass, PowerLawConstants, PowerLawPart, PowerLawPipes};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Tiny and huge coefficients: the conductance of a closed link is `1/CBIG`, the resistance
/// of an open valve without minor loss `CSMALL`.
pub(crate) const CSMALL: f64 = 1.0e-6;
pub(crate) const CBIG: f64 = 1.0e8;
const TINY: f64 = 1.0e-6;
/// Converts a minor loss coefficient to `head = km q^2` form for a diameter in ft:
/// 8 / (g pi^2).
pub(crate) const MINOR_LOSS_FACTOR: f64 = 0.02517;

/// A minor loss coefficient `km` (velocity head basis) of a link of diameter `d` ft in
/// `head = km q^2` form, divided by d squared twice as EPANET does (same rounding).
pub(crate) fn minor_loss_per_flow_squared(km: f64, d: f64) -> f64 {
    MINOR_LOSS_FACTOR * km / (d * d) / (d * d)
}

/// Networks with this many links or more compute their link coefficients on several threads:
/// on smaller ones starting the threads each iteration costs more than it saves.
const PARALLEL_MIN_LINKS: usize = 10_000;
/// With a helper thread, the links are shared out in at most this many chunks...
const MAX_LINK_CHUNKS: usize = 64;
/// ... of at least this many links, enough for the vectorized passes.
const MIN_LINK_CHUNK: usize = 128;
/// Threads for the link coefficients: on a 200,000-pipe grid the pass is a small part of
/// the solve next to the factorization, and four threads measured no better than two.
const MAX_THREADS: usize = 2;

/// Smallest pressure range of a pressure-driven demand, ft.
pub(crate) const MIN_PDA_PRESSURE_RANGE: f64 = 0.1;
/// What the scattered per-iteration passes (assembly, flow update) need of one link: they
/// stream through this small array instead of the full link records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkTerms {
    pub from: usize,
    pub to: usize,
    pub link_type: LinkType,
}

/// The pipes' constants as structures of arrays, for the vectorized passes (an array of
/// per-link enums would keep the compiler from running several links at a time).
#[derive(Clone)]
struct PipeArrays {
    /// Whether pipes follow the power law (Hazen-Williams, Chezy-Manning) rather than
    /// Darcy-Weisbach.
    power_law_network: bool,
    /// The power-law pipes' constants (empty arrays on Darcy-Weisbach networks).
    power_law: PowerLawPipes,
    /// The Darcy-Weisbach pipes' constants (empty arrays on other networks).
    darcy_weisbach: DarcyWeisbachPipes,
    /// The links that are not pipes, ascending: their coefficients are computed one by one
    /// after the vectorized pass.
    others: Vec<usize>,
}

impl PipeArrays {
    fn new(network: &HydNetwork) -> Self {
        let (links, options) = (&network.links, &network.options);
        let power_law_network = options.headloss != HeadlossFormula::DarcyWeisbach;
        let darcy_weisbach: Vec<Option<DarcyWeisbachPipe>> = if power_law_network {
            Vec::new()
        } else {
            let pipe = |link: &HydLink| {
                link.link_type
                    .is_pipe()
                    .then(|| DarcyWeisbachPipe::new(link, options))
            };
            links.iter().map(pipe).collect()
        };
        Self {
            power_law_network,
            power_law: PowerLawPipes::new(links, options, power_law_network),
            darcy_weisbach: DarcyWeisbachPipes::new(&darcy_weisbach),
            others: (0..links.len())
                .filter(|&k| !links[k].link_type.is_pipe())
                .collect(),
        }
    }

    /// Links `first..end`.
    fn part(&self, first: usize, end: usize) -> LinkPart<'_> {
        let others = &self.others;
        let (from, to) = (
            others.partition_point(|&k| k < first),
            others.partition_point(|&k| k < end),
        );
        LinkPart {
            first,
            power_law_network: self.power_law_network,
            power_law: self.power_law.part(first, end),
            others: &others[from..to],
            darcy_weisbach: &self.darcy_weisbach,
        }
    }
}

/// One thread's share of the links: `first` and the per-link arrays from it on.
struct LinkPart<'a> {
    first: usize,
    /// Whether pipes follow the power law rather than Darcy-Weisbach.
    power_law_network: bool,
    power_law: PowerLawPart<'a>,
    /// The links of this part that are not pipes (global indices).
    others: &'a [usize],
    darcy_weisbach: &'a DarcyWeisbachPipes,
}

/// Work arrays of one solve, allocated once per network.
#[derive(Clone)]
pub(crate) struct Workspace {
    /// Per link: its end nodes and type.
    pub links: Vec<LinkTerms>,
    /// The pipes' constants.
    pipe_arrays: PipeArrays,
    /// Junctions with an emitter.
    pub emitters: Vec<usize>,
    /// Per link: inverse head loss gradient and flow correction.
    pub p: Vec<f64>,
    pub y: Vec<f64>,
    /// Per node: flow excess (inflow - outflow) of the current iterate.
    pub xflow: Vec<f64>,
    /// Per junction: the full (required) demand of this period.
    pub full_demand: Vec<f64>,
    /// Per junction; empty when no pipe leaks.
    pub leakage: Vec<NodeLeakage>,
    /// Fraction of each flow change applied (1, or 0.6 once DAMPLIMIT is reached).
    pub relax: f64,
}

impl Workspace {
    pub(crate) fn new(network: &HydNetwork) -> Self {
        let nodes = network.nodes.len();
        Self {
            links: network
                .links
                .iter()
                .map(|link| LinkTerms {
                    from: link.from,
                    to: link.to,
                    link_type: link.link_type,
                })
                .collect(),
            pipe_arrays: PipeArrays::new(network),
            emitters: (0..network.junctions)
                .filter(|&i| network.nodes[i].emitter_coeff != 0.0)
                .collect(),
            p: vec![0.0; network.links.len()],
            y: vec![0.0; network.links.len()],
            xflow: vec![0.0; nodes],
            full_demand: vec![0.0; network.junctions],
            leakage: node_leakage(network),
            relax: 1.0,
        }
    }
}

/// Barrier terms keeping a flow above a lower limit (`dq` = flow - limit) ...
pub(crate) fn add_lower_barrier(dq: f64, hloss: &mut f64, hgrad: &mut f64) {
    let a = 1.0e9 * dq;
    let b = (a * a + 1.0e-6).sqrt();
    *hloss += (a - b) / 2.0;
    *hgrad += (1.0e9 / 2.0) * (1.0 - a / b);
}

/// ... or below an upper limit (`dq` = flow - limit).
fn add_upper_barrier(dq: f64, hloss: &mut f64, hgrad: &mut f64) {
    let a = 1.0e9 * dq;
    let b = (a * a + 1.0e-6).sqrt();
    *hloss += (a + b) / 2.0;
    *hgrad += (1.0e9 / 2.0) * (1.0 + a / b);
}

/// A positional control valve's loss coefficient at `setting` percent open, from its curve of
/// flow-coefficient ratio against opening (linear when it has none).
pub(crate) fn pcv_loss_coeff(link: &HydLink, setting: f64, curves: &[HydCurve]) -> f64 {
    if setting == MISSING {
        return 0.0;
    }
    let open_loss = link.minor_loss;
    if setting >= 100.0 {
        return open_loss;
    }
    if setting <= 0.0 {
        return CBIG;
    }
    let ratio_percent = match link
        .curve
        .and_then(|c| curves.get(c))
        .filter(|c| !c.x.is_empty())
    {
        None => setting,
        Some(curve) => {
            let (x, y) = (&curve.x, &curve.y);
            let last = x.len() - 1;
            if setting < x[0] {
                setting / x[0] * y[0]
            } else if setting > x[last] {
                (setting - x[last]) / (1.0 - x[last]) * (1.0 - y[last]) + y[last]
            } else {
                let (intercept, slope) = segment(x, y, setting);
                intercept + slope * setting
            }
        }
    };
    let ratio = (ratio_percent / 100.0).clamp(CSMALL, 1.0);
    (open_loss / (ratio * ratio)).min(CBIG)
}

/// `P` and `Y` of every link at the current flows (EPANET's `headlosscoeffs`).
///
/// On networks of `PARALLEL_MIN_LINKS` links or more the links are shared out over the
/// available cores (at most `MAX_THREADS`); each link's coefficients depend on that link
/// alone, so the results are the same whatever the number of threads.
pub(crate) fn headloss_coeffs(network: &HydNetwork, state: &HydState, work: &mut Workspace) {
    let count = work.links.len();
    let threads = if count >= PARALLEL_MIN_LINKS {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
    } else {
        1
    };
    let pipes = &work.pipe_arrays;
    if threads > 1 {
        let chunk = count.div_ceil(threads);
        let all_started = std::thread::scope(|scope| {
            let mut parts = work.p.chunks_mut(chunk).zip(work.y.chunks_mut(chunk));
            let own_part = parts.next();
            let mut all_started = true;
            for (index, (p, y)) in parts.enumerate() {
                let first = (index + 1) * chunk;
                let links = pipes.part(first, first + p.len());
                let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                    link_coeffs(network, state, links, p, y);
                });
                all_started &= spawned.is_ok();
            }
            if let Some((p, y)) = own_part {
                link_coeffs(network, state, pipes.part(0, p.len()), p, y);
            }
            all_started
        });
        if all_started {
            return;
        }
    }
    // Also the fallback when a thread could not be started: recomputing a link gives the
    // same coefficients again.
    link_coeffs(
        network,
        state,
        pipes.part(0, count),
        &mut work.p,
        &mut work.y,
    );
}

/// `P` and `Y` of the consecutive links of `links`: the pipes in a vectorized pass of their
/// law, then the other links one by one.
fn link_coeffs(
    network: &HydNetwork,
    state: &HydState,
    links: LinkPart<'_>,
    p: &mut [f64],
    y: &mut [f64],
) {
    let first = links.first;
    let part = first..first + p.len();
    let flows = state.flow.get(part.clone()).unwrap_or_default();
    let statuses = state.status.get(part).unwrap_or_default();
    if links.power_law_network {
        let law = PowerLawConstants::new(&network.options);
        // `p` holds each link's `|q|^(hexp - 1)` until the link's coefficients replace it.
        abs_powers(flows, law.gradient_exponent, p);
        power_law_pass(&law, links.power_law, flows, statuses, p, y);
    } else if !links.darcy_weisbach.is_empty() {
        // Each turbulent Darcy-Weisbach pipe's `p` and `y` hold its Swamee-Jain terms until
        // its coefficients replace them.
        swamee_jain_terms(links.darcy_weisbach, first, flows, p, y);
        darcy_weisbach_pass(links.darcy_weisbach, first, flows, statuses, p, y);
    }
    for &k in links.others {
        let offset = k - first;
        if let (Some(p), Some(y)) = (p.get_mut(offset), y.get_mut(offset)) {
            (*p, *y) = non_pipe_coeff(network, state, k, *y);
        }
    }
}

/// `P` and `Y` of link `k`, a pump or valve, at its current flow; `previous_y` is kept by a
/// controlling PRV, PSV or FCV, whose equations `valve_matrix_coeffs` writes.
fn non_pipe_coeff(network: &HydNetwork, state: &HydState, k: usize, previous_y: f64) -> (f64, f64) {
    let flow = state.flow[k];
    let status = state.status[k];
    let link = &network.links[k];
    let setting = state.setting[k];
    let rqtol = network.options.rqtol;
    match link.link_type {
        // Pipes get their coefficients from their law's pass.
        LinkType::Pipe | LinkType::CvPipe => closed_coeff(flow),
        LinkType::Pump => pump_coeff(network, link, flow, status, setting),
        LinkType::Pbv => pbv_coeff(link, flow, status, setting, rqtol),
        LinkType::Tcv => {
            let d_squared = link.diameter * link.diameter;
            let km = if setting == MISSING {
                link.minor_loss
            } else {
                MINOR_LOSS_FACTOR * setting / (d_squared * d_squared)
            };
            valve_coeff(km, flow, status, rqtol)
        }
        LinkType::Pcv => {
            let km = if setting == MISSING {
                link.minor_loss
            } else {
                pcv_loss_coeff(link, setting, &network.curves)
            };
            valve_coeff(km, flow, status, rqtol)
        }
        LinkType::Gpv => gpv_coeff(network, link, flow, status),
        LinkType::Prv | LinkType::Psv | LinkType::Fcv => {
            if setting == MISSING {
                valve_coeff(link.minor_loss, flow, status, rqtol)
            } else {
                // Controlling valves get their equations in `valve_matrix_coeffs`.
                (0.0, previous_y)
            }
        }
    }
}

/// `P` and `Y` a vectorized pass of a pipe law gives a link, without a branch: those of the
/// open pipe of gradient and (signed) head loss `open`, those of a closed link, or, for a link
/// that is not a pipe of the law, a meaningless `P` and its `Y` kept (a controlling valve's
/// state, for the caller to finish).
#[inline(always)]
fn pass_coeffs(open: (f64, f64), flow: f64, status: Status, is_pipe: bool, y: f64) -> (f64, f64) {
    let (hgrad, hloss) = open;
    let (open_p, open_y) = (1.0 / hgrad, hloss / hgrad);
    let closed = status <= Status::Closed;
    let p = if closed { 1.0 / CBIG } else { open_p };
    let y = if !is_pipe {
        y
    } else if closed {
        flow
    } else {
        open_y
    };
    (p, y)
}

/// Coefficients of a closed link: `h = CBIG q`.
fn closed_coeff(flow: f64) -> (f64, f64) {
    (1.0 / CBIG, flow)
}

fn pump_coeff(
    network: &HydNetwork,
    link: &HydLink,
    flow: f64,
    status: Status,
    setting: f64,
) -> (f64, f64) {
    if status.is_closed() || setting == 0.0 {
        return closed_coeff(flow);
    }
    let Some(pump) = link.pump.and_then(|p| network.pumps.get(p)) else {
        return closed_coeff(flow);
    };
    let q = flow.abs();
    let rqtol = network.options.rqtol;
    let (hloss, hgrad) = match pump.pump_type {
        PumpType::NoCurve => return (1.0 / CSMALL, flow),
        PumpType::Custom => {
            let Some(curve) = pump.head_curve.and_then(|c| network.curves.get(c)) else {
                return closed_coeff(flow);
            };
            // The curve's segment at the speed-adjusted flow, as a head loss.
            let (h0, r) = head_curve_segment(curve, q / setting, &network.units);
            let hgrad = -r * setting;
            (-h0 * (setting * setting) + hgrad * flow, hgrad)
        }
        PumpType::ConstHp => {
            // 2 - n with EPANET's exponent -1 of a constant power pump.
            let r = pump.r * setting.powf(3.0);
            let hgrad = -r / q / q;
            if hgrad > CBIG {
                return closed_coeff(flow);
            }
            if hgrad < CSMALL {
                return (1.0 / CSMALL, flow);
            }
            (r / flow, hgrad)
        }
        PumpType::PowerFunc => {
            let h0 = setting * setting * pump.h0;
            let n = if (pump.n - 1.0).abs() < TINY {
                1.0
            } else {
                pump.n
            };
            let r = pump.r * setting.powf(2.0 - n);
            if n != 1.0 {
                let hgrad = n * r * power(q, n - 1.0);
                if hgrad < rqtol {
                    (h0 + rqtol * flow, rqtol)
                } else {
                    (h0 + hgrad * flow / n, hgrad)
                }
            } else {
                (h0 + r * flow, r)
            }
        }
    };
    (1.0 / hgrad, hloss / hgrad)
}

/// An open, closed or throttled valve with loss coefficient `km` (EPANET's `valvecoeff`).
fn valve_coeff(km: f64, flow: f64, status: Status, rqtol: f64) -> (f64, f64) {
    if status.is_closed() {
        return closed_coeff(flow);
    }
    if km > 0.0 {
        let q = flow.abs();
        let mut hgrad = 2.0 * km * q;
        let hloss = if hgrad < rqtol {
            hgrad = rqtol / 2.0;
            flow * hgrad
        } else {
            flow * hgrad / 2.0
        };
        (1.0 / hgrad, hloss / hgrad)
    } else {
        (1.0 / CSMALL, flow)
    }
}

/// The segment of a pump head curve or GPV head loss curve (kept in file units, as EPANET
/// keeps them) that brackets flow `q` cfs, as (intercept ft, slope ft/cfs): the flow is
/// converted to file units and the segment back, in EPANET's `curvecoeff` order.
fn head_curve_segment(curve: &HydCurve, q: f64, units: &UnitFactors) -> (f64, f64) {
    let (h0, r) = segment(&curve.x, &curve.y, q * units.flow);
    (h0 / units.head, r * units.flow / units.head)
}

fn gpv_coeff(network: &HydNetwork, link: &HydLink, flow: f64, status: Status) -> (f64, f64) {
    let curve = link.curve.and_then(|c| network.curves.get(c));
    match curve {
        Some(curve) if status != Status::Closed => {
            let q = flow.abs().max(TINY);
            let (h0, r) = head_curve_segment(curve, q, &network.units);
            let r = r.max(TINY);
            (1.0 / r, times_sign_of(h0 / r + q, flow))
        }
        _ => valve_coeff(link.minor_loss, flow, status, network.options.rqtol),
    }
}

/// A pressure breaker valve forces its setting as head loss unless its open-valve loss is
/// already larger.
fn pbv_coeff(link: &HydLink, flow: f64, status: Status, setting: f64, rqtol: f64) -> (f64, f64) {
    if setting == MISSING || setting == 0.0 || link.minor_loss * flow * flow > setting {
        return valve_coeff(link.minor_loss, flow, status, rqtol);
    }
    (CBIG, setting * CBIG)
}

/// Computes every link's `P` and `Y` at the current flows and fills the linear system
/// `A H = F` for the current iterate (EPANET's `headlosscoeffs` and `matrixcoeffs`).
pub(crate) fn matrix_coeffs(
    network: &HydNetwork,
    state: &mut HydState,
    work: &mut Workspace,
    system: &mut LinearSystem,
    helper: Option<&Helper>,
) {
    system.clear();
    work.xflow.fill(0.0);
    link_matrix_coeffs(network, state, work, system, helper);
    emitter_matrix_coeffs(network, state, work, system);
    demand_matrix_coeffs(network, state, work, system);
    leakage_matrix_coeffs(network, work, system);
    let junctions = network.junctions;
    let demands = state.demand_flow.iter();
    for (excess, &demand) in work.xflow[..junctions].iter_mut().zip(demands) {
        *excess -= demand;
    }
    system.add_to_rhs(&work.xflow[..junctions]);
    valve_matrix_coeffs(network, state, work, system);
}

/// Each link's coefficients, its flow's contribution to the flow excess of its end nodes, and
/// its contributions to `A` and `F`.
fn link_matrix_coeffs(
    network: &HydNetwork,
    state: &HydState,
    work: &mut Workspace,
    system: &mut LinearSystem,
    helper: Option<&Helper>,
) {
    // The coefficients first, in a pass of their own (shared out over threads on large
    // networks): their long chains of divisions overlap better without the scattered
    // updates of the assembly in the same loop.
    let (heads, flows) = (&state.head, &state.flow);
    let Some(helper) = helper else {
        headloss_coeffs(network, state, work);
        system.add_links(0, &work.p, &work.y, heads, flows, &mut work.xflow);
        return;
    };
    // Both threads take chunks of links in order and compute their coefficients; this
    // thread also assembles each chunk, in link order as always, as soon as it is done (by
    // either thread), and takes a new chunk when the next one to assemble is not done yet.
    // A helper slowed down by the rest of the machine then simply takes fewer chunks.
    let count = work.links.len();
    let chunk = count.div_ceil(MAX_LINK_CHUNKS).max(MIN_LINK_CHUNK);
    let chunks = count.div_ceil(chunk);
    let done: [AtomicBool; MAX_LINK_CHUNKS] = [const { AtomicBool::new(false) }; MAX_LINK_CHUNKS];
    let next_chunk = AtomicUsize::new(0);
    let pipes = &work.pipe_arrays;
    let (p, y) = (SharedSlice::new(&mut work.p), SharedSlice::new(&mut work.y));
    let chunk_links = |index: usize| index * chunk..((index + 1) * chunk).min(count);
    let compute_chunk = || {
        let taken = next_chunk.fetch_add(1, Ordering::Relaxed);
        if taken >= chunks {
            return false;
        }
        let links = chunk_links(taken);
        // SAFETY: the counter gives each chunk to one thread, chunks do not overlap, and a
        // chunk is read for its assembly only once it is marked done; the arrays outlive
        // the join.
        let (p, y) = unsafe { (p.range_mut(links.clone()), y.range_mut(links.clone())) };
        link_coeffs(network, state, pipes.part(links.start, links.end), p, y);
        done[taken].store(true, Ordering::Release);
        true
    };
    let xflow = &mut work.xflow;
    helper.join(
        || {
            let mut assembled = 0;
            let mut wait = Wait::new();
            while assembled < chunks {
                if done[assembled].load(Ordering::Acquire) {
                    let links = chunk_links(assembled);
                    // SAFETY: a done chunk is no longer written (see above).
                    let (p, y) = unsafe { (p.range(links.clone()), y.range(links.clone())) };
                    system.add_links(links.start, p, y, heads, flows, xflow);
                    assembled += 1;
                } else if !compute_chunk() {
                    // The helper is computing the next chunk to assemble.
                    wait.pause();
                }
            }
        },
        || while compute_chunk() {},
    );
}

/// Equations of PRVs, PSVs and FCVs that control (setting not missing): an active PRV (PSV)
/// fixes its downstream (upstream) head at the setting, an active FCV becomes a demand and a
/// supply of its setting, any other state is an open or closed valve.
fn valve_matrix_coeffs(
    network: &HydNetwork,
    state: &HydState,
    work: &mut Workspace,
    system: &mut LinearSystem,
) {
    let junctions = network.junctions;
    let rqtol = network.options.rqtol;
    // Adds to the row of a junction only; EPANET's rows of fixed-head nodes are never solved.
    let add_diag = |system: &mut LinearSystem, node: usize, v: f64| {
        if node < junctions {
            system.add_diagonal(node, v);
        }
    };
    let add_rhs = |system: &mut LinearSystem, node: usize, v: f64| {
        if node < junctions {
            system.add_rhs(node, v);
        }
    };
    for &k in &network.valves {
        let setting = state.setting[k];
        if setting == MISSING {
            continue;
        }
        let link = &network.links[k];
        let (n1, n2) = (link.from, link.to);
        let flow = state.flow[k];
        let status = state.status[k];
        let active = status == Status::Active;
        match link.link_type {
            LinkType::Prv if active => {
                let hset = network.nodes[n2].elevation + setting;
                work.p[k] = 0.0;
                work.y[k] = flow + work.xflow[n2];
                add_rhs(system, n2, hset * CBIG);
                add_diag(system, n2, CBIG);
                if work.xflow[n2] < 0.0 {
                    add_rhs(system, n1, work.xflow[n2]);
                }
                continue;
            }
            LinkType::Psv if active => {
                let hset = network.nodes[n1].elevation + setting;
                work.p[k] = 0.0;
                work.y[k] = flow - work.xflow[n1];
                add_rhs(system, n1, hset * CBIG);
                add_diag(system, n1, CBIG);
                if work.xflow[n1] > 0.0 {
                    add_rhs(system, n2, work.xflow[n1]);
                }
                system.add_off_diagonal(k, -1.0 / CBIG);
                add_diag(system, n2, 1.0 / CBIG);
                continue;
            }
            LinkType::Fcv if active => {
                work.xflow[n1] -= setting;
                work.xflow[n2] += setting;
                work.y[k] = flow - setting;
                add_rhs(system, n1, -setting);
                add_rhs(system, n2, setting);
                let p = 1.0 / CBIG;
                work.p[k] = p;
                system.add_off_diagonal(k, -p);
                add_diag(system, n1, p);
                add_diag(system, n2, p);
                continue;
            }
            LinkType::Prv | LinkType::Psv | LinkType::Fcv => {}
            _ => continue,
        }
        let (p, y) = valve_coeff(link.minor_loss, flow, status, rqtol);
        work.p[k] = p;
        work.y[k] = y;
        system.add_off_diagonal(k, -p);
        add_diag(system, n1, p);
        add_diag(system, n2, p);
        add_rhs(system, n1, y - flow);
        add_rhs(system, n2, -(y - flow));
    }
}

/// `x` to the power `exponent` as C's `pow` gives it, without the call where its result is
/// known exactly: `pow(x, 1)` is `x` (pressure-driven demands and fixed-area leaks with
/// exponent 0.5 raise to `1 / 0.5 - 1`).
#[inline]
pub(crate) fn power(x: f64, exponent: f64) -> f64 {
    if exponent == 1.0 {
        x
    } else {
        x.powf(exponent)
    }
}

/// `value * SGN(flow)` with EPANET's `SGN` (0 for a zero flow), without the multiplication
/// where it is exact: by 1 or -1 the product is `value` or `-value`.
#[inline]
fn times_sign_of(value: f64, flow: f64) -> f64 {
    if flow > 0.0 {
        value
    } else if flow < 0.0 {
        -value
    } else {
        value * 0.0
    }
}

mod darcy_weisbach;
mod nodes;
mod power_law;

#[cfg(test)]
mod tests;
