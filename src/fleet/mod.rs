//! `aquatwin fleet`: a synthetic fleet of sensors for load tests. Values come from our solver's
//! simulation of the network (plus noise, plus an optional leak); readings go out over MQTT
//! (single or batched), HTTP or LoRaWAN UDP at a given rate; the end of a run reports what was
//! sent and acknowledged, the throughput and the publish-to-acknowledgement latency (for QoS 1
//! MQTT and HTTP the twin acknowledges only once readings are durably stored).

mod http;
mod lorawan;
mod mqtt;
pub mod provision;
mod source;
pub mod synth;

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use twin::Sensor;

use crate::BadInput;
use source::{FleetClock, ReadingSource, RunShared};
use synth::{Leak, Synthesizer};

/// How readings travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// MQTT QoS 1, one reading per message.
    Mqtt,
    /// MQTT QoS 1, `--batch` readings of one sensor per message.
    MqttBatch,
    /// HTTP `POST /api/v1/ingest`, `--batch` readings per request.
    Http,
    /// LoRaWAN uplinks in Semtech UDP PUSH_DATA (acknowledged by PUSH_ACK: received, not
    /// stored).
    Lorawan,
}

/// `aquatwin fleet` options.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// The network the sensors are on (not needed with --config).
    #[arg(long)]
    pub network: Option<PathBuf>,
    /// Number of sensors (not needed with --config).
    #[arg(long, default_value_t = 100)]
    pub sensors: usize,
    /// A fleet file written by --provision: devices, keys, addresses of the twin.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the sensors file, the devices and a serve configuration into DIR, then stop.
    #[arg(long, value_name = "DIR")]
    pub provision: Option<PathBuf>,
    /// Municipality id (with --network).
    #[arg(long, default_value = "fleet")]
    pub municipality: String,
    /// How readings travel.
    #[arg(long, value_enum, default_value_t = Transport::Mqtt)]
    pub transport: Transport,
    /// Where to: host:port (MQTT broker, HTTP server, LoRaWAN UDP gateway); default from
    /// --config, else the serve defaults.
    #[arg(long)]
    pub target: Option<String>,
    /// Readings per second, all connections together (default: as fast as acknowledged).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of sending.
    #[arg(long, conflicts_with = "count")]
    pub duration: Option<f64>,
    /// Readings to send in all.
    #[arg(long)]
    pub count: Option<u64>,
    /// Readings per message (mqtt-batch, http, lorawan).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Concurrent connections (one device each; with --provision, the number of devices).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Messages in flight per MQTT connection.
    #[arg(long, default_value_t = 1000)]
    pub inflight: usize,
    /// A leak: NODE:FLOW:FROM (flow in network units, from in seconds or H:MM of simulation).
    #[arg(long)]
    pub leak: Option<Leak>,
    /// Record every acknowledged reading (`sensor_id,timestamp_ms,value`) to this file.
    #[arg(long)]
    pub acked_log: Option<PathBuf>,
    /// Start a raw Mosquitto broker (no consumer) and publish to it: the reference figure.
    #[arg(long)]
    pub against_mosquitto: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Default run length when neither --duration nor --count is given.
const DEFAULT_SECONDS: f64 = 10.0;

/// How fast one connection sends.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Readings per second of this connection (none: as fast as acknowledged).
    pub rate: Option<f64>,
    /// Messages in flight at most.
    pub inflight: usize,
}

impl Pacing {
    fn pacer(&self, readings_per_message: usize) -> Pacer {
        let interval = self
            .rate
            .filter(|rate| *rate > 0.0)
            .map(|rate| Duration::from_secs_f64(readings_per_message as f64 / rate));
        Pacer {
            interval,
            next: Instant::now(),
        }
    }
}

/// Spaces messages evenly at the connection's rate.
struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    /// How long to wait before the next message (none: send now).
    fn wait(&mut self) -> Option<Duration> {
        let interval = self.interval?;
        let now = Instant::now();
        // After a stall, do not burst to catch up more than a second.
        if now.duration_since(self.next) > Duration::from_secs(1) {
            self.next = now;
        }
        let due = self.next;
        self.next += interval;
        (due > now).then(|| due - now)
    }
}

/// A device the fleet plays.
#[derive(Debug, Clone)]
pub struct PlayedDevice {
    /// Device id.
    pub id: String,
    /// Key (none against an open broker).
    pub key: Option<String>,
    /// Indices of its sensors.
    pub sensors: Vec<u32>,
    /// LoRaWAN ABP session.
    pub lorawan: Option<lorawan::Session>,
}

/// Everything a run needs.
pub struct Plan {
    /// Municipality id.
    pub municipality: String,
    /// The network.
    pub network: hydraulics::Network,
    /// The sensors.
    pub sensors: Vec<Sensor>,
    /// The devices.
    pub devices: Vec<PlayedDevice>,
    /// Unix ms of simulation time 0.
    pub clock_origin_ms: i64,
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Transport.
    pub transport: Transport,
    /// Target address.
    pub target: SocketAddr,
    /// Readings per second in all (none: as fast as acknowledged).
    pub rate: Option<f64>,
    /// Seconds of sending (none: until --count is spent or stopped).
    pub duration: Option<f64>,
    /// Readings to send in all.
    pub count: Option<u64>,
    /// Readings per message.
    pub batch: usize,
    /// Connections.
    pub connections: usize,
    /// MQTT messages in flight per connection.
    pub inflight: usize,
    /// A leak.
    pub leak: Option<Leak>,
    /// Where to record acknowledged readings.
    pub acked_log: Option<PathBuf>,
    /// Print a progress line every second (stderr).
    pub progress: bool,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Transport.
    pub transport: Transport,
    /// Target address.
    pub target: String,
    /// Connections.
    pub connections: usize,
    /// Readings sent.
    pub sent: u64,
    /// Readings acknowledged.
    pub acknowledged: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages refused.
    pub refused: u64,
    /// Wall-clock seconds from the first send to the last acknowledgement.
    pub seconds: f64,
    /// Acknowledged readings per second.
    pub readings_per_second: f64,
    /// Acknowledged messages per second.
    pub messages_per_second: f64,
    /// Publish-to-acknowledgement latency.
    pub latency_ms: Latency,
    /// Connections that failed, with the reason.
    pub errors: Vec<String>,
}

/// `aquatwin fleet`.
pub fn run(args: &FleetArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.provision {
        return provision_command(args, dir);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_command(args))
}

fn provision_command(args: &FleetArgs, dir: &Path) -> anyhow::Result<()> {
    let network_path = args
        .network
        .as_ref()
        .ok_or_else(|| BadInput("--provision needs --network".into()))?;
    let network_text = std::fs::read_to_string(network_path)
        .map_err(|err| BadInput(format!("cannot read {}: {err}", network_path.display())))?;
    let network = hydraulics::read_str(&network_text, &network_path.display().to_string())
        .map_err(|err| BadInput(format!("{err}")))?;
    let sensors = synth::layout(&network, args.sensors);
    let fleet = provision::write(&provision::Provision {
        dir,
        network_text: &network_text,
        municipality: &args.municipality,
        sensors: &sensors,
        devices: args.connections,
        clock_origin_ms: unix_ms(),
        period_seconds: 60.0,
        listen: provision::Listen::default(),
    })?;
    println!(
        "provisioned {}: {} sensors, {} devices; run `aquatwin serve --config {}` and \
         `aquatwin fleet --config {}`",
        dir.display(),
        sensors.len(),
        fleet.device.len(),
        dir.join(provision::SERVE_CONFIG).display(),
        dir.join(provision::FLEET_FILE).display()
    );
    Ok(())
}

async fn run_command(args: &FleetArgs) -> anyhow::Result<()> {
    let (plan, default_targets) = match &args.config {
        Some(path) => {
            let (file, base) = provision::read(path)?;
            let targets = [file.mqtt.clone(), file.http.clone(), file.lorawan.clone()];
            (plan_from_file(&file, &base)?, Some(targets))
        }
        None => (plan_open(args)?, None),
    };
    let mut mosquitto = None;
    let target = if args.against_mosquitto {
        if !matches!(args.transport, Transport::Mqtt | Transport::MqttBatch) {
            return Err(BadInput("--against-mosquitto needs an MQTT transport".into()).into());
        }
        let broker = ReferenceBroker::start()?;
        let address = broker.address;
        mosquitto = Some(broker);
        address
    } else {
        let text = match (&args.target, default_targets) {
            (Some(target), _) => target.clone(),
            (None, Some([mqtt, http, lorawan])) => match args.transport {
                Transport::Mqtt | Transport::MqttBatch => mqtt,
                Transport::Http => http,
                Transport::Lorawan => lorawan,
            },
            (None, None) => match args.transport {
                Transport::Mqtt | Transport::MqttBatch => {
                    crate::serve::config::DEFAULT_MQTT_LISTEN.into()
                }
                Transport::Http => crate::serve::config::DEFAULT_HTTP_LISTEN.into(),
                Transport::Lorawan => crate::serve::config::DEFAULT_LORAWAN_LISTEN.into(),
            },
        };
        resolve_target(&text)?
    };
    let plan = if mosquitto.is_some() {
        // A raw broker knows no devices: publish unauthenticated.
        Plan {
            devices: plan
                .devices
                .into_iter()
                .map(|device| PlayedDevice {
                    key: None,
                    ..device
                })
                .collect(),
            ..plan
        }
    } else {
        plan
    };
    let duration = match (args.duration, args.count) {
        (None, None) => Some(DEFAULT_SECONDS),
        (duration, _) => duration,
    };
    let options = RunOptions {
        transport: args.transport,
        target,
        rate: args.rate,
        duration,
        count: args.count,
        batch: args.batch,
        connections: args.connections,
        inflight: args.inflight,
        leak: args.leak.clone(),
        acked_log: args.acked_log.clone(),
        progress: true,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        })
    };
    let summary = execute(plan, &options, stop).await?;
    ctrl_c.abort();
    drop(mosquitto);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    if summary.acknowledged == 0 && summary.sent > 0 {
        anyhow::bail!("nothing was acknowledged");
    }
    Ok(())
}

/// The plan of a provisioned fleet.
pub fn plan_from_file(file: &provision::FleetFile, base: &Path) -> anyhow::Result<Plan> {
    let network_path = base.join(&file.network);
    let network = hydraulics::read_file(&network_path).map_err(|err| BadInput(format!("{err}")))?;
    let sensors_path = base.join(&file.sensors);
    let text = std::fs::read_to_string(&sensors_path)
        .map_err(|err| BadInput(format!("cannot read {}: {err}", sensors_path.display())))?;
    let sensors = twin::sensors_file::parse(&text)
        .map_err(|err| BadInput(format!("{}: {err}", sensors_path.display())))?;
    let devices = file
        .device
        .iter()
        .map(|device| {
            let indices = device
                .sensors
                .iter()
                .map(|id| {
                    sensors
                        .iter()
                        .position(|sensor| &sensor.id == id)
                        .map(|i| i as u32)
                        .ok_or_else(|| {
                            BadInput(format!("device {}: unknown sensor {id}", device.id))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PlayedDevice {
                id: device.id.clone(),
                key: Some(device.key.clone()),
                sensors: indices,
                lorawan: Some(lorawan::Session::from_hex(
                    &device.dev_addr,
                    &device.nwk_s_key,
                    &device.app_s_key,
                    Some(base.join(format!("lorawan/{}.fcnt", device.id))),
                )?),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Plan {
        municipality: file.municipality.clone(),
        network,
        sensors,
        devices,
        clock_origin_ms: file.clock_origin_ms,
    })
}

/// The plan of an unprovisioned fleet (e.g. against a raw broker): devices without keys.
fn plan_open(args: &FleetArgs) -> anyhow::Result<Plan> {
    let path = args
        .network
        .as_ref()
        .ok_or_else(|| BadInput("give --network (with --sensors) or --config".into()))?;
    let network = hydraulics::read_file(path).map_err(|err| BadInput(format!("{err}")))?;
    let sensors = synth::layout(&network, args.sensors);
    let devices = args.connections.clamp(1, sensors.len().max(1));
    let devices = (0..devices)
        .map(|d| PlayedDevice {
            id: format!("fleet-{d}"),
            key: None,
            sensors: (d..sensors.len())
                .step_by(devices)
                .map(|i| i as u32)
                .collect(),
            lorawan: None,
        })
        .collect();
    Ok(Plan {
        municipality: args.municipality.clone(),
        network,
        sensors,
        devices,
        clock_origin_ms: unix_ms(),
    })
}

/// Runs `plan`; `stop` ends sending early.
pub async fn execute(
    plan: Plan,
    options: &RunOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Summary> {
    if plan.devices.is_empty() || plan.sensors.is_empty() {
        return Err(BadInput("the fleet has no sensors".into()).into());
    }
    let synth = Synthesizer::new(&plan.network, &plan.sensors, options.leak.as_ref())?;
    let ack_log = match &options.acked_log {
        None => None,
        Some(path) => Some(std::sync::Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ))),
    };
    let started = Instant::now();
    let shared = Arc::new(RunShared {
        sensor_ids: plan.sensors.iter().map(|s| s.id.clone()).collect(),
        synth,
        clock: FleetClock {
            started,
            start_ms: unix_ms(),
            origin_ms: plan.clock_origin_ms,
        },
        counters: Default::default(),
        budget: options
            .count
            .map(|count| AtomicI64::new(i64::try_from(count).unwrap_or(i64::MAX))),
        deadline: options
            .duration
            .map(|seconds| started + Duration::from_secs_f64(seconds.max(0.0))),
        stop,
        ack_log,
        latencies: Default::default(),
    });
    let connections = match options.transport {
        // A LoRaWAN device has one frame counter: two senders would replay each other's.
        Transport::Lorawan => options.connections.clamp(1, plan.devices.len()),
        _ => options.connections.max(1),
    };
    let pacing = Pacing {
        rate: options.rate.map(|rate| rate / connections as f64),
        inflight: options.inflight.clamp(1, 60_000),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let device = plan.devices[c % plan.devices.len()].clone();
        let source = ReadingSource::new(shared.clone(), device.sensors.clone(), c as u64 + 1);
        let options = options.clone();
        let municipality = plan.municipality.clone();
        tasks.spawn(async move {
            let result = match options.transport {
                Transport::Mqtt | Transport::MqttBatch => {
                    let batch = if options.transport == Transport::Mqtt {
                        1
                    } else {
                        options.batch
                    };
                    let login = mqtt::MqttLogin {
                        client_id: format!("{}-{c}", device.id),
                        device_id: device.id.clone(),
                        key: device.key.clone(),
                    };
                    mqtt::publish(options.target, &municipality, login, source, batch, pacing).await
                }
                Transport::Http => {
                    http::publish(
                        options.target,
                        &device.id,
                        device.key.as_deref(),
                        source,
                        options.batch,
                        pacing,
                    )
                    .await
                }
                Transport::Lorawan => match &device.lorawan {
                    Some(session) => {
                        lorawan::publish(options.target, session, source, options.batch, pacing)
                            .await
                    }
                    None => Err(anyhow::anyhow!(
                        "device {} has no LoRaWAN session (provision the fleet)",
                        device.id
                    )),
                },
            };
            result.map_err(|err| format!("connection {c} ({}): {err:#}", device.id))
        });
    }
    let progress = options.progress.then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            let mut last = 0;
            loop {
                ticker.tick().await;
                let acked = shared.counters.acked.load(Ordering::Relaxed);
                eprintln!(
                    "fleet: {:>5.1} s  sent {}  acknowledged {}  {} readings/s",
                    started.elapsed().as_secs_f64(),
                    shared.counters.sent.load(Ordering::Relaxed),
                    acked,
                    acked - last
                );
                last = acked;
            }
        })
    });
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(error)) => errors.push(error),
            Err(join_error) => errors.push(format!("a connection task failed: {join_error}")),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(progress) = progress {
        progress.abort();
    }
    if let Some(log) = &shared.ack_log {
        if let Ok(mut log) = log.lock() {
            std::io::Write::flush(&mut *log).context("cannot write the acknowledged log")?;
        }
    }
    let counters = &shared.counters;
    let acknowledged = counters.acked.load(Ordering::Relaxed);
    let messages_acked = counters.messages_acked.load(Ordering::Relaxed);
    Ok(Summary {
        transport: options.transport,
        target: options.target.to_string(),
        connections,
        sent: counters.sent.load(Ordering::Relaxed),
        acknowledged,
        messages: counters.messages.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        seconds,
        readings_per_second: acknowledged as f64 / seconds.max(1e-9),
        messages_per_second: messages_acked as f64 / seconds.max(1e-9),
        latency_ms: shared
            .latencies
            .lock()
            .map(|mut latencies| percentiles(&mut latencies))
            .unwrap_or_default(),
        errors,
    })
}

fn percentiles(micros: &mut [u32]) -> Latency {
    if micros.is_empty() {
        return Latency::default();
    }
    micros.sort_unstable();
    let at = |q: f64| {
        let index = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1;
        f64::from(micros[index]) / 1000.0
    };
    Latency {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn print_summary(summary: &Summary) {
    println!(
        "fleet: {:?} to {}, {} connections, {:.1} s",
        summary.transport, summary.target, summary.connections, summary.seconds
    );
    println!(
        "sent {} readings in {} messages; acknowledged {} ({:.2}%), refused messages {}",
        summary.sent,
        summary.messages,
        summary.acknowledged,
        100.0 * summary.acknowledged as f64 / summary.sent.max(1) as f64,
        summary.refused
    );
    println!(
        "throughput {:.0} readings/s, {:.0} messages/s",
        summary.readings_per_second, summary.messages_per_second
    );
    let l = summary.latency_ms;
    println!(
        "latency publish -> acknowledged: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        l.p50, l.p90, l.p99, l.max
    );
    for error in &summary.errors {
        println!("error: {error}");
    }
}

/// `host:port` (or `scheme://host:port`) to an address.
fn resolve_target(text: &str) -> anyhow::Result<SocketAddr> {
    let bare = text.split_once("://").map_or(text, |(_, rest)| rest);
    let bare = bare.trim_end_matches('/');
    bare.to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| BadInput(format!("`{text}` is not a host:port address")).into())
}

/// Milliseconds since the Unix epoch now.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A `mosquitto` process with no consumer, on a free port, for the reference figure.
struct ReferenceBroker {
    child: std::process::Child,
    address: SocketAddr,
    _dir: TempDir,
}

impl ReferenceBroker {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = TempDir::new("mosquitto")?;
        let config = dir.path.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )?;
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start `mosquitto` (apt install mosquitto)")?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(address).is_err() {
            if Instant::now() > deadline {
                anyhow::bail!("mosquitto did not start listening on {address}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            address,
            _dir: dir,
        })
    }
}

impl Drop for ReferenceBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// A new empty directory under the system's temporary directory.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "aquatwin-{label}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
