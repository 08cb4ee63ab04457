//! A municipality's networks, for viewers, tools and planning (another municipality is 404
//! like one that does not exist).
//!
//! - `GET /api/v1/municipalities/{m}/network?format=inp|geojson` (readers): the network the
//!   live twin runs on, as configured.
//! - `POST /api/v1/municipalities/{m}/networks` (`super_admin`, `municipality_admin`): the
//!   body is `.inp` text (at most the API's body limit, `[limits] body_limit_bytes`). It is
//!   read with the hydraulics reader, whose checks are EPANET's: a malformed file is 422 and
//!   the detail names each problem's line, section and cause. A good one is stored as the next
//!   version (1, 2, ...) with who uploaded it, when, the SHA-256 of the text, its node and link
//!   counts, and the text itself; 201 with that record. Uploading does not change the live
//!   twin: it keeps running on its configured network (switching it live is not supported);
//!   versions are for planning jobs ([`super::jobs`]) and for sharing.
//! - `GET .../networks` (readers): every version, oldest first; version 0 (`live`) is the
//!   configured network (its SHA-256 is that of the writer's `.inp` text of it).
//! - `GET .../networks/{version}?format=inp|geojson` (readers): one version (`live` or `0`, or
//!   its number); `inp` is the text as uploaded.
//! - `DELETE .../networks/{version}` (`super_admin`, `municipality_admin`): 204, the version's
//!   record and text gone; 404 for a version that does not exist; 409 for version 0 (the live
//!   twin's) and for a version a queued or running job runs on (the detail names the job).
//!   Finished jobs keep their results. Version numbers are never given twice: the next upload
//!   after a deletion still takes a new one.
//! - `GET .../network/elements?kind=nodes|links&limit=&after=` (readers): every node (head,
//!   pressure, demand) or link (flow, velocity, headloss, status: 0 closed, 1 open, 2 active)
//!   of the live network with the twin's latest estimated state and that period's time;
//!   values are `null` before the first period and where not finite. A page holds `limit`
//!   elements (default 10 000, at most 100 000) in the network's order; `next_after`, when
//!   present, is the id to pass as `after` for the next page.
//!
//! Formats:
//! - `inp` (the default): EPANET `.inp` text; the configured network's is the hydraulics
//!   writer's, which reads back to an equal network.
//! - `geojson`: a FeatureCollection in the file's own x/y (no projection is assumed): nodes as
//!   Points (`id`, `type`, `elevation`: a reservoir's is its head), links as LineStrings from
//!   the start node through their vertices to the end node (`id`, `type`, `diameter`,
//!   `length`; none for a pump). Nodes without coordinates are left out and counted in
//!   `missing_coordinates`; links that touch one are left out and counted in
//!   `links_without_coordinates`.

mod versions;

use std::sync::Arc;

use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::auth::Role;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hydraulics::model::{LinkKind, NodeKind};
use hydraulics::Network;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use twin::StoreError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) use self::versions::{parse_version, Versions, LIVE};
use self::versions::{NetworkVersion, UploadError};
use super::http::{malformed_request, path_parameters, query_error, AppState, READERS};
use super::jobs::NetworkDeletion;

/// Who may upload network versions.
const UPLOADERS: &[Role] = &[Role::SuperAdmin, Role::MunicipalityAdmin];

/// Elements per page unless `limit` says otherwise, and at most.
const DEFAULT_ELEMENTS: usize = 10_000;
const MAX_ELEMENTS: usize = 100_000;

/// The network routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(network))
        .routes(routes!(list_versions, upload_version))
        .routes(routes!(get_version, delete_version))
        .routes(routes!(elements))
}

/// The format asked for.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FormatQuery {
    /// `inp` (the default) or `geojson`.
    #[param(pattern = "^(inp|geojson)$")]
    format: Option<String>,
}

/// The formats a network is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Inp,
    GeoJson,
}

impl Format {
    fn parse(name: Option<&str>) -> Result<Self, ApiError> {
        match name {
            None | Some("inp") => Ok(Self::Inp),
            Some("geojson") => Ok(Self::GeoJson),
            Some(other) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "malformed",
                format!("format: unknown format {other:?} (inp, geojson)"),
            )),
        }
    }

    fn of(query: Result<Query<FormatQuery>, QueryRejection>) -> Result<Self, ApiError> {
        let Query(query) = query.map_err(|e| malformed_request(e.body_text()))?;
        Self::parse(query.format.as_deref())
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Inp => "text/plain; charset=utf-8",
            Format::GeoJson => "application/geo+json",
        }
    }
}

/// 404 unless `municipality` is served (a `super_admin` may name any).
pub(super) fn served(state: &AppState, municipality: &str) -> Result<(), ApiError> {
    if state.versions.serves(municipality) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no municipality {municipality}"
        )))
    }
}

/// Runs store work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// The network as configured: EPANET `.inp` text or GeoJSON.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/network", tag = "twin",
    params(("municipality" = String, Path), FormatQuery),
    responses(
        (status = 200, description = "The network", content(
            (String = "text/plain; charset=utf-8"),
            (Object = "application/geo+json"),
        )),
        (status = 422, description = "An unknown format", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn network(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
    query: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let format = Format::of(query)?;
    let network = state
        .networks
        .get(&municipality)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no municipality {municipality}")))?;
    // Large networks take a while to write: off the async threads.
    let body = tokio::task::spawn_blocking(move || match format {
        Format::Inp => hydraulics::inp::write_string(&network),
        Format::GeoJson => geojson(&network).to_string(),
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// The network versions of a municipality.
#[derive(Serialize, ToSchema)]
struct VersionList {
    /// The municipality.
    municipality: String,
    /// Oldest first; version 0 is the configured network the live twin runs on.
    versions: Vec<NetworkVersion>,
}

/// The network versions: the configured one (0, `live`) and the uploads.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/networks", tag = "networks",
    params(("municipality" = String, Path)),
    responses((status = 200, description = "The versions", body = VersionList)),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn list_versions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let versions = state.versions.clone();
    let name = municipality.clone();
    let versions = blocking(move || versions.list(&name)).await?;
    Ok(Json(VersionList {
        municipality,
        versions,
    }))
}

/// Uploads a network (`.inp` text) as the next version. The live twin keeps its configured
/// network.
#[utoipa::path(post, path = "/api/v1/municipalities/{municipality}/networks", tag = "networks",
    params(("municipality" = String, Path)),
    request_body(content = String, content_type = "text/plain",
        description = "EPANET `.inp` text"),
    responses(
        (status = 201, description = "Stored as the next version", body = NetworkVersion),
        (status = 413, description = "Body over the API's limit", body = ErrorBody),
        (status = 422, description = "Not a valid network: each problem with its line, \
            section and cause", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(UPLOADERS)))))]
async fn upload_version(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.allow(UPLOADERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|err| malformed_request(format!("body: not UTF-8 text: {err}")))?;
    let versions = state.versions.clone();
    let by = caller.0.subject.clone();
    let uploaded = tokio::task::spawn_blocking(move || versions.upload(&municipality, &by, &text))
        .await
        .map_err(ApiError::internal)?;
    match uploaded {
        Ok(version) => Ok((StatusCode::CREATED, Json(version)).into_response()),
        Err(UploadError::Invalid(detail)) => Err(malformed_request(detail)),
        Err(UploadError::Store(err)) => Err(ApiError::internal(err)),
    }
}

/// One network version: EPANET `.inp` text (as uploaded) or GeoJSON.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/networks/{version}",
    tag = "networks",
    params(("municipality" = String, Path),
        ("version" = String, Path, description = "`live` (or 0), or a version number"),
        FormatQuery),
    responses(
        (status = 200, description = "The network", content(
            (String = "text/plain; charset=utf-8"),
            (Object = "application/geo+json"),
        )),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 422, description = "An unknown format", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn get_version(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (municipality, version) = path_parameters(path)?;
    caller.allow(READERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let format = Format::of(query)?;
    let number = parse_version(&version)
        .ok_or_else(|| ApiError::not_found(format!("no network version {version}")))?;
    let versions = state.versions.clone();
    let body = blocking(move || {
        let Some(text) = versions.text(&municipality, number)? else {
            return Ok(None);
        };
        match format {
            Format::Inp => Ok(Some(text)),
            Format::GeoJson => {
                let network = hydraulics::read_str(&text, "network.inp")
                    .map_err(|err| StoreError::backend("read a stored network", err))?;
                Ok(Some(geojson(&network).to_string()))
            }
        }
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no network version {version}")))?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// Deletes an uploaded network version.
#[utoipa::path(delete, path = "/api/v1/municipalities/{municipality}/networks/{version}",
    tag = "networks",
    params(("municipality" = String, Path),
        ("version" = String, Path, description = "A version number (not `live`, 0)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "Version 0 (the live twin's), or a version a queued or \
            running job runs on", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(UPLOADERS)))))]
async fn delete_version(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (municipality, version) = path_parameters(path)?;
    caller.allow(UPLOADERS, Some(&municipality))?;
    served(&state, &municipality)?;
    let unknown = || ApiError::not_found(format!("no network version {version}"));
    let number = parse_version(&version).ok_or_else(unknown)?;
    if number == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "live",
            "version 0 is the network the live twin runs on: it cannot be deleted",
        ));
    }
    let jobs = state.clone();
    match blocking(move || jobs.jobs.delete_network(&municipality, number)).await? {
        NetworkDeletion::Deleted => Ok(StatusCode::NO_CONTENT),
        NetworkDeletion::Unknown => Err(unknown()),
        NetworkDeletion::InUse { job, status } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_use",
            format!("network version {number} is used by job {job} ({status})"),
        )),
    }
}

/// The query of the elements route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ElementsQuery {
    /// `nodes` or `links`.
    #[param(pattern = "^(nodes|links)$")]
    kind: String,
    /// Elements per page (default 10 000).
    #[param(minimum = 1, maximum = 100_000)]
    limit: Option<i64>,
    /// The id of the last element of the previous page.
    after: Option<String>,
}

/// A node and its estimated state.
#[derive(Serialize, ToSchema)]
struct NodeState {
    id: String,
    /// `junction`, `reservoir` or `tank`.
    #[serde(rename = "type")]
    kind: &'static str,
    head: Option<f64>,
    pressure: Option<f64>,
    demand: Option<f64>,
}

/// A link and its estimated state.
#[derive(Serialize, ToSchema)]
struct LinkState {
    id: String,
    /// `pipe`, `pump` or `valve`.
    #[serde(rename = "type")]
    kind: &'static str,
    flow: Option<f64>,
    velocity: Option<f64>,
    headloss: Option<f64>,
    /// 0 closed, 1 open, 2 active.
    status: Option<u8>,
}

/// A page of elements with their estimated state.
#[derive(Serialize, ToSchema)]
struct ElementsPage {
    municipality: String,
    /// `nodes` or `links`.
    kind: String,
    /// The period of the state, Unix ms (`null` before the first period).
    timestamp_ms: Option<i64>,
    /// Seconds into the simulation of that period.
    sim_seconds: Option<u64>,
    /// Nodes (`kind=nodes`) or links, in the network's order.
    #[schema(value_type = Vec<Object>)]
    elements: Value,
    /// Present when elements remain: pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
}

/// Every node or link of the live network with its latest estimated state.
#[utoipa::path(get, path = "/api/v1/municipalities/{municipality}/network/elements",
    tag = "twin",
    params(("municipality" = String, Path), ElementsQuery),
    responses(
        (status = 200, description = "A page of elements", body = ElementsPage),
        (status = 422, description = "A bad kind, limit or after", body = ErrorBody),
        (status = 503, description = "The twin cannot answer now: retry", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn elements(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(municipality): Path<String>,
    query: Result<Query<ElementsQuery>, QueryRejection>,
) -> Result<Json<ElementsPage>, ApiError> {
    caller.allow(READERS, Some(&municipality))?;
    let Query(query) = query.map_err(|e| malformed_request(e.body_text()))?;
    let network = state
        .networks
        .get(&municipality)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no municipality {municipality}")))?;
    let nodes = match query.kind.as_str() {
        "nodes" => true,
        "links" => false,
        other => {
            return Err(malformed_request(format!(
                "kind: `{other}` is not nodes or links"
            )))
        }
    };
    let limit = match query.limit {
        None => DEFAULT_ELEMENTS,
        Some(limit) => usize::try_from(limit)
            .ok()
            .filter(|limit| (1..=MAX_ELEMENTS).contains(limit))
            .ok_or_else(|| {
                malformed_request(format!("limit: must be between 1 and {MAX_ELEMENTS}"))
            })?,
    };
    let ids: Vec<&str> = if nodes {
        network.nodes.iter().map(|n| n.id.as_str()).collect()
    } else {
        network.links.iter().map(|l| l.id.as_str()).collect()
    };
    let first = match &query.after {
        None => 0,
        Some(after) => {
            ids.iter()
                .position(|id| id == after)
                .ok_or_else(|| malformed_request(format!("after: no {} `{after}`", query.kind)))?
                + 1
        }
    };
    let end = ids.len().min(first.saturating_add(limit));
    let period = state
        .runtime
        .latest_state(&municipality)
        .await
        .map_err(query_error)?;
    let period = period.as_deref();
    let finite = |values: Option<&Vec<f64>>, i: usize| {
        values
            .and_then(|values| values.get(i))
            .copied()
            .filter(|v| v.is_finite())
    };
    let elements = if nodes {
        let rows: Vec<NodeState> = (first..end)
            .map(|i| NodeState {
                id: ids[i].to_string(),
                kind: match network.nodes[i].kind {
                    NodeKind::Junction(_) => "junction",
                    NodeKind::Reservoir(_) => "reservoir",
                    NodeKind::Tank(_) => "tank",
                },
                head: finite(period.map(|p| &p.head), i),
                pressure: finite(period.map(|p| &p.pressure), i),
                demand: finite(period.map(|p| &p.demand), i),
            })
            .collect();
        serde_json::to_value(rows)
    } else {
        let rows: Vec<LinkState> = (first..end)
            .map(|i| LinkState {
                id: ids[i].to_string(),
                kind: link_kind(&network.links[i].kind),
                flow: finite(period.map(|p| &p.flow), i),
                velocity: finite(period.map(|p| &p.velocity), i),
                headloss: finite(period.map(|p| &p.headloss), i),
                status: period.and_then(|p| p.status.get(i).copied()),
            })
            .collect();
        serde_json::to_value(rows)
    }
    .map_err(ApiError::internal)?;
    Ok(Json(ElementsPage {
        municipality,
        kind: query.kind,
        timestamp_ms: period.map(|p| p.timestamp_ms),
        sim_seconds: period.map(|p| p.sim_seconds),
        elements,
        next_after: (end < ids.len() && end > 0).then(|| ids[end - 1].to_string()),
    }))
}

fn link_kind(kind: &LinkKind) -> &'static str {
    match kind {
        LinkKind::Pipe(_) => "pipe",
        LinkKind::Pump(_) => "pump",
        LinkKind::Valve(_) => "valve",
    }
}

/// The GeoJSON FeatureCollection of `network` (see the module documentation).
fn geojson(network: &Network) -> Value {
    let mut features = Vec::with_capacity(network.nodes.len() + network.links.len());
    let mut missing_nodes = 0usize;
    for node in &network.nodes {
        let Some((x, y)) = node.coordinates else {
            missing_nodes += 1;
            continue;
        };
        let (kind, elevation) = match &node.kind {
            NodeKind::Junction(junction) => ("junction", junction.elevation),
            NodeKind::Reservoir(reservoir) => ("reservoir", reservoir.head),
            NodeKind::Tank(tank) => ("tank", tank.elevation),
        };
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"id": node.id, "type": kind, "elevation": elevation},
        }));
    }
    let mut missing_links = 0usize;
    for link in &network.links {
        let ends = (
            network.nodes.get(link.from).and_then(|n| n.coordinates),
            network.nodes.get(link.to).and_then(|n| n.coordinates),
        );
        let (Some(start), Some(end)) = ends else {
            missing_links += 1;
            continue;
        };
        let line: Vec<[f64; 2]> = std::iter::once(start)
            .chain(link.vertices.iter().copied())
            .chain(std::iter::once(end))
            .map(|(x, y)| [x, y])
            .collect();
        let (kind, diameter, length) = match &link.kind {
            LinkKind::Pipe(pipe) => ("pipe", Some(pipe.diameter), Some(pipe.length)),
            LinkKind::Pump(_) => ("pump", None, None),
            LinkKind::Valve(valve) => ("valve", Some(valve.diameter), None),
        };
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": line},
            "properties": {"id": link.id, "type": kind, "diameter": diameter, "length": length},
        }));
    }
    json!({
        "type": "FeatureCollection",
        "features": features,
        "missing_coordinates": missing_nodes,
        "links_without_coordinates": missing_links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_NODES: &str = "[JUNCTIONS]\nJ1 10 1\nJ2 20 1\n[RESERVOIRS]\nR 50\n\
        [PIPES]\nP1 R J1 100 8 100\nP2 J1 J2 200 6 100\n\
        [COORDINATES]\nR 0 0\nJ1 1 0\n[VERTICES]\nP1 0.5 0.5\n[END]\n";

    #[test]
    fn nodes_without_coordinates_and_their_links_are_left_out_and_counted() {
        let network = hydraulics::read_str(TWO_NODES, "two.inp").unwrap();
        let document = geojson(&network);
        let features = document["features"].as_array().unwrap();
        let ids: Vec<&str> = features
            .iter()
            .map(|f| f["properties"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["J1", "R", "P1"]);
        assert_eq!(document["missing_coordinates"], 1);
        assert_eq!(document["links_without_coordinates"], 1);
        let pipe = &features[2];
        assert_eq!(
            pipe["geometry"]["coordinates"],
            json!([[0.0, 0.0], [0.5, 0.5], [1.0, 0.0]])
        );
        assert_eq!(pipe["properties"]["diameter"], 8.0);
        assert_eq!(pipe["properties"]["length"], 100.0);
        assert_eq!(features[1]["properties"]["elevation"], 50.0);
    }

    #[test]
    fn formats_are_named_and_unknown_ones_refused() {
        assert_eq!(Format::parse(None).unwrap(), Format::Inp);
        assert_eq!(Format::parse(Some("geojson")).unwrap(), Format::GeoJson);
        let refused = Format::parse(Some("shp")).unwrap_err();
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.detail.starts_with("format:"), "{}", refused.detail);
    }
}
