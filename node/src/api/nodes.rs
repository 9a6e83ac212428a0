//! Nodes: registration, reads and filters, the lifecycle (approve, reject, revoke, re-issue),
//! join tokens, and certificate checks.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use x0t_types::api::{
    ApproveNode, CertificateStatus, CreateToken, NodeStatus, NodeView, Reason, RegisterNode,
    RotateTokens, TokenView, VerifyCertificate,
};
use x0t_types::{DeviceClass, NodeState, Tag};

use super::{
    Admin, ApiError, Auth, JsonBody, MAX_LIST_LIMIT, MaybeJson, PathParams, QueryParams,
    ReadOptions, Route, Viewer, or_default, route,
};
use crate::service::{NodeFilter, Service};

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/register",
        Auth::NodeSigned,
        "A node registers with its signed registration (and optionally a join token).",
        Some("RegisterNode"),
        "NodeStatus",
        || post(register),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/nodes",
        Auth::Key,
        "List nodes; filters state, tag, device_class, q (free text), offset, limit.",
        None,
        "NodeView[]",
        || get(list_nodes),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/nodes/{id}",
        Auth::Key,
        "One node (full id or 16-character short id).",
        None,
        "NodeView",
        || get(get_node),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/nodes/{id}/status",
        Auth::Public,
        "A node's state and, once approved, its certificate (what agents poll).",
        None,
        "NodeStatus",
        || get(node_status),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/approve",
        Auth::Admin,
        "Approve a pending node: an anchor signs its certificate.",
        Some("ApproveNode"),
        "NodeView",
        || post(approve),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/reject",
        Auth::Admin,
        "Reject a pending node.",
        Some("Reason"),
        "NodeView",
        || post(reject),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/revoke",
        Auth::Admin,
        "Revoke a node; its certificate is listed as revoked.",
        Some("Reason"),
        "NodeView",
        || post(revoke),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/reissue-token",
        Auth::Admin,
        "Issue a token that re-admits an approved node under a new key.",
        Some("CreateToken"),
        "TokenView",
        || post(reissue_token),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/tokens",
        Auth::Admin,
        "Issue a join token (single-use or reusable, 1 h to 30 d).",
        Some("CreateToken"),
        "TokenView",
        || post(create_token),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/tokens/rotate",
        Auth::Admin,
        "Invalidate every join token issued so far.",
        None,
        "RotateTokens",
        || post(rotate_tokens),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/certificates/verify",
        Auth::Public,
        "What the ledger says about a certificate (valid, revoked, superseded).",
        Some("VerifyCertificate"),
        "CertificateStatus",
        || post(verify_certificate),
    ),
];

async fn register(
    State(service): State<Service>,
    PathParams(mesh): PathParams<String>,
    JsonBody(body): JsonBody<RegisterNode>,
) -> Result<(StatusCode, Json<NodeStatus>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(service.register(&mesh, body).await?),
    ))
}

/// Query of `GET /api/v1/meshes/{mesh}/nodes`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    device_class: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    stale: bool,
}

async fn list_nodes(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
    QueryParams(query): QueryParams<NodeQuery>,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    let bad = |e: x0t_types::TypesError| ApiError::bad_request(e.to_string());
    let filter = NodeFilter {
        state: query
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse::<NodeState>)
            .transpose()
            .map_err(bad)?,
        tag: query
            .tag
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Tag::new)
            .transpose()
            .map_err(bad)?,
        device_class: query
            .device_class
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::parse::<DeviceClass>)
            .transpose()
            .map_err(bad)?,
        q: query.q.filter(|q| !q.is_empty()),
        offset: query.offset.unwrap_or(0),
        limit: query.limit.unwrap_or(MAX_LIST_LIMIT).min(MAX_LIST_LIMIT),
    };
    Ok(Json(service.list_nodes(&mesh, &filter, query.stale).await?))
}

async fn get_node(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams((mesh, id)): PathParams<(String, String)>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<NodeView>, ApiError> {
    Ok(Json(service.get_node(&mesh, &id, options.stale).await?))
}

async fn node_status(
    State(service): State<Service>,
    PathParams((mesh, id)): PathParams<(String, String)>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<NodeStatus>, ApiError> {
    Ok(Json(service.node_status(&mesh, &id, options.stale).await?))
}

async fn approve(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams((mesh, id)): PathParams<(String, String)>,
    body: MaybeJson<ApproveNode>,
) -> Result<Json<NodeView>, ApiError> {
    Ok(Json(
        service
            .approve(&caller, &mesh, &id, or_default(body))
            .await?,
    ))
}

async fn reject(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams((mesh, id)): PathParams<(String, String)>,
    body: MaybeJson<Reason>,
) -> Result<Json<NodeView>, ApiError> {
    Ok(Json(
        service
            .reject(&caller, &mesh, &id, or_default(body))
            .await?,
    ))
}

async fn revoke(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams((mesh, id)): PathParams<(String, String)>,
    body: MaybeJson<Reason>,
) -> Result<Json<NodeView>, ApiError> {
    Ok(Json(
        service
            .revoke(&caller, &mesh, &id, or_default(body))
            .await?,
    ))
}

async fn reissue_token(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams((mesh, id)): PathParams<(String, String)>,
    body: MaybeJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(
            service
                .reissue_token(&caller, &mesh, &id, or_default(body))
                .await?,
        ),
    ))
}

async fn create_token(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams(mesh): PathParams<String>,
    body: MaybeJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(
            service
                .create_token(&caller, &mesh, or_default(body))
                .await?,
        ),
    ))
}

async fn rotate_tokens(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams(mesh): PathParams<String>,
) -> Result<Json<RotateTokens>, ApiError> {
    Ok(Json(service.rotate_tokens(&caller, &mesh).await?))
}

async fn verify_certificate(
    State(service): State<Service>,
    PathParams(mesh): PathParams<String>,
    QueryParams(options): QueryParams<ReadOptions>,
    JsonBody(body): JsonBody<VerifyCertificate>,
) -> Result<Json<CertificateStatus>, ApiError> {
    Ok(Json(
        service
            .verify_certificate(&mesh, &body.certificate, options.stale)
            .await?,
    ))
}
