//! The Darcy-Weisbach head loss law (EPANET's `DWpipecoeff` and `frictionFactor`).
//!
//! A turbulent pipe's friction factor needs `w^0.9` and a logarithm (Swamee-Jain), two C
//! library calls of long latency. [`swamee_jain_terms`] packs the turbulent pipes of each
//! block of links (four at a time with AVX2) and computes both with the vectorized
//! `abs_powers` and `natural_logs` (the C library's bits, so the coefficients are EPANET's to
//! the bit) before the coefficient loop reads them; the transition's cubic depends on the pipe
//! alone and is set up once.

use std::f64::consts::PI;

use super::pass_coeffs;
use crate::solver::data::{HydLink, HydOptions, Status};
use crate::solver::vector_math::{abs_powers, natural_logs, with_avx};

// Darcy-Weisbach friction factor constants (Swamee-Jain and Dunlop's transition polynomial).
/// 1000 pi: Reynolds number 4000 in units of `q / (viscosity * d)`.
pub(super) const RE_TURBULENT: f64 = 3141.5926535897934;
/// 500 pi: Reynolds number 2000 likewise.
pub(super) const RE_LAMINAR: f64 = 1570.7963267948967;
/// 5.74 (pi/4)^0.9.
const SWAMEE_JAIN_RE_TERM: f64 = 4.618413198590667;
/// -2 / ln(10).
const MINUS_TWO_OVER_LN10: f64 = -0.8685889638065036;
/// 5.74 / 4000^0.9.
const SWAMEE_JAIN_AT_4000: f64 = 0.0032889547634539907;
/// -2 * 0.9 * 2 / ln(10) * 5.74 / 4000^0.9.
const DUNLOP_SLOPE_TERM: f64 = -0.005142149657990939;

/// Links whose Swamee-Jain terms are computed together: small enough for the stack, large
/// enough that the vector passes run long.
const BLOCK: usize = 128;

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
    /// Dunlop's cubic in `Re / 2000` between Re 2000 and 4000, lowest degree first.
    transition: [f64; 4],
}

impl DarcyWeisbachPipe {
    pub(super) fn new(link: &HydLink, options: &HydOptions) -> Self {
        let viscosity_diameter = options.viscosity * link.diameter;
        let roughness_term = link.roughness / link.diameter / 3.7;
        Self {
            resistance: link.resistance,
            minor_loss: link.minor_loss,
            roughness_term,
            viscosity_diameter,
            laminar_flow_limit: RE_LAMINAR * viscosity_diameter,
            laminar_resistance: 16.0 * PI * viscosity_diameter * link.resistance,
            transition: dunlop_cubic(roughness_term),
        }
    }
}

/// The coefficients of Dunlop's cubic, which joins the laminar friction factor at Re 2000 to
/// Swamee-Jain's at Re 4000 (value and slope), computed as EPANET computes them at every call.
fn dunlop_cubic(roughness_term: f64) -> [f64; 4] {
    let y2 = roughness_term + SWAMEE_JAIN_AT_4000;
    let y3 = MINUS_TWO_OVER_LN10 * y2.ln();
    let fa = 1.0 / (y3 * y3);
    let fb = (2.0 + DUNLOP_SLOPE_TERM / (y2 * y3)) * fa;
    [
        7.0 * fa - fb,
        0.128 - 17.0 * fa + 2.5 * fb,
        -0.128 + 13.0 * fa - (fb + fb),
        0.032 - 3.0 * fa + 0.5 * fb,
    ]
}

/// The Darcy-Weisbach pipes' constants as a structure of arrays, for the vectorized
/// coefficient pass. Per link; other links have NaN as `resistance` and ones elsewhere.
#[derive(Clone, Default)]
pub(super) struct DarcyWeisbachPipes {
    resistance: Vec<f64>,
    minor_loss: Vec<f64>,
    roughness_term: Vec<f64>,
    viscosity_diameter: Vec<f64>,
    laminar_flow_limit: Vec<f64>,
    laminar_resistance: Vec<f64>,
    /// Dunlop's cubic, one array per coefficient.
    transition: [Vec<f64>; 4],
}

impl DarcyWeisbachPipes {
    /// The arrays of the links' pipes (`None` for a link that is not a Darcy-Weisbach pipe);
    /// empty when no link is one.
    pub(super) fn new(links: &[Option<DarcyWeisbachPipe>]) -> Self {
        let mut pipes = Self::default();
        if links.iter().all(Option::is_none) {
            return pipes;
        }
        for link in links {
            let pipe = match link {
                Some(pipe) => *pipe,
                None => DarcyWeisbachPipe {
                    resistance: f64::NAN,
                    minor_loss: 1.0,
                    roughness_term: 1.0,
                    viscosity_diameter: 1.0,
                    laminar_flow_limit: 1.0,
                    laminar_resistance: 1.0,
                    transition: [1.0; 4],
                },
            };
            pipes.resistance.push(pipe.resistance);
            pipes.minor_loss.push(pipe.minor_loss);
            pipes.roughness_term.push(pipe.roughness_term);
            pipes.viscosity_diameter.push(pipe.viscosity_diameter);
            pipes.laminar_flow_limit.push(pipe.laminar_flow_limit);
            pipes.laminar_resistance.push(pipe.laminar_resistance);
            for (coefficients, &x) in pipes.transition.iter_mut().zip(&pipe.transition) {
                coefficients.push(x);
            }
        }
        pipes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.resistance.is_empty()
    }
}

with_avx! {
    /// `P` and `Y` of the Darcy-Weisbach pipes among links `first..` (as many as `p` holds),
    /// with each turbulent pipe's Swamee-Jain terms in `p` and `y` (from
    /// [`swamee_jain_terms`]): EPANET's `DWpipecoeff` with every regime computed and the
    /// pipe's selected, several links at a time, so the bits are the same. Other links get a
    /// meaningless `P` and keep their `Y`; the caller computes them afterwards.
    pub(super) fn darcy_weisbach_pass / darcy_weisbach_pass_body(
        pipes: &DarcyWeisbachPipes,
        first: usize,
        flows: &[f64],
        statuses: &[Status],
        p: &mut [f64],
        y: &mut [f64],
    ) {
        let count = p.len().min(y.len());
        let part = first..first + count;
        let [x1s, x2s, x3s, x4s] = &pipes.transition;
        let (
            Some(flows),
            Some(statuses),
            Some(resistances),
            Some(minor_losses),
            Some(roughness_terms),
            Some(viscosity_diameters),
            Some(laminar_flow_limits),
            Some(laminar_resistances),
            Some(x1s),
            Some(x2s),
            Some(x3s),
            Some(x4s),
        ) = (
            flows.get(..count),
            statuses.get(..count),
            pipes.resistance.get(part.clone()),
            pipes.minor_loss.get(part.clone()),
            pipes.roughness_term.get(part.clone()),
            pipes.viscosity_diameter.get(part.clone()),
            pipes.laminar_flow_limit.get(part.clone()),
            pipes.laminar_resistance.get(part.clone()),
            x1s.get(part.clone()),
            x2s.get(part.clone()),
            x3s.get(part.clone()),
            x4s.get(part),
        )
        else {
            return;
        };
        let (p, y) = (&mut p[..count], &mut y[..count]);
        for i in 0..count {
            let flow = flows[i];
            let q = flow.abs();
            let ml = minor_losses[i];
            let resistance = resistances[i];
            // Laminar (Hagen-Poiseuille).
            let r = laminar_resistances[i];
            let laminar_hloss = flow * (r + ml * q);
            let laminar_hgrad = r + 2.0 * ml * q;
            // Turbulent (Swamee-Jain), from the pre-pass's terms.
            let s = viscosity_diameters[i];
            let w = q / s;
            let y1 = p[i];
            let y2 = roughness_terms[i] + y1;
            let y3 = MINUS_TWO_OVER_LN10 * y[i];
            let turbulent_f = 1.0 / (y3 * y3);
            let turbulent_dfdq = 1.8 * turbulent_f * y1 * MINUS_TWO_OVER_LN10 / y2 / y3 / q;
            // Transitional (Dunlop's cubic).
            let (x1, x2, x3, x4) = (x1s[i], x2s[i], x3s[i], x4s[i]);
            let r = w / RE_LAMINAR;
            let transition_f = x1 + r * (x2 + r * (x3 + r * x4));
            let transition_dfdq = (x2 + r * (2.0 * x3 + r * 3.0 * x4)) / s / RE_LAMINAR;
            let turbulent = w >= RE_TURBULENT;
            let f = if turbulent { turbulent_f } else { transition_f };
            let dfdq = if turbulent {
                turbulent_dfdq
            } else {
                transition_dfdq
            };
            let r1 = f * resistance + ml;
            let friction_hloss = r1 * q * flow;
            let friction_hgrad = 2.0 * r1 * q + dfdq * resistance * q * q;
            let laminar = q <= laminar_flow_limits[i];
            let hloss = if laminar {
                laminar_hloss
            } else {
                friction_hloss
            };
            let hgrad = if laminar {
                laminar_hgrad
            } else {
                friction_hgrad
            };
            let is_pipe = !resistance.is_nan();
            let open = (hgrad, hloss);
            (p[i], y[i]) = pass_coeffs(open, flow, statuses[i], is_pipe, y[i]);
        }
    }
}

/// A pipe's Swamee-Jain terms at its flow, meaningful where the flow is turbulent (Re 4000 or
/// more): `y1 = 5.74 / Re^0.9` (computed as `5.74 (pi/4)^0.9 / w^0.9`, `w` = |q| / (viscosity
/// d)) and `ln(roughness_term + y1)`.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
struct SwameeJainTerms {
    pub y1: f64,
    pub ln_y2: f64,
}

/// The Swamee-Jain terms of every turbulent Darcy-Weisbach pipe among links `first..` of
/// `pipes` (`flows[i]` is the flow of link `first + i`): `y1` into `y1_out`, `ln_y2` into
/// `ln_y2_out`. The entries of other links are left as they are.
pub(super) fn swamee_jain_terms(
    pipes: &DarcyWeisbachPipes,
    first: usize,
    flows: &[f64],
    y1_out: &mut [f64],
    ln_y2_out: &mut [f64],
) {
    let part = first..first + flows.len();
    let (Some(resistances), Some(viscosity_diameters), Some(roughness)) = (
        pipes.resistance.get(part.clone()),
        pipes.viscosity_diameter.get(part.clone()),
        pipes.roughness_term.get(part),
    ) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    let blocks = resistances
        .chunks(BLOCK)
        .zip(viscosity_diameters.chunks(BLOCK))
        .zip(roughness.chunks(BLOCK))
        .zip(flows.chunks(BLOCK))
        .zip(y1_out.chunks_mut(BLOCK))
        .zip(ln_y2_out.chunks_mut(BLOCK));
    // Shared by the blocks: each reads only what it wrote itself (its first `turbulent`).
    let mut packed = Packed {
        positions: [0; BLOCK],
        w: [0.0; BLOCK],
        roughness_terms: [0.0; BLOCK],
    };
    let (mut y1, mut y2, mut logs) = ([0.0; BLOCK], [0.0; BLOCK], [0.0; BLOCK]);
    for (((((resistances, viscosity_diameters), roughness), flows), y1_out), ln_y2_out) in blocks {
        let block = BlockInputs {
            resistances,
            viscosity_diameters,
            roughness,
            flows,
        };
        #[cfg(target_arch = "x86_64")]
        let turbulent = if avx2 {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { pack_turbulent_avx2(&block, &mut packed) }
        } else {
            pack_turbulent(&block, &mut packed, 0, 0)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let turbulent = pack_turbulent(&block, &mut packed, 0, 0);
        let Packed {
            positions,
            w,
            roughness_terms,
        } = &packed;
        abs_powers(&w[..turbulent], 0.9, &mut y1[..turbulent]);
        let terms = y2[..turbulent]
            .iter_mut()
            .zip(&mut y1)
            .zip(roughness_terms.iter());
        for ((y2, y1), roughness_term) in terms {
            *y1 = SWAMEE_JAIN_RE_TERM / *y1;
            *y2 = roughness_term + *y1;
        }
        natural_logs(&y2[..turbulent], &mut logs[..turbulent]);
        for ((&position, &y1), &ln_y2) in positions.iter().zip(&y1).zip(&logs).take(turbulent) {
            y1_out[position] = y1;
            ln_y2_out[position] = ln_y2;
        }
    }
}

/// One block's inputs to [`swamee_jain_terms`], by link.
struct BlockInputs<'a> {
    resistances: &'a [f64],
    viscosity_diameters: &'a [f64],
    roughness: &'a [f64],
    flows: &'a [f64],
}

/// A block's turbulent pipes, packed: their position in the block, `w` and roughness term.
struct Packed {
    positions: [usize; BLOCK],
    w: [f64; BLOCK],
    roughness_terms: [f64; BLOCK],
}

/// Packs the turbulent pipes among the block's links `start..` after the `turbulent` already
/// packed; returns the new count.
#[inline(always)]
fn pack_turbulent(
    block: &BlockInputs<'_>,
    packed: &mut Packed,
    start: usize,
    mut turbulent: usize,
) -> usize {
    let links = block
        .resistances
        .iter()
        .zip(block.viscosity_diameters)
        .zip(block.roughness)
        .zip(block.flows)
        .take(BLOCK)
        .enumerate()
        .skip(start);
    for (position, (((resistance, viscosity_diameter), &roughness_term), flow)) in links {
        // Written at the next free slot whatever the regime, kept only if a turbulent pipe
        // (other links have a NaN resistance): no branch on the flow. `turbulent` stays at
        // or below `position`, inside the arrays.
        let pipe_w = flow.abs() / viscosity_diameter;
        packed.positions[turbulent] = position;
        packed.w[turbulent] = pipe_w;
        packed.roughness_terms[turbulent] = roughness_term;
        turbulent += usize::from(pipe_w >= RE_TURBULENT && !resistance.is_nan());
    }
    turbulent
}

/// For each 4-bit mask of selected lanes, the `vpermd` indices that move the selected 64-bit
/// lanes, in order, to the lowest ones.
#[cfg(target_arch = "x86_64")]
const COMPRESS: [[i32; 8]; 16] = {
    let mut table = [[0; 8]; 16];
    let mut mask = 0;
    while mask < 16 {
        let (mut lane, mut to): (i32, usize) = (0, 0);
        while lane < 4 {
            if mask & (1 << lane) != 0 {
                table[mask][2 * to] = 2 * lane;
                table[mask][2 * to + 1] = 2 * lane + 1;
                to += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// [`pack_turbulent`] four links at a time: `w` by the same division, the turbulent lanes
/// moved together by a permutation from [`COMPRESS`] and stored at the next free slot (the
/// lanes stored past the turbulent ones are overwritten by the next group or never read).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pack_turbulent_avx2(block: &BlockInputs<'_>, packed: &mut Packed) -> usize {
    use std::arch::x86_64::*;
    let count = block
        .resistances
        .len()
        .min(block.viscosity_diameters.len())
        .min(block.roughness.len())
        .min(block.flows.len())
        .min(BLOCK);
    let groups = count / 4;
    let magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(i64::MAX));
    let limit = _mm256_set1_pd(RE_TURBULENT);
    let lane_offsets = _mm256_setr_epi64x(0, 1, 2, 3);
    let mut turbulent = 0;
    for group in 0..groups {
        let at = 4 * group;
        // SAFETY: `at + 4 <= count`, within every input; `turbulent <= at`, so the four
        // lanes stored at `turbulent` are within the packed arrays (`count <= BLOCK`).
        unsafe {
            let flow = _mm256_loadu_pd(block.flows.as_ptr().add(at));
            let viscosity_diameter = _mm256_loadu_pd(block.viscosity_diameters.as_ptr().add(at));
            let w = _mm256_div_pd(_mm256_and_pd(flow, magnitude), viscosity_diameter);
            let resistance = _mm256_loadu_pd(block.resistances.as_ptr().add(at));
            let selected = _mm256_and_pd(
                _mm256_cmp_pd::<_CMP_GE_OQ>(w, limit),
                _mm256_cmp_pd::<_CMP_ORD_Q>(resistance, resistance),
            );
            let mask = _mm256_movemask_pd(selected) as usize & 15;
            let permutation = _mm256_loadu_si256(COMPRESS[mask].as_ptr().cast());
            let roughness = _mm256_loadu_si256(block.roughness.as_ptr().add(at).cast());
            let positions = _mm256_add_epi64(_mm256_set1_epi64x(at as i64), lane_offsets);
            _mm256_storeu_si256(
                packed.w.as_mut_ptr().add(turbulent).cast(),
                _mm256_permutevar8x32_epi32(_mm256_castpd_si256(w), permutation),
            );
            _mm256_storeu_si256(
                packed.roughness_terms.as_mut_ptr().add(turbulent).cast(),
                _mm256_permutevar8x32_epi32(roughness, permutation),
            );
            // Positions are below BLOCK: their 64-bit pattern is that of the `usize`.
            _mm256_storeu_si256(
                packed.positions.as_mut_ptr().add(turbulent).cast(),
                _mm256_permutevar8x32_epi32(positions, permutation),
            );
            turbulent += mask.count_ones() as usize;
        }
    }
    pack_turbulent(block, packed, 4 * groups, turbulent)
}

/// Darcy-Weisbach one pipe at a time, the reference of the vectorized pass: Hagen-Poiseuille
/// below Re 2000, else the friction factor (with its derivative) from `pipe_friction_factor`;
/// `terms` are the pipe's Swamee-Jain terms at `flow`.
#[cfg(test)]
fn darcy_weisbach_coeff(pipe: &DarcyWeisbachPipe, flow: f64, terms: SwameeJainTerms) -> (f64, f64) {
    let q = flow.abs();
    let ml = pipe.minor_loss;
    let (hloss, hgrad) = if q <= pipe.laminar_flow_limit {
        let r = pipe.laminar_resistance;
        (flow * (r + ml * q), r + 2.0 * ml * q)
    } else {
        let (f, dfdq) = pipe_friction_factor(pipe, q, terms);
        let r1 = f * pipe.resistance + ml;
        (r1 * q * flow, 2.0 * r1 * q + dfdq * pipe.resistance * q * q)
    };
    (1.0 / hgrad, hloss / hgrad)
}

/// Darcy-Weisbach friction factor and its derivative with respect to flow, for `q` = |flow|
/// above the laminar limit: Swamee-Jain from Re 4000 (from `terms`), Dunlop's cubic between
/// Re 2000 and 4000.
#[cfg(test)]
fn pipe_friction_factor(pipe: &DarcyWeisbachPipe, q: f64, terms: SwameeJainTerms) -> (f64, f64) {
    let s = pipe.viscosity_diameter;
    let w = q / s;
    if w >= RE_TURBULENT {
        let y1 = terms.y1;
        let y2 = pipe.roughness_term + y1;
        let y3 = MINUS_TWO_OVER_LN10 * terms.ln_y2;
        let f = 1.0 / (y3 * y3);
        let dfdq = 1.8 * f * y1 * MINUS_TWO_OVER_LN10 / y2 / y3 / q;
        (f, dfdq)
    } else {
        let [x1, x2, x3, x4] = pipe.transition;
        let r = w / RE_LAMINAR;
        let f = x1 + r * (x2 + r * (x3 + r * x4));
        let dfdq = (x2 + r * (2.0 * x3 + r * 3.0 * x4)) / s / RE_LAMINAR;
        (f, dfdq)
    }
}

/// The friction factor and its derivative the solver uses at `q` = |flow| for a pipe of
/// Swamee-Jain roughness term `roughness_term` and viscosity times diameter `s`.
#[cfg(test)]
pub(super) fn friction_factor(q: f64, roughness_term: f64, s: f64) -> (f64, f64) {
    let pipe = test_pipe(roughness_term, s, 1.0, 0.0);
    let terms = terms_of(&pipe, q);
    pipe_friction_factor(&pipe, q, terms)
}

/// A pipe of the given constants, the laminar ones derived as `DarcyWeisbachPipe::new` does.
#[cfg(test)]
fn test_pipe(roughness_term: f64, s: f64, resistance: f64, minor_loss: f64) -> DarcyWeisbachPipe {
    DarcyWeisbachPipe {
        resistance,
        minor_loss,
        roughness_term,
        viscosity_diameter: s,
        laminar_flow_limit: RE_LAMINAR * s,
        laminar_resistance: 16.0 * PI * s * resistance,
        transition: dunlop_cubic(roughness_term),
    }
}

/// `pipe`'s Swamee-Jain terms at `flow`, by `swamee_jain_terms`.
#[cfg(test)]
fn terms_of(pipe: &DarcyWeisbachPipe, flow: f64) -> SwameeJainTerms {
    let (mut y1, mut ln_y2) = ([0.0], [0.0]);
    let pipes = DarcyWeisbachPipes::new(&[Some(*pipe)]);
    swamee_jain_terms(&pipes, 0, &[flow], &mut y1, &mut ln_y2);
    SwameeJainTerms {
        y1: y1[0],
        ln_y2: ln_y2[0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::coeffs::CBIG;

    /// EPANET's `DWpipecoeff` as written in `hydcoeffs.c` (scalar `pow` and `log` at every
    /// call), for an open pipe of the given constants at `flow`.
    fn epanet_dw_pipe_coeff(
        roughness_term: f64,
        s: f64,
        resistance: f64,
        minor_loss: f64,
        flow: f64,
    ) -> (f64, f64) {
        let q = flow.abs();
        let (hloss, hgrad) = if q <= RE_LAMINAR * s {
            let r = 16.0 * PI * s * resistance;
            (flow * (r + minor_loss * q), r + 2.0 * minor_loss * q)
        } else {
            let w = q / s;
            let (f, dfdq) = if w >= RE_TURBULENT {
                let y1 = SWAMEE_JAIN_RE_TERM / w.powf(0.9);
                let y2 = roughness_term + y1;
                let y3 = MINUS_TWO_OVER_LN10 * y2.ln();
                let f = 1.0 / (y3 * y3);
                (f, 1.8 * f * y1 * MINUS_TWO_OVER_LN10 / y2 / y3 / q)
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
                (f, (x2 + r * (2.0 * x3 + r * 3.0 * x4)) / s / RE_LAMINAR)
            };
            let r1 = f * resistance + minor_loss;
            (r1 * q * flow, 2.0 * r1 * q + dfdq * resistance * q * q)
        };
        (1.0 / hgrad, hloss / hgrad)
    }

    #[test]
    fn block_terms_give_epanets_coefficients_to_the_bit() {
        // 1,000 links over several blocks: pipes of varied roughness and diameter at flows
        // from laminar to fully turbulent, both directions, and a pump every 7th link.
        let mut state = 0x5eed_u64;
        let mut unit = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut constants = Vec::new();
        let mut laws = Vec::new();
        let mut flows = Vec::new();
        for link in 0..1000 {
            let roughness_term = 0.01 * unit() * unit();
            let s = 1.2e-5 * (0.1 + 3.0 * unit());
            let (resistance, minor_loss) = (1e3 * unit(), if link % 3 == 0 { 0.0 } else { unit() });
            // Flow over viscosity times diameter: laminar, transitional, then turbulent up to
            // Re 4e7.
            let w = match link % 3 {
                _ if link % 50 == 0 => 0.0,
                0 => RE_LAMINAR * unit(),
                1 => RE_LAMINAR * (1.0 + unit()),
                _ => RE_TURBULENT * 10f64.powf(4.0 * unit()),
            };
            let flow = w * s * if unit() < 0.3 { -1.0 } else { 1.0 };
            constants.push((roughness_term, s, resistance, minor_loss));
            flows.push(flow);
            // A pump every 7th link.
            laws.push(
                (link % 7 != 3).then(|| test_pipe(roughness_term, s, resistance, minor_loss)),
            );
        }
        let pipes = DarcyWeisbachPipes::new(&laws);
        let (mut y1, mut ln_y2) = (vec![-1.0; laws.len()], vec![-1.0; laws.len()]);
        swamee_jain_terms(&pipes, 0, &flows, &mut y1, &mut ln_y2);
        let mut regimes = [0; 3];
        for (link, law) in laws.iter().enumerate() {
            let Some(pipe) = law else {
                // A valve's `y` (where `ln_y2` goes) is its state: it must be kept.
                assert_eq!(ln_y2[link], -1.0, "link {link} untouched");
                continue;
            };
            let (roughness_term, s, resistance, minor_loss) = constants[link];
            let w = flows[link].abs() / s;
            regimes[usize::from(w > RE_LAMINAR) + usize::from(w >= RE_TURBULENT)] += 1;
            let terms = SwameeJainTerms {
                y1: y1[link],
                ln_y2: ln_y2[link],
            };
            let (p, y) = darcy_weisbach_coeff(pipe, flows[link], terms);
            let (expected_p, expected_y) =
                epanet_dw_pipe_coeff(roughness_term, s, resistance, minor_loss, flows[link]);
            assert_eq!(
                (p.to_bits(), y.to_bits()),
                (expected_p.to_bits(), expected_y.to_bits()),
                "link {link} at flow {}",
                flows[link]
            );
        }
        // Laminar, transitional and turbulent flows are all exercised.
        assert!(regimes.iter().all(|&count| count > 50), "{regimes:?}");

        // The AVX2 packing packs the same pipes, in the same order, with the same bits as
        // the plain loop, also for a block whose length is not a multiple of four.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            for (first, end) in [(0, BLOCK), (BLOCK, 2 * BLOCK - 5)] {
                let part = first..end;
                let block = BlockInputs {
                    resistances: &pipes.resistance[part.clone()],
                    viscosity_diameters: &pipes.viscosity_diameter[part.clone()],
                    roughness: &pipes.roughness_term[part.clone()],
                    flows: &flows[part],
                };
                let empty = || Packed {
                    positions: [0; BLOCK],
                    w: [0.0; BLOCK],
                    roughness_terms: [0.0; BLOCK],
                };
                let (mut plain, mut vector) = (empty(), empty());
                let count = pack_turbulent(&block, &mut plain, 0, 0);
                // SAFETY: the CPU has AVX2 (checked above).
                let vector_count = unsafe { pack_turbulent_avx2(&block, &mut vector) };
                assert_eq!(count, vector_count);
                assert!(count > 10, "{count} turbulent pipes");
                assert_eq!(plain.positions[..count], vector.positions[..count]);
                let bits = |values: &[f64]| values.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&plain.w[..count]), bits(&vector.w[..count]));
                assert_eq!(
                    bits(&plain.roughness_terms[..count]),
                    bits(&vector.roughness_terms[..count])
                );
            }
        }

        // The vectorized pass (AVX where the CPU has it, and the plain loop) gives every
        // pipe the coefficients of `darcy_weisbach_coeff` to the bit, closed pipes those of
        // a closed link, and leaves the `Y` of other links alone; also on a part of the
        // links, as one thread of a large network gets.
        let statuses: Vec<Status> = (0..laws.len())
            .map(|k| match k % 11 {
                5 => Status::Closed,
                8 => Status::TempClosed,
                _ => Status::Open,
            })
            .collect();
        for first in [0, 300] {
            for vectorized in [true, false] {
                let (mut p, mut y) = (y1[first..].to_vec(), ln_y2[first..].to_vec());
                let (flows, statuses) = (&flows[first..], &statuses[first..]);
                if vectorized {
                    darcy_weisbach_pass(&pipes, first, flows, statuses, &mut p, &mut y);
                } else {
                    darcy_weisbach_pass_body(&pipes, first, flows, statuses, &mut p, &mut y);
                }
                for (offset, law) in laws[first..].iter().enumerate() {
                    let (link, flow) = (first + offset, flows[offset]);
                    let Some(pipe) = law else {
                        assert_eq!(y[offset], -1.0, "link {link} keeps its Y");
                        continue;
                    };
                    let expected = if statuses[offset].is_closed() {
                        (1.0 / CBIG, flow)
                    } else {
                        let terms = SwameeJainTerms {
                            y1: y1[link],
                            ln_y2: ln_y2[link],
                        };
                        darcy_weisbach_coeff(pipe, flow, terms)
                    };
                    assert_eq!(
                        (p[offset].to_bits(), y[offset].to_bits()),
                        (expected.0.to_bits(), expected.1.to_bits()),
                        "link {link} at flow {flow} (vectorized: {vectorized})"
                    );
                }
            }
        }
    }
}
