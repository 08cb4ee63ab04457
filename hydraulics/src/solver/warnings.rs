//! The warnings EPANET writes after a hydraulic period (`writehydwarn` and `disconnected` in
//! its `report.c`), worded as EPANET words them with the clock time left out, and counted over
//! the run.

use super::data::{HydLink, HydNetwork, HydPump, HydState, LinkType, SolveOutcome, Status};
use super::SimWarning;
use std::collections::HashMap;

/// At most this many disconnected nodes are named one by one in a period.
const MAX_NAMED_DISCONNECTED: usize = 10;

/// A warning condition, identified without formatting its message (messages are written
/// once, when the condition first occurs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WarningKind {
    /// Too many trials although the system balanced.
    Unstable,
    NegativePressures,
    /// A valve or pump in an abnormal condition (the link and EPANET's words for it).
    LinkCondition(usize, &'static str),
    /// Too many trials and still unbalanced; `true` when that halts the run.
    Unbalanced(bool),
    NodeDisconnected(usize),
    /// More disconnected nodes than are named one by one (how many more).
    MoreDisconnected(usize),
    /// The closed link blamed for a disconnection.
    ClosedLink(usize),
}

impl WarningKind {
    /// The message as EPANET words it, without the clock time.
    fn message(self, network: &HydNetwork) -> String {
        match self {
            Self::Unstable => "WARNING: Maximum trials exceeded . System may be unstable.".into(),
            Self::NegativePressures => "WARNING: Negative pressures .".into(),
            Self::LinkCondition(link, condition) => {
                let link = &network.links[link];
                format!(
                    "WARNING: {} {} {condition} .",
                    link_keyword(link.link_type),
                    link.id
                )
            }
            Self::Unbalanced(halted) => {
                let halted = if halted { " Simulation halted." } else { "" };
                format!("WARNING: System unbalanced .{halted}")
            }
            Self::NodeDisconnected(node) => {
                format!("WARNING: Node {} disconnected", network.nodes[node].id)
            }
            Self::MoreDisconnected(count) => {
                format!("WARNING: {count} additional nodes disconnected")
            }
            Self::ClosedLink(link) => format!(
                "WARNING: System disconnected because of Link {}",
                network.links[link].id
            ),
        }
    }
}

/// Warnings of a run, each counted once per period it occurs in.
#[derive(Debug, Default)]
pub(crate) struct WarningLog {
    warnings: Vec<SimWarning>,
    position: HashMap<WarningKind, usize>,
}

impl WarningLog {
    /// Counts `kind` as occurring at `t` seconds.
    fn record(&mut self, network: &HydNetwork, kind: WarningKind, t: u64) {
        match self.position.get(&kind) {
            Some(&index) => self.warnings[index].count += 1,
            None => {
                self.position.insert(kind, self.warnings.len());
                self.warnings.push(SimWarning {
                    message: kind.message(network),
                    count: 1,
                    first_at: t,
                });
            }
        }
    }

    /// The warnings in the order they first occurred.
    pub(crate) fn into_warnings(self) -> Vec<SimWarning> {
        self.warnings
    }
}

/// The words EPANET uses for a link status in its messages.
fn status_words(status: Status) -> &'static str {
    match status {
        Status::XHead => "closed because cannot deliver head",
        Status::TempClosed => "temporarily closed",
        Status::Closed => "closed",
        Status::Open => "open",
        Status::Active => "active",
        Status::XFlow => "open but exceeds maximum flow",
        Status::XFcv => "open but cannot deliver flow",
        Status::XPressure => "open but cannot deliver pressure",
        Status::Filling => "filling",
        Status::Emptying => "emptying",
        Status::Overflowing => "overflowing",
    }
}

/// EPANET's name of a link type in messages.
fn link_keyword(link_type: LinkType) -> &'static str {
    match link_type {
        LinkType::CvPipe => "CV",
        LinkType::Pipe => "Pipe",
        LinkType::Pump => "Pump",
        LinkType::Prv => "PRV",
        LinkType::Psv => "PSV",
        LinkType::Pbv => "PBV",
        LinkType::Fcv => "FCV",
        LinkType::Tcv => "TCV",
        LinkType::Gpv => "GPV",
        LinkType::Pcv => "PCV",
    }
}

/// A link seen from one of its end nodes.
#[derive(Debug, Clone, Copy)]
struct Neighbour {
    link: usize,
    /// The node at the link's other end.
    node: usize,
    /// The link is a check valve, PRV or PSV whose upstream end is `node`: water cannot reach
    /// `node` through it (worked out once, so the search per period reads no link records).
    enters_upstream_end: bool,
}

/// Finds the warning conditions of a solved period, as EPANET checks them.
///
/// Keeps the network's adjacency lists (in EPANET's order, which decides which closed link a
/// disconnection is blamed on) and the work arrays of the connectivity search between periods.
#[derive(Debug, Clone)]
pub(crate) struct WarningChecker {
    /// Each link's end nodes and whether water enters it only at its `from` end: what the
    /// adjacency lists were made from, to tell whether they fit another network.
    ends: Vec<(usize, usize, bool)>,
    /// For each node, its links, most recently added link first.
    adjacency: Vec<Vec<Neighbour>>,
    /// 0 unreached, 1 reached from a source, 2 visited while looking for the closed link.
    marks: Vec<u8>,
    queue: Vec<usize>,
    /// Depth-first search frames: a node and the position of its next neighbour to look at.
    stack: Vec<(usize, usize)>,
}

impl WarningChecker {
    pub(crate) fn new(network: &HydNetwork) -> Self {
        let mut adjacency = vec![Vec::new(); network.nodes.len()];
        let ends: Vec<_> = network.links.iter().map(Self::ends).collect();
        for (index, &(from, to, one_way)) in ends.iter().enumerate() {
            for (end, other) in [(from, to), (to, from)] {
                adjacency[end].push(Neighbour {
                    link: index,
                    node: other,
                    enters_upstream_end: one_way && other == from,
                });
            }
        }
        for neighbours in &mut adjacency {
            neighbours.reverse();
        }
        Self {
            ends,
            adjacency,
            marks: vec![0; network.nodes.len()],
            queue: Vec::with_capacity(network.nodes.len()),
            stack: Vec::new(),
        }
    }

    fn ends(link: &HydLink) -> (usize, usize, bool) {
        let one_way = matches!(
            link.link_type,
            LinkType::CvPipe | LinkType::Prv | LinkType::Psv
        );
        (link.from, link.to, one_way)
    }

    /// Whether the checker made for one network serves `network` as one made for it would:
    /// the same nodes, and links of the same kinds between the same nodes.
    pub(crate) fn fits(&self, network: &HydNetwork) -> bool {
        self.marks.len() == network.nodes.len()
            && self.ends.len() == network.links.len()
            && (self.ends.iter())
                .zip(&network.links)
                .all(|(&ends, link)| ends == Self::ends(link))
    }

    /// Records the warnings of the period just solved at `state.time`; `halting` says whether
    /// an unbalanced period stops the run.
    pub(crate) fn check(
        &mut self,
        network: &HydNetwork,
        state: &HydState,
        outcome: &SolveOutcome,
        halting: bool,
        log: &mut WarningLog,
    ) {
        let t = state.time.max(0) as u64;
        let options = &network.options;
        let too_many_trials = outcome.iterations > options.max_trials;
        let mut any = false;
        let mut warn = |kind: WarningKind, log: &mut WarningLog| {
            any = true;
            log.record(network, kind, t);
        };
        if too_many_trials && outcome.relative_error <= options.accuracy {
            warn(WarningKind::Unstable, log);
        }
        if options.demand_model == crate::model::DemandModel::Dda {
            let negative = (0..network.junctions).any(|node| {
                state.head[node] < network.nodes[node].elevation
                    && junction_outflow(state, node) > 0.0
            });
            if negative {
                warn(WarningKind::NegativePressures, log);
            }
        }
        for &link in &network.valves {
            let status = state.status[link];
            if status >= Status::XFcv {
                warn(WarningKind::LinkCondition(link, status_words(status)), log);
            }
        }
        for pump in &network.pumps {
            let status = pump_state(state, pump);
            if matches!(status, Status::XHead | Status::XFlow) {
                warn(
                    WarningKind::LinkCondition(pump.link, status_words(status)),
                    log,
                );
            }
        }
        if too_many_trials && outcome.relative_error > options.accuracy {
            warn(WarningKind::Unbalanced(halting), log);
        }
        if any {
            self.report_disconnected(network, state, t, log);
        }
    }

    /// Names the junctions with demand that no source (tank, reservoir or junction with
    /// negative demand) reaches through open links, and a closed link that cuts one of them
    /// off (EPANET's `disconnected`).
    fn report_disconnected(
        &mut self,
        network: &HydNetwork,
        state: &HydState,
        t: u64,
        log: &mut WarningLog,
    ) {
        self.marks.fill(0);
        self.queue.clear();
        for node in network.junctions..network.nodes.len() {
            self.queue.push(node);
            self.marks[node] = 1;
        }
        for node in 0..network.junctions {
            if junction_outflow(state, node) < 0.0 {
                self.queue.push(node);
                self.marks[node] = 1;
            }
        }
        self.mark_reachable(state);

        let mut count = 0;
        // The search for the closed link starts from the last unreached junction, with
        // demand or not (as EPANET 2.3 does).
        let mut last_unreached = None;
        for node in 0..network.junctions {
            if self.marks[node] != 0 {
                continue;
            }
            last_unreached = Some(node);
            if junction_outflow(state, node) != 0.0 {
                count += 1;
                if count <= MAX_NAMED_DISCONNECTED {
                    log.record(network, WarningKind::NodeDisconnected(node), t);
                }
            }
        }
        if count > MAX_NAMED_DISCONNECTED {
            let more = count - MAX_NAMED_DISCONNECTED;
            log.record(network, WarningKind::MoreDisconnected(more), t);
        }
        if let Some(node) = last_unreached.filter(|_| count > 0) {
            self.report_closed_links(network, node, t, log);
        }
    }

    /// Marks every node reached from the queued sources through links that are not closed,
    /// entering check valves, PRVs and PSVs only at their upstream end.
    fn mark_reachable(&mut self, state: &HydState) {
        let mut next = 0;
        while next < self.queue.len() {
            let node = self.queue[next];
            next += 1;
            for neighbour in &self.adjacency[node] {
                let other = neighbour.node;
                if self.marks[other] != 0 || neighbour.enters_upstream_end {
                    continue;
                }
                if !state.status[neighbour.link].is_closed() {
                    self.marks[other] = 1;
                    self.queue.push(other);
                }
            }
        }
    }

    /// Walks depth first from the unreached node `start` through unreached nodes and names
    /// the first link found that leads to a reached node (EPANET's `getclosedlink`).
    fn report_closed_links(
        &mut self,
        network: &HydNetwork,
        start: usize,
        t: u64,
        log: &mut WarningLog,
    ) {
        // An explicit stack, since the path through a large network can be long.
        self.stack.clear();
        self.stack.push((start, 0));
        self.marks[start] = 2;
        while let Some(frame) = self.stack.last_mut() {
            let (node, position) = *frame;
            let Some(&neighbour) = self.adjacency[node].get(position) else {
                self.stack.pop();
                continue;
            };
            frame.1 += 1;
            match self.marks[neighbour.node] {
                2 => {}
                1 => {
                    log.record(network, WarningKind::ClosedLink(neighbour.link), t);
                    return;
                }
                _ => {
                    self.marks[neighbour.node] = 2;
                    self.stack.push((neighbour.node, 0));
                }
            }
        }
    }
}

/// A pump's condition as EPANET reports it (`EN_PUMP_STATE`): an open pump running
/// backwards cannot deliver its head, one beyond its curve's maximum flow (at its speed)
/// exceeds it; otherwise its status.
pub(crate) fn pump_state(state: &HydState, pump: &HydPump) -> Status {
    let link = pump.link;
    let status = state.status[link];
    if status < Status::Open {
        status
    } else if state.flow[link] < 0.0 {
        Status::XHead
    } else if state.flow[link] > state.setting[link] * pump.qmax {
        Status::XFlow
    } else {
        status
    }
}

/// What leaves a junction in the period just solved: consumer demand delivered, emitter and
/// leakage flow (EPANET's `NodeDemand` after a solve), cfs.
pub(crate) fn junction_outflow(state: &HydState, node: usize) -> f64 {
    state.demand_flow[node] + state.emitter_flow[node] + state.leakage_flow[node]
}
