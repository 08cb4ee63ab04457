//! Forms of `[CONTROLS]` and `[RULES]` lines and their time values.

use hydraulics::inp::{read_str, read_str_with_notes, write_string};
use hydraulics::model::*;

const BASE: &str = "[JUNCTIONS]\n J1 10 1\n J2 10 1\n[RESERVOIRS]\n R1 100\n[TANKS]\n T1 50 3 1 6 20\n[PIPES]\n P1 R1 J1\n P2 J1 J2\n P3 J2 T1\n[CURVES]\n c 10 50\n[PUMPS]\n PU J1 J2 HEAD c\n[VALVES]\n V J2 J1 10 PRV 40\n";

fn with(extra: &str) -> Network {
    let net = read_str(&format!("{BASE}{extra}"), "t.inp").unwrap();
    assert_eq!(
        read_str(&write_string(&net), "again.inp").unwrap(),
        net,
        "round trip of {extra}"
    );
    net
}

fn control_time(line: &str) -> ControlCondition {
    with(&format!("[CONTROLS]\n{line}\n")).controls[0]
        .condition
        .clone()
}

#[test]
fn control_time_formats() {
    use ControlCondition::{AtClockTime, AtTime};
    assert_eq!(control_time("LINK P1 CLOSED AT TIME 2.5"), AtTime(9000));
    assert_eq!(control_time("LINK P1 CLOSED AT TIME 1:30"), AtTime(5400));
    assert_eq!(control_time("LINK P1 CLOSED AT TIME 1:30:15"), AtTime(5415));
    assert_eq!(control_time("LINK P1 CLOSED AT TIME 45 SEC"), AtTime(45));
    assert_eq!(
        control_time("LINK P1 CLOSED AT TIME 90 MINUTES"),
        AtTime(5400)
    );
    assert_eq!(
        control_time("LINK P1 CLOSED AT TIME 3 HOURS"),
        AtTime(10_800)
    );
    assert_eq!(
        control_time("LINK P1 CLOSED AT TIME 2 DAYS"),
        AtTime(172_800)
    );
    assert_eq!(
        control_time("LINK P1 CLOSED AT CLOCKTIME 7 AM"),
        AtClockTime(25_200)
    );
    assert_eq!(
        control_time("LINK P1 CLOSED AT CLOCKTIME 12 AM"),
        AtClockTime(0)
    );
    assert_eq!(
        control_time("LINK P1 CLOSED AT CLOCKTIME 12:30 PM"),
        AtClockTime(45_000)
    );
    assert_eq!(
        control_time("LINK P1 CLOSED AT CLOCKTIME 7:15 PM"),
        AtClockTime(69_300)
    );
    assert_eq!(
        control_time("LINK P1 CLOSED AT CLOCKTIME 30"),
        AtClockTime(21_600)
    );
}

#[test]
fn control_actions_and_conditions() {
    let net = with(
        "[CONTROLS]\nLINK PU 0.75 IF NODE T1 ABOVE 5.5\nLINK PU open IF NODE J1 below 20\nLINK V 55 AT TIME 1\nLINK P2 Closed AT TIME 1 DISABLED\n",
    );
    let actions: Vec<(LinkAction, bool)> =
        net.controls.iter().map(|c| (c.action, c.enabled)).collect();
    assert_eq!(
        actions,
        vec![
            (LinkAction::Setting(0.75), true),
            (LinkAction::Open, true),
            (LinkAction::Setting(55.0), true),
            (LinkAction::Closed, false)
        ]
    );
    assert_eq!(
        net.controls[0].condition,
        ControlCondition::NodeAbove {
            node: 3,
            value: 5.5
        }
    );
    assert_eq!(
        net.controls[1].condition,
        ControlCondition::NodeBelow {
            node: 0,
            value: 20.0
        }
    );
}

#[test]
fn rule_time_values_are_seconds() {
    let rule = |premise: &str| {
        let net = with(&format!(
            "[RULES]\nRULE r\nIF {premise}\nTHEN PUMP PU STATUS IS OPEN\n"
        ));
        net.rules[0].premises[0].value
    };
    assert_eq!(rule("SYSTEM TIME >= 6"), PremiseValue::Number(21_600.0));
    assert_eq!(
        rule("SYSTEM TIME = 8:00:01"),
        PremiseValue::Number(28_801.0)
    );
    assert_eq!(
        rule("SYSTEM CLOCKTIME < 8 PM"),
        PremiseValue::Number(72_000.0)
    );
    assert_eq!(
        rule("SYSTEM CLOCKTIME > 10:30 AM"),
        PremiseValue::Number(37_800.0)
    );
    assert_eq!(
        rule("TANK T1 DRAINTIME < 1.5"),
        PremiseValue::Number(5400.0)
    );
    assert_eq!(rule("VALVE V STATUS NOT ACTIVE"), PremiseValue::Active);
    assert_eq!(rule("PUMP PU SETTING = 0.5"), PremiseValue::Number(0.5));
    assert_eq!(rule("RESERVOIR R1 HEAD > 90"), PremiseValue::Number(90.0));
}

#[test]
fn rule_actions() {
    let net = with(
        "[RULES]\nRULE r\nIF NODE J1 GRADE > 10\nTHEN PIPE P1 STATUS IS 0\nAND PUMP PU SETTING IS 0.8\nAND LINK V SETTING IS CLOSED\nELSE PIPE P2 SETTING IS 2\nPRIORITY 5\n",
    );
    let rule = &net.rules[0];
    let then: Vec<LinkAction> = rule.then_actions.iter().map(|a| a.action).collect();
    assert_eq!(
        then,
        vec![
            LinkAction::Closed,
            LinkAction::Setting(0.8),
            LinkAction::Closed
        ]
    );
    assert_eq!(rule.else_actions[0].action, LinkAction::Open);
    assert_eq!((rule.priority, rule.enabled), (5.0, true));
}

#[test]
fn clock_time_after_midnight_wraps() {
    assert_eq!(
        control_time("LINK P1 CLOSED AT CLOCKTIME 26:00"),
        ControlCondition::AtClockTime(7200)
    );
}

#[test]
fn extra_time_fields_are_accepted_with_a_note() {
    let reading = read_str_with_notes(
        &format!("{BASE}[TIMES]\n PATTERN START 0:00:00:00\n"),
        "t.inp",
    )
    .unwrap();
    assert_eq!(reading.network.times.pattern_start, 0);
    assert_eq!(reading.notes.len(), 1);
    assert!(
        reading.notes[0].starts_with("t.inp:19:"),
        "{}",
        reading.notes[0]
    );
}
