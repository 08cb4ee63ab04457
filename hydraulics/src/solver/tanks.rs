//! Storage tanks between hydraulic periods: volume and level conversions, the time a tank
//! needs to fill or drain, and the level update at the end of a time step (EPANET's
//! `tankvolume`, `tankgrade`, `tanktimestep` and `tanklevels`).

use super::curves::interpolate;
use super::data::{HydNetwork, HydState, HydTank};

/// Flow that counts as none, cfs (EPANET's `QZERO`): a tank with less net flow is neither
/// filling nor draining, and a closed link starts a run with this flow.
pub(crate) const ZERO_FLOW: f64 = 1.0e-6;

/// Volume (ft3) of `tank` when its water surface is at `head` (ft).
pub(crate) fn tank_volume(network: &HydNetwork, tank: &HydTank, head: f64) -> f64 {
    match volume_curve(network, tank) {
        Some((levels, volumes)) => {
            interpolate(levels, volumes, head - network.nodes[tank.node].elevation)
        }
        None => tank.vmin + (head - tank.hmin) * tank.area,
    }
}

/// Head (ft) of the water surface of `tank` when it holds `volume` (ft3).
pub(crate) fn tank_head(network: &HydNetwork, tank: &HydTank, volume: f64) -> f64 {
    match volume_curve(network, tank) {
        // The curve is read backwards: level as a function of volume.
        Some((levels, volumes)) => {
            network.nodes[tank.node].elevation + interpolate(volumes, levels, volume)
        }
        None => tank.hmin + (volume - tank.vmin) / tank.area,
    }
}

/// The tank's volume curve as (levels ft, volumes ft3), if it has one.
fn volume_curve<'a>(network: &'a HydNetwork, tank: &HydTank) -> Option<(&'a [f64], &'a [f64])> {
    let curve = &network.curves[tank.volume_curve?];
    Some((&curve.x, &curve.y))
}

/// Shortens `step` (s) to the time the first tank needs to fill or drain completely, at the
/// current net inflows. Times are rounded to whole seconds; a tank already at its limit, or
/// one that would reach it in under half a second, does not shorten the step.
pub(crate) fn tank_time_step(network: &HydNetwork, state: &HydState, step: i64) -> i64 {
    let mut step = step;
    for (index, tank) in network.tanks.iter().enumerate() {
        if tank.is_reservoir() {
            continue;
        }
        let head = state.head[tank.node];
        let inflow = state.node_demand[tank.node];
        if inflow.abs() <= ZERO_FLOW {
            continue;
        }
        let volume_to_limit = if inflow > 0.0 && head < tank.hmax {
            tank.vmax - state.tank_volume[index]
        } else if inflow < 0.0 && head > tank.hmin {
            tank.vmin - state.tank_volume[index]
        } else {
            continue;
        };
        let seconds = (volume_to_limit / inflow).round() as i64;
        if seconds > 0 && seconds < step {
            step = seconds;
        }
    }
    step
}

/// Advances every tank's volume and head by `step` seconds of its current net inflow. A tank
/// within one second of full or empty is set exactly full or empty, as EPANET does, so that
/// it is not left a sliver away from its limit. A tank with no net flow (at most `ZERO_FLOW`)
/// keeps its volume and head untouched, even a sliver beyond a limit, as EPANET 2.3 does.
pub(crate) fn update_tank_levels(network: &HydNetwork, state: &mut HydState, step: i64) {
    for (index, tank) in network.tanks.iter().enumerate() {
        if tank.is_reservoir() {
            continue;
        }
        let inflow = state.node_demand[tank.node];
        if inflow.abs() <= ZERO_FLOW {
            continue;
        }
        let mut volume = state.tank_volume[index] + inflow * step as f64;
        if volume + inflow >= tank.vmax {
            volume = tank.vmax;
        } else if volume - inflow <= tank.vmin {
            volume = tank.vmin;
        }
        state.tank_volume[index] = volume;
        state.head[tank.node] = tank_head(network, tank, volume);
    }
}
