//! The `.inp` reader: two passes over the text, as EPANET makes them.
//!
//! The first pass counts junctions (tanks and reservoirs are numbered after all junctions)
//! and collects pattern and curve ids, so patterns and curves may be used before they are
//! defined. The second pass reads every line in file order; nodes and links must be defined
//! before other lines refer to them, as in EPANET.

use super::lex::{self, Tokens};
use super::{error_text, InpError, InpProblem, Reading};
use crate::model::*;
use std::collections::{HashMap, HashSet};

/// EPANET's longest id (`MAXID`).
const MAX_ID_LEN: usize = 31;
/// EPANET's longest input line (`MAXLINE`).
const MAX_LINE_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Title,
    Junctions,
    Reservoirs,
    Tanks,
    Pipes,
    Pumps,
    Valves,
    Controls,
    Rules,
    Demands,
    Sources,
    Emitters,
    Leakage,
    Patterns,
    Curves,
    Quality,
    Status,
    Roughness,
    Energy,
    Reactions,
    Mixing,
    Report,
    Times,
    Options,
    Coordinates,
    Vertices,
    Labels,
    Backdrop,
    Tags,
    End,
}

impl Section {
    const ALL: [Section; 30] = [
        Section::Title,
        Section::Junctions,
        Section::Reservoirs,
        Section::Tanks,
        Section::Pipes,
        Section::Pumps,
        Section::Valves,
        Section::Controls,
        Section::Rules,
        Section::Demands,
        Section::Sources,
        Section::Emitters,
        Section::Leakage,
        Section::Patterns,
        Section::Curves,
        Section::Quality,
        Section::Status,
        Section::Roughness,
        Section::Energy,
        Section::Reactions,
        Section::Mixing,
        Section::Report,
        Section::Times,
        Section::Options,
        Section::Coordinates,
        Section::Vertices,
        Section::Labels,
        Section::Backdrop,
        Section::Tags,
        Section::End,
    ];

    /// Upper-case name without brackets.
    pub(super) fn name(self) -> &'static str {
        match self {
            Section::Title => "TITLE",
            Section::Junctions => "JUNCTIONS",
            Section::Reservoirs => "RESERVOIRS",
            Section::Tanks => "TANKS",
            Section::Pipes => "PIPES",
            Section::Pumps => "PUMPS",
            Section::Valves => "VALVES",
            Section::Controls => "CONTROLS",
            Section::Rules => "RULES",
            Section::Demands => "DEMANDS",
            Section::Sources => "SOURCES",
            Section::Emitters => "EMITTERS",
            Section::Leakage => "LEAKAGE",
            Section::Patterns => "PATTERNS",
            Section::Curves => "CURVES",
            Section::Quality => "QUALITY",
            Section::Status => "STATUS",
            Section::Roughness => "ROUGHNESS",
            Section::Energy => "ENERGY",
            Section::Reactions => "REACTIONS",
            Section::Mixing => "MIXING",
            Section::Report => "REPORT",
            Section::Times => "TIMES",
            Section::Options => "OPTIONS",
            Section::Coordinates => "COORDINATES",
            Section::Vertices => "VERTICES",
            Section::Labels => "LABELS",
            Section::Backdrop => "BACKDROP",
            Section::Tags => "TAGS",
            Section::End => "END",
        }
    }

    /// The section a heading token opens (EPANET matches `[NAME]` as a case-insensitive prefix).
    fn from_heading(token: &str) -> Option<Section> {
        Section::ALL
            .into_iter()
            .find(|s| lex::matches(token, &format!("[{}]", s.name())))
    }

    /// Sections kept verbatim in [`Network::kept_sections`].
    fn is_kept(self) -> bool {
        matches!(
            self,
            Section::Sources
                | Section::Quality
                | Section::Reactions
                | Section::Mixing
                | Section::Roughness
        )
    }
}

/// Why a line was rejected: an EPANET error code and the offending token, if any.
#[derive(Debug)]
pub(super) struct Fault {
    pub code: u32,
    pub token: Option<String>,
}

pub(super) type LineResult = Result<(), Fault>;

/// A fault on a token of the line.
pub(super) fn fault(code: u32, token: &str) -> Fault {
    Fault {
        code,
        token: Some(token.to_string()),
    }
}

/// A fault on the line as a whole.
pub(super) fn line_fault(code: u32) -> Fault {
    Fault { code, token: None }
}

/// Where an object was defined, for messages of the checks made after reading.
#[derive(Debug, Default)]
pub(super) struct DefinitionLines {
    pub nodes: Vec<usize>,
    pub links: Vec<usize>,
    pub curves: Vec<usize>,
}

/// Where the [`super::rules`] parser stands inside the `[RULES]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RuleState {
    /// Before any rule, or after a `PRIORITY` line.
    Idle,
    Rule,
    If,
    Then,
    Else,
    Priority,
    /// The current rule has an error: skip to the next `RULE`.
    Error,
}

pub(super) struct Reader<'a> {
    file: &'a str,
    line: usize,
    section: Option<Section>,
    problems: Vec<InpProblem>,
    notes: Vec<String>,
    pub(super) net: Network,
    /// Node slots: junctions from 0, tanks and reservoirs from `junction_slots`.
    pub(super) nodes: Vec<Option<Node>>,
    junction_slots: usize,
    junctions_added: usize,
    sources_added: usize,
    pub(super) lines: DefinitionLines,
    node_ids: HashMap<String, usize>,
    link_ids: HashMap<String, usize>,
    pattern_ids: HashMap<String, usize>,
    curve_ids: HashMap<String, usize>,
    /// Junctions whose `[JUNCTIONS]` demand a `[DEMANDS]` line has already replaced.
    replaced_demands: HashSet<usize>,
    previous_pattern: Option<usize>,
    previous_curve: Option<usize>,
    /// Comment of a comment-only line in `[PATTERNS]`/`[CURVES]`, applied to the next line.
    pending_comment: Option<String>,
    /// Curve kinds stated by the file (comment before the first point, or a type token).
    stated_curve_kinds: Vec<Option<CurveKind>>,
    pub(super) rule_state: RuleState,
}

/// Reads `.inp` text into a network, or lists every problem found.
pub(super) fn read(text: &str, file: &str) -> Result<Reading, InpError> {
    // A byte-order mark would hide the first section heading.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::new(file);
    reader.prescan(text);
    reader.read_lines(text);
    reader.finish()
}

impl<'a> Reader<'a> {
    fn new(file: &'a str) -> Self {
        Self {
            file,
            line: 0,
            section: None,
            problems: Vec::new(),
            notes: Vec::new(),
            net: Network::default(),
            nodes: Vec::new(),
            junction_slots: 0,
            junctions_added: 0,
            sources_added: 0,
            lines: DefinitionLines::default(),
            node_ids: HashMap::new(),
            link_ids: HashMap::new(),
            pattern_ids: HashMap::new(),
            curve_ids: HashMap::new(),
            replaced_demands: HashSet::new(),
            previous_pattern: None,
            previous_curve: None,
            pending_comment: None,
            stated_curve_kinds: Vec::new(),
            rule_state: RuleState::Idle,
        }
    }

    /// First pass: junction count, and pattern and curve ids in order of first appearance.
    fn prescan(&mut self, text: &str) {
        let mut section = None;
        let mut junctions = 0;
        let mut sources = 0;
        for (number, raw) in text.lines().enumerate() {
            let tokens = lex::tokenize(raw);
            let Some(&first) = tokens.tokens.first() else {
                continue;
            };
            if first.starts_with('[') {
                section = Section::from_heading(first);
                if section == Some(Section::End) {
                    break;
                }
                continue;
            }
            match section {
                Some(Section::Junctions) => junctions += 1,
                Some(Section::Reservoirs | Section::Tanks) => sources += 1,
                Some(Section::Patterns) if !self.pattern_ids.contains_key(first) => {
                    self.line = number + 1;
                    self.check_id_length(first, Section::Patterns);
                    self.pattern_ids
                        .insert(first.to_string(), self.net.patterns.len());
                    self.net.patterns.push(Pattern {
                        id: first.to_string(),
                        multipliers: Vec::new(),
                    });
                }
                Some(Section::Curves) if !self.curve_ids.contains_key(first) => {
                    self.line = number + 1;
                    self.check_id_length(first, Section::Curves);
                    self.curve_ids
                        .insert(first.to_string(), self.net.curves.len());
                    self.net.curves.push(Curve {
                        id: first.to_string(),
                        ..Curve::default()
                    });
                    self.stated_curve_kinds.push(None);
                    self.lines.curves.push(number + 1);
                }
                _ => {}
            }
        }
        self.junction_slots = junctions;
        self.nodes = vec![None; junctions + sources];
        self.lines.nodes = vec![0; junctions + sources];
    }

    fn check_id_length(&mut self, id: &str, section: Section) {
        if id.chars().count() > MAX_ID_LEN {
            self.section = Some(section);
            self.problem(fault(252, id));
        }
    }

    /// Second pass: every line in file order.
    fn read_lines(&mut self, text: &str) {
        self.section = None;
        for (number, raw) in text.lines().enumerate() {
            self.line = number + 1;
            let tokens = lex::tokenize(raw);
            let in_patterns_or_curves =
                matches!(self.section, Some(Section::Patterns | Section::Curves));
            if tokens.tokens.is_empty() {
                if in_patterns_or_curves {
                    self.pending_comment = tokens.comment.map(|c| c.trim().to_string());
                }
                continue;
            }
            // In [PATTERNS] and [CURVES] only a full-line comment describes the next item.
            let comment = if in_patterns_or_curves {
                self.pending_comment.take()
            } else {
                self.pending_comment = None;
                tokens.comment.map(|c| c.trim().to_string())
            };
            if raw.len() >= MAX_LINE_LEN {
                self.problem(line_fault(214));
            }
            let first = tokens.tokens[0];
            if first.starts_with('[') {
                match Section::from_heading(first) {
                    Some(Section::End) => break,
                    Some(section) => {
                        self.section = Some(section);
                        if section.is_kept() {
                            self.net.kept_sections.push(KeptSection {
                                name: section.name().to_string(),
                                lines: Vec::new(),
                            });
                        }
                    }
                    None => {
                        self.section = None;
                        self.problems.push(InpProblem {
                            file: self.file.to_string(),
                            line: self.line,
                            section: first.trim_matches(['[', ']']).to_uppercase(),
                            code: 299,
                            message: format!(
                                "{} '{first}': section contents ignored",
                                error_text(299)
                            ),
                        });
                    }
                }
                continue;
            }
            let Some(section) = self.section else {
                continue;
            };
            let data = raw.split(';').next().unwrap_or("").trim();
            if let Err(f) = self.read_line(
                section,
                &tokens,
                comment.as_deref().unwrap_or(""),
                data,
                raw,
            ) {
                self.problem(f);
            }
        }
    }

    fn read_line(
        &mut self,
        section: Section,
        t: &Tokens,
        comment: &str,
        data: &str,
        raw: &str,
    ) -> LineResult {
        let tokens = t.tokens.as_slice();
        match section {
            Section::Title => {
                self.net.title.push(raw.trim().to_string());
                Ok(())
            }
            Section::Junctions => self.junction(tokens),
            Section::Reservoirs | Section::Tanks => self.tank(tokens),
            Section::Pipes => self.pipe(tokens),
            Section::Pumps => self.pump(tokens),
            Section::Valves => self.valve(tokens),
            Section::Patterns => self.pattern(tokens),
            Section::Curves => self.curve(tokens, comment),
            Section::Demands => self.demand(tokens, comment),
            Section::Controls => self.control(tokens),
            Section::Rules => self.rule_line(tokens),
            Section::Emitters => self.emitter(tokens),
            Section::Leakage => self.leakage(tokens),
            Section::Status => self.status(tokens),
            Section::Energy => self.energy(tokens),
            Section::Report => {
                self.net.report.push(data.to_string());
                self.report(tokens)
            }
            Section::Times => self.time(tokens),
            Section::Options => self.option(tokens, data),
            Section::Coordinates => {
                self.coordinates(tokens);
                Ok(())
            }
            Section::Vertices => {
                self.vertex(tokens);
                Ok(())
            }
            Section::Labels => {
                self.label(tokens);
                Ok(())
            }
            Section::Backdrop => {
                self.net.backdrop.push(data.to_string());
                Ok(())
            }
            Section::Tags => {
                self.tag(tokens);
                Ok(())
            }
            Section::Sources
            | Section::Quality
            | Section::Reactions
            | Section::Mixing
            | Section::Roughness => {
                if let Some(kept) = self.net.kept_sections.last_mut() {
                    kept.lines.push(data.to_string());
                }
                self.quality_line(section, tokens)
            }
            Section::End => Ok(()),
        }
    }

    fn problem(&mut self, f: Fault) {
        let text = error_text(f.code);
        let message = match &f.token {
            Some(token) => format!("{text} '{token}'"),
            None => text.to_string(),
        };
        self.problems.push(InpProblem {
            file: self.file.to_string(),
            line: self.line,
            section: self.section.map(Section::name).unwrap_or("").to_string(),
            code: f.code,
            message,
        });
    }

    pub(super) fn note(&mut self, text: &str) {
        self.notes
            .push(format!("{}:{}: {text}", self.file, self.line));
    }

    // ----- lookups -----

    pub(super) fn find_node(&self, id: &str) -> Option<usize> {
        self.node_ids.get(id).copied()
    }

    pub(super) fn find_link(&self, id: &str) -> Option<usize> {
        self.link_ids.get(id).copied()
    }

    pub(super) fn node_or(&self, id: &str, code: u32) -> Result<usize, Fault> {
        self.find_node(id).ok_or_else(|| fault(code, id))
    }

    pub(super) fn find_pattern(&self, id: &str) -> Result<usize, Fault> {
        self.pattern_ids
            .get(id)
            .copied()
            .ok_or_else(|| fault(205, id))
    }

    pub(super) fn find_curve(&self, id: &str) -> Result<usize, Fault> {
        self.curve_ids
            .get(id)
            .copied()
            .ok_or_else(|| fault(206, id))
    }

    pub(super) fn is_junction_slot(&self, slot: usize) -> bool {
        slot < self.junction_slots
    }

    pub(super) fn link_kind(&self, index: usize) -> Option<&LinkKind> {
        self.net.links.get(index).map(|l| &l.kind)
    }

    fn add_node_id(&mut self, id: &str, slot: usize) -> LineResult {
        if self.node_ids.contains_key(id) {
            return Err(fault(215, id));
        }
        if id.chars().count() > MAX_ID_LEN {
            return Err(fault(252, id));
        }
        self.node_ids.insert(id.to_string(), slot);
        Ok(())
    }

    fn add_link_id(&mut self, id: &str) -> LineResult {
        if self.link_ids.contains_key(id) {
            return Err(fault(215, id));
        }
        if id.chars().count() > MAX_ID_LEN {
            return Err(fault(252, id));
        }
        self.link_ids.insert(id.to_string(), self.net.links.len());
        Ok(())
    }

    fn put_node(&mut self, slot: usize, node: Node) {
        if slot >= self.nodes.len() {
            self.nodes.resize(slot + 1, None);
            self.lines.nodes.resize(slot + 1, 0);
        }
        self.nodes[slot] = Some(node);
        self.lines.nodes[slot] = self.line;
    }

    fn push_link(&mut self, id: &str, from: usize, to: usize, kind: LinkKind) {
        self.net.links.push(Link {
            id: id.to_string(),
            from,
            to,
            kind,
            vertices: Vec::new(),
            tag: None,
            initial_status: None,
        });
        self.lines.links.push(self.line);
    }

    fn is_si(&self) -> bool {
        !self.net.options.flow_units.is_us()
    }

    // ----- network sections -----

    fn junction(&mut self, t: &[&str]) -> LineResult {
        let slot = self.junctions_added;
        self.add_node_id(t[0], slot)?;
        self.junctions_added += 1;
        let mut elevation = 0.0;
        let mut base = 0.0;
        let mut pattern = None;
        let mut result = Ok(());
        if let Some(&token) = t.get(1) {
            match lex::number(token) {
                Some(x) => elevation = x,
                None => result = Err(fault(202, token)),
            }
        }
        if let (Ok(()), Some(&token)) = (&result, t.get(2)) {
            match lex::number(token) {
                Some(x) => base = x,
                None => result = Err(fault(202, token)),
            }
        }
        if let (Ok(()), Some(&token)) = (&result, t.get(3)) {
            match self.find_pattern(token) {
                Ok(p) => pattern = Some(p),
                Err(f) => result = Err(f),
            }
        }
        let junction = Junction {
            elevation,
            demands: vec![Demand {
                base,
                pattern,
                category: None,
            }],
        };
        self.put_node(slot, new_node(t[0], NodeKind::Junction(junction)));
        result
    }

    fn tank(&mut self, t: &[&str]) -> LineResult {
        let slot = self.junction_slots + self.sources_added;
        self.add_node_id(t[0], slot)?;
        self.sources_added += 1;
        let n = t.len();
        let mut elevation = 0.0;
        let mut pattern = None;
        let mut tank = Tank::default();
        let mut result = Ok(());
        if n < 2 {
            result = Err(line_fault(201));
        } else {
            match lex::number(t[1]) {
                Some(x) => elevation = x,
                None => result = Err(fault(202, t[1])),
            }
        }
        if n <= 3 {
            if n == 3 && result.is_ok() {
                match self.find_pattern(t[2]) {
                    Ok(p) => pattern = Some(p),
                    Err(f) => result = Err(f),
                }
            }
        } else if result.is_ok() {
            result = self.tank_values(t, &mut tank);
        }
        let kind = if tank.diameter == 0.0 {
            NodeKind::Reservoir(Reservoir {
                head: elevation,
                pattern,
            })
        } else {
            tank.elevation = elevation;
            NodeKind::Tank(tank)
        };
        self.put_node(slot, new_node(t[0], kind));
        result
    }

    fn tank_values(&self, t: &[&str], tank: &mut Tank) -> LineResult {
        if t.len() < 6 {
            return Err(line_fault(201));
        }
        let non_negative = |i: usize| -> Result<f64, Fault> {
            match lex::number(t[i]) {
                None => Err(fault(202, t[i])),
                Some(x) if x < 0.0 => Err(fault(209, t[i])),
                Some(x) => Ok(x),
            }
        };
        tank.initial_level = non_negative(2)?;
        tank.min_level = non_negative(3)?;
        tank.max_level = non_negative(4)?;
        tank.diameter = non_negative(5)?;
        if t.len() >= 7 {
            tank.min_volume = non_negative(6)?;
        }
        if let Some(&curve) = t.get(7) {
            if !curve.is_empty() && !curve.starts_with('*') {
                tank.volume_curve = Some(self.find_curve(curve)?);
            }
        }
        if let Some(&overflow) = t.get(8) {
            tank.overflow = if lex::matches(overflow, "YES") {
                true
            } else if lex::matches(overflow, "NO") {
                false
            } else {
                return Err(fault(213, overflow));
            };
        }
        Ok(())
    }

    /// End nodes of a link line, checked as EPANET does.
    /// End nodes of a link line, checked as EPANET does. `None` for a line too short to
    /// define the link: EPANET 2.3.5 skips such a line without an error, and so do we (with
    /// a note).
    fn end_nodes(
        &mut self,
        t: &[&str],
        min_tokens: usize,
    ) -> Result<Option<(usize, usize)>, Fault> {
        if t.len() < min_tokens {
            self.note(&format!(
                "link line '{}' has too few values; ignored as EPANET does",
                t.join(" ")
            ));
            return Ok(None);
        }
        let from = self.node_or(t[1], 203)?;
        let to = self.node_or(t[2], 203)?;
        if from == to {
            return Err(fault(222, t[0]));
        }
        Ok(Some((from, to)))
    }

    fn pipe(&mut self, t: &[&str]) -> LineResult {
        let Some((from, to)) = self.end_nodes(t, 3)? else {
            return Ok(());
        };
        self.add_link_id(t[0])?;
        let si = self.is_si();
        let mut pipe = Pipe {
            length: if si { 100.0 } else { 330.0 },
            diameter: if si { 254.0 } else { 10.0 },
            roughness: match self.net.options.headloss {
                HeadlossFormula::HazenWilliams => 130.0,
                HeadlossFormula::DarcyWeisbach => 0.0005,
                HeadlossFormula::ChezyManning => 0.01,
            },
            minor_loss: 0.0,
            status: PipeStatus::Open,
            leak_area: 0.0,
            leak_expansion: 0.0,
        };
        let result = pipe_values(t, &mut pipe);
        self.push_link(t[0], from, to, LinkKind::Pipe(pipe));
        result
    }

    fn pump(&mut self, t: &[&str]) -> LineResult {
        let Some((from, to)) = self.end_nodes(t, 3)? else {
            return Ok(());
        };
        self.add_link_id(t[0])?;
        let mut pump = Pump {
            head_curve: None,
            power: None,
            speed: 1.0,
            pattern: None,
            efficiency_curve: None,
            energy_price: None,
            price_pattern: None,
        };
        let result = self.pump_values(t, &mut pump);
        self.push_link(t[0], from, to, LinkKind::Pump(pump));
        result
    }

    fn pump_values(&self, t: &[&str], pump: &mut Pump) -> LineResult {
        let mut m = 4;
        while m < t.len() {
            let (keyword, value) = (t[m - 1], t[m]);
            if lex::matches(keyword, "POWER") {
                match lex::number(value) {
                    Some(y) if y > 0.0 => {
                        pump.power = Some(y);
                        pump.head_curve = None;
                    }
                    _ => return Err(fault(202, value)),
                }
            } else if lex::matches(keyword, "HEAD") {
                pump.head_curve = Some(self.find_curve(value)?);
                pump.power = None;
            } else if lex::matches(keyword, "PATT") {
                pump.pattern = Some(self.find_pattern(value)?);
            } else if lex::matches(keyword, "SPEE") {
                match lex::number(value) {
                    Some(y) if y >= 0.0 => pump.speed = y,
                    _ => return Err(fault(202, value)),
                }
            } else {
                return Err(fault(201, keyword));
            }
            m += 2;
        }
        Ok(())
    }

    fn valve(&mut self, t: &[&str]) -> LineResult {
        let Some((from, to)) = self.end_nodes(t, 5)? else {
            return Ok(());
        };
        let valve_type = valve_type(t[4]).ok_or_else(|| fault(213, t[4]))?;
        if let Some(code) = self.valve_connection_fault(valve_type, from, to) {
            return Err(match code {
                219 if !self.is_junction_slot(from) => fault(219, t[1]),
                219 => fault(219, t[2]),
                _ => line_fault(code),
            });
        }
        self.add_link_id(t[0])?;
        let mut valve = Valve {
            valve_type,
            diameter: if self.is_si() { 254.0 } else { 10.0 },
            setting: 0.0,
            curve: None,
            minor_loss: 0.0,
        };
        let result = self.valve_values(t, &mut valve);
        self.push_link(t[0], from, to, LinkKind::Valve(valve));
        result
    }

    fn valve_values(&self, t: &[&str], valve: &mut Valve) -> LineResult {
        match lex::number(t[3]) {
            Some(x) if x > 0.0 => valve.diameter = x,
            _ => return Err(fault(202, t[3])),
        }
        if let Some(&setting) = t.get(5) {
            if valve.valve_type == ValveType::Gpv {
                valve.curve = Some(self.find_curve(setting)?);
            } else {
                valve.setting = lex::number(setting).ok_or_else(|| fault(202, setting))?;
            }
        }
        if let Some(&loss) = t.get(6) {
            match lex::number(loss) {
                Some(x) if x >= 0.0 => valve.minor_loss = x,
                _ => return Err(fault(202, loss)),
            }
        }
        if let (Some(&curve), ValveType::Pcv) = (t.get(7), valve.valve_type) {
            valve.curve = Some(self.find_curve(curve)?);
            valve.setting = valve.setting.min(100.0);
        }
        Ok(())
    }

    /// EPANET's valve connection rules (error 219: pressure/flow valve at a tank or
    /// reservoir; 220: conflicting valves in series or sharing a node).
    fn valve_connection_fault(&self, kind: ValveType, from: usize, to: usize) -> Option<u32> {
        use ValveType::{Fcv, Prv, Psv};
        if !matches!(kind, Prv | Psv | Fcv) {
            return None;
        }
        if !self.is_junction_slot(from) || !self.is_junction_slot(to) {
            return Some(219);
        }
        for link in &self.net.links {
            let LinkKind::Valve(other) = &link.kind else {
                continue;
            };
            let (f, t) = (link.from, link.to);
            let conflict = match (other.valve_type, kind) {
                (Prv, Prv) => t == to || t == from || f == to,
                (Psv, Psv) => f == from || f == to || t == from,
                (Psv, Prv) => f == to,
                (Prv, Psv) => t == from,
                (Fcv, Psv) => t == from,
                (Fcv, Prv) => f == to,
                (Psv, Fcv) => f == to,
                (Prv, Fcv) => t == from,
                _ => false,
            };
            if conflict {
                return Some(220);
            }
        }
        None
    }

    fn pattern(&mut self, t: &[&str]) -> LineResult {
        if t.len() < 2 {
            return Err(line_fault(201));
        }
        let index = match self.previous_pattern {
            Some(p) if self.net.patterns[p].id == t[0] => p,
            _ => self.find_pattern(t[0])?,
        };
        self.previous_pattern = Some(index);
        for &token in &t[1..] {
            let value = lex::number(token).ok_or_else(|| fault(202, token))?;
            self.net.patterns[index].multipliers.push(value);
        }
        Ok(())
    }

    fn curve(&mut self, t: &[&str], comment: &str) -> LineResult {
        if t.len() < 3 {
            return Err(line_fault(201));
        }
        let x = lex::number(t[1]).ok_or_else(|| fault(202, t[1]))?;
        let y = lex::number(t[2]).ok_or_else(|| fault(202, t[2]))?;
        let index = match self.previous_curve {
            Some(c) if self.net.curves[c].id == t[0] => c,
            _ => {
                let c = self.find_curve(t[0])?;
                if self.stated_curve_kinds[c].is_none() {
                    self.stated_curve_kinds[c] = curve_kind_from_comment(comment);
                }
                c
            }
        };
        self.previous_curve = Some(index);
        self.net.curves[index].points.push((x, y));
        if let Some(kind) = t.get(3).and_then(|k| curve_kind_keyword(k)) {
            self.stated_curve_kinds[index] = Some(kind);
        }
        Ok(())
    }

    fn demand(&mut self, t: &[&str], comment: &str) -> LineResult {
        if t.len() < 2 {
            return Err(line_fault(201));
        }
        let base = lex::number(t[1]).ok_or_else(|| fault(202, t[1]))?;
        let node = self.node_or(t[0], 203)?;
        if !self.is_junction_slot(node) {
            return Ok(());
        }
        let pattern = match t.get(2) {
            Some(&p) => Some(self.find_pattern(p)?),
            None => None,
        };
        let category = (!comment.is_empty()).then(|| comment.to_string());
        let replace = self.replaced_demands.insert(node);
        if let Some(Some(Node {
            kind: NodeKind::Junction(junction),
            ..
        })) = self.nodes.get_mut(node)
        {
            match junction.demands.first_mut() {
                Some(first) if replace => {
                    first.base = base;
                    first.pattern = pattern;
                    if category.is_some() {
                        first.category = category;
                    }
                }
                _ => junction.demands.push(Demand {
                    base,
                    pattern,
                    category,
                }),
            }
        }
        Ok(())
    }

    fn control(&mut self, t: &[&str]) -> LineResult {
        let mut n = t.len();
        if n < 6 {
            return Err(line_fault(201));
        }
        let mut enabled = true;
        if lex::matches(t[n - 1], "DISABLED") {
            enabled = false;
            n -= 1;
        }
        let link = self.find_link(t[1]).ok_or_else(|| fault(204, t[1]))?;
        let kind = self.link_kind(link).cloned();
        let is_pump = matches!(kind, Some(LinkKind::Pump(_)));
        let is_pipe = matches!(kind, Some(LinkKind::Pipe(_)));
        if let Some(LinkKind::Pipe(Pipe {
            status: PipeStatus::CheckValve,
            ..
        })) = kind
        {
            return Err(fault(207, t[1]));
        }
        let action = if lex::matches(t[2], "OPEN") {
            LinkAction::Open
        } else if lex::matches(t[2], "CLOSED") {
            LinkAction::Closed
        } else if is_gpv(kind.as_ref()) {
            return Err(fault(207, t[1]));
        } else {
            let setting = lex::number(t[2]).ok_or_else(|| fault(202, t[2]))?;
            if (is_pump || is_pipe) && setting < 0.0 {
                return Err(fault(211, t[2]));
            }
            // EPANET uses only the status a number implies for a pipe: zero closes it.
            match (is_pipe, setting == 0.0) {
                (true, true) => LinkAction::Closed,
                (true, false) => LinkAction::Open,
                (false, _) => LinkAction::Setting(setting),
            }
        };
        let condition = if lex::matches(t[4], "TIME") || lex::matches(t[4], "CLOCKTIME") {
            let units = if n >= 7 { t[6] } else { "" };
            let mut extra = false;
            let h = lex::hours(t[5], units, &mut extra).ok_or_else(|| fault(213, t[5]))?;
            if !(0.0..1e15).contains(&h) {
                return Err(fault(213, t[5]));
            }
            if extra {
                self.note(&format!(
                    "time '{}' has more than three fields; EPANET ignores the extra ones",
                    t[5]
                ));
            }
            let seconds = (3600.0 * h + 0.5) as u64;
            if lex::matches(t[4], "TIME") {
                ControlCondition::AtTime(seconds)
            } else {
                ControlCondition::AtClockTime(seconds % 86_400)
            }
        } else {
            if n < 8 {
                return Err(line_fault(201));
            }
            let node = self.node_or(t[5], 203)?;
            let above = if lex::matches(t[6], "BELOW") {
                false
            } else if lex::matches(t[6], "ABOVE") {
                true
            } else {
                return Err(fault(213, t[6]));
            };
            let value = lex::number(t[7]).ok_or_else(|| fault(202, t[7]))?;
            if above {
                ControlCondition::NodeAbove { node, value }
            } else {
                ControlCondition::NodeBelow { node, value }
            }
        };
        self.net.controls.push(Control {
            link,
            action,
            condition,
            enabled,
        });
        Ok(())
    }

    fn emitter(&mut self, t: &[&str]) -> LineResult {
        if t.len() < 2 {
            return Err(line_fault(201));
        }
        let node = self.node_or(t[0], 203)?;
        if !self.is_junction_slot(node) {
            return Ok(());
        }
        let k = lex::number(t[1]).ok_or_else(|| fault(202, t[1]))?;
        if k < 0.0 {
            return Err(fault(209, t[1]));
        }
        if let Some(Some(n)) = self.nodes.get_mut(node) {
            n.emitter_coefficient = k;
        }
        Ok(())
    }

    fn leakage(&mut self, t: &[&str]) -> LineResult {
        if t.len() < 3 {
            return Err(line_fault(201));
        }
        let link = self.find_link(t[0]).ok_or_else(|| fault(203, t[0]))?;
        let non_negative = |token: &str| match lex::number(token) {
            None => Err(fault(202, token)),
            Some(x) if x < 0.0 => Err(fault(209, token)),
            Some(x) => Ok(x),
        };
        let area = non_negative(t[1])?;
        let expansion = non_negative(t[2])?;
        if let Some(Link {
            kind: LinkKind::Pipe(pipe),
            ..
        }) = self.net.links.get_mut(link)
        {
            pipe.leak_area = area;
            pipe.leak_expansion = expansion;
        }
        Ok(())
    }

    fn status(&mut self, t: &[&str]) -> LineResult {
        if self.net.links.is_empty() {
            return Err(fault(204, t[0]));
        }
        let n = t.len() - 1;
        if n < 1 {
            return Err(line_fault(201));
        }
        let spec = if lex::matches(t[n], "OPEN") {
            StatusSpec::Open
        } else if lex::matches(t[n], "CLOSED") {
            StatusSpec::Closed
        } else {
            match lex::number(t[n]) {
                None => return Err(fault(202, t[n])),
                Some(y) if y < 0.0 => return Err(fault(211, t[n])),
                Some(y) => StatusSpec::Value(y),
            }
        };
        if n == 1 {
            let link = self.find_link(t[0]).ok_or_else(|| fault(204, t[0]))?;
            let kind = self.link_kind(link);
            if matches!(
                kind,
                Some(LinkKind::Pipe(Pipe {
                    status: PipeStatus::CheckValve,
                    ..
                }))
            ) {
                return Err(fault(207, t[0]));
            }
            if is_gpv(kind) && matches!(spec, StatusSpec::Value(_)) {
                return Err(fault(207, t[0]));
            }
            set_initial_status(&mut self.net.links[link], spec);
            return Ok(());
        }
        let (low, high) = (lex::leading_integer(t[0]), lex::leading_integer(t[1]));
        for link in &mut self.net.links {
            let in_range = if low > 0 && high > 0 {
                (low..=high).contains(&lex::leading_integer(&link.id))
            } else {
                t[0] <= link.id.as_str() && t[1] >= link.id.as_str()
            };
            if in_range {
                set_initial_status(link, spec);
            }
        }
        Ok(())
    }

    // ----- map and descriptive sections (EPANET ignores bad lines there) -----

    fn coordinates(&mut self, t: &[&str]) {
        if t.len() < 3 {
            return;
        }
        let (Some(node), Some(x), Some(y)) =
            (self.find_node(t[0]), lex::number(t[1]), lex::number(t[2]))
        else {
            return;
        };
        if let Some(Some(n)) = self.nodes.get_mut(node) {
            n.coordinates = Some((x, y));
        }
    }

    fn vertex(&mut self, t: &[&str]) {
        if t.len() < 3 {
            return;
        }
        if let (Some(link), Some(x), Some(y)) =
            (self.find_link(t[0]), lex::number(t[1]), lex::number(t[2]))
        {
            self.net.links[link].vertices.push((x, y));
        }
    }

    fn label(&mut self, t: &[&str]) {
        let (Some(x), Some(y)) = (
            t.first().and_then(|s| lex::number(s)),
            t.get(1).and_then(|s| lex::number(s)),
        ) else {
            return;
        };
        self.net.labels.push(Label {
            x,
            y,
            text: t.get(2).map(|s| s.to_string()).unwrap_or_default(),
            anchor: t.get(3).map(|s| s.to_string()),
        });
    }

    fn tag(&mut self, t: &[&str]) {
        if t.len() < 3 {
            return;
        }
        let tag = Some(t[2].to_string());
        if lex::matches(t[0], "NODE") {
            if let Some(Some(node)) = self.find_node(t[1]).and_then(|i| self.nodes.get_mut(i)) {
                node.tag = tag;
            }
        } else if lex::matches(t[0], "LINK") {
            if let Some(link) = self.find_link(t[1]) {
                self.net.links[link].tag = tag;
            }
        }
    }

    /// Checks node references in the water-quality sections (their lines are kept verbatim).
    fn quality_line(&mut self, section: Section, t: &[&str]) -> LineResult {
        match section {
            Section::Sources if t.len() < 2 => return Err(line_fault(201)),
            Section::Sources | Section::Mixing if t.len() >= 2 => {
                self.node_or(t[0], 203)?;
            }
            Section::Quality if t.len() == 2 => {
                self.node_or(t[0], 203)?;
                match lex::number(t[1]) {
                    None => return Err(fault(202, t[1])),
                    Some(c) if c < 0.0 => return Err(fault(209, t[1])),
                    Some(_) => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ----- end of reading -----

    fn finish(mut self) -> Result<Reading, InpError> {
        if !self.problems.is_empty() {
            return Err(InpError::Invalid(self.problems));
        }
        let nodes: Option<Vec<Node>> = std::mem::take(&mut self.nodes).into_iter().collect();
        let Some(nodes) = nodes else {
            self.section = None;
            self.line = 0;
            self.problem(Fault {
                code: 200,
                token: None,
            });
            return Err(InpError::Invalid(self.problems));
        };
        self.net.nodes = nodes;
        self.net.options.viscosity = super::settings::relative_viscosity(&self.net.options);
        self.assign_curve_kinds();
        let problems = super::validate::validate(&self.net, &self.lines, self.file);
        if !problems.is_empty() {
            return Err(InpError::Invalid(problems));
        }
        Ok(Reading {
            network: self.net,
            notes: self.notes,
        })
    }

    /// A curve's kind comes from its use; unused curves keep the kind the file states.
    fn assign_curve_kinds(&mut self) {
        for (curve, stated) in self.net.curves.iter_mut().zip(&self.stated_curve_kinds) {
            curve.kind = stated.unwrap_or_default();
        }
        let mut used = Vec::new();
        for node in &self.net.nodes {
            if let NodeKind::Tank(Tank {
                volume_curve: Some(c),
                ..
            }) = node.kind
            {
                used.push((c, CurveKind::Volume));
            }
        }
        for link in &self.net.links {
            match &link.kind {
                LinkKind::Pump(pump) => {
                    used.extend(pump.head_curve.map(|c| (c, CurveKind::Pump)));
                    used.extend(pump.efficiency_curve.map(|c| (c, CurveKind::Efficiency)));
                }
                LinkKind::Valve(Valve {
                    valve_type: ValveType::Gpv,
                    curve: Some(c),
                    ..
                }) => {
                    used.push((*c, CurveKind::Headloss));
                }
                LinkKind::Valve(Valve {
                    valve_type: ValveType::Pcv,
                    curve: Some(c),
                    ..
                }) => {
                    used.push((*c, CurveKind::Valve));
                }
                _ => {}
            }
        }
        for (c, kind) in used {
            if let Some(curve) = self.net.curves.get_mut(c) {
                curve.kind = kind;
            }
        }
    }
}

fn new_node(id: &str, kind: NodeKind) -> Node {
    Node {
        id: id.to_string(),
        kind,
        coordinates: None,
        tag: None,
        emitter_coefficient: 0.0,
    }
}

fn pipe_values(t: &[&str], pipe: &mut Pipe) -> LineResult {
    let positive = |i: usize| match lex::number(t[i]) {
        Some(x) if x > 0.0 => Ok(x),
        _ => Err(fault(202, t[i])),
    };
    let minor_loss = |i: usize| match lex::number(t[i]) {
        Some(x) if x >= 0.0 => Ok(x),
        _ => Err(fault(202, t[i])),
    };
    let status = |token: &str| {
        if lex::matches(token, "CV") {
            Some(PipeStatus::CheckValve)
        } else if lex::matches(token, "CLOSED") {
            Some(PipeStatus::Closed)
        } else if lex::matches(token, "OPEN") {
            Some(PipeStatus::Open)
        } else {
            None
        }
    };
    if t.len() > 3 {
        pipe.length = positive(3)?;
    }
    if t.len() > 4 {
        pipe.diameter = positive(4)?;
    }
    if t.len() > 5 {
        pipe.roughness = positive(5)?;
    }
    if t.len() == 7 {
        match status(t[6]) {
            Some(s) => pipe.status = s,
            None => pipe.minor_loss = minor_loss(6)?,
        }
    }
    if t.len() > 7 {
        pipe.minor_loss = minor_loss(6)?;
        pipe.status = status(t[7]).ok_or_else(|| fault(213, t[7]))?;
    }
    Ok(())
}

fn is_gpv(kind: Option<&LinkKind>) -> bool {
    matches!(
        kind,
        Some(LinkKind::Valve(Valve {
            valve_type: ValveType::Gpv,
            ..
        }))
    )
}

/// Records a `[STATUS]` entry where EPANET's `changestatus` has an effect: pipes and GPVs
/// take only OPEN/CLOSED, check valves nothing, pumps and other valves everything.
fn set_initial_status(link: &mut Link, spec: StatusSpec) {
    let applies = match &link.kind {
        LinkKind::Pipe(Pipe {
            status: PipeStatus::CheckValve,
            ..
        }) => false,
        LinkKind::Pipe(_)
        | LinkKind::Valve(Valve {
            valve_type: ValveType::Gpv,
            ..
        }) => !matches!(spec, StatusSpec::Value(_)),
        LinkKind::Pump(_) | LinkKind::Valve(_) => true,
    };
    if applies {
        link.initial_status = Some(spec);
    }
}

fn valve_type(token: &str) -> Option<ValveType> {
    [
        ("PRV", ValveType::Prv),
        ("PSV", ValveType::Psv),
        ("PBV", ValveType::Pbv),
        ("FCV", ValveType::Fcv),
        ("TCV", ValveType::Tcv),
        ("GPV", ValveType::Gpv),
        ("PCV", ValveType::Pcv),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, kind)| kind)
}

/// Curve type keywords (EPANET's `CurveTypeTxt`, and the words the EPANET GUI writes in the
/// comment before a curve, e.g. `;PUMP: ...`).
fn curve_kind_keyword(token: &str) -> Option<CurveKind> {
    [
        ("VOLUME", CurveKind::Volume),
        ("PUMP", CurveKind::Pump),
        ("EFFIC", CurveKind::Efficiency),
        ("HEADLOSS", CurveKind::Headloss),
        ("GENERIC", CurveKind::Generic),
        ("VALVE", CurveKind::Valve),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, kind)| kind)
}

/// The kind a comment such as `PUMP: Pump Curve for Pump 10` states (the word before `:`).
fn curve_kind_from_comment(comment: &str) -> Option<CurveKind> {
    let (word, _) = comment.split_once(':')?;
    let word = word.trim();
    let kind = curve_kind_keyword(word)?;
    // The whole word must be a type name (EFFICIENCY or EFFIC), not just start with one.
    let known = [
        "VOLUME",
        "PUMP",
        "EFFICIENCY",
        "EFFIC",
        "HEADLOSS",
        "GENERIC",
        "VALVE",
    ];
    known
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
        .then_some(kind)
}
