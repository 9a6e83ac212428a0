//! The typed client of the x0t public API: [`ApiClient`] speaks HTTP/JSON, [`AdminClient`]
//! gRPC (`x0t.v1`, one service per domain); both answer the same `x0t-types` API types and
//! report errors alike ([`ClientError`]: the HTTP status a gRPC code corresponds to, the
//! server's message with its stable code).
//!
//! It depends on the API's types and wire definitions only — no server, storage or network
//! stack of the node — so the CLI, `testnet`, and next the Terraform provider, the C API and
//! the Python bridge can use it.

mod grpc;
mod http;

pub use grpc::AdminClient;
pub use http::ApiClient;

/// Why an API call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The call could not be made, or its answer not read.
    #[error("API request failed: {0}")]
    Client(String),
    /// The server answered with an error.
    #[error("API error {status}: {message}")]
    Api {
        /// HTTP status (for gRPC, the status its code corresponds to).
        status: u16,
        /// The server's explanation, with its stable error code.
        message: String,
    },
}

impl ClientError {
    /// The HTTP status of an error answer (`None`: no answer came).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Client(_) => None,
        }
    }
}
