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
//!
//! [`spec`] reads and checks the bodies; [`queue`] keeps the records and runs the worker.

mod queue;
mod spec;

use std::sync::Arc;

use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::auth::Role;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use twin::store::Order;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::queue::{key, JobRecord, Status, JOB_RESULTS};
use self::spec::{prepare, JobError, JobKind, JobRequest};
use super::http::{malformed_request, path_parameters, AppState, OPERATORS, READERS};
use super::networks::{blocking, served};

pub(super) use self::queue::{Jobs, NetworkDeletion};

/// Who may submit and cancel jobs.
const SUBMITTERS: &[Role] = OPERATORS;

/// The job routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, submit_job))
        .routes(routes!(get_job))
        .routes(routes!(job_result))
        .routes(routes!(cancel_job))
        .routes(routes!(latest_risk))
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
        shared.submit(&name, &by, kind, version, &body)
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
