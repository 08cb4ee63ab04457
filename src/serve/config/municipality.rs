//! The `[[municipality]]` sections of the configuration: the network, sensors, twin timing,
//! detection, escalation and threshold rules of each municipality, and its devices.

use std::path::Path;
use std::time::Duration;

use actors::devices::{Device, LorawanSession};
use actors::escalation::EscalationPolicy;
use actors::messages::{AlertRule, AlertRules};
use aquatwin::notify::subscriptions::Subscription;
use hydraulics::Network;
use serde::Deserialize;
use twin::detect::WatchConfig;
use twin::live::TwinClock;
use twin::telemetry_files::days_from_civil;
use twin::Sensor;

use super::{digest, hex_bytes, resolve_secret, FieldError};

/// Default hydraulic period of a municipality.
const DEFAULT_PERIOD_SECONDS: f64 = 300.0;
/// Default leak-free learning window of the detectors after the clock origin.
const DEFAULT_TRAINING_DAYS: f64 = 7.0;

/// One municipality: its network, sensors and twin timing.
#[derive(Debug, Clone)]
pub struct MunicipalitySetup {
    /// Tenant id.
    pub id: String,
    /// The hydraulic model.
    pub network: Network,
    /// The sensors on it.
    pub sensors: Vec<Sensor>,
    /// Wall-clock hydraulic period.
    pub period: Duration,
    /// Simulation time 0.
    pub clock: TwinClock,
    /// Leak and burst detection (`None`: off).
    pub detection: Option<WatchConfig>,
    /// Escalation of unacknowledged alerts (`None`: never).
    pub escalation: Option<EscalationPolicy>,
    /// Threshold rules in force until rules are set over the API (`None`: none given).
    pub alert_rules: Option<AlertRules>,
    /// Who is notified of its alerts (secret files resolved against the configuration).
    pub subscriptions: Vec<Subscription>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MunicipalitySection {
    pub(super) id: String,
    network: String,
    sensors: String,
    period_seconds: Option<f64>,
    clock_origin: Option<toml::Value>,
    detection_training_days: Option<f64>,
    escalation: Option<EscalationPolicy>,
    #[serde(default)]
    alert_rules: Vec<AlertRule>,
    #[serde(default)]
    pub(super) devices: Vec<DeviceSection>,
    #[serde(default)]
    pub(super) subscriptions: Vec<Subscription>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceSection {
    id: String,
    sensors: Vec<String>,
    key_sha256: String,
    #[serde(default = "active_by_default")]
    active: bool,
    lorawan: Option<LorawanDeviceSection>,
}

fn active_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LorawanDeviceSection {
    dev_addr: String,
    dev_eui: Option<String>,
    nwk_s_key: String,
    app_s_key: String,
}

pub(super) fn municipality(
    section: &MunicipalitySection,
    base: &Path,
    now_ms: i64,
) -> Result<MunicipalitySetup, FieldError> {
    let network_path = base.join(&section.network);
    let network = hydraulics::read_file(&network_path)
        .map_err(|err| ("network".to_string(), format!("{err}")))?;
    let sensors_path = base.join(&section.sensors);
    let sensors_text = std::fs::read_to_string(&sensors_path).map_err(|err| {
        (
            "sensors".to_string(),
            format!("cannot read {}: {err}", sensors_path.display()),
        )
    })?;
    let sensors = twin::sensors_file::parse(&sensors_text).map_err(|err| {
        (
            "sensors".to_string(),
            format!("{}: {err}", sensors_path.display()),
        )
    })?;
    let seconds = section.period_seconds.unwrap_or(DEFAULT_PERIOD_SECONDS);
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err((
            "period_seconds".into(),
            format!("{seconds} is not a positive number of seconds"),
        ));
    }
    let origin_ms = match &section.clock_origin {
        None => now_ms,
        Some(value) => clock_origin(value).map_err(|cause| ("clock_origin".to_string(), cause))?,
    };
    let training_days = section
        .detection_training_days
        .unwrap_or(DEFAULT_TRAINING_DAYS);
    if !(training_days.is_finite() && training_days >= 0.0) {
        return Err((
            "detection_training_days".into(),
            format!("{training_days} is not a number of days (0 turns detection off)"),
        ));
    }
    let detection = (training_days > 0.0).then(|| WatchConfig {
        train_until_ms: origin_ms.saturating_add((training_days * 86_400_000.0) as i64),
        ..WatchConfig::default()
    });
    if let Some(policy) = &section.escalation {
        policy
            .validate()
            .map_err(|cause| ("escalation".to_string(), cause))?;
    }
    // The twin refuses sensors that name no element of the network: say so here, with the place.
    twin::live::NetworkTwin::new(network.clone(), sensors.clone(), TwinClock { origin_ms })
        .map_err(|err| ("sensors".to_string(), format!("{err}")))?;
    let alert_rules = (!section.alert_rules.is_empty()).then(|| AlertRules {
        rules: section.alert_rules.clone(),
    });
    if let Some(rules) = &alert_rules {
        // The rule error's field is `rules[i].x`: here the rules are `alert_rules[i]`.
        rules
            .validate(&sensors)
            .map_err(|err| (format!("alert_{}", err.field), err.cause))?;
    }
    Ok(MunicipalitySetup {
        id: section.id.clone(),
        network,
        sensors,
        period: Duration::from_secs_f64(seconds),
        clock: TwinClock { origin_ms },
        detection,
        escalation: section.escalation,
        alert_rules,
        subscriptions: Vec::new(),
    })
}

/// Unix ms of a TOML datetime with offset, or of an integer (already unix ms).
fn clock_origin(value: &toml::Value) -> Result<i64, String> {
    match value {
        toml::Value::Integer(ms) => Ok(*ms),
        toml::Value::Datetime(datetime) => {
            let (Some(date), Some(time), Some(offset)) =
                (datetime.date, datetime.time, datetime.offset)
            else {
                return Err(format!(
                    "{datetime}: needs a date, a time and an offset (e.g. 2026-11-22T00:00:00Z)"
                ));
            };
            let days = days_from_civil(
                i64::from(date.year),
                i64::from(date.month),
                i64::from(date.day),
            );
            let offset_minutes = match offset {
                toml::value::Offset::Z => 0,
                toml::value::Offset::Custom { minutes } => i64::from(minutes),
            };
            let seconds = days * 86_400
                + i64::from(time.hour) * 3600
                + i64::from(time.minute) * 60
                + i64::from(time.second.unwrap_or(0))
                - offset_minutes * 60;
            Ok(seconds * 1000 + i64::from(time.nanosecond.unwrap_or(0) / 1_000_000))
        }
        other => Err(format!(
            "{other} is neither a date-time (2026-11-22T00:00:00Z) nor unix milliseconds"
        )),
    }
}

pub(super) fn device(
    section: &DeviceSection,
    municipality: &MunicipalitySetup,
    base: &Path,
) -> Result<Device, FieldError> {
    if section.id.is_empty() {
        return Err(("id".into(), "a device needs a non-empty id".into()));
    }
    if section.sensors.is_empty() {
        return Err((
            "sensors".into(),
            "a device needs at least one sensor".into(),
        ));
    }
    for (s, sensor_id) in section.sensors.iter().enumerate() {
        if !municipality
            .sensors
            .iter()
            .any(|sensor| &sensor.id == sensor_id)
        {
            return Err((
                format!("sensors[{s}]"),
                format!(
                    "sensor `{sensor_id}` is not in the sensors file of municipality `{}`",
                    municipality.id
                ),
            ));
        }
    }
    let key_sha256 = digest(&section.key_sha256).map_err(|cause| ("key_sha256".into(), cause))?;
    let lorawan = section
        .lorawan
        .as_ref()
        .map(|session| lorawan_session(session, base))
        .transpose()
        .map_err(|(field, cause)| (format!("lorawan.{field}"), cause))?;
    Ok(Device {
        id: section.id.clone(),
        municipality: municipality.id.clone(),
        sensors: section.sensors.clone(),
        key_sha256,
        active: section.active,
        lorawan,
    })
}

fn lorawan_session(
    section: &LorawanDeviceSection,
    base: &Path,
) -> Result<LorawanSession, FieldError> {
    let dev_addr: [u8; 4] =
        hex_bytes(&section.dev_addr).map_err(|cause| ("dev_addr".to_string(), cause))?;
    let dev_eui = section
        .dev_eui
        .as_deref()
        .map(hex_bytes::<8>)
        .transpose()
        .map_err(|cause| ("dev_eui".to_string(), cause))?;
    let key = |field: &str, reference: &str| -> Result<[u8; 16], FieldError> {
        let secret = resolve_secret(reference, base).map_err(|cause| (field.to_string(), cause))?;
        hex_bytes(secret.trim()).map_err(|cause| (field.to_string(), cause))
    };
    Ok(LorawanSession {
        dev_eui,
        dev_addr: u32::from_be_bytes(dev_addr),
        nwk_s_key: key("nwk_s_key", &section.nwk_s_key)?,
        app_s_key: key("app_s_key", &section.app_s_key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_origin_reads_offsets() {
        let value: toml::Value = toml::from_str::<toml::Table>("t = 1970-01-01T01:00:00+01:00")
            .unwrap()
            .remove("t")
            .unwrap();
        assert_eq!(clock_origin(&value).unwrap(), 0);
    }
}
