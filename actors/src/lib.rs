//! The live twin's actor runtime (ractor, tokio).
//!
//! - [`ingest`]: the contract between gateways and the twin: [`ingest::IngestHandle`] takes a
//!   device's readings and answers once they are durably stored (the point at which a gateway
//!   acknowledges), or with the reason they were rejected. Every rejection is counted.
//! - [`devices`]: configured devices, authenticated by a per-device key.
//! - [`metrics`]: counters and latencies rendered as Prometheus text.
//! - [`gateway`]: MQTT (embedded broker, external broker), LoRaWAN (ChirpStack uplinks, Semtech
//!   UDP packet forwarder), payload parsing shared with HTTP ingest.
//! - [`runtime`]: [`runtime::TwinRuntime`], the running twin: supervision tree, ingest
//!   dispatcher, group-commit writer, journal compaction, queries; configured by
//!   [`config`].
//! - The actors: [`municipality`] (supervisor), [`sensor`], [`network`], [`pipe`], [`alerts`];
//!   restart budgets in `supervision`; the serializable data they exchange in [`messages`];
//!   threshold rules at run time in [`rules`].
//!   Sensors and pipes are entities hosted by shard actors (`shard`), not an actor each.
//!
//! The math the actors call lives in `twin` and `hydraulics`.

pub mod alerts;
pub mod config;
pub mod devices;
pub mod escalation;
pub mod gateway;
pub mod ingest;
pub mod messages;
pub mod metrics;
pub mod municipality;
pub mod network;
pub mod pipe;
pub mod rules;
pub mod runtime;
pub mod sensor;
mod shard;
mod supervision;
mod writer;
