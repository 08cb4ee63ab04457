//! A scenario's events written into the network itself, as elements and `AT TIME` controls, so
//! that our solver and EPANET (given the network our writer writes) run the very same thing.

use crate::spec::{Event, EventKind, Outflow, Scenario};
use hydraulics::model::{
    Control, ControlCondition, DemandModel, HeadlossFormula, Junction, Link, LinkAction, LinkKind,
    Network, Node, NodeKind, Pattern, Pipe, PipeStatus, Premise, RuleAction, RuleObject,
    StatusSpec, Valve, ValveType,
};
use hydraulics::units::{UnitFactors, M_PER_FT};

/// Standard gravity, ft/s2 (the solver's internal units are feet and seconds).
const GRAVITY_FT: f64 = 9.80665 / M_PER_FT;

/// What an added outlet junction stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutletRole {
    /// Water lost (burst, leak).
    Loss,
    /// Water drawn on purpose (fire flow, demand surge).
    Draw,
}

/// A junction the scenario added to carry an outflow; its reported demand is that outflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlet {
    pub node: usize,
    /// Index of the event in the scenario.
    pub event: usize,
    pub role: OutletRole,
}

/// The network of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltScenario {
    pub network: Network,
    /// For each node of the original network, its index in `network` (links keep theirs; new
    /// links come after them).
    pub original_nodes: Vec<usize>,
    pub outlets: Vec<Outlet>,
}

/// The original network as the scenario runs it without events: its duration and pressure
/// driven demands.
pub fn baseline(network: &Network, scenario: &Scenario) -> Network {
    let mut base = network.clone();
    base.times.duration = scenario.duration;
    base.options.demand_model = DemandModel::Pda;
    base.options.minimum_pressure = scenario.pda.minimum_pressure;
    base.options.required_pressure = scenario.pda.required_pressure;
    base.options.pressure_exponent = scenario.pda.exponent;
    base
}

/// The network with the scenario's events (see the crate documentation for how each is
/// modelled).
pub fn build(network: &Network, scenario: &Scenario) -> BuiltScenario {
    let mut built = BuiltScenario {
        network: baseline(network, scenario),
        original_nodes: (0..network.nodes.len()).collect(),
        outlets: Vec::new(),
    };
    for (index, event) in scenario.events.iter().enumerate() {
        built.apply(index, event);
    }
    built
}

/// The emitter coefficient (flow units per pressure unit ^ 0.5) of an orifice of `area`
/// (length units squared) and discharge coefficient `cd`: `q = cd area sqrt(2 g h)` written
/// as `q = C p^0.5` in the network's units.
pub fn orifice_coefficient(network: &Network, area: f64, cd: f64) -> f64 {
    let units = UnitFactors::new(&network.options);
    let area_ft2 = area / (units.length * units.length);
    cd * area_ft2 * (2.0 * GRAVITY_FT).sqrt() * units.flow / units.pressure.sqrt()
}

impl BuiltScenario {
    fn apply(&mut self, index: usize, event: &Event) {
        match &event.kind {
            EventKind::Burst {
                pipe,
                position,
                outflow,
            } => {
                let node = self.split_pipe(*pipe, *position, index);
                let name = format!("burst{index}");
                self.add_outlet(&name, index, event, node, *outflow, OutletRole::Loss);
            }
            EventKind::Leak { node, outflow } => {
                let node = self.original_nodes[*node];
                let name = format!("leak{index}");
                self.add_outlet(&name, index, event, node, *outflow, OutletRole::Loss);
            }
            EventKind::DemandSurge { node, flow } => {
                let node = self.original_nodes[*node];
                let outflow = Outflow::Flow(*flow);
                let name = format!("draw{index}");
                self.add_outlet(&name, index, event, node, outflow, OutletRole::Draw);
            }
            EventKind::PipeClosure { link } => {
                self.switch(*link, event, LinkAction::Closed, LinkAction::Open);
            }
            EventKind::ValveClose { valve } => {
                let reopen = self.valve_resting_action(*valve);
                self.switch(*valve, event, LinkAction::Closed, reopen);
            }
            EventKind::ValveOpen { valve } => {
                let back = self.valve_resting_action(*valve);
                self.switch(*valve, event, LinkAction::Open, back);
            }
            EventKind::PumpOutage { pump } => {
                let end = self.network.links[*pump].to;
                let cut = self.cut_link_at(*pump, end, &format!("outage{index}"));
                self.switch(cut, event, LinkAction::Closed, LinkAction::Open);
            }
            EventKind::TankOutOfService { tank } => {
                let tank = self.original_nodes[*tank];
                let incident: Vec<usize> = (0..self.network.links.len())
                    .filter(|&l| {
                        let link = &self.network.links[l];
                        link.from == tank || link.to == tank
                    })
                    .collect();
                for (k, link) in incident.into_iter().enumerate() {
                    let cut = self.cut_link_at(link, tank, &format!("tank{index}_{k}"));
                    self.switch(cut, event, LinkAction::Closed, LinkAction::Open);
                }
            }
            EventKind::ReservoirHead { reservoir, head } => {
                self.change_reservoir_head(self.original_nodes[*reservoir], *head, event);
            }
        }
    }

    /// Sets `link` to `action` at the event's start (as its initial status at time 0) and to
    /// `back` at its end.
    fn switch(&mut self, link: usize, event: &Event, action: LinkAction, back: LinkAction) {
        if event.start == 0 {
            self.network.links[link].initial_status = Some(match action {
                LinkAction::Open | LinkAction::Active => StatusSpec::Open,
                LinkAction::Closed => StatusSpec::Closed,
                LinkAction::Setting(value) => StatusSpec::Value(value),
            });
        } else {
            self.add_control(link, action, event.start);
        }
        if let Some(end) = event.end {
            self.add_control(link, back, end);
        }
    }

    fn add_control(&mut self, link: usize, action: LinkAction, t: u64) {
        self.network.controls.push(Control {
            link,
            action,
            condition: ControlCondition::AtTime(t),
            enabled: true,
        });
    }

    /// What a valve returns to after an event: its fixed status from `[STATUS]` if it had
    /// one, else active with its setting.
    fn valve_resting_action(&self, valve: usize) -> LinkAction {
        let link = &self.network.links[valve];
        match (link.initial_status, &link.kind) {
            (Some(StatusSpec::Open), _) => LinkAction::Open,
            (Some(StatusSpec::Closed), _) => LinkAction::Closed,
            (Some(StatusSpec::Value(v)), _) => LinkAction::Setting(v),
            (None, LinkKind::Valve(v)) if v.valve_type == ValveType::Gpv => LinkAction::Open,
            (None, LinkKind::Valve(v)) => LinkAction::Setting(v.setting),
            (None, _) => LinkAction::Open,
        }
    }

    /// Splits pipe `pipe` at `position` with a new junction at the interpolated elevation and
    /// map position; the pipe keeps its first part and a new pipe carries the rest. Controls
    /// and rule actions on the pipe act on both parts. Returns the new junction.
    fn split_pipe(&mut self, pipe: usize, position: f64, index: usize) -> usize {
        let (from, to) = (self.network.links[pipe].from, self.network.links[pipe].to);
        let elevation = node_elevation(&self.network.nodes[from]) * (1.0 - position)
            + node_elevation(&self.network.nodes[to]) * position;
        let coordinates = match (
            self.network.nodes[from].coordinates,
            self.network.nodes[to].coordinates,
        ) {
            (Some(a), Some(b)) => {
                Some((a.0 + (b.0 - a.0) * position, a.1 + (b.1 - a.1) * position))
            }
            _ => None,
        };
        let node = self.insert_junction(&format!("burst{index}"), elevation, coordinates);
        let to = self.network.links[pipe].to;
        let mut rest = self.network.links[pipe].clone();
        rest.id = self.unique_link_id(&format!("burst{index}_p2"));
        rest.from = node;
        rest.vertices.clear();
        let first = &mut self.network.links[pipe];
        first.to = node;
        first.vertices.clear();
        if let (LinkKind::Pipe(first), LinkKind::Pipe(second)) = (&mut first.kind, &mut rest.kind) {
            let length = first.length;
            first.length = length * position;
            second.length = length * (1.0 - position);
        }
        rest.to = to;
        let rest_index = self.network.links.len();
        self.network.links.push(rest);
        self.duplicate_link_actions(pipe, rest_index);
        node
    }

    fn duplicate_link_actions(&mut self, link: usize, copy: usize) {
        let controls: Vec<Control> = self
            .network
            .controls
            .iter()
            .filter(|c| c.link == link)
            .map(|c| Control {
                link: copy,
                ..c.clone()
            })
            .collect();
        self.network.controls.extend(controls);
        for rule in &mut self.network.rules {
            for actions in [&mut rule.then_actions, &mut rule.else_actions] {
                let copies: Vec<RuleAction> = actions
                    .iter()
                    .filter(|a| a.link == link)
                    .map(|a| RuleAction {
                        link: copy,
                        action: a.action,
                    })
                    .collect();
                actions.extend(copies);
            }
        }
    }

    /// Moves `link`'s end at `node` to a new junction next to it, joined to `node` by a short
    /// switch pipe; closing the switch cuts the link off whatever its own controls do.
    /// Returns the switch pipe.
    fn cut_link_at(&mut self, link: usize, node: usize, name: &str) -> usize {
        let diameter = match pipe_diameter(&self.network.links[link]) {
            d if d > 0.0 => d,
            _ => self.largest_diameter_at(node),
        };
        let elevation = node_elevation(&self.network.nodes[node]);
        let coordinates = self.network.nodes[node].coordinates;
        let middle = self.insert_junction(name, elevation, coordinates);
        let node = if node >= middle { node + 1 } else { node };
        let target = &mut self.network.links[link];
        if target.to == node {
            target.to = middle;
        } else {
            target.from = middle;
        }
        let pipe = self.switch_pipe(&format!("{name}_sw"), middle, node, diameter);
        self.network.links.push(pipe);
        self.network.links.len() - 1
    }

    /// Adds an outlet junction `<name>_out` with the event's outflow, joined to `node` by a switch pipe
    /// (orifice, coefficient) or a flow control valve (fixed flow) opened over the event.
    fn add_outlet(
        &mut self,
        name: &str,
        index: usize,
        event: &Event,
        node: usize,
        outflow: Outflow,
        role: OutletRole,
    ) {
        // As wide as the widest pipe at the node: a split pipe's own diameter for a burst.
        let diameter = self.largest_diameter_at(node);
        let prefix = format!("{name}_out");
        let elevation = node_elevation(&self.network.nodes[node]);
        let coordinates = self.network.nodes[node].coordinates;
        let outlet = self.insert_junction(&prefix, elevation, coordinates);
        let node = if node >= outlet { node + 1 } else { node };
        let (coefficient, link, action) = match outflow {
            Outflow::Orifice { area, cd } => {
                let c = orifice_coefficient(&self.network, area, cd);
                let pipe = self.switch_pipe(&format!("{prefix}_sw"), node, outlet, diameter);
                (c, pipe, LinkAction::Open)
            }
            Outflow::Coefficient(c) => {
                let pipe = self.switch_pipe(&format!("{prefix}_sw"), node, outlet, diameter);
                (c, pipe, LinkAction::Open)
            }
            Outflow::Flow(flow) => {
                // The outlet's emitter is wide enough to take the flow at a negligible
                // pressure, so the valve alone sets the flow.
                let valve = Link {
                    id: self.unique_link_id(&format!("{prefix}_fcv")),
                    from: node,
                    to: outlet,
                    kind: LinkKind::Valve(Valve {
                        valve_type: ValveType::Fcv,
                        diameter,
                        setting: flow,
                        curve: None,
                        minor_loss: 0.0,
                    }),
                    vertices: Vec::new(),
                    tag: None,
                    initial_status: Some(StatusSpec::Closed),
                };
                (flow * 1000.0, valve, LinkAction::Setting(flow))
            }
        };
        self.network.nodes[outlet].emitter_coefficient = coefficient;
        self.network.links.push(link);
        let link = self.network.links.len() - 1;
        if event.start == 0 {
            self.network.links[link].initial_status = match action {
                LinkAction::Setting(_) => None,
                _ => Some(StatusSpec::Open),
            };
        } else {
            self.add_control(link, action, event.start);
        }
        if let Some(end) = event.end {
            self.add_control(link, LinkAction::Closed, end);
        }
        self.outlets.push(Outlet {
            node: outlet,
            event: index,
            role,
        });
    }

    /// A 1-length-unit pipe twice as wide as `diameter`, smooth for the headloss formula,
    /// closed until a control opens it: its headloss is negligible when open.
    fn switch_pipe(&self, name: &str, from: usize, to: usize, diameter: f64) -> Link {
        let roughness = match self.network.options.headloss {
            HeadlossFormula::HazenWilliams => 150.0,
            HeadlossFormula::DarcyWeisbach => 0.001,
            HeadlossFormula::ChezyManning => 0.009,
        };
        Link {
            id: self.unique_link_id(name),
            from,
            to,
            kind: LinkKind::Pipe(Pipe {
                length: 1.0,
                diameter: 2.0 * diameter,
                roughness,
                minor_loss: 0.0,
                status: PipeStatus::Open,
                leak_area: 0.0,
                leak_expansion: 0.0,
            }),
            vertices: Vec::new(),
            tag: None,
            initial_status: Some(StatusSpec::Closed),
        }
    }

    /// The widest pipe or valve at `node` (a sensible width for a connection there), else
    /// 12 in / 300 mm.
    fn largest_diameter_at(&self, node: usize) -> f64 {
        let widest = self
            .network
            .links
            .iter()
            .filter(|l| l.from == node || l.to == node)
            .map(pipe_diameter)
            .fold(0.0, f64::max);
        if widest > 0.0 {
            widest
        } else if self.network.options.flow_units.is_us() {
            12.0
        } else {
            300.0
        }
    }

    /// Inserts a junction after the last junction (the model keeps junctions first) and
    /// renumbers every reference to the nodes after it.
    fn insert_junction(
        &mut self,
        name: &str,
        elevation: f64,
        coordinates: Option<(f64, f64)>,
    ) -> usize {
        let at = self.network.junction_count();
        let shift = |i: &mut usize| {
            if *i >= at {
                *i += 1;
            }
        };
        for link in &mut self.network.links {
            shift(&mut link.from);
            shift(&mut link.to);
        }
        for control in &mut self.network.controls {
            if let ControlCondition::NodeAbove { node, .. }
            | ControlCondition::NodeBelow { node, .. } = &mut control.condition
            {
                shift(node);
            }
        }
        for rule in &mut self.network.rules {
            for Premise { object, .. } in &mut rule.premises {
                if let RuleObject::Node(node) = object {
                    shift(node);
                }
            }
        }
        self.original_nodes.iter_mut().for_each(shift);
        self.outlets.iter_mut().for_each(|o| shift(&mut o.node));
        let id = self.unique_node_id(name);
        self.network.nodes.insert(
            at,
            Node {
                id,
                kind: NodeKind::Junction(Junction {
                    elevation,
                    demands: Vec::new(),
                }),
                coordinates,
                tag: None,
                emitter_coefficient: 0.0,
            },
        );
        at
    }

    fn change_reservoir_head(&mut self, reservoir: usize, head: f64, event: &Event) {
        let NodeKind::Reservoir(res) = &self.network.nodes[reservoir].kind else {
            return;
        };
        let (base_head, old_pattern) = (res.head, res.pattern);
        let times = &self.network.times;
        let step = times.pattern_step.max(1);
        let periods = (self.network.times.duration + times.pattern_start) / step + 1;
        let ratio = head / base_head;
        let multipliers = (0..periods)
            .map(|k| {
                let old = old_pattern
                    .map(|p| &self.network.patterns[p].multipliers)
                    .filter(|m| !m.is_empty())
                    .map_or(1.0, |m| m[k as usize % m.len()]);
                let period_start = (k * step).saturating_sub(times.pattern_start);
                let inside =
                    period_start >= event.start && event.end.is_none_or(|end| period_start < end);
                if inside {
                    old * ratio
                } else {
                    old
                }
            })
            .collect();
        let id = self.unique_pattern_id(&format!("head_{}", self.network.nodes[reservoir].id));
        self.network.patterns.push(Pattern { id, multipliers });
        let pattern = self.network.patterns.len() - 1;
        if let NodeKind::Reservoir(res) = &mut self.network.nodes[reservoir].kind {
            res.pattern = Some(pattern);
        }
    }

    fn unique_node_id(&self, base: &str) -> String {
        unique(base, |id| self.network.node_index(id).is_some())
    }

    fn unique_link_id(&self, base: &str) -> String {
        unique(base, |id| self.network.link_index(id).is_some())
    }

    fn unique_pattern_id(&self, base: &str) -> String {
        unique(base, |id| {
            self.network
                .patterns
                .iter()
                .any(|p| p.id.eq_ignore_ascii_case(id))
        })
    }
}

/// `base`, or `base` with a number added, whichever is not taken yet.
fn unique(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut id = base.to_string();
    let mut n = 1;
    while taken(&id) {
        n += 1;
        id = format!("{base}_{n}");
    }
    id
}

/// A node's elevation: a junction's or tank's bottom, a reservoir's head.
pub fn node_elevation(node: &Node) -> f64 {
    match &node.kind {
        NodeKind::Junction(j) => j.elevation,
        NodeKind::Reservoir(r) => r.head,
        NodeKind::Tank(t) => t.elevation,
    }
}

/// A pipe's or valve's diameter; 0 for pumps.
fn pipe_diameter(link: &Link) -> f64 {
    match &link.kind {
        LinkKind::Pipe(p) => p.diameter,
        LinkKind::Valve(v) => v.diameter,
        LinkKind::Pump(_) => 0.0,
    }
}
