//! `GET/PUT /api/v1/municipalities/{m}/alert-rules`: the threshold rules of a municipality,
//! read by anyone of it and replaced as a whole by its administrators. A replacement is
//! checked (limits, sensor kinds and ids of the municipality; a 422 names the field, e.g.
//! `rules[2].below`), stored durably and applied by the running twin at once: from the next
//! reading of each sensor on, without a restart, and again after one.

use std::sync::Arc;

use actors::messages::{AlertRule, AlertRules};
use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::auth::Role;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{path_parameters, query_error, AppState, READERS};

/// Who may change a municipality's alert rules and subscriptions.
pub(super) const ADMINS: &[Role] = &[Role::SuperAdmin, Role::MunicipalityAdmin];

/// The alert rules and subscription routes' answer to a body that does not parse: 422 naming
/// the field where the parser stopped.
pub(super) fn malformed_body(rejection: JsonRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "malformed",
        rejection.body_text(),
    )
}

/// A municipality's threshold rules.
#[derive(Serialize, ToSchema)]
struct RulesAnswer {
    /// The municipality.
    municipality: String,
    /// The rules in force.
    rules: Vec<AlertRule>,
}

fn answer(municipality: String, rules: &AlertRules) -> Json<RulesAnswer> {
    Json(RulesAnswer {
        municipality,
        rules: rules.rules.clone(),
    })
}

/// The threshold rules in force.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/alert-rules", tag = "alerts",
    params(("municipality" = String, Path)),
    responses(
        (status = 200, description = "The rules in force", body = RulesAnswer),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn alert_rules(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RulesAnswer>, ApiError> {
    let municipality = path_parameters(path)?;
    caller.allow(READERS, Some(&municipality))?;
    let rules = state
        .runtime
        .alert_rules(&municipality)
        .map_err(query_error)?;
    Ok(answer(municipality, &rules))
}

/// Replaces the threshold rules; applied by the running twin at once.
#[utoipa::path(put, path = "/api/v1/municipalities/{municipality}/alert-rules", tag = "alerts",
    params(("municipality" = String, Path)),
    request_body = AlertRules,
    responses(
        (status = 200, description = "The rules now in force", body = RulesAnswer),
        (status = 422, description = "A malformed body, or a rule that is not acceptable: the \
            field named (`rules[2].below`)", body = ErrorBody),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(ADMINS)))))]
async fn replace_alert_rules(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<AlertRules>, JsonRejection>,
) -> Result<Json<RulesAnswer>, ApiError> {
    let municipality = path_parameters(path)?;
    // Who may change the rules is answered before what is wrong with them.
    caller.allow(ADMINS, Some(&municipality))?;
    // A municipality not served is 404 before a bad body is 422.
    state
        .runtime
        .alert_rules(&municipality)
        .map_err(query_error)?;
    let Json(rules) = body.map_err(malformed_body)?;
    let rules = state
        .runtime
        .replace_alert_rules(&municipality, rules)
        .await
        .map_err(query_error)?
        .map_err(|err| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
        })?;
    Ok(answer(municipality, &rules))
}

/// The alert rules routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(alert_rules, replace_alert_rules))
}
