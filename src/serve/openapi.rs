//! The OpenAPI 3.1 document of the HTTP API (`GET /api/v1/openapi.json`) and a page that
//! shows it (`GET /api/v1/docs`, self-contained: no CDN).
//!
//! The document is built from the routes themselves: every route is registered through
//! `utoipa_axum`'s `routes!`, which takes the handler's `#[utoipa::path]` annotation, so a route
//! cannot be served without being documented. Each operation that needs an access token names
//! the roles it allows in the extension `x-roles` (from the same constants its handler checks);
//! [`document_roles`] then writes them into the description, adds the bearer security
//! requirement and the answers every such operation can give (401, 403 when some role is
//! refused, 404 for another municipality). An operation without `x-roles` is public.

use std::sync::Arc;

use aquatwin::auth::http::ErrorBody;
use aquatwin::auth::Role;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json, Router};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::AppState;

/// Access tokens of people (`Authorization: Bearer`).
const ACCESS_TOKEN_SCHEME: &str = "bearer";

/// Device credentials of `POST /api/v1/ingest` (with the `X-Device-Id` header); the name its
/// `security` annotation uses.
const DEVICE_KEY_SCHEME: &str = "device_key";

/// What the document says before the routes are added.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "aquatwin",
        description = "The HTTP API of `aquatwin serve`: the live digital twin of water \
            distribution networks. Operations that need an access token list the roles they \
            allow in `x-roles`; a caller of another municipality is answered 404, as for one \
            that does not exist."
    ),
    components(schemas(ErrorBody))
)]
struct BaseDocument;

/// The finished document, as served.
#[derive(Clone)]
struct Document(Arc<OpenApi>);

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "documentation",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn openapi_json(Extension(document): Extension<Document>) -> Response {
    Json(document.0.as_ref()).into_response()
}

/// A page listing the operations of this document with their parameters, roles and answers.
#[utoipa::path(get, path = "/api/v1/docs", tag = "documentation",
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String)))]
async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// The documentation routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs))
}

/// The router of `routes` with the document built from them served at
/// `/api/v1/openapi.json`.
pub(super) fn serve_document(routes: OpenApiRouter<Arc<AppState>>) -> Router<Arc<AppState>> {
    let (router, mut document) = OpenApiRouter::with_openapi(BaseDocument::openapi())
        .merge(routes)
        .split_for_parts();
    document_roles(&mut document);
    router.layer(Extension(Document(Arc::new(document))))
}

/// Completes every operation from its `x-roles` (see the module documentation) and declares
/// the security schemes.
fn document_roles(document: &mut OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        ACCESS_TOKEN_SCHEME.to_string(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("An access token from `POST /api/v1/auth/login`."))
                .build(),
        ),
    );
    components.security_schemes.insert(
        DEVICE_KEY_SCHEME.to_string(),
        SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
            utoipa::openapi::security::ApiKeyValue::with_description(
                "X-Device-Key",
                "A device's key (or `Authorization: Bearer <key>`), with `X-Device-Id`.",
            ),
        )),
    );
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            document_operation(path, operation);
        }
    }
}

/// The roles an operation allows, from its `x-roles`; `None` when it is public.
fn allowed_roles(operation: &Operation) -> Option<Vec<String>> {
    let roles = operation.extensions.as_ref()?.get("x-roles")?.as_array()?;
    Some(
        roles
            .iter()
            .filter_map(|role| role.as_str().map(str::to_string))
            .collect(),
    )
}

fn document_operation(path: &str, operation: &mut Operation) {
    let roles = allowed_roles(operation);
    let description = operation.description.get_or_insert_with(String::new);
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    let Some(roles) = roles else {
        if operation.security.is_none() {
            description.push_str("Public: no access token.");
        }
        return;
    };
    description.push_str(&format!(
        "Roles: {} (an access token in `Authorization: Bearer`).",
        roles.join(", ")
    ));
    operation.security = Some(vec![SecurityRequirement::new(
        ACCESS_TOKEN_SCHEME,
        Vec::<String>::new(),
    )]);
    let responses = &mut operation.responses.responses;
    let mut answer = |status: &str, why: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error_response(why)));
    };
    answer("401", "No access token, or a malformed or expired one");
    if Role::ALL
        .iter()
        .any(|role| !roles.iter().any(|r| r == role.name()))
    {
        answer(
            "403",
            "The caller's role is not one of the operation's roles",
        );
    }
    if path.contains("{municipality}") {
        answer(
            "404",
            "No such municipality, or the caller's is another (the same answer)",
        );
    }
}

/// A response with the API's JSON error body.
fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
