//! Devices of a municipality over the API: listing with presence, battery and signal;
//! registration, key rotation, deactivation and activation.
//!
//! - `GET /api/v1/municipalities/{m}/devices` and `.../devices/{device}` (readers): id, sensors,
//!   whether active, the gateway it was last heard over (`transport`), when (`last_seen`, Unix
//!   ms), `status` (`online`: heard within `[devices] silence_after_seconds`, default 15 min;
//!   `silent`; `never`: never heard) and the latest `battery` and `signal` values (the
//!   readings of its battery and signal sensors, which name the device). Last-heard times
//!   survive restarts: they are saved every minute and at a clean stop, and read back on start
//!   (a `kill -9` loses at most the last minute of them).
//! - `POST .../devices` (`{"id", "sensors"}`), `POST .../devices/{device}/rotate-key`
//!   (administrators): answer the device's key, once; only its SHA-256 is kept. The old key
//!   is refused from the answer on, and MQTT connections made with it are closed.
//! - `POST .../devices/{device}/deactivate` and `.../activate` (administrators).
//!
//! Changes are stored (they survive a restart and override the configuration's device of the
//! same id: [`actors::devices::DeviceRegistry`]). With an external MQTT broker (`--mqtt-url`)
//! the broker checks device keys itself (its own password file): a rotated key must be set
//! there too; deactivation works on every gateway. Sensors themselves belong to the
//! municipality's network configuration (its sensors file): a device is registered for
//! sensors that exist, and no route adds sensors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actors::devices::{key_digest, Device, DeviceError};
use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::auth::Role;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use twin::{Sensor, SensorKind};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{malformed_request, path_parameters, query_error, AppState, READERS};

/// Who may register and change devices.
const DEVICE_ADMINS: &[Role] = &[Role::SuperAdmin, Role::MunicipalityAdmin];

/// Longest device id.
const MAX_ID_CHARS: usize = 64;

/// Default of `[devices] silence_after_seconds`.
pub const DEFAULT_SILENCE_AFTER: Duration = Duration::from_secs(15 * 60);

/// What the device routes need from the configuration.
pub struct DeviceSettings {
    /// A device not heard for longer is `silent`.
    pub silence_after: Duration,
    /// The sensors of each municipality served.
    pub sensors: HashMap<String, Vec<Sensor>>,
}

/// Whether a device is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Presence {
    /// Heard within the silence limit.
    Online,
    /// Heard before, not since the silence limit.
    Silent,
    /// Never heard.
    Never,
}

fn presence(last_seen_ms: Option<i64>, now_ms: i64, silence_after: Duration) -> Presence {
    let limit = i64::try_from(silence_after.as_millis()).unwrap_or(i64::MAX);
    match last_seen_ms {
        None => Presence::Never,
        Some(seen) if now_ms.saturating_sub(seen) <= limit => Presence::Online,
        Some(_) => Presence::Silent,
    }
}

/// A device as the API shows it.
#[derive(Serialize, ToSchema)]
struct DeviceView {
    /// The device (its MQTT user name, its `X-Device-Id`).
    id: String,
    /// The sensors it reports for.
    sensors: Vec<String>,
    /// Whether it may report.
    active: bool,
    /// Whether it reports over LoRaWAN (a session configured).
    lorawan: bool,
    /// The gateway it was last heard over: `mqtt`, `chirpstack`, `lorawan_udp` or `http`.
    transport: Option<&'static str>,
    /// When it was last heard (any accepted message), Unix ms; `null` when never.
    last_seen: Option<i64>,
    status: Presence,
    /// The latest value of its battery sensor (the sensor's unit).
    battery: Option<f64>,
    /// The latest value of its signal sensor (dBm).
    signal: Option<f64>,
}

/// The devices of a municipality.
#[derive(Serialize, ToSchema)]
struct DeviceList {
    /// The municipality.
    municipality: String,
    /// By id.
    devices: Vec<DeviceView>,
}

/// A device and its key, shown this once.
#[derive(Serialize, ToSchema)]
struct DeviceWithKey {
    device: DeviceView,
    /// The device's key (43 characters, URL-safe base64): keep it, it is not shown again.
    key: String,
}

/// A device to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Registration {
    /// 1 to 64 characters: letters, digits, `-`, `_`, `.`; unused by any device.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    id: String,
    /// Sensors of the municipality (its sensors file) that no other device reports for.
    #[schema(min_items = 1)]
    sensors: Vec<String>,
}

/// Builds the views of devices with the twin's latest sensor values.
struct Views<'a> {
    settings: &'a DeviceSettings,
    municipality: &'a str,
    /// Latest value of each sensor.
    latest: HashMap<String, f64>,
    now_ms: i64,
}

impl<'a> Views<'a> {
    async fn of(state: &'a AppState, municipality: &'a str) -> Result<Views<'a>, ApiError> {
        let summaries = state
            .runtime
            .sensor_summary(municipality)
            .await
            .map_err(query_error)?;
        Ok(Views {
            settings: &state.devices,
            municipality,
            latest: summaries
                .into_iter()
                .filter_map(|summary| Some((summary.sensor_id, summary.last_value?)))
                .collect(),
            now_ms: crate::fleet::unix_ms(),
        })
    }

    /// The latest value of the `kind` sensor naming `device`.
    fn health(&self, device: &str, kind: SensorKind) -> Option<f64> {
        self.settings
            .sensors
            .get(self.municipality)?
            .iter()
            .filter(|sensor| sensor.kind == kind && sensor.target == device)
            .find_map(|sensor| self.latest.get(&sensor.id).copied())
    }

    fn view(&self, state: &AppState, device: &Device) -> DeviceView {
        let heard = state.ingest.devices().last_heard(&device.id);
        let last_seen = heard.map(|heard| heard.at_ms);
        DeviceView {
            id: device.id.clone(),
            sensors: device.sensors.clone(),
            active: device.active,
            lorawan: device.lorawan.is_some(),
            transport: heard.map(|heard| heard.gateway.name()),
            last_seen,
            status: presence(last_seen, self.now_ms, self.settings.silence_after),
            battery: self.health(&device.id, SensorKind::Battery),
            signal: self.health(&device.id, SensorKind::Signal),
        }
    }
}

/// 404 for a municipality that is not served (the same answer as for another tenant's).
fn served<'s>(state: &'s AppState, municipality: &str) -> Result<&'s [Sensor], ApiError> {
    state
        .devices
        .sensors
        .get(municipality)
        .map(Vec::as_slice)
        .ok_or_else(|| ApiError::not_found(format!("no municipality {municipality}")))
}

/// The device `id` of `municipality`; 404 when it has none of that id.
fn device_of(state: &AppState, municipality: &str, id: &str) -> Result<Arc<Device>, ApiError> {
    state
        .ingest
        .devices()
        .get(id)
        .filter(|device| device.municipality == municipality)
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))
}

fn device_error(err: DeviceError) -> ApiError {
    match err {
        DeviceError::DuplicateId(id) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("id: device {id} exists already"),
        ),
        DeviceError::SensorTaken { sensor, device } => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("sensors: device {device} reports for sensor {sensor} already"),
        ),
        DeviceError::Unknown(id) => ApiError::not_found(format!("no device {id}")),
        other => ApiError::internal(other),
    }
}

/// A new key: 32 random bytes, URL-safe base64 without padding.
fn new_key() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Applies `change` to device `id` of `municipality` (a durable write, off the async threads).
async fn change_device(
    state: &Arc<AppState>,
    municipality: &str,
    id: &str,
    change: impl FnOnce(&mut Device) + Send + 'static,
) -> Result<Arc<Device>, ApiError> {
    let (worker, municipality, id) = (state.clone(), municipality.to_string(), id.to_string());
    tokio::task::spawn_blocking(move || worker.ingest.devices().update(&municipality, &id, change))
        .await
        .map_err(ApiError::internal)?
        .map_err(device_error)
}

/// The devices of a municipality, with presence, battery and signal.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/devices", tag = "devices",
    params(("municipality" = String, Path)),
    responses(
        (status = 200, description = "The devices", body = DeviceList),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn list_devices(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceList>, ApiError> {
    let municipality = path_parameters(path)?;
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let views = Views::of(&state, &municipality).await?;
    let devices = state
        .ingest
        .devices()
        .all()
        .iter()
        .filter(|device| device.municipality == municipality)
        .map(|device| views.view(&state, device))
        .collect();
    Ok(Json(DeviceList {
        municipality: municipality.clone(),
        devices,
    }))
}

/// One device, with presence, battery and signal.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/devices/{device}",
    tag = "devices",
    params(("municipality" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "The device", body = DeviceView),
        (status = 404, description = "No such municipality or device", body = ErrorBody),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn get_device(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let device = device_of(&state, &municipality, &id)?;
    let views = Views::of(&state, &municipality).await?;
    Ok(Json(views.view(&state, &device)))
}

/// Checks a registration against the municipality's `sensors`; the error names the field.
fn validate(registration: &Registration, sensors: &[Sensor]) -> Result<(), ApiError> {
    let id = &registration.id;
    let id_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || !id.chars().all(id_chars) {
        return Err(malformed_request(format!(
            "id: {id:?} is not 1 to {MAX_ID_CHARS} letters, digits, `-`, `_` or `.`"
        )));
    }
    if registration.sensors.is_empty() {
        return Err(malformed_request(
            "sensors: a device reports for at least one sensor".into(),
        ));
    }
    for (i, sensor) in registration.sensors.iter().enumerate() {
        if !sensors.iter().any(|known| &known.id == sensor) {
            return Err(malformed_request(format!(
                "sensors[{i}]: no sensor {sensor:?} in the municipality's sensors file \
                 (sensors are configured, not added here)"
            )));
        }
        if registration.sensors[..i].contains(sensor) {
            return Err(malformed_request(format!(
                "sensors[{i}]: {sensor:?} is listed twice"
            )));
        }
    }
    Ok(())
}

/// Registers a device for existing sensors of the municipality; answers its key, once.
/// Sensors are not added here: they belong to the municipality's sensors file.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/devices", tag = "devices",
    params(("municipality" = String, Path)),
    request_body = Registration,
    responses(
        (status = 201, description = "Registered: the device and its key (shown this once)",
            body = DeviceWithKey),
        (status = 409, description = "The id is used, or another device reports for one of the \
            sensors", body = ErrorBody),
        (status = 422, description = "A malformed body, id or sensor list (the field named)",
            body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(DEVICE_ADMINS)))))]
async fn register_device(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Registration>, JsonRejection>,
) -> Result<(StatusCode, Json<DeviceWithKey>), ApiError> {
    let municipality = path_parameters(path)?;
    caller.allow(DEVICE_ADMINS, Some(&municipality))?;
    let sensors = served(&state, &municipality)?;
    let Json(registration) = body.map_err(|rejection| malformed_request(rejection.body_text()))?;
    validate(&registration, sensors)?;
    let key = new_key();
    let device = Device {
        id: registration.id,
        municipality: municipality.clone(),
        sensors: registration.sensors,
        key_sha256: key_digest(&key),
        active: true,
        lorawan: None,
    };
    let worker = state.clone();
    let device = tokio::task::spawn_blocking(move || worker.ingest.devices().register(device))
        .await
        .map_err(ApiError::internal)?
        .map_err(device_error)?;
    tracing::info!(
        municipality,
        device = device.id,
        by = caller.0.subject,
        "device registered"
    );
    let views = Views::of(&state, &municipality).await?;
    let device = views.view(&state, &device);
    Ok((StatusCode::CREATED, Json(DeviceWithKey { device, key })))
}

/// Gives a device a new key, answered once; the old one is refused from now on and MQTT
/// connections made with it are closed.
#[utoipa::path(post,
    path = "/api/v1/municipalities/{municipality}/devices/{device}/rotate-key", tag = "devices",
    params(("municipality" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "The device and its new key (shown this once)",
            body = DeviceWithKey),
        (status = 404, description = "No such municipality or device", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(DEVICE_ADMINS)))))]
async fn rotate_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeviceWithKey>, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    caller.allow(DEVICE_ADMINS, Some(&municipality))?;
    served(&state, &municipality)?;
    let key = new_key();
    let digest = key_digest(&key);
    let device = change_device(&state, &municipality, &id, move |device| {
        device.key_sha256 = digest;
    })
    .await?;
    tracing::info!(
        municipality,
        device = id,
        by = caller.0.subject,
        "device key rotated"
    );
    let views = Views::of(&state, &municipality).await?;
    let device = views.view(&state, &device);
    Ok(Json(DeviceWithKey { device, key }))
}

/// Sets whether device `id` may report.
async fn set_active(
    state: Arc<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    active: bool,
) -> Result<Json<DeviceView>, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    caller.allow(DEVICE_ADMINS, Some(&municipality))?;
    served(&state, &municipality)?;
    let device = change_device(&state, &municipality, &id, move |device| {
        device.active = active;
    })
    .await?;
    tracing::info!(
        municipality,
        device = id,
        active,
        by = caller.0.subject,
        "device changed"
    );
    let views = Views::of(&state, &municipality).await?;
    Ok(Json(views.view(&state, &device)))
}

/// Deactivates a device: everything it sends is refused (its MQTT connections are closed)
/// until it is activated again.
#[utoipa::path(post,
    path = "/api/v1/municipalities/{municipality}/devices/{device}/deactivate", tag = "devices",
    params(("municipality" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "The device, inactive", body = DeviceView),
        (status = 404, description = "No such municipality or device", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(DEVICE_ADMINS)))))]
async fn deactivate_device(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    set_active(state, caller, path, false).await
}

/// Activates a device: it may report again, with its current key.
#[utoipa::path(post,
    path = "/api/v1/municipalities/{municipality}/devices/{device}/activate", tag = "devices",
    params(("municipality" = String, Path), ("device" = String, Path)),
    responses(
        (status = 200, description = "The device, active", body = DeviceView),
        (status = 404, description = "No such municipality or device", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(DEVICE_ADMINS)))))]
async fn activate_device(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    set_active(state, caller, path, true).await
}

/// The device routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_devices, register_device))
        .routes(routes!(get_device))
        .routes(routes!(rotate_key))
        .routes(routes!(deactivate_device))
        .routes(routes!(activate_device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_follows_the_silence_limit() {
        let limit = Duration::from_secs(900);
        assert_eq!(presence(None, 1_000_000, limit), Presence::Never);
        assert_eq!(presence(Some(100_000), 1_000_000, limit), Presence::Online);
        assert_eq!(presence(Some(100_000), 1_000_001, limit), Presence::Silent);
        // A clock that went back still counts the device as heard.
        assert_eq!(
            presence(Some(2_000_000), 1_000_000, limit),
            Presence::Online
        );
    }

    #[test]
    fn registrations_name_the_wrong_field() {
        let sensors = vec![
            Sensor::new("P-1", SensorKind::Pressure, "10", twin::Unit::Psi).unwrap(),
            Sensor::new("B-1", SensorKind::Battery, "d", twin::Unit::Volt).unwrap(),
        ];
        let check = |id: &str, listed: &[&str]| {
            let registration = Registration {
                id: id.into(),
                sensors: listed.iter().map(|s| s.to_string()).collect(),
            };
            validate(&registration, &sensors).map_err(|err| {
                assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
                err.detail
            })
        };
        assert!(check("dev-1.a_b", &["P-1", "B-1"]).is_ok());
        for (id, listed, field) in [
            ("", &["P-1"][..], "id:"),
            ("a/b", &["P-1"], "id:"),
            (&"x".repeat(65), &["P-1"], "id:"),
            ("d", &[], "sensors:"),
            ("d", &["P-1", "P-9"], "sensors[1]:"),
            ("d", &["P-1", "P-1"], "sensors[1]:"),
        ] {
            let detail = check(id, listed).unwrap_err();
            assert!(detail.starts_with(field), "{id} {listed:?}: {detail}");
        }
    }
}
