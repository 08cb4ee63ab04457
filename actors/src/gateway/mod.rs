//! Ingest gateways: each authenticates devices, parses their messages into readings, hands them
//! to [`crate::ingest::IngestHandle`], and turns every malformed message into a counted, logged
//! rejection.
//!
//! - [`payload`]: the JSON readings of MQTT and HTTP (design.md section 7).
//! - [`mqtt_broker`]: the embedded MQTT 3.1.1 broker (default 127.0.0.1:1883).
//! - [`mqtt_external`]: a client of an external broker (`--mqtt-url`).
//! - [`chirpstack`]: ChirpStack v4/v3 uplink events, from either MQTT gateway.
//! - [`lorawan_udp`]: the Semtech UDP packet forwarder protocol (default 127.0.0.1:1700).
//! - [`codec`]: the default LoRaWAN payload codec (bytes to readings).
//!
//! Every gateway is a tokio task started by a `start_*` function that returns once its socket
//! is bound, with a handle that reports the bound address and shuts it down.

pub mod chirpstack;
pub mod codec;
pub mod lorawan_udp;
pub mod mqtt_broker;
pub mod mqtt_external;
pub mod payload;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::devices::Device;
use crate::ingest::{Gateway, IngestError, IngestHandle};

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The system's answer.
        source: std::io::Error,
    },
    /// The configuration is not usable (bad URL, ...).
    #[error("invalid gateway configuration: {0}")]
    Config(String),
}

/// An MQTT topic of the aquatwin or ChirpStack namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic<'a> {
    /// `aquatwin/<municipality>/sensors/<sensor_id>/data`: readings.
    Data {
        municipality: &'a str,
        sensor_id: &'a str,
    },
    /// `aquatwin/<municipality>/sensors/<sensor_id>/status` or `.../heartbeat`: device health.
    Health {
        municipality: &'a str,
        heartbeat: bool,
    },
    /// `application/<app>/device/<devEUI>/event/up`: a ChirpStack uplink event.
    ChirpstackUplink { dev_eui: &'a str },
    /// Anything else.
    Other,
}

/// The topic filter of ChirpStack uplink events.
pub(crate) const CHIRPSTACK_UPLINKS: &str = "application/+/device/+/event/up";

impl<'a> Topic<'a> {
    /// Classifies `topic`.
    pub(crate) fn parse(topic: &'a str) -> Self {
        let mut levels = topic.split('/');
        let parts: [Option<&str>; 6] = std::array::from_fn(|_| levels.next());
        if levels.next().is_some() {
            return Topic::Other;
        }
        match parts {
            [Some("aquatwin"), Some(municipality), Some("sensors"), Some(sensor_id), Some(kind), None]
                if !municipality.is_empty() && !sensor_id.is_empty() =>
            {
                match kind {
                    "data" => Topic::Data {
                        municipality,
                        sensor_id,
                    },
                    "status" | "heartbeat" => Topic::Health {
                        municipality,
                        heartbeat: kind == "heartbeat",
                    },
                    _ => Topic::Other,
                }
            }
            [Some("application"), Some(_), Some("device"), Some(dev_eui), Some("event"), Some("up")] => {
                Topic::ChirpstackUplink { dev_eui }
            }
            _ => Topic::Other,
        }
    }
}

/// Parses the JSON readings `payload` of `device` for `sensor_id` and submits them; every
/// refusal is counted.
pub(crate) async fn submit_json(
    ingest: &IngestHandle,
    gateway: Gateway,
    device: Arc<Device>,
    sensor_id: &str,
    payload: &[u8],
) -> Result<usize, IngestError> {
    let readings = payload::parse_readings(payload, sensor_id).map_err(|err| {
        let detail = format!("device {}, sensor {sensor_id}: {}", device.id, err.message);
        ingest.reject(gateway, err.reason, &detail);
        IngestError::new(err.reason, detail)
    })?;
    ingest.submit(gateway, device, readings).await
}

/// Resolves once `shutdown` says stop (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not in the caller's future.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_classified() {
        assert_eq!(
            Topic::parse("aquatwin/town/sensors/p1/data"),
            Topic::Data {
                municipality: "town",
                sensor_id: "p1"
            }
        );
        assert_eq!(
            Topic::parse("aquatwin/town/sensors/p1/heartbeat"),
            Topic::Health {
                municipality: "town",
                heartbeat: true
            }
        );
        assert_eq!(
            Topic::parse("application/7/device/0102030405060708/event/up"),
            Topic::ChirpstackUplink {
                dev_eui: "0102030405060708"
            }
        );
        for other in [
            "aquatwin/town/sensors/p1/data/x",
            "aquatwin//sensors/p1/data",
            "aquatwin/town/sensors/p1/other",
            "aquatwin/town/alerts",
            "application/7/device/01/event/join",
            "",
        ] {
            assert_eq!(Topic::parse(other), Topic::Other, "{other}");
        }
    }
}
