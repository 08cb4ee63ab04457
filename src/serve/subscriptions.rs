//! A municipality's alert subscriptions over the API (its administrators only):
//!
//! - `GET .../subscriptions`: every subscription, configured or created here; secrets never.
//! - `POST .../subscriptions`: a new one (`events`, `target`); the server picks its id and, for
//!   a webhook, generates its HMAC secret, returned in this answer only (201).
//! - `GET .../subscriptions/{subscription}`, `DELETE` (204; its secret and delivery history
//!   go with it; a subscription of the configuration comes back at the next start).
//! - `GET .../subscriptions/{subscription}/deliveries`: the delivery history, oldest first:
//!   every attempt with its time, status code or error and when the next retry is due. The
//!   notifier keeps the newest `[notify] history_per_subscription` attempts per subscription
//!   (default 1,000), and no more are listed.
//!
//! The notifier reads the subscriptions for every notification: one created here gets the next
//! alert without a restart.

use std::sync::Arc;

use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::notify::subscriptions::{EventFilter, SubscriptionError, Target, WebhookFormat};
use aquatwin::notify::{DeliveryAttempt, Subscription, SubscriptionStore};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{malformed_request, path_parameters, AppState};
use super::rules::{malformed_body, ADMINS};

/// The largest `limit` of the delivery history.
pub(super) const MAX_HISTORY_LIMIT: usize = 10_000;

/// Where a new subscription's notifications go.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum NewTarget {
    /// An HTTP(S) POST, signed with a secret the server generates.
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// The body format.
        format: WebhookFormat,
    },
    /// Email over the server's SMTP server.
    Email {
        /// Recipient addresses.
        recipients: Vec<String>,
    },
}

/// A subscription to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    /// Events it receives: `raised`, `escalated`, `resolved` or `*` (all).
    #[schema(value_type = Vec<String>)]
    events: Vec<EventFilter>,
    /// Where they go.
    target: NewTarget,
}

/// Where a subscription's notifications go, as listed (no secret).
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TargetView {
    /// An HTTP(S) POST.
    Webhook {
        /// The URL.
        url: String,
        /// The body format.
        format: WebhookFormat,
        /// Whether its requests are signed.
        signed: bool,
    },
    /// Email.
    Email {
        /// Recipient addresses.
        recipients: Vec<String>,
    },
}

/// A subscription as listed.
#[derive(Serialize, ToSchema)]
struct SubscriptionView {
    /// Unique within the municipality.
    id: String,
    /// Events it receives.
    #[schema(value_type = Vec<String>)]
    events: Vec<EventFilter>,
    /// Where they go.
    target: TargetView,
}

impl From<Subscription> for SubscriptionView {
    fn from(subscription: Subscription) -> Self {
        let target = match subscription.target {
            Target::Webhook {
                url,
                secret,
                format,
            } => TargetView::Webhook {
                url,
                format,
                signed: secret.is_some(),
            },
            Target::Email { recipients } => TargetView::Email { recipients },
        };
        Self {
            id: subscription.id,
            events: subscription.events,
            target,
        }
    }
}

/// A municipality's subscriptions.
#[derive(Serialize, ToSchema)]
struct Subscriptions {
    /// The municipality.
    municipality: String,
    /// By id.
    subscriptions: Vec<SubscriptionView>,
}

/// A subscription just created.
#[derive(Serialize, ToSchema)]
struct Created {
    /// The subscription.
    subscription: SubscriptionView,
    /// The webhook's HMAC-SHA256 key (hex), shown this once; `null` for email.
    secret: Option<String>,
}

/// A subscription's delivery history.
#[derive(Serialize, ToSchema)]
struct Deliveries {
    /// The subscription.
    subscription: String,
    /// Attempts, oldest first.
    deliveries: Vec<DeliveryAttempt>,
}

/// The query of the delivery history.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// The newest attempts to answer (default: every one kept, `[notify]
    /// history_per_subscription`, 1,000 unless configured).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<usize>,
}

/// Runs `work` on the store off the async threads; its errors are the API's.
async fn in_store<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(SubscriptionStore) -> Result<T, SubscriptionError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = SubscriptionStore::new(state.store.clone());
    tokio::task::spawn_blocking(move || work(store))
        .await
        .map_err(ApiError::internal)?
        .map_err(|err| match err {
            SubscriptionError::Invalid { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string())
            }
            other => ApiError::internal(other),
        })
}

/// Lets `caller` manage `municipality`'s subscriptions, when it is served.
fn admit(state: &AppState, caller: &Caller, municipality: &str) -> Result<(), ApiError> {
    caller.allow(ADMINS, Some(municipality))?;
    if state.networks.contains_key(municipality) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no municipality {municipality}"
        )))
    }
}

fn no_subscription(id: &str) -> ApiError {
    ApiError::not_found(format!("no subscription {id}"))
}

/// The subscriptions, without secrets.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/subscriptions",
    tag = "notifications",
    params(("municipality" = String, Path)),
    responses((status = 200, description = "The subscriptions", body = Subscriptions)),
    extensions(("x-roles" = json!(role_names(ADMINS)))))]
async fn list_subscriptions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Subscriptions>, ApiError> {
    let municipality = path_parameters(path)?;
    admit(&state, &caller, &municipality)?;
    let key = municipality.clone();
    let list = in_store(&state, move |store| store.list(&key)).await?;
    Ok(Json(Subscriptions {
        municipality,
        subscriptions: list.into_iter().map(SubscriptionView::from).collect(),
    }))
}

/// Creates a subscription; a webhook's secret is generated and answered this once.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/subscriptions",
    tag = "notifications",
    params(("municipality" = String, Path)),
    request_body = NewSubscription,
    responses(
        (status = 201, description = "Created, with its secret", body = Created),
        (status = 422, description = "A malformed body or an unusable field (named)",
            body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(ADMINS)))))]
async fn create_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NewSubscription>, JsonRejection>,
) -> Result<Response, ApiError> {
    let municipality = path_parameters(path)?;
    admit(&state, &caller, &municipality)?;
    let Json(new) = body.map_err(malformed_body)?;
    let target = match new.target {
        NewTarget::Webhook { url, format } => Target::Webhook {
            url,
            secret: None,
            format,
        },
        NewTarget::Email { recipients } => Target::Email { recipients },
    };
    let subscription = Subscription {
        id: format!("sub-{:016x}", rand::random::<u64>()),
        events: new.events,
        target,
    };
    let (created, secret) = in_store(&state, move |store| {
        store.create_with_generated_secret(&municipality, subscription)
    })
    .await?;
    let body = Created {
        subscription: created.into(),
        secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// One subscription, without its secret.
#[utoipa::path(get,
    path = "/api/v1/municipalities/{municipality}/subscriptions/{subscription}",
    tag = "notifications",
    params(("municipality" = String, Path), ("subscription" = String, Path)),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 404, description = "No such municipality or subscription", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(ADMINS)))))]
async fn get_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    admit(&state, &caller, &municipality)?;
    let key = id.clone();
    let found = in_store(&state, move |store| store.get(&municipality, &key)).await?;
    found
        .map(|subscription| Json(subscription.into()))
        .ok_or_else(|| no_subscription(&id))
}

/// Deletes a subscription with its secret and delivery history.
#[utoipa::path(delete,
    path = "/api/v1/municipalities/{municipality}/subscriptions/{subscription}",
    tag = "notifications",
    params(("municipality" = String, Path), ("subscription" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such municipality or subscription", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(ADMINS)))))]
async fn delete_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    admit(&state, &caller, &municipality)?;
    let key = id.clone();
    let existed = in_store(&state, move |store| store.delete(&municipality, &key)).await?;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_subscription(&id))
    }
}

/// The delivery history of a subscription: its newest attempts, oldest first.
#[utoipa::path(get,
    path = "/api/v1/municipalities/{municipality}/subscriptions/{subscription}/deliveries",
    tag = "notifications",
    params(("municipality" = String, Path), ("subscription" = String, Path), HistoryQuery),
    responses(
        (status = 200, description = "The attempts", body = Deliveries),
        (status = 404, description = "No such municipality or subscription", body = ErrorBody),
        (status = 422, description = "A malformed limit", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(ADMINS)))))]
async fn deliveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Deliveries>, ApiError> {
    let (municipality, id) = path_parameters(path)?;
    admit(&state, &caller, &municipality)?;
    let Query(query) = query.map_err(|rejection| malformed_request(rejection.body_text()))?;
    let limit = query.limit.unwrap_or(MAX_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(malformed_request(format!(
            "limit: {limit} is not between 1 and {MAX_HISTORY_LIMIT}"
        )));
    }
    // Attempts past the bound wait for the notifier's next pruning: they are not shown.
    let limit = limit.min(state.notifier.history_per_subscription());
    let key = id.clone();
    let history = in_store(&state, move |store| {
        if store.get(&municipality, &key)?.is_none() {
            return Ok(None);
        }
        store.history(&municipality, &key, limit).map(Some)
    })
    .await?;
    let deliveries = history.ok_or_else(|| no_subscription(&id))?;
    Ok(Json(Deliveries {
        subscription: id,
        deliveries,
    }))
}

/// The subscription routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_subscriptions, create_subscription))
        .routes(routes!(get_subscription, delete_subscription))
        .routes(routes!(deliveries))
}
