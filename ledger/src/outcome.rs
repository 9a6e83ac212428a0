//! What applying a command answers: an [`Outcome`] when it changed the state, a [`Reject`]
//! (with nothing changed) when it did not. Each domain declares its own outcomes and
//! refusals next to its commands (`<domain>/command.rs`); these wrap them, one variant per
//! domain, plus the refusals of the core (an actor's statement, a malformed command).

use serde::{Deserialize, Serialize};

use crate::command::{
    AclOutcome, AclReject, AnchorOutcome, AnchorReject, ApiKeyOutcome, ApiKeyReject, MeshOutcome,
    MeshReject, NodeOutcome, NodeReject,
};

/// What a successful command did: its domain's outcome. **Adding a domain adds one
/// variant here** (appended: remembered results are stored in this encoding) and its `From`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Meshes.
    Meshes(MeshOutcome),
    /// Anchors.
    Anchors(AnchorOutcome),
    /// API keys.
    ApiKeys(ApiKeyOutcome),
    /// Nodes and join tokens.
    Nodes(NodeOutcome),
    /// ACL policies.
    Acl(AclOutcome),
}

/// Why a command was refused (it changed nothing): the core's reasons, or its domain's.
/// **Adding a domain adds one variant here** (appended) and its `From`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Reject {
    /// The anchor's statement of who asked is missing, malformed or for another command.
    #[error("audit statement refused: {0}")]
    BadStatement(String),
    /// The command is malformed.
    #[error("invalid command: {0}")]
    Invalid(String),
    /// Refused by the meshes domain.
    #[error(transparent)]
    Meshes(MeshReject),
    /// Refused by the anchors domain.
    #[error(transparent)]
    Anchors(AnchorReject),
    /// Refused by the API keys domain.
    #[error(transparent)]
    ApiKeys(ApiKeyReject),
    /// Refused by the nodes domain.
    #[error(transparent)]
    Nodes(NodeReject),
    /// Refused by the ACL domain.
    #[error(transparent)]
    Acl(AclReject),
}

/// `From` the domain's outcome and refusal into the wrapping enums.
macro_rules! wrap {
    ($($variant:ident: $outcome:ty, $reject:ty;)+) => {$(
        impl From<$outcome> for Outcome {
            fn from(outcome: $outcome) -> Self {
                Self::$variant(outcome)
            }
        }

        impl From<$reject> for Reject {
            fn from(reject: $reject) -> Self {
                Self::$variant(reject)
            }
        }
    )+};
}

wrap! {
    Meshes: MeshOutcome, MeshReject;
    Anchors: AnchorOutcome, AnchorReject;
    ApiKeys: ApiKeyOutcome, ApiKeyReject;
    Nodes: NodeOutcome, NodeReject;
    Acl: AclOutcome, AclReject;
}
