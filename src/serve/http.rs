//! The HTTP server of `aquatwin serve` (axum): device ingest, health, metrics and the
//! operators' read routes.
//!
//! - `POST /api/v1/ingest`: headers `X-Device-Id` and `Authorization: Bearer <device key>` (or
//!   `X-Device-Key`); body one reading or a batch, each with `sensor_id` (design.md section 7).
//!   2xx only once durably stored; 401 (credentials), 403 (another device's sensor), 413 (body
//!   over the limit or batch too large), 422 (malformed, the field named), 503 (the twin cannot
//!   store now: retry). Errors are JSON `{"error": "<reason>", "detail": "..."}`.
//! - `GET /health`, `GET /metrics` (Prometheus text).
//! - Sessions: `POST /api/v1/auth/login|refresh|logout`, `GET /api/v1/auth/me`
//!   ([`aquatwin::auth::http`]).
//! - People (`Authorization: Bearer <access token>`, any role of the municipality, or
//!   `super_admin`): `GET /api/v1/municipalities/{m}/sensors/{s}/readings?from=&to=` (Unix ms,
//!   `to` exclusive), `.../{m}/state`, `.../{m}/sensors`, `.../{m}/alerts`. No or a bad token is
//!   401; another municipality is 404, like one that does not exist.
//! - `GET /api/v1/stream` (WebSocket, [`super::stream`]) and
//!   `GET /api/v1/municipalities/{m}/network` ([`super::networks`]).
//! - `POST /api/v1/admin/backup` (super_admin: a consistent snapshot, streamed; [`super::admin`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actors::gateway::payload;
use actors::ingest::{Gateway, IngestHandle, RejectReason};
use actors::messages::{AlertAction, AlertOperation, AlertOperationError};
use actors::runtime::{QueryError, TwinRuntime};
use aquatwin::auth::http::{AccountsState, ApiError, Caller};
use aquatwin::auth::users::Accounts;
use aquatwin::auth::{self, Role};
use aquatwin::notify::Notifier;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use twin::live::PeriodState;

use super::{networks, stream};

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
const OPERATORS: &[Role] = &[Role::SuperAdmin, Role::MunicipalityAdmin, Role::Operator];

/// The router of every route.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(auth::http::routes())
        .merge(super::admin::routes())
        .merge(stream::routes())
        .merge(networks::routes())
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/ingest", post(ingest))
        .route(
            "/api/v1/municipalities/{municipality}/sensors/{sensor}/readings",
            get(readings),
        )
        .route(
            "/api/v1/municipalities/{municipality}/state",
            get(twin_state),
        )
        .route(
            "/api/v1/municipalities/{municipality}/sensors",
            get(sensors),
        )
        .route("/api/v1/municipalities/{municipality}/alerts", get(alerts))
        .route(
            "/api/v1/municipalities/{municipality}/alerts/{id}/acknowledge",
            post(acknowledge_alert),
        )
        .route(
            "/api/v1/municipalities/{municipality}/alerts/{id}/resolve",
            post(resolve_alert),
        )
        .route(
            "/api/v1/municipalities/{municipality}/alerts/{id}/comments",
            post(comment_alert),
        )
        .with_state(state)
}

fn error(status: StatusCode, reason: &str, detail: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": reason, "detail": detail.into()})),
    )
        .into_response()
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

async fn health(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({
        "status": "ok",
        "municipalities": state.runtime.municipalities(),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

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
        "Devices configured.",
        state.ingest.devices().iter().count() as f64,
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

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_text(headers, "authorization")?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

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
        Ok(stored) => Json(json!({"stored": stored})).into_response(),
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

#[derive(Deserialize)]
struct Range {
    from: Option<i64>,
    to: Option<i64>,
}

async fn readings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((municipality, sensor)): Path<(String, String)>,
    Query(range): Query<Range>,
) -> Result<Response, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let from = range.from.unwrap_or(i64::MIN);
    let to = range.to.unwrap_or(i64::MAX);
    let points = state
        .runtime
        .readings(&municipality, &sensor, from, to)
        .await
        .map_err(query_error)?;
    let readings: Vec<_> = points
        .iter()
        .map(|point| {
            json!({
                "ts": point.timestamp,
                "value": point.value,
                "flags": point.flags.names(),
            })
        })
        .collect();
    Ok(Json(json!({"sensor_id": sensor, "readings": readings})).into_response())
}

async fn twin_state(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Response, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let period = state
        .runtime
        .latest_state(&municipality)
        .await
        .map_err(query_error)?;
    let Some(period) = period else {
        return Ok(Json(json!({"municipality": municipality, "state": null})).into_response());
    };
    let ids = state.element_ids.get(&municipality);
    let node_ids = ids.map(|ids| ids.nodes.as_slice()).unwrap_or_default();
    let link_ids = ids.map(|ids| ids.links.as_slice()).unwrap_or_default();
    let mut fields = period_fields(&period);
    fields.insert("node_ids".into(), json!(node_ids));
    fields.insert("link_ids".into(), json!(link_ids));
    Ok(Json(json!({"municipality": municipality, "state": fields})).into_response())
}

/// The estimated state of a period as the API shows it (`GET .../state` and the stream's
/// `state` messages): time, convergence, a summary, the residuals and the node and link arrays
/// (in the network's order).
pub(super) fn period_fields(period: &PeriodState) -> serde_json::Map<String, serde_json::Value> {
    let extreme = |values: &[f64], pick: fn(f64, f64) -> f64| {
        values.iter().copied().reduce(pick).unwrap_or(f64::NAN)
    };
    let residuals: Vec<_> = period
        .residuals
        .iter()
        .map(|r| {
            json!({
                "sensor_id": r.sensor_id,
                "measured": r.measured,
                "simulated": r.simulated,
                "residual": r.residual(),
            })
        })
        .collect();
    let summary = json!({
        "min_pressure": extreme(&period.pressure, f64::min),
        "max_pressure": extreme(&period.pressure, f64::max),
        "total_demand": period.demand.iter().sum::<f64>(),
    });
    [
        ("timestamp_ms", json!(period.timestamp_ms)),
        ("sim_seconds", json!(period.sim_seconds)),
        ("converged", json!(period.converged)),
        ("summary", summary),
        ("residuals", json!(residuals)),
        ("head", json!(period.head)),
        ("pressure", json!(period.pressure)),
        ("demand", json!(period.demand)),
        ("flow", json!(period.flow)),
        ("velocity", json!(period.velocity)),
        ("headloss", json!(period.headloss)),
        ("status", json!(period.status)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

async fn sensors(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Response, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let summary = state
        .runtime
        .sensor_summary(&municipality)
        .await
        .map_err(query_error)?;
    Ok(Json(json!({"municipality": municipality, "sensors": summary})).into_response())
}

async fn alerts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Response, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let alerts = state
        .runtime
        .alerts(&municipality)
        .await
        .map_err(query_error)?;
    Ok(Json(json!({"municipality": municipality, "alerts": alerts})).into_response())
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

async fn acknowledge_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((municipality, id)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    operate(
        &state,
        &caller,
        &municipality,
        id,
        AlertOperation::Acknowledge,
    )
    .await
}

async fn resolve_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((municipality, id)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    operate(&state, &caller, &municipality, id, AlertOperation::Resolve).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    text: String,
}

async fn comment_alert(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((municipality, id)): Path<(String, u64)>,
    body: Result<Json<CommentBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let operation = AlertOperation::Comment(body.text);
    operate(&state, &caller, &municipality, id, operation).await
}
