//! What becomes of the watch's alarms: each waits until its signature had time to build up,
//! is located, and is located again every hour with the evidence grown until the location is
//! confident, fairly confident and the alarm 12 h old, or the alarm 18 h old (then reported
//! whatever the confidence: never dropped for lack of it). An alarm is dropped when the flow
//! balance fell after its onset before it was reported: the rise was a transient the model
//! misses, not a leak.
//! An alarm that the leaks already reported explain (located at one of them, or its signature
//! fitted about as well by them as by the best new place) is one of them growing, not a new
//! leak.

use hydraulics::model::Network;

use crate::detect::{Alarm, EventKind, LeakWatch, WatchConfig};
use crate::estimate::Sensitivity;
use crate::localize::{explain, Localizer, Location, SAME_PLACE_M};

/// How much better (an F statistic: the misfit removed per degree of freedom left) the best
/// new place must explain an alarm's signature than the leaks already reported do, for the
/// alarm to be a new leak. A growing leak raises the watch again, and its second location
/// can scatter by a kilometre or more around the first; a distance rule (stops 13-20: 2 km)
/// also dropped the real second leaks nearby. On 240 generated leaks, this test located 6
/// more of them with 30 sensors and 2 fewer with 10, with 15 fewer false alarms in all
/// (thresholds 2-16 measured; BENCHMARKS, stop 21).
const NEW_LEAK_EVIDENCE: f64 = 12.0;

/// A detection of the twin's detection stage, located.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinEvent {
    /// `leak` (gradual) or `burst` (abrupt).
    pub kind: EventKind,
    /// When it was detected (Unix ms).
    pub time_ms: i64,
    /// Estimated start (Unix ms).
    pub onset_ms: i64,
    /// Estimated leak outflow (network flow unit): from the flow balance when metered, else
    /// from the localization's fit.
    pub estimated_flow: Option<f64>,
    /// The detector's statistic over its threshold (`>= 1`): how clear the change is.
    pub magnitude: f64,
    /// Confidence in the location (0..1).
    pub confidence: f64,
    /// Where, when the signature could be matched.
    pub location: Option<Location>,
}

/// An alarm waiting for a location it can be reported with.
#[derive(Debug, Clone)]
pub(super) struct PendingAlarm {
    alarm: Alarm,
    /// When it was raised (ms).
    raised_ms: i64,
    /// When to locate it (again) (ms).
    next_try_ms: i64,
}

impl PendingAlarm {
    /// The alarm as it stands.
    pub(super) fn alarm(&self) -> &Alarm {
        &self.alarm
    }
}

/// What locating an alarm came to.
enum Located {
    /// Report it.
    Report(TwinEvent),
    /// Not confident yet: locate it again later, with more evidence.
    Again,
    /// It is a leak already reported nearby that grew.
    Known,
}

/// The alarms raised and not yet reported, and the leaks reported so far.
#[derive(Debug, Clone, Default)]
pub(super) struct AlarmBook {
    /// Nodes of the leaks reported so far.
    reported: Vec<usize>,
    /// Alarms raised and not yet reported (their signature is still building up, or their
    /// location is not confident yet).
    pending: Vec<PendingAlarm>,
}

impl AlarmBook {
    /// Files a new alarm, first located once its signature had time to build up: a gradual
    /// leak's slowly, a burst's within the hour.
    pub(super) fn file(&mut self, alarm: Alarm, config: &WatchConfig) {
        let delay = match alarm.kind {
            EventKind::Leak => config.gradual_report_delay_ms,
            _ => config.burst_report_delay_ms,
        };
        self.pending.push(PendingAlarm {
            raised_ms: alarm.time,
            next_try_ms: alarm.time + delay,
            alarm,
        });
    }

    /// The junctions of the leaks reported so far.
    pub(super) fn reported(&self) -> &[usize] {
        &self.reported
    }

    /// Takes the alarms due to be located at `now`, their signatures brought up to `now`.
    pub(super) fn take_due(&mut self, now: i64, watch: &LeakWatch) -> Vec<PendingAlarm> {
        let (mut due, waiting): (Vec<PendingAlarm>, Vec<PendingAlarm>) =
            std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|p| now >= p.next_try_ms);
        self.pending = waiting;
        // The flow balance fell after the alarm's onset by half its rise or more (the watch's
        // own test of a change down): the rise was a transient the model misses (a pump or
        // tank regime), or the leak is already repaired; either way there is nothing to report.
        due.retain(|p| {
            p.alarm
                .flow
                .is_none_or(|rise| !watch.fell_after(p.alarm.onset, rise))
        });
        for pending in due.iter_mut().filter(|p| p.alarm.time < now) {
            pending.alarm.signature = watch.signature(pending.alarm.onset, now);
            pending.alarm.time = now;
            // What is reported: the shape of the rise by now, which the alarm could not see
            // yet. (The location's schedule stays the alarm's.)
            if let Some(at_once) = watch.came_at_once(pending.alarm.onset, now) {
                pending.alarm.kind = if at_once {
                    EventKind::Burst
                } else {
                    EventKind::Leak
                };
            }
        }
        due
    }

    /// Locates a `due` alarm (its signature's sensitivities in `area`): returns it when
    /// confident (or old), else files it again for the next hour.
    pub(super) fn locate_due(
        &mut self,
        due: PendingAlarm,
        now: i64,
        config: &WatchConfig,
        area: &Area<'_>,
    ) -> Option<TwinEvent> {
        let confident_enough = |confidence: f64| {
            let age = now - due.raised_ms;
            confidence >= config.locate_confidence
                || (age >= config.locate_max_wait_ms && confidence >= config.late_confidence)
                || age >= config.locate_last_wait_ms
        };
        match self.locate(area, &due.alarm, confident_enough) {
            Located::Report(event) => Some(event),
            Located::Again => {
                self.pending.push(PendingAlarm {
                    next_try_ms: now + config.relocate_every_ms,
                    ..due
                });
                None
            }
            Located::Known => None,
        }
    }

    /// Locates an alarm: reported when `confident_enough` accepts the location's confidence,
    /// dropped when it is a leak already reported nearby that grew.
    fn locate(
        &mut self,
        area: &Area<'_>,
        alarm: &Alarm,
        confident_enough: impl Fn(f64) -> bool,
    ) -> Located {
        let location = area.localizer.locate(
            area.sensitivity,
            &alarm.signature,
            &alarm.noise,
            area.consumption,
            alarm.flow,
            &self.reported,
        );
        let node = location
            .as_ref()
            .and_then(|l| area.network.node_index(&l.node));
        if let (Some(location), Some(node)) = (&location, node) {
            if self.explained_by_reported(area, alarm, location, node) {
                return Located::Known;
            }
        }
        let confidence = location.as_ref().map_or(0.0, |l| l.confidence);
        if !confident_enough(confidence) {
            return Located::Again;
        }
        self.reported.extend(node);
        Located::Report(TwinEvent {
            kind: alarm.kind,
            time_ms: alarm.time,
            onset_ms: alarm.onset,
            estimated_flow: alarm
                .flow
                .or_else(|| location.as_ref().map(|l| l.estimated_flow)),
            magnitude: alarm.strength,
            confidence,
            location,
        })
    }

    /// Whether the leaks already reported explain the alarm located at `location` (junction
    /// `node`): it is placed within [`SAME_PLACE_M`] of one of them, or they fit its signature
    /// nearly as well as the location does (see [`NEW_LEAK_EVIDENCE`]).
    fn explained_by_reported(
        &self,
        area: &Area<'_>,
        alarm: &Alarm,
        location: &Location,
        node: usize,
    ) -> bool {
        if self.reported.is_empty() {
            return false;
        }
        let near = area.localizer.distances(node, SAME_PLACE_M);
        if self.reported.iter().any(|&r| near[r].is_finite()) {
            return true;
        }
        let Some(reported) = explain(
            area.sensitivity,
            &alarm.signature,
            &alarm.noise,
            area.consumption,
            &self.reported,
        ) else {
            return false;
        };
        // Degrees of freedom left by the reported leaks' explanation: one multiplier and a
        // flow per leak, plus the new leak's flow.
        let freedom = reported
            .observations_used
            .saturating_sub(self.reported.len() + 2)
            .max(1) as f64;
        let evidence =
            (reported.cost - location.misfit) / (location.misfit / freedom).max(f64::MIN_POSITIVE);
        evidence < NEW_LEAK_EVIDENCE
    }
}

/// What locating needs of the network and the solved period.
pub(super) struct Area<'a> {
    pub(super) network: &'a Network,
    pub(super) localizer: &'a Localizer,
    /// Sensitivities of the observations to a leak at every junction, over the hours of the
    /// alarm's signature.
    pub(super) sensitivity: &'a Sensitivity,
    /// Nominal consumption per junction, this period.
    pub(super) consumption: &'a [f64],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{nominal_demands, Observation};
    use crate::reading::NetworkUnits;
    use crate::testutil::{every_third_pressure, net3, pressure_alarm, steady};

    /// `network` with constant outflows `leaks` (node id, flow) added.
    fn with_leaks(network: &Network, leaks: &[(&str, f64)]) -> Network {
        let mut leaky = network.clone();
        for &(node, flow) in leaks {
            let index = network.node_index(node).expect("leak node exists");
            assert!(leaky.add_constant_outflow(index, flow));
        }
        leaky
    }

    /// The alarm the twin would raise when the network with `before` leaks comes to have
    /// `after` leaks: the pressures' change against a model that spreads the added outflow over
    /// every consumer (the demand multiplier follows the inflow).
    fn alarm(network: &Network, observations: &[Observation], after: &[(&str, f64)]) -> Alarm {
        let before = [("243", 100.0)];
        let added: f64 = after.iter().chain(&before).map(|l| l.1).sum::<f64>() - 2.0 * 100.0;
        let total: f64 =
            nominal_demands(network, 0).iter().sum::<f64>() * network.options.demand_multiplier;
        let mut model = with_leaks(network, &before);
        model.options.demand_multiplier *= (total + added) / total;
        let (solved, modelled) = (steady(&with_leaks(network, after)), steady(&model));
        pressure_alarm(observations, &solved, &modelled)
    }

    /// Net3 with a leak of 100 gpm at 243, observed at every third junction: the
    /// observations, their sensitivities there, and the localizer.
    fn around_a_leak_at_243() -> (Network, Vec<Observation>, Sensitivity, Localizer) {
        let network = net3();
        let units = NetworkUnits::new(&network.options);
        let observations = every_third_pressure(&network);
        let (_, sensitivity) =
            crate::testutil::linearized(&with_leaks(&network, &[("243", 100.0)]), &observations);
        let localizer = Localizer::new(&network, &units);
        (network, observations, sensitivity, localizer)
    }

    #[test]
    fn a_reported_leak_that_grew_is_known_and_a_new_one_a_kilometre_away_is_not() {
        let (network, observations, sensitivity, localizer) = around_a_leak_at_243();
        let area = Area {
            network: &network,
            localizer: &localizer,
            sensitivity: &sensitivity,
            consumption: &nominal_demands(&network, 0),
        };
        let reported = network.node_index("243").expect("243 exists");
        let book = AlarmBook {
            reported: vec![reported],
            pending: Vec::new(),
        };
        let place = |alarm: &Alarm| {
            let location = localizer
                .locate(
                    &sensitivity,
                    &alarm.signature,
                    &alarm.noise,
                    area.consumption,
                    None,
                    &[],
                )
                .expect("located");
            let node = network.node_index(&location.node).expect("a node");
            (location, node)
        };
        let grew = alarm(&network, &observations, &[("243", 160.0)]);
        let (location, node) = place(&grew);
        assert!(book.explained_by_reported(&area, &grew, &location, node));
        // 229 lies about 1.1 km from 243: the old 2 km rule dropped such leaks.
        let new_leak = [("243", 120.0), ("229", 250.0)];
        let second = alarm(&network, &observations, &new_leak);
        let (location, node) = place(&second);
        let true_node = network.node_index("229").expect("229 exists");
        let distance = localizer.distances(true_node, f64::INFINITY)[reported];
        assert!((800.0..2_000.0).contains(&distance), "{distance}");
        let from_true = localizer.distances(true_node, f64::INFINITY)[node];
        assert!(from_true < 700.0, "{} at {from_true} m", location.node);
        assert!(!book.explained_by_reported(&area, &second, &location, node));
    }

    #[test]
    fn a_new_leak_is_placed_with_the_growth_of_a_known_one_fitted_beside_it() {
        let (network, observations, sensitivity, localizer) = around_a_leak_at_243();
        let consumption = nominal_demands(&network, 0);
        let known = network.node_index("243").expect("243 exists");
        let from_known = localizer.distances(known, f64::INFINITY);
        let (mut alone, mut beside, mut tried) = (0, 0, 0);
        // New leaks of 300 gpm more than 1.5 km away while the known one grew by as much.
        for new in (0..network.junction_count())
            .step_by(3)
            .filter(|&j| from_known[j] > 1_500.0)
        {
            let id = network.nodes[new].id.as_str();
            let alarm = alarm(&network, &observations, &[("243", 400.0), (id, 300.0)]);
            let near_new = localizer.distances(new, SAME_PLACE_M);
            let placed = |known_leaks: &[usize]| {
                let location = localizer
                    .locate(
                        &sensitivity,
                        &alarm.signature,
                        &alarm.noise,
                        &consumption,
                        None,
                        known_leaks,
                    )
                    .expect("located");
                let node = network.node_index(&location.node).expect("a node");
                usize::from(near_new[node].is_finite())
            };
            alone += placed(&[]);
            beside += placed(&[known]);
            tried += 1;
        }
        // 28 new leaks (linear sensitivities, no noise): 9 placed within 300 m with the known
        // leak fitted beside, 5 without.
        assert!(
            beside >= alone + 3,
            "{beside} with, {alone} without, of {tried}"
        );
    }
}
