//! What the runtime runs: plain Rust values (the `serve` command parses its TOML into them).

use std::collections::HashMap;
use std::time::Duration;

use hydraulics::Network;
use twin::detect::WatchConfig;
use twin::live::TwinClock;
use twin::{QualityConfig, Sensor};

use crate::escalation::EscalationPolicy;
use crate::messages::AlertRules;

/// How many restarts of children a supervisor allows within a window before it gives up and
/// escalates the failure to its own parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    /// Restarts allowed within `window`.
    pub max_restarts: usize,
    /// The sliding window.
    pub window: Duration,
}

impl Default for RestartBudget {
    /// Five restarts per minute.
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// One municipality (tenant): its network, sensors and hydraulic period.
#[derive(Debug, Clone)]
pub struct MunicipalityConfig {
    /// Unique id; the tenant of every key it stores and the `municipality` of its devices.
    pub id: String,
    /// The hydraulic network.
    pub network: Network,
    /// The sensors observing it; ids unique within the municipality.
    pub sensors: Vec<Sensor>,
    /// Wall-clock time between two hydraulic periods (300 s live, shorter in tests and demos).
    pub period: Duration,
    /// How wall-clock time maps onto the network's simulation clock.
    pub clock: TwinClock,
    /// Quality settings of individual sensors (by sensor id); the others get their kind's
    /// defaults ([`QualityConfig::for_kind`]).
    pub quality: HashMap<String, QualityConfig>,
    /// Leak and burst detection settings; `None`: no detection.
    pub detection: Option<WatchConfig>,
    /// When unacknowledged alerts are escalated; `None`: never.
    pub escalation: Option<EscalationPolicy>,
    /// Threshold rules in force until rules are stored over the API (the stored set wins).
    pub alert_rules: Option<AlertRules>,
}

impl MunicipalityConfig {
    /// A municipality with default quality settings.
    pub fn new(
        id: impl Into<String>,
        network: Network,
        sensors: Vec<Sensor>,
        period: Duration,
        clock: TwinClock,
    ) -> Self {
        Self {
            id: id.into(),
            network,
            sensors,
            period,
            clock,
            quality: HashMap::new(),
            detection: None,
            escalation: None,
            alert_rules: None,
        }
    }
}

/// Everything [`crate::runtime::TwinRuntime::start`] needs besides the store, devices and
/// metrics.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The municipalities served.
    pub municipalities: Vec<MunicipalityConfig>,
    /// Restart budget of every supervisor (municipality and root).
    pub restart_budget: RestartBudget,
    /// Ingest requests in flight (received, not yet answered) at most: the back-pressure
    /// bound of the gateways.
    pub ingest_capacity: usize,
    /// How long the writer waits for more readings before a group commit.
    pub commit_linger: Duration,
    /// Readings that make the writer commit at once.
    pub commit_max_readings: usize,
    /// Time between two compactions of the reading journal.
    pub compaction_interval: Duration,
}

impl RuntimeConfig {
    /// A configuration of `municipalities` with the default tuning.
    pub fn new(municipalities: Vec<MunicipalityConfig>) -> Self {
        Self {
            municipalities,
            restart_budget: RestartBudget::default(),
            ingest_capacity: 16_384,
            commit_linger: Duration::from_millis(2),
            commit_max_readings: 65_536,
            compaction_interval: Duration::from_secs(5),
        }
    }
}
