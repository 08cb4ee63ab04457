//! The HTTP server of `aquatwin serve` (axum): device ingest, health, metrics and the
//! operators' read routes.
//!
//! - `POST /api/v1/ingest`: headers `X-Device-Id` and `Authorization: Bearer <device key>` (or
//!   `X-Device-Key`); body one reading or a batch, each with `sensor_id` (design.md section 7).
//!   2xx only once durably stored; 401 (credentials), 403 (another device's sensor), 413 (body
//!   over the limit or batch too large), 422 (malformed, the field named), 503 (the twin cannot
//!   store now: retry). Errors are JSON `{"error": "<reason>", "detail": "..."}`.
//! - `GET /health` (liveness), `GET /ready` (readiness: 200 when every municipality's twin
//!   answers and the store takes a write, 503 with the reason otherwise), `GET /metrics`
//!   (Prometheus text).
//! - Sessions: `POST /api/v1/auth/login|refresh|logout`, `GET /api/v1/auth/me`
//!   ([`aquatwin::auth::http`]).
//! - People (`Authorization: Bearer <access token>`, any role of the municipality, or
//!   `super_admin`): `GET /api/v1/municipalities` (all of them for `super_admin`, the
//!   caller's own otherwise), `GET /api/v1/municipalities/{m}/sensors/{s}/readings` (JSON or
//!   CSV, raw or downsampled, paged: [`super::readings`]), `.../{m}/state`, `.../{m}/sensors`,
//!   `.../{m}/alerts`. No or a bad token is 401; another municipality is 404, like one that does
//!   not exist.
//! - `GET /api/v1/stream` (WebSocket, [`super::stream`]) and
//!   `GET /api/v1/municipalities/{m}/network` ([`super::networks`]).
//! - `POST /api/v1/admin/backup` (super_admin: a consistent snapshot, streamed; [`super::admin`]).
//! - `GET/PUT .../{m}/alert-rules` (threshold rules, [`super::rules`]) and `.../{m}/subscriptions`
//!   with their delivery history ([`super::subscriptions`]).
//! - Devices: `/api/v1/municipalities/{m}/devices[/{device}[/rotate-key|deactivate|activate]]`
//!   ([`super::devices`]).
//! - `GET /api/v1/openapi.json` and `GET /api/v1/docs` ([`super::openapi`]): every route is
//!   registered with `routes!` and so documented, with the roles it allows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actors::gateway::payload;
use actors::ingest::{Gateway, IngestHandle, RejectReason};
use actors::messages::{Alert, AlertAction, AlertOperation, AlertOperationError};
use actors::runtime::{QueryError, TwinRuntime};
use aquatwin::auth::http::{role_names, AccountsState, ApiError, Caller, ErrorBody};
use aquatwin::auth::users::Accounts;
use aquatwin::auth::{self, Role};
use aquatwin::notify::Notifier;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use twin::live::PeriodState;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{networks, openapi, readings, stream};

/// What every handler reads.
pub struct AppState {
    /// The twin (queries).
    pub runtime: Arc<TwinRuntime>,
    /// Where device readings go.
    pub ingest: IngestHandle,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Users and their sessions.
    pub accounts: Arc<Accounts>,
    /// Sends alert notifications (webhooks, email) in the background.
    pub notifier: Arc<Notifier>,
    /// When the server started.
    pub started: Instant,
    /// Node and link ids of each municipality's network (the state's arrays follow them).
    pub element_ids: HashMap<String, ElementIds>,
    /// The store (administration: backups).
    pub store: Arc<dyn twin::Store>,
    /// Each municipality's network, as configured.
    pub networks: HashMap<String, Arc<hydraulics::Network>>,
    /// The open WebSocket streams (closed on shutdown).
    pub streams: Arc<stream::Streams>,
    /// Settings and sensors of the device routes.
    pub devices: super::devices::DeviceSettings,
    /// Each municipality's network versions (the configured one and uploads).
    pub versions: Arc<super::networks::Versions>,
    /// Planning jobs (scenarios, criticality, risk) and their worker.
    pub jobs: Arc<super::jobs::Jobs>,
}

/// Node and link ids of a network, in its order.
pub struct ElementIds {
    /// Node ids.
    pub nodes: Vec<String>,
    /// Link ids.
    pub links: Vec<String>,
}

impl ElementIds {
    /// The ids of `network`.
    pub fn of(network: &hydraulics::Network) -> Self {
        Self {
            nodes: network.nodes.iter().map(|n| n.id.clone()).collect(),
            links: network.links.iter().map(|l| l.id.clone()).collect(),
        }
    }
}

impl AccountsState for AppState {
    fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }
}

/// Who may read a municipality's twin.
pub(super) const READERS: &[Role] = &[
    Role::SuperAdmin,
    Role::MunicipalityAdmin,
    Role::Operator,
    Role::Viewer,
];

/// Who may act on a municipality's alerts.
pub(super) const OPERATORS: &[Role] = &[Role::SuperAdmin, Role::MunicipalityAdmin, Role::Operator];

/// The router of every route, and the OpenAPI document built from them.
pub fn router(state: Arc<AppState>) -> Router {
    let routes = OpenApiRouter::new()
        .merge(auth::http::routes())
        .merge(super::admin::routes())
        .merge(super::audit::routes())
        .merge(stream::routes())
        .merge(networks::routes())
        .merge(super::jobs::routes())
        .merge(super::devices::routes())
        .merge(openapi::routes())
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(municipalities))
        .routes(routes!(metrics))
        .routes(routes!(ingest))
        .merge(readings::routes())
        .merge(super::rules::routes())
        .merge(super::subscriptions::routes())
        .routes(routes!(twin_state))
        .routes(routes!(sensors))
        .routes(routes!(alerts))
        .routes(routes!(acknowledge_alert))
        .routes(routes!(resolve_alert))
        .routes(routes!(comment_alert));
    openapi::serve_document(routes).with_state(state)
}

/// The answer to a path or query that does not parse (an alert id that is not a number, a
/// time that is not an integer): 422 with the API's error body, like a malformed JSON body.
pub(super) fn malformed_request(detail: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", detail)
}

/// The parsed path parameters, or the 422 answer when they do not parse.
pub(super) fn path_parameters<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(parameters)| parameters)
        .map_err(|rejection| malformed_request(rejection.body_text()))
}

fn error(status: StatusCode, reason: &str, detail: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: reason.to_string(),
        detail: detail.into(),
    };
    (status, Json(body)).into_response()
}

fn reject_status(reason: RejectReason) -> StatusCode {
    match reason {
        RejectReason::Malformed | RejectReason::UnknownSensor => StatusCode::UNPROCESSABLE_ENTITY,
        RejectReason::Unauthenticated => StatusCode::UNAUTHORIZED,
        RejectReason::Forbidden => StatusCode::FORBIDDEN,
        RejectReason::Replay => StatusCode::CONFLICT,
        RejectReason::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RejectReason::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The answer of `GET /health`.
#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok` (the server answers).
    status: &'static str,
    /// The municipalities served.
    municipalities: Vec<String>,
    /// Seconds since the server started.
    uptime_seconds: f64,
}

/// Liveness: the municipalities served and the uptime.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The server is up", body = Health)))]
async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        municipalities: state.runtime.municipalities(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    })
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text",
        content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let metrics = state.ingest.metrics();
    metrics.set_gauge(
        "aquatwin_uptime_seconds",
        "Seconds since serve started.",
        state.started.elapsed().as_secs_f64(),
    );
    metrics.set_gauge(
        "aquatwin_municipalities",
        "Municipalities served.",
        state.runtime.municipalities().len() as f64,
    );
    metrics.set_gauge(
        "aquatwin_devices",
        "Devices registered.",
        state.ingest.devices().len() as f64,
    );
    metrics.set_gauge(
        "aquatwin_notifications_dropped",
        "Alert notifications dropped because a queue was full (since start).",
        state.notifier.dropped() as f64,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

/// The answer of `GET /ready` when the server is ready.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// Always `ready`.
    status: &'static str,
}

/// Readiness: 200 when the twin of every municipality answers and the store takes a durable
/// write (one small key, rewritten on each call); 503 with the reason otherwise.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "Not ready: the reason in `detail`", body = ErrorBody),
    ))]
async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Readiness>, ApiError> {
    let not_ready =
        |detail: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", detail);
    for municipality in state.runtime.municipalities() {
        state
            .runtime
            .municipality_status(&municipality)
            .await
            .map_err(|err| not_ready(format!("municipality {municipality}: {err}")))?;
    }
    let store = state.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let key = twin::store::Keyspace::default().pack(&["meta".into(), "ready_probe".into()]);
        store.put(&key, &crate::fleet::unix_ms().to_be_bytes())
    })
    .await
    .map_err(|err| not_ready(format!("store probe: {err}")))?;
    written.map_err(|err| not_ready(format!("store not writable: {err}")))?;
    Ok(Json(Readiness { status: "ready" }))
}

/// A municipality served, at a glance.
#[derive(Serialize, ToSchema)]
struct MunicipalityOverview {
    /// The municipality.
    id: String,
    /// The first line of its network's `[TITLE]` (`null` without one).
    network: Option<String>,
    /// Nodes of the network.
    nodes: usize,
    /// Links of the network.
    links: usize,
    /// Sensors configured.
    sensors: usize,
    /// Time of the latest estimated state, Unix ms (`null` before the first period).
    latest_state_ms: Option<i64>,
}

/// The municipalities a caller may see.
#[derive(Serialize, ToSchema)]
struct Municipalities {
    /// Sorted by id: every municipality for `super_admin`, the caller's own otherwise.
    municipalities: Vec<MunicipalityOverview>,
}

/// The municipalities served (all for `super_admin`, the caller's own for the others).
#[utoipa::path(get, path = "/api/v1/municipalities", tag = "twin",
    responses(
        (status = 200, description = "The municipalities", body = Municipalities),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn municipalities(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Municipalities>, ApiError> {
    caller.allow(READERS, None)?;
    let mut overviews = Vec::new();
    for id in state.runtime.municipalities() {
        if !caller.0.can_access(&id) {
            continue;
        }
        let network = state.networks.get(&id);
        let latest = state.runtime.latest_state(&id).await.map_err(query_error)?;
        overviews.push(MunicipalityOverview {
            network: network.and_then(|n| n.title.first().cloned()),
            nodes: network.map_or(0, |n| n.nodes.len()),
            links: network.map_or(0, |n| n.links.len()),
            sensors: state.runtime.sensor_count(&id).map_err(query_error)?,
            latest_state_ms: latest.map(|period| period.timestamp_ms),
            id,
        });
    }
    Ok(Json(Municipalities {
        municipalities: overviews,
    }))
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_text(headers, "authorization")?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The answer of an accepted ingest.
#[derive(Serialize, ToSchema)]
struct Stored {
    /// Readings durably stored.
    stored: usize,
}

/// Device ingest: one reading or a batch; answered once durably stored.
#[utoipa::path(post, path = "/api/v1/ingest", tag = "ingest",
    params(("X-Device-Id" = String, Header, description = "The device")),
    request_body(content = Object, description = "One reading \
        `{\"sensor_id\", \"ts\": <Unix ms> | \"<RFC 3339>\", \"value\", \"unit\"?}` or an array \
        of at most 10 000 (design.md section 7)"),
    responses(
        (status = 200, description = "Stored", body = Stored),
        (status = 401, description = "Missing or wrong device credentials", body = ErrorBody),
        (status = 403, description = "A sensor of another device", body = ErrorBody),
        (status = 409, description = "A replayed reading", body = ErrorBody),
        (status = 413, description = "Body over the limit, or batch too large", body = ErrorBody),
        (status = 422, description = "Malformed reading (the field named) or unknown sensor",
            body = ErrorBody),
        (status = 503, description = "The twin cannot store now: retry", body = ErrorBody),
    ),
    security(("device_key" = [])))]
async fn ingest(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let refuse = |reason: RejectReason, detail: String| {
        state.ingest.reject(Gateway::Http, reason, &detail);
        error(reject_status(reason), reason.name(), detail)
    };
    let Some(device_id) = header_text(&headers, "x-device-id") else {
        return refuse(
            RejectReason::Unauthenticated,
            "missing header X-Device-Id".into(),
        );
    };
    let Some(key) = bearer(&headers).or_else(|| header_text(&headers, "x-device-key")) else {
        return refuse(
            RejectReason::Unauthenticated,
            "missing device key (Authorization: Bearer <key> or X-Device-Key)".into(),
        );
    };
    let device = match state.ingest.devices().authenticate(device_id, key) {
        Ok(device) => device,
        Err(reason) => {
            return refuse(
                reason,
                format!("device {device_id}: unknown, inactive or wrong key"),
            )
        }
    };
    let declared = header_text(&headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > state.body_limit) {
        return refuse(
            RejectReason::TooLarge,
            format!("body over the limit of {} bytes", state.body_limit),
        );
    }
    let bytes = match axum::body::to_bytes(body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refuse(
                RejectReason::TooLarge,
                format!("body over the limit of {} bytes", state.body_limit),
            )
        }
    };
    let readings = match payload::parse_http_readings(&bytes) {
        Ok(readings) => readings,
        Err(err) => return refuse(err.reason, err.message),
    };
    // `submit` counts its own outcome.
    match state.ingest.submit(Gateway::Http, device, readings).await {
        Ok(stored) => Json(Stored { stored }).into_response(),
        Err(err) => error(reject_status(err.reason), err.reason.name(), err.detail),
    }
}

/// The API's answer to a query the twin could not answer.
pub(super) fn query_error(err: QueryError) -> ApiError {
    match &err {
        QueryError::UnknownMunicipality(_)
        | QueryError::UnknownSensor(_)
        | QueryError::UnknownPipe(_) => ApiError::not_found(err.to_string()),
        QueryError::Store(_) => ApiError::internal(err),
        QueryError::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            err.to_string(),
        ),
    }
}

/// The latest estimated state of a municipality.
#[derive(Serialize, ToSchema)]
struct TwinState {
    /// The municipality.
    municipality: String,
    /// `null` before the first period.
    state: Option<PeriodWithIds>,
}

/// A period's state with the ids its arrays follow.
#[derive(Serialize, ToSchema)]
struct PeriodWithIds {
    #[serde(flatten)]
    period: PeriodFields,
    /// Node ids, in the order of the node arrays.
    node_ids: Vec<String>,
    /// Link ids, in the order of the link arrays.
    link_ids: Vec<String>,
}

/// The latest estimated state of the network.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/state", tag = "twin",
    params(("municipality" = String, Path)),
    responses(
        (status = 200, description = "The latest state", body = TwinState),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn twin_state(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Json<TwinState>, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let period = state
        .runtime
        .latest_state(&municipality)
        .await
        .map_err(query_error)?;
    let Some(period) = period else {
        return Ok(Json(TwinState {
            municipality,
            state: None,
        }));
    };
    let ids = state.element_ids.get(&municipality);
    let node_ids = ids.map(|ids| ids.nodes.clone()).unwrap_or_default();
    let link_ids = ids.map(|ids| ids.links.clone()).unwrap_or_default();
    Ok(Json(TwinState {
        municipality,
        state: Some(PeriodWithIds {
            period: period_fields(&period),
            node_ids,
            link_ids,
        }),
    }))
}

/// The estimated state of a period as the API shows it (`GET .../state` and the stream's
/// `state` messages): time, convergence, a summary, the residuals and the node and link arrays
/// (in the network's order). Values that are not finite (a failed period) are `null`.
#[derive(Serialize, ToSchema)]
pub(super) struct PeriodFields {
    /// The period's time, Unix ms.
    timestamp_ms: i64,
    /// Seconds into the simulation.
    sim_seconds: u64,
    /// Whether the hydraulic solution converged.
    converged: bool,
    summary: PeriodSummary,
    residuals: Vec<Residual>,
    /// Head at each node.
    #[schema(value_type = Vec<Option<f64>>)]
    head: Vec<f64>,
    /// Pressure at each node.
    #[schema(value_type = Vec<Option<f64>>)]
    pressure: Vec<f64>,
    /// Demand at each node.
    #[schema(value_type = Vec<Option<f64>>)]
    demand: Vec<f64>,
    /// Flow in each link.
    #[schema(value_type = Vec<Option<f64>>)]
    flow: Vec<f64>,
    /// Velocity in each link.
    #[schema(value_type = Vec<Option<f64>>)]
    velocity: Vec<f64>,
    /// Head loss in each link.
    #[schema(value_type = Vec<Option<f64>>)]
    headloss: Vec<f64>,
    /// Status code of each link.
    status: Vec<u8>,
}

/// A period at a glance (`null` values for a network without nodes or a failed period).
#[derive(Serialize, ToSchema)]
struct PeriodSummary {
    min_pressure: Option<f64>,
    max_pressure: Option<f64>,
    #[schema(value_type = Option<f64>)]
    total_demand: f64,
}

/// A sensor's measurement against the twin's estimate.
#[derive(Serialize, ToSchema)]
struct Residual {
    sensor_id: String,
    #[schema(value_type = Option<f64>)]
    measured: f64,
    #[schema(value_type = Option<f64>)]
    simulated: f64,
    /// `measured - simulated`.
    #[schema(value_type = Option<f64>)]
    residual: f64,
}

/// The API's view of `period`.
pub(super) fn period_fields(period: &PeriodState) -> PeriodFields {
    let extreme = |values: &[f64], pick: fn(f64, f64) -> f64| values.iter().copied().reduce(pick);
    PeriodFields {
        timestamp_ms: period.timestamp_ms,
        sim_seconds: period.sim_seconds,
        converged: period.converged,
        summary: PeriodSummary {
            min_pressure: extreme(&period.pressure, f64::min),
            max_pressure: extreme(&period.pressure, f64::max),
            total_demand: period.demand.iter().sum(),
        },
        residuals: period
            .residuals
            .iter()
            .map(|r| Residual {
                sensor_id: r.sensor_id.clone(),
                measured: r.measured,
                simulated: r.simulated,
                residual: r.residual(),
            })
            .collect(),
        head: period.head.clone(),
        pressure: period.pressure.clone(),
        demand: period.demand.clone(),
        flow: period.flow.clone(),
        velocity: period.velocity.clone(),
        headloss: period.headloss.clone(),
        status: period.status.clone(),
    }
}

/// The sensors of a municipality.
#[derive(Serialize, ToSchema)]
struct Sensors {
    /// The municipality.
    municipality: String,
    /// Each sensor's last reading and quality.
    sensors: Vec<actors::messages::SensorSummary>,
}

/// The sensors, their last readings and quality.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/sensors", tag = "twin",
    params(("municipality" = String, Path)),
    responses(
        (status = 200, description = "The sensors", body = Sensors),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn sensors(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Json<Sensors>, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let summary = state
        .runtime
        .sensor_summary(&municipality)
        .await
        .map_err(query_error)?;
    Ok(Json(Sensors {
        municipality,
        sensors: summary,
    }))
}

/// The alerts of a municipality.
#[derive(Serialize, ToSchema)]
struct Alerts {
    /// The municipality.
    municipality: String,
    /// Open and resolved alerts with their history.
    alerts: Vec<actors::messages::Alert>,
}

/// The alerts, open and resolved.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/alerts", tag = "alerts",
    params(("municipality" = String, Path)),
    responses(
        (status = 200, description = "The alerts", body = Alerts),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn alerts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Json<Alerts>, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let alerts = state
        .runtime
        .alerts(&municipality)
        .await
        .map_err(query_error)?;
    Ok(Json(Alerts {
        municipality,
        alerts,
    }))
}

/// Applies `operation` to alert `id` for `caller`: 404 for an unknown alert, 409 for a resolved
/// one, 422 for a bad comment.
async fn operate(
    state: &AppState,
    caller: &Caller,
    municipality: &str,
    id: u64,
    operation: AlertOperation,
) -> Result<Response, ApiError> {
    caller.allow(OPERATORS, Some(municipality))?;
    let by = AlertAction {
        by: caller.0.subject.clone(),
        at_ms: crate::fleet::unix_ms(),
    };
    let alert = state
        .runtime
        .operate_alert(municipality, id, operation, by)
        .await
        .map_err(query_error)?
        .map_err(|err| {
            let (status, reason) = match err {
                AlertOperationError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                AlertOperationError::AlreadyResolved(_) => (StatusCode::CONFLICT, "resolved"),
                AlertOperationError::BadComment(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "malformed")
                }
            };
            ApiError::new(status, reason, err.to_string())
        })?;
    Ok(Json(alert).into_response())
}

/// Acknowledges an alert.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/alerts/{id}/acknowledge",
    tag = "alerts",
    params(("municipality" = String, Path), ("id" = u64, Path, description = "The alert")),
    responses(
        (status = 200, description = "The alert, acknowledged", body = Alert),
        (status = 404, description = "No such municipality or alert", body = ErrorBody),
        (status = 409, description = "The alert is resolved", body = ErrorBody),
        (status = 422, description = "An id that is not a number", body = ErrorBody),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(OPERATORS)))))]
async fn acknowledge_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    operate(
        &state,
        &caller,
        &municipality,
        id,
        AlertOperation::Acknowledge,
    )
    .await
}

/// Resolves an alert.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/alerts/{id}/resolve",
    tag = "alerts",
    params(("municipality" = String, Path), ("id" = u64, Path, description = "The alert")),
    responses(
        (status = 200, description = "The alert, resolved", body = Alert),
        (status = 404, description = "No such municipality or alert", body = ErrorBody),
        (status = 409, description = "The alert is already resolved", body = ErrorBody),
        (status = 422, description = "An id that is not a number", body = ErrorBody),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(OPERATORS)))))]
async fn resolve_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    operate(&state, &caller, &municipality, id, AlertOperation::Resolve).await
}

/// A comment on an alert.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    /// The comment (not empty).
    text: String,
}

/// Comments on an alert.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/alerts/{id}/comments",
    tag = "alerts",
    params(("municipality" = String, Path), ("id" = u64, Path, description = "The alert")),
    request_body = CommentBody,
    responses(
        (status = 200, description = "The alert, with the comment", body = Alert),
        (status = 404, description = "No such municipality or alert", body = ErrorBody),
        (status = 409, description = "The alert is resolved", body = ErrorBody),
        (status = 422, description = "A malformed body or id, or an empty comment",
            body = ErrorBody),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(OPERATORS)))))]
async fn comment_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, u64)>, PathRejection>,
    body: Result<Json<CommentBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    // Who may comment is answered before what is wrong with the comment.
    caller.allow(OPERATORS, Some(&municipality))?;
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let operation = AlertOperation::Comment(body.text);
    operate(&state, &caller, &municipality, id, operation).await
}
