//! How many actors the runtime holds: starts PipeActor and SensorActor entities (half each,
//! hosted by shard actors) under municipalities with synthetic grid networks, then reports the
//! start time, the memory (VmRSS before and after, peak VmHWM from /proc/self/status) and the
//! time to send every entity one message (a reading through the ingest path for sensors, a
//! state query for pipes, one municipality's pipes after the other, each municipality's
//! concurrently).
//!
//! `cargo run --release -p actors --example actor_scale -- [entities] [municipalities]`
//! (defaults: 1000000 entities, 10 municipalities). Targets: start < 10 s, peak < 4 GiB.
//!
//! `cargo run --release -p actors --example actor_scale -- bare [actors]` (default 100000)
//! measures instead the cost of bare ractor actors (no state, no work), the reason sensors and
//! pipes are entities rather than an actor each (see the runtime's `shard` module). It runs on
//! its own: in the same process, memory freed by one measurement is reused by the other.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::config::{MunicipalityConfig, RuntimeConfig};
use actors::devices::{key_digest, Device, DeviceRegistry};
use actors::ingest::Gateway;
use actors::metrics::Metrics;
use actors::runtime::TwinRuntime;
use hydraulics::Network;
use twin::live::TwinClock;
use twin::store::MemoryStore;
use twin::{Reading, Sensor, SensorKind, Unit};

/// Sensors per device (a device's sensor list is searched linearly).
const SENSORS_PER_DEVICE: usize = 100;
/// Distinct junctions the sensors sit on (sensor targets are resolved by a linear search).
const SENSOR_NODES: usize = 100;

/// `name` from /proc/self/status, in MiB.
fn proc_status_mib(name: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// A `side` x `side` grid of junctions fed by one reservoir: `2 side (side - 1) + 1` pipes.
fn grid(side: usize) -> Result<Network, hydraulics::InpError> {
    let mut inp = String::from("[JUNCTIONS]\n");
    for r in 0..side {
        for c in 0..side {
            let _ = writeln!(inp, "J{r}_{c} 0 0.1");
        }
    }
    inp.push_str("[RESERVOIRS]\nR 100\n[PIPES]\nP_R R J0_0 100 300 100\n");
    for r in 0..side {
        for c in 0..side {
            if c + 1 < side {
                let _ = writeln!(inp, "H{r}_{c} J{r}_{c} J{r}_{} 100 200 100", c + 1);
            }
            if r + 1 < side {
                let _ = writeln!(inp, "V{r}_{c} J{r}_{c} J{}_{c} 100 200 100", r + 1);
            }
        }
    }
    inp.push_str("[OPTIONS]\nUnits LPS\n[END]\n");
    hydraulics::read_str(&inp, "grid.inp")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let bare = args.next_if(|a| a == "bare").is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if bare {
        let count: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
        return runtime.block_on(bare_baseline(count.max(1)));
    }
    let total: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let municipalities: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    runtime.block_on(run(total, municipalities.max(1)))
}

/// An actor that does nothing: ractor's own cost per actor.
struct Bare;

impl ractor::Actor for Bare {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<()>,
        _args: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
}

/// Spawns `count` bare actors under one supervisor; prints time and memory per actor.
async fn bare_baseline(count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let rss_before = proc_status_mib("VmRSS:");
    let started = Instant::now();
    let (parent, parent_task) = ractor::Actor::spawn(None, Bare, ()).await?;
    let mut starting = Vec::with_capacity(count);
    for _ in 0..count {
        let (_, start) =
            ractor::ActorRuntime::spawn_linked_instant(None, Bare, (), parent.get_cell())?;
        starting.push(start);
    }
    for start in starting {
        start.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_after = proc_status_mib("VmRSS:");
    println!(
        "baseline, {count} bare ractor actors: {:.2} us and {:.0} bytes per actor",
        elapsed * 1e6 / count as f64,
        (rss_after - rss_before) * 1024.0 * 1024.0 / count as f64
    );
    parent
        .stop_children_and_wait(None, Some(Duration::from_secs(60)))
        .await;
    parent.stop(None);
    parent_task.await?;
    Ok(())
}

async fn run(total: usize, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let per_municipality = total / count;
    let pipes_wanted = per_municipality / 2;
    // 2 s (s - 1) + 1 >= pipes_wanted
    let mut side = 2;
    while 2 * side * (side - 1) + 1 < pipes_wanted {
        side += 1;
    }
    let network = grid(side)?;
    let pipes = network.links.len();
    let sensors_per = per_municipality.saturating_sub(pipes).max(1);
    let mut configs = Vec::new();
    let mut devices = Vec::new();
    for m in 0..count {
        let id = format!("town{m}");
        let sensors: Vec<Sensor> = (0..sensors_per)
            .map(|i| {
                let node = &network.nodes[i % SENSOR_NODES.min(side * side)].id;
                Sensor::new(format!("s{i}"), SensorKind::Pressure, node, Unit::Meter)
            })
            .collect::<Result<_, _>>()?;
        for (d, chunk) in sensors.chunks(SENSORS_PER_DEVICE).enumerate() {
            devices.push(Device {
                id: format!("{id}-dev{d}"),
                municipality: id.clone(),
                sensors: chunk.iter().map(|s| s.id.clone()).collect(),
                key_sha256: key_digest("k"),
                active: true,
                lorawan: None,
            });
        }
        let clock = TwinClock {
            origin_ms: now_ms(),
        };
        configs.push(MunicipalityConfig::new(
            id,
            network.clone(),
            sensors,
            Duration::from_secs(3600),
            clock,
        ));
    }
    let actors = count * (pipes + sensors_per);
    println!(
        "{count} municipalities x ({pipes} PipeActor + {sensors_per} SensorActor entities) = \
         {actors} entities"
    );
    let registry = Arc::new(DeviceRegistry::new(devices)?);
    let rss_before = proc_status_mib("VmRSS:");

    let started = Instant::now();
    let config = RuntimeConfig::new(configs);
    let store = Arc::new(MemoryStore::new());
    let (twin, handle) = TwinRuntime::start(
        config,
        store,
        registry.clone(),
        Arc::new(Metrics::default()),
    )
    .await?;
    let start_time = started.elapsed();
    let rss_after = proc_status_mib("VmRSS:");
    println!(
        "start: {:.2} s ({:.2} us per entity)",
        start_time.as_secs_f64(),
        start_time.as_secs_f64() * 1e6 / actors as f64
    );
    println!(
        "memory: VmRSS {rss_before:.0} MiB before, {rss_after:.0} MiB after ({:.0} bytes per \
         entity, its share of the networks' twins included)",
        (rss_after - rss_before) * 1024.0 * 1024.0 / actors as f64
    );

    // One reading per sensor, through the whole ingest path (acknowledged once durable).
    let started = Instant::now();
    let ts = now_ms() - 1000;
    let mut tasks = Vec::new();
    for device in registry.all() {
        let handle = handle.clone();
        let device = device.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for sensor in &device.sensors {
                let reading = Reading::new(sensor.clone(), ts, 40.0);
                stored += handle
                    .submit(Gateway::Http, device.clone(), vec![reading])
                    .await
                    .unwrap_or(0);
            }
            stored
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await?;
    }
    let sensor_time = started.elapsed();
    println!(
        "one reading to every SensorActor: {:.2} s ({stored} stored, {:.0} readings/s)",
        sensor_time.as_secs_f64(),
        stored as f64 / sensor_time.as_secs_f64()
    );

    // One query to every pipe entity: each municipality's in turn, municipalities concurrently.
    let started = Instant::now();
    let twin = Arc::new(twin);
    let pipe_ids: Arc<Vec<String>> = Arc::new(network.links.iter().map(|l| l.id.clone()).collect());
    let mut tasks = Vec::new();
    for m in 0..count {
        let (twin, pipe_ids) = (twin.clone(), pipe_ids.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("town{m}");
            let mut answered = 0;
            for pipe in pipe_ids.iter() {
                if twin.pipe_state(&id, pipe).await.is_ok() {
                    answered += 1;
                }
            }
            answered
        }));
    }
    let mut answered = 0;
    for task in tasks {
        answered += task.await?;
    }
    let pipe_time = started.elapsed();
    println!(
        "one query to every PipeActor: {:.2} s ({answered} answered, {:.0} calls/s)",
        pipe_time.as_secs_f64(),
        answered as f64 / pipe_time.as_secs_f64()
    );
    println!("peak memory: VmHWM {:.0} MiB", proc_status_mib("VmHWM:"));

    let started = Instant::now();
    let twin = Arc::into_inner(twin).ok_or("a query task still holds the twin")?;
    twin.shutdown().await;
    println!("shutdown: {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
