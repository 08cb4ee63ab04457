//! Node terms of the linearized equations: emitters, pressure-driven demands and FAVAD pipe
//! leakage lumped onto junctions (EPANET's `emittercoeffs`, `demandcoeffs` and the solver side
//! of `leakage.c`).

use super::{add_lower_barrier, add_upper_barrier, power, Workspace, CSMALL};
use crate::model::DemandModel;
use crate::solver::data::{HydNetwork, HydState};
use crate::solver::linear::LinearSystem;
use crate::units::M_PER_FT;

/// Orifice coefficient of FAVAD leaks: 0.6 sqrt(2g), with 1e-6 turning mm2 into m2.
const LEAK_ORIFICE_COEFF: f64 = 4.8149866e-6;

/// The fixed and variable area leakage of one junction (EPANET's `Sleakage`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NodeLeakage {
    /// Inverted FAVAD coefficients: head = cfa * qfa^2, head = cva * qva^(2/3).
    pub cfa: f64,
    pub cva: f64,
    pub qfa: f64,
    pub qva: f64,
}

impl NodeLeakage {
    fn leaks(&self) -> bool {
        self.cfa != 0.0 || self.cva != 0.0
    }
}

/// Accumulates each leaking pipe's FAVAD coefficients onto its junction ends, half to each
/// when both ends are junctions, and inverts them (EPANET's `leakage_init`).
pub(super) fn node_leakage(network: &HydNetwork) -> Vec<NodeLeakage> {
    let junctions = network.junctions;
    let mut leakage = vec![NodeLeakage::default(); junctions];
    let mut any = false;
    for link in network.links.iter().filter(|l| l.link_type.is_pipe()) {
        let (from_junction, to_junction) = (link.from < junctions, link.to < junctions);
        if !from_junction && !to_junction {
            continue;
        }
        if link.leak_area == 0.0 && link.leak_expansion == 0.0 {
            continue;
        }
        any = true;
        let mut sections = link.length * network.units.length / 100.0;
        if from_junction && to_junction {
            sections *= 0.5;
        }
        // Leak areas are in mm2 and expansions in mm2 per metre of head: both to feet.
        let area = LEAK_ORIFICE_COEFF * link.leak_area / (M_PER_FT * M_PER_FT) * sections;
        let expansion = LEAK_ORIFICE_COEFF * link.leak_expansion / M_PER_FT * sections;
        for (node, is_junction) in [(link.from, from_junction), (link.to, to_junction)] {
            if is_junction {
                leakage[node].cfa += area;
                leakage[node].cva += expansion;
            }
        }
    }
    if !any {
        return Vec::new();
    }
    for leak in &mut leakage {
        leak.cfa = if leak.cfa > 0.0 {
            1.0 / (leak.cfa * leak.cfa)
        } else {
            0.0
        };
        leak.cva = if leak.cva > 0.0 {
            1.0 / leak.cva.powf(2.0 / 3.0)
        } else {
            0.0
        };
        // The solver needs a non-zero starting flow.
        leak.qfa = if leak.cfa > 0.0 { 0.001 } else { 0.0 };
        leak.qva = if leak.cva > 0.0 { 0.001 } else { 0.0 };
    }
    leakage
}

/// An emitter's head loss and gradient at its current flow: `h = ke q^qexp`, linear near zero
/// flow, with a barrier against inflow when backflow is not allowed.
pub(crate) fn emitter_headloss(network: &HydNetwork, node: usize, q: f64) -> (f64, f64) {
    let options = &network.options;
    let ke = network.nodes[node].emitter_coeff.max(CSMALL);
    let qexp = options.emitter_exponent;
    let mut hgrad = qexp * ke * power(q.abs(), qexp - 1.0);
    let mut hloss = if hgrad < options.rqtol {
        hgrad = options.rqtol / qexp;
        hgrad * q
    } else {
        hgrad * q / qexp
    };
    if !options.emitter_backflow {
        add_lower_barrier(q, &mut hloss, &mut hgrad);
    }
    (hloss, hgrad)
}

pub(super) fn emitter_matrix_coeffs(
    network: &HydNetwork,
    state: &HydState,
    work: &mut Workspace,
    system: &mut LinearSystem,
) {
    for &i in &work.emitters {
        let (hloss, hgrad) = emitter_headloss(network, i, state.emitter_flow[i]);
        let rhs = (hloss + network.nodes[i].elevation) / hgrad;
        system.add_node_term(i, 1.0 / hgrad, rhs);
        work.xflow[i] -= state.emitter_flow[i];
    }
}

/// The head loss of delivering a pressure-driven demand `d` of `full` and its gradient: the
/// inverted demand function `p = dp (d/full)^n` with barriers keeping `0 <= d <= full`.
pub(crate) fn demand_headloss(d: f64, full: f64, dp: f64, n: f64) -> (f64, f64) {
    DemandLaw::new(dp, n, 0.0).headloss(d, full)
}

pub(super) fn demand_matrix_coeffs(
    network: &HydNetwork,
    state: &HydState,
    work: &Workspace,
    system: &mut LinearSystem,
) {
    let options = &network.options;
    if options.demand_model == DemandModel::Dda {
        return;
    }
    let law = DemandLaw::new(
        options.preq - options.pmin,
        1.0 / options.pexp,
        options.pmin,
    );
    let count = (work.full_demand.len())
        .min(state.demand_flow.len())
        .min(network.junctions);
    let (full, flow) = (&work.full_demand[..count], &state.demand_flow[..count]);
    let nodes = &network.nodes[..count];
    // With the usual exponent 0.5 the power is the identity and the terms are plain
    // arithmetic, which the wide loop computes several junctions at a time.
    #[cfg(target_arch = "x86_64")]
    if law.exponent == 1.0 && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        unsafe { linear_demand_terms_avx(&law, full, flow, nodes, system) };
        return;
    }
    for (i, ((&full, &demand_flow), node)) in full.iter().zip(flow).zip(nodes).enumerate() {
        if full <= 0.0 {
            continue;
        }
        let (hgrad, rhs) = demand_terms(&law, demand_flow, full, node.elevation);
        if hgrad > 0.0 {
            system.add_node_term(i, 1.0 / hgrad, rhs);
        }
    }
}

/// The pressure-driven demand function of one network: pressure range `dp`, the inverse `n`
/// of the pressure exponent, and the minimum pressure.
struct DemandLaw {
    /// `n dp`: `n * dp * r^(n-1) / full` multiplies left to right, so the product kept
    /// gives the same bits.
    scale: f64,
    n: f64,
    exponent: f64,
    pmin: f64,
}

impl DemandLaw {
    fn new(dp: f64, n: f64, pmin: f64) -> Self {
        Self {
            scale: n * dp,
            n,
            exponent: n - 1.0,
            pmin,
        }
    }

    /// [`demand_headloss`]: `(hloss, hgrad)` of delivering `d` of `full`.
    #[inline(always)]
    fn headloss(&self, d: f64, full: f64) -> (f64, f64) {
        let r = d.abs() / full;
        let mut hgrad = self.scale * power(r, self.exponent) / full;
        let mut hloss = hgrad * d / self.n;
        add_lower_barrier(d, &mut hloss, &mut hgrad);
        add_upper_barrier(d - full, &mut hloss, &mut hgrad);
        (hloss, hgrad)
    }
}

/// A junction's gradient and right-hand side term.
#[inline(always)]
fn demand_terms(law: &DemandLaw, d: f64, full: f64, elevation: f64) -> (f64, f64) {
    let (hloss, hgrad) = law.headloss(d, full);
    (hgrad, (hloss + elevation + law.pmin) / hgrad)
}

/// [`demand_matrix_coeffs`] for a power of one, four junctions per AVX instruction: the
/// operations of [`demand_terms`] in its order, and sums, products, quotients and square
/// roots round alike in every lane (no fused multiply-add), so the bits are the scalar ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn linear_demand_terms_avx(
    law: &DemandLaw,
    full: &[f64],
    flow: &[f64],
    nodes: &[crate::solver::data::HydNode],
    system: &mut LinearSystem,
) {
    use std::arch::x86_64::*;
    const LANES: usize = 4;
    let count = full.len().min(flow.len()).min(nodes.len());
    let body = count - count % LANES;
    let (scale, n, pmin) = (
        _mm256_set1_pd(law.scale),
        _mm256_set1_pd(law.n),
        _mm256_set1_pd(law.pmin),
    );
    let (barrier, half_barrier) = (_mm256_set1_pd(1.0e9), _mm256_set1_pd(1.0e9 / 2.0));
    let (one, tiny, two, zero) = (
        _mm256_set1_pd(1.0),
        _mm256_set1_pd(1.0e-6),
        _mm256_set1_pd(2.0),
        _mm256_set1_pd(0.0),
    );
    let sign = _mm256_set1_pd(-0.0);
    let mut start = 0;
    while start < body {
        let (full4, flow4) = (&full[start..start + LANES], &flow[start..start + LANES]);
        let node4 = &nodes[start..start + LANES];
        // SAFETY: `full4` and `flow4` hold four values each (sliced just above).
        let (f, d) = unsafe {
            (
                _mm256_loadu_pd(full4.as_ptr()),
                _mm256_loadu_pd(flow4.as_ptr()),
            )
        };
        let e = _mm256_set_pd(
            node4[3].elevation,
            node4[2].elevation,
            node4[1].elevation,
            node4[0].elevation,
        );
        let r = _mm256_div_pd(_mm256_andnot_pd(sign, d), f);
        let mut g = _mm256_div_pd(_mm256_mul_pd(scale, r), f);
        let mut hloss = _mm256_div_pd(_mm256_mul_pd(g, d), n);
        // add_lower_barrier(d) and add_upper_barrier(d - full).
        let a = _mm256_mul_pd(barrier, d);
        let b = _mm256_sqrt_pd(_mm256_add_pd(_mm256_mul_pd(a, a), tiny));
        hloss = _mm256_add_pd(hloss, _mm256_div_pd(_mm256_sub_pd(a, b), two));
        let ratio = _mm256_sub_pd(one, _mm256_div_pd(a, b));
        g = _mm256_add_pd(g, _mm256_mul_pd(half_barrier, ratio));
        let a = _mm256_mul_pd(barrier, _mm256_sub_pd(d, f));
        let b = _mm256_sqrt_pd(_mm256_add_pd(_mm256_mul_pd(a, a), tiny));
        hloss = _mm256_add_pd(hloss, _mm256_div_pd(_mm256_add_pd(a, b), two));
        let ratio = _mm256_add_pd(one, _mm256_div_pd(a, b));
        g = _mm256_add_pd(g, _mm256_mul_pd(half_barrier, ratio));
        let head = _mm256_add_pd(_mm256_add_pd(hloss, e), pmin);
        let rhs = _mm256_div_pd(head, g);
        let diagonal = _mm256_div_pd(one, g);
        let keep = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GT_OQ>(f, zero),
            _mm256_cmp_pd::<_CMP_GT_OQ>(g, zero),
        );
        let keep = _mm256_movemask_pd(keep);
        let (mut rhs4, mut diagonal4) = ([0.0; LANES], [0.0; LANES]);
        // SAFETY: the arrays hold four values each.
        unsafe {
            _mm256_storeu_pd(rhs4.as_mut_ptr(), rhs);
            _mm256_storeu_pd(diagonal4.as_mut_ptr(), diagonal);
        }
        for k in 0..LANES {
            if keep & (1 << k) != 0 {
                system.add_node_term(start + k, diagonal4[k], rhs4[k]);
            }
        }
        start += LANES;
    }
    for i in body..count {
        if full[i] <= 0.0 {
            continue;
        }
        let (hgrad, rhs) = demand_terms(law, flow[i], full[i], nodes[i].elevation);
        if hgrad > 0.0 {
            system.add_node_term(i, 1.0 / hgrad, rhs);
        }
    }
}

/// Head and gradient of a junction's fixed and variable area leakage at its current leakage
/// flows: `((hfa, gfa), (hva, gva))`, zeros for a part that does not leak.
pub(crate) fn leakage_headloss(leak: &NodeLeakage, rqtol: f64) -> ((f64, f64), (f64, f64)) {
    let eval = |q: f64, c: f64, exponent: f64| {
        if c == 0.0 {
            return (0.0, 0.0);
        }
        let n = 1.0 / exponent;
        let mut g = n * c * power(q.abs(), n - 1.0);
        let mut h = if g < rqtol {
            g = rqtol / n;
            g * q
        } else {
            g * q / n
        };
        add_lower_barrier(q, &mut h, &mut g);
        (h, g)
    };
    (eval(leak.qfa, leak.cfa, 0.5), eval(leak.qva, leak.cva, 1.5))
}

pub(super) fn leakage_matrix_coeffs(
    network: &HydNetwork,
    work: &mut Workspace,
    system: &mut LinearSystem,
) {
    let rqtol = network.options.rqtol;
    for (i, leak) in work.leakage.iter().enumerate() {
        if !leak.leaks() {
            continue;
        }
        let elevation = network.nodes[i].elevation;
        let ((hfa, gfa), (hva, gva)) = leakage_headloss(leak, rqtol);
        if gfa > 0.0 {
            system.add_node_term(i, 1.0 / gfa, (hfa + elevation) / gfa);
        }
        if gva > 0.0 {
            system.add_node_term(i, 1.0 / gva, (hva + elevation) / gva);
        }
        work.xflow[i] -= leak.qfa + leak.qva;
    }
}
