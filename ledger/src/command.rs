//! What clients ask the ledger to do: one command type per domain (each in its domain's
//! folder), wrapped in [`Command`], one variant per domain; and how the leader batches them
//! into log entries ([`Proposal`]).
//!
//! The encoding of [`Proposal`] is the Raft log's (storage format 5; format 4's one flat
//! command enum is read by `migrations::format4`). Variants are appended, never reordered.

use serde::{Deserialize, Serialize};
use x0t_types::{MeshId, Timestamp};

pub use crate::acl::{AclCommand, AclOutcome, AclReject};
pub use crate::anchors::{AnchorCommand, AnchorOutcome, AnchorReject};
pub use crate::api_keys::{ApiKeyCommand, ApiKeyOutcome, ApiKeyReject};
pub use crate::meshes::{MeshCommand, MeshOutcome, MeshReject};
pub use crate::nodes::{NodeCommand, NodeOutcome, NodeReject};

/// What a client asks the ledger to do: a command of one domain. **Adding a domain adds
/// one variant here** (appended), its `From`, and its arm in `Ledger::dispatch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Meshes and their settings.
    Meshes(MeshCommand),
    /// Anchors and anchor-join tokens.
    Anchors(AnchorCommand),
    /// API keys.
    ApiKeys(ApiKeyCommand),
    /// Nodes and join tokens.
    Nodes(NodeCommand),
    /// ACL policies.
    Acl(AclCommand),
}

/// Forwards a question to the domain command inside.
macro_rules! each_domain {
    ($command:expr, $inner:ident => $body:expr) => {
        match $command {
            Command::Meshes($inner) => $body,
            Command::Anchors($inner) => $body,
            Command::ApiKeys($inner) => $body,
            Command::Nodes($inner) => $body,
            Command::Acl($inner) => $body,
        }
    };
}

impl Command {
    /// The audit action name, e.g. `node.approve`.
    pub fn action(&self) -> &'static str {
        each_domain!(self, command => command.action())
    }

    /// The audit chain it belongs to: a mesh's, or the cluster's (`None`).
    pub fn scope(&self) -> Option<MeshId> {
        each_domain!(self, command => command.scope())
    }
}

impl From<MeshCommand> for Command {
    fn from(command: MeshCommand) -> Self {
        Self::Meshes(command)
    }
}

impl From<AnchorCommand> for Command {
    fn from(command: AnchorCommand) -> Self {
        Self::Anchors(command)
    }
}

impl From<ApiKeyCommand> for Command {
    fn from(command: ApiKeyCommand) -> Self {
        Self::ApiKeys(command)
    }
}

impl From<NodeCommand> for Command {
    fn from(command: NodeCommand) -> Self {
        Self::Nodes(command)
    }
}

impl From<AclCommand> for Command {
    fn from(command: AclCommand) -> Self {
        Self::Acl(command)
    }
}

/// The payload of one log entry: commands the leader proposed together, stamped with the
/// time it proposed them. Concurrent writes travel and commit as one entry (one disk flush,
/// one replication round) instead of one entry each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The leader's clock when it proposed the batch; the only time `apply` ever sees.
    pub proposed_at: Timestamp,
    /// The commands, applied in this order.
    pub commands: Vec<ProposedCommand>,
}

/// One client command inside a [`Proposal`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedCommand {
    /// The command.
    pub command: Command,
    /// Identifies the client's logical write across retries: a write retried after a leader
    /// change is applied once, and the retry gets the first attempt's result.
    pub request_id: Option<u128>,
    /// Who asked, as the proposing anchor attests: an `x0t_crypto::SignedAuditStatement`
    /// envelope (actor, action, digest of the command, signed by the anchor). Empty for
    /// [`NodeCommand::Register`], whose registration the node signed itself. Recorded in the
    /// mesh's audit chain.
    #[serde(with = "x0t_types::bytes")]
    pub statement: Vec<u8>,
}
