//! The service layer's one error type, and the one place ledger refusals and control-plane
//! failures get their kind and stable code. Each face maps a kind to its own status
//! (`api::status_of`, `grpc::status_of`) and nothing else.

use x0t_ledger::{AclReject, Reject};

use crate::control::ControlError;

/// What kind of failure a [`ServiceError`] is; each face maps it to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed or invalid input (HTTP 400, gRPC InvalidArgument).
    BadRequest,
    /// No or unknown credentials (401, Unauthenticated).
    Unauthorized,
    /// Valid credentials that may not do this, or a refused token (403, PermissionDenied).
    Forbidden,
    /// No such mesh, node or route (404, NotFound).
    NotFound,
    /// The state does not allow it (409, FailedPrecondition / AlreadyExists).
    Conflict,
    /// The request is larger than allowed (413, ResourceExhausted).
    TooLarge,
    /// No quorum or leader now (503, Unavailable).
    Unavailable,
    /// Well-formed input the domain refuses, e.g. a policy whose tests fail (422,
    /// FailedPrecondition).
    Unprocessable,
    /// A bug or storage failure (500, Internal).
    Internal,
}

/// A typed error of the service layer: a kind, a stable code and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Stable machine-readable code, e.g. `token_used_up`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Where in the request's document the problem is (1-based line, column), if it is in one.
    pub position: Option<(u32, u32)>,
}

impl ServiceError {
    /// A new error.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            position: None,
        }
    }

    /// Malformed input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, "bad_request", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }
}

/// The one place ledger refusals and control-plane failures get their kind and code.
impl From<ControlError> for ServiceError {
    fn from(error: ControlError) -> Self {
        let message = error.to_string();
        match error {
            ControlError::Rejected(reject) => {
                let (kind, code) = reject_kind(&reject);
                let mut error = Self::new(kind, code, message);
                match reject {
                    Reject::Acl(AclReject::InvalidPolicy { line, column, .. }) if line > 0 => {
                        error.position = Some((line, column));
                    }
                    // A failing test points at its `[[test]]` header.
                    Reject::Acl(AclReject::PolicyTestFailed { line, .. }) if line > 0 => {
                        error.position = Some((line, 1));
                    }
                    _ => {}
                }
                error
            }
            ControlError::NoLeader(_) | ControlError::Network(_) => {
                Self::new(ErrorKind::Unavailable, "unavailable", message)
            }
            ControlError::Membership(_) => Self::new(ErrorKind::Conflict, "membership", message),
            ControlError::Raft(_) | ControlError::Storage(_) => Self::internal(message),
        }
    }
}

impl From<Reject> for ServiceError {
    fn from(reject: Reject) -> Self {
        ControlError::Rejected(reject).into()
    }
}

/// A refusal's kind and stable code: the core's here, each domain's in its own module.
fn reject_kind(reject: &Reject) -> (ErrorKind, &'static str) {
    match reject {
        Reject::BadStatement(_) => (ErrorKind::Internal, "bad_statement"),
        Reject::Invalid(_) => (ErrorKind::BadRequest, "invalid"),
        Reject::Meshes(reject) => super::meshes::reject_kind(reject),
        Reject::Anchors(reject) => super::cluster::reject_kind(reject),
        Reject::ApiKeys(reject) => super::api_keys::reject_kind(reject),
        Reject::Nodes(reject) => super::nodes::reject_kind(reject),
        Reject::Acl(reject) => super::acl::reject_kind(reject),
    }
}
