//! The bodies of job submissions: one per kind, read from JSON and checked against the network
//! they name before a job is queued (and again when the worker runs it).

use std::path::Path as FilePath;
use std::sync::Arc;

use hydraulics::model::LinkKind;
use hydraulics::Network;
use scenarios::criticality::{pipes, Settings};
use scenarios::segments::{place_valves, segments, Segments};
use scenarios::Scenario;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use twin::StoreError;
use utoipa::ToSchema;

use crate::planning::criticality::{Kind, Valves};
use crate::planning::risk::{fit_likelihood, RiskInputs};
use crate::serve::networks::{parse_version, Versions, LIVE};

/// The name scenario texts are read under (errors read `scenario: events[0]: ...`).
pub(super) const SCENARIO_FILE: &str = "scenario";

/// The risk model's messages name the command line's options; a job's body names them so.
const RISK_FIELDS: [(&str, &str); 4] = [
    ("--duration", "duration_hours"),
    ("--horizon", "horizon_years"),
    ("--window-start", "window_start"),
    ("--window-end", "window_end"),
];

/// What a job computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum JobKind {
    Scenario,
    Criticality,
    Risk,
}

/// A job's network: a version number or `"live"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum NetworkRef {
    Number(u64),
    Name(String),
}

impl std::fmt::Display for NetworkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkRef::Number(version) => write!(f, "{version}"),
            NetworkRef::Name(name) => write!(f, "{name:?}"),
        }
    }
}

impl Default for NetworkRef {
    fn default() -> Self {
        NetworkRef::Name(LIVE.to_string())
    }
}

/// A scenario job's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScenarioJob {
    #[serde(default)]
    network: NetworkRef,
    /// TOML text or a JSON object.
    scenario: Value,
}

/// A criticality job's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CriticalityJob {
    #[serde(default)]
    network: NetworkRef,
    failure: Option<Kind>,
    duration_hours: Option<f64>,
    pipes: Option<Vec<String>>,
    valves: Option<Valves>,
    burst_area: Option<f64>,
}

/// A risk job's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RiskJob {
    #[serde(default)]
    network: NetworkRef,
    assets: String,
    breaks: String,
    twin_stats: Option<String>,
    window_start: Option<String>,
    window_end: Option<String>,
    horizon_years: Option<f64>,
    valves: Option<Valves>,
    demand_per_customer: Option<f64>,
    duration_hours: Option<f64>,
}

impl RiskJob {
    pub(super) fn inputs(&self) -> RiskInputs<'_> {
        RiskInputs {
            assets: ("assets", &self.assets),
            breaks: ("breaks", &self.breaks),
            twin_stats: self.twin_stats.as_deref().map(|text| ("twin_stats", text)),
            window_start: self.window_start.as_deref(),
            window_end: self.window_end.as_deref(),
            horizon: self.horizon_years.unwrap_or(5.0),
            valves: self.valves.unwrap_or(Valves::PipeEnds),
            demand_per_customer: self.demand_per_customer,
            duration: self.duration_hours.unwrap_or(24.0),
            jobs: 1,
        }
    }
}

/// A job's body.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum JobRequest {
    Scenario(ScenarioJob),
    Criticality(CriticalityJob),
    Risk(RiskJob),
}

impl JobRequest {
    pub(super) fn parse(body: &[u8]) -> Result<Self, JobError> {
        serde_json::from_slice(body).map_err(|err| JobError::Invalid(format!("body: {err}")))
    }

    pub(super) fn kind(&self) -> JobKind {
        match self {
            JobRequest::Scenario(_) => JobKind::Scenario,
            JobRequest::Criticality(_) => JobKind::Criticality,
            JobRequest::Risk(_) => JobKind::Risk,
        }
    }

    fn network(&self) -> &NetworkRef {
        match self {
            JobRequest::Scenario(job) => &job.network,
            JobRequest::Criticality(job) => &job.network,
            JobRequest::Risk(job) => &job.network,
        }
    }
}

/// Why a job cannot be queued or run.
#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    /// Its inputs are wrong (422 when submitted).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A checked job, ready to run.
pub(super) enum Prepared {
    Scenario {
        network: Arc<Network>,
        scenario: Box<Scenario>,
    },
    Criticality {
        network: Arc<Network>,
        elements: Vec<usize>,
        settings: Settings,
        segments: Option<Segments>,
    },
    Risk {
        network: Arc<Network>,
        job: RiskJob,
        likelihood: Vec<twin::risk::PipeRisk>,
    },
}

/// The version `network` names, and that network.
fn resolve_network(
    versions: &Versions,
    municipality: &str,
    network: &NetworkRef,
) -> Result<(u64, Arc<Network>), JobError> {
    let version = match network {
        NetworkRef::Number(version) => Some(*version),
        NetworkRef::Name(name) => parse_version(name),
    };
    let unknown = || JobError::Invalid(format!("network: no network version {network}"));
    let version = version.ok_or_else(unknown)?;
    let network = versions
        .network(municipality, version)?
        .ok_or_else(unknown)?;
    Ok((version, network))
}

fn network_label(version: u64) -> String {
    if version == 0 {
        LIVE.to_string()
    } else {
        format!("networks/{version}")
    }
}

/// The scenario file text of `spec` (TOML text or a JSON object), with `network` set to
/// `label` unless it names one.
fn scenario_text(spec: &Value, label: &str) -> Result<String, JobError> {
    let invalid = |err: &dyn std::fmt::Display| {
        JobError::Invalid(format!(
            "scenario: {}",
            err.to_string().trim_end().replace('\n', " ")
        ))
    };
    let mut table: toml::Table = match spec {
        Value::String(text) => toml::from_str(text).map_err(|e| invalid(&e))?,
        Value::Object(_) => toml::Table::try_from(spec).map_err(|e| invalid(&e))?,
        _ => return Err(invalid(&"must be TOML text or a JSON object")),
    };
    table
        .entry("network")
        .or_insert_with(|| toml::Value::String(label.to_string()));
    toml::to_string(&table).map_err(|e| invalid(&e))
}

/// Checks `request` against the network it names.
pub(super) fn prepare(
    versions: &Versions,
    municipality: &str,
    request: JobRequest,
) -> Result<(u64, Prepared), JobError> {
    let (version, network) = resolve_network(versions, municipality, request.network())?;
    let prepared = match request {
        JobRequest::Scenario(job) => {
            let text = scenario_text(&job.scenario, &network_label(version))?;
            let scenario = scenarios::parse(&text, FilePath::new(SCENARIO_FILE), &network)
                .map_err(|err| JobError::Invalid(err.to_string()))?;
            Prepared::Scenario {
                network,
                scenario: Box::new(scenario),
            }
        }
        JobRequest::Criticality(job) => prepare_criticality(network, &job)?,
        JobRequest::Risk(job) => {
            let name = format!("network {}", network_label(version));
            let likelihood = fit_likelihood(&network, &name, &job.inputs()).map_err(|err| {
                let message = RISK_FIELDS
                    .iter()
                    .fold(format!("{err:#}"), |text, (flag, field)| {
                        text.replace(flag, field)
                    });
                JobError::Invalid(message)
            })?;
            Prepared::Risk {
                network,
                job,
                likelihood: likelihood.pipes,
            }
        }
    };
    Ok((version, prepared))
}

fn prepare_criticality(network: Arc<Network>, job: &CriticalityJob) -> Result<Prepared, JobError> {
    let duration = match job.duration_hours {
        Some(hours) if !(hours.is_finite() && hours > 0.0) => {
            return Err(JobError::Invalid(format!(
                "duration_hours: must be positive hours, not {hours}"
            )))
        }
        Some(hours) => (hours * 3600.0).round() as u64,
        None => network.times.duration,
    };
    let burst_area = job.burst_area.unwrap_or(0.1);
    if !(burst_area > 0.0 && burst_area <= 1.0) {
        return Err(JobError::Invalid(format!(
            "burst_area: must be a fraction in (0, 1], not {burst_area}"
        )));
    }
    let elements = match &job.pipes {
        None => pipes(&network),
        Some(ids) if ids.is_empty() => {
            return Err(JobError::Invalid("pipes: an empty list".into()));
        }
        Some(ids) => ids
            .iter()
            .map(|id| {
                network
                    .link_index(id)
                    .filter(|&l| matches!(network.links[l].kind, LinkKind::Pipe(_)))
                    .ok_or_else(|| JobError::Invalid(format!("pipes: no pipe `{id}`")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let settings = Settings {
        kind: job.failure.unwrap_or(Kind::PipeClosure).into(),
        duration,
        pda: scenarios::spec::default_pda(&network),
        jobs: 1,
        burst_area_fraction: burst_area,
    };
    let segments = (job.failure == Some(Kind::Segment)).then(|| {
        let valves = job.valves.unwrap_or(Valves::PipeEnds);
        segments(&network, place_valves(&network, valves.into()))
    });
    Ok(Prepared::Criticality {
        network,
        elements,
        settings,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use serde_json::json;

    #[test]
    fn scenario_specs_in_json_and_toml_read_the_same_with_the_network_label() {
        let toml_text = "name = \"b\"\n[[events]]\nkind = \"burst\"\npipe = \"20\"\n\
            area = 0.05\nat_hours = 2\n";
        let json_spec = json!({
            "name": "b",
            "events": [{"kind": "burst", "pipe": "20", "area": 0.05, "at_hours": 2}],
        });
        let from_toml = scenario_text(&Value::String(toml_text.into()), "live").unwrap();
        let from_json = scenario_text(&json_spec, "live").unwrap();
        let read = |text: &str| toml::from_str::<toml::Table>(text).unwrap();
        assert_eq!(read(&from_toml), read(&from_json));
        assert_eq!(read(&from_toml)["network"].as_str(), Some("live"));
        let named = scenario_text(&Value::String("network = \"a.inp\"".into()), "live").unwrap();
        assert_eq!(read(&named)["network"].as_str(), Some("a.inp"));
        let refused = scenario_text(&json!(3), "live").unwrap_err();
        assert!(refused.to_string().starts_with("scenario:"), "{refused}");
    }

    #[test]
    fn risk_inputs_are_named_as_in_the_body() {
        let store: Arc<dyn twin::Store> = Arc::new(twin::store::MemoryStore::new());
        let net3 = hydraulics::read_file(FilePath::new("hydraulics/networks/Net3.inp")).unwrap();
        let live = HashMap::from([("north".to_string(), Arc::new(net3))]);
        let versions = Versions::new(store, &live);
        let assets = include_str!("../../../twin/data/net3_assets.csv");
        let breaks = include_str!("../../../twin/data/net3_breaks.csv");
        for (extra, field) in [
            (json!({"horizon_years": -1}), "horizon_years"),
            (json!({"duration_hours": 0}), "duration_hours"),
            (json!({"window_start": "2020-13-01"}), "window_start"),
            (json!({"network": 4}), "network"),
        ] {
            let mut body = json!({"kind": "risk", "assets": assets, "breaks": breaks});
            for (name, value) in extra.as_object().unwrap() {
                body[name] = value.clone();
            }
            let request = JobRequest::parse(body.to_string().as_bytes()).unwrap();
            let Err(JobError::Invalid(message)) = prepare(&versions, "north", request) else {
                panic!("{extra} was accepted");
            };
            assert!(message.starts_with(field), "{message}");
        }
    }

    #[test]
    fn bodies_name_what_is_wrong() {
        let missing = JobRequest::parse(b"{\"kind\": \"scenario\"}").unwrap_err();
        assert!(missing.to_string().contains("scenario"), "{missing}");
        let unknown = JobRequest::parse(b"{\"kind\": \"criticality\", \"pipez\": []}").unwrap_err();
        assert!(unknown.to_string().contains("pipez"), "{unknown}");
        let kind = JobRequest::parse(b"{\"kind\": \"dance\"}").unwrap_err();
        assert!(kind.to_string().contains("dance"), "{kind}");
    }
}
