//! Coefficients of the linearized network equations (EPANET's `hydcoeffs.c` and the solver
//! side of `leakage.c`): for every link its inverse head loss gradient `P` and flow
//! correction `Y`, then the junction matrix `A` and right-hand side `F`, including emitters,
//! pressure-driven demands, pipe leakage and the control valves' special equations.

use super::curves::segment;
use super::data::{
    HydCurve, HydLink, HydNetwork, HydOptions, HydState, LinkType, PumpType, Status, MISSING,
};
use super::linear::LinearSystem;
use super::vector_math::abs_powers;
use crate::model::HeadlossFormula;
use crate::units::UnitFactors;
use darcy_weisbach::{
    darcy_weisbach_coeff, darcy_weisbach_pass, swamee_jain_terms, DarcyWeisbachPipe,
    DarcyWeisbachPipes, SwameeJainTerms,
};
pub(crate) use nodes::{demand_headloss, emitter_headloss, leakage_headloss, NodeLeakage};
use nodes::{demand_matrix_coeffs, emitter_matrix_coeffs, leakage_matrix_coeffs, node_leakage};

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
/// Threads for the link coefficients: on a 200,000-pipe grid the pass is a small part of
/// the solve next to the factorization, and four threads measured no better than two.
const MAX_THREADS: usize = 2;

/// Smallest pressure range of a pressure-driven demand, ft.
pub(crate) const MIN_PDA_PRESSURE_RANGE: f64 = 0.1;
/// A link's head loss law with its per-pipe constants folded in at set-up, so the Newton
/// loop repeats only the flow-dependent arithmetic (in the same order, hence the same results).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LinkLaw {
    /// Not a pipe: the link's coefficients come from its full record.
    NotPipe(LinkType),
    /// Hazen-Williams or Chezy-Manning: `h = R q^hexp`, kept as `hexp R`.
    Power {
        hexp_resistance: f64,
        minor_loss: f64,
    },
    DarcyWeisbach(DarcyWeisbachPipe),
}

impl LinkLaw {
    fn new(link: &HydLink, options: &HydOptions) -> Self {
        if !link.link_type.is_pipe() {
            Self::NotPipe(link.link_type)
        } else if options.headloss == HeadlossFormula::DarcyWeisbach {
            Self::DarcyWeisbach(DarcyWeisbachPipe::new(link, options))
        } else {
            Self::Power {
                hexp_resistance: options.hexp * link.resistance,
                minor_loss: link.minor_loss,
            }
        }
    }
}

/// What the scattered per-iteration passes (assembly, flow update) need of one link: they
/// stream through this small array instead of the full link records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkTerms {
    pub from: usize,
    pub to: usize,
    pub link_type: LinkType,
}

/// The constants of the power (H-W, C-M) head loss law, the same for every pipe.
#[derive(Debug, Clone, Copy)]
struct PowerLawConstants {
    hexp: f64,
    /// The exponent of the gradient, `hexp - 1`.
    gradient_exponent: f64,
    rqtol: f64,
    /// The gradient of the linear law used near zero flow, `rqtol / hexp`.
    linear_gradient: f64,
    /// Pipes follow this law: the powers `|q|^gradient_exponent` of all links are computed
    /// in one vectorized pass before the coefficients.
    pipes_follow_it: bool,
}

impl PowerLawConstants {
    fn new(options: &HydOptions) -> Self {
        Self {
            hexp: options.hexp,
            gradient_exponent: options.hexp - 1.0,
            rqtol: options.rqtol,
            linear_gradient: options.rqtol / options.hexp,
            pipes_follow_it: options.headloss != HeadlossFormula::DarcyWeisbach,
        }
    }
}

/// The pipes' constants as a structure of arrays: the `LinkLaw` enum keeps the compiler from
/// running the head loss laws' divisions several links at a time, these do not.
#[derive(Clone)]
struct PipeArrays {
    /// Per link: `hexp R` of a power-law pipe, NaN for every other link (the vectorized pass
    /// leaves those links' `y` as it was: a controlling valve keeps its state there).
    hexp_resistance: Vec<f64>,
    /// Per link: the minor loss coefficient of a power-law pipe (0 elsewhere).
    minor_loss: Vec<f64>,
    /// The links that are not pipes of the network's head loss law, ascending: their
    /// coefficients are computed one by one after the vectorized pass.
    others: Vec<usize>,
    /// The Darcy-Weisbach pipes' constants (empty arrays on other networks).
    darcy_weisbach: DarcyWeisbachPipes,
}

impl PipeArrays {
    fn new(laws: &[LinkLaw]) -> Self {
        let mut pipes = Self {
            hexp_resistance: Vec::with_capacity(laws.len()),
            minor_loss: Vec::with_capacity(laws.len()),
            others: Vec::new(),
            darcy_weisbach: DarcyWeisbachPipes::new(laws),
        };
        for (k, law) in laws.iter().enumerate() {
            match *law {
                LinkLaw::Power {
                    hexp_resistance,
                    minor_loss,
                } => {
                    pipes.hexp_resistance.push(hexp_resistance);
                    pipes.minor_loss.push(minor_loss);
                }
                LinkLaw::DarcyWeisbach(_) => {
                    pipes.hexp_resistance.push(f64::NAN);
                    pipes.minor_loss.push(0.0);
                }
                LinkLaw::NotPipe(_) => {
                    pipes.hexp_resistance.push(f64::NAN);
                    pipes.minor_loss.push(0.0);
                    pipes.others.push(k);
                }
            }
        }
        pipes
    }
}

/// One thread's share of the links: `first` and the per-link arrays from it on.
struct LinkPart<'a> {
    first: usize,
    laws: &'a [LinkLaw],
    hexp_resistance: &'a [f64],
    minor_loss: &'a [f64],
    /// The links of this part that are not pipes (global indices).
    others: &'a [usize],
    darcy_weisbach: &'a DarcyWeisbachPipes,
}

/// Work arrays of one solve, allocated once per network.
#[derive(Clone)]
pub(crate) struct Workspace {
    /// Per link: its end nodes and type.
    pub links: Vec<LinkTerms>,
    /// Per link: the constants of its head loss law.
    laws: Vec<LinkLaw>,
    /// The pipes' constants again, in plain arrays for the vectorized passes.
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
        let laws: Vec<LinkLaw> = network
            .links
            .iter()
            .map(|link| LinkLaw::new(link, &network.options))
            .collect();
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
            pipe_arrays: PipeArrays::new(&laws),
            laws,
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
    let count = work.laws.len();
    let threads = if count >= PARALLEL_MIN_LINKS {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
    } else {
        1
    };
    let pipes = &work.pipe_arrays;
    let part = |first: usize, end: usize| {
        let others = &pipes.others;
        let (from, to) = (
            others.partition_point(|&k| k < first),
            others.partition_point(|&k| k < end),
        );
        LinkPart {
            first,
            laws: &work.laws[first..end],
            hexp_resistance: &pipes.hexp_resistance[first..end],
            minor_loss: &pipes.minor_loss[first..end],
            others: &others[from..to],
            darcy_weisbach: &pipes.darcy_weisbach,
        }
    };
    if threads > 1 {
        let chunk = count.div_ceil(threads);
        let all_started = std::thread::scope(|scope| {
            let mut parts = work.p.chunks_mut(chunk).zip(work.y.chunks_mut(chunk));
            let own_part = parts.next();
            let mut all_started = true;
            for (index, (p, y)) in parts.enumerate() {
                let first = (index + 1) * chunk;
                let links = part(first, first + p.len());
                let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                    link_coeffs(network, state, links, p, y);
                });
                all_started &= spawned.is_ok();
            }
            if let Some((p, y)) = own_part {
                link_coeffs(network, state, part(0, p.len()), p, y);
            }
            all_started
        });
        if all_started {
            return;
        }
    }
    // Also the fallback when a thread could not be started: recomputing a link gives the
    // same coefficients again.
    link_coeffs(network, state, part(0, count), &mut work.p, &mut work.y);
}

/// `P` and `Y` of the consecutive links of `links`.
fn link_coeffs(
    network: &HydNetwork,
    state: &HydState,
    links: LinkPart<'_>,
    p: &mut [f64],
    y: &mut [f64],
) {
    let power_law = PowerLawConstants::new(&network.options);
    let first = links.first;
    let flows = state.flow.get(first..).unwrap_or_default();
    let statuses = state.status.get(first..).unwrap_or_default();
    if power_law.pipes_follow_it {
        // `p` holds each link's `|q|^(hexp - 1)` until the link's coefficients replace it.
        abs_powers(flows, power_law.gradient_exponent, p);
        power_law_pass(&power_law, &links, flows, statuses, p, y);
        others_coeffs(network, state, &power_law, &links, p, y);
        return;
    }
    // Each turbulent Darcy-Weisbach pipe's `p` and `y` hold its Swamee-Jain terms until
    // its coefficients replace them.
    if links.darcy_weisbach.is_empty() {
        // No Darcy-Weisbach pipe: pumps and valves only.
        for (offset, ((law, p), y)) in links.laws.iter().zip(p).zip(y).enumerate() {
            (*p, *y) = link_coeff(network, state, &power_law, first + offset, law, *p, *y);
        }
        return;
    }
    swamee_jain_terms(links.darcy_weisbach, first, flows, p, y);
    darcy_weisbach_pass(links.darcy_weisbach, first, flows, statuses, p, y);
    others_coeffs(network, state, &power_law, &links, p, y);
}

/// `P` and `Y` of the links of `links` that are not pipes, after a vectorized pass.
fn others_coeffs(
    network: &HydNetwork,
    state: &HydState,
    power_law: &PowerLawConstants,
    links: &LinkPart<'_>,
    p: &mut [f64],
    y: &mut [f64],
) {
    for &k in links.others {
        let offset = k - links.first;
        if let (Some(law), Some(p), Some(y)) =
            (links.laws.get(offset), p.get_mut(offset), y.get_mut(offset))
        {
            (*p, *y) = link_coeff(network, state, power_law, k, law, *p, *y);
        }
    }
}

/// `P` and `Y` of link `k` of law `law`; `p` and `y` are what the pre-pass left there (the
/// power or the Swamee-Jain terms of a pipe, the previous `Y` of a valve).
#[inline(always)]
fn link_coeff(
    network: &HydNetwork,
    state: &HydState,
    power_law: &PowerLawConstants,
    k: usize,
    law: &LinkLaw,
    p: f64,
    y: f64,
) -> (f64, f64) {
    let flow = state.flow[k];
    let status = state.status[k];
    match law {
        LinkLaw::Power {
            hexp_resistance,
            minor_loss,
        } => {
            let pipe = (*hexp_resistance, *minor_loss);
            power_law_coeff(power_law, pipe, flow, p, status)
        }
        LinkLaw::DarcyWeisbach(pipe) => {
            if status.is_closed() {
                closed_coeff(flow)
            } else {
                let terms = SwameeJainTerms { y1: p, ln_y2: y };
                darcy_weisbach_coeff(pipe, flow, terms)
            }
        }
        LinkLaw::NotPipe(link_type) => non_pipe_coeff(network, *link_type, state, k, y),
    }
}

/// `P` and `Y` of every power-law pipe of `links` (`p` holding `|q|^(hexp - 1)`), several
/// links at a time: the arithmetic of [`power_law_coeff`], each branch computed and the
/// result selected, so the bits are the same. Other links get a meaningless `P` and keep
/// their `Y`; the caller computes them afterwards.
fn power_law_pass(
    law: &PowerLawConstants,
    links: &LinkPart<'_>,
    flows: &[f64],
    statuses: &[Status],
    p: &mut [f64],
    y: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        unsafe { power_law_pass_avx(law, links, flows, statuses, p, y) };
        return;
    }
    power_law_pass_body(law, links, flows, statuses, p, y);
}

/// [`power_law_pass_body`] compiled for AVX: four links per instruction instead of two.
/// Additions, products, divisions and comparisons round alike in any lane width, and no
/// fused multiply-add is formed, so the bits are those of the scalar code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn power_law_pass_avx(
    law: &PowerLawConstants,
    links: &LinkPart<'_>,
    flows: &[f64],
    statuses: &[Status],
    p: &mut [f64],
    y: &mut [f64],
) {
    power_law_pass_body(law, links, flows, statuses, p, y);
}

#[inline(always)]
fn power_law_pass_body(
    law: &PowerLawConstants,
    links: &LinkPart<'_>,
    flows: &[f64],
    statuses: &[Status],
    p: &mut [f64],
    y: &mut [f64],
) {
    let count = p.len().min(y.len());
    let (Some(flows), Some(statuses), Some(resistances), Some(minor_losses)) = (
        flows.get(..count),
        statuses.get(..count),
        links.hexp_resistance.get(..count),
        links.minor_loss.get(..count),
    ) else {
        return;
    };
    let (p, y) = (&mut p[..count], &mut y[..count]);
    let (rqtol, linear_gradient, hexp) = (law.rqtol, law.linear_gradient, law.hexp);
    for i in 0..count {
        let (flow, hexp_resistance, minor_loss) = (flows[i], resistances[i], minor_losses[i]);
        let q = flow.abs();
        let power_gradient = hexp_resistance * p[i];
        let linear = power_gradient < rqtol;
        // Both laws computed, one kept: no branch in the loop.
        let linear_loss = linear_gradient * q;
        let power_loss = power_gradient * q / hexp;
        let hgrad = if linear {
            linear_gradient
        } else {
            power_gradient
        };
        let hloss = if linear { linear_loss } else { power_loss };
        let with_minor_loss = minor_loss > 0.0;
        let minor_hloss = hloss + minor_loss * q * q;
        let minor_hgrad = hgrad + 2.0 * minor_loss * q;
        let hloss = if with_minor_loss { minor_hloss } else { hloss };
        let hgrad = if with_minor_loss { minor_hgrad } else { hgrad };
        let signed_hloss = if flow > 0.0 {
            hloss
        } else if flow < 0.0 {
            -hloss
        } else {
            hloss * 0.0
        };
        let (open_p, open_y) = (1.0 / hgrad, signed_hloss / hgrad);
        let closed = statuses[i] <= Status::Closed;
        let is_pipe = !hexp_resistance.is_nan();
        p[i] = if closed { 1.0 / CBIG } else { open_p };
        y[i] = if !is_pipe {
            y[i]
        } else if closed {
            flow
        } else {
            open_y
        };
    }
}

/// `P` and `Y` of link `k`, a pump or valve, at its current flow; `previous_y` is kept by a
/// controlling PRV, PSV or FCV, whose equations `valve_matrix_coeffs` writes.
fn non_pipe_coeff(
    network: &HydNetwork,
    link_type: LinkType,
    state: &HydState,
    k: usize,
    previous_y: f64,
) -> (f64, f64) {
    let flow = state.flow[k];
    let status = state.status[k];
    let link = &network.links[k];
    let setting = state.setting[k];
    let rqtol = network.options.rqtol;
    match link_type {
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

/// Coefficients of a closed link: `h = CBIG q`.
fn closed_coeff(flow: f64) -> (f64, f64) {
    (1.0 / CBIG, flow)
}

/// Hazen-Williams or Chezy-Manning pipe `(hexp R, minor loss)` at `flow`, with
/// `gradient_power` = `|flow|^(hexp - 1)`.
#[inline]
fn power_law_coeff(
    law: &PowerLawConstants,
    (hexp_resistance, minor_loss): (f64, f64),
    flow: f64,
    gradient_power: f64,
    status: Status,
) -> (f64, f64) {
    if status.is_closed() {
        return closed_coeff(flow);
    }
    let q = flow.abs();
    let mut hgrad = hexp_resistance * gradient_power;
    let mut hloss = if hgrad < law.rqtol {
        // A linear law near zero flow keeps the gradient from vanishing.
        hgrad = law.linear_gradient;
        hgrad * q
    } else {
        hgrad * q / law.hexp
    };
    if minor_loss > 0.0 {
        hloss += minor_loss * q * q;
        hgrad += 2.0 * minor_loss * q;
    }
    (1.0 / hgrad, times_sign_of(hloss, flow) / hgrad)
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
) {
    system.clear();
    work.xflow.fill(0.0);
    link_matrix_coeffs(network, state, work, system);
    emitter_matrix_coeffs(network, state, work, system);
    demand_matrix_coeffs(network, state, work, system);
    leakage_matrix_coeffs(network, work, system);
    for i in 0..network.junctions {
        work.xflow[i] -= state.demand_flow[i];
        system.add_rhs(i, work.xflow[i]);
    }
    valve_matrix_coeffs(network, state, work, system);
}

/// Each link's coefficients, its flow's contribution to the flow excess of its end nodes, and
/// its contributions to `A` and `F`.
fn link_matrix_coeffs(
    network: &HydNetwork,
    state: &HydState,
    work: &mut Workspace,
    system: &mut LinearSystem,
) {
    // The coefficients first, in a pass of their own (shared out over threads on large
    // networks): their long chains of divisions overlap better without the scattered
    // updates of the assembly in the same loop.
    headloss_coeffs(network, state, work);
    for ((terms, &p), &flow) in work.links.iter().zip(&work.p).zip(&state.flow) {
        if p != 0.0 {
            work.xflow[terms.from] -= flow;
            work.xflow[terms.to] += flow;
        }
    }
    let ends = work.links.iter().map(|terms| (terms.from, terms.to));
    system.add_links(&work.p, &work.y, ends, &state.head);
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

#[cfg(test)]
mod tests;
