//! The contract between gateways and the twin.
//!
//! A gateway authenticates a device ([`crate::devices::DeviceRegistry`]), parses its message
//! into [`Reading`]s and calls [`IngestHandle::submit`]. The future resolves once every reading
//! is durably stored (fsync'd): only then may the gateway acknowledge (MQTT PUBACK, HTTP 2xx,
//! LoRaWAN has no acknowledgement). Anything refused is counted with [`IngestHandle::reject`].
//!
//! The receiving side ([`IngestRequest`]s on a channel) belongs to the actor runtime.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use twin::Reading;

use crate::devices::{Device, DeviceRegistry};
use crate::metrics::Metrics;

/// Which gateway a message came through (a label of every ingest metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Gateway {
    /// MQTT, embedded broker or external broker.
    Mqtt,
    /// ChirpStack (v3 or v4) uplink events over MQTT.
    Chirpstack,
    /// Semtech UDP packet forwarder (raw LoRaWAN PHYPayloads).
    LorawanUdp,
    /// `POST /api/v1/ingest`.
    Http,
}

impl Gateway {
    /// Every gateway.
    pub const ALL: [Gateway; 4] = [
        Gateway::Mqtt,
        Gateway::Chirpstack,
        Gateway::LorawanUdp,
        Gateway::Http,
    ];

    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            Gateway::Mqtt => "mqtt",
            Gateway::Chirpstack => "chirpstack",
            Gateway::LorawanUdp => "lorawan_udp",
            Gateway::Http => "http",
        }
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a message or reading was refused (a label of the rejection counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RejectReason {
    /// Not parseable: bad JSON, bad topic, bad frame, bad MIC, missing field.
    Malformed,
    /// No or wrong credentials, unknown or deactivated device.
    Unauthenticated,
    /// Authenticated, but the device may not report for this sensor or municipality.
    Forbidden,
    /// The sensor is not configured.
    UnknownSensor,
    /// A LoRaWAN frame counter that was already seen.
    Replay,
    /// Over the size limit of the gateway.
    TooLarge,
    /// The twin could not store it (store failure, shutting down); the sender should retry.
    Unavailable,
}

impl RejectReason {
    /// Every reason.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::Malformed,
        RejectReason::Unauthenticated,
        RejectReason::Forbidden,
        RejectReason::UnknownSensor,
        RejectReason::Replay,
        RejectReason::TooLarge,
        RejectReason::Unavailable,
    ];

    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Unauthenticated => "unauthenticated",
            RejectReason::Forbidden => "forbidden",
            RejectReason::UnknownSensor => "unknown_sensor",
            RejectReason::Replay => "replay",
            RejectReason::TooLarge => "too_large",
            RejectReason::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a submission was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct IngestError {
    /// The counted reason.
    pub reason: RejectReason,
    /// What exactly (e.g. which sensor), safe to show to the device.
    pub detail: String,
}

impl IngestError {
    /// An error with `reason` and `detail`.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// One device's readings on their way to the twin.
#[derive(Debug)]
pub struct IngestRequest {
    /// The gateway it came through.
    pub gateway: Gateway,
    /// The authenticated device.
    pub device: Arc<Device>,
    /// The readings, values as reported (units converted later, per sensor).
    pub readings: Vec<Reading>,
    /// When the gateway received the message (for publish-to-stored latency).
    pub received: std::time::Instant,
    /// Answered once every reading is durably stored (`Ok(count)`) or refused.
    pub ack: oneshot::Sender<Result<usize, IngestError>>,
}

/// What gateways hold: cheap to clone, one per connection is fine.
#[derive(Debug, Clone)]
pub struct IngestHandle {
    requests: mpsc::Sender<IngestRequest>,
    devices: Arc<DeviceRegistry>,
    metrics: Arc<Metrics>,
}

impl IngestHandle {
    /// A handle sending to `requests`. The channel's capacity bounds the readings in flight:
    /// a full channel makes gateways wait (back-pressure), never grows memory.
    pub fn new(
        requests: mpsc::Sender<IngestRequest>,
        devices: Arc<DeviceRegistry>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            requests,
            devices,
            metrics,
        }
    }

    /// The devices (changeable while serving).
    pub fn devices(&self) -> &DeviceRegistry {
        &self.devices
    }

    /// The metrics every gateway counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Submits `readings` of `device`; resolves with the number stored once they are durable
    /// (the device is then noted as heard over `gateway`).
    /// Readings for sensors the device does not own make the whole submission fail
    /// ([`RejectReason::Forbidden`]) before anything is stored. Failures are counted here; the
    /// caller only reports them to the device.
    pub async fn submit(
        &self,
        gateway: Gateway,
        device: Arc<Device>,
        readings: Vec<Reading>,
    ) -> Result<usize, IngestError> {
        let result = self
            .submit_uncounted(gateway, device.clone(), readings)
            .await;
        match &result {
            Ok(count) => {
                self.metrics.accepted(gateway, *count as u64);
                self.devices
                    .heard(&device.id, gateway, crate::gateway::now_ms());
            }
            Err(err) => self.reject(gateway, err.reason, &err.detail),
        }
        result
    }

    async fn submit_uncounted(
        &self,
        gateway: Gateway,
        device: Arc<Device>,
        readings: Vec<Reading>,
    ) -> Result<usize, IngestError> {
        if let Some(foreign) = readings.iter().find(|r| !device.owns(&r.sensor_id)) {
            return Err(IngestError::new(
                RejectReason::Forbidden,
                format!(
                    "device {} may not report for sensor {}",
                    device.id, foreign.sensor_id
                ),
            ));
        }
        if readings.is_empty() {
            return Ok(0);
        }
        let (ack, answer) = oneshot::channel();
        let request = IngestRequest {
            gateway,
            device,
            readings,
            received: std::time::Instant::now(),
            ack,
        };
        let unavailable =
            || IngestError::new(RejectReason::Unavailable, "the twin is shutting down");
        self.requests
            .send(request)
            .await
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    /// Counts and logs a refused message.
    pub fn reject(&self, gateway: Gateway, reason: RejectReason, detail: &str) {
        self.metrics.rejected(gateway, reason);
        tracing::warn!(
            gateway = gateway.name(),
            reason = reason.name(),
            "rejected: {detail}"
        );
    }
}
