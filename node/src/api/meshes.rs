//! Meshes: list, read, create, replace settings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use x0t_types::api::{CreateMesh, MeshView, UpdateSettings};

use super::{Admin, ApiError, Auth, JsonBody, PathParams, QueryParams, ReadOptions, Route, route};
use crate::service::Service;

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "GET",
        "/api/v1/meshes",
        Auth::Public,
        "List meshes.",
        None,
        "MeshView[]",
        || get(list_meshes),
    ),
    route(
        "POST",
        "/api/v1/meshes",
        Auth::Admin,
        "Create a mesh.",
        Some("CreateMesh"),
        "MeshView",
        || post(create_mesh),
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}",
        Auth::Public,
        "One mesh.",
        None,
        "MeshView",
        || get(get_mesh),
    ),
    route(
        "PUT",
        "/api/v1/meshes/{mesh}/settings",
        Auth::Admin,
        "Replace a mesh's settings (compare-and-set with expected_version).",
        Some("UpdateSettings"),
        "MeshView",
        || put(update_settings),
    ),
];

async fn list_meshes(
    State(service): State<Service>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<Vec<MeshView>>, ApiError> {
    Ok(Json(service.list_meshes(options.stale).await?))
}

async fn get_mesh(
    State(service): State<Service>,
    PathParams(mesh): PathParams<String>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<MeshView>, ApiError> {
    Ok(Json(service.get_mesh(&mesh, options.stale).await?))
}

async fn create_mesh(
    State(service): State<Service>,
    Admin(caller): Admin,
    JsonBody(body): JsonBody<CreateMesh>,
) -> Result<(StatusCode, Json<MeshView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(service.create_mesh(&caller, body).await?),
    ))
}

async fn update_settings(
    State(service): State<Service>,
    Admin(caller): Admin,
    PathParams(mesh): PathParams<String>,
    JsonBody(body): JsonBody<UpdateSettings>,
) -> Result<Json<MeshView>, ApiError> {
    Ok(Json(service.update_settings(&caller, &mesh, body).await?))
}
