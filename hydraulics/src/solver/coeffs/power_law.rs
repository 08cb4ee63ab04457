//! The Hazen-Williams and Chezy-Manning head loss laws, `h = R |q|^hexp` plus a minor loss
//! (EPANET's `pipecoeff`), several pipes at a time.
//!
//! The powers `|q|^(hexp - 1)` of all links come first from the vectorized `abs_powers`
//! (the C library's bits); [`power_law_pass`] then computes every pipe's coefficients
//! without a branch in the loop, so the compiler runs four pipes per instruction.

use super::pass_coeffs;
use crate::solver::data::{HydLink, HydOptions, Status};
use crate::solver::vector_math::with_avx;

/// The constants of the power law, the same for every pipe.
#[derive(Debug, Clone, Copy)]
pub(super) struct PowerLawConstants {
    pub hexp: f64,
    /// The exponent of the gradient, `hexp - 1`.
    pub gradient_exponent: f64,
    rqtol: f64,
    /// The gradient of the linear law used near zero flow, `rqtol / hexp`.
    linear_gradient: f64,
}

impl PowerLawConstants {
    pub(super) fn new(options: &HydOptions) -> Self {
        Self {
            hexp: options.hexp,
            gradient_exponent: options.hexp - 1.0,
            rqtol: options.rqtol,
            linear_gradient: options.rqtol / options.hexp,
        }
    }
}

/// The power-law pipes' constants as a structure of arrays, per link: the divisions of
/// several links then run in one instruction.
#[derive(Clone, Default)]
pub(super) struct PowerLawPipes {
    /// `hexp R` of a power-law pipe, NaN for every other link (the pass leaves those links'
    /// `y` as it was: a controlling valve keeps its state there).
    hexp_resistance: Vec<f64>,
    /// The minor loss coefficient of a power-law pipe (0 elsewhere).
    minor_loss: Vec<f64>,
}

impl PowerLawPipes {
    /// The arrays of `links` when pipes follow the power law (`hexp R` and the minor loss of
    /// each pipe), else empty.
    pub(super) fn new(links: &[HydLink], options: &HydOptions, pipes_follow_it: bool) -> Self {
        if !pipes_follow_it {
            return Self::default();
        }
        let constants = |link: &HydLink| {
            if link.link_type.is_pipe() {
                (options.hexp * link.resistance, link.minor_loss)
            } else {
                (f64::NAN, 0.0)
            }
        };
        let (hexp_resistance, minor_loss) = links.iter().map(constants).unzip();
        Self {
            hexp_resistance,
            minor_loss,
        }
    }

    /// The constants of links `first..end`.
    pub(super) fn part(&self, first: usize, end: usize) -> PowerLawPart<'_> {
        PowerLawPart {
            hexp_resistance: self.hexp_resistance.get(first..end).unwrap_or_default(),
            minor_loss: self.minor_loss.get(first..end).unwrap_or_default(),
        }
    }
}

/// The constants of some consecutive links (one thread's share).
#[derive(Clone, Copy)]
pub(super) struct PowerLawPart<'a> {
    hexp_resistance: &'a [f64],
    minor_loss: &'a [f64],
}

with_avx! {
    /// `P` and `Y` of every power-law pipe of `pipes` (`p` holding `|q|^(hexp - 1)`), several
    /// links at a time: the scalar law with each branch computed and the result selected, so
    /// the bits are the same. Other links get a meaningless `P` and keep their `Y`; the caller
    /// computes them afterwards.
    pub(super) fn power_law_pass / power_law_pass_body(
        law: &PowerLawConstants,
        pipes: PowerLawPart<'_>,
        flows: &[f64],
        statuses: &[Status],
        p: &mut [f64],
        y: &mut [f64],
    ) {
        let count = p.len().min(y.len());
        let (Some(flows), Some(statuses), Some(resistances), Some(minor_losses)) = (
            flows.get(..count),
            statuses.get(..count),
            pipes.hexp_resistance.get(..count),
            pipes.minor_loss.get(..count),
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
            let is_pipe = !hexp_resistance.is_nan();
            let open = (hgrad, signed_hloss);
            (p[i], y[i]) = pass_coeffs(open, flow, statuses[i], is_pipe, y[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::coeffs::CBIG;
    use crate::solver::vector_math::abs_powers;

    /// EPANET's `pipecoeff` as written in `hydcoeffs.c`, one pipe `(hexp R, minor loss)` at
    /// `flow` with `gradient_power` = `|flow|^(hexp - 1)`.
    fn epanet_pipe_coeff(
        law: &PowerLawConstants,
        (hexp_resistance, minor_loss): (f64, f64),
        flow: f64,
        gradient_power: f64,
        status: Status,
    ) -> (f64, f64) {
        if status.is_closed() {
            return (1.0 / CBIG, flow);
        }
        let q = flow.abs();
        let mut hgrad = hexp_resistance * gradient_power;
        let mut hloss = if hgrad < law.rqtol {
            hgrad = law.linear_gradient;
            hgrad * q
        } else {
            hgrad * q / law.hexp
        };
        if minor_loss > 0.0 {
            hloss += minor_loss * q * q;
            hgrad += 2.0 * minor_loss * q;
        }
        let signed = if flow > 0.0 {
            hloss
        } else if flow < 0.0 {
            -hloss
        } else {
            hloss * 0.0
        };
        (1.0 / hgrad, signed / hgrad)
    }

    #[test]
    fn the_pass_keeps_the_y_of_other_links_and_gives_pipes_scalar_bits() {
        // 1,000 links: pipes with and without minor loss at flows of both signs from 1e-12 to
        // 1e4 (zeros too), some closed, every ninth link a valve whose `Y` must be kept.
        let count = 1000;
        let (hexp, rqtol) = (1.852, 1e-7);
        let law = PowerLawConstants {
            hexp,
            gradient_exponent: hexp - 1.0,
            rqtol,
            linear_gradient: rqtol / hexp,
        };
        let flows: Vec<f64> = (0..count)
            .map(|k| match k % 10 {
                0 => 0.0,
                _ => {
                    let magnitude = 10f64.powf(-12.0 + 16.0 * ((k * 7919) % 1000) as f64 / 1000.0);
                    if k % 3 == 0 {
                        -magnitude
                    } else {
                        magnitude
                    }
                }
            })
            .collect();
        let statuses: Vec<Status> = (0..count)
            .map(|k| {
                if k % 13 == 4 {
                    Status::Closed
                } else {
                    Status::Open
                }
            })
            .collect();
        let valve = |k: usize| k % 9 == 2;
        let pipes = PowerLawPipes {
            hexp_resistance: (0..count)
                .map(|k| {
                    if valve(k) {
                        f64::NAN
                    } else {
                        1.852 * (1.0 + k as f64)
                    }
                })
                .collect(),
            minor_loss: (0..count)
                .map(|k| if k % 4 == 1 { 0.3 * k as f64 } else { 0.0 })
                .collect(),
        };
        let mut powers = vec![0.0; count];
        abs_powers(&flows, law.gradient_exponent, &mut powers);
        for first in [0, 357] {
            let part = pipes.part(first, count);
            for vectorized in [true, false] {
                let mut p = powers[first..].to_vec();
                let mut y = vec![-7.0; count - first];
                let (flows, statuses) = (&flows[first..], &statuses[first..]);
                if vectorized {
                    power_law_pass(&law, part, flows, statuses, &mut p, &mut y);
                } else {
                    power_law_pass_body(&law, part, flows, statuses, &mut p, &mut y);
                }
                for offset in 0..count - first {
                    let k = first + offset;
                    if valve(k) {
                        assert_eq!(y[offset], -7.0, "link {k} keeps its Y");
                        continue;
                    }
                    let pipe = (pipes.hexp_resistance[k], pipes.minor_loss[k]);
                    let expected =
                        epanet_pipe_coeff(&law, pipe, flows[offset], powers[k], statuses[offset]);
                    assert_eq!(
                        (p[offset].to_bits(), y[offset].to_bits()),
                        (expected.0.to_bits(), expected.1.to_bits()),
                        "link {k} at flow {} (vectorized: {vectorized})",
                        flows[offset]
                    );
                }
            }
        }
    }
}
