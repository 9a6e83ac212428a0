//! The cluster: Raft state, the anchors and their keys, adding and removing anchors, and
//! anchor-join tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};

use super::{Admin, ApiError, Auth, JsonBody, PathParams, QueryParams, ReadOptions, Route, route};
use crate::service::Service;
use x0t_types::api::{AddAnchor, AnchorView, ClusterStatus, CreateJoinToken, JoinTokenView};

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "GET",
        "/api/v1/cluster",
        Auth::Public,
        "Raft state of this node: leader, term, voters, indices.",
        None,
        "ClusterStatus",
        || get(cluster),
    ),
    route(
        "GET",
        "/api/v1/cluster/anchors",
        Auth::Public,
        "Anchors, how to reach them, and their identity keys.",
        None,
        "AnchorView[]",
        || get(anchors),
    ),
    route(
        "POST",
        "/api/v1/cluster/anchors",
        Auth::Admin,
        "Add an anchor to the Raft membership.",
        Some("AddAnchor"),
        "ClusterStatus",
        || post(add_anchor),
    ),
    route(
        "DELETE",
        "/api/v1/cluster/anchors/{raft_id}",
        Auth::Admin,
        "Remove an anchor from the Raft membership (then stop its process).",
        None,
        "ClusterStatus",
        || delete(remove_anchor),
    ),
    route(
        "POST",
        "/api/v1/cluster/join-tokens",
        Auth::Admin,
        "Issue a single-use anchor-join token.",
        Some("CreateJoinToken"),
        "JoinTokenView",
        || post(create_join_token),
    ),
];

async fn cluster(State(service): State<Service>) -> Json<ClusterStatus> {
    Json(service.cluster_status())
}

async fn anchors(
    State(service): State<Service>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<Vec<AnchorView>>, ApiError> {
    Ok(Json(service.anchors(options.stale).await?))
}

async fn create_join_token(
    State(service): State<Service>,
    Admin(caller): Admin,
    JsonBody(body): JsonBody<CreateJoinToken>,
) -> Result<(StatusCode, Json<JoinTokenView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(service.create_anchor_join_token(&caller, body).await?),
    ))
}

async fn add_anchor(
    State(service): State<Service>,
    Admin(caller): Admin,
    JsonBody(body): JsonBody<AddAnchor>,
) -> Result<Json<ClusterStatus>, ApiError> {
    Ok(Json(service.add_anchor(&caller, body).await?))
}

async fn remove_anchor(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams(raft_id): PathParams<u64>,
) -> Result<Json<ClusterStatus>, ApiError> {
    Ok(Json(service.remove_anchor(&caller, raft_id).await?))
}
