//! The data that crosses a municipality's boundary: alerts, pipe states, sensor summaries,
//! supervisor status and the estimated state of a period (in a compact binary encoding).
//!
//! Every type here derives `serde::Serialize`/`Deserialize`, so that a later issue can place a
//! municipality on another node (ractor_cluster with `blanket_serde`) and exchange these values
//! as they are. The actor messages that carry them ([`crate::sensor::SensorMsg`],
//! [`crate::network::NetworkMsg`], [`crate::pipe::PipeMsg`], [`crate::alerts::AlertMsg`],
//! [`crate::municipality::MunicipalityMsg`]) are queries with a reply port of one of these
//! types, which ractor_cluster's derived messages carry across nodes, or casts of them. The one
//! local-only piece is the ingest batch ([`crate::sensor::SensorBatch`]): it holds
//! `twin::Reading`s (not serde types yet) and the request's local acknowledgement; placed
//! remotely, the dispatcher would send the readings and receive the stored count as the reply.

use serde::{Deserialize, Serialize};
use twin::detect::threshold::Limit;
use twin::live::{PeriodState, SensorResidual};
use twin::{Sensor, SensorKind};
use utoipa::ToSchema;

/// What kind of event an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A background leak.
    Leak,
    /// A pipe burst.
    Burst,
    /// A sensor that reports implausible data persistently.
    SensorFault,
    /// A pressure transient.
    Transient,
    /// A sensor's value past a limit of the municipality's alert rules.
    Threshold,
}

/// How urgent an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action now.
    Critical,
}

/// Where an alert is: `{"node": "<id>"}`, `{"link": "<id>"}`, `{"device": "<id>"}` or
/// `"network"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertLocation {
    /// A node of the network.
    Node(String),
    /// A link of the network.
    Link(String),
    /// A device (a sensor attached to neither, e.g. its battery).
    Device(String),
    /// The network as a whole (a detection that could not be located).
    Network,
}

/// An alert as raised by a detector or a sensor (before de-duplication).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInput {
    /// What happened.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// Where.
    pub location: AlertLocation,
    /// Estimated leak or burst flow in the network's flow units, when known.
    pub estimated_flow: Option<f64>,
    /// When it was observed (Unix ms).
    pub time_ms: i64,
    /// For people.
    pub message: String,
}

/// An alert of a municipality, as stored and broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Unique within the municipality, increasing.
    pub id: u64,
    /// What happened.
    pub kind: AlertKind,
    /// Highest severity seen while open.
    pub severity: Severity,
    /// Where.
    pub location: AlertLocation,
    /// Latest estimated flow, when known.
    pub estimated_flow: Option<f64>,
    /// First observation (Unix ms).
    pub raised_ms: i64,
    /// Latest observation (Unix ms).
    pub last_seen_ms: i64,
    /// Observations merged into this alert while it was open.
    pub occurrences: u32,
    /// Latest message.
    pub message: String,
    /// Whether it is still open (not resolved).
    pub open: bool,
    /// What its latest publication changed.
    #[serde(default)]
    pub change: AlertChange,
    /// Who acknowledged it, and when.
    #[serde(default)]
    pub acknowledged: Option<AlertAction>,
    /// Who resolved it, and when (`None` while open, or when the condition cleared by itself).
    #[serde(default)]
    pub resolved_by: Option<AlertAction>,
    /// Operators' comments, oldest first.
    #[serde(default)]
    pub comments: Vec<AlertComment>,
    /// Times the escalation policy raised it.
    #[serde(default)]
    pub escalations: u32,
    /// When it was last escalated (Unix ms).
    #[serde(default)]
    pub last_escalated_ms: Option<i64>,
}

impl Alert {
    /// The alert `id` opened by its first observation `input`.
    pub fn opened(id: u64, input: AlertInput) -> Self {
        Alert {
            id,
            kind: input.kind,
            severity: input.severity,
            location: input.location,
            estimated_flow: input.estimated_flow,
            raised_ms: input.time_ms,
            last_seen_ms: input.time_ms,
            occurrences: 1,
            message: input.message,
            open: true,
            change: AlertChange::Raised,
            acknowledged: None,
            resolved_by: None,
            comments: Vec::new(),
            escalations: 0,
            last_escalated_ms: None,
        }
    }
}

/// What the latest publication of an alert changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    /// Newly opened.
    #[default]
    Raised,
    /// Observed again while open.
    Repeated,
    /// Acknowledged by an operator.
    Acknowledged,
    /// Commented.
    Commented,
    /// Severity raised by the escalation policy.
    Escalated,
    /// Closed (by an operator or because the condition cleared).
    Resolved,
}

/// Who did something to an alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertAction {
    /// User name.
    pub by: String,
    /// Unix ms.
    pub at_ms: i64,
}

/// An operator's comment on an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertComment {
    /// User name.
    pub by: String,
    /// Unix ms.
    pub at_ms: i64,
    /// The text.
    pub text: String,
}

/// What a person does to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertOperation {
    /// "I am on it": stops escalation.
    Acknowledge,
    /// Closes the alert.
    Resolve,
    /// Adds a comment.
    Comment(String),
}

/// Longest comment accepted, characters.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// Most comments kept on one alert.
pub const MAX_COMMENTS: usize = 100;

/// Why an operation on an alert was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AlertOperationError {
    /// No alert with this id (or too old to be kept in memory).
    #[error("no alert {0}")]
    NotFound(u64),
    /// The alert is closed.
    #[error("alert {0} is already resolved")]
    AlreadyResolved(u64),
    /// A comment that is empty, too long, or one too many.
    #[error("comment: {0}")]
    BadComment(String),
}

/// What one pipe saw in the latest period, in the network's units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PipeState {
    /// The period (Unix ms).
    pub timestamp_ms: i64,
    /// Flow.
    pub flow: f64,
    /// Velocity.
    pub velocity: f64,
    /// Head at the start node minus head at the end node.
    pub headloss: f64,
    /// Lower pressure of the two end nodes.
    pub pressure_min: f64,
    /// Higher pressure of the two end nodes.
    pub pressure_max: f64,
}

/// One sensor as the twin currently sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SensorSummary {
    /// The sensor id.
    pub sensor_id: String,
    /// Latest reading's value (sensor unit), if any.
    pub last_value: Option<f64>,
    /// Latest reading's time (Unix ms), if any.
    pub last_timestamp: Option<i64>,
    /// Latest reading's quality flags (names).
    pub last_flags: Vec<String>,
    /// Readings handled since the sensor's actor started (restored ones excluded).
    pub count: u64,
    /// Of those, readings usable by the twin.
    pub usable: u64,
}

/// Rules in one municipality's rule set at most.
pub const MAX_ALERT_RULES: usize = 10_000;

/// A threshold rule of a municipality: a `threshold` alert opens when a sensor of `sensor_kind`
/// (or only `sensor_id`) reports values past `below` or `above` for `for_readings` readings in
/// a row and `for_seconds`, and resolves by itself once the value is back inside by
/// `hysteresis`. Limits are in the network's unit of the kind (the unit of `GET .../state`:
/// pressure in the network's pressure unit, head and level in its length unit, flow and demand
/// in its flow unit, valve position in percent, the others in the sensor's unit). A rule naming
/// a sensor replaces its kind's rule for that sensor. Only usable readings count: one the
/// quality checks flag (spike, out of range, stuck, duplicate, out of order, ...) neither opens
/// nor resolves an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The kind of sensor (`pressure`, `head`, `level`, `flow`, `demand`, `valve_position`,
    /// `pump_status`, `battery`, `signal`).
    #[serde(with = "sensor_kind_name")]
    #[schema(
        value_type = String,
        pattern = "^(pressure|head|level|flow|demand|valve_position|pump_status|battery|signal)$",
        example = "pressure"
    )]
    pub sensor_kind: SensorKind,
    /// Only this sensor (of that kind); absent: every sensor of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor_id: Option<String>,
    /// Too low below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// Too high above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Consecutive readings past the limit before the alert opens (default 1).
    #[serde(default = "one_reading")]
    #[schema(minimum = 1)]
    pub for_readings: u32,
    /// Seconds past the limit before the alert opens (default 0).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub for_seconds: f64,
    /// How far back inside the limit the value must come to resolve the alert (default 0).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub hysteresis: f64,
    /// Severity of the alert (default `warning`).
    #[serde(default = "warning")]
    pub severity: Severity,
}

fn one_reading() -> u32 {
    1
}

fn warning() -> Severity {
    Severity::Warning
}

/// A [`SensorKind`] as its configuration name.
mod sensor_kind_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use twin::SensorKind;

    pub(super) fn serialize<S: Serializer>(kind: &SensorKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SensorKind, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl AlertRule {
    /// The rule's limits.
    pub fn limit(&self) -> Limit {
        Limit {
            below: self.below,
            above: self.above,
            for_readings: self.for_readings,
            for_seconds: self.for_seconds,
            hysteresis: self.hysteresis,
        }
    }
}

/// A municipality's threshold rules, replaced as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRules {
    /// The rules; at most one per sensor kind and one per sensor.
    pub rules: Vec<AlertRule>,
}

/// A rule that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {cause}")]
pub struct RuleError {
    /// The field, as a path (`rules[2].below`).
    pub field: String,
    /// What is wrong.
    pub cause: String,
}

impl AlertRules {
    /// Checks every rule against the municipality's `sensors`; the error names the first
    /// wrong field.
    pub fn validate(&self, sensors: &[Sensor]) -> Result<(), RuleError> {
        if self.rules.len() > MAX_ALERT_RULES {
            return Err(RuleError {
                field: "rules".into(),
                cause: format!("at most {MAX_ALERT_RULES} rules"),
            });
        }
        let mut kinds = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let error = |field: &str, cause: String| RuleError {
                field: format!("rules[{i}].{field}"),
                cause,
            };
            rule.limit()
                .validate()
                .map_err(|err| error(err.field, err.cause))?;
            let first = match &rule.sensor_id {
                Some(id) => {
                    let sensor = sensors
                        .iter()
                        .find(|sensor| sensor.id == *id)
                        .ok_or_else(|| error("sensor_id", format!("no sensor {id}")))?;
                    if sensor.kind != rule.sensor_kind {
                        return Err(error(
                            "sensor_id",
                            format!("sensor {id} measures {}", sensor.kind.name()),
                        ));
                    }
                    ids.insert(id.as_str())
                }
                None => kinds.insert(rule.sensor_kind),
            };
            if !first {
                let field = if rule.sensor_id.is_some() {
                    "sensor_id"
                } else {
                    "sensor_kind"
                };
                return Err(error(
                    field,
                    "a second rule for the same sensors (one per kind, one per sensor)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The rule `sensor` follows: its own, else its kind's.
    pub fn for_sensor(&self, sensor: &Sensor) -> Option<&AlertRule> {
        self.rules
            .iter()
            .find(|rule| rule.sensor_id.as_deref() == Some(sensor.id.as_str()))
            .or_else(|| {
                self.rules
                    .iter()
                    .find(|rule| rule.sensor_id.is_none() && rule.sensor_kind == sensor.kind)
            })
    }
}

/// Version byte of [`EncodedState`].
const STATE_VERSION: u8 = 1;

/// A [`PeriodState`] in a compact binary form (little-endian arrays): what is stored under
/// `(tenant, "state", timestamp)` and what crosses a node boundary. Detection events are not
/// part of it: they become alerts, stored on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedState(pub Vec<u8>);

/// Why bytes are not an [`EncodedState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad encoded state: {0}")]
pub struct StateDecodeError(&'static str);

impl EncodedState {
    /// Encodes `state`'s arrays and residuals.
    pub fn encode(state: &PeriodState) -> Self {
        let nodes = state.head.len();
        let links = state.flow.len();
        let mut out = Vec::with_capacity(32 + nodes * 24 + links * 25);
        out.push(STATE_VERSION);
        out.extend_from_slice(&state.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&state.sim_seconds.to_le_bytes());
        out.push(u8::from(state.converged));
        out.extend_from_slice(&(nodes as u32).to_le_bytes());
        out.extend_from_slice(&(links as u32).to_le_bytes());
        for array in [&state.head, &state.pressure, &state.demand] {
            put_array(&mut out, array, nodes);
        }
        for array in [&state.flow, &state.velocity, &state.headloss] {
            put_array(&mut out, array, links);
        }
        out.extend((0..links).map(|i| state.status.get(i).copied().unwrap_or(0)));
        out.extend_from_slice(&(state.residuals.len() as u32).to_le_bytes());
        for residual in &state.residuals {
            let id = residual.sensor_id.as_bytes();
            let len = id.len().min(u16::MAX as usize);
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.extend_from_slice(&id[..len]);
            out.extend_from_slice(&residual.measured.to_le_bytes());
            out.extend_from_slice(&residual.simulated.to_le_bytes());
        }
        Self(out)
    }

    /// The state back.
    pub fn decode(&self) -> Result<PeriodState, StateDecodeError> {
        let mut cursor = Cursor { rest: &self.0 };
        if cursor.byte()? != STATE_VERSION {
            return Err(StateDecodeError("unsupported version"));
        }
        let timestamp_ms = i64::from_le_bytes(cursor.array()?);
        let sim_seconds = u64::from_le_bytes(cursor.array()?);
        let converged = cursor.byte()? != 0;
        let nodes = u32::from_le_bytes(cursor.array()?) as usize;
        let links = u32::from_le_bytes(cursor.array()?) as usize;
        let head = cursor.f64s(nodes)?;
        let pressure = cursor.f64s(nodes)?;
        let demand = cursor.f64s(nodes)?;
        let flow = cursor.f64s(links)?;
        let velocity = cursor.f64s(links)?;
        let headloss = cursor.f64s(links)?;
        let status = cursor.take(links)?.to_vec();
        let count = u32::from_le_bytes(cursor.array()?) as usize;
        let mut residuals = Vec::with_capacity(count.min(cursor.rest.len() / 18));
        for _ in 0..count {
            let len = u16::from_le_bytes(cursor.array()?) as usize;
            let sensor_id = std::str::from_utf8(cursor.take(len)?)
                .map_err(|_| StateDecodeError("sensor id is not UTF-8"))?
                .to_string();
            let measured = f64::from_le_bytes(cursor.array()?);
            let simulated = f64::from_le_bytes(cursor.array()?);
            residuals.push(SensorResidual {
                sensor_id,
                measured,
                simulated,
            });
        }
        if !cursor.rest.is_empty() {
            return Err(StateDecodeError("trailing bytes"));
        }
        Ok(PeriodState {
            timestamp_ms,
            sim_seconds,
            converged,
            head,
            pressure,
            demand,
            flow,
            velocity,
            headloss,
            status,
            residuals,
            events: Vec::new(),
        })
    }
}

/// Writes `len` values of `array` (0 where it is shorter, so the layout stays fixed).
fn put_array(out: &mut Vec<u8>, array: &[f64], len: usize) {
    for i in 0..len {
        out.extend_from_slice(&array.get(i).copied().unwrap_or(0.0).to_le_bytes());
    }
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateDecodeError> {
        if self.rest.len() < n {
            return Err(StateDecodeError("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, StateDecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateDecodeError> {
        self.take(N)?
            .try_into()
            .map_err(|_| StateDecodeError("truncated"))
    }

    fn f64s(&mut self, n: usize) -> Result<Vec<f64>, StateDecodeError> {
        let bytes = self.take(n.checked_mul(8).ok_or(StateDecodeError("too long"))?)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(chunk);
                f64::from_le_bytes(raw)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PeriodState {
        PeriodState {
            timestamp_ms: 1_700_000_000_123,
            sim_seconds: 3600,
            converged: true,
            head: vec![100.5, -2.0, f64::MAX],
            pressure: vec![40.0, 0.0, 1e-9],
            demand: vec![1.0, 2.0, 3.0],
            flow: vec![0.1, -0.2],
            velocity: vec![1.5, 0.0],
            headloss: vec![0.01, -7.0],
            status: vec![1, 0],
            residuals: vec![SensorResidual {
                sensor_id: "p-é1".to_string(),
                measured: 41.0,
                simulated: 40.0,
            }],
            events: Vec::new(),
        }
    }

    fn sensors() -> Vec<Sensor> {
        use twin::Unit;
        vec![
            Sensor::new("P1", SensorKind::Pressure, "J1", Unit::Psi).unwrap(),
            Sensor::new("P2", SensorKind::Pressure, "J2", Unit::Psi).unwrap(),
            Sensor::new("L1", SensorKind::Level, "T1", Unit::Foot).unwrap(),
        ]
    }

    fn rules(json: serde_json::Value) -> Result<AlertRules, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn a_sensors_own_rule_replaces_its_kinds() {
        let set = rules(serde_json::json!({"rules": [
            {"sensor_kind": "pressure", "below": 20.0},
            {"sensor_kind": "pressure", "sensor_id": "P2", "above": 80.0, "severity": "info"},
        ]}))
        .unwrap();
        assert_eq!(set.validate(&sensors()), Ok(()));
        let sensors = sensors();
        assert_eq!(set.for_sensor(&sensors[0]).unwrap().below, Some(20.0));
        let own = set.for_sensor(&sensors[1]).unwrap();
        assert_eq!((own.above, own.severity), (Some(80.0), Severity::Info));
        assert_eq!(own.for_readings, 1);
        assert!(set.for_sensor(&sensors[2]).is_none());
        let text = serde_json::to_value(&set).unwrap();
        assert_eq!(text["rules"][0]["sensor_kind"], "pressure");
        assert_eq!(rules(text).unwrap(), set);
    }

    #[test]
    fn bad_rules_name_their_field() {
        let field = |json: serde_json::Value| {
            rules(serde_json::json!({ "rules": json }))
                .unwrap()
                .validate(&sensors())
                .unwrap_err()
                .field
        };
        let ok = serde_json::json!({"sensor_kind": "level", "below": 1.0});
        assert_eq!(
            field(serde_json::json!([ok, {"sensor_kind": "pressure", "below": 3, "above": 2}])),
            "rules[1].below"
        );
        assert_eq!(
            field(serde_json::json!([{"sensor_kind": "pressure", "sensor_id": "X", "below": 1}])),
            "rules[0].sensor_id"
        );
        assert_eq!(
            field(serde_json::json!([{"sensor_kind": "level", "sensor_id": "P1", "below": 1}])),
            "rules[0].sensor_id"
        );
        assert_eq!(field(serde_json::json!([ok, ok])), "rules[1].sensor_kind");
        assert_eq!(
            field(serde_json::json!([{"sensor_kind": "level", "above": 1, "for_seconds": -1}])),
            "rules[0].for_seconds"
        );
        assert!(rules(serde_json::json!({"rules": [{"sensor_kind": "salinity"}]})).is_err());
        assert!(
            rules(serde_json::json!({"rules": [{"sensor_kind": "level", "belo": 1}]})).is_err()
        );
    }

    #[test]
    fn the_documented_sensor_kinds_are_the_twins() {
        let schema = serde_json::to_value(<AlertRule as utoipa::PartialSchema>::schema()).unwrap();
        let pattern = schema["properties"]["sensor_kind"]["pattern"]
            .as_str()
            .unwrap();
        let names: Vec<&str> = pattern
            .trim_start_matches("^(")
            .trim_end_matches(")$")
            .split('|')
            .collect();
        let kinds: Vec<&str> = SensorKind::ALL.iter().map(|kind| kind.name()).collect();
        assert_eq!(names, kinds);
        for name in names {
            let rule = serde_json::json!({"sensor_kind": name, "below": 1.0});
            assert!(serde_json::from_value::<AlertRule>(rule).is_ok(), "{name}");
        }
    }

    #[test]
    fn state_round_trips_bit_for_bit() {
        let state = sample();
        let encoded = EncodedState::encode(&state);
        assert_eq!(encoded.decode().unwrap(), state);
        // 1 + 8 + 8 + 1 + 4 + 4 + 3*3*8 + 2*3*8 + 2 + 4 + (2 + 5 + 16)
        assert_eq!(encoded.0.len(), 26 + 72 + 48 + 2 + 4 + 23);
    }

    #[test]
    fn truncated_or_padded_bytes_are_errors() {
        let encoded = EncodedState::encode(&sample());
        for cut in 0..encoded.0.len() {
            assert!(EncodedState(encoded.0[..cut].to_vec()).decode().is_err());
        }
        let mut padded = encoded.0.clone();
        padded.push(0);
        assert!(EncodedState(padded).decode().is_err());
    }
}
