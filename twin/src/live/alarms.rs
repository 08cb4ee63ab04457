//! What becomes of the watch's alarms: each waits until its signature had time to build up,
//! is located, and is located again every hour with the evidence grown until the location is
//! confident or the alarm old enough (then reported whatever the confidence: never dropped
//! for lack of it). An alarm is dropped when the flow balance fell after its onset before it
//! was reported: the rise was a transient the model misses, not a leak.
//! An alarm located near a leak already reported is that leak growing, not a new one.

use hydraulics::model::Network;

use crate::detect::{Alarm, EventKind, LeakWatch, WatchConfig};
use crate::estimate::Sensitivity;
use crate::localize::{Localizer, Location, Method};

/// An alarm located this close (m, pipe distance) to a leak already reported is that leak
/// growing: a growing leak raises the watch again, and its second location scatters by a
/// kilometre or more around the first.
const SAME_LEAK_M: f64 = 2_000.0;

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
        }
        due
    }

    /// Locates the `due` alarms with the period's sensitivities: reports the confident (or
    /// old) ones, files the others again for the next hour.
    pub(super) fn locate_due(
        &mut self,
        due: Vec<PendingAlarm>,
        now: i64,
        config: &WatchConfig,
        area: &Area<'_>,
    ) -> Vec<TwinEvent> {
        let mut events = Vec::new();
        for pending in due {
            let confident_enough = |confidence: f64| {
                confidence >= config.locate_confidence
                    || now - pending.raised_ms >= config.locate_max_wait_ms
            };
            match self.locate(area, &pending.alarm, confident_enough) {
                Located::Report(event) => events.push(event),
                Located::Again => self.pending.push(PendingAlarm {
                    next_try_ms: now + config.relocate_every_ms,
                    ..pending
                }),
                Located::Known => {}
            }
        }
        events
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
            &alarm.sigmas,
            area.consumption,
            alarm.flow,
            Method::LeastSquares,
        );
        let node = location
            .as_ref()
            .and_then(|l| area.network.node_index(&l.node));
        if let Some(node) = node {
            let near = area.localizer.distances(node, SAME_LEAK_M);
            if self.reported.iter().any(|&r| near[r].is_finite()) {
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
}

/// What locating needs of the network and the solved period.
pub(super) struct Area<'a> {
    pub(super) network: &'a Network,
    pub(super) localizer: &'a Localizer,
    /// Sensitivities of the observations to a leak at every junction, this period.
    pub(super) sensitivity: &'a Sensitivity,
    /// Nominal consumption per junction, this period.
    pub(super) consumption: &'a [f64],
}
