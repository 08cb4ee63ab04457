//! The live-twin domain logic (synchronous): telemetry readings and sensors with explicit unit
//! conversion ([`reading`]), per-sensor data quality ([`quality`]) and storage ([`store`]):
//! an ordered key-value model with tenant-prefixed tuple keys, compressed reading blocks, and
//! an in-memory and an embedded backend. [`detect`]: leak, burst, transient and sensor-fault
//! detectors on residuals. [`risk`]: likelihood of pipe failure (Weibull proportional hazards).
//!
//! [`estimate`]: per-period sensitivities and weighted least squares of demand multipliers and
//! leak outflows. [`localize`]: leak signatures matched against the sensitivities.
//! [`telemetry_files`]: recorded telemetry (long and wide CSV) for replay.

pub mod detect;
pub mod estimate;
pub mod live;
pub mod localize;
pub mod quality;
pub mod reading;
pub mod risk;
pub mod sensors_file;
pub mod store;
pub mod telemetry_files;

#[cfg(test)]
mod testutil;

pub use quality::{QualityChecker, QualityConfig, QualityFlags};
pub use reading::{NetworkUnits, Reading, Sensor, SensorKind, Unit, UnitError};
pub use store::{Durability, Store, StoreError};
