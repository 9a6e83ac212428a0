//! Identifiers, domain enums and small value types shared by every x0t crate.
//!
//! This crate depends only on `serde` and `thiserror` and builds for `wasm32`, so the browser UI
//! can use the same types as the node. Nothing here does I/O, reads a clock or touches crypto:
//! a [`NodeId`] is computed by `x0t-crypto` and only carried here.

pub mod api;
pub mod base32;
pub mod bytes;
pub mod command;
mod device;
mod error;
mod ids;
mod lifecycle;
mod time;

pub use command::{AnchorNode, AnchorRecord, MeshSettings};
pub use device::{DeviceClass, PqProfile};
pub use error::TypesError;
pub use ids::{MeshId, NodeId, Tag};
pub use lifecycle::{Actor, KeyRole, NodeState, Plan, PublicKeyBytes, TokenProof, TokenUsage};
pub use time::Timestamp;
