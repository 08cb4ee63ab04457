//! Every section of `tests/data/all_sections.inp`, read as EPANET 2.3 reads it.

use hydraulics::inp::{read_file, read_file_with_notes, read_str, write_string};
use hydraulics::model::*;
use std::path::Path;

fn network() -> Network {
    read_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/all_sections.inp")).unwrap()
}

fn node<'a>(net: &'a Network, id: &str) -> &'a Node {
    &net.nodes[net.node_index(id).unwrap()]
}

fn link<'a>(net: &'a Network, id: &str) -> &'a Link {
    &net.links[net.link_index(id).unwrap()]
}

fn junction<'a>(net: &'a Network, id: &str) -> &'a Junction {
    match &node(net, id).kind {
        NodeKind::Junction(j) => j,
        other => panic!("{id} is {other:?}"),
    }
}

fn pattern(net: &Network, id: &str) -> Option<usize> {
    net.patterns.iter().position(|p| p.id == id)
}

fn curve(net: &Network, id: &str) -> Option<usize> {
    net.curves.iter().position(|c| c.id == id)
}

#[test]
fn title_and_node_order() {
    let net = network();
    assert_eq!(
        net.title,
        vec!["Every section the reader knows", "Second title line"]
    );
    let ids: Vec<&str> = net.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["J1", "J2", "J3", "J4", "J5", "R1", "T1", "T2", "T3"]
    );
}

#[test]
fn junction_and_demand_rules() {
    let net = network();
    let daily = pattern(&net, "daily");
    let night = pattern(&net, "night");
    assert_eq!(junction(&net, "J1").elevation, 10.0);
    // The first [DEMANDS] line replaces the [JUNCTIONS] demand; later lines add categories.
    assert_eq!(
        junction(&net, "J1").demands,
        vec![
            Demand {
                base: 2.0,
                pattern: daily,
                category: Some("domestic".into())
            },
            Demand {
                base: 0.5,
                pattern: None,
                category: Some("leakage".into())
            },
        ]
    );
    assert_eq!(
        junction(&net, "J2").demands,
        vec![Demand {
            base: 4.0,
            pattern: None,
            category: None
        }]
    );
    assert_eq!(
        junction(&net, "J3").demands,
        vec![Demand {
            base: 0.0,
            pattern: None,
            category: None
        }]
    );
    assert_eq!(
        junction(&net, "J4").demands,
        vec![Demand {
            base: 1.0,
            pattern: night,
            category: None
        }]
    );
    assert_eq!(
        junction(&net, "J5").demands,
        vec![Demand {
            base: 1.0,
            pattern: night,
            category: None
        }]
    );
    assert_eq!(net.options.default_pattern.as_deref(), Some("daily"));
}

#[test]
fn reservoirs_and_tanks() {
    let net = network();
    assert_eq!(
        node(&net, "R1").kind,
        NodeKind::Reservoir(Reservoir {
            head: 100.0,
            pattern: pattern(&net, "supply")
        })
    );
    let NodeKind::Tank(t1) = &node(&net, "T1").kind else {
        panic!()
    };
    assert_eq!(
        *t1,
        Tank {
            elevation: 50.0,
            initial_level: 3.0,
            min_level: 1.0,
            max_level: 6.0,
            diameter: 20.0,
            min_volume: 0.0,
            volume_curve: None,
            overflow: true
        }
    );
    let NodeKind::Tank(t2) = &node(&net, "T2").kind else {
        panic!()
    };
    assert_eq!(t2.volume_curve, curve(&net, "vol"));
    assert!(!t2.overflow);
    let NodeKind::Tank(t3) = &node(&net, "T3").kind else {
        panic!()
    };
    assert_eq!(
        (t3.diameter, t3.min_volume, t3.volume_curve),
        (15.0, 0.0, None)
    );
}

#[test]
fn pipes_pumps_valves() {
    let net = network();
    let LinkKind::Pipe(p1) = &link(&net, "P1").kind else {
        panic!()
    };
    assert_eq!(
        (
            p1.length,
            p1.diameter,
            p1.roughness,
            p1.minor_loss,
            p1.status
        ),
        (1000.0, 300.0, 0.1, 0.5, PipeStatus::Open)
    );
    assert_eq!((p1.leak_area, p1.leak_expansion), (0.5, 1.5));
    let LinkKind::Pipe(p2) = &link(&net, "P2").kind else {
        panic!()
    };
    assert_eq!((p2.minor_loss, p2.status), (0.0, PipeStatus::CheckValve));
    let LinkKind::Pipe(p4) = &link(&net, "P4").kind else {
        panic!()
    };
    assert_eq!(p4.status, PipeStatus::Closed);
    assert_eq!(link(&net, "P4").initial_status, Some(StatusSpec::Open));
    assert_eq!(link(&net, "P3").to, net.node_index("J3").unwrap());

    let LinkKind::Pump(pu1) = &link(&net, "PU1").kind else {
        panic!()
    };
    assert_eq!(pu1.head_curve, curve(&net, "pumpcurve"));
    assert_eq!(
        (pu1.power, pu1.speed, pu1.pattern),
        (None, 0.9, pattern(&net, "night"))
    );
    assert_eq!(
        (pu1.efficiency_curve, pu1.energy_price, pu1.price_pattern),
        (curve(&net, "eff"), Some(0.2), None)
    );
    let LinkKind::Pump(pu2) = &link(&net, "PU2").kind else {
        panic!()
    };
    assert_eq!(
        (pu2.head_curve, pu2.power, pu2.speed),
        (None, Some(15.0), 1.0)
    );
    assert_eq!(pu2.price_pattern, pattern(&net, "night"));
    assert_eq!(link(&net, "PU2").initial_status, Some(StatusSpec::Closed));

    let valve = |id: &str| match &link(&net, id).kind {
        LinkKind::Valve(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        valve("V1"),
        Valve {
            valve_type: ValveType::Prv,
            diameter: 100.0,
            setting: 30.0,
            curve: None,
            minor_loss: 0.0
        }
    );
    assert_eq!(
        link(&net, "V1").initial_status,
        Some(StatusSpec::Value(0.8))
    );
    assert_eq!(
        (valve("V2").valve_type, valve("V2").minor_loss),
        (ValveType::Tcv, 0.2)
    );
    assert_eq!(
        (
            valve("V3").valve_type,
            valve("V3").curve,
            valve("V3").setting
        ),
        (ValveType::Gpv, curve(&net, "hl"), 0.0)
    );
    assert_eq!(
        (
            valve("V4").valve_type,
            valve("V4").curve,
            valve("V4").setting
        ),
        (ValveType::Pcv, curve(&net, "pcv"), 60.0)
    );
    assert_eq!(
        (valve("V5").valve_type, valve("V5").setting),
        (ValveType::Fcv, 3.0)
    );
}

#[test]
fn patterns_and_curves() {
    let net = network();
    let ids: Vec<&str> = net.patterns.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, vec!["daily", "night", "supply"]);
    assert_eq!(net.patterns[0].multipliers, vec![1.0, 1.2, 1.4, 0.8]);
    let kinds: Vec<(&str, CurveKind)> =
        net.curves.iter().map(|c| (c.id.as_str(), c.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("pumpcurve", CurveKind::Pump),
            ("vol", CurveKind::Volume),
            ("hl", CurveKind::Headloss),
            ("pcv", CurveKind::Valve),
            ("eff", CurveKind::Efficiency),
            ("spare", CurveKind::Valve),
        ]
    );
    assert_eq!(net.curves[1].points, vec![(0.0, 0.0), (10.0, 100.0)]);
}

#[test]
fn controls() {
    let net = network();
    let l = |id: &str| net.link_index(id).unwrap();
    let n = |id: &str| net.node_index(id).unwrap();
    let expected = vec![
        Control {
            link: l("P4"),
            action: LinkAction::Closed,
            condition: ControlCondition::AtTime(7200),
            enabled: true,
        },
        Control {
            link: l("P4"),
            action: LinkAction::Open,
            condition: ControlCondition::AtTime(5400),
            enabled: true,
        },
        Control {
            link: l("PU1"),
            action: LinkAction::Setting(1.2),
            condition: ControlCondition::AtClockTime(66_600),
            enabled: true,
        },
        Control {
            link: l("PU2"),
            action: LinkAction::Open,
            condition: ControlCondition::NodeBelow {
                node: n("T1"),
                value: 2.5,
            },
            enabled: true,
        },
        Control {
            link: l("V1"),
            action: LinkAction::Setting(35.0),
            condition: ControlCondition::NodeAbove {
                node: n("J2"),
                value: 40.0,
            },
            enabled: false,
        },
        Control {
            link: l("P9"),
            action: LinkAction::Closed,
            condition: ControlCondition::AtClockTime(3600),
            enabled: true,
        },
    ];
    assert_eq!(net.controls, expected);
}

#[test]
fn rules() {
    let net = network();
    let l = |id: &str| net.link_index(id).unwrap();
    let n = |id: &str| net.node_index(id).unwrap();
    let premise = |logic, object, variable, relation, value| Premise {
        logic,
        object,
        variable,
        relation,
        value,
    };
    let first = Rule {
        id: "first".into(),
        premises: vec![
            premise(
                PremiseLogic::If,
                RuleObject::Node(n("T1")),
                RuleVariable::Level,
                Relation::Above,
                PremiseValue::Number(5.0),
            ),
            premise(
                PremiseLogic::And,
                RuleObject::System,
                RuleVariable::ClockTime,
                Relation::Ge,
                PremiseValue::Number(21_600.0),
            ),
            premise(
                PremiseLogic::Or,
                RuleObject::Node(n("J2")),
                RuleVariable::Pressure,
                Relation::Lt,
                PremiseValue::Number(30.0),
            ),
        ],
        then_actions: vec![
            RuleAction {
                link: l("PU1"),
                action: LinkAction::Closed,
            },
            RuleAction {
                link: l("V1"),
                action: LinkAction::Setting(25.0),
            },
        ],
        else_actions: vec![RuleAction {
            link: l("PU1"),
            action: LinkAction::Open,
        }],
        priority: 2.0,
        enabled: true,
    };
    let second = Rule {
        id: "second".into(),
        premises: vec![
            premise(
                PremiseLogic::If,
                RuleObject::System,
                RuleVariable::Time,
                Relation::Gt,
                PremiseValue::Number(5400.0),
            ),
            premise(
                PremiseLogic::And,
                RuleObject::Link(l("P1")),
                RuleVariable::Flow,
                Relation::Le,
                PremiseValue::Number(3.5),
            ),
            premise(
                PremiseLogic::And,
                RuleObject::Link(l("P4")),
                RuleVariable::Status,
                Relation::Is,
                PremiseValue::Closed,
            ),
            premise(
                PremiseLogic::And,
                RuleObject::Node(n("T2")),
                RuleVariable::FillTime,
                Relation::Gt,
                PremiseValue::Number(7200.0),
            ),
            premise(
                PremiseLogic::And,
                RuleObject::System,
                RuleVariable::Demand,
                Relation::Ne,
                PremiseValue::Number(10.0),
            ),
        ],
        then_actions: vec![
            RuleAction {
                link: l("P4"),
                action: LinkAction::Open,
            },
            RuleAction {
                link: l("V2"),
                action: LinkAction::Active,
            },
        ],
        else_actions: vec![],
        priority: 0.0,
        enabled: false,
    };
    assert_eq!(net.rules, vec![first, second]);
}

#[test]
fn energy_emitters_leakage() {
    let net = network();
    assert_eq!(
        net.energy,
        Energy {
            global_efficiency: 80.0,
            global_price: 0.1,
            global_pattern: pattern(&net, "daily"),
            demand_charge: 2.0
        }
    );
    assert_eq!(node(&net, "J4").emitter_coefficient, 0.7);
    assert_eq!(node(&net, "R1").emitter_coefficient, 0.0);
}

#[test]
fn options() {
    let o = network().options;
    assert_eq!(
        (o.flow_units, o.pressure_units, o.headloss),
        (
            FlowUnits::Lps,
            Some(PressureUnits::Kpa),
            HeadlossFormula::DarcyWeisbach
        )
    );
    assert_eq!(
        (o.specific_gravity, o.viscosity, o.trials, o.accuracy),
        (0.998, 1.2, 55, 0.0001)
    );
    assert_eq!(
        (
            o.check_freq,
            o.max_check,
            o.damp_limit,
            o.head_error,
            o.flow_change
        ),
        (3, 12, 0.01, 0.02, 0.03)
    );
    assert_eq!(
        (o.unbalanced, o.demand_multiplier, o.demand_model),
        (Unbalanced::Continue(7), 1.5, DemandModel::Pda)
    );
    assert_eq!(
        (o.minimum_pressure, o.required_pressure, o.pressure_exponent),
        (5.0, 25.0, 0.6)
    );
    assert_eq!((o.emitter_exponent, o.emitter_backflow), (0.55, false));
    assert_eq!(
        o.other,
        vec![
            "Quality            \tChlorine mg/L",
            "Diffusivity        \t1.1",
            "Tolerance          \t0.02",
            "Map                \tmap.txt"
        ]
    );
}

#[test]
fn times_report_and_map_sections() {
    let net = network();
    assert_eq!(
        net.times,
        Times {
            duration: 172_800,
            hydraulic_step: 1800,
            quality_step: Some(300),
            pattern_step: 7200,
            pattern_start: 3600,
            report_step: 3600,
            report_start: 30,
            rule_step: Some(300),
            start_clocktime: 47_700,
            statistic: Statistic::Average,
        }
    );
    assert_eq!(
        net.report,
        vec!["Status   Yes", "Nodes    J1 J2", "Links    ALL"]
    );
    assert_eq!(node(&net, "J1").coordinates, Some((1.5, 2.5)));
    assert_eq!(node(&net, "J1").tag.as_deref(), Some("residential"));
    assert_eq!(link(&net, "P1").tag.as_deref(), Some("main"));
    assert_eq!(link(&net, "P1").vertices, vec![(1.0, 1.0), (2.0, 2.0)]);
    assert_eq!(
        net.labels,
        vec![
            Label {
                x: 5.0,
                y: 6.0,
                text: "A label".into(),
                anchor: Some("J1".into())
            },
            Label {
                x: 7.0,
                y: 8.0,
                text: "Other".into(),
                anchor: None
            },
        ]
    );
    assert_eq!(net.backdrop, vec!["DIMENSIONS 0 0 100 100", "UNITS None"]);
}

#[test]
fn quality_sections_are_kept() {
    let net = network();
    let kept: Vec<(&str, Vec<&str>)> = net
        .kept_sections
        .iter()
        .map(|k| {
            (
                k.name.as_str(),
                k.lines.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        vec![
            ("QUALITY", vec!["J1   0.5"]),
            ("SOURCES", vec!["R1   CONCEN  1.2"]),
            ("REACTIONS", vec!["Order Bulk 1", "Global Bulk -0.5"]),
            ("MIXING", vec!["T1   MIXED"]),
        ]
    );
}

#[test]
fn round_trip() {
    let net = network();
    let text = write_string(&net);
    assert_eq!(read_str(&text, "written.inp").unwrap(), net);
}

#[test]
fn notes_are_empty_for_clean_files() {
    let reading = read_file_with_notes(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/all_sections.inp"),
    )
    .unwrap();
    assert!(reading.notes.is_empty(), "{:?}", reading.notes);
}
