//! The `.inp` writer. Numbers are written with Rust's shortest round-trip formatting and
//! every value is written explicitly, so reading the text back gives an equal network.

use super::lex::clock;
use crate::model::*;
use std::fmt::Write;

/// Text of a whole `.inp` file.
pub(super) fn write(net: &Network) -> String {
    let mut w = Writer {
        net,
        out: String::new(),
    };
    w.title();
    w.junctions();
    w.reservoirs();
    w.tanks();
    w.pipes();
    w.pumps();
    w.valves();
    w.tags();
    w.demands();
    w.status();
    w.patterns();
    w.curves();
    w.controls();
    w.rules();
    w.energy();
    w.emitters();
    w.leakage();
    w.kept_sections();
    w.times();
    w.verbatim("REPORT", &net.report);
    w.options();
    w.coordinates();
    w.vertices();
    w.labels();
    w.verbatim("BACKDROP", &net.backdrop);
    w.out.push_str("[END]\n");
    w.out
}

struct Writer<'a> {
    net: &'a Network,
    out: String,
}

/// An id as a token: quoted when it contains a separator.
fn id(text: &str) -> String {
    if text.contains([' ', '\t']) {
        format!("\"{text}\"")
    } else {
        text.to_string()
    }
}

impl Writer<'_> {
    fn section(&mut self, name: &str) {
        let _ = writeln!(self.out, "[{name}]");
    }

    fn line(&mut self, fields: &[String]) {
        self.out.push_str(&fields.join("\t"));
        self.out.push('\n');
    }

    fn end_section(&mut self) {
        self.out.push('\n');
    }

    fn node_id(&self, index: usize) -> String {
        self.net
            .nodes
            .get(index)
            .map(|n| id(&n.id))
            .unwrap_or_default()
    }

    fn link_id(&self, index: usize) -> String {
        self.net
            .links
            .get(index)
            .map(|l| id(&l.id))
            .unwrap_or_default()
    }

    fn pattern_id(&self, index: usize) -> String {
        self.net
            .patterns
            .get(index)
            .map(|p| id(&p.id))
            .unwrap_or_default()
    }

    fn curve_id(&self, index: usize) -> String {
        self.net
            .curves
            .get(index)
            .map(|c| id(&c.id))
            .unwrap_or_default()
    }

    fn title(&mut self) {
        self.section("TITLE");
        for line in &self.net.title {
            let _ = writeln!(self.out, "{line}");
        }
        self.end_section();
    }

    fn options(&mut self) {
        let o = &self.net.options;
        let mut lines = vec![
            format!("UNITS\t{}", o.flow_units.name()),
            format!("HEADLOSS\t{}", headloss_name(o.headloss)),
        ];
        if let Some(units) = o.pressure_units {
            lines.push(format!("PRESSURE\t{}", pressure_name(units)));
        }
        lines.extend([
            format!("SPECIFIC GRAVITY\t{}", o.specific_gravity),
            format!("VISCOSITY\t{}", o.viscosity),
            format!("TRIALS\t{}", o.trials),
            format!("ACCURACY\t{}", o.accuracy),
            match o.unbalanced {
                Unbalanced::Stop => "UNBALANCED\tSTOP".to_string(),
                Unbalanced::Continue(n) => format!("UNBALANCED\tCONTINUE {n}"),
            },
        ]);
        if let Some(pattern) = &o.default_pattern {
            lines.push(format!("PATTERN\t{}", id(pattern)));
        }
        lines.extend([
            format!("DEMAND MULTIPLIER\t{}", o.demand_multiplier),
            format!("EMITTER EXPONENT\t{}", o.emitter_exponent),
            format!(
                "BACKFLOW ALLOWED\t{}",
                if o.emitter_backflow { "YES" } else { "NO" }
            ),
            format!("CHECKFREQ\t{}", o.check_freq),
            format!("MAXCHECK\t{}", o.max_check),
            format!("DAMPLIMIT\t{}", o.damp_limit),
        ]);
        if o.head_error > 0.0 {
            lines.push(format!("HEADERROR\t{}", o.head_error));
        }
        if o.flow_change > 0.0 {
            lines.push(format!("FLOWCHANGE\t{}", o.flow_change));
        }
        lines.extend([
            format!(
                "DEMAND MODEL\t{}",
                if o.demand_model == DemandModel::Pda {
                    "PDA"
                } else {
                    "DDA"
                }
            ),
            format!("MINIMUM PRESSURE\t{}", o.minimum_pressure),
        ]);
        // The reader sets the required pressure to minimum + 0.1 itself when only the
        // minimum is given; writing that sum back could fail EPANET's 0.1 gap check.
        if o.required_pressure != o.minimum_pressure + 0.1 {
            lines.push(format!("REQUIRED PRESSURE\t{}", o.required_pressure));
        }
        lines.push(format!("PRESSURE EXPONENT\t{}", o.pressure_exponent));
        lines.extend(o.other.iter().cloned());
        self.verbatim("OPTIONS", &lines);
    }

    fn times(&mut self) {
        let t = &self.net.times;
        let mut lines = vec![
            format!("DURATION\t{}", clock(t.duration)),
            format!("HYDRAULIC TIMESTEP\t{}", clock(t.hydraulic_step)),
        ];
        if let Some(q) = t.quality_step {
            lines.push(format!("QUALITY TIMESTEP\t{}", clock(q)));
        }
        if let Some(r) = t.rule_step {
            lines.push(format!("RULE TIMESTEP\t{}", clock(r)));
        }
        lines.extend([
            format!("PATTERN TIMESTEP\t{}", clock(t.pattern_step)),
            format!("PATTERN START\t{}", clock(t.pattern_start)),
            format!("REPORT TIMESTEP\t{}", clock(t.report_step)),
            format!("REPORT START\t{}", clock(t.report_start)),
            format!("START CLOCKTIME\t{}", clock(t.start_clocktime)),
            format!("STATISTIC\t{}", statistic_name(t.statistic)),
        ]);
        self.verbatim("TIMES", &lines);
    }

    fn junctions(&mut self) {
        self.section("JUNCTIONS");
        for node in &self.net.nodes {
            if let NodeKind::Junction(j) = &node.kind {
                let mut fields = vec![id(&node.id), j.elevation.to_string()];
                if let Some(first) = j.demands.first() {
                    fields.push(first.base.to_string());
                    fields.extend(first.pattern.map(|p| self.pattern_id(p)));
                }
                self.line(&fields);
            }
        }
        self.end_section();
    }

    fn reservoirs(&mut self) {
        self.section("RESERVOIRS");
        for node in &self.net.nodes {
            if let NodeKind::Reservoir(r) = &node.kind {
                let mut fields = vec![id(&node.id), r.head.to_string()];
                fields.extend(r.pattern.map(|p| self.pattern_id(p)));
                self.line(&fields);
            }
        }
        self.end_section();
    }

    fn tanks(&mut self) {
        self.section("TANKS");
        for node in &self.net.nodes {
            if let NodeKind::Tank(t) = &node.kind {
                let fields = [
                    id(&node.id),
                    t.elevation.to_string(),
                    t.initial_level.to_string(),
                    t.min_level.to_string(),
                    t.max_level.to_string(),
                    t.diameter.to_string(),
                    t.min_volume.to_string(),
                    t.volume_curve
                        .map(|c| self.curve_id(c))
                        .unwrap_or_else(|| "*".to_string()),
                    if t.overflow { "YES" } else { "NO" }.to_string(),
                ];
                self.line(&fields);
            }
        }
        self.end_section();
    }

    fn pipes(&mut self) {
        self.section("PIPES");
        for link in &self.net.links {
            if let LinkKind::Pipe(p) = &link.kind {
                let status = match p.status {
                    PipeStatus::Open => "OPEN",
                    PipeStatus::Closed => "CLOSED",
                    PipeStatus::CheckValve => "CV",
                };
                let fields = [
                    id(&link.id),
                    self.node_id(link.from),
                    self.node_id(link.to),
                    p.length.to_string(),
                    p.diameter.to_string(),
                    p.roughness.to_string(),
                    p.minor_loss.to_string(),
                    status.to_string(),
                ];
                self.line(&fields);
            }
        }
        self.end_section();
    }

    fn pumps(&mut self) {
        self.section("PUMPS");
        for link in &self.net.links {
            if let LinkKind::Pump(p) = &link.kind {
                let mut fields = vec![id(&link.id), self.node_id(link.from), self.node_id(link.to)];
                if let Some(c) = p.head_curve {
                    fields.extend(["HEAD".to_string(), self.curve_id(c)]);
                }
                if let Some(power) = p.power {
                    fields.extend(["POWER".to_string(), power.to_string()]);
                }
                fields.extend(["SPEED".to_string(), p.speed.to_string()]);
                if let Some(pattern) = p.pattern {
                    fields.extend(["PATTERN".to_string(), self.pattern_id(pattern)]);
                }
                self.line(&fields);
            }
        }
        self.end_section();
    }

    fn valves(&mut self) {
        self.section("VALVES");
        for link in &self.net.links {
            if let LinkKind::Valve(v) = &link.kind {
                let setting = match (v.valve_type, v.curve) {
                    (ValveType::Gpv, Some(c)) => self.curve_id(c),
                    _ => v.setting.to_string(),
                };
                let mut fields = vec![
                    id(&link.id),
                    self.node_id(link.from),
                    self.node_id(link.to),
                    v.diameter.to_string(),
                    v.valve_type.keyword().to_string(),
                    setting,
                    v.minor_loss.to_string(),
                ];
                if let (ValveType::Pcv, Some(c)) = (v.valve_type, v.curve) {
                    fields.push(self.curve_id(c));
                }
                self.line(&fields);
            }
        }
        self.end_section();
    }

    fn tags(&mut self) {
        self.section("TAGS");
        for node in &self.net.nodes {
            if let Some(tag) = &node.tag {
                self.line(&["NODE".to_string(), id(&node.id), id(tag)]);
            }
        }
        for link in &self.net.links {
            if let Some(tag) = &link.tag {
                self.line(&["LINK".to_string(), id(&link.id), id(tag)]);
            }
        }
        self.end_section();
    }

    /// A junction whose demands are more than its `[JUNCTIONS]` line can say gets all of them
    /// here: the first `[DEMANDS]` line replaces the `[JUNCTIONS]` demand, the others add.
    fn demands(&mut self) {
        self.section("DEMANDS");
        for node in &self.net.nodes {
            let NodeKind::Junction(j) = &node.kind else {
                continue;
            };
            let simple = j.demands.len() == 1 && j.demands[0].category.is_none();
            if simple {
                continue;
            }
            for demand in &j.demands {
                let mut line = format!("{}\t{}", id(&node.id), demand.base);
                if let Some(p) = demand.pattern {
                    let _ = write!(line, "\t{}", self.pattern_id(p));
                }
                if let Some(category) = &demand.category {
                    let _ = write!(line, "\t;{category}");
                }
                let _ = writeln!(self.out, "{line}");
            }
        }
        self.end_section();
    }

    fn status(&mut self) {
        self.section("STATUS");
        for link in &self.net.links {
            if let Some(spec) = link.initial_status {
                let value = match spec {
                    StatusSpec::Open => "OPEN".to_string(),
                    StatusSpec::Closed => "CLOSED".to_string(),
                    StatusSpec::Value(v) => v.to_string(),
                };
                self.line(&[id(&link.id), value]);
            }
        }
        self.end_section();
    }

    fn patterns(&mut self) {
        self.section("PATTERNS");
        for pattern in &self.net.patterns {
            for chunk in pattern.multipliers.chunks(8) {
                let mut fields = vec![id(&pattern.id)];
                fields.extend(chunk.iter().map(f64::to_string));
                self.line(&fields);
            }
        }
        self.end_section();
    }

    fn curves(&mut self) {
        self.section("CURVES");
        for curve in &self.net.curves {
            let _ = writeln!(self.out, ";{}:", curve_kind_name(curve.kind));
            for (x, y) in &curve.points {
                self.line(&[id(&curve.id), x.to_string(), y.to_string()]);
            }
        }
        self.end_section();
    }

    fn controls(&mut self) {
        self.section("CONTROLS");
        for control in &self.net.controls {
            let action = match control.action {
                LinkAction::Open | LinkAction::Active => "OPEN".to_string(),
                LinkAction::Closed => "CLOSED".to_string(),
                LinkAction::Setting(x) => x.to_string(),
            };
            let condition = match control.condition {
                ControlCondition::NodeAbove { node, value } => {
                    format!("IF NODE {} ABOVE {value}", self.node_id(node))
                }
                ControlCondition::NodeBelow { node, value } => {
                    format!("IF NODE {} BELOW {value}", self.node_id(node))
                }
                ControlCondition::AtTime(t) => format!("AT TIME {}", clock(t)),
                ControlCondition::AtClockTime(t) => format!("AT CLOCKTIME {}", clock(t)),
            };
            let disabled = if control.enabled { "" } else { " DISABLED" };
            let _ = writeln!(
                self.out,
                "LINK {} {action} {condition}{disabled}",
                self.link_id(control.link)
            );
        }
        self.end_section();
    }

    fn rules(&mut self) {
        self.section("RULES");
        for rule in &self.net.rules {
            let _ = writeln!(self.out, "RULE {}", id(&rule.id));
            for premise in &rule.premises {
                let text = self.premise(premise);
                let _ = writeln!(self.out, "{text}");
            }
            for (i, action) in rule.then_actions.iter().enumerate() {
                let text = self.action(if i == 0 { "THEN" } else { "AND" }, action);
                let _ = writeln!(self.out, "{text}");
            }
            for (i, action) in rule.else_actions.iter().enumerate() {
                let text = self.action(if i == 0 { "ELSE" } else { "AND" }, action);
                let _ = writeln!(self.out, "{text}");
            }
            if rule.priority != 0.0 {
                let _ = writeln!(self.out, "PRIORITY {}", rule.priority);
            }
            if !rule.enabled {
                let _ = writeln!(self.out, "DISABLED");
            }
            self.out.push('\n');
        }
        self.end_section();
    }

    fn premise(&self, p: &Premise) -> String {
        let logic = match p.logic {
            PremiseLogic::If => "IF",
            PremiseLogic::And => "AND",
            PremiseLogic::Or => "OR",
        };
        let object = match p.object {
            RuleObject::Node(n) => {
                let class = match self.net.nodes.get(n).map(|node| &node.kind) {
                    Some(NodeKind::Reservoir(_)) => "RESERVOIR",
                    Some(NodeKind::Tank(_)) => "TANK",
                    _ => "JUNCTION",
                };
                format!("{class} {}", self.node_id(n))
            }
            RuleObject::Link(l) => {
                let class = match self.net.links.get(l).map(|link| &link.kind) {
                    Some(LinkKind::Pump(_)) => "PUMP",
                    Some(LinkKind::Valve(_)) => "VALVE",
                    _ => "PIPE",
                };
                format!("{class} {}", self.link_id(l))
            }
            RuleObject::System => "SYSTEM".to_string(),
        };
        let value = match (p.variable, p.value) {
            (RuleVariable::Time | RuleVariable::ClockTime, PremiseValue::Number(s)) => {
                clock(s.max(0.0) as u64)
            }
            (RuleVariable::FillTime | RuleVariable::DrainTime, PremiseValue::Number(s)) => {
                (s / 3600.0).to_string()
            }
            (_, PremiseValue::Number(x)) => x.to_string(),
            (_, PremiseValue::Open) => "OPEN".to_string(),
            (_, PremiseValue::Closed) => "CLOSED".to_string(),
            (_, PremiseValue::Active) => "ACTIVE".to_string(),
        };
        format!(
            "{logic} {object} {} {} {value}",
            variable_name(p.variable),
            relation_name(p.relation)
        )
    }

    fn action(&self, keyword: &str, a: &RuleAction) -> String {
        let link = self.link_id(a.link);
        match a.action {
            LinkAction::Open => format!("{keyword} LINK {link} STATUS IS OPEN"),
            LinkAction::Closed => format!("{keyword} LINK {link} STATUS IS CLOSED"),
            LinkAction::Active => format!("{keyword} LINK {link} STATUS IS ACTIVE"),
            LinkAction::Setting(x) => format!("{keyword} LINK {link} SETTING IS {x}"),
        }
    }

    fn energy(&mut self) {
        let e = &self.net.energy;
        let mut lines = vec![
            format!("GLOBAL EFFIC\t{}", e.global_efficiency),
            format!("GLOBAL PRICE\t{}", e.global_price),
        ];
        if let Some(p) = e.global_pattern {
            lines.push(format!("GLOBAL PATTERN\t{}", self.pattern_id(p)));
        }
        lines.push(format!("DEMAND CHARGE\t{}", e.demand_charge));
        for link in &self.net.links {
            let LinkKind::Pump(p) = &link.kind else {
                continue;
            };
            let name = id(&link.id);
            if let Some(c) = p.efficiency_curve {
                lines.push(format!("PUMP {name}\tEFFIC\t{}", self.curve_id(c)));
            }
            if let Some(price) = p.energy_price {
                lines.push(format!("PUMP {name}\tPRICE\t{price}"));
            }
            if let Some(pattern) = p.price_pattern {
                lines.push(format!(
                    "PUMP {name}\tPATTERN\t{}",
                    self.pattern_id(pattern)
                ));
            }
        }
        self.verbatim("ENERGY", &lines);
    }

    fn emitters(&mut self) {
        self.section("EMITTERS");
        for node in &self.net.nodes {
            if node.emitter_coefficient != 0.0 {
                self.line(&[id(&node.id), node.emitter_coefficient.to_string()]);
            }
        }
        self.end_section();
    }

    fn leakage(&mut self) {
        self.section("LEAKAGE");
        for link in &self.net.links {
            if let LinkKind::Pipe(p) = &link.kind {
                if p.leak_area != 0.0 || p.leak_expansion != 0.0 {
                    self.line(&[
                        id(&link.id),
                        p.leak_area.to_string(),
                        p.leak_expansion.to_string(),
                    ]);
                }
            }
        }
        self.end_section();
    }

    fn kept_sections(&mut self) {
        for kept in &self.net.kept_sections {
            self.verbatim(&kept.name, &kept.lines);
        }
    }

    fn coordinates(&mut self) {
        self.section("COORDINATES");
        for node in &self.net.nodes {
            if let Some((x, y)) = node.coordinates {
                self.line(&[id(&node.id), x.to_string(), y.to_string()]);
            }
        }
        self.end_section();
    }

    fn vertices(&mut self) {
        self.section("VERTICES");
        for link in &self.net.links {
            for (x, y) in &link.vertices {
                self.line(&[id(&link.id), x.to_string(), y.to_string()]);
            }
        }
        self.end_section();
    }

    fn labels(&mut self) {
        self.section("LABELS");
        for label in &self.net.labels {
            let mut fields = vec![
                label.x.to_string(),
                label.y.to_string(),
                format!("\"{}\"", label.text),
            ];
            fields.extend(label.anchor.as_deref().map(id));
            self.line(&fields);
        }
        self.end_section();
    }

    fn verbatim(&mut self, name: &str, lines: &[String]) {
        self.section(name);
        for line in lines {
            let _ = writeln!(self.out, "{line}");
        }
        self.end_section();
    }
}

fn headloss_name(h: HeadlossFormula) -> &'static str {
    match h {
        HeadlossFormula::HazenWilliams => "H-W",
        HeadlossFormula::DarcyWeisbach => "D-W",
        HeadlossFormula::ChezyManning => "C-M",
    }
}

fn pressure_name(p: PressureUnits) -> &'static str {
    match p {
        PressureUnits::Psi => "PSI",
        PressureUnits::Kpa => "KPA",
        PressureUnits::Meters => "METERS",
        PressureUnits::Bar => "BAR",
        PressureUnits::Feet => "FEET",
    }
}

fn statistic_name(s: Statistic) -> &'static str {
    match s {
        Statistic::None => "NONE",
        Statistic::Average => "AVERAGE",
        Statistic::Minimum => "MINIMUM",
        Statistic::Maximum => "MAXIMUM",
        Statistic::Range => "RANGE",
    }
}

fn curve_kind_name(k: CurveKind) -> &'static str {
    match k {
        CurveKind::Generic => "GENERIC",
        CurveKind::Pump => "PUMP",
        CurveKind::Efficiency => "EFFICIENCY",
        CurveKind::Volume => "VOLUME",
        CurveKind::Headloss => "HEADLOSS",
        CurveKind::Valve => "VALVE",
    }
}

fn variable_name(v: RuleVariable) -> &'static str {
    match v {
        RuleVariable::Demand => "DEMAND",
        RuleVariable::Head => "HEAD",
        RuleVariable::Grade => "GRADE",
        RuleVariable::Level => "LEVEL",
        RuleVariable::Pressure => "PRESSURE",
        RuleVariable::Flow => "FLOW",
        RuleVariable::Status => "STATUS",
        RuleVariable::Setting => "SETTING",
        RuleVariable::Power => "POWER",
        RuleVariable::Time => "TIME",
        RuleVariable::ClockTime => "CLOCKTIME",
        RuleVariable::FillTime => "FILLTIME",
        RuleVariable::DrainTime => "DRAINTIME",
    }
}

fn relation_name(r: Relation) -> &'static str {
    match r {
        Relation::Eq => "=",
        Relation::Ne => "<>",
        Relation::Le => "<=",
        Relation::Ge => ">=",
        Relation::Lt => "<",
        Relation::Gt => ">",
        Relation::Is => "IS",
        Relation::Not => "NOT",
        Relation::Below => "BELOW",
        Relation::Above => "ABOVE",
    }
}
