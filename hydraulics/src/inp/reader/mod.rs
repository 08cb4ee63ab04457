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

mod controls;
mod links;
mod nodes;
mod series;

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
