//! The network's `[CONTROLS]` evaluated on the measured state, for the link states the sensors
//! do not give, and the recent tank levels that tell a tank turned round at its control level
//! between two readings.

use std::collections::{HashMap, VecDeque};

use hydraulics::model::{ControlCondition, LinkAction, LinkKind, Network, NodeKind};
use hydraulics::solver::{BoundaryConditions, LinkState};

use super::{NetworkTwin, Target};
use crate::reading::SensorKind;

/// Periods of tank levels kept to tell how fast a tank moved before it turned round: the
/// last hour of 5-minute readings, and the period before it.
const TURN_WINDOW: usize = 13;

/// The heads of the tanks that level controls watch, over the last [`TURN_WINDOW`] solved
/// periods, oldest first.
#[derive(Debug, Clone)]
pub(super) struct TankTrail {
    /// Node index of each watched tank.
    tanks: Vec<usize>,
    /// Per period, the head of each watched tank (aligned with `tanks`).
    periods: VecDeque<Vec<f64>>,
}

impl TankTrail {
    /// The trail of the tanks named in `network`'s level controls.
    pub(super) fn new(network: &Network) -> Self {
        let mut tanks: Vec<usize> = network
            .controls
            .iter()
            .filter_map(|control| match control.condition {
                ControlCondition::NodeAbove { node, .. }
                | ControlCondition::NodeBelow { node, .. } => {
                    matches!(network.nodes[node].kind, NodeKind::Tank(_)).then_some(node)
                }
                _ => None,
            })
            .collect();
        tanks.sort_unstable();
        tanks.dedup();
        Self {
            tanks,
            periods: VecDeque::with_capacity(TURN_WINDOW + 1),
        }
    }

    /// Keeps the watched tanks' heads of a solved period (`head`: every node's).
    pub(super) fn record(&mut self, head: &[f64]) {
        if self.tanks.is_empty() {
            return;
        }
        if self.periods.len() == TURN_WINDOW {
            self.periods.pop_front();
        }
        self.periods
            .push_back(self.tanks.iter().map(|&tank| head[tank]).collect());
    }

    /// The kept heads of tank `node`, oldest first (none when no control watches it).
    fn heads(&self, node: usize) -> impl Iterator<Item = f64> + '_ {
        let column = self.tanks.iter().position(|&tank| tank == node);
        self.periods
            .iter()
            .filter_map(move |period| column.map(|c| period[c]))
    }
}

impl NetworkTwin {
    /// Adds the link states and settings that the network's `[CONTROLS]` set for this period:
    /// time controls that fell due since the previous period, and level or pressure controls
    /// whose condition holds on the measured tank levels (else the previous period's state).
    pub(super) fn apply_controls(
        &self,
        now: u64,
        latest: &HashMap<String, f64>,
        conditions: &mut BoundaryConditions,
    ) {
        let network = &self.network;
        let clocktime = |t: u64| (t + network.times.start_clocktime) % 86_400;
        let due = |at: u64| match self.last_sim_seconds {
            Some(previous) => previous < at && at <= now,
            None => at <= now,
        };
        let mut fired: Vec<(u64, usize, LinkAction)> = Vec::new();
        for control in network.controls.iter().filter(|c| c.enabled) {
            let order = match control.condition {
                ControlCondition::AtTime(at) if due(at) => at,
                ControlCondition::AtClockTime(at) => {
                    let (start, end) = (self.last_sim_seconds.unwrap_or(now), now);
                    let crossed = end.saturating_sub(start) >= 86_400
                        || (clocktime(start) < at && at <= clocktime(end))
                        || (clocktime(start) > clocktime(end)
                            && (at > clocktime(start) || at <= clocktime(end)));
                    if !crossed {
                        continue;
                    }
                    now
                }
                ControlCondition::NodeAbove { node, value } => {
                    if self
                        .node_value(node, latest)
                        .is_some_and(|v| self.crossed(node, v, value, 1.0))
                    {
                        u64::MAX
                    } else {
                        continue;
                    }
                }
                ControlCondition::NodeBelow { node, value } => {
                    if self
                        .node_value(node, latest)
                        .is_some_and(|v| self.crossed(node, v, value, -1.0))
                    {
                        u64::MAX
                    } else {
                        continue;
                    }
                }
                ControlCondition::AtTime(_) => continue,
            };
            fired.push((order, control.link, control.action));
        }
        fired.sort_by_key(|f| f.0);
        for (_, link, action) in fired {
            let id = network.links[link].id.clone();
            let is_pump = matches!(network.links[link].kind, LinkKind::Pump(_));
            match action {
                LinkAction::Open | LinkAction::Active => {
                    conditions.link_states.push((id, LinkState::Open));
                }
                LinkAction::Closed => conditions.link_states.push((id, LinkState::Closed)),
                LinkAction::Setting(v) if is_pump && v <= 0.0 => {
                    conditions.link_states.push((id, LinkState::Closed));
                }
                LinkAction::Setting(v) => {
                    if is_pump {
                        conditions.link_states.push((id.clone(), LinkState::Open));
                    }
                    if !matches!(network.links[link].kind, LinkKind::Pipe(_)) {
                        conditions.link_settings.push((id, v));
                    }
                }
            }
        }
    }

    /// Whether `value` (of `node`, see [`NetworkTwin::node_value`]) crossed the control level
    /// `threshold` upwards (`direction` 1) or downwards (-1). A tank whose control switches a
    /// pump at a level turns round there, between two readings, so its sampled level may
    /// never pass the threshold; it counts as crossed once it fell back from a peak that lay
    /// within one period's move of the threshold, the move measured over the recent readings
    /// (one period's move alone is noise near the turn, where the tank slows). Without this
    /// the twin keeps a pump in the wrong state for hours.
    fn crossed(&self, node: usize, value: f64, threshold: f64, direction: f64) -> bool {
        if direction * (value - threshold) > 0.0 {
            return true;
        }
        let NodeKind::Tank(tank) = &self.network.nodes[node].kind else {
            return false;
        };
        let levels: Vec<f64> = self
            .tank_trail
            .heads(node)
            .map(|head| direction * (head - tank.elevation))
            .filter(|level| level.is_finite())
            .collect();
        let Some((peak_index, &peak)) = levels.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
        else {
            return false;
        };
        if peak_index == 0 {
            return false;
        }
        let move_per_period = (peak - levels[0]) / peak_index as f64;
        move_per_period > 0.0
            && direction * value < peak
            && peak + move_per_period > direction * threshold
    }

    /// What a control on `node` compares: a tank's level (measured this period when a level
    /// sensor has it, else the previous period's), a junction's pressure or a reservoir's
    /// head from the previous period.
    fn node_value(&self, node: usize, latest: &HashMap<String, f64>) -> Option<f64> {
        let network = &self.network;
        match &network.nodes[node].kind {
            NodeKind::Tank(tank) => {
                let measured = self.sensors.iter().zip(&self.targets).find_map(|(s, t)| {
                    (s.kind == SensorKind::Level && *t == Target::Node(node))
                        .then(|| latest.get(&s.id).copied())
                        .flatten()
                });
                Some(measured.unwrap_or(self.last_head[node] - tank.elevation))
            }
            NodeKind::Junction(junction) => Some(
                (self.last_head[node] - junction.elevation) * self.units.factors.pressure
                    / self.units.factors.head,
            ),
            NodeKind::Reservoir(_) => Some(self.last_head[node]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::live::{NetworkTwin, TwinClock};
    use crate::reading::{Sensor, SensorKind, Unit};

    const NET3: &str = include_str!("../../../hydraulics/networks/Net3.inp");

    /// Net3's pump 335 runs while tank 1 fills and stops at 19.1 ft; the status of the pump in
    /// the twin's state after feeding it tank 1 levels one period apart.
    fn pump_status_after(levels: &[f64]) -> Vec<u8> {
        let network = hydraulics::read_str(NET3, "Net3.inp").unwrap();
        let pump = network.link_index("335").unwrap();
        let sensors = vec![Sensor::new("tank-1", SensorKind::Level, "1", Unit::Foot).unwrap()];
        let mut twin = NetworkTwin::new(network, sensors, TwinClock { origin_ms: 0 }).unwrap();
        levels
            .iter()
            .enumerate()
            .map(|(k, &level)| {
                let latest = HashMap::from([("tank-1".to_string(), level)]);
                let time = i64::try_from(k).unwrap() * 300_000;
                twin.step(time, &latest).unwrap().status[pump]
            })
            .collect()
    }

    #[test]
    fn a_tank_turning_round_just_short_of_its_control_level_switches_the_pump() {
        // Rising by 0.08 ft a period: after 19.08 the tank reaches 19.1 before the next
        // reading, where the control stops the pump and the level falls back.
        let turning = pump_status_after(&[18.76, 18.84, 18.92, 19.0, 19.08, 19.05, 19.0]);
        assert_eq!(turning[..5], [1, 1, 1, 1, 1], "{turning:?}");
        assert_eq!(turning[5..], [0, 0], "{turning:?}");
        // Near the turn the tank slows and the reading noise hides it: 19.04 then 19.05 (one
        // period's move of 0.01 ft), then 18.96. Its rise over the last readings tells that
        // it reached 19.1 in between.
        let noisy = pump_status_after(&[18.41, 18.67, 18.84, 19.04, 19.05, 18.96, 18.88]);
        assert_eq!(noisy[..5], [1, 1, 1, 1, 1], "{noisy:?}");
        assert_eq!(noisy[5..], [0, 0], "{noisy:?}");
        // A level that stops rising well below the control level leaves the pump running.
        let short = pump_status_after(&[18.5, 18.6, 18.7, 18.7, 18.65]);
        assert!(short.iter().all(|&s| s == 1), "{short:?}");
    }
}
