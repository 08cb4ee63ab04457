//! The audit log: who changed what, when, from where. Append-only.
//!
//! [`wrap`] puts one middleware around every route: each request that changes something
//! (POST, PUT, PATCH, DELETE: logins, failed ones included, logouts, refreshes, alert
//! operations, backups) is recorded once it is answered: time (Unix ms), who (the access
//! token's user; for a login the user name tried), the token's session (one per login, kept
//! across refreshes: two logins of one user are told apart), role, municipality (from the
//! path, else the caller's), method, route template, concrete path (never the query), status,
//! client IP and, for alert operations, the alert id. Device ingest is telemetry, not an
//! action: it is not recorded. Nothing secret is kept: no body, password or token.
//!
//! Changes answered outside the routes are recorded too, without a route template: refused by
//! the guards around the routes ([`super::hardening`]: a body over the limit, 413), for a path
//! no route has (404) or a method the route does not take (405), or a handler's panic (500).
//! Rate-limited requests (429) are not: they are counted in
//! `aquatwin_http_rate_limited_total`, and recording each would turn a flood the rate limit
//! holds off into a flood of durable writes.
//!
//! Recording never holds a request up: the answer is decided first, then the record goes
//! through a bounded queue to one writer thread that resolves the caller and commits batches
//! durably, a few tens of milliseconds later. When the queue is full the record is dropped and
//! counted in `aquatwin_audit_dropped_total`.
//!
//! Entries are keyed `(time, sequence)` under the platform's `audit` subspace, once in the
//! whole log and once under their municipality, so both listings are a reverse range scan. No
//! route changes or deletes them:
//! - `GET /api/v1/audit?municipality=&from=&to=&limit=&before=` (`super_admin`);
//! - `GET /api/v1/municipalities/{m}/audit?from=&to=&limit=&before=` (`municipality_admin` of
//!   `m`, `super_admin`).
//!
//! Both answer newest first, at most `limit` entries (default 100, at most 1000), and
//! `next_before`, the cursor of the next (older) page.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use actors::metrics::Metrics;
use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::auth::users::Accounts;
use aquatwin::auth::{Principal, Role};
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use twin::store::tuple::Element;
use twin::store::{Durability, KeyRange, Keyspace, Order, WriteBatch};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{malformed_request, AppState};

/// Records waiting for the writer at most; beyond, they are dropped (and counted).
const QUEUE: usize = 4096;
/// Records committed together at most.
const BATCH: usize = 1024;
/// How long the writer gathers records before a commit: a durable commit holds the store's
/// single write lock (ingest waits on it) and costs an fsync, so they are kept few.
const GATHER: std::time::Duration = std::time::Duration::from_millis(25);
/// Entries per page unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// A login's user name is kept up to this many characters (it is whatever was typed).
const MAX_NAME_CHARS: usize = 128;
/// Largest login or refresh answer read back for its access token (a few hundred bytes).
const TOKENS_BODY_LIMIT: usize = 64 * 1024;

const INGEST_ROUTE: &str = "/api/v1/ingest";
const LOGIN_ROUTE: &str = "/api/v1/auth/login";
const REFRESH_ROUTE: &str = "/api/v1/auth/refresh";
const MUNICIPALITY_PARAMETER: &str = "{municipality}";
const ALERT_PARAMETER: &str = "/alerts/{id}";

const DROPPED_METRIC: &str = "aquatwin_audit_dropped_total";
const DROPPED_HELP: &str = "Audit records lost (queue full or store failure), since start.";

/// Who may read the whole log.
const PLATFORM_AUDITORS: &[Role] = &[Role::SuperAdmin];
/// Who may read a municipality's log.
const MUNICIPALITY_AUDITORS: &[Role] = &[Role::SuperAdmin, Role::MunicipalityAdmin];

/// The keys of the audit log.
struct AuditKeys {
    /// Every entry, by `(time, sequence)`.
    all: Keyspace,
    audit: Keyspace,
}

impl AuditKeys {
    fn new() -> Self {
        let audit = Keyspace::default().subspace(&[Element::from("_platform"), "audit".into()]);
        Self {
            all: audit.subspace(&["all".into()]),
            audit,
        }
    }

    /// The entries of `municipality`, by `(time, sequence)`.
    fn municipality(&self, municipality: &str) -> Keyspace {
        self.audit
            .subspace(&["municipality".into(), Element::from(municipality)])
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(super) struct AuditEntry {
    /// Where the entry is in the log: `before=<cursor>` lists the entries older than it.
    cursor: String,
    /// When the request was answered, Unix ms.
    at_ms: i64,
    /// The user (for a login: the user name tried); `null` without a valid token.
    who: Option<String>,
    /// The session of the access token (one per login, the same after refreshes), which tells
    /// apart two logins of the same user; `null` without a valid token.
    session: Option<String>,
    /// The user's role.
    role: Option<String>,
    /// The municipality acted on (from the path, else the user's).
    municipality: Option<String>,
    /// HTTP method.
    method: String,
    /// The route's template (`/api/v1/municipalities/{municipality}/alerts/{id}/acknowledge`).
    route: Option<String>,
    /// The path requested (without the query).
    path: String,
    /// The status answered.
    status: u16,
    /// The client's IP address.
    ip: Option<String>,
    /// The alert acted on.
    alert_id: Option<u64>,
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<String>,
}

/// A request as the middleware saw it; the writer turns it into an [`AuditEntry`].
struct Answered {
    at_ms: i64,
    asked: Asked,
    /// The user name a login tried.
    login_name: Option<String>,
    route: Option<String>,
    status: u16,
}

/// What a request says of itself before it is answered.
struct Asked {
    /// The access token that authenticates the caller (for a login or a refresh: the one
    /// issued). Only resolved to its user, never stored.
    token: Option<String>,
    method: String,
    /// Without the query.
    path: String,
    ip: Option<String>,
}

impl Asked {
    fn of(request: &Request) -> Self {
        Self {
            token: bearer_token(request),
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            ip: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip().to_string()),
        }
    }

    /// Whether the request changes something and is not telemetry.
    fn is_recorded(request: &Request) -> bool {
        is_change(request.method()) && request.uri().path() != INGEST_ROUTE
    }
}

/// Marks an answer [`record`] put on record, so that [`record_unrouted`] leaves it.
#[derive(Clone, Copy)]
struct Recorded;

/// Lost records: counted, and published as a metric.
struct Losses {
    metrics: Arc<Metrics>,
    /// The lock keeps the published total from going back under concurrent losses.
    total: Mutex<u64>,
}

impl Losses {
    fn count(&self, more: u64) {
        let mut total = self.total.lock().unwrap_or_else(PoisonError::into_inner);
        *total += more;
        self.metrics
            .set_gauge(DROPPED_METRIC, DROPPED_HELP, *total as f64);
    }
}

/// The middleware's side of the log: the queue to the writer.
struct AuditLog {
    queue: Option<mpsc::Sender<Answered>>,
    writer: Option<JoinHandle<()>>,
    losses: Arc<Losses>,
}

impl AuditLog {
    fn record(&self, answered: Answered) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(answered).is_err() {
            self.losses.count(1);
        }
    }
}

impl Drop for AuditLog {
    /// Closes the queue and waits for the writer to commit what it holds: the router is
    /// dropped when the server stops, and what was answered must be on record by then.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the audit writer panicked");
            }
        }
    }
}

/// `router` with every change it answers recorded in the audit log of `state`'s store, then
/// `guards` put around it, and the changes answered outside the routes recorded as well (see
/// the module documentation); lost records are counted in `metrics`.
pub(super) fn wrap(
    router: Router,
    state: &Arc<AppState>,
    metrics: Arc<Metrics>,
    guards: impl FnOnce(Router) -> Router,
) -> Router {
    let losses = Arc::new(Losses {
        metrics,
        total: Mutex::new(0),
    });
    losses.count(0);
    let (queue, answered) = mpsc::channel(QUEUE);
    let writer = Writer {
        store: state.store.clone(),
        accounts: state.accounts.clone(),
        keys: AuditKeys::new(),
        losses: losses.clone(),
    };
    let writer = std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || writer.run(answered));
    let (queue, writer) = match writer {
        Ok(writer) => (Some(queue), Some(writer)),
        Err(err) => {
            tracing::error!("cannot start the audit writer, nothing is recorded: {err}");
            (None, None)
        }
    };
    let log = Arc::new(AuditLog {
        queue,
        writer,
        losses,
    });
    let routes = router.layer(axum::middleware::from_fn_with_state(log.clone(), record));
    guards(routes).layer(axum::middleware::from_fn_with_state(log, record_unrouted))
}

/// Whether a request with `method` changes something.
fn is_change(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

fn bearer_token(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|token| token.trim().to_string())
}

/// The user name of a login body (the password is not even read).
#[derive(Deserialize)]
struct LoginName {
    username: String,
}

/// The access token of a login or refresh answer.
#[derive(Deserialize)]
struct IssuedTokens {
    access_token: String,
}

async fn record(State(log): State<Arc<AuditLog>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string());
    if !Asked::is_recorded(&request) {
        return next.run(request).await;
    }
    let mut asked = Asked::of(&request);
    let mut login_name = None;
    let request = if route.as_deref() == Some(LOGIN_ROUTE) {
        let (parts, body) = request.into_parts();
        // The guards have bounded the body already; one that cannot be read is passed on
        // empty, which the login answers as malformed, as it would have.
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        login_name = serde_json::from_slice::<LoginName>(&bytes)
            .ok()
            .map(|login| login.username.chars().take(MAX_NAME_CHARS).collect());
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    let mut response = next.run(request).await;
    let issues_tokens = matches!(route.as_deref(), Some(LOGIN_ROUTE | REFRESH_ROUTE));
    if issues_tokens && response.status() == StatusCode::OK {
        // Who logged in or refreshed is whom the issued token names.
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, TOKENS_BODY_LIMIT)
            .await
            .unwrap_or_default();
        asked.token = serde_json::from_slice::<IssuedTokens>(&bytes)
            .ok()
            .map(|tokens| tokens.access_token);
        response = Response::from_parts(parts, Body::from(bytes));
    }
    log.record(Answered {
        at_ms: crate::fleet::unix_ms(),
        asked,
        login_name,
        route,
        status: response.status().as_u16(),
    });
    response.extensions_mut().insert(Recorded);
    response
}

/// Records the changes answered outside the routes, which [`record`] did not see (see the
/// module documentation; 429s are left out).
async fn record_unrouted(
    State(log): State<Arc<AuditLog>>,
    request: Request,
    next: Next,
) -> Response {
    if !Asked::is_recorded(&request) {
        return next.run(request).await;
    }
    let asked = Asked::of(&request);
    let response = next.run(request).await;
    let status = response.status();
    if response.extensions().get::<Recorded>().is_none() && status != StatusCode::TOO_MANY_REQUESTS
    {
        log.record(Answered {
            at_ms: crate::fleet::unix_ms(),
            asked,
            login_name: None,
            route: None,
            status: status.as_u16(),
        });
    }
    response
}

/// The value of the path segment where `template` has `parameter`.
fn path_parameter<'p>(template: &str, path: &'p str, parameter: &str) -> Option<&'p str> {
    let position = template.split('/').position(|part| part == parameter)?;
    path.split('/').nth(position)
}

/// Commits the answered requests to the store, in batches, in order.
struct Writer {
    store: Arc<dyn twin::Store>,
    accounts: Arc<Accounts>,
    keys: AuditKeys,
    losses: Arc<Losses>,
}

impl Writer {
    fn run(self, mut answered: mpsc::Receiver<Answered>) {
        let mut sequence = self.last_sequence().map_or(0, |last| last + 1);
        while let Some(first) = answered.blocking_recv() {
            std::thread::sleep(GATHER);
            let mut batch = WriteBatch::new();
            let mut records = 0;
            let more = std::iter::from_fn(|| answered.try_recv().ok()).take(BATCH - 1);
            for request in std::iter::once(first).chain(more) {
                let entry = self.entry(request, sequence);
                sequence += 1;
                records += 1;
                match serde_json::to_vec(&entry) {
                    Ok(value) => {
                        let position = [Element::Int(entry.at_ms), Element::Int(sequence - 1)];
                        batch.put(self.keys.all.pack(&position), value.clone());
                        if let Some(municipality) = &entry.municipality {
                            let key = self.keys.municipality(municipality).pack(&position);
                            batch.put(key, value);
                        }
                    }
                    Err(err) => {
                        tracing::error!("cannot encode an audit entry: {err}");
                        self.losses.count(1);
                    }
                }
            }
            if let Err(err) = self.store.write(batch, Durability::Durable) {
                tracing::error!("cannot store {records} audit entries: {err}");
                self.losses.count(records);
            }
        }
    }

    /// The sequence number of the newest entry stored.
    fn last_sequence(&self) -> Option<i64> {
        let last = self
            .store
            .scan(&self.keys.all.range(), Order::Reverse, Some(1))
            .map_err(|err| tracing::error!("cannot read the audit log: {err}"))
            .ok()?;
        let (key, _) = last.first()?;
        match self.keys.all.unpack(key).ok()?.as_slice() {
            [_, Element::Int(sequence)] => Some(*sequence),
            _ => None,
        }
    }

    fn entry(&self, request: Answered, sequence: i64) -> AuditEntry {
        let Answered {
            at_ms,
            asked,
            login_name,
            route,
            status,
        } = request;
        // The token's holder even when its session has ended since (a logout ends its own).
        let (caller, session): (Option<Principal>, _) = asked
            .token
            .as_deref()
            .and_then(|token| {
                self.accounts
                    .token_holder(token, at_ms.div_euclid(1000))
                    .ok()
            })
            .map(|(principal, claims)| (principal, claims.sid))
            .unzip();
        let template = route.as_deref().unwrap_or_default();
        let municipality = path_parameter(template, &asked.path, MUNICIPALITY_PARAMETER)
            .map(str::to_string)
            .or_else(|| caller.as_ref().and_then(|c| c.municipality.clone()));
        let alert_id = template
            .contains(ALERT_PARAMETER)
            .then(|| path_parameter(template, &asked.path, "{id}")?.parse().ok())
            .flatten();
        AuditEntry {
            cursor: format!("{at_ms}-{sequence}"),
            at_ms,
            who: caller.as_ref().map(|c| c.subject.clone()).or(login_name),
            session,
            role: caller.as_ref().map(|c| c.role.name().to_string()),
            municipality,
            method: asked.method,
            route,
            path: asked.path,
            status,
            ip: asked.ip,
            alert_id,
        }
    }
}

/// Which entries to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Window {
    /// First time, Unix ms (default: the beginning).
    from: Option<i64>,
    /// End, Unix ms, exclusive (default: the end).
    to: Option<i64>,
    /// Entries at most (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only entries older than this cursor (`next_before` of the previous page).
    before: Option<String>,
}

/// The municipality filter of the whole log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MunicipalityFilter {
    /// Only this municipality's entries (default: all).
    municipality: Option<String>,
}

/// The position `(time, sequence)` a cursor names.
fn parse_cursor(cursor: &str) -> Option<[Element; 2]> {
    let (at_ms, sequence) = cursor.split_once('-')?;
    Some([
        Element::Int(at_ms.parse().ok()?),
        Element::Int(sequence.parse().ok()?),
    ])
}

/// A page of the entries of `space` in `window`, newest first.
async fn list(
    state: &AppState,
    space: Keyspace,
    window: Result<Query<Window>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(window) = window.map_err(|rejection| malformed_request(rejection.body_text()))?;
    let limit = window.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(malformed_request(format!(
            "limit must be 1 to {MAX_LIMIT}, not {limit}"
        )));
    }
    let mut range = space.range();
    if let Some(from) = window.from {
        range.start = range.start.max(space.pack(&[Element::Int(from)]));
    }
    let mut ends = Vec::new();
    if let Some(to) = window.to {
        ends.push(space.pack(&[Element::Int(to)]));
    }
    if let Some(cursor) = &window.before {
        let position = parse_cursor(cursor)
            .ok_or_else(|| malformed_request(format!("not a cursor: {cursor:?}")))?;
        ends.push(space.pack(&position));
    }
    range.end = ends.into_iter().chain(range.end).min();
    let store = state.store.clone();
    let scan = move |range: KeyRange| store.scan(&range, Order::Reverse, Some(limit + 1));
    let stored = if range.is_empty() {
        Vec::new()
    } else {
        tokio::task::spawn_blocking(move || scan(range))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?
    };
    let mut entries = stored
        .iter()
        .map(|(_, value)| serde_json::from_slice::<AuditEntry>(value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next_before = more
        .then(|| entries.last().map(|entry| entry.cursor.clone()))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_before,
    }))
}

/// 404 for a municipality that is not served (as for another tenant's).
fn served(state: &AppState, municipality: &str) -> Result<(), ApiError> {
    if state
        .runtime
        .municipalities()
        .iter()
        .any(|m| m == municipality)
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no municipality {municipality}"
        )))
    }
}

/// The audit log of the platform, or of one municipality, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(MunicipalityFilter, Window),
    responses(
        (status = 200, description = "A page of entries, newest first", body = AuditPage),
        (status = 404, description = "No such municipality", body = ErrorBody),
        (status = 422, description = "A malformed time, limit or cursor", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(PLATFORM_AUDITORS)))))]
async fn platform_audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    filter: Result<Query<MunicipalityFilter>, QueryRejection>,
    window: Result<Query<Window>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.allow(PLATFORM_AUDITORS, None)?;
    let Query(filter) = filter.map_err(|rejection| malformed_request(rejection.body_text()))?;
    let keys = AuditKeys::new();
    let space = match &filter.municipality {
        Some(municipality) => {
            served(&state, municipality)?;
            keys.municipality(municipality)
        }
        None => keys.all,
    };
    list(&state, space, window).await
}

/// The audit log of a municipality, newest first.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/audit", tag = "audit",
    params(("municipality" = String, Path), Window),
    responses(
        (status = 200, description = "A page of entries, newest first", body = AuditPage),
        (status = 404, description = "No such municipality", body = ErrorBody),
        (status = 422, description = "A malformed time, limit or cursor", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(MUNICIPALITY_AUDITORS)))))]
async fn municipality_audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    window: Result<Query<Window>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Path(municipality) = path.map_err(|rejection| malformed_request(rejection.body_text()))?;
    caller.allow(MUNICIPALITY_AUDITORS, Some(&municipality))?;
    served(&state, &municipality)?;
    list(&state, AuditKeys::new().municipality(&municipality), window).await
}

/// The audit routes (reading only: the log has no route that changes it).
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(platform_audit))
        .routes(routes!(municipality_audit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_follow_the_template() {
        let template = "/api/v1/municipalities/{municipality}/alerts/{id}/acknowledge";
        let path = "/api/v1/municipalities/north/alerts/17/acknowledge";
        assert_eq!(
            path_parameter(template, path, MUNICIPALITY_PARAMETER),
            Some("north")
        );
        assert_eq!(path_parameter(template, path, "{id}"), Some("17"));
        assert_eq!(path_parameter("/api/v1/auth/login", path, "{id}"), None);
    }

    #[test]
    fn cursors_name_a_position_or_nothing() {
        assert_eq!(
            parse_cursor("1700000000000-42"),
            Some([Element::Int(1_700_000_000_000), Element::Int(42)])
        );
        for bad in ["", "12", "a-1", "1-b", "-1-2"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::default());
        let (queue, mut waiting) = mpsc::channel(2);
        let log = AuditLog {
            queue: Some(queue),
            writer: None,
            losses: Arc::new(Losses {
                metrics: metrics.clone(),
                total: Mutex::new(0),
            }),
        };
        for status in [200, 201, 202, 203, 204] {
            log.record(Answered {
                at_ms: 1,
                asked: Asked {
                    token: None,
                    method: "POST".into(),
                    path: "/".into(),
                    ip: None,
                },
                login_name: None,
                route: None,
                status,
            });
        }
        assert!(metrics
            .render()
            .lines()
            .any(|line| line == format!("{DROPPED_METRIC} 3")));
        let kept: Vec<u16> = std::iter::from_fn(|| waiting.try_recv().ok())
            .map(|answered| answered.status)
            .collect();
        assert_eq!(kept, [200, 201]);
    }
}
