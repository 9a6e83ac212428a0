//! A mesh's health as its members report it to this anchor: topology, SLO figures, and the
//! live event stream (server-sent events).

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;

use super::{ApiError, Auth, PathParams, QueryParams, Route, Viewer, route};
use crate::service::Service;

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "GET",
        "/api/v1/meshes/{mesh}/topology",
        Auth::Key,
        "The mesh's approved nodes and every link their signed link states mention, with health (up, degraded, down, one_sided), as members report them to this anchor.",
        None,
        "Topology",
        || get(mesh_topology),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/slo",
        Auth::Key,
        "The mesh's self-healing figures from what its members report to this anchor: failover (as members measured it), time to repair, onboarding (approval to first report), links by health.",
        None,
        "MeshSlo",
        || get(mesh_slo),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/events",
        Auth::Key,
        "Server-sent events: members connecting to (peer_verified) and leaving (peer_dropped) this anchor, links they stop (link_down) or start again (link_recovered, with the outage) reporting; ?after=ID or Last-Event-ID resumes.",
        None,
        "text",
        || get(mesh_events),
    ),
];

/// `?after=` of the event stream.
#[derive(Debug, Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

async fn mesh_topology(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
) -> Result<Json<x0t_types::api::Topology>, ApiError> {
    Ok(Json(service.mesh_topology(&mesh)?))
}

async fn mesh_slo(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
) -> Result<Json<x0t_types::api::MeshSlo>, ApiError> {
    Ok(Json(service.mesh_slo(&mesh)?))
}

/// `GET /api/v1/meshes/{mesh}/events`: the link events this anchor saw (members stopping or
/// starting to report a link), as server-sent events: what is kept after `?after=` (or
/// `Last-Event-ID`), then each new one.
async fn mesh_events(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
    QueryParams(query): QueryParams<EventsQuery>,
    headers: axum::http::HeaderMap,
) -> Result<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
        + use<>,
    >,
    ApiError,
> {
    use axum::response::sse::{KeepAlive, Sse};
    let after = query.after.unwrap_or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    });
    let events = service.follow_mesh_events(&mesh, after)?;
    let stream = futures::StreamExt::filter_map(events, |event| {
        std::future::ready(crate::events::sse_event(&event).map(Ok))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
