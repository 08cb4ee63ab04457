//! Checks EPANET makes on a network once it has been read, before it can be simulated:
//! node counts, tank levels, curves, pump curves and unconnected junctions.

use super::error_text;
use super::reader::DefinitionLines;
use super::InpProblem;
use crate::model::*;

/// EPANET's `TINY`, used when fitting a power function to a pump curve.
const TINY: f64 = 1e-6;

/// Every problem found, in EPANET's order of checks.
pub(super) fn validate(net: &Network, lines: &DefinitionLines, file: &str) -> Vec<InpProblem> {
    let mut problems = Vec::new();
    let mut report = |line: usize, section: &str, code: u32, subject: &str| {
        problems.push(InpProblem {
            file: file.to_string(),
            line,
            section: section.to_string(),
            code,
            message: format!("{} {subject}", error_text(code)),
        });
    };
    let junctions = net.junction_count();
    if net.nodes.len() < 2 {
        report(
            0,
            "JUNCTIONS",
            223,
            &format!("({} node(s))", net.nodes.len()),
        );
    }
    if net.nodes.len() == junctions {
        report(0, "RESERVOIRS", 224, "(no tanks or reservoirs)");
    }
    for (i, node) in net.nodes.iter().enumerate() {
        if let NodeKind::Tank(tank) = &node.kind {
            if !tank_levels_valid(tank, &net.curves) {
                report(
                    line_of(&lines.nodes, i),
                    "TANKS",
                    225,
                    &format!("for tank '{}'", node.id),
                );
            }
        }
    }
    for (i, curve) in net.curves.iter().enumerate() {
        if curve.points.windows(2).any(|w| w[0].0 >= w[1].0) {
            report(
                line_of(&lines.curves, i),
                "CURVES",
                230,
                &format!("'{}'", curve.id),
            );
        }
    }
    for (i, link) in net.links.iter().enumerate() {
        if let LinkKind::Pump(pump) = &link.kind {
            if let Some(code) = pump_fault(pump, &net.curves) {
                report(
                    line_of(&lines.links, i),
                    "PUMPS",
                    code,
                    &format!("'{}'", link.id),
                );
            }
        }
    }
    let mut connected = vec![false; net.nodes.len()];
    for link in &net.links {
        for end in [link.from, link.to] {
            if let Some(c) = connected.get_mut(end) {
                *c = true;
            }
        }
    }
    for (i, node) in net.nodes.iter().enumerate().take(junctions) {
        if !connected[i] {
            report(
                line_of(&lines.nodes, i),
                "JUNCTIONS",
                233,
                &format!("'{}'", node.id),
            );
        }
    }
    problems
}

fn line_of(lines: &[usize], index: usize) -> usize {
    lines.get(index).copied().unwrap_or(0)
}

/// EPANET's `inittanks` check: levels ordered, and within the volume curve if there is one.
fn tank_levels_valid(tank: &Tank, curves: &[Curve]) -> bool {
    let ordered = tank.initial_level <= tank.max_level
        && tank.min_level <= tank.max_level
        && tank.initial_level >= tank.min_level;
    let within_curve = match tank.volume_curve.and_then(|c| curves.get(c)) {
        Some(curve) => match (curve.points.first(), curve.points.last()) {
            (Some(first), Some(last)) => tank.min_level >= first.0 && tank.max_level <= last.0,
            _ => false,
        },
        None => true,
    };
    ordered && within_curve
}

/// EPANET's pump curve checks: 226 when a pump has neither head curve nor power, 227 when its
/// head curve cannot be used (a power function that does not fit, or heads that do not fall).
fn pump_fault(pump: &Pump, curves: &[Curve]) -> Option<u32> {
    if pump.power.is_some() {
        return None;
    }
    let Some(curve) = pump.head_curve.and_then(|c| curves.get(c)) else {
        return Some(226);
    };
    let p = &curve.points;
    let power_function = match p.len() {
        0 => return Some(227),
        1 => Some((1.33334 * p[0].1, p[0].1, 0.0, p[0].0, 2.0 * p[0].0)),
        3 if p[0].0 == 0.0 => Some((p[0].1, p[1].1, p[2].1, p[1].0, p[2].0)),
        _ => None,
    };
    match power_function {
        Some((h0, h1, h2, q1, q2)) => (!power_curve_fits(h0, h1, h2, q1, q2)).then_some(227),
        None => p.windows(2).any(|w| w[1].1 >= w[0].1).then_some(227),
    }
}

/// Whether `h = a + b q^c` fits the shutoff head `h0` and the points (q1, h1), (q2, h2)
/// with EPANET's limits (b < 0, 0 < c <= 20).
fn power_curve_fits(h0: f64, h1: f64, h2: f64, q1: f64, q2: f64) -> bool {
    if h0 < TINY || h0 - h1 < TINY || h1 - h2 < TINY || q1 < TINY || q2 - q1 < TINY {
        return false;
    }
    let c = ((h0 - h2) / (h0 - h1)).ln() / (q2 / q1).ln();
    if c <= 0.0 || c > 20.0 {
        return false;
    }
    let b = -(h0 - h1) / q1.powf(c);
    b < 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_curves() {
        assert!(power_curve_fits(133.334, 100.0, 0.0, 1000.0, 2000.0));
        assert!(!power_curve_fits(100.0, 120.0, 0.0, 1000.0, 2000.0));
        assert!(!power_curve_fits(100.0, 90.0, 80.0, 1000.0, 1000.0));
    }
}
