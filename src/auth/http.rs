//! Authentication on the HTTP API (axum): the [`Caller`] extractor (a valid access token in
//! `Authorization: Bearer`), role and tenant checks that answer 401/403/404 consistently, and
//! the session routes under `/api/v1/auth` (login, refresh, logout, me).
//!
//! A caller asking for another municipality gets 404, the same answer as for one that does not
//! exist, so nothing tells them which municipalities there are.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::{Accounts, AuthError, Tokens};
use super::{Principal, Role};

/// The body of every API error: a stable reason code and a human detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable reason (`unauthenticated`, `forbidden`, `not_found`,
    /// `malformed`, ...).
    pub error: String,
    /// What exactly, safe to show.
    pub detail: String,
}

/// The names of `roles`, as the document's `x-roles` extension lists them.
pub fn role_names(roles: &[Role]) -> Vec<&'static str> {
    roles.iter().map(|role| role.name()).collect()
}

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
            Json(ErrorBody {
                error: self.reason.to_string(),
                detail: self.detail,
            }),
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

/// Unix seconds now: the clock tokens are checked against.
pub fn unix_now() -> i64 {
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

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer_token(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
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
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs one of the roles {}",
                    role_names(roles).join(", ")
                ),
            ));
        }
        Ok(())
    }
}

impl<S: AccountsState> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let accounts = state.accounts();
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
        match accounts.authenticate(token, unix_now()) {
            Ok(principal) => Ok(Caller(principal)),
            Err(AuthError::Store(e)) => Err(ApiError::internal(e)),
            Err(e) => Err(ApiError::unauthenticated(e.to_string())),
        }
    }
}

/// The accounts of the router's state, as an extractor: the session handlers need nothing
/// else of the state, and so do not depend on its type.
struct AccountsOf(Arc<Accounts>);

impl<S: AccountsState> FromRequestParts<S> for AccountsOf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(state.accounts().clone()))
    }
}

/// A login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// A refresh token, to exchange (refresh) or revoke (logout).
#[derive(Deserialize, ToSchema)]
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

/// Logs in: a short-lived access token and a one-use refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in", body = Tokens),
        (status = 401, description = "Unknown user or wrong password", body = ErrorBody),
        (status = 422, description = "Malformed body (the field named)", body = ErrorBody),
    ))]
async fn login(
    AccountsOf(accounts): AccountsOf,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let tokens =
        blocking(move || accounts.login(&body.username, &body.password, unix_now())).await?;
    Ok(Json(tokens).into_response())
}

/// Exchanges a refresh token for the next pair; a token used twice revokes its family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "The next tokens", body = Tokens),
        (status = 401, description = "Unknown, used, revoked or expired refresh token", body = ErrorBody),
        (status = 422, description = "Malformed body (the field named)", body = ErrorBody),
    ))]
async fn refresh(
    AccountsOf(accounts): AccountsOf,
    body: Result<Json<RefreshBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let tokens = blocking(move || accounts.refresh(&body.refresh_token, unix_now())).await?;
    Ok(Json(tokens).into_response())
}

/// Revokes a refresh token (and so the session it belongs to).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "Logged out"),
        (status = 422, description = "Malformed body (the field named)", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(&Role::ALL)))))]
async fn logout(
    AccountsOf(accounts): AccountsOf,
    _caller: Caller,
    body: Result<Json<RefreshBody>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    blocking(move || accounts.logout(&body.refresh_token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller: user name, role and municipality.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = Principal)),
    extensions(("x-roles" = json!(role_names(&Role::ALL)))))]
async fn me(caller: Caller) -> Json<Principal> {
    Json(caller.0)
}

/// `POST /api/v1/auth/login` `{username, password}` -> tokens; `POST /api/v1/auth/refresh`
/// `{refresh_token}` -> the next tokens; `POST /api/v1/auth/logout` (authenticated)
/// `{refresh_token}` -> 204; `GET /api/v1/auth/me` -> the caller.
pub fn routes<S: AccountsState + Clone>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}
