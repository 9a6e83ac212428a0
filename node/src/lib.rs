//! The x0t node: everything the `x0t` binary does, as a library.
//!
//! Today it owns the node's identity on disk ([`identity`]) and the crypto benchmark
//! ([`bench`]). The swarm, control plane and API arrive with later issues behind
//! `node::run(config, shutdown)`, so tests and the testnet start nodes through the same code.

pub mod bench;
pub mod identity;
pub mod p2p;
mod raft_network;

/// Everything that can go wrong in `x0t-node`'s library code. HTTP/gRPC status mapping will
/// live next to the API, in this crate, and nowhere else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A cryptographic operation or key file failed.
    #[error(transparent)]
    Crypto(#[from] x0t_crypto::CryptoError),
    /// A benchmark was asked to do something impossible.
    #[error("invalid benchmark settings: {0}")]
    Bench(String),
}
