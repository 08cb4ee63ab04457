//! `SensorActor`: one entity per sensor, hosted by a shard (see `crate::shard` for why sensors
//! are entities rather than ractor actors of their own). Checks the quality of every reading
//! (`twin::QualityChecker`), converts it to its stored form, hands it to the batching writer,
//! forwards the latest accepted value (in the network's units) to the `NetworkActor`, raises
//! a `sensor_fault` alert when the sensor keeps reporting implausible data, and evaluates the
//! municipality's threshold rules on every usable reading (`threshold` alerts, resolved when
//! the value comes back: see `crate::rules`).
//!
//! On (re)start it reloads its recent readings from the store and replays them through the
//! quality checker, so a restart neither forgets the window nor flags the next reading as a
//! duplicate or out of order wrongly.

use std::sync::Arc;

use ractor::{ActorProcessingErr, RpcReplyPort};
use twin::store::Point;
use twin::{QualityChecker, QualityFlags, Reading};

use crate::alerts::AlertMsg;
use crate::messages::{AlertInput, AlertKind, SensorSummary, Severity};
use crate::municipality::MunicipalityContext;
use crate::network::NetworkMsg;
use crate::rules::{sensor_location, ThresholdWatch};
use crate::runtime::now_ms;
use crate::shard::Entity;
use crate::writer::{Completion, WriteItem};

/// Recent readings reloaded on (re)start.
const RELOAD_WINDOW: usize = 32;

/// Consecutive stuck or out-of-range readings that make a sensor faulty.
const FAULT_AFTER: u32 = 10;

/// Flags that, persisting, mean the sensor itself is faulty (not one bad reading).
const FAULT_FLAGS: QualityFlags = QualityFlags::from_bits(
    QualityFlags::STUCK.bits() | QualityFlags::RANGE.bits() | QualityFlags::INVALID.bits(),
);

/// Messages of a [`SensorActor`].
#[derive(Debug)]
pub enum SensorMsg {
    /// Readings of one request for this sensor (values as reported).
    Ingest(SensorBatch),
    /// The sensor as the twin sees it.
    Summary(RpcReplyPort<SensorSummary>),
    /// The municipality's threshold rules were replaced: follow the ones in force.
    RulesChanged,
    /// Chaos testing only: makes the actor panic, so tests can watch it being restarted. No
    /// network API sends it.
    InjectPanic,
}

/// One request's readings of one sensor.
#[derive(Debug)]
pub struct SensorBatch {
    pub(crate) readings: Vec<Reading>,
    pub(crate) completion: Arc<Completion>,
}

/// The entity of one sensor: what it remembers between readings.
#[derive(Debug)]
pub struct SensorActor {
    checker: QualityChecker,
    last: Option<Point>,
    count: u64,
    usable: u64,
    fault_streak: u32,
    fault_open: bool,
    threshold: ThresholdWatch,
}

impl Entity for SensorActor {
    type Msg = SensorMsg;
    type Seed = ();
    const KIND: &'static str = "SensorActor";

    fn seed(_context: &MunicipalityContext) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    fn load(
        context: &MunicipalityContext,
        index: usize,
        _seed: &(),
    ) -> Result<SensorActor, ActorProcessingErr> {
        let sensor = &context.sensors[index];
        let mut checker = QualityChecker::new(sensor.clone(), context.quality[index].clone());
        let recent = context
            .journal
            .latest(context.tenant.tenant(), &sensor.id, RELOAD_WINDOW)?;
        let now = now_ms();
        for point in &recent {
            // Replayed in the sensor's unit, as stored; the flags of the replay are ignored.
            let mut reading = Reading::new(sensor.id.clone(), point.timestamp, point.value);
            checker.check(&mut reading, now);
        }
        Ok(SensorActor {
            threshold: ThresholdWatch::new(sensor, &context.rules.current(), &context.units),
            last: recent.last().copied(),
            checker,
            count: 0,
            usable: 0,
            fault_streak: 0,
            fault_open: false,
        })
    }

    fn handle(&mut self, context: &MunicipalityContext, index: usize, message: SensorMsg) {
        match message {
            SensorMsg::Ingest(batch) => self.ingest(context, index, batch),
            SensorMsg::Summary(reply) => {
                let _ = reply.send(self.summary(context, index));
            }
            SensorMsg::RulesChanged => {
                let sensor = &context.sensors[index];
                let rules = context.rules.current();
                if let Some(change) = self.threshold.set_rules(sensor, &rules, now_ms()) {
                    send_alert(context, change);
                }
            }
            SensorMsg::InjectPanic => panic!("chaos: injected panic in a sensor actor"),
        }
    }

    fn id(context: &MunicipalityContext, index: usize) -> &str {
        &context.sensors[index].id
    }
}

impl SensorActor {
    fn ingest(&mut self, context: &MunicipalityContext, index: usize, batch: SensorBatch) {
        let SensorBatch {
            readings,
            completion,
        } = batch;
        let sensor = &context.sensors[index];
        let now = now_ms();
        let mut points = Vec::with_capacity(readings.len());
        let mut accepted = None;
        for mut reading in readings {
            self.checker.check(&mut reading, now);
            let point = sensor.to_point(&reading);
            self.count += 1;
            if point.flags.is_usable() {
                if let Ok(value) = sensor.to_network(&reading, &context.units) {
                    self.usable += 1;
                    accepted = Some((point.timestamp, value));
                    if let Some(change) = self.threshold.observe(sensor, point.timestamp, value) {
                        send_alert(context, change);
                    }
                }
            }
            self.track_fault(context, index, &point);
            self.last = Some(point);
            points.push(point);
        }
        context.writer.submit(WriteItem {
            tenant: context.id.clone(),
            sensor: context.sensor_ids[index].clone(),
            points,
            completion,
        });
        if let (Some((timestamp, value)), Some(network)) = (accepted, context.directory.network()) {
            // A NetworkActor that is restarting reloads the latest values from the store.
            let _ = network.cast(NetworkMsg::Measured {
                sensor: index,
                timestamp,
                value,
            });
        }
    }

    /// The simple sensor-health rule: `FAULT_AFTER` faulty readings in a row open a
    /// `sensor_fault` alert; the next usable reading resolves it.
    fn track_fault(&mut self, context: &MunicipalityContext, index: usize, point: &Point) {
        if point.flags.intersects(FAULT_FLAGS) {
            self.fault_streak = self.fault_streak.saturating_add(1);
            if self.fault_streak >= FAULT_AFTER && !self.fault_open {
                self.fault_open = true;
                send_alert(
                    context,
                    AlertMsg::Raise(self.fault_alert(context, index, point)),
                );
            }
        } else if point.flags.is_usable() {
            self.fault_streak = 0;
            if self.fault_open {
                self.fault_open = false;
                let sensor = &context.sensors[index];
                let cleared = AlertInput {
                    message: format!("sensor {} reports usable readings again", sensor.id),
                    ..self.fault_alert(context, index, point)
                };
                send_alert(context, AlertMsg::Resolve(cleared));
            }
        }
    }

    fn fault_alert(
        &self,
        context: &MunicipalityContext,
        index: usize,
        point: &Point,
    ) -> AlertInput {
        let sensor = &context.sensors[index];
        AlertInput {
            kind: AlertKind::SensorFault,
            severity: Severity::Warning,
            location: sensor_location(sensor),
            estimated_flow: None,
            time_ms: point.timestamp,
            message: format!(
                "sensor {} reported {} unusable readings in a row ({})",
                sensor.id, self.fault_streak, point.flags
            ),
        }
    }

    fn summary(&self, context: &MunicipalityContext, index: usize) -> SensorSummary {
        SensorSummary {
            sensor_id: context.sensors[index].id.clone(),
            last_value: self.last.map(|p| p.value),
            last_timestamp: self.last.map(|p| p.timestamp),
            last_flags: self
                .last
                .map(|p| p.flags.names().iter().map(|n| n.to_string()).collect())
                .unwrap_or_default(),
            count: self.count,
            usable: self.usable,
        }
    }
}

fn send_alert(context: &MunicipalityContext, message: AlertMsg) {
    if let Some(alerts) = context.directory.alerts() {
        let _ = alerts.cast(message);
    }
}
