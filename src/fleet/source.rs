//! What one fleet connection publishes: its device's readings, in turn, with increasing
//! timestamps per sensor, and the run's shared counters.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::SeedableRng as _;

use super::synth::Synthesizer;

/// The fleet's clock: monotonic time since the start on top of the start's Unix time.
#[derive(Debug, Clone, Copy)]
pub struct FleetClock {
    /// When the run started.
    pub started: Instant,
    /// Unix ms of the start.
    pub start_ms: i64,
    /// Unix ms that is simulation time 0 of the network (the twin's clock origin).
    pub origin_ms: i64,
}

impl FleetClock {
    /// Unix ms now.
    pub fn now_ms(&self) -> i64 {
        self.start_ms + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Simulation seconds at Unix ms `timestamp`.
    pub fn sim_seconds(&self, timestamp: i64) -> f64 {
        (timestamp - self.origin_ms) as f64 / 1000.0
    }
}

/// One reading on its way: sensor (index into the fleet's sensors), time, value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Index of the sensor in the fleet's sensor list.
    pub sensor: u32,
    /// Unix ms.
    pub timestamp: i64,
    /// Value in the sensor's unit.
    pub value: f64,
}

/// The counters every connection adds to, read by the progress line and the summary.
#[derive(Debug, Default)]
pub struct Counters {
    /// Readings sent.
    pub sent: AtomicU64,
    /// Readings acknowledged.
    pub acked: AtomicU64,
    /// Messages sent.
    pub messages: AtomicU64,
    /// Messages acknowledged.
    pub messages_acked: AtomicU64,
    /// Messages refused by the peer (HTTP 4xx/5xx, MQTT connection refused).
    pub refused: AtomicU64,
}

/// What all connections of a run share.
pub struct RunShared {
    /// Sensor ids, by index.
    pub sensor_ids: Vec<String>,
    /// Values.
    pub synth: Synthesizer,
    /// The clock.
    pub clock: FleetClock,
    /// Counters.
    pub counters: Counters,
    /// Readings left to send with `--count` (none: until the deadline).
    pub budget: Option<AtomicI64>,
    /// When sending stops with `--duration`.
    pub deadline: Option<Instant>,
    /// Set on Ctrl-C or by the caller: stop sending.
    pub stop: Arc<AtomicBool>,
    /// Where every acknowledged reading is recorded (`sensor_id,timestamp_ms,value`).
    pub ack_log: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    /// Publish-to-acknowledgement latency of every acknowledged message, µs (kept here, not
    /// per connection, so that a connection that fails keeps what it measured).
    pub latencies: Mutex<Vec<u32>>,
}

impl RunShared {
    /// Whether sending must stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Takes up to `wanted` readings from the budget; 0 when it is spent.
    pub fn take(&self, wanted: usize) -> usize {
        let Some(budget) = &self.budget else {
            return wanted;
        };
        let wanted = wanted as i64;
        let before = budget.fetch_sub(wanted, Ordering::Relaxed);
        before.clamp(0, wanted) as usize
    }

    /// Records acknowledged samples sent at `sent` and the latency.
    pub fn acknowledged(&self, samples: &[Sample], sent: Instant) {
        let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut latencies) = self.latencies.lock() {
            latencies.push(micros);
        }
        self.counters
            .acked
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        self.counters.messages_acked.fetch_add(1, Ordering::Relaxed);
        if let Some(log) = &self.ack_log {
            if let Ok(mut log) = log.lock() {
                for sample in samples {
                    // A lost log line would make the crash test blame the twin: report it.
                    if let Err(err) = writeln!(
                        log,
                        "{},{},{}",
                        self.sensor_ids[sample.sensor as usize], sample.timestamp, sample.value
                    ) {
                        tracing::error!("cannot write the acknowledged-readings log: {err}");
                    }
                }
            }
        }
    }

    /// Counts samples as sent in one message.
    pub fn sent(&self, count: usize) {
        self.counters
            .sent
            .fetch_add(count as u64, Ordering::Relaxed);
        self.counters.messages.fetch_add(1, Ordering::Relaxed);
    }
}

/// The readings of one device, produced in turn.
pub struct ReadingSource {
    shared: Arc<RunShared>,
    sensors: Vec<u32>,
    last_timestamp: Vec<i64>,
    cursor: usize,
    rng: SmallRng,
}

impl ReadingSource {
    /// The source of the device reporting for `sensors` (indices); `seed` varies the noise.
    pub fn new(shared: Arc<RunShared>, sensors: Vec<u32>, seed: u64) -> Self {
        let last_timestamp = vec![i64::MIN; sensors.len()];
        Self {
            shared,
            sensors,
            last_timestamp,
            cursor: 0,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The run's shared state.
    pub fn shared(&self) -> &Arc<RunShared> {
        &self.shared
    }

    /// Position of sensor `sensor` (fleet index) in the device's list.
    pub fn slot_of(&self, sensor: u32) -> Option<usize> {
        self.sensors.iter().position(|s| *s == sensor)
    }

    /// Up to `count` readings of one sensor (the next in turn), or none once sending stops.
    pub fn same_sensor(&mut self, count: usize) -> Vec<Sample> {
        if self.sensors.is_empty() || self.shared.stopping() {
            return Vec::new();
        }
        let count = self.shared.take(count);
        let slot = self.cursor % self.sensors.len();
        self.cursor += 1;
        (0..count).map(|_| self.sample(slot)).collect()
    }

    /// Up to `count` readings of the sensors in turn, or none once sending stops; with
    /// `distinct`, at most one per sensor (a LoRaWAN frame gives all its readings one time).
    pub fn across_sensors(&mut self, count: usize, distinct: bool) -> Vec<Sample> {
        if self.sensors.is_empty() || self.shared.stopping() {
            return Vec::new();
        }
        let wanted = if distinct {
            count.min(self.sensors.len())
        } else {
            count
        };
        let count = self.shared.take(wanted);
        (0..count)
            .map(|_| {
                let slot = self.cursor % self.sensors.len();
                self.cursor += 1;
                self.sample(slot)
            })
            .collect()
    }

    fn sample(&mut self, slot: usize) -> Sample {
        let clock = &self.shared.clock;
        // Strictly increasing per sensor: a sensor never reports twice for one millisecond.
        let timestamp = clock
            .now_ms()
            .max(self.last_timestamp[slot].saturating_add(1));
        self.last_timestamp[slot] = timestamp;
        let sensor = self.sensors[slot];
        let value = self
            .shared
            .synth
            .value(sensor as usize, clock.sim_seconds(timestamp), &mut self.rng)
            .unwrap_or(0.0);
        Sample {
            sensor,
            timestamp,
            value,
        }
    }
}

/// Appends the JSON of one reading (`{"ts":..,"value":..}`, with `sensor_id` when given).
fn write_reading_json(out: &mut Vec<u8>, sample: &Sample, sensor_id: Option<&str>) {
    out.push(b'{');
    if let Some(id) = sensor_id {
        // Sensor ids are plain names; serde_json escapes anything else correctly.
        let _ = write!(out, "\"sensor_id\":{},", serde_json::Value::from(id));
    }
    let _ = write!(
        out,
        "\"ts\":{},\"value\":{}}}",
        sample.timestamp, sample.value
    );
}

/// The JSON body of `samples`: one object, or an array when there are several.
pub fn readings_json(samples: &[Sample], sensor_ids: Option<&[String]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 * samples.len() + 2);
    let id = |sample: &Sample| sensor_ids.map(|ids| ids[sample.sensor as usize].as_str());
    if let [single] = samples {
        write_reading_json(&mut out, single, id(single));
        return out;
    }
    out.push(b'[');
    for (i, sample) in samples.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_reading_json(&mut out, sample, id(sample));
    }
    out.push(b']');
    out
}
