//! The replicated domain state machine of x0t.
//!
//! [`Ledger::apply`] takes a [`ProposedCommand`] and the
//! [`ApplyMeta`] the log gives it (index and the leader's timestamp) and either changes the
//! state and returns an [`Outcome`], or changes nothing and returns a [`Reject`].
//!
//! The ledger is a core over domains, one folder each:
//! - the core (`ledger.rs`, `core/`): dispatch, request de-duplication (`core::requests`),
//!   authorization of the actor and the audit chains (`core::audit`), change tracking;
//! - `meshes/`, `anchors/`, `api_keys/`, `nodes/` (nodes and join tokens), `acl/`: each with
//!   its command type (`command.rs`: the commands, their audit action and chain, and the
//!   domain's `apply`), its records, its part of the state, the functions that apply its
//!   commands, its queries and its tests; [`Command`] has one variant per domain. A domain's state implements `domain::Domain`, from which the core
//!   persists it; what it needs from another domain comes through a small trait it declares.
//!
//! Storage sees only (domain, key, value) bytes ([`StoredRecord`]); `migrations` reads what
//! earlier releases stored.
//!
//! **Architecture Invariant:** this crate does no I/O, never reads a clock, draws no
//! randomness and does not know about Raft or sled. The same commands with the same metadata
//! give the same state on every replica. Persistence happens in `x0t-consensus`, which asks the
//! ledger which records a batch changed ([`Ledger::take_changes`]) and writes exactly those.

mod acl;
mod anchors;
mod api_keys;
mod command;
mod core;
mod domain;
mod ledger;
mod meshes;
pub mod migrations;
mod nodes;
mod outcome;
mod stored;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use acl::{AclRecord, MAX_ACL_VERSIONS, policy_reject};
pub use anchors::{AnchorJoinToken, MAX_ANCHOR_JOIN_TOKENS};
pub use api_keys::ApiKey;
pub use command::{
    AclCommand, AclOutcome, AclReject, AnchorCommand, AnchorOutcome, AnchorReject, ApiKeyCommand,
    ApiKeyOutcome, ApiKeyReject, Command, MeshCommand, MeshOutcome, MeshReject, NodeCommand,
    NodeOutcome, NodeReject, Proposal, ProposedCommand,
};
pub use core::audit::{AuditRecord, ChainHead, command_bytes, command_digest, command_scope};
pub use core::requests::{MAX_REMEMBERED_REQUESTS, REQUEST_MEMORY_MS, RequestGroup, RequestRecord};
pub use ledger::{DOMAINS, Ledger};
pub use meshes::Mesh;
pub use nodes::{
    CERTIFICATE_SKEW_MS, JoinTokenRecord, MAX_JOIN_TOKENS_PER_MESH, MAX_NODES_PER_MESH,
    MAX_PENDING_PER_MESH, MAX_REASON_LEN, NodeCounts, NodeRecord, TOKEN_TTL_RANGE_MS, hex_id,
    overlay_ip_for,
};
pub use outcome::{Outcome, Reject};
pub use stored::{LoadError, MAX_RECORD_LEN, StoredChange, StoredRecord};

use x0t_types::Timestamp;

/// Where a command sits in the log, and when the leader proposed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyMeta {
    /// Log index of the entry carrying the command.
    pub index: u64,
    /// The command's position within its entry (an entry carries a batch of commands).
    pub position: u32,
    /// The leader's timestamp from the proposal.
    pub timestamp: Timestamp,
}
