//! The Darcy-Weisbach head loss law (EPANET's `DWpipecoeff` and `frictionFactor`).

use std::f64::consts::PI;

use crate::solver::data::{HydLink, HydOptions};

// Darcy-Weisbach friction factor constants (Swamee-Jain and Dunlop's transition polynomial).
/// 1000 pi: Reynolds number 4000 in units of `q / (viscosity * d)`.
pub(super) const RE_TURBULENT: f64 = 3141.5926535897934;
/// 500 pi: Reynolds number 2000 likewise.
pub(super) const RE_LAMINAR: f64 = 1570.7963267948967;
/// 5.74 (pi/4)^0.9.
pub(super) const SWAMEE_JAIN_RE_TERM: f64 = 4.618413198590667;
/// -2 / ln(10).
pub(super) const MINUS_TWO_OVER_LN10: f64 = -0.8685889638065036;
/// 5.74 / 4000^0.9.
pub(super) const SWAMEE_JAIN_AT_4000: f64 = 0.0032889547634539907;
/// -2 * 0.9 * 2 / ln(10) * 5.74 / 4000^0.9.
pub(super) const DUNLOP_SLOPE_TERM: f64 = -0.005142149657990939;

#[derive(Debug, Clone, Copy)]
/// A Darcy-Weisbach pipe's constants, folded in at set-up.
pub(crate) struct DarcyWeisbachPipe {
    resistance: f64,
    minor_loss: f64,
    /// Relative roughness over 3.7, the Swamee-Jain roughness term.
    roughness_term: f64,
    /// Viscosity times diameter: flow over it is the Reynolds number times pi / 4.
    viscosity_diameter: f64,
    /// Flow of Reynolds number 2000, and the Hagen-Poiseuille resistance below it.
    laminar_flow_limit: f64,
    laminar_resistance: f64,
}

impl DarcyWeisbachPipe {
    pub(super) fn new(link: &HydLink, options: &HydOptions) -> Self {
        let viscosity_diameter = options.viscosity * link.diameter;
        Self {
            resistance: link.resistance,
            minor_loss: link.minor_loss,
            roughness_term: link.roughness / link.diameter / 3.7,
            viscosity_diameter,
            laminar_flow_limit: RE_LAMINAR * viscosity_diameter,
            laminar_resistance: 16.0 * PI * viscosity_diameter * link.resistance,
        }
    }
}

/// Darcy-Weisbach: Hagen-Poiseuille below Re 2000, else the friction factor (with its
/// derivative) from `friction_factor`.
pub(super) fn darcy_weisbach_coeff(pipe: &DarcyWeisbachPipe, flow: f64) -> (f64, f64) {
    let q = flow.abs();
    let ml = pipe.minor_loss;
    let (hloss, hgrad) = if q <= pipe.laminar_flow_limit {
        let r = pipe.laminar_resistance;
        (flow * (r + ml * q), r + 2.0 * ml * q)
    } else {
        let (f, dfdq) = friction_factor(q, pipe.roughness_term, pipe.viscosity_diameter);
        let r1 = f * pipe.resistance + ml;
        (r1 * q * flow, 2.0 * r1 * q + dfdq * pipe.resistance * q * q)
    };
    (1.0 / hgrad, hloss / hgrad)
}

/// Darcy-Weisbach friction factor and its derivative with respect to flow, for `q` = |flow|,
/// `roughness_term` = roughness / diameter / 3.7, `s` = viscosity * diameter: Swamee-Jain
/// from Re 4000, Dunlop's cubic interpolation between Re 2000 and 4000.
pub(super) fn friction_factor(q: f64, roughness_term: f64, s: f64) -> (f64, f64) {
    let w = q / s;
    if w >= RE_TURBULENT {
        let y1 = SWAMEE_JAIN_RE_TERM / w.powf(0.9);
        let y2 = roughness_term + y1;
        let y3 = MINUS_TWO_OVER_LN10 * y2.ln();
        let f = 1.0 / (y3 * y3);
        let dfdq = 1.8 * f * y1 * MINUS_TWO_OVER_LN10 / y2 / y3 / q;
        (f, dfdq)
    } else {
        let y2 = roughness_term + SWAMEE_JAIN_AT_4000;
        let y3 = MINUS_TWO_OVER_LN10 * y2.ln();
        let fa = 1.0 / (y3 * y3);
        let fb = (2.0 + DUNLOP_SLOPE_TERM / (y2 * y3)) * fa;
        let r = w / RE_LAMINAR;
        let x1 = 7.0 * fa - fb;
        let x2 = 0.128 - 17.0 * fa + 2.5 * fb;
        let x3 = -0.128 + 13.0 * fa - (fb + fb);
        let x4 = 0.032 - 3.0 * fa + 0.5 * fb;
        let f = x1 + r * (x2 + r * (x3 + r * x4));
        let dfdq = (x2 + r * (2.0 * x3 + r * 3.0 * x4)) / s / RE_LAMINAR;
        (f, dfdq)
    }
}
