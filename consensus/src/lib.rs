//! x0t's control plane storage: the openraft type configuration, a sled-backed Raft log (with
//! the vote) and a sled-backed state machine wrapping [`x0t_ledger::Ledger`], with versioned,
//! checksummed snapshots.
//!
//! Storage is reached only through [`KeyValueTree`], a small trait of atomic single-tree
//! batches and an explicit durable flush; [`SledStorage`] is today's implementation.
//!
//! **Architecture Invariant:** openraft is told an appended entry is durable only after the
//! tree holding it has been flushed (fsync) — sled's background flush is not relied upon.
//! **Architecture Invariant:** the state machine writes applied state in checkpoints, each
//! the records changed since the previous one together with the matching `last_applied`, in
//! one atomic batch, so a crash never leaves state and `last_applied` disagreeing; what a
//! checkpoint lacks is still in the (flushed) Raft log and is re-applied on restart.

mod codec;
mod kv;
mod log_store;
pub mod records;
mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use x0t_ledger::Proposal;
use x0t_ledger::{Outcome, Reject};

pub use kv::{
    Batch, KeyValue, KeyValueTree, OLDEST_MIGRATED_FORMAT, STORAGE_FORMAT_VERSION, SledStorage,
    StoreError,
};
pub use log_store::{LOG_TREE_FORMAT, LogStore};
pub use state_machine::{
    PERSIST_AFTER_RECORDS, PERSIST_INTERVAL, SNAPSHOT_FORMAT_VERSION, StateMachineStore,
};

/// Where a Raft member can be reached; stored in openraft's membership config (defined with
/// the API types, which show it).
pub use x0t_types::AnchorNode;

/// What applying one log entry produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// What each command of the entry's [`Proposal`] did, in order: the outcome, or why the
    /// ledger refused it (a refused command changed nothing).
    Commands(Vec<Result<Outcome, Reject>>),
    /// A blank or membership entry: no client command.
    Internal,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of the x0t control plane.
    pub TypeConfig:
        D = Proposal,
        R = Response,
        NodeId = u64,
        Node = AnchorNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of this configuration.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id of this configuration.
pub type LogId = openraft::LogId<u64>;
