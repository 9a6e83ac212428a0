//! The ACL policy: read (current or a kept version), history, replace, validate, explain.

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use serde::Deserialize;
use x0t_types::api::{
    AclDecision, AclValidation, AclVersionView, AclView, ExplainAcl, SetAcl, ValidateAcl,
};

use super::{
    Admin, ApiError, Auth, JsonBody, MAX_POLICY_BODY, PathParams, QueryParams, ReadOptions, Route,
    Viewer, route,
};
use crate::service::Service;

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "GET",
        "/api/v1/meshes/{mesh}/acl",
        Auth::Key,
        "The mesh's ACL policy document (or ?version=N, one of the last 32), its version and the PQ profile per device class.",
        None,
        "AclView",
        || get(get_acl).layer(DefaultBodyLimit::max(MAX_POLICY_BODY)),
    ),
    route(
        "PUT",
        "/api/v1/meshes/{mesh}/acl",
        Auth::Admin,
        "Replace the ACL policy: validated (errors with line/column), its tests run, committed through Raft, versioned, audited.",
        Some("SetAcl"),
        "AclView",
        || put(set_acl).layer(DefaultBodyLimit::max(MAX_POLICY_BODY)),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/acl/history",
        Auth::Key,
        "The kept versions of the ACL policy (newest first): digest, who, when, sizes.",
        None,
        "AclVersionView[]",
        || get(acl_history),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/acl/validate",
        Auth::Key,
        "Check a policy document as PUT would (syntax, limits, its tests) without saving it.",
        Some("ValidateAcl"),
        "AclValidation",
        || post(validate_acl).layer(DefaultBodyLimit::max(MAX_POLICY_BODY)),
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/acl/explain",
        Auth::Key,
        "Whether SRC may open a flow to DST on a port, which rule decides, and how every rule matched (under the mesh's policy, or a draft `document`).",
        Some("ExplainAcl"),
        "AclDecision",
        || post(explain_acl).layer(DefaultBodyLimit::max(MAX_POLICY_BODY)),
    ),
];

/// Query of `GET …/acl`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclQuery {
    /// An older kept version instead of the current one.
    version: Option<u64>,
    #[serde(default)]
    stale: bool,
}

async fn get_acl(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
    QueryParams(query): QueryParams<AclQuery>,
) -> Result<Json<AclView>, ApiError> {
    Ok(Json(
        service.get_acl(&mesh, query.version, query.stale).await?,
    ))
}

async fn validate_acl(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(_mesh): PathParams<String>,
    JsonBody(body): JsonBody<ValidateAcl>,
) -> Result<Json<AclValidation>, ApiError> {
    Ok(Json(service.validate_acl(body)?))
}

async fn acl_history(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<Vec<AclVersionView>>, ApiError> {
    Ok(Json(service.acl_history(&mesh, options.stale).await?))
}

async fn set_acl(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams(mesh): PathParams<String>,
    JsonBody(body): JsonBody<SetAcl>,
) -> Result<Json<AclView>, ApiError> {
    Ok(Json(service.set_acl(&caller, &mesh, body).await?))
}

async fn explain_acl(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
    QueryParams(options): QueryParams<ReadOptions>,
    JsonBody(body): JsonBody<ExplainAcl>,
) -> Result<Json<AclDecision>, ApiError> {
    Ok(Json(service.explain_acl(&mesh, body, options.stale).await?))
}
