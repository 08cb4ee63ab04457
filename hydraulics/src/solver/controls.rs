//! Simple controls (`[CONTROLS]`) between hydraulic periods: which fire at the start of a
//! period (EPANET's `controls`), and how long until the next one can fire (`controltimestep`).
//! Pressure-switch controls on junctions act inside the solve instead (see `status`).

use super::data::{ControlKind, HydControl, HydNetwork, HydState, LinkType, Status, MISSING};
use super::rules::reset_pump_flow;
use super::tanks::{tank_volume, ZERO_FLOW};

/// Seconds in a day, for time-of-day controls.
const SECONDS_PER_DAY: i64 = 86_400;

/// The status and setting a control gives its link, as EPANET stores them (a control that
/// opens or closes a valve other than a GPV leaves it without a setting).
fn control_target(control: &HydControl) -> (Status, f64) {
    let status = control.status.unwrap_or(Status::Active);
    (status, control.setting.unwrap_or(MISSING))
}

/// Applies the simple controls that fire at the current time (timer and time-of-day controls
/// at their time, tank level controls when the level is within one second of inflow of the
/// control level or beyond it). Returns how many links changed.
pub(crate) fn apply_controls(network: &HydNetwork, state: &mut HydState) -> usize {
    let mut changed = 0;
    for control in network.controls.iter().filter(|c| c.enabled) {
        if !control_fires(network, state, control) {
            continue;
        }
        let link_index = control.link;
        let link_type = network.links[link_index].link_type;
        let current_status = if state.status[link_index].is_closed() {
            Status::Closed
        } else {
            Status::Open
        };
        let (new_status, target_setting) = control_target(control);
        let current_setting = state.setting[link_index];
        let new_setting = if link_type == LinkType::Pump || link_type.is_valve() {
            target_setting
        } else {
            current_setting
        };
        if link_type == LinkType::Pump
            && current_status == Status::Closed
            && new_status == Status::Open
        {
            reset_pump_flow(network, state, link_index);
        }
        if current_status != new_status || current_setting != new_setting {
            state.status[link_index] = new_status;
            state.setting[link_index] = new_setting;
            changed += 1;
        }
    }
    changed
}

/// `true` when `control`'s condition holds at the current time and tank levels.
fn control_fires(network: &HydNetwork, state: &HydState, control: &HydControl) -> bool {
    let level_fires = match (control.kind, control.node) {
        (ControlKind::LowLevel | ControlKind::HiLevel, Some(node)) if node >= network.junctions => {
            let tank = &network.tanks[node - network.junctions];
            // One second of the tank's current flow is the tolerance: the level a time step
            // ends at is rounded to whole seconds.
            let tolerance = state.node_demand[node].abs();
            let volume = tank_volume(network, tank, state.head[node]);
            let control_volume = tank_volume(network, tank, control.grade);
            match control.kind {
                ControlKind::LowLevel => volume <= control_volume + tolerance,
                _ => volume >= control_volume - tolerance,
            }
        }
        _ => false,
    };
    let time_fires = match control.kind {
        ControlKind::Timer => control.time == state.time,
        ControlKind::TimeOfDay => {
            (state.time + network.times.start_clocktime) % SECONDS_PER_DAY == control.time
        }
        _ => false,
    };
    level_fires || time_fires
}

/// Shortens `step` (s) to the time until the next simple control would change a link: a tank
/// reaching a control level at its current inflow, a timer, or a time of day.
pub(crate) fn control_time_step(network: &HydNetwork, state: &HydState, step: i64) -> i64 {
    let mut step = step;
    for control in network.controls.iter().filter(|c| c.enabled) {
        let Some(until) = time_until_control(network, state, control) else {
            continue;
        };
        if until <= 0 || until >= step {
            continue;
        }
        let (target_status, target_setting) = control_target(control);
        let link_index = control.link;
        let link_type = network.links[link_index].link_type;
        let setting_changes = (link_type == LinkType::Pump || link_type.is_valve())
            && state.setting[link_index] != target_setting;
        if setting_changes || state.status[link_index] != target_status {
            step = until;
        }
    }
    step
}

/// Seconds until `control` would fire, if it can fire at all on the current trend.
fn time_until_control(network: &HydNetwork, state: &HydState, control: &HydControl) -> Option<i64> {
    match control.kind {
        ControlKind::LowLevel | ControlKind::HiLevel => {
            let node = control.node?;
            if node < network.junctions {
                return None;
            }
            let tank_index = node - network.junctions;
            let head = state.head[node];
            let inflow = state.node_demand[node];
            if inflow.abs() <= ZERO_FLOW {
                return None;
            }
            let rising_to =
                control.kind == ControlKind::HiLevel && head < control.grade && inflow > 0.0;
            let falling_to =
                control.kind == ControlKind::LowLevel && head > control.grade && inflow < 0.0;
            if !(rising_to || falling_to) {
                return Some(0);
            }
            let tank = &network.tanks[tank_index];
            let volume = tank_volume(network, tank, control.grade) - state.tank_volume[tank_index];
            Some((volume / inflow).round() as i64)
        }
        ControlKind::Timer => Some(if control.time > state.time {
            control.time - state.time
        } else {
            0
        }),
        ControlKind::TimeOfDay => {
            let now = (state.time + network.times.start_clocktime) % SECONDS_PER_DAY;
            Some(if control.time >= now {
                control.time - now
            } else {
                SECONDS_PER_DAY - now + control.time
            })
        }
    }
}
