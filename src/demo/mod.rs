//! `aquatwin demo`: the live twin in one command, nothing to set up. It provisions a temporary
//! directory with the bundled Net3 and its sensor layout (tank levels, pressures, flows), starts
//! `serve` in-process on free ports, runs a fleet of MQTT devices against it whose values come
//! from our simulation of Net3, and prints the twin's state every hydraulic period until
//! `--duration` ends or Ctrl-C.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actors::ingest::Gateway;
use anyhow::Context as _;
use aquatwin::auth::Role;

use crate::fleet::{self, provision, TempDir, Transport};
use crate::serve::{self, Server};

/// The demo network, EPANET's Net3 (public domain).
const NET3: &str = include_str!("../../hydraulics/networks/Net3.inp");
/// Its sensor layout.
const NET3_SENSORS: &str = include_str!("net3_sensors.toml");
/// The demo's municipality.
const MUNICIPALITY: &str = "net3";
/// Simulation time at which the demo starts: 06:00, when demand rises.
const START_OF_DAY_SECONDS: i64 = 6 * 3600;
/// Hydraulic period of the demo, seconds.
const PERIOD_SECONDS: f64 = 1.0;
/// Readings per second per sensor.
const READINGS_PER_SENSOR_PER_SECOND: f64 = 2.0;
/// Pressure sensors shown per line.
const SHOWN_PRESSURES: usize = 3;

/// `aquatwin demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seconds to run.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
}

/// `aquatwin demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    serve::init_logging("warn");
    // The model first: what a one-week simulation of Net3 looks like.
    crate::simulate::demo()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(live(args.duration))
}

async fn live(duration: f64) -> anyhow::Result<()> {
    let dir = TempDir::new("demo")?;
    let sensors = twin::sensors_file::parse(NET3_SENSORS).context("the bundled sensor layout")?;
    let now = fleet::unix_ms();
    let clock_origin_ms = now - START_OF_DAY_SECONDS * 1000;
    provision::write(&provision::Provision {
        dir: &dir.path,
        network_text: NET3,
        municipality: MUNICIPALITY,
        sensors: &sensors,
        devices: 3,
        clock_origin_ms,
        period_seconds: PERIOD_SECONDS,
        listen: provision::Listen {
            http: "127.0.0.1:0".into(),
            mqtt: "127.0.0.1:0".into(),
            lorawan: "127.0.0.1:0".into(),
        },
    })?;
    let config = serve::config::load(&dir.path.join(provision::SERVE_CONFIG), now)?;
    // Tokens of a demo live as long as the demo: a fresh secret, no warning about it.
    let server = Server::start(config, Some(rand::random::<[u8; 32]>().to_vec())).await?;
    // A viewer for this run, so that the printed command works as it is.
    let password = hex::encode(rand::random::<[u8; 16]>());
    let now_s = now / 1000;
    server
        .accounts()
        .create_user("demo", &password, Role::Viewer, Some(MUNICIPALITY), now_s)
        .context("cannot create the demo viewer")?;
    let token = server
        .accounts()
        .login("demo", &password, now_s)
        .context("cannot log the demo viewer in")?
        .access_token;
    let mqtt = server.mqtt.context("the demo runs the embedded broker")?;
    println!();
    println!(
        "live twin of Net3: {} sensors over MQTT, one hydraulic period per {PERIOD_SECONDS} s, \
         {duration} s (Ctrl-C stops)",
        sensors.len()
    );
    println!("serving {}", server.addresses());
    println!(
        "try (viewer token, 15 min): curl -H 'Authorization: Bearer {token}' http://{}/api/v1/municipalities/{MUNICIPALITY}/sensors",
        server.http
    );
    let (fleet_file, base) = provision::read(&dir.path.join(provision::FLEET_FILE))?;
    let plan = fleet::plan_from_file(&fleet_file, &base)?;
    let options = fleet::RunOptions {
        transport: Transport::Mqtt,
        target: mqtt,
        rate: Some(READINGS_PER_SENSOR_PER_SECOND * sensors.len() as f64),
        duration: Some(duration),
        count: None,
        batch: 1,
        connections: fleet_file.device.len(),
        inflight: 100,
        leak: None,
        acked_log: None,
        progress: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let fleet_run = tokio::spawn({
        let stop = stop.clone();
        async move { fleet::execute(plan, &options, stop).await }
    });
    let mut states = server
        .runtime()
        .subscribe_state(MUNICIPALITY)
        .context("the demo municipality")?;
    let deadline = tokio::time::sleep(Duration::from_secs_f64(duration.max(0.0)));
    tokio::pin!(deadline);
    println!(
        "{:>8}  {:>9}  {:<60}  {:>8}  {:>6}",
        "time", "converged", "pressure (psi) measured / simulated", "stored", "alerts"
    );
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => break,
            received = states.recv() => {
                let state = match received {
                    Ok(state) => state,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let pressures: Vec<String> = state
                    .residuals
                    .iter()
                    .filter(|r| r.sensor_id.starts_with("P-"))
                    .take(SHOWN_PRESSURES)
                    .map(|r| format!("{} {:.1}/{:.1}", r.sensor_id, r.measured, r.simulated))
                    .collect();
                let alerts = server
                    .runtime()
                    .alerts(MUNICIPALITY)
                    .await
                    .map_or(0, |alerts| alerts.iter().filter(|a| a.open).count());
                let seconds = state.sim_seconds;
                println!(
                    "{:>2}:{:02}:{:02}  {:>9}  {:<60}  {:>8}  {:>6}",
                    seconds / 3600 % 24,
                    seconds / 60 % 60,
                    seconds % 60,
                    if state.converged { "yes" } else { "NO" },
                    if pressures.is_empty() { "(waiting for readings)".to_string() } else { pressures.join("  ") },
                    server.metrics().accepted_count(Gateway::Mqtt),
                    alerts
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let summary = fleet_run.await.context("the fleet task failed")??;
    server.shutdown().await;
    println!(
        "fleet: {} readings sent, {} stored and acknowledged; p50 {:.2} ms, p99 {:.2} ms \
         publish -> stored",
        summary.sent, summary.acknowledged, summary.latency_ms.p50, summary.latency_ms.p99
    );
    Ok(())
}
