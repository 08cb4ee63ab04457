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

/// The head loss of delivering a pressure-driven demand `d` of `full`: the inverted demand
/// function `p = dp (d/full)^n` with barriers keeping `0 <= d <= full`.
pub(crate) fn demand_headloss(d: f64, full: f64, dp: f64, n: f64) -> (f64, f64) {
    let r = d.abs() / full;
    let mut hgrad = n * dp * power(r, n - 1.0) / full;
    let mut hloss = hgrad * d / n;
    add_lower_barrier(d, &mut hloss, &mut hgrad);
    add_upper_barrier(d - full, &mut hloss, &mut hgrad);
    (hloss, hgrad)
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
    let dp = options.preq - options.pmin;
    let n = 1.0 / options.pexp;
    let demands = work.full_demand.iter().zip(&state.demand_flow);
    let nodes = demands.zip(&network.nodes[..network.junctions]);
    for (i, ((&full, &demand_flow), node)) in nodes.enumerate() {
        if full <= 0.0 {
            continue;
        }
        let (hloss, hgrad) = demand_headloss(demand_flow, full, dp, n);
        if hgrad > 0.0 {
            let rhs = (hloss + node.elevation + options.pmin) / hgrad;
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
