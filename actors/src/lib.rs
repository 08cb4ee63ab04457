//! The live twin's actor runtime (ractor, tokio).
//!
//! - [`ingest`]: the contract between gateways and the twin: [`ingest::IngestHandle`] takes a
//!   device's readings and answers once they are durably stored (the point at which a gateway
//!   acknowledges), or with the reason they were rejected. Every rejection is counted.
//! - [`devices`]: configured devices, authenticated by a per-device key.
//! - [`metrics`]: counters and latencies rendered as Prometheus text.
//! - [`gateway`]: MQTT (embedded broker, external broker), LoRaWAN (ChirpStack uplinks, Semtech
//!   UDP packet forwarder), payload parsing shared with HTTP ingest.
//!
//! The math the actors call lives in `twin` and `hydraulics`.

pub mod devices;
pub mod gateway;
pub mod ingest;
pub mod metrics;
