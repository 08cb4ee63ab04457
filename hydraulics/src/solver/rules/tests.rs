use super::*;
use crate::model::Options;
use crate::model::RuleObject::{Link, Node, System};
use crate::model::RuleVariable::{
    ClockTime, Demand, DrainTime, FillTime, Flow, Grade, Head, Level, Power, Pressure, Setting,
    Time,
};
use crate::solver::data::{HydLink, HydNode, HydOptions, HydPump, HydTank, HydTimes};
use crate::units::UnitFactors;

// A small network in GPM and psi: two junctions, a reservoir and a tank, and one link of
// each kind a rule can act on.
const J1: usize = 0;
const J2: usize = 1;
const RESERVOIR: usize = 2;
const TANK: usize = 3;
const PIPE: usize = 0;
const PUMP: usize = 1;
const PRV: usize = 2;
const FCV: usize = 3;
const TCV: usize = 4;
const GPV: usize = 5;
const CONST_HP_PUMP: usize = 6;

const GPM: f64 = 448.831;
const PSI: f64 = 0.4333;

fn node(id: &str, elevation: f64) -> HydNode {
    HydNode {
        id: id.into(),
        elevation,
        demands: Vec::new(),
        emitter_coeff: 0.0,
    }
}

fn link(id: &str, link_type: LinkType, pump: Option<usize>) -> HydLink {
    HydLink {
        id: id.into(),
        from: J1,
        to: J2,
        link_type,
        diameter: 1.0,
        length: 100.0,
        roughness: 100.0,
        minor_loss: 0.0,
        resistance: 1.0,
        initial_status: Status::Open,
        initial_setting: 0.0,
        leak_area: 0.0,
        leak_expansion: 0.0,
        pump,
        curve: None,
    }
}

fn tank(node: usize, area: f64, elevation: f64) -> HydTank {
    HydTank {
        node,
        area,
        hmin: elevation + 5.0,
        hmax: elevation + 20.0,
        h0: elevation + 10.0,
        vmin: 5.0 * area,
        vmax: 20.0 * area,
        v0: 10.0 * area,
        pattern: None,
        volume_curve: None,
        can_overflow: false,
    }
}

fn pump(link: usize, pump_type: PumpType, q0: f64) -> HydPump {
    HydPump {
        link,
        pump_type,
        q0,
        qmax: 10.0,
        hmax: 100.0,
        h0: 100.0,
        r: 1.0,
        n: 2.0,
        head_curve: None,
        efficiency_curve: None,
        speed_pattern: None,
    }
}

fn network(rules: Vec<Rule>) -> HydNetwork {
    HydNetwork {
        nodes: vec![
            node("J1", 100.0),
            node("J2", 50.0),
            node("R", 250.0),
            node("T", 100.0),
        ],
        junctions: 2,
        links: vec![
            link("P", LinkType::Pipe, None),
            link("PU", LinkType::Pump, Some(0)),
            link("PRV", LinkType::Prv, None),
            link("FCV", LinkType::Fcv, None),
            link("TCV", LinkType::Tcv, None),
            link("GPV", LinkType::Gpv, None),
            link("HP", LinkType::Pump, Some(1)),
        ],
        tanks: vec![tank(RESERVOIR, 0.0, 250.0), tank(TANK, 50.0, 100.0)],
        pumps: vec![
            pump(PUMP, PumpType::PowerFunc, 1.5),
            pump(CONST_HP_PUMP, PumpType::ConstHp, 2.0),
        ],
        valves: vec![PRV, FCV, TCV, GPV],
        patterns: Vec::new(),
        curves: Vec::new(),
        controls: Vec::new(),
        rules,
        options: HydOptions {
            headloss: crate::model::HeadlossFormula::HazenWilliams,
            accuracy: 0.001,
            max_trials: 200,
            extra_trials: None,
            check_freq: 2,
            max_check: 10,
            damp_limit: 0.0,
            head_error_limit: 0.0,
            flow_change_limit: 0.0,
            htol: 0.0005,
            qtol: 0.0001,
            rqtol: 1e-7,
            viscosity: 1.1e-5,
            specific_gravity: 1.0,
            demand_multiplier: 1.0,
            emitter_exponent: 2.0,
            emitter_backflow: true,
            demand_model: crate::model::DemandModel::Dda,
            pmin: 0.0,
            preq: 0.1,
            pexp: 0.5,
            hexp: 1.852,
        },
        times: HydTimes {
            duration: 86_400,
            hydraulic_step: 3600,
            pattern_step: 3600,
            pattern_start: 0,
            report_step: 3600,
            report_start: 0,
            rule_step: 360,
            start_clocktime: 0,
        },
        units: UnitFactors::new(&Options::default()),
    }
}

fn initial_state() -> HydState {
    HydState {
        head: vec![150.0, 120.0, 250.0, 110.0],
        node_demand: vec![0.1, 0.2, -0.3, 0.5],
        flow: vec![1.0, -0.5, 0.2, 0.1, 0.1, 0.1, 0.7],
        setting: vec![100.0, 1.0, 40.0 / PSI, 100.0 / GPM, 5.0, 0.0, 1.0],
        status: vec![
            Status::Open,
            Status::Open,
            Status::Active,
            Status::Active,
            Status::Active,
            Status::Open,
            Status::Open,
        ],
        tank_volume: vec![0.0, 500.0],
        time: 3600,
        system_demand: 0.3,
        ..Default::default()
    }
}

fn premise(
    object: RuleObject,
    variable: RuleVariable,
    relation: Relation,
    value: PremiseValue,
) -> Premise {
    Premise {
        logic: PremiseLogic::And,
        object,
        variable,
        relation,
        value,
    }
}

fn number(object: RuleObject, variable: RuleVariable, relation: Relation, value: f64) -> Premise {
    premise(object, variable, relation, PremiseValue::Number(value))
}

fn act(link: usize, action: LinkAction) -> RuleAction {
    RuleAction { link, action }
}

fn rule(
    premises: Vec<Premise>,
    then_actions: Vec<RuleAction>,
    else_actions: Vec<RuleAction>,
    priority: f64,
) -> Rule {
    Rule {
        id: "R".into(),
        premises,
        then_actions,
        else_actions,
        priority,
        enabled: true,
    }
}

/// Whether one premise holds at `state.time`, evaluated over the window of `dt` seconds.
/// Whether one premise holds at `state.time`, evaluated over a window of `dt` seconds.
fn holds_over(net: &HydNetwork, state: &HydState, dt: i64, premise: &Premise) -> bool {
    let window = TimeWindow {
        first: state.time - dt + 1,
        last: state.time,
    };
    let rule = rule(vec![premise.clone()], Vec::new(), Vec::new(), 0.0);
    premises_hold(net, state, &rule, window)
}

/// Checks each premise against its expected truth, after a rule step of `dt` seconds.
fn expect_over(net: &HydNetwork, state: &HydState, dt: i64, cases: &[(Premise, bool)]) {
    for (premise, expected) in cases {
        let found = holds_over(net, state, dt, premise);
        assert_eq!(found, *expected, "{premise:?}");
    }
}

fn expect(net: &HydNetwork, state: &HydState, cases: &[(Premise, bool)]) {
    expect_over(net, state, 360, cases);
}

#[test]
fn demand_premises_compare_in_flow_units() {
    let (net, state) = (network(Vec::new()), initial_state());
    let demand = |object, value| number(object, Demand, Relation::Eq, value);
    expect(
        &net,
        &state,
        &[
            // 0.1 cfs is 44.8831 gpm.
            (demand(Node(J1), 44.883), true),
            (demand(Node(J1), 44.88), false),
            // A tank's demand is its net inflow.
            (demand(Node(TANK), 0.5 * GPM), true),
            // The system demand is the period's total consumer demand.
            (demand(System, 0.3 * GPM), true),
        ],
    );
}

#[test]
fn head_level_and_pressure_premises() {
    let (net, state) = (network(Vec::new()), initial_state());
    let at = |node, variable, value| number(Node(node), variable, Relation::Eq, value);
    expect(
        &net,
        &state,
        &[
            (at(J1, Head, 150.0), true),
            (at(J1, Grade, 150.0), true),
            // 50 ft of water in psi.
            (at(J1, Pressure, 50.0 * PSI), true),
            // Level in length units above the node's elevation (a tank's bottom).
            (at(TANK, Level, 10.0), true),
            (at(J1, Level, 50.0), true),
        ],
    );
}

#[test]
fn flow_premises_use_the_flow_magnitude() {
    let (net, state) = (network(Vec::new()), initial_state());
    expect(
        &net,
        &state,
        &[
            (number(Link(PUMP), Flow, Relation::Eq, 0.5 * GPM), true),
            (number(Link(PUMP), Flow, Relation::Lt, 0.0), false),
        ],
    );
}

#[test]
fn setting_premises_convert_per_link_type() {
    let (net, mut state) = (network(Vec::new()), initial_state());
    let setting = |link, relation, value| number(Link(link), Setting, relation, value);
    expect(
        &net,
        &state,
        &[
            (setting(PRV, Relation::Eq, 40.0), true),
            (setting(FCV, Relation::Eq, 100.0), true),
            (setting(TCV, Relation::Eq, 5.0), true),
            (setting(PUMP, Relation::Eq, 1.0), true),
        ],
    );
    // A valve without a setting satisfies no setting premise at all.
    state.setting[PRV] = MISSING;
    expect(
        &net,
        &state,
        &[
            (setting(PRV, Relation::Eq, 40.0), false),
            (setting(PRV, Relation::Ne, 40.0), false),
        ],
    );
}

#[test]
fn status_premises_fold_solver_states() {
    let (net, mut state) = (network(Vec::new()), initial_state());
    let status = |object, relation, value| premise(object, RuleVariable::Status, relation, value);
    let (open, closed, active) = (
        PremiseValue::Open,
        PremiseValue::Closed,
        PremiseValue::Active,
    );
    expect(
        &net,
        &state,
        &[
            (status(Link(PUMP), Relation::Is, open), true),
            (status(Link(PUMP), Relation::Is, closed), false),
            (status(Link(PUMP), Relation::Not, closed), true),
            (status(Link(PRV), Relation::Is, active), true),
            (status(Link(PRV), Relation::Is, open), false),
            // Only = and <> apply to statuses, and only links have one.
            (status(Link(PUMP), Relation::Lt, open), false),
            (status(Node(J1), Relation::Ne, open), false),
        ],
    );
    // A pump that cannot deliver head and a valve shut by the solver read as closed; an
    // FCV that cannot deliver its flow and a pump beyond its curve as open.
    state.status[PRV] = Status::TempClosed;
    state.status[GPV] = Status::XHead;
    state.status[FCV] = Status::XFcv;
    state.status[PUMP] = Status::XFlow;
    expect(
        &net,
        &state,
        &[
            (status(Link(PRV), Relation::Is, closed), true),
            (status(Link(GPV), Relation::Is, closed), true),
            (status(Link(FCV), Relation::Is, open), true),
            (status(Link(PUMP), Relation::Is, open), true),
        ],
    );
}

#[test]
fn fill_and_drain_times_are_in_seconds() {
    let (net, mut state) = (network(Vec::new()), initial_state());
    let time = |node, variable, relation, value| number(Node(node), variable, relation, value);
    // (1000 - 500) ft3 at 0.5 cfs: 1000 s to fill, and no drain time.
    expect(
        &net,
        &state,
        &[
            (time(TANK, FillTime, Relation::Eq, 1000.0), true),
            (time(TANK, FillTime, Relation::Below, 1100.0), true),
            (time(TANK, FillTime, Relation::Above, 1100.0), false),
            (time(TANK, DrainTime, Relation::Ge, 0.0), false),
        ],
    );
    // (250 - 500) ft3 at -0.25 cfs: 1000 s to drain.
    state.node_demand[TANK] = -0.25;
    expect(
        &net,
        &state,
        &[
            (time(TANK, DrainTime, Relation::Eq, 1000.0), true),
            (time(TANK, FillTime, Relation::Ge, 0.0), false),
        ],
    );
    // A still tank, a reservoir and a junction have neither.
    state.node_demand[TANK] = 1.0e-7;
    expect(
        &net,
        &state,
        &[
            (time(TANK, FillTime, Relation::Ge, 0.0), false),
            (time(TANK, DrainTime, Relation::Ge, 0.0), false),
            (time(RESERVOIR, DrainTime, Relation::Le, 1.0e9), false),
            (time(J1, FillTime, Relation::Le, 1.0e9), false),
        ],
    );
}

#[test]
fn premises_without_a_value_are_false() {
    let (net, state) = (network(Vec::new()), initial_state());
    expect(
        &net,
        &state,
        &[
            (number(Link(PUMP), Power, Relation::Ge, 0.0), false),
            (number(Link(PUMP), Head, Relation::Ge, 0.0), false),
            (number(Node(J1), Flow, Relation::Ge, 0.0), false),
            (
                premise(System, Time, Relation::Eq, PremiseValue::Open),
                false,
            ),
        ],
    );
}

#[test]
fn relations_use_epanet_tolerance_bands() {
    let (net, state) = (network(Vec::new()), initial_state());
    // The tank's level is exactly 10.
    let level = |relation, value| number(Node(TANK), Level, relation, value);
    expect(
        &net,
        &state,
        &[
            (level(Relation::Eq, 10.0), true),
            (level(Relation::Eq, 10.0009), true),
            (level(Relation::Eq, 10.002), false),
            (level(Relation::Is, 10.0), true),
            (level(Relation::Ne, 10.0), false),
            (level(Relation::Not, 10.002), true),
            // `<` and `>` let the value reach the tolerance past the target ...
            (level(Relation::Lt, 9.9995), true),
            (level(Relation::Lt, 9.998), false),
            (level(Relation::Below, 9.998), false),
            (level(Relation::Gt, 10.0005), true),
            (level(Relation::Above, 10.002), false),
            // ... while `<=` and `>=` need it the tolerance short of the target.
            (level(Relation::Le, 10.0), false),
            (level(Relation::Le, 10.002), true),
            (level(Relation::Ge, 10.0), false),
            (level(Relation::Ge, 9.998), true),
        ],
    );
}

#[test]
fn time_equalities_hold_inside_the_evaluation_window() {
    let (net, state) = (network(Vec::new()), initial_state());
    let time = |relation, value| number(System, Time, relation, value);
    // At t = 3600 s after a 360 s rule step the window is (3240, 3600].
    expect(
        &net,
        &state,
        &[
            (time(Relation::Eq, 3600.0), true),
            (time(Relation::Eq, 3241.0), true),
            (time(Relation::Eq, 3240.0), false),
            (time(Relation::Eq, 3601.0), false),
            (time(Relation::Ne, 3300.0), false),
            (time(Relation::Ne, 3240.0), true),
            // Inequalities test the time now.
            (time(Relation::Ge, 3600.0), true),
            (time(Relation::Gt, 3600.0), false),
            (time(Relation::Le, 3600.0), true),
            (time(Relation::Lt, 3600.0), false),
            (time(Relation::Lt, 3601.0), true),
        ],
    );
    // The window is as wide as the time since the last evaluation.
    expect_over(&net, &state, 3600, &[(time(Relation::Eq, 1.0), true)]);
    expect_over(&net, &state, 1, &[(time(Relation::Eq, 3599.0), false)]);
}

#[test]
fn clock_time_windows_wrap_at_midnight() {
    let mut net = network(Vec::new());
    net.times.start_clocktime = 84_600; // 23:30, so one hour in it is 00:30
    let clock = |relation, value| number(System, ClockTime, relation, value);
    expect_over(
        &net,
        &initial_state(),
        3600,
        &[
            // The window (23:30, 00:30] of the last hour.
            (clock(Relation::Eq, 0.0), true),
            (clock(Relation::Eq, 85_000.0), true),
            (clock(Relation::Eq, 1800.0), true),
            (clock(Relation::Eq, 84_600.0), false),
            (clock(Relation::Eq, 2000.0), false),
            (clock(Relation::Ne, 2000.0), true),
            // Inequalities test the clock time now.
            (clock(Relation::Lt, 6.0 * 3600.0), true),
            (clock(Relation::Ge, 6.0 * 3600.0), false),
        ],
    );
}

#[test]
fn premises_combine_left_to_right() {
    use PremiseLogic::{And, If, Or};
    let (net, state) = (network(Vec::new()), initial_state());
    let window = TimeWindow {
        first: 3241,
        last: 3600,
    };
    let clause = |truth: bool, logic| Premise {
        logic,
        ..head_is(if truth { 150.0 } else { 0.0 })
    };
    let evaluate = |clauses: &[(bool, PremiseLogic)]| {
        let premises = clauses.iter().map(|&(truth, logic)| clause(truth, logic));
        let rule = rule(premises.collect(), Vec::new(), Vec::new(), 0.0);
        premises_hold(&net, &state, &rule, window)
    };
    // (T OR F) AND F
    assert!(!evaluate(&[(true, If), (false, Or), (false, And)]));
    // (F OR T) AND T
    assert!(evaluate(&[(false, If), (true, Or), (true, And)]));
    // F AND T: false at once, whatever an OR after it says.
    assert!(!evaluate(&[(false, If), (true, And), (true, Or)]));
    // (T AND F) OR T
    assert!(evaluate(&[(true, If), (false, And), (true, Or)]));
    assert!(evaluate(&[]));
}

fn head_is(value: f64) -> Premise {
    number(Node(J1), Head, Relation::Eq, value)
}

/// A rule that holds when `holds`, with its THEN and ELSE actions and priority.
fn rule_on(holds: bool, then: &[RuleAction], otherwise: &[RuleAction], priority: f64) -> Rule {
    let premise = head_is(if holds { 150.0 } else { 0.0 });
    rule(vec![premise], then.to_vec(), otherwise.to_vec(), priority)
}

#[test]
fn then_and_else_actions() {
    let net = network(vec![
        rule_on(
            true,
            &[act(PUMP, LinkAction::Closed)],
            &[act(PUMP, LinkAction::Open)],
            0.0,
        ),
        rule_on(
            false,
            &[act(FCV, LinkAction::Closed)],
            &[act(PRV, LinkAction::Closed)],
            0.0,
        ),
    ]);
    let mut state = initial_state();
    assert_eq!(check_rules(&net, &mut state, 360), 2);
    assert_eq!(
        (state.status[PUMP], state.setting[PUMP]),
        (Status::Closed, 0.0)
    );
    assert_eq!(
        (state.status[PRV], state.setting[PRV]),
        (Status::Closed, MISSING)
    );
    assert_eq!(state.status[FCV], Status::Active);
    // Nothing changes a second time.
    assert_eq!(check_rules(&net, &mut state, 360), 0);
}

#[test]
fn disabled_rules_do_nothing() {
    let mut disabled = rule_on(true, &[act(PUMP, LinkAction::Closed)], &[], 0.0);
    disabled.enabled = false;
    let mut state = initial_state();
    assert_eq!(check_rules(&network(vec![disabled]), &mut state, 360), 0);
    assert_eq!(state.status[PUMP], Status::Open);
}

#[test]
fn higher_priority_rules_replace_earlier_actions_on_a_link() {
    let close = |priority| rule_on(true, &[act(PUMP, LinkAction::Closed)], &[], priority);
    let open = |priority| rule_on(true, &[act(PUMP, LinkAction::Open)], &[], priority);
    let run = |rules| {
        let mut state = initial_state();
        let taken = check_rules(&network(rules), &mut state, 360);
        (taken, state.status[PUMP])
    };
    // The later, higher-priority OPEN wins; the pump is open already: no action.
    assert_eq!(run(vec![close(1.0), open(2.0)]), (0, Status::Open));
    // At equal or lower priority the first rule's action stays.
    assert_eq!(run(vec![close(1.0), open(1.0)]), (1, Status::Closed));
    assert_eq!(run(vec![close(1.0), open(0.5)]), (1, Status::Closed));
    // An ELSE action competes like a THEN action.
    let open_otherwise = rule_on(false, &[], &[act(PUMP, LinkAction::Open)], 2.0);
    assert_eq!(run(vec![close(1.0), open_otherwise]), (0, Status::Open));
    // Within one rule the first action on a link counts.
    let both = [act(PUMP, LinkAction::Closed), act(PUMP, LinkAction::Open)];
    assert_eq!(
        run(vec![rule_on(true, &both, &[], 0.0)]),
        (1, Status::Closed)
    );
}

fn apply(state: &mut HydState, link: usize, action: LinkAction) -> bool {
    take_action(&network(Vec::new()), state, &act(link, action))
}

#[test]
fn valve_actions() {
    let mut state = initial_state();
    let valve = |state: &HydState, link: usize| (state.status[link], state.setting[link]);
    // An active valve is not closed, so OPEN leaves it controlling.
    assert!(!apply(&mut state, PRV, LinkAction::Open));
    assert_eq!(state.status[PRV], Status::Active);
    // A setting within 0.001 (internal units) of the current one is no change.
    assert!(!apply(&mut state, PRV, LinkAction::Setting(40.0001)));
    assert!(apply(&mut state, PRV, LinkAction::Setting(50.0)));
    assert_eq!(valve(&state, PRV), (Status::Active, 50.0 / PSI));
    // Closed by status the valve loses its setting; a new setting opens it again.
    assert!(apply(&mut state, PRV, LinkAction::Closed));
    assert_eq!(valve(&state, PRV), (Status::Closed, MISSING));
    assert!(apply(&mut state, PRV, LinkAction::Setting(30.0)));
    assert_eq!(valve(&state, PRV), (Status::Open, 30.0 / PSI));
    // An FCV given a flow becomes active.
    assert!(apply(&mut state, FCV, LinkAction::Closed));
    assert!(apply(&mut state, FCV, LinkAction::Setting(200.0)));
    assert_eq!(valve(&state, FCV), (Status::Active, 200.0 / GPM));
    // A TCV's loss coefficient has no units.
    assert!(apply(&mut state, TCV, LinkAction::Setting(8.0)));
    assert_eq!(valve(&state, TCV), (Status::Active, 8.0));
    // A GPV keeps its curve when opened or closed, and takes no setting.
    assert!(apply(&mut state, GPV, LinkAction::Closed));
    assert_eq!(valve(&state, GPV), (Status::Closed, 0.0));
    assert!(!apply(&mut state, GPV, LinkAction::Setting(3.0)));
    // ACTIVE is accepted but never acted on.
    assert!(!apply(&mut state, PRV, LinkAction::Active));
    assert_eq!(state.status[PRV], Status::Open);
}

#[test]
fn pump_actions() {
    let mut state = initial_state();
    let pump = |state: &HydState| (state.status[PUMP], state.setting[PUMP]);
    assert!(!apply(&mut state, PUMP, LinkAction::Open));
    assert!(apply(&mut state, PUMP, LinkAction::Setting(0.0)));
    assert_eq!(pump(&state), (Status::Closed, 0.0));
    assert!(apply(&mut state, PUMP, LinkAction::Setting(0.8)));
    assert_eq!(pump(&state), (Status::Open, 0.8));
    // Opening by status runs the pump at full speed.
    state.status[PUMP] = Status::XHead;
    assert!(apply(&mut state, PUMP, LinkAction::Open));
    assert_eq!(pump(&state), (Status::Open, 1.0));
    // A power-function pump keeps its flow when reopened.
    assert_eq!(state.flow[PUMP], -0.5);
}

#[test]
fn constant_power_pumps_restart_from_design_flow() {
    let mut state = initial_state();
    assert!(apply(&mut state, CONST_HP_PUMP, LinkAction::Closed));
    assert!(apply(&mut state, CONST_HP_PUMP, LinkAction::Open));
    assert_eq!(state.flow[CONST_HP_PUMP], 2.0);
    // Not when opened after the solver shut it ...
    state.flow[CONST_HP_PUMP] = 0.7;
    state.status[CONST_HP_PUMP] = Status::XHead;
    assert!(apply(&mut state, CONST_HP_PUMP, LinkAction::Open));
    assert_eq!(state.flow[CONST_HP_PUMP], 0.7);
    // ... but a speed restarts it from any closed state.
    state.status[CONST_HP_PUMP] = Status::TempClosed;
    assert!(apply(&mut state, CONST_HP_PUMP, LinkAction::Setting(0.9)));
    assert_eq!(state.flow[CONST_HP_PUMP], 2.0);
}

#[test]
fn pipe_settings_mean_a_status() {
    let mut state = initial_state();
    assert!(apply(&mut state, PIPE, LinkAction::Setting(0.0)));
    assert_eq!(
        (state.status[PIPE], state.setting[PIPE]),
        (Status::Closed, 100.0)
    );
    assert!(apply(&mut state, PIPE, LinkAction::Setting(1.0)));
    assert_eq!(state.status[PIPE], Status::Open);
}

#[test]
fn no_rules_no_actions() {
    let mut state = initial_state();
    assert_eq!(check_rules(&network(Vec::new()), &mut state, 360), 0);
}
