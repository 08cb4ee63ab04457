//! Rule-based controls (`[RULES]`), evaluated as EPANET 2.3 evaluates them (`rules.c`).
//!
//! The time-step logic calls [`check_rules`] at every rule step inside a hydraulic step. Every
//! rule's premises are tested against the current state; the THEN actions of the rules that hold
//! and the ELSE actions of those that do not go on one action list (one entry per link, the
//! entry of a strictly higher-priority rule replacing an earlier one); then the actions that
//! change a link's status or setting are applied.
//!
//! Premise values stay in the file's units and state values are converted to them before they
//! are compared, as EPANET does, so that its comparison tolerance means the same thing here.

use super::data::{HydNetwork, HydState, LinkType, PumpType, Status, MISSING};
use crate::model::{
    LinkAction, Premise, PremiseLogic, PremiseValue, Relation, Rule, RuleAction, RuleObject,
    RuleVariable,
};

/// EPANET's tolerance for premise comparisons and for deciding that a setting changed.
const RULE_TOLERANCE: f64 = 1.0e-3;
/// EPANET's `TINY`: a tank flow at most this large gives no fill or drain time.
const TINY_TANK_FLOW: f64 = 1.0e-6;
const SECONDS_PER_DAY: i64 = 86_400;

/// Evaluates every rule at `state.time` and applies the resulting actions; returns how many
/// actions changed a link's status or setting.
///
/// `dt` is the time since the previous evaluation: a `TIME` or `CLOCKTIME` premise with `=` or
/// `<>` holds when its time falls in the window `(state.time - dt, state.time]`.
pub(crate) fn check_rules(net: &HydNetwork, state: &mut HydState, dt: i64) -> usize {
    let window = TimeWindow {
        first: state.time - dt + 1,
        last: state.time,
    };
    let mut action_list: Vec<ListedAction> = Vec::new();
    for (rule_index, rule) in net.rules.iter().enumerate() {
        if !rule.enabled {
            continue;
        }
        let actions = if premises_hold(net, state, rule, window) {
            &rule.then_actions
        } else {
            &rule.else_actions
        };
        for action in actions {
            add_to_action_list(&mut action_list, &net.rules, rule_index, action);
        }
    }
    let mut taken = 0;
    for listed in &action_list {
        if take_action(net, state, listed.action) {
            taken += 1;
        }
    }
    taken
}

/// Opens (`open == true`) or closes a link by a status action, adjusting its setting as EPANET's
/// `setlinkstatus` does: a pump runs at speed 1 or 0, a control valve other than a GPV loses its
/// setting so that its status stays fixed.
pub(crate) fn set_link_status(net: &HydNetwork, state: &mut HydState, link: usize, open: bool) {
    let link_type = net.links[link].link_type;
    if link_type == LinkType::Pump {
        if open {
            // Only a pump closed by a control or rule (not one closed by the solver) restarts
            // from its design flow.
            if state.status[link] == Status::Closed {
                reset_pump_flow(net, state, link);
            }
            state.setting[link] = 1.0;
        } else {
            state.setting[link] = 0.0;
        }
    }
    if link_type.is_valve() && link_type != LinkType::Gpv {
        state.setting[link] = MISSING;
    }
    state.status[link] = if open { Status::Open } else { Status::Closed };
}

/// Gives a link a new pump speed or valve setting (internal units), adjusting its status as
/// EPANET's `setlinksetting` does: a pump opens at a positive speed and closes at zero, an FCV
/// becomes active, and a valve held closed without a setting opens.
pub(crate) fn set_link_setting(net: &HydNetwork, state: &mut HydState, link: usize, value: f64) {
    match net.links[link].link_type {
        LinkType::Pump => {
            state.setting[link] = value;
            if value > 0.0 && state.status[link].is_closed() {
                reset_pump_flow(net, state, link);
                state.status[link] = Status::Open;
            }
            if value == 0.0 && !state.status[link].is_closed() {
                state.status[link] = Status::Closed;
            }
        }
        LinkType::Fcv => {
            state.setting[link] = value;
            state.status[link] = Status::Active;
        }
        _ => {
            if state.setting[link] == MISSING && state.status[link].is_closed() {
                state.status[link] = Status::Open;
            }
            state.setting[link] = value;
        }
    }
}

/// A constant-power pump that is switched back on restarts from its design flow (EPANET's
/// `resetpumpflow`); other pumps keep their last flow.
pub(crate) fn reset_pump_flow(net: &HydNetwork, state: &mut HydState, link: usize) {
    if let Some(pump) = net.links[link].pump.and_then(|p| net.pumps.get(p)) {
        if pump.pump_type == PumpType::ConstHp {
            state.flow[link] = pump.q0;
        }
    }
}

/// The times a rule evaluation covers, seconds since the start, both ends included.
#[derive(Debug, Clone, Copy)]
struct TimeWindow {
    first: i64,
    last: i64,
}

/// A relation with EPANET's synonyms folded in (`IS` is `=`, `NOT` is `<>`, `BELOW` is `<`,
/// `ABOVE` is `>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    NotEqual,
    LessOrEqual,
    GreaterOrEqual,
    Less,
    Greater,
}

impl From<Relation> for Comparison {
    fn from(relation: Relation) -> Self {
        match relation {
            Relation::Eq | Relation::Is => Self::Equal,
            Relation::Ne | Relation::Not => Self::NotEqual,
            Relation::Le => Self::LessOrEqual,
            Relation::Ge => Self::GreaterOrEqual,
            Relation::Lt | Relation::Below => Self::Less,
            Relation::Gt | Relation::Above => Self::Greater,
        }
    }
}

/// A link's status as a rule premise sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PremiseStatus {
    Open,
    Closed,
    Active,
}

/// Premises are combined strictly left to right: an `AND` (or the `IF`) after a false result
/// makes the rule false, an `OR` is only tested while the result so far is false. So
/// `A OR B AND C` means `(A OR B) AND C`.
fn premises_hold(net: &HydNetwork, state: &HydState, rule: &Rule, window: TimeWindow) -> bool {
    let mut result = true;
    for premise in &rule.premises {
        match premise.logic {
            PremiseLogic::Or => {
                if !result {
                    result = premise_holds(net, state, premise, window);
                }
            }
            PremiseLogic::If | PremiseLogic::And => {
                if !result {
                    return false;
                }
                result = premise_holds(net, state, premise, window);
            }
        }
    }
    result
}

fn premise_holds(
    net: &HydNetwork,
    state: &HydState,
    premise: &Premise,
    window: TimeWindow,
) -> bool {
    let comparison = Comparison::from(premise.relation);
    match (premise.variable, premise.value) {
        (RuleVariable::Time | RuleVariable::ClockTime, PremiseValue::Number(time)) => {
            time_holds(net, premise.variable, comparison, time, window)
        }
        (RuleVariable::Time | RuleVariable::ClockTime, _) => false,
        (_, PremiseValue::Number(target)) => current_value(net, state, premise)
            .is_some_and(|value| value_holds(value, comparison, target)),
        (_, PremiseValue::Open) => {
            status_holds(state, premise.object, comparison, PremiseStatus::Open)
        }
        (_, PremiseValue::Closed) => {
            status_holds(state, premise.object, comparison, PremiseStatus::Closed)
        }
        (_, PremiseValue::Active) => {
            status_holds(state, premise.object, comparison, PremiseStatus::Active)
        }
    }
}

/// `TIME` and `CLOCKTIME` premises (EPANET's `checktime`): inequalities test the current time,
/// equalities whether the premise's time falls inside the evaluation window.
fn time_holds(
    net: &HydNetwork,
    variable: RuleVariable,
    comparison: Comparison,
    time: f64,
    window: TimeWindow,
) -> bool {
    let (first, last) = if variable == RuleVariable::ClockTime {
        let start = net.times.start_clocktime;
        (
            (window.first + start) % SECONDS_PER_DAY,
            (window.last + start) % SECONDS_PER_DAY,
        )
    } else {
        (window.first, window.last)
    };
    let (first, last) = (first as f64, last as f64);
    match comparison {
        Comparison::Less => last < time,
        Comparison::LessOrEqual => last <= time,
        Comparison::Greater => last > time,
        Comparison::GreaterOrEqual => last >= time,
        Comparison::Equal | Comparison::NotEqual => {
            // A clock-time window may wrap past midnight (e.g. 23:00 to 01:00).
            let inside = if last < first {
                time >= first || time <= last
            } else {
                time >= first && time <= last
            };
            inside == (comparison == Comparison::Equal)
        }
    }
}

/// Link status premises (EPANET's `checkstatus`): every closed state (including a pump that
/// cannot deliver head and a check valve shut by the solver) reads as CLOSED, only ACTIVE as
/// ACTIVE, and everything else (an FCV that cannot deliver its flow too) as OPEN.
fn status_holds(
    state: &HydState,
    object: RuleObject,
    comparison: Comparison,
    wanted: PremiseStatus,
) -> bool {
    let RuleObject::Link(link) = object else {
        return false;
    };
    let status = state.status[link];
    let current = if status.is_closed() {
        PremiseStatus::Closed
    } else if status == Status::Active {
        PremiseStatus::Active
    } else {
        PremiseStatus::Open
    };
    match comparison {
        Comparison::Equal => current == wanted,
        Comparison::NotEqual => current != wanted,
        _ => false,
    }
}

/// The current value of a premise's variable in file units (fill and drain times in seconds,
/// as the reader stores them), or `None` where EPANET treats the premise as false (no such value for this object, no
/// setting, a tank neither filling nor draining).
fn current_value(net: &HydNetwork, state: &HydState, premise: &Premise) -> Option<f64> {
    let units = &net.units;
    match (premise.object, premise.variable) {
        (RuleObject::System, RuleVariable::Demand) => Some(state.system_demand * units.flow),
        (RuleObject::Node(node), RuleVariable::Demand) => {
            Some(state.node_demand[node] * units.flow)
        }
        (RuleObject::Node(node), RuleVariable::Head | RuleVariable::Grade) => {
            Some(state.head[node] * units.head)
        }
        (RuleObject::Node(node), RuleVariable::Pressure) => {
            Some((state.head[node] - net.nodes[node].elevation) * units.pressure)
        }
        (RuleObject::Node(node), RuleVariable::Level) => {
            Some((state.head[node] - net.nodes[node].elevation) * units.head)
        }
        (RuleObject::Node(node), RuleVariable::FillTime) => {
            let (tank, inflow) = storage_tank(net, state, node)?;
            (inflow > TINY_TANK_FLOW)
                .then(|| (net.tanks[tank].vmax - state.tank_volume[tank]) / inflow)
        }
        (RuleObject::Node(node), RuleVariable::DrainTime) => {
            let (tank, inflow) = storage_tank(net, state, node)?;
            (inflow < -TINY_TANK_FLOW)
                .then(|| (net.tanks[tank].vmin - state.tank_volume[tank]) / inflow)
        }
        (RuleObject::Link(link), RuleVariable::Flow) => Some(state.flow[link].abs() * units.flow),
        (RuleObject::Link(link), RuleVariable::Setting) => {
            let setting = state.setting[link];
            (setting != MISSING).then(|| setting * setting_factor(net, link))
        }
        _ => None,
    }
}

/// The tank (not reservoir) at a node, with its net inflow (cfs, positive when filling).
fn storage_tank(net: &HydNetwork, state: &HydState, node: usize) -> Option<(usize, f64)> {
    let tank = node.checked_sub(net.junctions)?;
    let is_storage = net.tanks.get(tank).is_some_and(|t| !t.is_reservoir());
    is_storage.then(|| (tank, state.node_demand[node]))
}

/// Numeric comparison with EPANET's tolerance, including its asymmetric bands (`<=` needs the
/// value at least the tolerance below the target, `<` allows it up to the tolerance above).
fn value_holds(value: f64, comparison: Comparison, target: f64) -> bool {
    match comparison {
        Comparison::Equal => (value - target).abs() <= RULE_TOLERANCE,
        Comparison::NotEqual => (value - target).abs() >= RULE_TOLERANCE,
        Comparison::Less => value <= target + RULE_TOLERANCE,
        Comparison::LessOrEqual => value <= target - RULE_TOLERANCE,
        Comparison::Greater => value >= target - RULE_TOLERANCE,
        Comparison::GreaterOrEqual => value >= target + RULE_TOLERANCE,
    }
}

/// Internal-to-file factor of a link setting: pressure for PRV/PSV/PBV, flow for FCV; pump
/// speeds and the other valves' settings have no units.
fn setting_factor(net: &HydNetwork, link: usize) -> f64 {
    match net.links[link].link_type {
        LinkType::Prv | LinkType::Psv | LinkType::Pbv => net.units.pressure,
        LinkType::Fcv => net.units.flow,
        _ => 1.0,
    }
}

/// An action on the action list with the rule it came from.
#[derive(Debug, Clone, Copy)]
struct ListedAction<'a> {
    rule: usize,
    action: &'a RuleAction,
}

/// Adds an action unless its link is already listed; a listed action is replaced only by one from
/// a rule of strictly higher priority (EPANET's `onactionlist`).
fn add_to_action_list<'a>(
    action_list: &mut Vec<ListedAction<'a>>,
    rules: &[Rule],
    rule: usize,
    action: &'a RuleAction,
) {
    match action_list
        .iter_mut()
        .find(|listed| listed.action.link == action.link)
    {
        Some(listed) => {
            if rules[rule].priority > rules[listed.rule].priority {
                *listed = ListedAction { rule, action };
            }
        }
        None => action_list.push(ListedAction { rule, action }),
    }
}

/// Applies one action if it changes the link (EPANET's `takeactions`); returns whether it did.
fn take_action(net: &HydNetwork, state: &mut HydState, action: &RuleAction) -> bool {
    let link = action.link;
    let link_type = net.links[link].link_type;
    let closed = state.status[link].is_closed();
    match pipe_setting_as_status(link_type, action.action) {
        LinkAction::Open if closed => {
            set_link_status(net, state, link, true);
            true
        }
        LinkAction::Closed if !closed => {
            set_link_status(net, state, link, false);
            true
        }
        // A GPV's setting is its curve, which a rule cannot change (EPANET rejects the rule).
        LinkAction::Setting(value) if link_type != LinkType::Gpv => {
            let setting = value / setting_factor(net, link);
            if (setting - state.setting[link]).abs() > RULE_TOLERANCE {
                set_link_setting(net, state, link, setting);
                true
            } else {
                false
            }
        }
        // EPANET 2.3 accepts `STATUS IS ACTIVE` in an action but takes no action on it.
        _ => false,
    }
}

/// A setting given to a pipe means a status, as EPANET reads it: 0 closes, anything else opens.
fn pipe_setting_as_status(link_type: LinkType, action: LinkAction) -> LinkAction {
    match action {
        LinkAction::Setting(value) if link_type.is_pipe() => {
            if value == 0.0 {
                LinkAction::Closed
            } else {
                LinkAction::Open
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
