//! An alarm's sensitivities with the likeliest junctions' columns solved rather than
//! linearized: the secant through the leak's own size instead of the tangent at no leak.

use hydraulics::solver::{SnapshotSolver, StepResult};

use super::hourly::HourlyStates;
use crate::detect::Alarm;
use crate::estimate::{Observation, Sensitivity};
use crate::localize::{best_first, match_signature, Method};

/// Junctions (the signature's best linear matches) whose responses are solved rather than
/// linearized before an alarm is located: 12 located 87 of 120 development leaks, 24 located
/// 88 and all 92 of Net3's located 89, at 30 sensors (BENCHMARKS, stop 24, with the first
/// version of the secants).
const SECANT_CANDIDATES: usize = 24;

/// `linear` (the alarm's sensitivities over the hours `window`) with the columns of the
/// likeliest junctions and of the leaks already reported replaced by their secants: the
/// network solved again at each hour with a leak of the size the signature implies there
/// ([`HourlyStates::solved_responses`]). Head loss grows with flow to the power 1.85, so the
/// tangent misjudges a leak of hundreds of gallons a minute near pipes that carry less; on
/// noise-free generated data it put 20 fewer of 120 leaks within 300 m (BENCHMARKS, stop 24).
pub(super) fn secant_sensitivity(
    solver: &mut SnapshotSolver,
    hourly: &HourlyStates,
    window: (i64, i64),
    alarm: &Alarm,
    reported: &[usize],
    linear: &Sensitivity,
    consumption: &[f64],
) -> Sensitivity {
    let scores = match_signature(
        linear,
        &alarm.signature,
        &alarm.noise,
        consumption,
        Method::LeastSquares,
    );
    let mut candidates: Vec<(usize, f64)> = best_first(&scores)
        .iter()
        .take(SECANT_CANDIDATES)
        .map(|s| (s.node, s.flow))
        .collect();
    for &node in reported {
        if !candidates.iter().any(|c| c.0 == node) {
            if let Some(score) = scores.get(node) {
                candidates.push((node, score.flow));
            }
        }
    }
    candidates.retain(|c| c.1 > 0.0);
    let observations = linear.observations();
    let read = |result: &StepResult| -> Vec<f64> {
        observations
            .iter()
            .map(|observation| match *observation {
                Observation::Pressure(n) => result.pressure[n],
                Observation::Head(n) => result.head[n],
                Observation::Flow(l) => result.flow[l],
                Observation::Demand(_) => f64::NAN,
            })
            .collect()
    };
    let responses = hourly.solved_responses(solver, window, &candidates, read);
    // The solved leak holds the consumption (the twin's demand follows the metered inflow);
    // the linear columns leave that to the localizer, which takes the uniform response off
    // every column. The secants are given the same way.
    let uniform = linear.spread_response(consumption);
    let columns: Vec<(usize, Vec<f64>)> = responses
        .into_iter()
        .map(|(junction, response)| {
            let column = response
                .iter()
                .enumerate()
                .map(|(row, value)| {
                    if value.is_finite() {
                        value + uniform[row]
                    } else {
                        linear.get(row, junction)
                    }
                })
                .collect();
            (junction, column)
        })
        .collect();
    linear.with_columns(&columns)
}

#[cfg(test)]
mod tests {
    use hydraulics::model::Network;
    use hydraulics::solver::BoundaryConditions;

    use super::*;
    use crate::estimate::nominal_demands;
    use crate::localize::{Localizer, SAME_PLACE_M};
    use crate::reading::NetworkUnits;
    use crate::testutil::{every_third_pressure, linearized, net3, pressure_alarm, steady};

    /// How far from `leak` each way of locating puts a noise-free leak of `flow` there: the
    /// pressures' change against a model whose demand multiplier took the leak in, as the
    /// twin's does, located with the tangent and with the secants.
    fn located_distances(network: &Network, leak: usize, flow: f64) -> (f64, f64) {
        let units = NetworkUnits::new(&network.options);
        let observations = every_third_pressure(network);
        let (base, linear) = linearized(network, &observations);
        let consumption: f64 = base.demand[..network.junction_count()]
            .iter()
            .filter(|d| **d > 0.0)
            .sum();
        let held = (consumption - flow) / consumption;
        let mut leaky = network.clone();
        leaky.options.demand_multiplier *= held;
        assert!(leaky.add_constant_outflow(leak, flow / leaky.options.demand_multiplier));
        let alarm = pressure_alarm(&observations, &steady(&leaky), &base);
        let mut solver = SnapshotSolver::new(network).expect("Net3 compiles");
        let period = solver
            .solve(&BoundaryConditions::default())
            .expect("Net3 solves");
        let mut hourly = HourlyStates::default();
        hourly.record(
            0,
            &period.result.head,
            &period.result.flow,
            &period.result.status,
            || solver.keep_period(),
        );
        let nominal = nominal_demands(network, 0);
        let secant =
            secant_sensitivity(&mut solver, &hourly, (0, 0), &alarm, &[], &linear, &nominal);
        let localizer = Localizer::new(network, &units);
        let from_leak = localizer.distances(leak, f64::INFINITY);
        let distance = |sensitivity: &Sensitivity| {
            let location = localizer
                .locate(
                    sensitivity,
                    &alarm.signature,
                    &alarm.noise,
                    &nominal,
                    None,
                    &[],
                )
                .expect("located");
            from_leak[network.node_index(&location.node).expect("a node")]
        };
        (distance(&linear), distance(&secant))
    }

    #[test]
    fn secants_place_large_leaks_that_the_tangent_misplaces() {
        let network = net3();
        // 700 gpm: 7 % of Net3's average consumption, the middle of the generated leaks.
        let distances: Vec<(f64, f64)> = (1..network.junction_count())
            .step_by(4)
            .map(|leak| located_distances(&network, leak, 700.0))
            .collect();
        let count = |pick: fn(&(f64, f64)) -> f64, within: f64| {
            distances.iter().filter(|d| pick(d) <= within).count()
        };
        let (tangent, secant) = (|d: &(f64, f64)| d.0, |d: &(f64, f64)| d.1);
        // 23 leaks: at their own junction 10 by the tangent, 15 by the secants; within 300 m
        // 16 and 19. (Three junctions of Net3 with no sensor near, 20, 40 and 50, give one
        // signature: either way a leak there is placed at one of them.)
        assert!(
            count(secant, 0.0) >= count(tangent, 0.0) + 4,
            "{distances:?}"
        );
        assert!(
            count(secant, SAME_PLACE_M) >= count(tangent, SAME_PLACE_M) + 2,
            "{distances:?}"
        );
    }
}
