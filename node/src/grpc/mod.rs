//! The gRPC face of the [`Service`] (tonic), served on the API port next to the HTTP routes:
//! one service per domain (`x0t.v1.MeshService`, `NodeService`, `AuditService`,
//! `AclService`, `MeshEvents`), each in a module of its own and registered in [`router`]. Each
//! call authenticates from the `authorization` metadata exactly as the HTTP face does, calls
//! the same service method, and maps [`ServiceError`] to a gRPC status (the stable error code
//! rides in the `x0t-error-code` metadata).

use axum::Router;
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tonic::{Code, Request, Status};

use crate::service::{Caller, ErrorKind, Service, ServiceError};

pub use x0t_proto::{ERROR_CODE_KEY, ERROR_COLUMN_KEY, ERROR_LINE_KEY};

// The domains' services, one module each.
mod acl;
mod audit;
mod events;
mod meshes;
mod nodes;

/// Largest answer a service encodes (a full node list of a large mesh).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Every gRPC service of the API, routed by its name (`/x0t.v1.NodeService/*`…) on the API
/// port (HTTP/2 cleartext). The registration list of this layer: a new domain adds its
/// module above and one line here.
pub fn router(service: Service) -> Router<Service> {
    let face = GrpcFace { service };
    let router = route(Router::new(), meshes::server(face.clone()));
    let router = route(router, nodes::server(face.clone()));
    let router = route(router, audit::server(face.clone()));
    let router = route(router, acl::server(face.clone()));
    route(router, events::server(face))
}

/// Routes every method of a gRPC service: `/<package>.<Service>/{*method}`.
fn route<T>(router: Router<Service>, grpc: T) -> Router<Service>
where
    T: NamedService
        + tonic::codegen::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    T::Response: axum::response::IntoResponse + 'static,
    T::Future: Send + 'static,
{
    router.route_service(&format!("/{}/{{*method}}", T::NAME), grpc)
}

/// The one place service errors become gRPC statuses.
pub fn status_of(error: ServiceError) -> Status {
    let code = match error.kind {
        ErrorKind::BadRequest => Code::InvalidArgument,
        ErrorKind::Unauthorized => Code::Unauthenticated,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict if error.code.ends_with("_exists") => Code::AlreadyExists,
        ErrorKind::Conflict => Code::FailedPrecondition,
        ErrorKind::TooLarge => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Unprocessable => Code::FailedPrecondition,
        ErrorKind::Internal => Code::Internal,
    };
    let mut status = Status::new(code, error.message);
    if let Ok(value) = MetadataValue::try_from(error.code) {
        status.metadata_mut().insert(ERROR_CODE_KEY, value);
    }
    if let Some((line, column)) = error.position {
        status.metadata_mut().insert(ERROR_LINE_KEY, line.into());
        status
            .metadata_mut()
            .insert(ERROR_COLUMN_KEY, column.into());
    }
    status
}

fn authorization<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The tonic services over a [`Service`].
#[derive(Clone)]
pub struct GrpcFace {
    service: Service,
}

impl GrpcFace {
    fn admin<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.service
            .authorize_admin(authorization(request))
            .map_err(status_of)
    }

    fn viewer<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.service
            .authenticate(authorization(request))
            .map_err(status_of)
    }
}

fn parse_optional<T: std::str::FromStr<Err = x0t_types::TypesError>>(
    text: &str,
) -> Result<Option<T>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e: x0t_types::TypesError| Status::invalid_argument(e.to_string()))
}
