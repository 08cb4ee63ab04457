//! Replay of recorded telemetry through the twin (`aquatwin replay`), and leak scenarios made
//! with our own solver to score it on ([`generate`]).
//!
//! [`replay`] feeds the readings period by period into [`NetworkTwin::step`], the function the
//! live `NetworkActor` calls, so a replay and the live path give identical results: each
//! period's latest accepted value of every sensor (converted to the network's units) is the
//! period's input, and the detection stage's events are collected.

pub mod generate;

use std::collections::HashMap;

use hydraulics::Network;
use twin::detect::WatchConfig;
use twin::live::{NetworkTwin, PeriodState, TwinClock, TwinError, TwinEvent};
use twin::telemetry_files::Record;
use twin::{NetworkUnits, Reading, Sensor};

/// How far a replay has come, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time of the period just solved (Unix ms).
    pub time_ms: i64,
    /// Share of the telemetry's time span done (0..1).
    pub done: f64,
    /// Periods solved so far.
    pub periods: usize,
    /// Events raised so far.
    pub events: usize,
}

/// What a replay produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOutcome {
    /// Every event the detection stage raised, in time order.
    pub events: Vec<TwinEvent>,
    /// Periods solved.
    pub periods: usize,
    /// Periods whose solve did not converge.
    pub unconverged: usize,
    /// Readings of ids the sensors file does not define, per id.
    pub unknown_sensors: HashMap<String, usize>,
    /// Readings whose value could not be converted to the network's units.
    pub rejected: usize,
    /// Whether detection trained (false when the telemetry ends inside the training window or
    /// training failed).
    pub trained: bool,
    /// Why training failed, when it did.
    pub training_error: Option<String>,
    /// Whether the network's inflow is fully metered (flow balance) or pressures are watched.
    pub inflow_metered: bool,
}

/// Replays `records` (ordered by time) on `network` observed by `sensors`: sim time 0 is the
/// first reading; `watch` configures detection. `on_period` is called after every period with
/// its estimated state (a progress line, pacing at a given speed, states kept for playback).
pub fn replay(
    network: Network,
    sensors: Vec<Sensor>,
    records: &[Record],
    watch: WatchConfig,
    mut on_period: impl FnMut(Progress, &PeriodState),
) -> Result<ReplayOutcome, TwinError> {
    let units = NetworkUnits::new(&network.options);
    let by_id: HashMap<String, Sensor> =
        sensors.iter().map(|s| (s.id.clone(), s.clone())).collect();
    let (first_ms, last_ms) = match (records.first(), records.last()) {
        (Some(first), Some(last)) => (first.timestamp_ms, last.timestamp_ms),
        _ => (0, 0),
    };
    let mut twin = NetworkTwin::new(
        network,
        sensors,
        TwinClock {
            origin_ms: first_ms,
        },
    )?
    .with_detection(watch);
    let mut latest: HashMap<String, f64> = HashMap::new();
    let mut outcome = ReplayOutcome {
        events: Vec::new(),
        periods: 0,
        unconverged: 0,
        unknown_sensors: HashMap::new(),
        rejected: 0,
        trained: false,
        training_error: None,
        inflow_metered: twin.inflow_metered(),
    };
    for period in records.chunk_by(|a, b| a.timestamp_ms == b.timestamp_ms) {
        for record in period {
            let Some(sensor) = by_id.get(&record.sensor_id) else {
                *outcome
                    .unknown_sensors
                    .entry(record.sensor_id.clone())
                    .or_default() += 1;
                continue;
            };
            let reading = Reading::new(record.sensor_id.clone(), record.timestamp_ms, record.value);
            match sensor.to_network(&reading, &units) {
                Ok(value) => {
                    latest.insert(record.sensor_id.clone(), value);
                }
                Err(_) => outcome.rejected += 1,
            }
        }
        let time_ms = period[0].timestamp_ms;
        let state = twin.step(time_ms, &latest)?;
        outcome.periods += 1;
        outcome.unconverged += usize::from(!state.converged);
        outcome.events.extend(state.events.iter().cloned());
        on_period(
            Progress {
                time_ms,
                done: (time_ms - first_ms) as f64 / (last_ms - first_ms).max(1) as f64,
                periods: outcome.periods,
                events: outcome.events.len(),
            },
            &state,
        );
    }
    if let Some(watch) = twin.watch() {
        outcome.trained = watch.is_trained();
        outcome.training_error = watch.training_error().map(|e| e.to_string());
    }
    Ok(outcome)
}
