//! The x0t node: everything the `x0t` binary does, as a library.
//!
//! [`run()`] starts a node from its data directory: identity ([`identity`]), libp2p swarm
//! ([`p2p`]), control plane on openraft ([`control`]), HTTP API ([`api`]). Tests and the
//! testnet start nodes through the same function, in-process or as `x0t up` processes.

pub mod agent;
pub mod anchor_mesh;
pub mod api;
pub mod audit_file;
pub mod bench;
mod clock;
pub mod console;
pub mod control;
pub mod enrollment;
pub mod events;
pub mod grpc;
pub mod hex;
pub mod identity;
mod limits;
pub mod mesh;
pub use x0t_p2p as p2p;
mod raft_network;
pub mod run;
pub mod service;
pub mod testnet;
pub use x0t_crypto::bearer as token;

pub use api::openapi;
pub use run::{NodeConfig, NodeInfo, run};

/// Everything that can go wrong in `x0t-node`'s library code. HTTP/gRPC status mapping will
/// live next to the API, in this crate, and nowhere else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A cryptographic operation or key file failed.
    #[error(transparent)]
    Crypto(#[from] x0t_crypto::CryptoError),
    /// The control plane failed.
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// The network layer failed.
    #[error(transparent)]
    P2p(#[from] p2p::P2pError),
    /// Bad configuration or local state (ports, files).
    #[error("{0}")]
    Config(String),
    /// An API call could not be made.
    #[error("API request failed: {0}")]
    Client(String),
    /// An API call was answered with an error.
    #[error("API error {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// A benchmark was asked to do something impossible.
    #[error("invalid benchmark settings: {0}")]
    Bench(String),
}

impl From<x0t_client::ClientError> for NodeError {
    /// The client's errors are the node's `Client` and `Api` errors, field for field, so code
    /// matching on an answer's status sees the same values whichever way the call was made.
    fn from(error: x0t_client::ClientError) -> Self {
        match error {
            x0t_client::ClientError::Client(message) => Self::Client(message),
            x0t_client::ClientError::Api { status, message } => Self::Api { status, message },
        }
    }
}
