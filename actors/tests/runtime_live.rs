//! The live runtime driven through its public API as a gateway and the API would: readings in
//! through an `IngestHandle`, answers and stored data out through `TwinRuntime`'s queries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actors::config::{MunicipalityConfig, RestartBudget, RuntimeConfig};
use actors::devices::{key_digest, Device, DeviceRegistry};
use actors::ingest::{Gateway, IngestHandle, RejectReason};
use actors::metrics::Metrics;
use actors::runtime::{ChaosTarget, TwinRuntime};
use hydraulics::model::NodeKind;
use hydraulics::Network;
use twin::live::{PeriodState, TwinClock};
use twin::store::{
    KeyRange, KeyValue, MemoryStore, Order, Snapshot, Store, StoreError, WriteBatch,
};
use twin::{Durability, QualityFlags, Reading, Sensor, SensorKind, Unit};

const TOWN: &str = "net3town";

fn net3() -> Network {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hydraulics/networks/Net3.inp"
    );
    hydraulics::read_file(std::path::Path::new(path)).unwrap()
}

/// Tank levels (boundary conditions), pressures at junctions 10 and 20, flow in pipe 60.
fn sensors() -> Vec<Sensor> {
    let mut sensors = Vec::new();
    for tank in ["1", "2", "3"] {
        sensors.push(
            Sensor::new(format!("level-{tank}"), SensorKind::Level, tank, Unit::Foot).unwrap(),
        );
    }
    for node in ["10", "20"] {
        sensors
            .push(Sensor::new(format!("p-{node}"), SensorKind::Pressure, node, Unit::Psi).unwrap());
    }
    sensors.push(
        Sensor::new(
            "f-60",
            SensorKind::Flow,
            "60",
            Unit::Flow(hydraulics::model::FlowUnits::Gpm),
        )
        .unwrap(),
    );
    sensors
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn device(sensors: &[Sensor]) -> Device {
    Device {
        id: "rtu-1".to_string(),
        municipality: TOWN.to_string(),
        sensors: sensors.iter().map(|s| s.id.clone()).collect(),
        key_sha256: key_digest("secret"),
        active: true,
        lorawan: None,
    }
}

struct Twin {
    runtime: TwinRuntime,
    handle: IngestHandle,
    device: Arc<Device>,
    metrics: Arc<Metrics>,
}

async fn start(store: Arc<dyn Store>, period: Duration, budget: RestartBudget) -> Twin {
    let sensors = sensors();
    let device = device(&sensors);
    let municipality = MunicipalityConfig::new(
        TOWN,
        net3(),
        sensors,
        period,
        TwinClock {
            origin_ms: now_ms() - 3_600_000,
        },
    );
    let mut config = RuntimeConfig::new(vec![municipality]);
    config.restart_budget = budget;
    config.compaction_interval = Duration::from_millis(300);
    let devices = Arc::new(DeviceRegistry::new(vec![device]).unwrap());
    let metrics = Arc::new(Metrics::default());
    let (runtime, handle) = TwinRuntime::start(config, store, devices.clone(), metrics.clone())
        .await
        .unwrap();
    let device = devices.get("rtu-1").unwrap().clone();
    Twin {
        runtime,
        handle,
        device,
        metrics,
    }
}

impl Twin {
    async fn submit(&self, readings: Vec<Reading>) -> Result<usize, actors::ingest::IngestError> {
        self.handle
            .submit(Gateway::Http, self.device.clone(), readings)
            .await
    }

    async fn next_state(&self, after_ms: i64) -> Arc<PeriodState> {
        let mut states = self.runtime.subscribe_state(TOWN).unwrap();
        loop {
            let state = tokio::time::timeout(Duration::from_secs(10), states.recv())
                .await
                .expect("no period solved within 10 s")
                .unwrap();
            if state.timestamp_ms > after_ms {
                return state;
            }
        }
    }
}

/// Polls `check` until it holds (actors restart asynchronously).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

fn slow() -> Duration {
    Duration::from_secs(3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_readings_are_stored_with_their_flags() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let twin = start(store.clone(), slow(), RestartBudget::default()).await;
    let t0 = now_ms() - 60_000;
    let good: Vec<Reading> = (0..5)
        .map(|i| Reading::new("p-10", t0 + i * 1000, 50.0 + i as f64 * 0.1))
        .collect();
    assert_eq!(twin.submit(good.clone()).await.unwrap(), 5);
    // A unit a pressure sensor cannot have: stored as reported, flagged invalid, not used.
    let bad = Reading::new("p-10", t0 + 5000, 12.0).with_unit("gpm");
    // kPa is converted to the sensor's psi before storage.
    let kpa = Reading::new("p-10", t0 + 6000, 344.738).with_unit("kPa");
    assert_eq!(twin.submit(vec![bad, kpa]).await.unwrap(), 2);

    let stored = twin
        .runtime
        .readings(TOWN, "p-10", t0, t0 + 10_000)
        .await
        .unwrap();
    assert_eq!(stored.len(), 7);
    for (point, reading) in stored.iter().zip(&good) {
        assert_eq!(point.timestamp, reading.timestamp);
        assert_eq!(point.value, reading.value);
        assert!(point.flags.is_empty(), "{:?}", point.flags);
    }
    assert_eq!(stored[5].value, 12.0);
    assert!(stored[5].flags.contains(QualityFlags::INVALID));
    // 344.738 kPa is 50.0 psi (EPANET's factor: 1 psi = 6.895 kPa).
    assert!((stored[6].value - 344.738 / 6.895).abs() < 1e-9);
    assert!(stored[6].flags.is_usable());

    let summary = twin.runtime.sensor_summary(TOWN).await.unwrap();
    let p10 = summary.iter().find(|s| s.sensor_id == "p-10").unwrap();
    assert_eq!((p10.count, p10.usable), (7, 6));
    assert_eq!(p10.last_timestamp, Some(t0 + 6000));

    // Refused before anything is stored: an unknown sensor, a foreign device.
    let err = twin
        .submit(vec![Reading::new("nope", t0, 1.0)])
        .await
        .unwrap_err();
    assert_eq!(err.reason, RejectReason::Forbidden);
    let mut stranger = (*twin.device).clone();
    stranger.municipality = "elsewhere".to_string();
    let err = twin
        .handle
        .submit(
            Gateway::Mqtt,
            Arc::new(stranger),
            vec![Reading::new("p-10", t0, 1.0)],
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason, RejectReason::Forbidden);
    assert_eq!(twin.metrics.accepted_count(Gateway::Http), 7);
    assert!(twin.metrics.ingest_latency.count() >= 2);

    twin.runtime.shutdown().await;
    // After shutdown the journal is compacted into blocks and nothing is lost.
    let series = twin::store::SeriesStore::default();
    let blocks = series
        .range(
            store.as_ref(),
            &twin::store::TenantKeys::new(TOWN),
            "p-10",
            t0,
            t0 + 10_000,
        )
        .unwrap();
    assert_eq!(blocks, stored);
    let readings = vec![Reading::new("p-10", t0 + 9000, 50.0)];
    let err = twin
        .handle
        .submit(Gateway::Http, twin.device.clone(), readings)
        .await;
    assert_eq!(err.unwrap_err().reason, RejectReason::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_stores_every_acknowledged_reading() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let twin = Arc::new(start(store, slow(), RestartBudget::default()).await);
    let t0 = now_ms() - 600_000;
    let submitters = 24;
    let per_submitter = 50;
    let mut tasks = Vec::new();
    for s in 0..submitters {
        let twin = twin.clone();
        tasks.push(tokio::spawn(async move {
            let sensor = ["p-10", "p-20", "f-60"][s % 3];
            let mut acked = Vec::new();
            for i in 0..per_submitter {
                // Distinct timestamps per sensor: submitter and index interleaved.
                let ts = t0 + (i * submitters + s) as i64 * 10;
                let value = 40.0 + ((s * 7 + i) % 13) as f64 * 0.25;
                let readings = vec![Reading::new(sensor, ts, value)];
                if twin.submit(readings).await.unwrap() == 1 {
                    acked.push((sensor, ts, value));
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert_eq!(acked.len(), submitters * per_submitter);
    let mut by_sensor: HashMap<&str, Vec<(i64, f64)>> = HashMap::new();
    for (sensor, ts, value) in acked {
        by_sensor.entry(sensor).or_default().push((ts, value));
    }
    for (sensor, mut want) in by_sensor {
        want.sort_by_key(|w| w.0);
        let stored = twin
            .runtime
            .readings(TOWN, sensor, t0, t0 + 10_000_000)
            .await
            .unwrap();
        let got: Vec<(i64, f64)> = stored.iter().map(|p| (p.timestamp, p.value)).collect();
        assert_eq!(got, want, "sensor {sensor}");
    }
    // Readings were grouped: fewer commits than readings.
    let commits = twin.metrics.store_write.count();
    assert!(
        commits < (submitters * per_submitter) as u64,
        "{commits} commits"
    );
}

/// A store whose writes fail while `failing` is set.
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl Store for FlakyStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: Order,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan(range, order, limit)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::backend("commit", "disk on fire"));
        }
        self.inner.write(batch, durability)
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        self.inner.snapshot()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_answers_every_pending_request_unavailable() {
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        failing: AtomicBool::new(false),
    });
    let twin = Arc::new(start(store.clone(), slow(), RestartBudget::default()).await);
    let t0 = now_ms() - 60_000;
    assert_eq!(
        twin.submit(vec![Reading::new("p-20", t0, 45.0)])
            .await
            .unwrap(),
        1
    );
    store.failing.store(true, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for s in 0..16 {
        let twin = twin.clone();
        tasks.push(tokio::spawn(async move {
            let readings = vec![
                Reading::new("p-10", t0 + 1000 + s, 45.0),
                Reading::new("f-60", t0 + 1000 + s, 100.0),
            ];
            twin.submit(readings).await
        }));
    }
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.reason, RejectReason::Unavailable);
    }
    assert_eq!(
        twin.metrics
            .rejected_count(Gateway::Http, RejectReason::Unavailable),
        16
    );
    store.failing.store(false, Ordering::SeqCst);
    // Nothing unacknowledged was stored; the twin works again once the store does.
    for sensor in ["p-10", "f-60"] {
        let stored = twin
            .runtime
            .readings(TOWN, sensor, t0, t0 + 60_000)
            .await
            .unwrap();
        assert!(stored.is_empty(), "{sensor}: {stored:?}");
    }
    assert_eq!(
        twin.submit(vec![Reading::new("p-10", t0 + 5000, 45.0)])
            .await
            .unwrap(),
        1
    );
}

/// Sends tank levels and pressures for one period.
async fn report_period(twin: &Twin, ts: i64, pressures: (f64, f64)) {
    let readings = vec![
        Reading::new("level-1", ts, 13.1),
        Reading::new("level-2", ts, 23.5),
        Reading::new("level-3", ts, 29.0),
        Reading::new("p-10", ts, pressures.0),
        Reading::new("p-20", ts, pressures.1),
    ];
    assert_eq!(twin.submit(readings).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_actor_solves_net3_from_tank_levels_and_feeds_pipes() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let twin = start(store, Duration::from_millis(200), RestartBudget::default()).await;
    let sent_at = now_ms();
    report_period(&twin, sent_at - 1000, (60.0, 30.0)).await;
    let state = twin.next_state(sent_at).await;
    assert!(state.converged);
    let network = net3();
    // Tank heads are the boundary conditions: elevation + measured level (ft).
    for (tank, level) in [("1", 13.1), ("2", 23.5), ("3", 29.0)] {
        let index = network.node_index(tank).unwrap();
        let NodeKind::Tank(spec) = &network.nodes[index].kind else {
            panic!("{tank} is not a tank");
        };
        let want = spec.elevation + level;
        assert!(
            (state.head[index] - want).abs() < 1e-6,
            "tank {tank}: head {} want {want}",
            state.head[index]
        );
    }
    // Residuals of the pressure sensors: measured as sent, simulated as in the state.
    for (sensor, node, measured) in [("p-10", "10", 60.0), ("p-20", "20", 30.0)] {
        let residual = state
            .residuals
            .iter()
            .find(|r| r.sensor_id == sensor)
            .unwrap();
        let index = network.node_index(node).unwrap();
        assert_eq!(residual.measured, measured);
        assert_eq!(residual.simulated, state.pressure[index]);
        assert_eq!(residual.residual(), measured - state.pressure[index]);
    }
    // Every PipeActor got its share of a solved state: find that state by its time.
    let mut solved: HashMap<i64, Arc<PeriodState>> = HashMap::new();
    solved.insert(state.timestamp_ms, state.clone());
    let mut states = twin.runtime.subscribe_state(TOWN).unwrap();
    let latest = twin.runtime.latest_state(TOWN).await.unwrap().unwrap();
    solved.insert(latest.timestamp_ms, latest);
    let pipes = ["20", "40", "50", "60", "101", "329"];
    let mut shares = Vec::new();
    for pipe in pipes {
        shares.push(twin.runtime.pipe_state(TOWN, pipe).await.unwrap().unwrap());
    }
    while let Ok(state) = states.try_recv() {
        solved.insert(state.timestamp_ms, state);
    }
    for (pipe, got) in pipes.iter().zip(shares) {
        let link = network.link_index(pipe).unwrap();
        let period = &solved[&got.timestamp_ms];
        assert_eq!(got.flow, period.flow[link], "pipe {pipe}");
        assert_eq!(got.velocity, period.velocity[link]);
        assert_eq!(got.headloss, period.headloss[link]);
        let from = period.pressure[network.links[link].from];
        let to = period.pressure[network.links[link].to];
        assert_eq!(got.pressure_min, from.min(to));
        assert_eq!(got.pressure_max, from.max(to));
    }
    assert!(twin.metrics.solve_time.count() >= 1);
    twin.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_sensor_and_pipe_actors_are_restarted_with_their_state() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // Periods far enough apart that a restarted pipe is queried before the next one.
    let twin = start(store, Duration::from_secs(2), RestartBudget::default()).await;
    let t0 = now_ms() - 30_000;
    report_period(&twin, t0, (60.0, 30.0)).await;
    let state = twin.next_state(t0).await;
    let before = twin.runtime.sensor_summary(TOWN).await.unwrap();

    // A sensor actor panics: restarted, its latest reading reloaded from the store.
    twin.runtime
        .inject_panic(TOWN, ChaosTarget::Sensor("p-10".to_string()))
        .unwrap();
    eventually("sensor restarted", async || {
        twin.metrics.actor_restarts.load(Ordering::SeqCst) == 1
    })
    .await;
    let after = twin.runtime.sensor_summary(TOWN).await.unwrap();
    let p10 = |all: &[actors::messages::SensorSummary]| {
        all.iter().find(|s| s.sensor_id == "p-10").unwrap().clone()
    };
    assert_eq!(p10(&after).last_value, p10(&before).last_value);
    assert_eq!(p10(&after).last_timestamp, Some(t0));
    assert_eq!(p10(&after).count, 0, "a new actor counts from zero");
    // Its window came back too: the same timestamp again is a duplicate.
    assert_eq!(
        twin.submit(vec![Reading::new("p-10", t0, 60.0)])
            .await
            .unwrap(),
        1
    );
    let stored = twin
        .runtime
        .readings(TOWN, "p-10", t0, t0 + 1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored[1].flags.contains(QualityFlags::DUPLICATE));

    // A pipe actor panics: restarted with its share of the latest stored state.
    let pipe_before = twin.runtime.pipe_state(TOWN, "60").await.unwrap().unwrap();
    assert_eq!(pipe_before.timestamp_ms, state.timestamp_ms);
    twin.runtime
        .inject_panic(TOWN, ChaosTarget::Pipe("60".to_string()))
        .unwrap();
    eventually("pipe restarted", async || {
        twin.metrics.actor_restarts.load(Ordering::SeqCst) == 2
    })
    .await;
    let pipe_after = twin.runtime.pipe_state(TOWN, "60").await.unwrap();
    assert_eq!(pipe_after, Some(pipe_before));

    // The twin goes on: a later reading is stored and a later period solves with it.
    let later = now_ms();
    report_period(&twin, later, (61.0, 31.0)).await;
    let next = twin.next_state(later).await;
    let residual = next
        .residuals
        .iter()
        .find(|r| r.sensor_id == "p-10")
        .unwrap();
    assert_eq!(residual.measured, 61.0);
    assert_eq!(twin.metrics.actor_escalations.load(Ordering::SeqCst), 0);
    twin.runtime.shutdown().await;
}

/// The summary of `sensor`.
async fn summary_of(twin: &Twin, sensor: &str) -> actors::messages::SensorSummary {
    let all = twin.runtime.sensor_summary(TOWN).await.unwrap();
    all.into_iter().find(|s| s.sensor_id == sensor).unwrap()
}

/// Makes the entity of `sensor` panic and waits until the counters reach `restarts` and
/// `escalations`.
async fn panic_sensor(twin: &Twin, sensor: &str, restarts: u64, escalations: u64) {
    twin.runtime
        .inject_panic(TOWN, ChaosTarget::Sensor(sensor.to_string()))
        .unwrap();
    eventually("restarted", async || {
        twin.metrics.actor_restarts.load(Ordering::SeqCst) == restarts
            && twin.metrics.actor_escalations.load(Ordering::SeqCst) == escalations
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_entity_restarts_alone_and_its_siblings_keep_their_state() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let twin = start(store, slow(), RestartBudget::default()).await;
    let t0 = now_ms() - 60_000;
    let series = |sensor: &str, n: i64| -> Vec<Reading> {
        (0..n)
            .map(|i| Reading::new(sensor, t0 + i * 1000, 40.0 + i as f64))
            .collect()
    };
    for (sensor, n) in [("p-10", 2), ("p-20", 3), ("f-60", 4)] {
        assert_eq!(twin.submit(series(sensor, n)).await.unwrap(), n as usize);
    }
    // Net3's six sensors share one shard. The panic and the next reading reach it in this
    // order: the reading is handled by the restarted entity, not lost with the failed one.
    twin.runtime
        .inject_panic(TOWN, ChaosTarget::Sensor("p-10".to_string()))
        .unwrap();
    let after_panic = Reading::new("p-10", t0 + 10_000, 55.0);
    assert_eq!(twin.submit(vec![after_panic]).await.unwrap(), 1);
    assert_eq!(twin.metrics.actor_restarts.load(Ordering::SeqCst), 1);
    assert_eq!(twin.metrics.actor_escalations.load(Ordering::SeqCst), 0);

    let p10 = summary_of(&twin, "p-10").await;
    assert_eq!(p10.count, 1, "the restarted entity counts from zero");
    assert_eq!(
        (p10.last_value, p10.last_timestamp),
        (Some(55.0), Some(t0 + 10_000))
    );
    // Siblings kept their in-memory state: a reloaded entity would count from zero.
    assert_eq!(summary_of(&twin, "p-20").await.count, 3);
    assert_eq!(summary_of(&twin, "f-60").await.count, 4);
    let stored = twin
        .runtime
        .readings(TOWN, "p-10", t0, t0 + 60_000)
        .await
        .unwrap();
    let times: Vec<i64> = stored.iter().map(|p| p.timestamp).collect();
    assert_eq!(times, vec![t0, t0 + 1000, t0 + 10_000]);
    assert_eq!(stored[2].value, 55.0);
    let status = twin.runtime.municipality_status(TOWN).await.unwrap();
    assert_eq!(status.children, 2 + status.sensors + status.pipes);
    twin.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_budgets_escalate_entity_to_shard_to_municipality() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let budget = RestartBudget {
        max_restarts: 2,
        window: Duration::from_secs(60),
    };
    let twin = start(store, Duration::from_millis(200), budget).await;
    let t0 = now_ms() - 30_000;
    report_period(&twin, t0, (60.0, 30.0)).await;
    // The entity's own budget: two restarts alone, its siblings untouched.
    panic_sensor(&twin, "f-60", 1, 0).await;
    panic_sensor(&twin, "f-60", 2, 0).await;
    let sibling = summary_of(&twin, "p-20").await;
    assert_eq!((sibling.count, sibling.last_value), (1, Some(30.0)));
    // The third failure within the window exhausts it: the shard fails and the municipality
    // restarts the shard, which reloads every entity it hosts from the store.
    panic_sensor(&twin, "f-60", 3, 1).await;
    let sibling = summary_of(&twin, "p-20").await;
    assert_eq!((sibling.count, sibling.last_value), (0, Some(30.0)));
    // Not further: the municipality was not restarted (that would count a second escalation).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(twin.metrics.actor_escalations.load(Ordering::SeqCst), 1);
    assert_eq!(twin.metrics.actor_restarts.load(Ordering::SeqCst), 3);

    // A restarted shard's entities have fresh budgets; the municipality's budget (two shard
    // restarts) is spent by the second shard failure and exhausted by the third.
    panic_sensor(&twin, "f-60", 4, 1).await;
    panic_sensor(&twin, "f-60", 5, 1).await;
    panic_sensor(&twin, "f-60", 6, 2).await;
    panic_sensor(&twin, "f-60", 7, 2).await;
    panic_sensor(&twin, "f-60", 8, 2).await;
    // Entity -> shard, then municipality -> root: the root restarts the municipality.
    twin.runtime
        .inject_panic(TOWN, ChaosTarget::Sensor("f-60".to_string()))
        .unwrap();
    eventually("municipality restarted", async || {
        twin.metrics.actor_escalations.load(Ordering::SeqCst) == 4
            && twin.metrics.actor_restarts.load(Ordering::SeqCst) == 9
            && twin
                .runtime
                .municipality_status(TOWN)
                .await
                .is_ok_and(|s| s.children == 2 + s.sensors + s.pipes)
    })
    .await;
    // Network, alert manager, 6 sensors and one entity per pipe of Net3 run again.
    let pipes = net3()
        .links
        .iter()
        .filter(|l| matches!(l.kind, hydraulics::model::LinkKind::Pipe(_)))
        .count();
    let gauge = format!("\naquatwin_actors {}\n", 2 + 6 + pipes);
    assert!(twin.metrics.render().contains(&gauge), "{gauge}");
    let later = now_ms();
    report_period(&twin, later, (62.0, 32.0)).await;
    let next = twin.next_state(later).await;
    assert!(next.converged);
    let stored = twin
        .runtime
        .readings(TOWN, "p-20", later, later + 1)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    twin.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_bad_readings_raise_one_sensor_fault_alert() {
    use actors::messages::{AlertKind, AlertLocation};
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let twin = start(store, slow(), RestartBudget::default()).await;
    let mut alerts = twin.runtime.subscribe_alerts(TOWN).unwrap();
    let t0 = now_ms() - 600_000;
    // 1000 psi is far outside a pressure sensor's plausible range.
    let out_of_range = |from: i64| -> Vec<Reading> {
        (0..12)
            .map(|i| Reading::new("p-20", from + i * 1000, 1000.0))
            .collect()
    };
    assert_eq!(twin.submit(out_of_range(t0)).await.unwrap(), 12);
    let raised = tokio::time::timeout(Duration::from_secs(5), alerts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raised.kind, AlertKind::SensorFault);
    assert_eq!(raised.location, AlertLocation::Node("20".to_string()));
    assert!(raised.open);

    // The same fault seen again (by a restarted actor that forgot it raised it) is the same
    // alert, not a new one.
    twin.runtime
        .inject_panic(TOWN, ChaosTarget::Sensor("p-20".to_string()))
        .unwrap();
    eventually("sensor restarted", async || {
        twin.metrics.actor_restarts.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(twin.submit(out_of_range(t0 + 20_000)).await.unwrap(), 12);
    let repeated = tokio::time::timeout(Duration::from_secs(5), alerts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((repeated.id, repeated.occurrences), (raised.id, 2));

    // A plausible reading ends it.
    let good = vec![Reading::new("p-20", t0 + 40_000, 45.0)];
    assert_eq!(twin.submit(good).await.unwrap(), 1);
    let resolved = tokio::time::timeout(Duration::from_secs(5), alerts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.id, raised.id);
    assert!(!resolved.open);

    // Stored: a restarted alert manager has it back.
    twin.runtime
        .inject_panic(TOWN, ChaosTarget::Alerts)
        .unwrap();
    eventually("alert manager restarted", async || {
        twin.metrics.actor_restarts.load(Ordering::SeqCst) == 2
    })
    .await;
    let listed = twin.runtime.alerts(TOWN).await.unwrap();
    assert_eq!(listed, vec![resolved]);
    twin.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_pending_request_and_keeps_what_it_acknowledged() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let twin = start(store.clone(), slow(), RestartBudget::default()).await;
    let t0 = now_ms() - 3_000_000;
    let mut tasks = Vec::new();
    for s in 0..32usize {
        let handle = twin.handle.clone();
        let device = twin.device.clone();
        tasks.push(tokio::spawn(async move {
            let sensor = ["p-10", "p-20", "f-60"][s % 3];
            let mut acked = Vec::new();
            for i in 0.. {
                let ts = t0 + (i * 32 + s) as i64;
                let readings = vec![Reading::new(sensor, ts, 40.0)];
                match handle.submit(Gateway::Mqtt, device.clone(), readings).await {
                    Ok(1) => acked.push((sensor, ts)),
                    Ok(n) => panic!("{n} readings acknowledged for one"),
                    Err(err) => {
                        assert_eq!(err.reason, RejectReason::Unavailable);
                        return acked;
                    }
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    twin.runtime.shutdown().await;
    let mut acked = Vec::new();
    for task in tasks {
        // Every submitter got its answer: none hangs on a request lost in the shutdown.
        let answered = tokio::time::timeout(Duration::from_secs(10), task).await;
        acked.extend(answered.expect("a submitter is still waiting").unwrap());
    }
    assert!(!acked.is_empty());
    let series = twin::store::SeriesStore::default();
    let tenant = twin::store::TenantKeys::new(TOWN);
    for sensor in ["p-10", "p-20", "f-60"] {
        let stored: Vec<i64> = series
            .range(store.as_ref(), &tenant, sensor, t0, t0 + 10_000_000)
            .unwrap()
            .iter()
            .map(|p| p.timestamp)
            .collect();
        let mut want: Vec<i64> = acked
            .iter()
            .filter(|(s, _)| *s == sensor)
            .map(|(_, ts)| *ts)
            .collect();
        want.sort_unstable();
        // Compacted into blocks by the shutdown: exactly what was acknowledged (a request
        // refused while stopping was never queued).
        assert_eq!(stored, want, "{sensor}");
    }
}
