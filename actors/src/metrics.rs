//! Counters and latencies of the live twin, rendered as Prometheus text (`/metrics`).
//!
//! Names follow Prometheus conventions: `aquatwin_<thing>_total` for counters, base units
//! (seconds) for durations.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::ingest::{Gateway, RejectReason};

/// Bucket upper bounds (seconds) of the latency histograms.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (atomic integers; rendered in seconds).
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation of `seconds`.
    pub fn observe(&self, seconds: f64) {
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Every metric of one `serve` process.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: [AtomicU64; Gateway::ALL.len()],
    rejected: [[AtomicU64; RejectReason::ALL.len()]; Gateway::ALL.len()],
    /// Receipt by a gateway to durable storage, seconds.
    pub ingest_latency: Histogram,
    /// One store commit (group of readings), seconds.
    pub store_write: Histogram,
    /// One hydraulic period of one network, seconds.
    pub solve_time: Histogram,
    /// Actor restarts after a failure.
    pub actor_restarts: AtomicU64,
    /// Failures that exhausted a restart budget and escalated.
    pub actor_escalations: AtomicU64,
    /// Hydraulic periods that could not be solved.
    pub solve_failures: AtomicU64,
    /// Free-form gauges set by the runtime (name, help, value), e.g. actors alive.
    gauges: Mutex<Vec<(String, String, f64)>>,
}

fn gateway_index(gateway: Gateway) -> usize {
    Gateway::ALL
        .iter()
        .position(|g| *g == gateway)
        .unwrap_or_default()
}

fn reason_index(reason: RejectReason) -> usize {
    RejectReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

impl Metrics {
    /// Counts `count` readings stored from `gateway`.
    pub fn accepted(&self, gateway: Gateway, count: u64) {
        self.accepted[gateway_index(gateway)].fetch_add(count, Ordering::Relaxed);
    }

    /// Counts one refused message from `gateway`.
    pub fn rejected(&self, gateway: Gateway, reason: RejectReason) {
        self.rejected[gateway_index(gateway)][reason_index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Readings stored from `gateway` so far.
    pub fn accepted_count(&self, gateway: Gateway) -> u64 {
        self.accepted[gateway_index(gateway)].load(Ordering::Relaxed)
    }

    /// Messages refused from `gateway` for `reason` so far.
    pub fn rejected_count(&self, gateway: Gateway, reason: RejectReason) -> u64 {
        self.rejected[gateway_index(gateway)][reason_index(reason)].load(Ordering::Relaxed)
    }

    /// Sets gauge `name` (created on first use).
    pub fn set_gauge(&self, name: &str, help: &str, value: f64) {
        let Ok(mut gauges) = self.gauges.lock() else {
            return;
        };
        match gauges.iter_mut().find(|(n, _, _)| n == name) {
            Some(gauge) => gauge.2 = value,
            None => gauges.push((name.to_string(), help.to_string(), value)),
        }
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP aquatwin_readings_accepted_total Readings durably stored, by gateway.\n",
        );
        out.push_str("# TYPE aquatwin_readings_accepted_total counter\n");
        for gateway in Gateway::ALL {
            let _ = writeln!(
                out,
                "aquatwin_readings_accepted_total{{gateway=\"{gateway}\"}} {}",
                self.accepted_count(gateway)
            );
        }
        out.push_str(
            "# HELP aquatwin_messages_rejected_total Messages refused, by gateway and reason.\n",
        );
        out.push_str("# TYPE aquatwin_messages_rejected_total counter\n");
        for gateway in Gateway::ALL {
            for reason in RejectReason::ALL {
                let _ = writeln!(
                    out,
                    "aquatwin_messages_rejected_total{{gateway=\"{gateway}\",reason=\"{reason}\"}} {}",
                    self.rejected_count(gateway, reason)
                );
            }
        }
        for (name, help, histogram) in [
            (
                "aquatwin_ingest_latency_seconds",
                "From receipt by a gateway to durable storage.",
                &self.ingest_latency,
            ),
            (
                "aquatwin_store_write_seconds",
                "One durable store commit.",
                &self.store_write,
            ),
            (
                "aquatwin_solve_seconds",
                "One hydraulic period of one network.",
                &self.solve_time,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            histogram.render(&mut out, name, "");
        }
        for (name, help, counter) in [
            (
                "aquatwin_actor_restarts_total",
                "Actors restarted after a failure.",
                &self.actor_restarts,
            ),
            (
                "aquatwin_actor_escalations_total",
                "Failures that exhausted a restart budget.",
                &self.actor_escalations,
            ),
            (
                "aquatwin_solve_failures_total",
                "Hydraulic periods that could not be solved.",
                &self.solve_failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        if let Ok(gauges) = self.gauges.lock() {
            for (name, help, value) in gauges.iter() {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
        }
        out
    }
}
