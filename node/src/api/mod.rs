//! The HTTP/JSON face of the [`Service`] (axum). Errors are typed JSON bodies; every mutating
//! route needs an admin key (`Authorization: Bearer x0tadm_…`) except a node's own signed
//! registration; reads are linearizable unless `?stale=true`. [`ROUTES`] lists every route
//! with its authentication: the OpenAPI document and the authorization tests are built from it.

use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
pub use x0t_types::api::{
    AclDecision, AclValidation, AclVersionView, AclView, AddAnchor, AnchorView, ApiKeyView,
    ApproveNode, AuditEntryView, AuditExport, AuditVerification, CertificateStatus, ClusterStatus,
    CreateApiKey, CreateJoinToken, CreateMesh, CreateToken, ErrorBody, ErrorDetail, ExplainAcl,
    JoinTokenView, MeshView, NodeStatus, NodeView, Reason, RegisterNode, RotateTokens, SessionView,
    SetAcl, TokenView, UpdateSettings, ValidateAcl, VerifyCertificate,
};
use x0t_types::{DeviceClass, NodeState, Tag};

use crate::control::ControlError;
pub use crate::limits::{MAX_BODY, MAX_LIST_LIMIT, MAX_POLICY_BODY};

pub mod openapi;
use crate::service::{Caller, ErrorKind, ExportFormat, NodeFilter, Service, ServiceError};
use crate::token::{SecretToken, TokenKind};

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

const fn route(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    summary: &'static str,
    request: Option<&'static str>,
    response: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        auth,
        summary,
        request,
        response,
    }
}

/// Every route the router serves (kept in step with [`router`] by a test).
pub const ROUTES: &[RouteDoc] = &[
    route("GET", "/healthz", Auth::Public, "Liveness.", None, "text"),
    route(
        "GET",
        "/metrics",
        Auth::Public,
        "Prometheus metrics.",
        None,
        "text",
    ),
    route(
        "GET",
        "/api/v1/openapi.json",
        Auth::Public,
        "This API's OpenAPI 3.1 document.",
        None,
        "object",
    ),
    route(
        "GET",
        "/api/v1/cluster",
        Auth::Public,
        "Raft state of this node: leader, term, voters, indices.",
        None,
        "ClusterStatus",
    ),
    route(
        "GET",
        "/api/v1/cluster/anchors",
        Auth::Public,
        "Anchors, how to reach them, and their identity keys.",
        None,
        "AnchorView[]",
    ),
    route(
        "POST",
        "/api/v1/cluster/anchors",
        Auth::Admin,
        "Add an anchor to the Raft membership.",
        Some("AddAnchor"),
        "ClusterStatus",
    ),
    route(
        "DELETE",
        "/api/v1/cluster/anchors/{raft_id}",
        Auth::Admin,
        "Remove an anchor from the Raft membership (then stop its process).",
        None,
        "ClusterStatus",
    ),
    route(
        "POST",
        "/api/v1/cluster/join-tokens",
        Auth::Admin,
        "Issue a single-use anchor-join token.",
        Some("CreateJoinToken"),
        "JoinTokenView",
    ),
    route(
        "POST",
        "/api/v1/api-keys",
        Auth::Admin,
        "Create an API key (admin or viewer); shown once.",
        Some("CreateApiKey"),
        "ApiKeyView",
    ),
    route(
        "GET",
        "/api/v1/meshes",
        Auth::Public,
        "List meshes.",
        None,
        "MeshView[]",
    ),
    route(
        "POST",
        "/api/v1/meshes",
        Auth::Admin,
        "Create a mesh.",
        Some("CreateMesh"),
        "MeshView",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}",
        Auth::Public,
        "One mesh.",
        None,
        "MeshView",
    ),
    route(
        "PUT",
        "/api/v1/meshes/{mesh}/settings",
        Auth::Admin,
        "Replace a mesh's settings (compare-and-set with expected_version).",
        Some("UpdateSettings"),
        "MeshView",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/register",
        Auth::NodeSigned,
        "A node registers with its signed registration (and optionally a join token).",
        Some("RegisterNode"),
        "NodeStatus",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/nodes",
        Auth::Key,
        "List nodes; filters state, tag, device_class, q (free text), offset, limit.",
        None,
        "NodeView[]",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/nodes/{id}",
        Auth::Key,
        "One node (full id or 16-character short id).",
        None,
        "NodeView",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/nodes/{id}/status",
        Auth::Public,
        "A node's state and, once approved, its certificate (what agents poll).",
        None,
        "NodeStatus",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/approve",
        Auth::Admin,
        "Approve a pending node: an anchor signs its certificate.",
        Some("ApproveNode"),
        "NodeView",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/reject",
        Auth::Admin,
        "Reject a pending node.",
        Some("Reason"),
        "NodeView",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/revoke",
        Auth::Admin,
        "Revoke a node; its certificate is listed as revoked.",
        Some("Reason"),
        "NodeView",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/nodes/{id}/reissue-token",
        Auth::Admin,
        "Issue a token that re-admits an approved node under a new key.",
        Some("CreateToken"),
        "TokenView",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/tokens",
        Auth::Admin,
        "Issue a join token (single-use or reusable, 1 h to 30 d).",
        Some("CreateToken"),
        "TokenView",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/tokens/rotate",
        Auth::Admin,
        "Invalidate every join token issued so far.",
        None,
        "RotateTokens",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/acl",
        Auth::Key,
        "The mesh's ACL policy document (or ?version=N, one of the last 32), its version and the PQ profile per device class.",
        None,
        "AclView",
    ),
    route(
        "PUT",
        "/api/v1/meshes/{mesh}/acl",
        Auth::Admin,
        "Replace the ACL policy: validated (errors with line/column), its tests run, committed through Raft, versioned, audited.",
        Some("SetAcl"),
        "AclView",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/acl/history",
        Auth::Key,
        "The kept versions of the ACL policy (newest first): digest, who, when, sizes.",
        None,
        "AclVersionView[]",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/acl/validate",
        Auth::Key,
        "Check a policy document as PUT would (syntax, limits, its tests) without saving it.",
        Some("ValidateAcl"),
        "AclValidation",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/acl/explain",
        Auth::Key,
        "Whether SRC may open a flow to DST on a port, which rule decides, and how every rule matched (under the mesh's policy, or a draft `document`).",
        Some("ExplainAcl"),
        "AclDecision",
    ),
    route(
        "POST",
        "/api/v1/meshes/{mesh}/certificates/verify",
        Auth::Public,
        "What the ledger says about a certificate (valid, revoked, superseded).",
        Some("VerifyCertificate"),
        "CertificateStatus",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/audit-logs/export",
        Auth::Key,
        "Stream the audit chain as format=json or format=csv, with hashes and anchor keys.",
        None,
        "AuditExport",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/audit-logs/verify",
        Auth::Key,
        "Verify the audit chain here, signatures included.",
        None,
        "AuditVerification",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/topology",
        Auth::Key,
        "The mesh's approved nodes and every link their signed link states mention, with health (up, degraded, down, one_sided), as members report them to this anchor.",
        None,
        "Topology",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/slo",
        Auth::Key,
        "The mesh's self-healing figures from what its members report to this anchor: failover (as members measured it), time to repair, onboarding (approval to first report), links by health.",
        None,
        "MeshSlo",
    ),
    route(
        "GET",
        "/api/v1/session",
        Auth::Key,
        "Who the caller is: the API key's id and role (the browser console's sign-in).",
        None,
        "SessionView",
    ),
    route(
        "GET",
        "/api/v1/meshes/{mesh}/events",
        Auth::Key,
        "Server-sent events: members connecting to (peer_verified) and leaving (peer_dropped) this anchor, links they stop (link_down) or start again (link_recovered, with the outage) reporting; ?after=ID or Last-Event-ID resumes.",
        None,
        "text",
    ),
];

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

/// Shortest validity of an anchor-join token.
pub const MIN_JOIN_TOKEN_TTL_SECS: u64 = 3_600;
/// Longest validity of an anchor-join token.
pub const MAX_JOIN_TOKEN_TTL_SECS: u64 = 30 * 24 * 3_600;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn cluster(State(service): State<Service>) -> Json<ClusterStatus> {
    Json(service.control().status())
}

async fn session(Viewer(caller): Viewer) -> Json<SessionView> {
    Json(SessionView {
        key_id: caller.key_id,
        role: caller.role,
        method: "api_key".to_owned(),
    })
}

async fn anchors(
    State(service): State<Service>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<Vec<AnchorView>>, ApiError> {
    Ok(Json(service.anchors(options.stale).await?))
}

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

async fn create_join_token(
    State(service): State<Service>,
    Admin(caller): Admin,
    JsonBody(body): JsonBody<CreateJoinToken>,
) -> Result<(StatusCode, Json<JoinTokenView>), ApiError> {
    let ttl = body.ttl_secs.unwrap_or(MIN_JOIN_TOKEN_TTL_SECS);
    if !(MIN_JOIN_TOKEN_TTL_SECS..=MAX_JOIN_TOKEN_TTL_SECS).contains(&ttl) {
        return Err(ApiError::bad_request(format!(
            "ttl_secs must be between {MIN_JOIN_TOKEN_TTL_SECS} (1 h) and \
             {MAX_JOIN_TOKEN_TTL_SECS} (30 d), not {ttl}"
        )));
    }
    // The secret is drawn here, before anything is proposed; the ledger gets its hash.
    let token = SecretToken::generate(TokenKind::AnchorJoin);
    let expires_at = crate::clock::now().saturating_add(ttl * 1_000);
    service
        .control()
        .write_as(
            x0t_types::Actor::ApiKey {
                key_id: caller.key_id,
            },
            x0t_types::Command::AddAnchorJoinToken {
                token_id: token.id.clone(),
                secret_hash: token.secret_hash(),
                expires_at,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(JoinTokenView {
            token: token.to_text(),
            token_id: token.id.clone(),
            expires_at_ms: expires_at.as_millis(),
        }),
    ))
}

async fn add_anchor(
    State(service): State<Service>,
    _admin: Admin,
    JsonBody(body): JsonBody<AddAnchor>,
) -> Result<Json<ClusterStatus>, ApiError> {
    service
        .control()
        .add_anchor(body.raft_id, body.node)
        .await?;
    Ok(Json(service.control().status()))
}

async fn remove_anchor(
    State(service): State<Service>,
    _admin: Admin,
    PathParams(raft_id): PathParams<u64>,
) -> Result<Json<ClusterStatus>, ApiError> {
    service.control().remove_anchor(raft_id).await?;
    Ok(Json(service.control().status()))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    format: Option<ExportFormat>,
}

async fn export_audit(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
    QueryParams(query): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = query.format.unwrap_or(ExportFormat::Json);
    let stream = service.export_audit(&mesh, format).await?;
    let content_type = match format {
        ExportFormat::Json => "application/json",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    let body = futures::StreamExt::map(stream, |chunk| {
        chunk
            .map(Bytes::from)
            .map_err(|e| std::io::Error::other(e.message))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .map_err(|e| {
            ApiError(ServiceError::new(
                ErrorKind::Internal,
                "internal",
                e.to_string(),
            ))
        })
}

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

async fn verify_audit(
    State(service): State<Service>,
    _viewer: Viewer,
    PathParams(mesh): PathParams<String>,
) -> Result<Json<AuditVerification>, ApiError> {
    Ok(Json(service.verify_audit(&mesh).await?))
}

async fn metrics(State(service): State<Service>) -> Response {
    let status = service.control().status();
    let m = service.metrics();
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    gauge(
        "x0t_raft_term",
        "Current Raft term.",
        "gauge",
        vec![(String::new(), status.term)],
    );
    gauge(
        "x0t_raft_is_leader",
        "1 if this node leads.",
        "gauge",
        vec![(String::new(), u64::from(status.state == "leader"))],
    );
    gauge(
        "x0t_raft_last_applied_index",
        "Last log index applied to the ledger.",
        "gauge",
        vec![(String::new(), status.last_applied_index.unwrap_or(0))],
    );
    gauge(
        "x0t_raft_voters",
        "Voters in the membership.",
        "gauge",
        vec![(String::new(), status.voters.len() as u64)],
    );
    let counts = service.control().read(|l| {
        l.meshes()
            .map(|mesh| (mesh.id.to_string(), l.node_counts(&mesh.id)))
            .collect::<Vec<_>>()
    });
    let mut samples = Vec::new();
    for (mesh, c) in &counts {
        for (state, n) in [
            ("pending_approval", c.pending),
            ("approved", c.approved),
            ("rejected", c.rejected),
            ("revoked", c.revoked),
        ] {
            samples.push((format!("{{mesh=\"{mesh}\",state=\"{state}\"}}"), n as u64));
        }
    }
    gauge("x0t_nodes", "Nodes by mesh and state.", "gauge", samples);
    let counter =
        |v: &std::sync::atomic::AtomicU64| vec![(String::new(), v.load(Ordering::Relaxed))];
    gauge(
        "x0t_registrations_total",
        "Registrations accepted by this node.",
        "counter",
        counter(&m.registrations),
    );
    gauge(
        "x0t_approvals_total",
        "Approvals made through this node.",
        "counter",
        counter(&m.approvals),
    );
    gauge(
        "x0t_revocations_total",
        "Revocations made through this node.",
        "counter",
        counter(&m.revocations),
    );
    gauge(
        "x0t_join_tokens_issued_total",
        "Join tokens issued by this node.",
        "counter",
        counter(&m.tokens_issued),
    );
    gauge(
        "x0t_auth_failures_total",
        "Requests refused for missing, bad or insufficient credentials.",
        "counter",
        counter(&m.auth_failures),
    );
    gauge(
        "x0t_http_responses_total",
        "HTTP responses by status class.",
        "counter",
        ["2xx", "4xx", "5xx"]
            .iter()
            .zip(&m.http_responses)
            .map(|(class, v)| (format!("{{class=\"{class}\"}}"), v.load(Ordering::Relaxed)))
            .collect(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi::document())
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
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/cluster/anchors", get(anchors).post(add_anchor))
        .route("/api/v1/cluster/anchors/{raft_id}", delete(remove_anchor))
        .route("/api/v1/cluster/join-tokens", post(create_join_token))
        .route("/api/v1/api-keys", post(create_api_key))
        .route("/api/v1/session", get(session))
        .route("/api/v1/meshes", get(list_meshes).post(create_mesh))
        .route("/api/v1/meshes/{mesh}", get(get_mesh))
        .route("/api/v1/meshes/{mesh}/settings", put(update_settings))
        .route("/api/v1/meshes/{mesh}/nodes/register", post(register))
        .route("/api/v1/meshes/{mesh}/nodes", get(list_nodes))
        .route("/api/v1/meshes/{mesh}/nodes/{id}", get(get_node))
        .route("/api/v1/meshes/{mesh}/nodes/{id}/status", get(node_status))
        .route("/api/v1/meshes/{mesh}/nodes/{id}/approve", post(approve))
        .route("/api/v1/meshes/{mesh}/nodes/{id}/reject", post(reject))
        .route("/api/v1/meshes/{mesh}/nodes/{id}/revoke", post(revoke))
        .route(
            "/api/v1/meshes/{mesh}/nodes/{id}/reissue-token",
            post(reissue_token),
        )
        .route("/api/v1/meshes/{mesh}/tokens", post(create_token))
        .route("/api/v1/meshes/{mesh}/tokens/rotate", post(rotate_tokens))
        .route(
            "/api/v1/meshes/{mesh}/acl",
            get(get_acl)
                .put(set_acl)
                // A policy document may be up to 1 MiB (escaped in JSON).
                .layer(DefaultBodyLimit::max(MAX_POLICY_BODY)),
        )
        .route(
            "/api/v1/meshes/{mesh}/acl/explain",
            post(explain_acl).layer(DefaultBodyLimit::max(MAX_POLICY_BODY)),
        )
        .route(
            "/api/v1/meshes/{mesh}/acl/validate",
            post(validate_acl).layer(DefaultBodyLimit::max(MAX_POLICY_BODY)),
        )
        .route("/api/v1/meshes/{mesh}/acl/history", get(acl_history))
        .route(
            "/api/v1/meshes/{mesh}/certificates/verify",
            post(verify_certificate),
        )
        .route("/api/v1/meshes/{mesh}/audit-logs/export", get(export_audit))
        .route("/api/v1/meshes/{mesh}/audit-logs/verify", get(verify_audit))
        .route("/api/v1/meshes/{mesh}/topology", get(mesh_topology))
        .route("/api/v1/meshes/{mesh}/events", get(mesh_events))
        .route("/api/v1/meshes/{mesh}/slo", get(mesh_slo))
        // The gRPC face: `/x0t.v1.MeshAdmin/*` and `/x0t.v1.MeshEvents/*` on the same port
        // (HTTP/2 cleartext).
        .route_service(
            "/x0t.v1.MeshAdmin/{*method}",
            crate::grpc::server(service.clone()),
        )
        .route_service(
            "/x0t.v1.MeshEvents/{*method}",
            crate::grpc::events_server(service.clone()),
        )
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
