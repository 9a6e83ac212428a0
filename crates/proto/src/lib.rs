//! The public gRPC API of x0t: the generated `pb` types and tonic service, and conversions
//! between them and the `x0t-types` API types. Wire types stay at this edge: domain crates
//! never derive prost.

/// Generated protobuf types and services (package `x0t.v1`, one `.proto` file and service per
/// domain: `MeshService`, `NodeService`, `AuditService`, `AclService`, `MeshEvents`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("x0t.v1");
}

pub mod codec;
mod convert;

pub use convert::{node_state_from_pb, node_state_to_pb};

/// gRPC metadata key carrying the stable error code of a failed call (server and clients).
pub const ERROR_CODE_KEY: &str = "x0t-error-code";
/// gRPC metadata keys of an invalid document's position (1-based line and column).
pub const ERROR_LINE_KEY: &str = "x0t-error-line";
/// See [`ERROR_LINE_KEY`].
pub const ERROR_COLUMN_KEY: &str = "x0t-error-column";
