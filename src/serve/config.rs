//! The `aquatwin serve` configuration file (TOML).
//!
//! ```toml
//! data_dir = "data"                      # relative paths are relative to this file
//!
//! [http]
//! listen = "127.0.0.1:8080"              # port 0: pick a free port
//! body_limit_bytes = 1048576
//!
//! [mqtt]
//! listen = "127.0.0.1:1883"              # the embedded broker, or instead:
//! # url = "mqtt://broker:1883"           # an external broker (Mosquitto)
//! # username = "aquatwin"
//! # password = "env:AQUATWIN_MQTT_PASSWORD"
//!
//! [lorawan]
//! udp_listen = "127.0.0.1:1700"          # Semtech UDP packet forwarder
//!
//! [limits]                               # the HTTP API's guards (defaults shown)
//! requests_per_second = 2000             # per caller: bearer token, device, else client IP
//! burst = 4000                           # requests a caller may send at once
//! body_limit_bytes = 1048576             # every route but ingest (see [http])
//!
//! [devices]
//! silence_after_seconds = 900            # not heard for longer: `silent` (default 15 min)
//!
//! [auth]
//! access_token_minutes = 15              # lifetime of an access token, 1 to 1440 (default 15)
//!
//! [notify]
//! history_per_subscription = 1000        # delivery attempts kept per subscription (newest)
//! extra_ca_file = "private-ca.pem"       # optional: CAs (PEM) webhook receivers' certificates
//!                                        # may chain to, besides Mozilla's roots
//!
//! [chirpstack]                           # optional: the ChirpStack MQTT integration's login
//! username = "chirpstack"
//! key_sha256 = "<hex SHA-256 of its password>"
//!
//! [[municipality]]
//! id = "net3"
//! network = "Net3.inp"
//! sensors = "sensors.toml"               # twin::sensors_file layout
//! period_seconds = 300                   # wall-clock hydraulic period
//! clock_origin = 2026-11-22T00:00:00Z    # simulation time 0 (or unix ms); default: start time
//! detection_training_days = 7            # leak-free learning after the clock origin; 0: off
//! escalation = { unacknowledged_after_minutes = 30, max_escalations = 3 }   # optional
//!
//! [[municipality.alert_rules]]           # optional threshold rules (the API's alert-rules)
//! sensor_kind = "pressure"
//! below = 20.0                           # in the network's unit of the kind
//! for_readings = 3
//!
//! [[municipality.devices]]
//! id = "dev-1"
//! sensors = ["P-10", "F-20"]
//! key_sha256 = "<hex SHA-256 of the device key>"
//! active = true
//! [municipality.devices.lorawan]         # optional ABP session
//! dev_addr = "26011BDA"
//! dev_eui = "0004A30B001C0530"
//! nwk_s_key = "env:DEV1_NWK_S_KEY"       # secrets: env:VAR or file:PATH, never literal
//! app_s_key = "file:keys/dev1.app"
//! ```
//!
//! Devices registered or changed through the API (`/api/v1/municipalities/{m}/devices`) are
//! kept in the store: on start, a stored device overrides the device of the same id here (its
//! sensors, key and active flag; its LoRaWAN session stays the one configured here). To undo a
//! change made through the API, make it again through the API.
//!
//! Threshold rules given here apply while none were set through the API
//! (`PUT /api/v1/municipalities/{m}/alert-rules`); once set there, the stored set wins.
//!
//! Every error names the file, the place (`municipality[0].devices[2].key_sha256`) and the cause.

mod municipality;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::devices::Device;
use aquatwin::auth::users::ACCESS_TTL_S;
use aquatwin::notify::email::SmtpConfig;
use aquatwin::notify::notifier::DEFAULT_HISTORY_PER_SUBSCRIPTION;
use aquatwin::notify::secret::SecretRef;
use aquatwin::notify::subscriptions::{Subscription, Target};
use aquatwin::notify::webhook::read_ca_file;
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::TrustAnchor;

pub use self::municipality::MunicipalitySetup;
use self::municipality::{device, municipality, MunicipalitySection};
use super::subscriptions::MAX_HISTORY_LIMIT;

/// Default HTTP listen address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// Default embedded MQTT broker listen address.
pub const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
/// Default LoRaWAN UDP (Semtech packet forwarder) listen address.
pub const DEFAULT_LORAWAN_LISTEN: &str = "127.0.0.1:1700";
/// Default limit of an HTTP request body.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Longest access token lifetime allowed (a day): longer-lived tokens belong to devices,
/// which have keys.
pub const MAX_ACCESS_TOKEN_MINUTES: i64 = 24 * 60;
/// Default sustained request rate of one caller of the HTTP API: far above what a fleet device
/// or an operator's screen sends, so only floods are refused.
pub const DEFAULT_REQUESTS_PER_SECOND: f64 = 2000.0;
/// Default number of requests one caller may send at once.
pub const DEFAULT_BURST: u32 = 4000;
/// Default limit of a request body on every route but ingest.
pub const DEFAULT_API_BODY_LIMIT: usize = 1 << 20;

/// A configuration error: the file, the place in it and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{}: {place}: {cause}", file.display())]
pub struct ConfigError {
    /// The file the error is in.
    pub file: PathBuf,
    /// Where in the file (a dotted path, or a line and column).
    pub place: String,
    /// What is wrong.
    pub cause: String,
}

/// Where the MQTT gateway takes its messages from.
#[derive(Debug, Clone, PartialEq)]
pub enum MqttSource {
    /// Our embedded broker, listening here.
    Embedded(SocketAddr),
    /// An external broker, subscribed to as a client.
    External {
        /// `mqtt://host:port`.
        url: String,
        /// Client id of our subscription (a persistent session).
        client_id: String,
        /// Login at the broker, if any.
        username: Option<String>,
        /// Its password (resolved from a secret reference).
        password: Option<String>,
    },
}

/// The ChirpStack integration's login on the embedded broker.
#[derive(Debug, Clone, PartialEq)]
pub struct ChirpstackLogin {
    /// MQTT user name.
    pub username: String,
    /// SHA-256 of its password.
    pub key_sha256: [u8; 32],
}

/// A validated configuration, paths resolved, files read.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data directory (the store lives here).
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// Largest accepted HTTP request body, bytes.
    pub body_limit: usize,
    /// MQTT source.
    pub mqtt: MqttSource,
    /// LoRaWAN UDP listen address.
    pub lorawan_listen: SocketAddr,
    /// ChirpStack integration login, if configured.
    pub chirpstack: Option<ChirpstackLogin>,
    /// The municipalities.
    pub municipalities: Vec<MunicipalitySetup>,
    /// Every device of every municipality.
    pub devices: Vec<Device>,
    /// The SMTP server of email subscriptions.
    pub smtp: Option<SmtpConfig>,
    /// The platform's URL, for links in notifications.
    pub link_base: Option<String>,
    /// The HTTP API's rate and size limits.
    pub limits: Limits,
    /// A device not heard for longer is `silent`.
    pub silence_after: Duration,
    /// Lifetime of the access tokens issued (seconds).
    pub access_token_seconds: i64,
    /// Delivery attempts kept per subscription (the newest).
    pub history_per_subscription: usize,
    /// Certificate authorities of `[notify] extra_ca_file`, trusted for webhook receivers.
    pub webhook_trust_anchors: Vec<TrustAnchor<'static>>,
}

/// The HTTP API's guards (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Sustained requests per second of one caller (token, device or client IP).
    pub requests_per_second: f64,
    /// Requests one caller may send at once before being held to the sustained rate.
    pub burst: u32,
    /// Largest request body on every route but ingest (which has `http.body_limit_bytes`).
    pub body_limit_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
            burst: DEFAULT_BURST,
            body_limit_bytes: DEFAULT_API_BODY_LIMIT,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<String>,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    mqtt: MqttSection,
    #[serde(default)]
    lorawan: LorawanSection,
    chirpstack: Option<ChirpstackSection>,
    smtp: Option<SmtpConfig>,
    link_base: Option<String>,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    devices: DevicesSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    notify: NotifySection,
    #[serde(default)]
    municipality: Vec<MunicipalitySection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NotifySection {
    history_per_subscription: Option<usize>,
    extra_ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DevicesSection {
    silence_after_seconds: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    access_token_minutes: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    requests_per_second: Option<f64>,
    burst: Option<u32>,
    body_limit_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    listen: Option<String>,
    body_limit_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MqttSection {
    listen: Option<String>,
    url: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LorawanSection {
    udp_listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChirpstackSection {
    username: String,
    key_sha256: String,
}

/// Reads and validates the configuration at `path`; `now_ms` is the default clock origin.
pub fn load(path: &Path, now_ms: i64) -> Result<ServeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        file: path.to_path_buf(),
        place: "file".into(),
        cause: format!("cannot read it: {err}"),
    })?;
    parse(&text, path, now_ms)
}

/// Validates configuration `text` read from `path` (the base of relative paths).
pub fn parse(text: &str, path: &Path, now_ms: i64) -> Result<ServeConfig, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let error = |place: &str, cause: String| ConfigError {
        file: path.to_path_buf(),
        place: place.to_string(),
        cause,
    };
    let file: FileConfig = toml::from_str(text).map_err(|err| {
        let place = err
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or_else(|| "file".into());
        error(&place, err.message().to_string())
    })?;
    let data_dir = base.join(file.data_dir.as_deref().unwrap_or("data"));
    let http_listen = socket_addr(
        file.http.listen.as_deref().unwrap_or(DEFAULT_HTTP_LISTEN),
        "http.listen",
    )
    .map_err(|cause| error("http.listen", cause))?;
    let body_limit = file.http.body_limit_bytes.unwrap_or(DEFAULT_BODY_LIMIT);
    if body_limit == 0 {
        return Err(error("http.body_limit_bytes", "must be positive".into()));
    }
    let limits = limits(&file.limits).map_err(|(place, cause)| error(&place, cause))?;
    let silence_after = match file.devices.silence_after_seconds {
        None => super::devices::DEFAULT_SILENCE_AFTER,
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => Duration::from_secs_f64(seconds),
        Some(seconds) => {
            return Err(error(
                "devices.silence_after_seconds",
                format!("{seconds} is not a positive number of seconds"),
            ))
        }
    };
    let access_token_seconds = match file.auth.access_token_minutes {
        None => ACCESS_TTL_S,
        Some(minutes) if (1..=MAX_ACCESS_TOKEN_MINUTES).contains(&minutes) => minutes * 60,
        Some(minutes) => {
            return Err(error(
                "auth.access_token_minutes",
                format!("{minutes} is not between 1 and {MAX_ACCESS_TOKEN_MINUTES} minutes"),
            ))
        }
    };
    let history_per_subscription =
        history_per_subscription(&file.notify).map_err(|(place, cause)| error(&place, cause))?;
    let webhook_trust_anchors =
        extra_ca_file(&file.notify, base).map_err(|(place, cause)| error(&place, cause))?;
    let mqtt = mqtt_source(&file.mqtt, base).map_err(|(place, cause)| error(&place, cause))?;
    let lorawan_listen = socket_addr(
        file.lorawan
            .udp_listen
            .as_deref()
            .unwrap_or(DEFAULT_LORAWAN_LISTEN),
        "lorawan.udp_listen",
    )
    .map_err(|cause| error("lorawan.udp_listen", cause))?;
    let chirpstack = match &file.chirpstack {
        None => None,
        Some(section) => Some(ChirpstackLogin {
            username: section.username.clone(),
            key_sha256: digest(&section.key_sha256)
                .map_err(|cause| error("chirpstack.key_sha256", cause))?,
        }),
    };
    if file.municipality.is_empty() {
        return Err(error(
            "municipality",
            "at least one [[municipality]] is needed".into(),
        ));
    }
    let mut municipalities = Vec::with_capacity(file.municipality.len());
    let mut devices = Vec::new();
    for (m, section) in file.municipality.iter().enumerate() {
        let place = format!("municipality[{m}]");
        // Ids starting with `_` are the platform's own key prefixes (`_platform`).
        if section.id.is_empty() || section.id.contains('/') || section.id.starts_with('_') {
            return Err(error(
                &format!("{place}.id"),
                format!(
                    "`{}` is not a valid id (non-empty, no `/`, not starting with `_`)",
                    section.id
                ),
            ));
        }
        if municipalities
            .iter()
            .any(|other: &MunicipalitySetup| other.id == section.id)
        {
            return Err(error(
                &format!("{place}.id"),
                format!("municipality `{}` is defined twice", section.id),
            ));
        }
        let mut setup = municipality(section, base, now_ms)
            .map_err(|(field, cause)| error(&format!("{place}.{field}"), cause))?;
        for (i, subscription) in section.subscriptions.iter().enumerate() {
            let sub_place = format!("{place}.subscriptions[{i}]");
            subscription
                .validate()
                .map_err(|cause| error(&sub_place, cause.to_string()))?;
            if let Target::Webhook {
                secret: Some(SecretRef::Generated),
                ..
            } = &subscription.target
            {
                // Only the server makes generated secrets, for subscriptions made over the API.
                return Err(error(
                    &format!("{sub_place}.target.secret"),
                    "`generated` is for subscriptions created over the API: use env:VAR or \
                     file:PATH"
                        .to_string(),
                ));
            }
            if setup.subscriptions.iter().any(|s| s.id == subscription.id) {
                return Err(error(
                    &format!("{sub_place}.id"),
                    format!("subscription `{}` is defined twice", subscription.id),
                ));
            }
            setup
                .subscriptions
                .push(relative_to(subscription.clone(), base));
        }
        for (d, device_section) in section.devices.iter().enumerate() {
            let device = device(device_section, &setup, base)
                .map_err(|(field, cause)| error(&format!("{place}.devices[{d}].{field}"), cause))?;
            if devices.iter().any(|other: &Device| other.id == device.id) {
                return Err(error(
                    &format!("{place}.devices[{d}].id"),
                    format!("device `{}` is defined twice", device.id),
                ));
            }
            devices.push(device);
        }
        municipalities.push(setup);
    }
    Ok(ServeConfig {
        data_dir,
        http_listen,
        body_limit,
        mqtt,
        lorawan_listen,
        chirpstack,
        municipalities,
        devices,
        smtp: file.smtp.map(|smtp| SmtpConfig {
            password: smtp.password.map(|secret| secret_relative_to(secret, base)),
            ..smtp
        }),
        link_base: file.link_base,
        limits,
        silence_after,
        access_token_seconds,
        history_per_subscription,
        webhook_trust_anchors,
    })
}

/// `[notify] extra_ca_file`: the certificate authorities it holds (none without the key); the
/// file is read now, so a missing or empty one stops the start rather than every delivery.
fn extra_ca_file(
    section: &NotifySection,
    base: &Path,
) -> Result<Vec<TrustAnchor<'static>>, FieldError> {
    match &section.extra_ca_file {
        None => Ok(Vec::new()),
        Some(file) => read_ca_file(&base.join(file))
            .map_err(|err| ("notify.extra_ca_file".into(), err.to_string())),
    }
}

/// `[notify] history_per_subscription`: at least one attempt, and no more than one listing of
/// the delivery history shows (more would be kept but never seen).
fn history_per_subscription(section: &NotifySection) -> Result<usize, FieldError> {
    let kept = section
        .history_per_subscription
        .unwrap_or(DEFAULT_HISTORY_PER_SUBSCRIPTION);
    if (1..=MAX_HISTORY_LIMIT).contains(&kept) {
        Ok(kept)
    } else {
        Err((
            "notify.history_per_subscription".into(),
            format!(
                "{kept} is not between 1 and {MAX_HISTORY_LIMIT} (the most one listing of the \
                 delivery history shows)"
            ),
        ))
    }
}

fn limits(section: &LimitsSection) -> Result<Limits, FieldError> {
    let defaults = Limits::default();
    let requests_per_second = section
        .requests_per_second
        .unwrap_or(defaults.requests_per_second);
    if !(requests_per_second.is_finite() && requests_per_second > 0.0) {
        return Err((
            "limits.requests_per_second".into(),
            format!("{requests_per_second} is not a positive number of requests per second"),
        ));
    }
    let burst = section.burst.unwrap_or(defaults.burst);
    if burst == 0 {
        return Err((
            "limits.burst".into(),
            "must be at least 1 (a caller could never send anything)".into(),
        ));
    }
    let body_limit_bytes = section
        .body_limit_bytes
        .unwrap_or(defaults.body_limit_bytes);
    if body_limit_bytes == 0 {
        return Err(("limits.body_limit_bytes".into(), "must be positive".into()));
    }
    Ok(Limits {
        requests_per_second,
        burst,
        body_limit_bytes,
    })
}

/// A secret file named relative to the configuration, as a path that works from anywhere.
fn secret_relative_to(secret: SecretRef, base: &Path) -> SecretRef {
    match secret {
        SecretRef::File(path) => SecretRef::File(base.join(path)),
        env => env,
    }
}

/// `subscription` with its webhook secret file resolved against `base`.
fn relative_to(mut subscription: Subscription, base: &Path) -> Subscription {
    if let Target::Webhook { secret, .. } = &mut subscription.target {
        *secret = secret.take().map(|s| secret_relative_to(s, base));
    }
    subscription
}

/// `line L, column C` of byte `offset` in `text` (1-based).
fn line_and_column(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}")
}

fn socket_addr(text: &str, what: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:1883 ({what})"))
}

type FieldError = (String, String);

fn mqtt_source(section: &MqttSection, base: &Path) -> Result<MqttSource, FieldError> {
    let Some(url) = &section.url else {
        if section.username.is_some() || section.password.is_some() || section.client_id.is_some() {
            return Err((
                "mqtt".into(),
                "username, password and client_id are for an external broker (`url`)".into(),
            ));
        }
        let listen = socket_addr(
            section.listen.as_deref().unwrap_or(DEFAULT_MQTT_LISTEN),
            "mqtt.listen",
        )
        .map_err(|cause| ("mqtt.listen".to_string(), cause))?;
        return Ok(MqttSource::Embedded(listen));
    };
    if section.listen.is_some() {
        return Err((
            "mqtt".into(),
            "give either `listen` (embedded broker) or `url` (external broker), not both".into(),
        ));
    }
    let password = section
        .password
        .as_deref()
        .map(|reference| resolve_secret(reference, base))
        .transpose()
        .map_err(|cause| ("mqtt.password".to_string(), cause))?;
    Ok(MqttSource::External {
        url: url.clone(),
        client_id: section
            .client_id
            .clone()
            .unwrap_or_else(|| "aquatwin-serve".into()),
        username: section.username.clone(),
        password,
    })
}

/// The secret behind `env:VAR` or `file:PATH` (relative to `base`); literals are refused.
fn resolve_secret(reference: &str, base: &Path) -> Result<String, String> {
    let secret = SecretRef::parse(reference).map_err(|e| e.to_string())?;
    secret_relative_to(secret, base)
        .resolve()
        .map_err(|e| e.to_string())
}

fn digest(text: &str) -> Result<[u8; 32], String> {
    hex_bytes(text).map_err(|cause| format!("{cause} (the SHA-256 digest of the key, in hex)"))
}

fn hex_bytes<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| format!("`{text}` is not {} hexadecimal digits", 2 * N))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_extra_ca_file_is_named_with_its_key() {
        let dir = std::env::temp_dir().join(format!("aquatwin-extra-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("empty.pem"), "no PEM here\n").unwrap();
        let section = |file: &str| NotifySection {
            history_per_subscription: None,
            extra_ca_file: Some(file.into()),
        };
        for (file, cause) in [
            ("absent.pem", "cannot read"),
            ("empty.pem", "holds no certificate"),
        ] {
            let (place, message) = extra_ca_file(&section(file), &dir).unwrap_err();
            assert_eq!(place, "notify.extra_ca_file");
            let path = dir.join(file).display().to_string();
            assert!(
                message.contains(&path) && message.contains(cause),
                "{message}"
            );
        }
        assert!(extra_ca_file(&NotifySection::default(), &dir)
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn literal_secrets_are_refused() {
        let err = resolve_secret("00112233445566778899aabbccddeeff", Path::new(".")).unwrap_err();
        assert!(err.contains("env:VAR"), "{err}");
    }
}
