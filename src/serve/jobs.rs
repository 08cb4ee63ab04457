//! Planning jobs: what-if scenarios, criticality sweeps and risk rankings run in the
//! background on a municipality's networks ([`super::networks`]), with their results kept in the
//! store.
//!
//! - `POST /api/v1/municipalities/{m}/jobs` (`super_admin`, `municipality_admin`, `operator`)
//!   with a JSON body, `network` being a version number or `"live"` (the default):
//!   - `{"kind": "scenario", "network", "scenario"}`: the scenario file `aquatwin scenario`
//!     reads, as TOML text or as the same structure in JSON. Its own `network` key only labels
//!     the report (default `live` or `networks/<version>`); the job's `network` is what runs.
//!   - `{"kind": "criticality", "network", "failure": "pipe-closure" | "burst" | "segment",
//!     "duration_hours", "pipes": [ids], "valves": "pipe-ends" | "model", "burst_area"}`
//!     (defaults: pipe closure, the network's duration, every pipe, valves at the pipe ends,
//!     0.1), as `aquatwin criticality`.
//!   - `{"kind": "risk", "network", "assets", "breaks", "twin_stats", "window_start",
//!     "window_end", "horizon_years", "valves", "demand_per_customer", "duration_hours"}`:
//!     the CSV files of `aquatwin risk` as text (`twin_stats` optional), the options as its
//!     flags (defaults: horizon 5 years, 24 h).
//!
//!   The inputs are checked before the job is queued: 202 with `{"id", "status_url"}`, or 422
//!   naming the field (an unknown element, a time beyond the duration, a negative size: the
//!   scenario reader's and the risk model's own messages).
//! - `GET .../jobs` (readers): newest first. `GET .../jobs/{job}`: status `queued`, `running`,
//!   `done`, `failed` or `cancelled`, `progress` (0 to 1, updated while a sweep runs), submit,
//!   start and finish times, `error`.
//! - `GET .../jobs/{job}/result` (readers): the JSON the command line writes with `--out`
//!   (`aquatwin scenario`'s impact report, `aquatwin criticality`'s report, `aquatwin risk`'s
//!   ranking); 409 while the job is not done.
//! - `POST .../jobs/{job}/cancel` (submitters): a queued job is cancelled at once (200); a
//!   running one stops before its next simulation (202, then `cancelled`); a finished one is
//!   409.
//! - `GET .../risk` (readers): the ranking of the latest done risk job (404 when there is none).
//!
//! Jobs run one at a time, in submission order, on one worker thread of lowered scheduling
//! priority (nice 10) outside the async runtime, with one simulation thread, so that the live
//! twin keeps its cores. Records, requests and results are in the store: they survive a
//! restart; a job that was running when the server stopped is then `failed` with the error
//! `interrupted by a restart`, and queued ones run. Each municipality keeps the latest 50
//! finished jobs: past that, the oldest finished job's record, request and result are deleted
//! when a job is submitted (queued and running jobs are never dropped).

use std::collections::HashMap;
use std::path::Path as FilePath;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::auth::Role;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hydraulics::model::LinkKind;
use hydraulics::Network;
use scenarios::criticality::{pipes, sweep_until, Settings};
use scenarios::segments::{place_valves, segments, Segments};
use scenarios::Scenario;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use twin::store::tuple::Element;
use twin::store::{Durability, Order, TenantKeys, WriteBatch};
use twin::StoreError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{malformed_request, path_parameters, AppState, OPERATORS, READERS};
use super::networks::{blocking, parse_version, served, Versions, LIVE};
use crate::planning::criticality::{Kind, Valves};
use crate::planning::risk::{fit_likelihood, rank, RiskInputs};
use crate::planning::scenario::run_scenario;

/// Who may submit and cancel jobs.
const SUBMITTERS: &[Role] = OPERATORS;

/// Record families: job descriptions, the requests as sent, results; each by job id.
const JOBS: &str = "jobs";
const JOB_REQUESTS: &str = "job_requests";
const JOB_RESULTS: &str = "job_results";

/// Finished jobs kept per municipality; older ones are deleted.
const KEPT_FINISHED: usize = 50;

/// The error of a job that was running when the server stopped.
const INTERRUPTED: &str = "interrupted by a restart";

/// Scheduling priority of the worker thread (and the simulation threads it starts).
const WORKER_NICE: i32 = 10;

/// The name scenario texts are read under (errors read `scenario: events[0]: ...`).
const SCENARIO_FILE: &str = "scenario";

/// The risk model's messages name the command line's options; a job's body names them so.
const RISK_FIELDS: [(&str, &str); 4] = [
    ("--duration", "duration_hours"),
    ("--horizon", "horizon_years"),
    ("--window-start", "window_start"),
    ("--window-end", "window_end"),
];

/// The job routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, submit_job))
        .routes(routes!(get_job))
        .routes(routes!(job_result))
        .routes(routes!(cancel_job))
        .routes(routes!(latest_risk))
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Status {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    fn finished(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }

    fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// What a job computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum JobKind {
    Scenario,
    Criticality,
    Risk,
}

/// A job, as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
struct JobRecord {
    id: u64,
    municipality: String,
    kind: JobKind,
    /// The network version it runs on (0: the live twin's configured network).
    network_version: u64,
    status: Status,
    /// 0 to 1.
    progress: f64,
    /// Set once a cancel was asked for while it runs.
    cancel_requested: bool,
    submitted_by: String,
    /// Unix ms.
    submitted_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    /// Why it failed.
    error: Option<String>,
}

/// The answer to a submission.
#[derive(Serialize, ToSchema)]
struct Submitted {
    id: u64,
    /// Where its status is.
    status_url: String,
}

/// The jobs of a municipality.
#[derive(Serialize, ToSchema)]
struct JobList {
    municipality: String,
    /// Newest first.
    jobs: Vec<JobRecord>,
}

/// The latest risk ranking.
#[derive(Serialize, ToSchema)]
struct RiskRanking {
    /// The job that computed it.
    job: JobRecord,
    /// Pipes by risk, highest first (`aquatwin risk --out ranking.json`).
    #[schema(value_type = Vec<Object>)]
    ranking: Value,
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
struct ScenarioJob {
    #[serde(default)]
    network: NetworkRef,
    /// TOML text or a JSON object.
    scenario: Value,
}

/// A criticality job's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CriticalityJob {
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
struct RiskJob {
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
    fn inputs(&self) -> RiskInputs<'_> {
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
enum JobRequest {
    Scenario(ScenarioJob),
    Criticality(CriticalityJob),
    Risk(RiskJob),
}

impl JobRequest {
    fn parse(body: &[u8]) -> Result<Self, JobError> {
        serde_json::from_slice(body).map_err(|err| JobError::Invalid(format!("body: {err}")))
    }

    fn kind(&self) -> JobKind {
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
enum JobError {
    /// Its inputs are wrong (422 when submitted).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A checked job, ready to run.
enum Prepared {
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
fn prepare(
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

/// How a run ended.
enum Outcome {
    Done(Vec<u8>),
    Failed(String),
    Cancelled,
}

/// Runs a prepared job, reporting the fraction done to `progress`; stops early once `stop`
/// is set.
fn execute(prepared: Prepared, progress: &Progress) -> Outcome {
    let json = |value: Result<Vec<u8>, serde_json::Error>| match value {
        Ok(bytes) => Outcome::Done(bytes),
        Err(err) => Outcome::Failed(format!("cannot encode the result: {err}")),
    };
    match prepared {
        Prepared::Scenario { network, scenario } => {
            match run_scenario(&network, &scenario, FilePath::new(SCENARIO_FILE)) {
                Ok(run) => json(serde_json::to_vec_pretty(&run.impact)),
                Err(err) => Outcome::Failed(format!("{err:#}")),
            }
        }
        Prepared::Criticality {
            network,
            elements,
            settings,
            segments,
        } => {
            let total = elements.len();
            let report = sweep_until(
                &network,
                &elements,
                &settings,
                segments.as_ref(),
                &|done| progress.set(done, total),
                &progress.stop,
            );
            match report {
                Ok(Some(report)) => json(serde_json::to_vec_pretty(&report)),
                Ok(None) => Outcome::Cancelled,
                Err(err) => Outcome::Failed(err.to_string()),
            }
        }
        Prepared::Risk {
            network,
            job,
            likelihood,
        } => {
            let total = likelihood.len();
            let ranked = rank(
                &network,
                &job.inputs(),
                likelihood,
                &|done| progress.set(done, total),
                &progress.stop,
            );
            match ranked {
                Ok(Some(rows)) => json(serde_json::to_vec_pretty(&rows)),
                Ok(None) => Outcome::Cancelled,
                Err(err) => Outcome::Failed(format!("{err:#}")),
            }
        }
    }
}

/// A running job's progress and its stop flag.
#[derive(Default)]
struct Progress {
    /// The fraction done, as `f64` bits.
    fraction: AtomicU64,
    stop: AtomicBool,
}

impl Progress {
    fn set(&self, done: usize, total: usize) {
        let fraction = done as f64 / total.max(1) as f64;
        self.fraction
            .store(fraction.min(1.0).to_bits(), Ordering::Relaxed);
    }

    fn fraction(&self) -> f64 {
        f64::from_bits(self.fraction.load(Ordering::Relaxed))
    }
}

/// A job: its municipality and id.
type JobKey = (String, u64);

/// What the routes and the worker share.
struct Shared {
    store: Arc<dyn twin::Store>,
    versions: Arc<Versions>,
    /// Held while a job's record is read and rewritten, so that the worker and the routes never
    /// overwrite each other's changes (and while an id is taken).
    transitions: Mutex<()>,
    /// The running job's progress.
    running: Mutex<HashMap<JobKey, Arc<Progress>>>,
}

fn key(municipality: &str, family: &str, id: u64) -> Vec<u8> {
    TenantKeys::new(municipality).key(&[
        Element::from(family),
        Element::Int(i64::try_from(id).unwrap_or(i64::MAX)),
    ])
}

fn encode(record: &JobRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|err| StoreError::backend("encode job", err))
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<JobKey, Arc<Progress>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, municipality: &str, id: u64) -> Result<Option<JobRecord>, StoreError> {
        let Some(bytes) = self.store.get(&key(municipality, JOBS, id))? else {
            return Ok(None);
        };
        let record =
            serde_json::from_slice(&bytes).map_err(|err| StoreError::backend("decode job", err))?;
        Ok(Some(self.with_progress(record)))
    }

    /// `record` with the live progress of a running job.
    fn with_progress(&self, mut record: JobRecord) -> JobRecord {
        if record.status == Status::Running {
            if let Some(progress) = self
                .running()
                .get(&(record.municipality.clone(), record.id))
            {
                record.progress = progress.fraction();
                record.cancel_requested = progress.stop.load(Ordering::Relaxed);
            }
        }
        record
    }

    /// Every job of `municipality`, in `order` of id.
    fn records(&self, municipality: &str, order: Order) -> Result<Vec<JobRecord>, StoreError> {
        let range = TenantKeys::new(municipality)
            .space()
            .subspace(&[Element::from(JOBS)])
            .range();
        self.store
            .scan(&range, order, None)?
            .into_iter()
            .map(|(_, bytes)| {
                serde_json::from_slice(&bytes)
                    .map(|record| self.with_progress(record))
                    .map_err(|err| StoreError::backend("decode job", err))
            })
            .collect()
    }

    fn put(&self, record: &JobRecord) -> Result<(), StoreError> {
        self.store.put(
            &key(&record.municipality, JOBS, record.id),
            &encode(record)?,
        )
    }

    /// Stores a new queued job of `request` (already checked) and drops the oldest finished
    /// jobs past [`KEPT_FINISHED`].
    fn submit(
        &self,
        municipality: &str,
        by: &str,
        kind: JobKind,
        network_version: u64,
        request: &[u8],
    ) -> Result<JobRecord, StoreError> {
        let _held = self.lock();
        let newest = self.records(municipality, Order::Reverse)?;
        let record = JobRecord {
            id: newest.first().map_or(1, |last| last.id + 1),
            municipality: municipality.to_string(),
            kind,
            network_version,
            status: Status::Queued,
            progress: 0.0,
            cancel_requested: false,
            submitted_by: by.to_string(),
            submitted_at_ms: crate::fleet::unix_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            error: None,
        };
        let mut batch = WriteBatch::new();
        batch.put(key(municipality, JOBS, record.id), encode(&record)?);
        batch.put(key(municipality, JOB_REQUESTS, record.id), request);
        let finished = newest.iter().filter(|job| job.status.finished());
        for old in finished.skip(KEPT_FINISHED) {
            for family in [JOBS, JOB_REQUESTS, JOB_RESULTS] {
                batch.delete(key(municipality, family, old.id));
            }
        }
        self.store.write(batch, Durability::Durable)?;
        Ok(record)
    }

    /// Marks a queued job running; `None` when it is no longer queued (cancelled).
    fn start(&self, job: &JobKey) -> Result<Option<(JobRecord, Arc<Progress>)>, StoreError> {
        let _held = self.lock();
        let Some(mut record) = self.record(&job.0, job.1)? else {
            return Ok(None);
        };
        if record.status != Status::Queued {
            return Ok(None);
        }
        record.status = Status::Running;
        record.started_at_ms = Some(crate::fleet::unix_ms());
        self.put(&record)?;
        let progress = Arc::new(Progress::default());
        self.running().insert(job.clone(), progress.clone());
        Ok(Some((record, progress)))
    }

    /// Records how the running job `record` ended.
    fn finish(&self, mut record: JobRecord, outcome: Outcome) -> Result<(), StoreError> {
        let _held = self.lock();
        let job = (record.municipality.clone(), record.id);
        if let Some(progress) = self.running().get(&job) {
            record.progress = progress.fraction();
            record.cancel_requested = progress.stop.load(Ordering::Relaxed);
        }
        record.finished_at_ms = Some(crate::fleet::unix_ms());
        let mut batch = WriteBatch::new();
        match outcome {
            Outcome::Done(result) => {
                record.status = Status::Done;
                record.progress = 1.0;
                batch.put(key(&job.0, JOB_RESULTS, job.1), result);
            }
            Outcome::Failed(error) => {
                record.status = Status::Failed;
                record.error = Some(error);
            }
            Outcome::Cancelled => record.status = Status::Cancelled,
        }
        batch.put(key(&job.0, JOBS, job.1), encode(&record)?);
        let written = self.store.write(batch, Durability::Durable);
        // Only now: until the finished record is stored, readers see the running one with
        // this progress.
        self.running().remove(&job);
        written
    }

    /// Runs one queued job to its end.
    fn run(&self, job: &JobKey) -> Result<(), StoreError> {
        let Some((record, progress)) = self.start(job)? else {
            return Ok(());
        };
        let outcome = match self.store.get(&key(&job.0, JOB_REQUESTS, job.1))? {
            None => Outcome::Failed("the job's request is missing".into()),
            Some(body) => match JobRequest::parse(&body)
                .and_then(|request| prepare(&self.versions, &job.0, request))
            {
                Ok((_, prepared)) => execute(prepared, &progress),
                Err(err) => Outcome::Failed(err.to_string()),
            },
        };
        self.finish(record, outcome)
    }

    /// Cancels a job: at once when queued, at its next step when running; `None` when there
    /// is no such job.
    fn cancel(
        &self,
        municipality: &str,
        id: u64,
    ) -> Result<Option<(JobRecord, StatusCode)>, StoreError> {
        let _held = self.lock();
        let Some(mut record) = self.record(municipality, id)? else {
            return Ok(None);
        };
        let answer = match record.status {
            Status::Queued => {
                record.status = Status::Cancelled;
                record.finished_at_ms = Some(crate::fleet::unix_ms());
                self.put(&record)?;
                StatusCode::OK
            }
            Status::Running => {
                if let Some(progress) = self.running().get(&(municipality.to_string(), id)) {
                    progress.stop.store(true, Ordering::Relaxed);
                    record.cancel_requested = true;
                }
                StatusCode::ACCEPTED
            }
            Status::Done | Status::Failed | Status::Cancelled => StatusCode::CONFLICT,
        };
        Ok(Some((record, answer)))
    }

    /// After a restart: running jobs failed, queued ones to run again (in submission order).
    fn recover(&self, municipalities: &[String]) -> Result<Vec<JobKey>, StoreError> {
        let mut queued = Vec::new();
        for municipality in municipalities {
            for mut record in self.records(municipality, Order::Forward)? {
                match record.status {
                    Status::Running => {
                        record.status = Status::Failed;
                        record.error = Some(INTERRUPTED.to_string());
                        record.finished_at_ms = Some(crate::fleet::unix_ms());
                        self.put(&record)?;
                    }
                    Status::Queued => {
                        queued.push((record.submitted_at_ms, record.id, municipality))
                    }
                    Status::Done | Status::Failed | Status::Cancelled => {}
                }
            }
        }
        queued.sort();
        Ok(queued
            .into_iter()
            .map(|(_, id, municipality)| (municipality.clone(), id))
            .collect())
    }
}

/// The planning jobs of every municipality and their worker.
pub(super) struct Jobs {
    shared: Arc<Shared>,
    /// To the worker thread; it ends once this is dropped and its current job is done.
    queue: mpsc::Sender<JobKey>,
}

impl Jobs {
    /// Recovers the jobs of `municipalities` in `store` (see the module documentation) and
    /// starts the worker.
    pub(super) fn start(
        store: Arc<dyn twin::Store>,
        versions: Arc<Versions>,
        municipalities: &[String],
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            store,
            versions,
            transitions: Mutex::new(()),
            running: Mutex::new(HashMap::new()),
        });
        let (queue, jobs) = mpsc::channel::<JobKey>();
        for job in shared.recover(municipalities)? {
            // The receiver is alive: it is still in this function.
            let _ = queue.send(job);
        }
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("planning-jobs".into())
            .spawn(move || {
                lower_priority();
                for job in jobs {
                    if let Err(err) = worker.run(&job) {
                        tracing::error!("planning job {} of {}: {err}", job.1, job.0);
                    }
                }
            })
            .map_err(|err| StoreError::backend("start the planning worker", err))?;
        Ok(Self { shared, queue })
    }

    fn enqueue(&self, job: JobKey) -> Result<(), ApiError> {
        self.queue
            .send(job)
            .map_err(|_| ApiError::internal("the planning worker has stopped"))
    }
}

/// Lowers the calling thread's scheduling priority; threads it starts inherit it.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let outcome = unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, WORKER_NICE)
    };
    if outcome != 0 {
        tracing::warn!(
            "cannot lower the planning worker's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn no_job(id: u64) -> ApiError {
    ApiError::not_found(format!("no job {id}"))
}

fn job_url(municipality: &str, id: u64) -> String {
    format!("/api/v1/municipalities/{municipality}/jobs/{id}")
}

/// Submits a planning job: a scenario, a criticality sweep or a risk ranking.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/jobs", tag = "planning",
    params(("municipality" = String, Path)),
    request_body(content = Object, description = "`{\"kind\": \"scenario\" | \"criticality\" | \
        \"risk\", \"network\": <version> | \"live\", ...}` (see the module documentation)"),
    responses(
        (status = 202, description = "Queued", body = Submitted),
        (status = 413, description = "Body over the API's limit", body = ErrorBody),
        (status = 422, description = "A bad body: the field named", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(SUBMITTERS)))))]
async fn submit_job(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.allow(SUBMITTERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let shared = state.jobs.shared.clone();
    let by = caller.0.subject.clone();
    let name = municipality.clone();
    let submitted = tokio::task::spawn_blocking(move || -> Result<JobRecord, JobError> {
        let request = JobRequest::parse(&body)?;
        let kind = request.kind();
        let (version, _) = prepare(&shared.versions, &name, request)?;
        Ok(shared.submit(&name, &by, kind, version, &body)?)
    })
    .await
    .map_err(ApiError::internal)?;
    let record = match submitted {
        Ok(record) => record,
        Err(JobError::Invalid(detail)) => return Err(malformed_request(detail)),
        Err(JobError::Store(err)) => return Err(ApiError::internal(err)),
    };
    state.jobs.enqueue((municipality.clone(), record.id))?;
    let status_url = job_url(&municipality, record.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url.clone())],
        Json(Submitted {
            id: record.id,
            status_url,
        }),
    )
        .into_response())
}

/// The planning jobs, newest first.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/jobs", tag = "planning",
    params(("municipality" = String, Path)),
    responses((status = 200, description = "The jobs", body = JobList)),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn list_jobs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Json<JobList>, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let shared = state.jobs.shared.clone();
    let name = municipality.clone();
    let jobs = blocking(move || shared.records(&name, Order::Reverse)).await?;
    Ok(Json(JobList { municipality, jobs }))
}

/// The record of `id`, or 404.
async fn job_record(state: &AppState, municipality: &str, id: u64) -> Result<JobRecord, ApiError> {
    let shared = state.jobs.shared.clone();
    let name = municipality.to_string();
    blocking(move || shared.record(&name, id))
        .await?
        .ok_or_else(|| no_job(id))
}

/// A planning job's status and progress.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/jobs/{job}", tag = "planning",
    params(("municipality" = String, Path), ("job" = u64, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = JobRecord),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 422, description = "A job id that is not a number", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn get_job(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<Json<JobRecord>, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    Ok(Json(job_record(&state, &municipality, id).await?))
}

/// A done job's result: the JSON the command line writes with `--out`.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/jobs/{job}/result",
    tag = "planning",
    params(("municipality" = String, Path), ("job" = u64, Path, description = "The job")),
    responses(
        (status = 200, description = "The result", body = Object),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job is not done", body = ErrorBody),
        (status = 422, description = "A job id that is not a number", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn job_result(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let record = job_record(&state, &municipality, id).await?;
    if record.status != Status::Done {
        let why = record
            .error
            .as_deref()
            .map_or_else(String::new, |error| format!(": {error}"));
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_done",
            format!("job {id} is {}{why}", record.status.name()),
        ));
    }
    let store = state.store.clone();
    let result = blocking(move || store.get(&key(&municipality, JOB_RESULTS, id)))
        .await?
        .ok_or_else(|| ApiError::internal(format!("job {id} is done but has no result")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], result).into_response())
}

/// Cancels a planning job.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/jobs/{job}/cancel",
    tag = "planning",
    params(("municipality" = String, Path), ("job" = u64, Path, description = "The job")),
    responses(
        (status = 200, description = "Cancelled (it was queued)", body = JobRecord),
        (status = 202, description = "Running: it stops before its next simulation",
            body = JobRecord),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has finished", body = ErrorBody),
        (status = 422, description = "A job id that is not a number", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(SUBMITTERS)))))]
async fn cancel_job(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    caller.allow(SUBMITTERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let shared = state.jobs.shared.clone();
    let (record, status) = blocking(move || shared.cancel(&municipality, id))
        .await?
        .ok_or_else(|| no_job(id))?;
    if status == StatusCode::CONFLICT {
        return Err(ApiError::new(
            status,
            "finished",
            format!("job {id} is already {}", record.status.name()),
        ));
    }
    Ok((status, Json(record)).into_response())
}

/// The latest risk ranking: the result of the newest done risk job.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/risk", tag = "planning",
    params(("municipality" = String, Path)),
    responses(
        (status = 200, description = "The ranking and its job", body = RiskRanking),
        (status = 404, description = "No risk job is done yet", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn latest_risk(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Json<RiskRanking>, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let shared = state.jobs.shared.clone();
    let name = municipality.clone();
    let latest = blocking(move || {
        let records = shared.records(&name, Order::Reverse)?;
        let Some(job) = records
            .into_iter()
            .find(|job| job.kind == JobKind::Risk && job.status == Status::Done)
        else {
            return Ok(None);
        };
        let result = shared.store.get(&key(&name, JOB_RESULTS, job.id))?;
        Ok(result.map(|result| (job, result)))
    })
    .await?;
    let Some((job, result)) = latest else {
        return Err(ApiError::not_found(format!(
            "no risk ranking yet for {municipality}: submit a risk job (POST .../jobs)"
        )));
    };
    let ranking = serde_json::from_slice(&result).map_err(ApiError::internal)?;
    Ok(Json(RiskRanking { job, ranking }))
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn shared() -> Shared {
        let store: Arc<dyn twin::Store> = Arc::new(twin::store::MemoryStore::new());
        Shared {
            versions: Arc::new(Versions::new(store.clone(), &HashMap::new())),
            store,
            transitions: Mutex::new(()),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn submit(shared: &Shared, municipality: &str) -> JobRecord {
        shared
            .submit(municipality, "ann", JobKind::Scenario, 0, b"{}")
            .unwrap()
    }

    #[test]
    fn only_the_latest_finished_jobs_are_kept() {
        let shared = shared();
        for _ in 0..KEPT_FINISHED + 2 {
            let mut record = submit(&shared, "north");
            record.status = Status::Done;
            shared.put(&record).unwrap();
            shared
                .store
                .put(&key("north", JOB_RESULTS, record.id), b"{}")
                .unwrap();
        }
        let other = submit(&shared, "south");
        let newest = submit(&shared, "north");
        assert_eq!(newest.id, KEPT_FINISHED as u64 + 3);
        let kept: Vec<u64> = shared
            .records("north", Order::Forward)
            .unwrap()
            .iter()
            .map(|job| job.id)
            .collect();
        let expected: Vec<u64> = (3..=newest.id).collect();
        assert_eq!(kept, expected);
        for dropped in [1, 2] {
            for family in [JOBS, JOB_REQUESTS, JOB_RESULTS] {
                let stored = shared.store.get(&key("north", family, dropped)).unwrap();
                assert!(stored.is_none(), "{family} {dropped}");
            }
        }
        assert!(shared
            .store
            .get(&key("north", JOB_RESULTS, 3))
            .unwrap()
            .is_some());
        assert_eq!(
            shared.records("south", Order::Forward).unwrap()[0].id,
            other.id
        );
    }

    #[test]
    fn a_restart_fails_the_running_job_and_queues_the_queued_ones_in_order() {
        let shared = shared();
        let running = submit(&shared, "north");
        let south = submit(&shared, "south");
        let queued = submit(&shared, "north");
        let started = shared
            .start(&("north".to_string(), running.id))
            .unwrap()
            .unwrap();
        assert_eq!(started.0.status, Status::Running);
        let municipalities = ["north".to_string(), "south".to_string()];
        let again = shared.recover(&municipalities).unwrap();
        assert_eq!(
            again,
            [
                ("south".to_string(), south.id),
                ("north".to_string(), queued.id)
            ]
        );
        let failed = shared.record("north", running.id).unwrap().unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.error.as_deref(), Some(INTERRUPTED));
        assert!(failed.finished_at_ms.is_some());
    }

    #[test]
    fn risk_inputs_are_named_as_in_the_body() {
        let store: Arc<dyn twin::Store> = Arc::new(twin::store::MemoryStore::new());
        let net3 = hydraulics::read_file(FilePath::new("hydraulics/networks/Net3.inp")).unwrap();
        let live = HashMap::from([("north".to_string(), Arc::new(net3))]);
        let versions = Versions::new(store, &live);
        let assets = include_str!("../../twin/data/net3_assets.csv");
        let breaks = include_str!("../../twin/data/net3_breaks.csv");
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
