//! The HTTP/JSON API (axum). Errors are typed JSON bodies; every mutating route needs an
//! admin key (`Authorization: Bearer x0tadm_…`); reads are linearizable unless `?stale=true`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use x0t_consensus::AnchorNode;
use x0t_ledger::{Mesh, Outcome, Reject};
use x0t_types::{Command, MeshId, MeshSettings, Timestamp};

use crate::control::{ClusterStatus, ControlError, ControlPlane};
use crate::token::{SecretToken, TokenKind};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// A typed API error: HTTP status plus `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `version_mismatch`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The one place control-plane errors become HTTP statuses.
impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let message = error.to_string();
        match error {
            ControlError::Rejected(reject) => {
                let (status, code) = match reject {
                    Reject::MeshExists { .. } => (StatusCode::CONFLICT, "mesh_exists"),
                    Reject::NoSuchMesh { .. } => (StatusCode::NOT_FOUND, "no_such_mesh"),
                    Reject::VersionMismatch { .. } => (StatusCode::CONFLICT, "version_mismatch"),
                    Reject::NoSuchAnchor { .. } => (StatusCode::NOT_FOUND, "no_such_anchor"),
                    Reject::AdminKeyExists { .. } => (StatusCode::CONFLICT, "admin_key_exists"),
                    Reject::InvalidToken => (StatusCode::FORBIDDEN, "invalid_token"),
                    Reject::TokenExpired { .. } => (StatusCode::FORBIDDEN, "token_expired"),
                    Reject::TooManyTokens => (StatusCode::CONFLICT, "too_many_tokens"),
                    Reject::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
                };
                Self::new(status, code, message)
            }
            ControlError::NoLeader(_) | ControlError::Network(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            ControlError::Raft(_) | ControlError::Storage(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
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

/// Proof that the request carries a valid admin key.
struct Admin;

impl FromRequestParts<ControlPlane> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        control: &ControlPlane,
    ) -> Result<Self, ApiError> {
        let unauthorized =
            |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                unauthorized("this route needs an admin key: Authorization: Bearer x0tadm_…")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .and_then(|text| SecretToken::parse(TokenKind::Admin, text))
            .ok_or_else(|| unauthorized("malformed admin key"))?;
        let valid = control.read(|ledger| {
            ledger
                .admin_key(&token.id)
                .is_some_and(|key| token.matches(&key.secret_hash))
        });
        if valid {
            Ok(Admin)
        } else {
            Err(unauthorized("unknown or wrong admin key"))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReadOptions {
    #[serde(default)]
    stale: bool,
}

async fn read_barrier(control: &ControlPlane, options: &ReadOptions) -> Result<(), ApiError> {
    if !options.stale {
        control.read_barrier().await?;
    }
    Ok(())
}

/// Request body of `POST /api/v1/meshes`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateMesh {
    /// The mesh name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
}

/// Request body of `PUT /api/v1/meshes/{mesh}/settings`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpdateSettings {
    /// The new description.
    pub description: String,
    /// Compare-and-set: apply only if the mesh is at this version.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Request body of `POST /api/v1/cluster/anchors`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddAnchor {
    /// Raft id of the new anchor.
    pub raft_id: u64,
    /// How to reach it.
    pub node: AnchorNode,
}

/// Shortest validity of an anchor-join token.
pub const MIN_JOIN_TOKEN_TTL_SECS: u64 = 3_600;
/// Longest validity of an anchor-join token.
pub const MAX_JOIN_TOKEN_TTL_SECS: u64 = 30 * 24 * 3_600;

/// Request body of `POST /api/v1/cluster/join-tokens`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    /// Validity in seconds, 1 h to 30 d [default: 1 h].
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Answer of `POST /api/v1/cluster/join-tokens`: the token is shown this once; the cluster
/// keeps only its hash.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinTokenView {
    /// The token text (`x0tanc_…`), for `x0t up --join … --token …` on the new anchor.
    pub token: String,
    /// Its public id.
    pub token_id: String,
    /// When it stops being valid, ms since the epoch.
    pub expires_at_ms: u64,
}

/// A mesh as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct MeshView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Compare-and-set version.
    pub version: u64,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_at_ms: u64,
    /// Log index of the last change.
    pub updated_index: u64,
}

impl From<&Mesh> for MeshView {
    fn from(mesh: &Mesh) -> Self {
        Self {
            name: mesh.id.to_string(),
            description: mesh.settings.description.clone(),
            version: mesh.version,
            created_at_ms: mesh.created_at.as_millis(),
            updated_at_ms: mesh.updated_at.as_millis(),
            updated_index: mesh.updated_index,
        }
    }
}

fn mesh_id(text: &str) -> Result<MeshId, ApiError> {
    MeshId::new(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn cluster(State(control): State<ControlPlane>) -> Json<ClusterStatus> {
    Json(control.status())
}

async fn list_meshes(
    State(control): State<ControlPlane>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<Vec<MeshView>>, ApiError> {
    read_barrier(&control, &options).await?;
    Ok(Json(
        control.read(|l| l.meshes().map(MeshView::from).collect()),
    ))
}

async fn get_mesh(
    State(control): State<ControlPlane>,
    Path(mesh): Path<String>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Result<Json<MeshView>, ApiError> {
    let mesh = mesh_id(&mesh)?;
    read_barrier(&control, &options).await?;
    control
        .read(|l| l.mesh(&mesh).map(MeshView::from))
        .map(Json)
        .ok_or_else(|| ControlError::Rejected(Reject::NoSuchMesh { mesh }).into())
}

fn mesh_outcome(outcome: Outcome) -> Result<Json<MeshView>, ApiError> {
    match outcome {
        Outcome::MeshCreated { mesh } | Outcome::MeshUpdated { mesh } => {
            Ok(Json(MeshView::from(&mesh)))
        }
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("unexpected outcome {other:?}"),
        )),
    }
}

async fn create_mesh(
    State(control): State<ControlPlane>,
    _admin: Admin,
    JsonBody(body): JsonBody<CreateMesh>,
) -> Result<(StatusCode, Json<MeshView>), ApiError> {
    let command = Command::CreateMesh {
        mesh: mesh_id(&body.name)?,
        settings: MeshSettings {
            description: body.description,
        },
    };
    let (_, outcome) = control.write(command).await?;
    Ok((StatusCode::CREATED, mesh_outcome(outcome)?))
}

async fn update_settings(
    State(control): State<ControlPlane>,
    _admin: Admin,
    Path(mesh): Path<String>,
    JsonBody(body): JsonBody<UpdateSettings>,
) -> Result<Json<MeshView>, ApiError> {
    let command = Command::UpdateMeshSettings {
        mesh: mesh_id(&mesh)?,
        expected_version: body.expected_version,
        settings: MeshSettings {
            description: body.description,
        },
    };
    let (_, outcome) = control.write(command).await?;
    mesh_outcome(outcome)
}

async fn create_join_token(
    State(control): State<ControlPlane>,
    _admin: Admin,
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
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let expires_at = Timestamp(now_ms.saturating_add(ttl * 1_000));
    control
        .write(Command::AddAnchorJoinToken {
            token_id: token.id.clone(),
            secret_hash: token.secret_hash(),
            expires_at,
        })
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
    State(control): State<ControlPlane>,
    _admin: Admin,
    JsonBody(body): JsonBody<AddAnchor>,
) -> Result<Json<ClusterStatus>, ApiError> {
    control.add_anchor(body.raft_id, body.node).await?;
    Ok(Json(control.status()))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The API router for one node.
pub fn router(control: ControlPlane) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/cluster/anchors", post(add_anchor))
        .route("/api/v1/cluster/join-tokens", post(create_join_token))
        .route("/api/v1/meshes", get(list_meshes).post(create_mesh))
        .route("/api/v1/meshes/{mesh}", get(get_mesh))
        .route("/api/v1/meshes/{mesh}/settings", put(update_settings))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(control)
}
