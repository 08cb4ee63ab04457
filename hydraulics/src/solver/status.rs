//! Status checks made between Newton iterations (EPANET's `hydstatus.c` and `pswitch`):
//! pressure valves, check valves, pumps beyond shutoff head, flow control valves, links to
//! full or empty tanks, and simple controls on junction pressures.

use super::data::{ControlKind, HydNetwork, HydState, LinkType, PumpType, Status, MISSING};

/// Shutoff head standing in for "no limit" (constant-power pumps).
const BIG: f64 = 1.0e10;
/// Flow below which a constant-power pump counts as stopped, cfs.
const TINY: f64 = 1.0e-6;

/// Updates PRVs and PSVs that control (setting not missing); `true` if any status changed.
pub(crate) fn valve_status(network: &HydNetwork, state: &mut HydState) -> bool {
    let options = &network.options;
    let mut changed = false;
    for &k in &network.valves {
        let setting = state.setting[k];
        if setting == MISSING {
            continue;
        }
        let link = &network.links[k];
        let (n1, n2) = (link.from, link.to);
        let (h1, h2) = (state.head[n1], state.head[n2]);
        let flow = state.flow[k];
        let old = state.status[k];
        // Head loss of the valve when fully open.
        let open_loss = link.minor_loss * flow * flow;
        let (htol, reverse) = (options.htol, flow < -options.qtol);
        let new = match link.link_type {
            LinkType::Prv => {
                let hset = network.nodes[n2].elevation + setting;
                match old {
                    Status::Active if reverse => Status::Closed,
                    Status::Active if h1 - open_loss < hset - htol => Status::Open,
                    Status::Open if reverse => Status::Closed,
                    Status::Open if h2 >= hset + htol => Status::Active,
                    Status::Closed if h1 >= hset + htol && h2 < hset - htol => Status::Active,
                    Status::Closed if h1 < hset - htol && h1 > h2 + htol => Status::Open,
                    Status::XPressure if reverse => Status::Closed,
                    other => other,
                }
            }
            LinkType::Psv => {
                let hset = network.nodes[n1].elevation + setting;
                match old {
                    Status::Active if reverse => Status::Closed,
                    Status::Active if h2 + open_loss > hset + htol => Status::Open,
                    Status::Open if reverse => Status::Closed,
                    Status::Open if h1 < hset - htol => Status::Active,
                    Status::Closed if h2 > hset + htol && h1 > h2 + htol => Status::Open,
                    Status::Closed if h1 >= hset + htol && h1 > h2 + htol => Status::Active,
                    Status::XPressure if reverse => Status::Closed,
                    other => other,
                }
            }
            _ => continue,
        };
        if new != old {
            state.status[k] = new;
            changed = true;
        }
    }
    changed
}

/// Updates check valves, pumps, flow control valves and links to full or empty tanks;
/// `true` if any status changed (EPANET's `linkstatus`).
pub(crate) fn link_status(network: &HydNetwork, state: &mut HydState) -> bool {
    let junctions = network.junctions;
    let mut changed = false;
    for (k, link) in network.links.iter().enumerate() {
        let (n1, n2) = (link.from, link.to);
        let old = state.status[k];
        // Temporarily closed links get a fresh look each time.
        let reopened = matches!(old, Status::XHead | Status::TempClosed);
        // Most links are neither check valves, pumps nor FCVs and join two junctions: the
        // end of a temporary closure is all that can change them.
        let checked = matches!(
            link.link_type,
            LinkType::CvPipe | LinkType::Pump | LinkType::Fcv
        );
        if !checked && n1 < junctions && n2 < junctions {
            if reopened {
                state.status[k] = Status::Open;
                changed = true;
            }
            continue;
        }
        let dh = state.head[n1] - state.head[n2];
        if reopened {
            state.status[k] = Status::Open;
        }
        match link.link_type {
            LinkType::CvPipe => {
                state.status[k] = check_valve_status(network, state.status[k], dh, state.flow[k]);
            }
            LinkType::Pump if state.status[k] >= Status::Open && state.setting[k] > 0.0 => {
                state.status[k] = pump_status(network, state, k, -dh);
            }
            LinkType::Fcv if state.setting[k] != MISSING => {
                state.status[k] = fcv_status(network, state, k, old);
            }
            _ => {}
        }
        if n1 >= junctions {
            tank_link_status(network, state, k, n1, state.flow[k]);
        }
        if n2 >= junctions {
            tank_link_status(network, state, k, n2, -state.flow[k]);
        }
        if state.status[k] != old {
            changed = true;
        }
    }
    changed
}

/// A check valve closes on reverse head or flow and opens on forward head.
fn check_valve_status(network: &HydNetwork, current: Status, dh: f64, flow: f64) -> Status {
    let (htol, qtol) = (network.options.htol, network.options.qtol);
    if dh.abs() > htol {
        if dh < -htol || flow < -qtol {
            Status::Closed
        } else {
            Status::Open
        }
    } else if flow < -qtol {
        Status::Closed
    } else {
        current
    }
}

/// An open pump asked for more head than its speed-adjusted shutoff head cannot deliver it;
/// a constant-power pump without forward flow is closed for now.
fn pump_status(network: &HydNetwork, state: &HydState, k: usize, head_gain: f64) -> Status {
    let speed = state.setting[k];
    let shutoff = match network.links[k].pump.and_then(|p| network.pumps.get(p)) {
        Some(pump) if pump.pump_type != PumpType::ConstHp => speed * speed * pump.hmax,
        _ => {
            if state.flow[k] < TINY {
                return Status::TempClosed;
            }
            BIG
        }
    };
    if head_gain > shutoff + network.options.htol {
        Status::XHead
    } else {
        Status::Open
    }
}

/// A flow control valve cannot pass its setting against reverse head or flow, nor while its
/// head loss is below that of the fully open valve; once it can again it becomes active.
fn fcv_status(network: &HydNetwork, state: &HydState, k: usize, current: Status) -> Status {
    let link = &network.links[k];
    let (htol, qtol) = (network.options.htol, network.options.qtol);
    let flow = state.flow[k];
    let dh = state.head[link.from] - state.head[link.to];
    if dh < -htol || flow < -qtol {
        Status::XFcv
    } else if current == Status::XFcv && flow >= state.setting[k] {
        Status::Active
    } else if current == Status::Active && dh / (flow * flow) < link.minor_loss {
        Status::XFcv
    } else {
        current
    }
}

/// Temporarily closes a link that would add water to a full tank or take it from an empty one
/// (EPANET 2.3 judges by the tank's volume). `outflow` is the link's flow out of the tank.
fn tank_link_status(
    network: &HydNetwork,
    state: &mut HydState,
    k: usize,
    node: usize,
    outflow: f64,
) {
    if state.status[k].is_closed() {
        return;
    }
    let tank_index = node - network.junctions;
    let Some(tank) = network.tanks.get(tank_index) else {
        return;
    };
    if tank.is_reservoir() {
        return;
    }
    let volume = state.tank_volume[tank_index];
    if (volume >= tank.vmax && !tank.can_overflow && outflow < 0.0)
        || (volume <= tank.vmin && outflow > 0.0)
    {
        state.status[k] = Status::TempClosed;
    }
}

/// Applies simple controls on junction pressures once the network is balanced; `true` if a
/// link's status or setting changed (EPANET's `pswitch`).
pub(crate) fn pressure_switch(network: &HydNetwork, state: &mut HydState) -> bool {
    let htol = network.options.htol;
    let mut changed = false;
    for control in network.controls.iter().filter(|c| c.enabled) {
        let Some(node) = control.node.filter(|&n| n < network.junctions) else {
            continue;
        };
        let head = state.head[node];
        let triggered = match control.kind {
            ControlKind::LowLevel => head <= control.grade + htol,
            ControlKind::HiLevel => head >= control.grade - htol,
            _ => false,
        };
        if !triggered {
            continue;
        }
        let k = control.link;
        let link_type = network.links[k].link_type;
        let status = state.status[k];
        let target_status = control.status.unwrap_or(status);
        let target_setting = control.setting.unwrap_or(MISSING);
        let setting = state.setting[k];
        let change = match link_type {
            LinkType::Pipe => status != target_status,
            LinkType::CvPipe => false,
            LinkType::Pump => setting != target_setting,
            _ => setting != target_setting || (setting == MISSING && status != target_status),
        };
        if change {
            state.status[k] = target_status;
            if !link_type.is_pipe() {
                state.setting[k] = target_setting;
            }
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inp::read_str;
    use crate::solver::compile;

    /// R1 - P1 - J1 - V1 (PRV 10 psi) - J2 - CV (check valve pipe) - J3; PU1 from J3 to T1
    /// (1-point curve, shutoff 80 ft); PU2 constant power from J1 to J4; J2 has a pressure
    /// control closing P1.
    const NETWORK: &str = "
[JUNCTIONS]
J1 0 0
J2 0 0
J3 0 0
J4 0 0
[RESERVOIRS]
R1 100
[TANKS]
T1 0 5 0 10 10 0
[PIPES]
P1 R1 J1 100 12 100 0 OPEN
CV J2 J3 100 12 100 0 CV
[PUMPS]
PU1 J3 T1 HEAD C1
PU2 J1 J4 POWER 5
[VALVES]
V1 J1 J2 12 PRV 10 0
[CURVES]
C1 100 60
[CONTROLS]
LINK P1 CLOSED IF NODE J2 BELOW 5
[END]
";
    const P1: usize = 0;
    const CV: usize = 1;
    const PU1: usize = 2;
    const PU2: usize = 3;
    const V1: usize = 4;
    const T1: usize = 5;

    fn setup() -> (HydNetwork, HydState) {
        let network = compile(&read_str(NETWORK, "status.inp").unwrap()).unwrap();
        let links = network.links.len();
        let state = HydState {
            head: vec![100.0; network.nodes.len()],
            flow: vec![1.0; links],
            setting: network.links.iter().map(|l| l.initial_setting).collect(),
            status: network.links.iter().map(|l| l.initial_status).collect(),
            tank_volume: network.tanks.iter().map(|t| t.v0).collect(),
            ..HydState::default()
        };
        (network, state)
    }

    #[test]
    fn prv_moves_between_active_open_and_closed() {
        let (network, mut state) = setup();
        let hset = 10.0 / 0.4333;
        // Upstream head below the setting: an active PRV opens fully.
        state.head[0] = hset - 1.0;
        assert!(valve_status(&network, &mut state));
        assert_eq!(state.status[V1], Status::Open);
        // Downstream head above the setting: it controls again.
        state.head[1] = hset + 1.0;
        assert!(valve_status(&network, &mut state));
        assert_eq!(state.status[V1], Status::Active);
        // Reverse flow closes it.
        state.flow[V1] = -1.0;
        assert!(valve_status(&network, &mut state));
        assert_eq!(state.status[V1], Status::Closed);
        // A valve with a fixed status is left alone.
        state.setting[V1] = MISSING;
        state.status[V1] = Status::Open;
        assert!(!valve_status(&network, &mut state));
    }

    #[test]
    fn check_valve_and_pumps_follow_head_and_flow() {
        let (network, mut state) = setup();
        // Reverse head across the check valve closes it.
        state.head[2] = 110.0;
        // More head than the pump's shutoff head (80 ft) across PU1.
        state.head[T1] = 110.0 + 81.0;
        // No flow through the constant power pump.
        state.flow[PU2] = 0.0;
        assert!(link_status(&network, &mut state));
        assert_eq!(state.status[CV], Status::Closed);
        assert_eq!(state.status[PU1], Status::XHead);
        assert_eq!(state.status[PU2], Status::TempClosed);
        // Temporarily closed links are looked at afresh.
        state.head[T1] = 100.0;
        state.flow[PU2] = 1.0;
        link_status(&network, &mut state);
        assert_eq!(state.status[PU1], Status::Open);
        assert_eq!(state.status[PU2], Status::Open);
    }

    #[test]
    fn links_stop_filling_a_full_tank() {
        let (network, mut state) = setup();
        let tank = network
            .tanks
            .iter()
            .position(|t| !t.is_reservoir())
            .unwrap();
        state.tank_volume[tank] = network.tanks[tank].vmax;
        link_status(&network, &mut state);
        assert_eq!(
            state.status[PU1],
            Status::TempClosed,
            "pump flows into the full tank"
        );
        state.flow[PU1] = -1.0;
        state.tank_volume[tank] = network.tanks[tank].vmin;
        link_status(&network, &mut state);
        assert_eq!(
            state.status[PU1],
            Status::TempClosed,
            "flow out of the empty tank"
        );
    }

    #[test]
    fn pressure_controls_act_on_junction_heads() {
        let (network, mut state) = setup();
        assert!(!pressure_switch(&network, &mut state));
        state.head[1] = 1.0;
        assert!(pressure_switch(&network, &mut state));
        assert_eq!(state.status[P1], Status::Closed);
        assert!(
            !pressure_switch(&network, &mut state),
            "no change the second time"
        );
    }
}
