//! API keys: create one (admin), and who the caller's key is (the console's sign-in).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use x0t_types::api::{ApiKeyView, CreateApiKey, SessionView};

use super::{Admin, ApiError, Auth, JsonBody, Route, Viewer, route};
use crate::service::Service;

/// This domain's routes.
pub(super) const ROUTES: &[Route] = &[
    route(
        "POST",
        "/api/v1/api-keys",
        Auth::Admin,
        "Create an API key (admin or viewer); shown once.",
        Some("CreateApiKey"),
        "ApiKeyView",
        || post(create_api_key),
    ),
    route(
        "GET",
        "/api/v1/session",
        Auth::Key,
        "Who the caller is: the API key's id and role (the browser console's sign-in).",
        None,
        "SessionView",
        || get(session),
    ),
];

async fn session(Viewer(caller): Viewer) -> Json<SessionView> {
    Json(SessionView {
        key_id: caller.key_id,
        role: caller.role,
        method: "api_key".to_owned(),
    })
}

async fn create_api_key(
    State(service): State<Service>,
    Admin(caller): Admin,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<ApiKeyView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(service.create_api_key(&caller, body).await?),
    ))
}
