//! `[RULES]`: rule-based controls, parsed clause by clause as EPANET's `rules.c` does.

use super::lex;
use super::reader::{fault, line_fault, LineResult, Reader, RuleState};
use crate::model::*;

const RELATIONS: [(&str, Relation); 10] = [
    // "<=" and ">=" come before "<" and ">" so that prefix matching finds them.
    ("=", Relation::Eq),
    ("<>", Relation::Ne),
    ("<=", Relation::Le),
    (">=", Relation::Ge),
    ("<", Relation::Lt),
    (">", Relation::Gt),
    ("IS", Relation::Is),
    ("NOT", Relation::Not),
    ("BELOW", Relation::Below),
    ("ABOVE", Relation::Above),
];

const VARIABLES: [(&str, RuleVariable); 13] = [
    ("DEMAND", RuleVariable::Demand),
    ("HEAD", RuleVariable::Head),
    ("GRADE", RuleVariable::Grade),
    ("LEVEL", RuleVariable::Level),
    ("PRESSURE", RuleVariable::Pressure),
    ("FLOW", RuleVariable::Flow),
    ("STATUS", RuleVariable::Status),
    ("SETTING", RuleVariable::Setting),
    ("POWER", RuleVariable::Power),
    ("TIME", RuleVariable::Time),
    ("CLOCKTIME", RuleVariable::ClockTime),
    ("FILLTIME", RuleVariable::FillTime),
    ("DRAINTIME", RuleVariable::DrainTime),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum ObjectClass {
    Node,
    Link,
    System,
}

fn object_class(token: &str) -> Option<ObjectClass> {
    [
        ("Junc", ObjectClass::Node),
        ("Reser", ObjectClass::Node),
        ("Tank", ObjectClass::Node),
        ("Pipe", ObjectClass::Link),
        ("Pump", ObjectClass::Link),
        ("Valve", ObjectClass::Link),
        ("NODE", ObjectClass::Node),
        ("LINK", ObjectClass::Link),
        ("SYSTEM", ObjectClass::System),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, class)| class)
}

fn lookup<T: Copy>(token: &str, table: &[(&str, T)]) -> Option<T> {
    table
        .iter()
        .find(|(word, _)| lex::matches(token, word))
        .map(|&(_, v)| v)
}

/// A status word (`OPEN`, `CLOSED`, `ACTIVE`).
fn status_value(token: &str) -> Option<PremiseValue> {
    lookup(
        token,
        &[
            ("OPEN", PremiseValue::Open),
            ("CLOSED", PremiseValue::Closed),
            ("ACTIVE", PremiseValue::Active),
        ],
    )
}

impl Reader<'_> {
    /// One line of `[RULES]`. After an error, lines are skipped up to the next `RULE`.
    pub(super) fn rule_line(&mut self, t: &[&str]) -> LineResult {
        let keywords = [
            "RULE", "IF", "AND", "OR", "THEN", "ELSE", "PRIO", "DISABLED",
        ];
        let key = lex::find_keyword(t[0], &keywords);
        if self.rule_state == RuleState::Error && key != Some(0) {
            return Ok(());
        }
        let result = self.rule_clause(key, t);
        if result.is_err() {
            self.rule_state = RuleState::Error;
        }
        result
    }

    fn rule_clause(&mut self, key: Option<usize>, t: &[&str]) -> LineResult {
        use RuleState as S;
        let state = self.rule_state;
        let misplaced = || fault(221, t[0]);
        match key {
            Some(0) => {
                if t.len() != 2 {
                    return Err(line_fault(201));
                }
                self.net.rules.push(Rule {
                    id: t[1].to_string(),
                    premises: Vec::new(),
                    then_actions: Vec::new(),
                    else_actions: Vec::new(),
                    priority: 0.0,
                    enabled: true,
                });
                self.rule_state = S::Rule;
                Ok(())
            }
            Some(1) if state == S::Rule => {
                self.rule_state = S::If;
                self.premise(PremiseLogic::If, t)
            }
            Some(2) if state == S::If => self.premise(PremiseLogic::And, t),
            Some(2) if matches!(state, S::Then | S::Else) => self.action(t),
            Some(3) if state == S::If => self.premise(PremiseLogic::Or, t),
            Some(4) if state == S::If => {
                self.rule_state = S::Then;
                self.action(t)
            }
            Some(5) if state == S::Then => {
                self.rule_state = S::Else;
                self.action(t)
            }
            Some(6) if matches!(state, S::Then | S::Else) => {
                self.rule_state = S::Priority;
                let value = t.get(1).ok_or_else(|| line_fault(201))?;
                let priority = lex::number(value).ok_or_else(|| fault(202, value))?;
                if let Some(rule) = self.net.rules.last_mut() {
                    rule.priority = priority;
                }
                Ok(())
            }
            Some(7) if matches!(state, S::Then | S::Else | S::Priority) => {
                if let Some(rule) = self.net.rules.last_mut() {
                    rule.enabled = false;
                }
                Ok(())
            }
            Some(_) => Err(misplaced()),
            None => Err(fault(201, t[0])),
        }
    }

    /// `IF/AND/OR <object> <id> <variable> <relation> <value>` or
    /// `IF/AND/OR SYSTEM <variable> <relation> <value> [units]`.
    fn premise(&mut self, logic: PremiseLogic, t: &[&str]) -> LineResult {
        let n = t.len();
        if n != 5 && n != 6 {
            return Err(line_fault(201));
        }
        let class = object_class(t[1]).ok_or_else(|| fault(201, t[1]))?;
        let (object, variable, relation_at) = match class {
            ObjectClass::System => {
                let variable = lookup(t[2], &VARIABLES).ok_or_else(|| fault(201, t[2]))?;
                if !matches!(
                    variable,
                    RuleVariable::Demand | RuleVariable::Time | RuleVariable::ClockTime
                ) {
                    return Err(fault(201, t[2]));
                }
                (RuleObject::System, variable, 3)
            }
            ObjectClass::Node => {
                let variable = lookup(t[3], &VARIABLES).ok_or_else(|| fault(201, t[3]))?;
                let node = self.find_node(t[2]).ok_or_else(|| fault(203, t[2]))?;
                let allowed = match variable {
                    RuleVariable::Demand
                    | RuleVariable::Head
                    | RuleVariable::Grade
                    | RuleVariable::Level
                    | RuleVariable::Pressure => true,
                    RuleVariable::FillTime | RuleVariable::DrainTime => {
                        !self.is_junction_slot(node)
                    }
                    _ => false,
                };
                if !allowed {
                    return Err(fault(201, t[3]));
                }
                (RuleObject::Node(node), variable, 4)
            }
            ObjectClass::Link => {
                let variable = lookup(t[3], &VARIABLES).ok_or_else(|| fault(201, t[3]))?;
                let link = self.find_link(t[2]).ok_or_else(|| fault(204, t[2]))?;
                if !matches!(
                    variable,
                    RuleVariable::Flow | RuleVariable::Status | RuleVariable::Setting
                ) {
                    return Err(fault(201, t[3]));
                }
                (RuleObject::Link(link), variable, 4)
            }
        };
        let relation =
            lookup(t[relation_at], &RELATIONS).ok_or_else(|| fault(201, t[relation_at]))?;
        let last = t[n - 1];
        let value = match variable {
            RuleVariable::Time | RuleVariable::ClockTime => {
                let (time, units) = if n == 6 { (t[4], t[5]) } else { (t[4], "") };
                let mut extra = false;
                let hours = lex::hours(time, units, &mut extra).ok_or_else(|| fault(202, time))?;
                if hours < 0.0 {
                    return Err(fault(202, time));
                }
                PremiseValue::Number((hours * 3600.0 + 0.5).floor())
            }
            _ => match status_value(last) {
                Some(status) if class == ObjectClass::Link => status,
                Some(_) => return Err(fault(202, last)),
                None => {
                    let x = lex::number(last).ok_or_else(|| fault(202, last))?;
                    match variable {
                        RuleVariable::FillTime | RuleVariable::DrainTime => {
                            PremiseValue::Number(x * 3600.0)
                        }
                        _ => PremiseValue::Number(x),
                    }
                }
            },
        };
        if let Some(rule) = self.net.rules.last_mut() {
            rule.premises.push(Premise {
                logic,
                object,
                variable,
                relation,
                value,
            });
        }
        Ok(())
    }

    /// `THEN/ELSE/AND <LINK|PIPE|PUMP|VALVE> <id> <STATUS|SETTING> IS <value>`.
    fn action(&mut self, t: &[&str]) -> LineResult {
        if t.len() != 6 {
            return Err(line_fault(201));
        }
        let link = self.find_link(t[2]).ok_or_else(|| fault(204, t[2]))?;
        let kind = self.link_kind(link);
        if matches!(
            kind,
            Some(LinkKind::Pipe(Pipe {
                status: PipeStatus::CheckValve,
                ..
            }))
        ) {
            return Err(fault(207, t[2]));
        }
        let is_gpv = matches!(
            kind,
            Some(LinkKind::Valve(Valve {
                valve_type: ValveType::Gpv,
                ..
            }))
        );
        let is_pipe = matches!(kind, Some(LinkKind::Pipe(_)));
        let action = match status_value(t[5]) {
            Some(PremiseValue::Open) => LinkAction::Open,
            Some(PremiseValue::Closed) => LinkAction::Closed,
            Some(_) => LinkAction::Active,
            None => {
                let x = lex::number(t[5]).ok_or_else(|| fault(202, t[5]))?;
                if x < 0.0 || is_gpv {
                    return Err(fault(202, t[5]));
                }
                // A setting on a pipe means open (non-zero) or closed (zero).
                match (is_pipe, x == 0.0) {
                    (true, true) => LinkAction::Closed,
                    (true, false) => LinkAction::Open,
                    (false, _) => LinkAction::Setting(x),
                }
            }
        };
        let else_branch = self.rule_state == RuleState::Else;
        if let Some(rule) = self.net.rules.last_mut() {
            let actions = if else_branch {
                &mut rule.else_actions
            } else {
                &mut rule.then_actions
            };
            actions.push(RuleAction { link, action });
        }
        Ok(())
    }
}
