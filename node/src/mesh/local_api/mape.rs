//! The member's MAPE-K routes: its events (server-sent, live, and over gRPC), its SLO
//! figures measured from them, and its topology from the link states.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};

use super::{Api, ApiError, SloStatus, TOKEN_HEADER, Topology, error};
use crate::mesh::LOCAL_API_TOKEN_FILE;

/// `GET /v1/events?after=ID&limit=N`: the member's events after `after` (default 0: all
/// kept), oldest first, at most `limit` (default and maximum 1,024).
pub(super) async fn events(
    State(api): State<Api>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<crate::events::MeshEvent>>, ApiError> {
    api.check(&headers)?;
    let (mut after, mut limit) = (0u64, crate::events::MAX_EVENTS);
    for pair in query.as_deref().unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = |what: &str| {
            value.parse::<u64>().map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("{what} must be a whole number, not {value:?}"),
                )
            })
        };
        match key {
            "after" => after = number("after")?,
            "limit" => {
                limit = usize::try_from(number("limit")?)
                    .unwrap_or(usize::MAX)
                    .min(crate::events::MAX_EVENTS);
            }
            other => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (after, limit)"),
                ));
            }
        }
    }
    Ok(Json(api.member.events_after(after, limit)))
}

/// The member's mesh, or a typed 404 for any other.
pub(super) fn check_mesh(api: &Api, mesh: &str) -> Result<(), ApiError> {
    if mesh == api.member.mesh.as_str() {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "this member belongs to mesh {:?}, not {mesh:?}",
                api.member.mesh.as_str()
            ),
        ))
    }
}

/// `GET /api/v1/meshes/{mesh}/events`: the event log as server-sent events — what is kept
/// after `?after=ID` (or the `Last-Event-ID` a reconnecting client sends), then each new
/// event as it happens. Each SSE event has the event's id, its kind as the SSE event name
/// and the JSON as data.
pub(super) async fn event_stream(
    State(api): State<Api>,
    Path(mesh): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    api.check(&headers)?;
    check_mesh(&api, &mesh)?;
    let mut after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    for pair in query.as_deref().unwrap_or_default().split('&') {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("", _) => {}
            ("after", value) => {
                after = value.parse().map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("after must be a whole number, not {value:?}"),
                    )
                })?;
            }
            (other, _) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (after)"),
                ));
            }
        }
    }
    let stream = futures::StreamExt::filter_map(live_events(&api, after), |event| {
        std::future::ready(crate::events::sse_event(&event).map(Ok))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The member's events kept after `after`, then each new one as it is recorded; ends when
/// the member stops (or the reader goes away).
pub(super) fn live_events(
    api: &Api,
    after: u64,
) -> impl futures::Stream<Item = crate::events::MeshEvent> + use<> {
    let member = api.member.clone();
    let changed = member.subscribe_events();
    crate::events::follow_events(
        move |after| member.events_after(after, 256),
        after,
        changed,
        api.shutdown.clone(),
    )
}

/// The gRPC face of the event stream (`x0t.v1.MeshEvents`), on the same port.
#[derive(Clone)]
pub(super) struct EventsFace {
    pub(super) api: Api,
}

#[tonic::async_trait]
impl x0t_proto::pb::mesh_events_server::MeshEvents for EventsFace {
    type WatchStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<x0t_proto::pb::MeshEvent, tonic::Status>> + Send>,
    >;

    async fn watch(
        &self,
        request: tonic::Request<x0t_proto::pb::WatchEventsRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        let given = request
            .metadata()
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if blake3::hash(given.as_bytes()).as_bytes() != &self.api.token_hash {
            return Err(tonic::Status::unauthenticated(format!(
                "missing or wrong {TOKEN_HEADER} metadata (see {LOCAL_API_TOKEN_FILE})"
            )));
        }
        let body = request.into_inner();
        if body.mesh != self.api.member.mesh.as_str() {
            return Err(tonic::Status::not_found(format!(
                "this member belongs to mesh {:?}, not {:?}",
                self.api.member.mesh.as_str(),
                body.mesh
            )));
        }
        let stream = futures::StreamExt::map(live_events(&self.api, body.after), |event| {
            Ok(crate::events::event_message(event))
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

/// `GET /api/v1/meshes/{mesh}/slo`.
pub(super) async fn slo(
    State(api): State<Api>,
    Path(mesh): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<SloStatus>, ApiError> {
    api.check(&headers)?;
    check_mesh(&api, &mesh)?;
    let mut window = None;
    for pair in query.as_deref().unwrap_or_default().split('&') {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("", _) => {}
            ("window_s", value) => {
                let seconds: u64 = value.parse().map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("window_s must be a whole number of seconds, not {value:?}"),
                    )
                })?;
                window = Some(Duration::from_secs(seconds));
            }
            (other, _) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?} (window_s)"),
                ));
            }
        }
    }
    let (report, onboarding) = api.member.slo(window);
    Ok(Json(SloStatus {
        node_id: api.member.node_id.to_string(),
        report,
        onboarding,
    }))
}

/// `GET /api/v1/meshes/{mesh}/topology`.
pub(super) async fn topology(
    State(api): State<Api>,
    Path(mesh): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Topology>, ApiError> {
    api.check(&headers)?;
    check_mesh(&api, &mesh)?;
    Ok(Json(api.member.topology()))
}
