//! The HTTP/JSON face of the [`Service`] (axum). Errors are typed JSON bodies; every mutating
//! route needs an admin key (`Authorization: Bearer x0tadm_…`) except a node's own signed
//! registration; reads are linearizable unless `?stale=true`.
//!
//! Each domain's routes live in a module of their own ([`Route`]s: the documentation entry,
//! who may call it, and the handler, side by side), registered in [`DOMAINS`]; the router,
//! the OpenAPI document and the authorization tests are all built from that one list, so a
//! route cannot be served undocumented or documented unserved. This module holds what every
//! domain shares: the error body, the extractors whose rejections are typed errors, and the
//! callers' authentication.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Json, Router};
use serde::Deserialize;
pub use x0t_types::api::{
    AclDecision, AclValidation, AclVersionView, AclView, AddAnchor, AnchorView, ApiKeyView,
    ApproveNode, AuditEntryView, AuditExport, AuditVerification, CertificateStatus, ClusterStatus,
    CreateApiKey, CreateJoinToken, CreateMesh, CreateToken, ErrorBody, ErrorDetail, ExplainAcl,
    JoinTokenView, MeshView, NodeStatus, NodeView, Reason, RegisterNode, RotateTokens, SessionView,
    SetAcl, TokenView, UpdateSettings, ValidateAcl, VerifyCertificate,
};

use crate::control::ControlError;
pub use crate::limits::{MAX_BODY, MAX_LIST_LIMIT, MAX_POLICY_BODY};
use crate::service::{Caller, ErrorKind, Service, ServiceError};
pub use crate::service::{MAX_JOIN_TOKEN_TTL_SECS, MIN_JOIN_TOKEN_TTL_SECS};

// The domains' routes, one module each.
mod acl;
mod api_keys;
mod audit;
mod cluster;
mod health;
mod meshes;
mod nodes;
mod system;

pub mod openapi;

/// Every domain's routes, in the order the OpenAPI document lists them (the registration
/// list of this layer: a new domain adds its module above and one line here).
const DOMAINS: &[&[Route]] = &[
    system::ROUTES,
    cluster::ROUTES,
    api_keys::ROUTES,
    meshes::ROUTES,
    nodes::ROUTES,
    acl::ROUTES,
    audit::ROUTES,
    health::ROUTES,
];

/// Every route the router serves, with its documentation.
pub fn routes() -> impl Iterator<Item = &'static RouteDoc> {
    DOMAINS
        .iter()
        .flat_map(|routes| routes.iter().map(|r| &r.doc))
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone.
    Public,
    /// The caller proves who it is with its own signature (a node's registration).
    NodeSigned,
    /// Any API key (viewer or admin).
    Key,
    /// An admin key.
    Admin,
}

/// One route of the API, for the OpenAPI document and the authorization tests.
#[derive(Clone, Copy, Debug)]
pub struct RouteDoc {
    /// HTTP method.
    pub method: &'static str,
    /// Path, with `{mesh}` and `{id}` parameters.
    pub path: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// One line on what it does.
    pub summary: &'static str,
    /// Name of the request body schema, if any.
    pub request: Option<&'static str>,
    /// Name of the success response schema.
    pub response: &'static str,
}

/// One route: its documentation and the handler that serves it.
#[derive(Clone, Copy)]
pub struct Route {
    /// What the OpenAPI document and the authorization tests say of it.
    pub doc: RouteDoc,
    /// The handler for `doc.method` at `doc.path` (its own body limit, if it has one).
    handler: fn() -> MethodRouter<Service>,
}

const fn route(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    summary: &'static str,
    request: Option<&'static str>,
    response: &'static str,
    handler: fn() -> MethodRouter<Service>,
) -> Route {
    Route {
        doc: RouteDoc {
            method,
            path,
            auth,
            summary,
            request,
            response,
        },
        handler,
    }
}

/// A typed API error: an HTTP status plus `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError(ServiceError);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self(ServiceError::bad_request(message))
    }
}

/// The one place service errors become HTTP statuses.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code.to_owned(),
                message: self.0.message,
                line: self.0.position.map(|(line, _)| line),
                column: self.0.position.map(|(_, column)| column),
            },
        };
        (status_of(self.0.kind), Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        Self(error)
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        Self(error.into())
    }
}

/// JSON body extractor whose rejections are our typed errors, not axum's plain text.
struct JsonBody<T>(T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(JsonRejection::BytesRejection(e)) => Err(ApiError(ServiceError::new(
                ErrorKind::TooLarge,
                "body_too_large",
                format!("{} (the limit is {MAX_BODY} bytes)", e.body_text()),
            ))),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Query-string extractor whose rejections are our typed errors.
struct QueryParams<T>(T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Path extractor whose rejections are our typed errors.
struct PathParams<T>(T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

fn authorization(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Proof that the request carries an admin key.
struct Admin(Caller);

impl FromRequestParts<Service> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, service: &Service) -> Result<Self, ApiError> {
        Ok(Self(service.authorize_admin(authorization(parts))?))
    }
}

/// Proof that the request carries some valid API key (viewer or admin).
struct Viewer(Caller);

impl FromRequestParts<Service> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, service: &Service) -> Result<Self, ApiError> {
        Ok(Self(service.authenticate(authorization(parts))?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadOptions {
    #[serde(default)]
    stale: bool,
}

/// A JSON body that may be left out entirely (then it is `T::default()`, as `{}` would be).
struct MaybeJson<T>(T);

impl<S, T> axum::extract::FromRequest<S> for MaybeJson<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            ApiError(ServiceError::new(
                ErrorKind::TooLarge,
                "body_too_large",
                format!("{} (the limit is {MAX_BODY} bytes)", e.body_text()),
            ))
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

fn or_default<T>(body: MaybeJson<T>) -> T {
    body.0
}

async fn not_found() -> ApiError {
    ApiError(ServiceError::new(
        ErrorKind::NotFound,
        "not_found",
        "no such route (see /api/v1/openapi.json)",
    ))
}

async fn count_responses(
    State(service): State<Service>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        200..=399 => 0,
        400..=499 => 1,
        _ => 2,
    };
    service.metrics().http_responses[class].fetch_add(1, Ordering::Relaxed);
    response
}

/// The API router for one node.
pub fn router(service: Service) -> Router {
    let mut router = Router::new();
    for route in DOMAINS.iter().flat_map(|routes| routes.iter()) {
        // Routes sharing a path (GET and PUT …/acl) merge into one method router.
        router = router.route(route.doc.path, (route.handler)());
    }
    router
        // The gRPC face, one service per domain on the same port (HTTP/2 cleartext).
        .merge(crate::grpc::router(service.clone()))
        // The browser console: `/` and `/ui/*`.
        .merge(crate::console::routes())
        .fallback(not_found)
        .with_state(service.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            service,
            count_responses,
        ))
}
