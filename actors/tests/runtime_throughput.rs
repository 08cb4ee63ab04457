//! Throughput of the runtime alone (no gateway): an in-process submitter pushes readings
//! through an `IngestHandle` into a redb store with durable group commits, and every
//! acknowledged reading is checked in the store afterwards.
//!
//! A measurement, not a regular test (it takes seconds in release, minutes in dev):
//! `cargo test --release -p actors --test runtime_throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::config::{MunicipalityConfig, RuntimeConfig};
use actors::devices::{key_digest, Device, DeviceRegistry};
use actors::ingest::{Gateway, IngestHandle};
use actors::metrics::Metrics;
use actors::runtime::TwinRuntime;
use hydraulics::model::NodeKind;
use twin::live::TwinClock;
use twin::store::{RedbStore, Store};
use twin::{Reading, Sensor, SensorKind, Unit};

const TOWN: &str = "bench";
const SENSORS: usize = 1000;

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn start(store: Arc<dyn Store>) -> (TwinRuntime, IngestHandle, Vec<Arc<Device>>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hydraulics/networks/Net3.inp"
    );
    let network = hydraulics::read_file(std::path::Path::new(path)).unwrap();
    let junctions: Vec<String> = network
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Junction(_)))
        .map(|n| n.id.clone())
        .collect();
    let sensors: Vec<Sensor> = (0..SENSORS)
        .map(|i| {
            let node = &junctions[i % junctions.len()];
            Sensor::new(format!("p{i}"), SensorKind::Pressure, node, Unit::Psi).unwrap()
        })
        .collect();
    let devices: Vec<Device> = sensors
        .iter()
        .map(|s| Device {
            id: format!("dev-{}", s.id),
            municipality: TOWN.to_string(),
            sensors: vec![s.id.clone()],
            key_sha256: key_digest("k"),
            active: true,
            lorawan: None,
        })
        .collect();
    let clock = TwinClock {
        origin_ms: now_ms() - 3_600_000,
    };
    let municipality =
        MunicipalityConfig::new(TOWN, network, sensors, Duration::from_secs(300), clock);
    let registry = Arc::new(DeviceRegistry::new(devices).unwrap());
    let metrics = Arc::new(Metrics::default());
    let config = RuntimeConfig::new(vec![municipality]);
    let (runtime, handle) = TwinRuntime::start(config, store, registry.clone(), metrics)
        .await
        .unwrap();
    let devices = (0..SENSORS)
        .map(|i| registry.get(&format!("dev-p{i}")).unwrap().clone())
        .collect();
    (runtime, handle, devices)
}

/// `submitters` tasks each send `requests` requests of `batch` readings; returns readings/s
/// and the p50/p99 request latency (ms).
async fn run(
    handle: &IngestHandle,
    devices: &[Arc<Device>],
    submitters: usize,
    requests: usize,
    batch: usize,
    t0: i64,
) -> (f64, f64, f64, usize) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..submitters {
        let handle = handle.clone();
        let devices = devices.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests);
            let mut stored = 0;
            for r in 0..requests {
                let sensor = (s + r * submitters) % SENSORS;
                let device = devices[sensor].clone();
                let id = &device.sensors[0];
                let base = t0 + ((s * requests + r) * batch) as i64;
                let readings: Vec<Reading> = (0..batch)
                    .map(|i| Reading::new(id.clone(), base + i as i64, 50.0 + (i % 7) as f64))
                    .collect();
                let sent = Instant::now();
                stored += handle
                    .submit(Gateway::Http, device, readings)
                    .await
                    .unwrap();
                latencies.push(sent.elapsed().as_secs_f64() * 1e3);
            }
            (stored, latencies)
        }));
    }
    let mut stored = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (n, l) = task.await.unwrap();
        stored += n;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (stored as f64 / elapsed, pct(0.5), pct(0.99), stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn runtime_throughput_on_redb() {
    let dir = TempDir(std::env::temp_dir().join(format!("aquatwin-bench-{}", std::process::id())));
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.0).unwrap());
    let (runtime, handle, devices) = start(store).await;
    let t0 = now_ms() - 3_000_000;

    let (rate, p50, p99, batched) = run(&handle, &devices, 64, 40, 100, t0).await;
    println!("batched (100 readings/request, 64 submitters): {rate:.0} readings/s, p50 {p50:.2} ms, p99 {p99:.2} ms");
    let t1 = t0 + 1_000_000;
    let (rate, p50, p99, single) = run(&handle, &devices, 512, 400, 1, t1).await;
    println!("single (1 reading/request, 512 submitters): {rate:.0} readings/s, p50 {p50:.2} ms, p99 {p99:.2} ms");

    // Every acknowledged reading is in the store.
    let mut found = 0;
    for i in 0..SENSORS {
        found += runtime
            .readings(TOWN, &format!("p{i}"), t0, t0 + 3_000_000)
            .await
            .unwrap()
            .len();
    }
    assert_eq!(found, batched + single);
    runtime.shutdown().await;
}
