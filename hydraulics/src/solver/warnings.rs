//! The warnings EPANET writes after a hydraulic period (`writehydwarn` and `disconnected` in
//! its `report.c`), worded as EPANET words them with the clock time left out, and counted over
//! the run.

use super::data::{HydNetwork, HydState, LinkType, SolveOutcome, Status};
use super::SimWarning;
use std::collections::HashMap;

/// At most this many disconnected nodes are named one by one in a period.
const MAX_NAMED_DISCONNECTED: usize = 10;

/// Warnings of a run, each counted once per period it occurs in.
#[derive(Debug, Default)]
pub(crate) struct WarningLog {
    warnings: Vec<SimWarning>,
    position: HashMap<String, usize>,
}

impl WarningLog {
    /// Counts `message` as occurring at `t` seconds.
    pub(crate) fn record(&mut self, message: String, t: u64) {
        match self.position.get(&message) {
            Some(&index) => self.warnings[index].count += 1,
            None => {
                self.position.insert(message.clone(), self.warnings.len());
                self.warnings.push(SimWarning {
                    message,
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

fn valve_keyword(link_type: LinkType) -> &'static str {
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

/// Finds the warning conditions of a solved period, as EPANET checks them.
///
/// Keeps the network's adjacency lists (in EPANET's order, which decides which closed link a
/// disconnection is blamed on) and the work arrays of the connectivity search between periods.
pub(crate) struct WarningChecker {
    /// For each node, (link, node at its other end), most recently added link first.
    adjacency: Vec<Vec<(usize, usize)>>,
    /// 0 unreached, 1 reached from a source, 2 visited while looking for the closed link.
    marks: Vec<u8>,
    queue: Vec<usize>,
}

impl WarningChecker {
    pub(crate) fn new(network: &HydNetwork) -> Self {
        let mut adjacency = vec![Vec::new(); network.nodes.len()];
        for (index, link) in network.links.iter().enumerate() {
            adjacency[link.from].push((index, link.to));
            adjacency[link.to].push((index, link.from));
        }
        for neighbours in &mut adjacency {
            neighbours.reverse();
        }
        Self {
            adjacency,
            marks: vec![0; network.nodes.len()],
            queue: Vec::with_capacity(network.nodes.len()),
        }
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
        let mut warn = |message: String, log: &mut WarningLog| {
            any = true;
            log.record(message, t);
        };
        if too_many_trials && outcome.relative_error <= options.accuracy {
            warn(
                "WARNING: Maximum trials exceeded . System may be unstable.".to_string(),
                log,
            );
        }
        if options.demand_model == crate::model::DemandModel::Dda {
            let negative = (0..network.junctions).any(|node| {
                state.head[node] < network.nodes[node].elevation
                    && junction_outflow(state, node) > 0.0
            });
            if negative {
                warn("WARNING: Negative pressures .".to_string(), log);
            }
        }
        for &link in &network.valves {
            let status = state.status[link];
            if status >= Status::XFcv {
                let message = format!(
                    "WARNING: {} {} {} .",
                    valve_keyword(network.links[link].link_type),
                    network.links[link].id,
                    status_words(status)
                );
                warn(message, log);
            }
        }
        for pump in &network.pumps {
            let link = pump.link;
            let mut status = state.status[link];
            if status >= Status::Open {
                if state.flow[link] > state.setting[link] * pump.qmax {
                    status = Status::XFlow;
                }
                if state.flow[link] < 0.0 {
                    status = Status::XHead;
                }
            }
            if matches!(status, Status::XHead | Status::XFlow) {
                let message = format!(
                    "WARNING: Pump {} {} .",
                    network.links[link].id,
                    status_words(status)
                );
                warn(message, log);
            }
        }
        if too_many_trials && outcome.relative_error > options.accuracy {
            let halted = if halting { " Simulation halted." } else { "" };
            warn(format!("WARNING: System unbalanced .{halted}"), log);
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
        self.mark_reachable(network, state);

        let mut count = 0;
        let mut last_unreached = None;
        for node in 0..network.junctions {
            if self.marks[node] == 0 && junction_outflow(state, node) != 0.0 {
                count += 1;
                if count <= MAX_NAMED_DISCONNECTED {
                    let id = &network.nodes[node].id;
                    log.record(format!("WARNING: Node {id} disconnected"), t);
                }
                last_unreached = Some(node);
            }
        }
        if count > MAX_NAMED_DISCONNECTED {
            let more = count - MAX_NAMED_DISCONNECTED;
            log.record(format!("WARNING: {more} additional nodes disconnected"), t);
        }
        if let Some(node) = last_unreached {
            self.report_closed_links(network, node, t, log);
        }
    }

    /// Marks every node reached from the queued sources through links that are not closed,
    /// entering check valves, PRVs and PSVs only at their upstream end.
    fn mark_reachable(&mut self, network: &HydNetwork, state: &HydState) {
        let mut next = 0;
        while next < self.queue.len() {
            let node = self.queue[next];
            next += 1;
            for &(link, other) in &self.adjacency[node] {
                if self.marks[other] != 0 {
                    continue;
                }
                let one_way = matches!(
                    network.links[link].link_type,
                    LinkType::CvPipe | LinkType::Prv | LinkType::Psv
                );
                if one_way && other == network.links[link].from {
                    continue;
                }
                if !state.status[link].is_closed() {
                    self.marks[other] = 1;
                    self.queue.push(other);
                }
            }
        }
    }

    /// Walks depth first from the unreached node `start` through unreached nodes and names
    /// each link found leading to a reached node, as EPANET's recursive `getclosedlink` does
    /// (a found link ends only the branch it was found in).
    fn report_closed_links(
        &mut self,
        network: &HydNetwork,
        start: usize,
        t: u64,
        log: &mut WarningLog,
    ) {
        // Each frame is a node and the position of the next neighbour to look at.
        let mut stack = vec![(start, 0usize)];
        self.marks[start] = 2;
        while let Some(frame) = stack.last_mut() {
            let (node, position) = *frame;
            let Some(&(link, other)) = self.adjacency[node].get(position) else {
                stack.pop();
                continue;
            };
            frame.1 += 1;
            match self.marks[other] {
                2 => {}
                1 => {
                    let id = &network.links[link].id;
                    log.record(
                        format!("WARNING: System disconnected because of Link {id}"),
                        t,
                    );
                    stack.pop();
                }
                _ => {
                    self.marks[other] = 2;
                    stack.push((other, 0));
                }
            }
        }
    }
}

/// What leaves a junction in the period just solved: consumer demand delivered, emitter and
/// leakage flow (EPANET's `NodeDemand` after a solve), cfs.
pub(crate) fn junction_outflow(state: &HydState, node: usize) -> f64 {
    state.demand_flow[node] + state.emitter_flow[node] + state.leakage_flow[node]
}
