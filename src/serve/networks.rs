//! `GET /api/v1/municipalities/{m}/network?format=inp|geojson`: a municipality's network as
//! configured, for viewers and tools (any reader of the municipality; another municipality is
//! 404 like one that does not exist).
//!
//! - `inp` (the default): EPANET `.inp` text from the hydraulics writer; it reads back to an
//!   equal network.
//! - `geojson`: a FeatureCollection in the file's own x/y (no projection is assumed): nodes as
//!   Points (`id`, `type`, `elevation`: a reservoir's is its head), links as LineStrings from
//!   the start node through their vertices to the end node (`id`, `type`, `diameter`,
//!   `length`; none for a pump). Nodes without coordinates are left out and counted in
//!   `missing_coordinates`; links that touch one are left out and counted in
//!   `links_without_coordinates`.

use std::sync::Arc;

use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use hydraulics::model::{LinkKind, NodeKind};
use hydraulics::Network;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{AppState, READERS};

/// The network routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(network))
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
    let Query(query) = query
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", e.body_text()))?;
    let format = Format::parse(query.format.as_deref())?;
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
    let content_type = match format {
        Format::Inp => "text/plain; charset=utf-8",
        Format::GeoJson => "application/geo+json",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
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
