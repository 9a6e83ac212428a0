//! The service layer, one module per domain, each over one in-process anchor (a real openraft
//! control plane on sled in a temporary directory, a swarm listening nowhere: no socket is
//! opened). Each checks what its operations answer and how every refusal reaches each face:
//! its kind, stable code, HTTP status and gRPC code. A new domain adds its module here.
#![allow(clippy::unwrap_used, unreachable_pub)] // tests: a panic is the failure report

#[path = "../common/mod.rs"]
mod common;
mod testkit;

mod acl;
mod api_keys;
mod audit;
mod cluster;
mod health;
mod meshes;
mod nodes;
