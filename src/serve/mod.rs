//! `aquatwin serve --config aquatwin.toml`: the live twin as a service. Opens the store in the
//! data directory, starts the actor runtime, the ingest gateways (embedded MQTT broker or an
//! external broker, LoRaWAN UDP, HTTP) and the HTTP server; stops cleanly on SIGINT/SIGTERM
//! (intake stops, everything received is answered and flushed, exit 0).
//!
//! On start it prints one line that scripts and tests read:
//! `aquatwin serve: listening http=127.0.0.1:8080 mqtt=127.0.0.1:1883 lorawan=127.0.0.1:1700`
//! (`mqtt=external` with an external broker); port 0 in the configuration picks a free port
//! and the line gives the one picked.

mod admin;
mod audit;
pub mod config;
mod devices;
mod hardening;
mod http;
mod jobs;
mod networks;
mod openapi;
mod readings;
mod rules;
mod stream;
mod subscriptions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actors::config::{MunicipalityConfig, RuntimeConfig};
use actors::devices::DeviceRegistry;
use actors::gateway::lorawan_udp::{self, LorawanUdpHandle};
use actors::gateway::mqtt_broker::{
    self, BrokerHandle, BrokerOptions, HealthSensors, IntegrationUser,
};
use actors::gateway::mqtt_external::{self, ExternalHandle, ExternalOptions};
use actors::metrics::Metrics;
use actors::runtime::TwinRuntime;
use anyhow::Context as _;
use aquatwin::auth::jwt::JwtKey;
use aquatwin::auth::users::Accounts;
use aquatwin::notify::{Notifier, NotifierConfig, Subscription, SubscriptionStore};
use tokio::sync::oneshot;
use twin::SensorKind;

use crate::BadInput;
use config::{MqttSource, ServeConfig};

/// Environment variable holding the secret that signs access tokens (at least 32 bytes).
pub const JWT_SECRET_ENV: &str = "AQUATWIN_JWT_SECRET";

/// How long open WebSocket streams get to close when the server stops.
const STREAMS_CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long to wait for an external broker to confirm our subscription.
const EXTERNAL_SUBSCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How often the devices' last-heard times go to the store (and once more at a clean stop): a
/// `kill -9` loses at most this much of them, and the store sees one small batch a minute.
const PRESENCE_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// `aquatwin serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Data directory (overrides the configuration's `data_dir`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Take MQTT from this external broker (mqtt://host:port) instead of the embedded one.
    #[arg(long)]
    pub mqtt_url: Option<String>,
    /// File holding the secret that signs access tokens (else $AQUATWIN_JWT_SECRET; with
    /// neither, a random one: tokens then end with the process).
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
}

/// `aquatwin serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    init_logging("info");
    let mut config = config::load(&args.config, crate::fleet::unix_ms())
        .map_err(|err| BadInput(err.to_string()))?;
    if let Some(data) = &args.data {
        config.data_dir = data.clone();
    }
    if let Some(url) = &args.mqtt_url {
        config.mqtt = MqttSource::External {
            url: url.clone(),
            client_id: "aquatwin-serve".into(),
            username: None,
            password: None,
        };
    }
    let jwt_secret = match &args.jwt_secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|err| BadInput(format!("cannot read {}: {err}", path.display())))?
                .trim()
                .as_bytes()
                .to_vec(),
        ),
        None => std::env::var(JWT_SECRET_ENV)
            .ok()
            .map(|secret| secret.into_bytes()),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(config, jwt_secret).await?;
        println!("aquatwin serve: listening {}", server.addresses());
        shutdown_signal().await;
        tracing::info!("stopping: intake closed, flushing");
        server.shutdown().await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// Stores the configured subscriptions and starts the notifier following every municipality's
/// alerts.
fn start_notifier(
    runtime: &TwinRuntime,
    store: &Arc<dyn twin::Store>,
    subscriptions: Vec<(String, Vec<Subscription>)>,
    config: NotifierConfig,
) -> anyhow::Result<Notifier> {
    let stored = SubscriptionStore::new(store.clone());
    for (municipality, list) in &subscriptions {
        for subscription in list {
            stored
                .put(municipality, subscription)
                .with_context(|| format!("cannot store subscription {}", subscription.id))?;
        }
    }
    let notifier = Notifier::spawn(config, stored).context("cannot start the notifier")?;
    for (municipality, _) in &subscriptions {
        let alerts = runtime
            .subscribe_alerts(municipality)
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        notifier.follow(municipality, alerts);
    }
    Ok(notifier)
}

/// Writes the devices' last-heard times that changed, off the async threads.
async fn save_presence(devices: Arc<DeviceRegistry>) {
    match tokio::task::spawn_blocking(move || devices.save_presence()).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::warn!("device last-heard times not saved: {err}"),
        Err(err) => tracing::warn!("device last-heard times not saved: {err}"),
    }
}

/// Saves the devices' last-heard times every [`PRESENCE_SAVE_INTERVAL`].
fn save_presence_periodically(devices: Arc<DeviceRegistry>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRESENCE_SAVE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once, when nothing was heard yet.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            save_presence(devices.clone()).await;
        }
    })
}

/// Sets up logging on stderr, filtered by RUST_LOG (else `default_level`).
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(err) => {
                    tracing::error!("cannot listen for SIGTERM: {err}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Where MQTT messages come from, running.
enum MqttGateway {
    Embedded(BrokerHandle),
    External(ExternalHandle),
}

/// A running `serve`: runtime, gateways and HTTP server.
pub struct Server {
    /// The HTTP server's address.
    pub http: SocketAddr,
    /// The embedded broker's address (none with an external broker).
    pub mqtt: Option<SocketAddr>,
    /// The LoRaWAN UDP gateway's address.
    pub lorawan: SocketAddr,
    runtime: Arc<TwinRuntime>,
    metrics: Arc<Metrics>,
    accounts: Arc<Accounts>,
    mqtt_gateway: MqttGateway,
    lorawan_gateway: LorawanUdpHandle,
    http_stop: oneshot::Sender<()>,
    http_task: tokio::task::JoinHandle<std::io::Result<()>>,
    streams: Arc<stream::Streams>,
    devices: Arc<DeviceRegistry>,
    presence_saver: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts everything `config` describes; returns once every socket is bound.
    pub async fn start(config: ServeConfig, jwt_secret: Option<Vec<u8>>) -> anyhow::Result<Self> {
        let jwt_key = match jwt_secret {
            Some(secret) => JwtKey::new(secret)
                .map_err(|err| BadInput(format!("{JWT_SECRET_ENV} / --jwt-secret-file: {err}")))?,
            None => {
                tracing::warn!(
                    "no {JWT_SECRET_ENV} or --jwt-secret-file: access tokens are signed with a \
                     random secret and end with this process"
                );
                JwtKey::new(rand::random::<[u8; 32]>().to_vec())
                    .map_err(|err| anyhow::anyhow!("{err}"))?
            }
        };
        let store = twin::store::RedbStore::open(&config.data_dir)
            .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
        let store: Arc<dyn twin::Store> = Arc::new(store);
        let municipality_ids: Vec<String> =
            config.municipalities.iter().map(|m| m.id.clone()).collect();
        let devices = Arc::new(
            DeviceRegistry::open(config.devices.clone(), store.clone(), &municipality_ids)
                .map_err(|err| BadInput(err.to_string()))?,
        );
        let device_settings = devices::DeviceSettings {
            silence_after: config.silence_after,
            sensors: config
                .municipalities
                .iter()
                .map(|m| (m.id.clone(), m.sensors.clone()))
                .collect(),
        };
        let metrics = Arc::new(Metrics::default());
        // Battery and signal sensors name their device: `.../status` messages feed them.
        let mut health_sensors: HashMap<String, HealthSensors> = HashMap::new();
        for sensor in config.municipalities.iter().flat_map(|m| &m.sensors) {
            let entry = health_sensors.entry(sensor.target.clone());
            match sensor.kind {
                SensorKind::Battery => entry.or_default().battery = Some(sensor.id.clone()),
                SensorKind::Signal => entry.or_default().signal = Some(sensor.id.clone()),
                _ => {}
            }
        }
        let element_ids = config
            .municipalities
            .iter()
            .map(|m| (m.id.clone(), http::ElementIds::of(&m.network)))
            .collect::<HashMap<_, _>>();
        let networks = config
            .municipalities
            .iter()
            .map(|m| (m.id.clone(), Arc::new(m.network.clone())))
            .collect::<HashMap<_, _>>();
        let subscriptions: Vec<(String, Vec<Subscription>)> = config
            .municipalities
            .iter()
            .map(|m| (m.id.clone(), m.subscriptions.clone()))
            .collect();
        let municipalities = config
            .municipalities
            .into_iter()
            .map(|m| MunicipalityConfig {
                detection: m.detection,
                escalation: m.escalation,
                alert_rules: m.alert_rules,
                ..MunicipalityConfig::new(m.id, m.network, m.sensors, m.period, m.clock)
            })
            .collect();
        let presence_saver = save_presence_periodically(devices.clone());
        let (runtime, ingest) = TwinRuntime::start(
            RuntimeConfig::new(municipalities),
            store.clone(),
            devices.clone(),
            metrics.clone(),
        )
        .await
        .context("cannot start the twin")?;
        let runtime = Arc::new(runtime);
        let notifier = start_notifier(
            &runtime,
            &store,
            subscriptions,
            NotifierConfig {
                smtp: config.smtp.clone(),
                link_base: config.link_base.clone(),
                history_per_subscription: config.history_per_subscription,
                extra_trust_anchors: config.webhook_trust_anchors.clone(),
                ..NotifierConfig::default()
            },
        )?;
        let (mqtt, mqtt_gateway) = match &config.mqtt {
            MqttSource::Embedded(listen) => {
                let options = BrokerOptions {
                    chirpstack_user: config.chirpstack.as_ref().map(|login| IntegrationUser {
                        user: login.username.clone(),
                        key_sha256: login.key_sha256,
                    }),
                    health_sensors,
                    ..BrokerOptions::default()
                };
                let broker = mqtt_broker::start_mqtt_broker(*listen, ingest.clone(), options)
                    .await
                    .context("cannot start the MQTT broker")?;
                (Some(broker.local_addr()), MqttGateway::Embedded(broker))
            }
            MqttSource::External {
                url,
                client_id,
                username,
                password,
            } => {
                let options = ExternalOptions {
                    client_id: client_id.clone(),
                    credentials: username
                        .clone()
                        .map(|user| (user, password.clone().unwrap_or_default())),
                    ..ExternalOptions::new(url.clone())
                };
                let mut client = mqtt_external::start_mqtt_external(options, ingest.clone())
                    .map_err(|err| BadInput(format!("mqtt.url: {err}")))?;
                // Until subscribed, the broker keeps no session for us: publishes would be lost.
                tokio::time::timeout(EXTERNAL_SUBSCRIBE_TIMEOUT, client.subscribed())
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "the external MQTT broker {url} did not confirm our subscription"
                        )
                    })?;
                (None, MqttGateway::External(client))
            }
        };
        let lorawan_gateway =
            lorawan_udp::start_lorawan_udp(config.lorawan_listen, ingest.clone(), store.clone())
                .await
                .context("cannot start the LoRaWAN UDP gateway")?;
        let lorawan = lorawan_gateway.local_addr();
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_listen))?;
        let http = listener.local_addr()?;
        let accounts = Arc::new(
            Accounts::new(store.clone(), Some(jwt_key))
                .with_access_lifetime(config.access_token_seconds),
        );
        let streams = Arc::new(stream::Streams::default());
        let versions = Arc::new(networks::Versions::new(store.clone(), &networks));
        let served: Vec<String> = networks.keys().cloned().collect();
        let jobs = jobs::Jobs::start(store.clone(), versions.clone(), &served)
            .context("cannot start the planning jobs")?;
        let state = Arc::new(http::AppState {
            versions,
            jobs: Arc::new(jobs),
            runtime: runtime.clone(),
            ingest,
            body_limit: config.body_limit,
            accounts: accounts.clone(),
            notifier: Arc::new(notifier),
            started: Instant::now(),
            element_ids,
            networks,
            streams: streams.clone(),
            store,
            devices: device_settings,
        });
        let (http_stop, stopped) = oneshot::channel::<()>();
        let guards = |routes| hardening::wrap(routes, &config.limits, metrics.clone());
        let app = audit::wrap(http::router(state.clone()), &state, metrics.clone(), guards)
            .into_make_service_with_connect_info::<SocketAddr>();
        let http_task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            http,
            mqtt,
            lorawan,
            runtime,
            metrics,
            accounts,
            mqtt_gateway,
            lorawan_gateway,
            http_stop,
            http_task,
            streams,
            devices,
            presence_saver,
        })
    }

    /// The bound addresses as `http=ADDR mqtt=ADDR lorawan=ADDR`.
    pub fn addresses(&self) -> String {
        let mqtt = self
            .mqtt
            .map_or_else(|| "external".to_string(), |addr| addr.to_string());
        format!("http={} mqtt={mqtt} lorawan={}", self.http, self.lorawan)
    }

    /// The twin (queries).
    pub fn runtime(&self) -> &TwinRuntime {
        &self.runtime
    }

    /// The counters of this server.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The platform's users and sessions.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// Stops intake (HTTP, MQTT, LoRaWAN), closes the WebSocket streams, answers and flushes
    /// everything received, stops the twin, saves the devices' last-heard times.
    pub async fn shutdown(self) {
        let _ = self.http_stop.send(());
        // Upgraded connections outlive the HTTP server's graceful stop, and they hold the twin.
        if !self.streams.close_all(STREAMS_CLOSE_LIMIT).await {
            tracing::warn!("some WebSocket streams did not close in time");
        }
        match self.http_task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!("the HTTP server failed: {err}"),
            Err(err) => tracing::error!("the HTTP server ended abnormally: {err}"),
        }
        tracing::debug!("HTTP server stopped");
        match self.mqtt_gateway {
            MqttGateway::Embedded(broker) => broker.shutdown().await,
            MqttGateway::External(client) => client.shutdown().await,
        }
        tracing::debug!("MQTT gateway stopped");
        self.lorawan_gateway.shutdown().await;
        tracing::debug!("LoRaWAN gateway stopped");
        match Arc::try_unwrap(self.runtime) {
            Ok(runtime) => runtime.shutdown().await,
            Err(_) => tracing::error!("the twin is still in use; it stops with the process"),
        }
        // Intake has stopped: these are the last times anyone was heard.
        self.presence_saver.abort();
        save_presence(self.devices).await;
    }
}
