//! Authentication on the HTTP API (axum): the [`Caller`] extractor (a valid access token in
//! `Authorization: Bearer`), role and tenant checks that answer 401/403/404 consistently, and
//! the session routes under `/api/v1/auth` (login, refresh, logout, me).
//!
//! A caller asking for another municipality gets 404, the same answer as for one that does not
//! exist, so nothing tells them which municipalities there are.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::users::{Accounts, AuthError};
use super::{Principal, Role};

/// An API error: status, a stable reason code and a human detail; never internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable reason (`unauthenticated`, `forbidden`, `not_found`, ...).
    pub reason: &'static str,
    /// What exactly, safe to show.
    pub detail: String,
}

impl ApiError {
    /// An error with `status`, `reason` and `detail`.
    pub fn new(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            detail: detail.into(),
        }
    }

    /// 401.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// 404, also for what exists but belongs to another tenant.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 500 without internals (they go to the log).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (logged)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.reason, "detail": self.detail})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A router state that holds the accounts (implemented by the server's state; `Arc` of such a
/// state is one too).
pub trait AccountsState: Send + Sync + 'static {
    /// The users and sessions.
    fn accounts(&self) -> &Arc<Accounts>;
}

impl<T: AccountsState> AccountsState for Arc<T> {
    fn accounts(&self) -> &Arc<Accounts> {
        (**self).accounts()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Principal);

impl Caller {
    /// Allows the call when the caller has one of `roles` (403 otherwise) and may see
    /// `municipality` (404 otherwise).
    pub fn allow(&self, roles: &[Role], municipality: Option<&str>) -> Result<(), ApiError> {
        if let Some(m) = municipality {
            if !self.0.can_access(m) {
                return Err(ApiError::not_found(format!("no municipality {m}")));
            }
        }
        if !self.0.has_role(roles) {
            let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs one of the roles {}", names.join(", ")),
            ));
        }
        Ok(())
    }
}

impl<S: AccountsState> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let accounts = state.accounts();
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
        match accounts.authenticate(token, unix_now()) {
            Ok(principal) => Ok(Caller(principal)),
            Err(AuthError::Store(e)) => Err(ApiError::internal(e)),
            Err(e) => Err(ApiError::unauthenticated(e.to_string())),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Maps an account error to the API's answer.
fn account_error(error: AuthError) -> ApiError {
    match error {
        AuthError::Store(e) => ApiError::internal(e),
        AuthError::NoSigningKey => ApiError::internal("no token signing key"),
        other => ApiError::unauthenticated(other.to_string()),
    }
}

/// Runs an account operation off the async threads: password hashing is deliberately slow.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(account_error)
}

async fn login<S: AccountsState + Clone>(
    State(state): State<S>,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let accounts = state.accounts().clone();
    let tokens =
        blocking(move || accounts.login(&body.username, &body.password, unix_now())).await?;
    Ok(Json(tokens).into_response())
}

async fn refresh<S: AccountsState + Clone>(
    State(state): State<S>,
    body: Result<Json<RefreshBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let accounts = state.accounts().clone();
    let tokens = blocking(move || accounts.refresh(&body.refresh_token, unix_now())).await?;
    Ok(Json(tokens).into_response())
}

async fn logout<S: AccountsState + Clone>(
    State(state): State<S>,
    _caller: Caller,
    body: Result<Json<RefreshBody>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let accounts = state.accounts().clone();
    blocking(move || accounts.logout(&body.refresh_token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(caller: Caller) -> Json<Principal> {
    Json(caller.0)
}

/// `POST /api/v1/auth/login` `{username, password}` -> tokens; `POST /api/v1/auth/refresh`
/// `{refresh_token}` -> the next tokens; `POST /api/v1/auth/logout` (authenticated)
/// `{refresh_token}` -> 204; `GET /api/v1/auth/me` -> the caller.
pub fn routes<S: AccountsState + Clone>() -> Router<S> {
    Router::new()
        .route("/api/v1/auth/login", post(login::<S>))
        .route("/api/v1/auth/refresh", post(refresh::<S>))
        .route("/api/v1/auth/logout", post(logout::<S>))
        .route("/api/v1/auth/me", get(me))
}
