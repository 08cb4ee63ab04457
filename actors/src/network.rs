//! `NetworkActor`: one per municipality's network. Owns the `twin::live::NetworkTwin`, keeps
//! the latest accepted value of every sensor, and every hydraulic period solves the network
//! (boundary conditions from the measurements), stores the estimated state, keeps the latest
//! in memory for queries, sends every `PipeActor` its share and publishes the state to
//! subscribers.
//!
//! Detection plugs in here: the detectors' events of a period become alerts for the
//! `AlertManager` (see [`crate::alerts`]).
//!
//! A solve error is logged and counted; the actor goes on with the next period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use twin::detect::EventKind;
use twin::live::{NetworkTwin, PeriodState, TwinEvent};
use twin::store::tuple::Element;
use twin::{Durability, Reading};

use crate::alerts::AlertMsg;
use crate::messages::{AlertInput, AlertKind, AlertLocation, EncodedState, Severity};
use crate::municipality::MunicipalityContext;
use crate::pipe::PipeMsg;
use crate::runtime::now_ms;

/// Record family of estimated states under a tenant.
pub(crate) const STATE: &str = "state";

/// Readings looked at, per sensor, for its latest usable value on (re)start.
const RELOAD_READINGS: usize = 16;

/// Messages of a [`NetworkActor`].
#[derive(Debug)]
pub enum NetworkMsg {
    /// The latest accepted value of sensor `sensor` (its index in the municipality's list), in
    /// the network's units.
    Measured {
        /// Sensor index.
        sensor: usize,
        /// Unix ms of the reading.
        timestamp: i64,
        /// Value in the network's units.
        value: f64,
    },
    /// Solve the period now (sent by the actor's own timer).
    Tick,
    /// The latest estimated state.
    Latest(RpcReplyPort<Option<Arc<PeriodState>>>),
    /// Chaos testing only: makes the actor panic. No network API sends it.
    InjectPanic,
}

/// The actor of one network.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkActor;

/// What a [`NetworkActor`] starts with.
#[derive(Debug)]
pub struct NetworkArgs {
    pub(crate) context: Arc<MunicipalityContext>,
    /// The latest stored state, read once by the municipality.
    pub(crate) last_state: Option<Arc<PeriodState>>,
}

/// The state of a [`NetworkActor`].
#[derive(Debug)]
pub struct NetworkState {
    context: Arc<MunicipalityContext>,
    /// Taken while a period is being solved on a blocking thread.
    twin: Option<NetworkTwin>,
    latest: HashMap<String, f64>,
    latest_ts: Vec<Option<i64>>,
    state: Option<Arc<PeriodState>>,
}

/// The alert of a detection event: located at its pipe when known, else at its node.
fn alert_of(event: &TwinEvent) -> AlertInput {
    let (kind, severity) = match event.kind {
        EventKind::Leak => (AlertKind::Leak, Severity::Warning),
        EventKind::Burst => (AlertKind::Burst, Severity::Critical),
        EventKind::SensorFault => (AlertKind::SensorFault, Severity::Warning),
        EventKind::Transient => (AlertKind::Transient, Severity::Info),
    };
    let location = match &event.location {
        Some(place) => match &place.link {
            Some(link) => AlertLocation::Link(link.clone()),
            None => AlertLocation::Node(place.node.clone()),
        },
        None => AlertLocation::Network,
    };
    let confidence = event
        .location
        .as_ref()
        .map_or(0.0, |place| place.confidence);
    AlertInput {
        kind,
        severity,
        location,
        estimated_flow: event.estimated_flow,
        time_ms: event.time_ms,
        message: format!(
            "{kind:?} detected (statistic {:.1}x its threshold, location confidence {:.0} %)",
            event.magnitude,
            confidence * 100.0
        ),
    }
}

/// The key of the state of `timestamp_ms`.
pub(crate) fn state_key(context: &MunicipalityContext, timestamp_ms: i64) -> Vec<u8> {
    context
        .tenant
        .key(&[Element::from(STATE), Element::Int(timestamp_ms)])
}

impl Actor for NetworkActor {
    type Msg = NetworkMsg;
    type State = NetworkState;
    type Arguments = NetworkArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<NetworkMsg>,
        args: NetworkArgs,
    ) -> Result<NetworkState, ActorProcessingErr> {
        let NetworkArgs {
            context,
            last_state,
        } = args;
        let mut twin = NetworkTwin::new(
            context.network.clone(),
            context.sensors.clone(),
            context.clock,
        )?;
        if let Some(detection) = &context.detection {
            // A restarted actor trains its detectors again from the periods that follow.
            twin = twin.with_detection(detection.clone());
        }
        let mut latest = HashMap::new();
        let mut latest_ts = vec![None; context.sensors.len()];
        for (index, sensor) in context.sensors.iter().enumerate() {
            let recent =
                context
                    .journal
                    .latest(context.tenant.tenant(), &sensor.id, RELOAD_READINGS)?;
            let Some(point) = recent.iter().rev().find(|p| p.flags.is_usable()) else {
                continue;
            };
            // Stored values are in the sensor's unit: the reading without a unit of its own.
            let reading = Reading::new(sensor.id.clone(), point.timestamp, point.value);
            if let Ok(value) = sensor.to_network(&reading, &context.units) {
                latest.insert(sensor.id.clone(), value);
                latest_ts[index] = Some(point.timestamp);
            }
        }
        Ok(NetworkState {
            context,
            twin: Some(twin),
            latest,
            latest_ts,
            state: last_state,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<NetworkMsg>,
        state: &mut NetworkState,
    ) -> Result<(), ActorProcessingErr> {
        // The timer ends with the actor (its sends fail once the mailbox is gone).
        myself.send_interval(state.context.period, || NetworkMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<NetworkMsg>,
        message: NetworkMsg,
        state: &mut NetworkState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NetworkMsg::Measured {
                sensor,
                timestamp,
                value,
            } => state.measured(sensor, timestamp, value),
            NetworkMsg::Tick => state.solve_period().await?,
            NetworkMsg::Latest(reply) => {
                let _ = reply.send(state.state.clone());
            }
            NetworkMsg::InjectPanic => panic!("chaos: injected panic in a network actor"),
        }
        Ok(())
    }
}

impl NetworkState {
    fn measured(&mut self, sensor: usize, timestamp: i64, value: f64) {
        let (Some(slot), Some(spec)) = (
            self.latest_ts.get_mut(sensor),
            self.context.sensors.get(sensor),
        ) else {
            return;
        };
        if slot.is_some_and(|seen| seen > timestamp) {
            return;
        }
        *slot = Some(timestamp);
        match self.latest.get_mut(&spec.id) {
            Some(old) => *old = value,
            None => {
                self.latest.insert(spec.id.clone(), value);
            }
        }
    }

    /// Solves one period on a blocking thread (a large network must not stall ingest), stores
    /// and distributes the state. A solve error is logged and counted, not a failure.
    async fn solve_period(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(mut twin) = self.twin.take() else {
            return Ok(());
        };
        let latest = self.latest.clone();
        let context = self.context.clone();
        let (twin, outcome) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let outcome = twin.step(now_ms(), &latest);
            let elapsed = started.elapsed();
            let stored = outcome.as_ref().ok().map(|state| {
                let key = state_key(&context, state.timestamp_ms);
                let mut batch = twin::store::WriteBatch::new();
                batch.put(key, EncodedState::encode(state).0);
                context.journal.store().write(batch, Durability::Buffered)
            });
            (twin, (outcome, elapsed, stored))
        })
        .await?;
        self.twin = Some(twin);
        let (outcome, elapsed, stored) = outcome;
        let metrics = &self.context.metrics;
        metrics.solve_time.observe(elapsed.as_secs_f64());
        let period = match outcome {
            Ok(period) => Arc::new(period),
            Err(err) => {
                metrics
                    .solve_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(municipality = %self.context.id, "period not solved: {err}");
                return Ok(());
            }
        };
        if let Some(Err(err)) = stored {
            tracing::error!(municipality = %self.context.id, "state not stored: {err}");
        }
        self.distribute(&period);
        self.raise_alerts(&period);
        // No subscriber is fine.
        let _ = self.context.states.send(period.clone());
        self.state = Some(period);
        Ok(())
    }

    /// Hands the period's detection events to the alert manager.
    fn raise_alerts(&self, period: &PeriodState) {
        if period.events.is_empty() {
            return;
        }
        let Some(alerts) = self.context.directory.alerts() else {
            tracing::warn!(municipality = %self.context.id, "alerts lost: no alert manager");
            return;
        };
        for event in &period.events {
            let _ = alerts.cast(AlertMsg::Raise(alert_of(event)));
        }
    }

    fn distribute(&self, period: &Arc<PeriodState>) {
        for (index, pipe) in self.context.directory.pipes().into_iter().enumerate() {
            let Some(pipe) = pipe else { continue };
            if let Some(update) = crate::pipe::pipe_state(&self.context, index, period) {
                let _ = pipe.cast(PipeMsg::Update(update));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use twin::localize::Location;

    use super::*;

    fn event(kind: EventKind, location: Option<Location>) -> TwinEvent {
        TwinEvent {
            kind,
            time_ms: 1_000,
            onset_ms: 500,
            estimated_flow: Some(2.5),
            magnitude: 3.0,
            confidence: 0.8,
            location,
        }
    }

    fn place(link: Option<&str>) -> Location {
        Location {
            node: "J7".to_string(),
            link: link.map(str::to_string),
            estimated_flow: 2.5,
            confidence: 0.75,
            candidates: Vec::new(),
            misfit: 0.0,
        }
    }

    #[test]
    fn events_become_alerts_at_their_pipe_node_or_network() {
        let burst = alert_of(&event(EventKind::Burst, Some(place(Some("P3")))));
        assert_eq!(burst.kind, AlertKind::Burst);
        assert_eq!(burst.severity, Severity::Critical);
        assert_eq!(burst.location, AlertLocation::Link("P3".to_string()));
        assert_eq!((burst.estimated_flow, burst.time_ms), (Some(2.5), 1_000));
        assert!(burst.message.contains("75 %"), "{}", burst.message);
        let leak = alert_of(&event(EventKind::Leak, Some(place(None))));
        assert_eq!(
            (leak.kind, leak.severity, leak.location),
            (
                AlertKind::Leak,
                Severity::Warning,
                AlertLocation::Node("J7".to_string())
            )
        );
        let unlocated = alert_of(&event(EventKind::Transient, None));
        assert_eq!(unlocated.location, AlertLocation::Network);
        assert_eq!(unlocated.severity, Severity::Info);
    }
}
