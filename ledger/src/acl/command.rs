//! The commands of the ACL domain.

use serde::{Deserialize, Serialize};
use x0t_types::{Actor, MeshId};

use super::{Acls, MeshExists};
use crate::Reject;
use crate::domain::{Applied, At};

/// What a client asks of the ACL domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclCommand {
    /// Replaces a mesh's ACL policy document. `apply` parses and validates it and runs its
    /// policy tests; a document that fails any of that changes nothing.
    Set {
        /// The mesh.
        mesh: MeshId,
        /// The TOML policy document, as the admin wrote it.
        document: String,
        /// Compare-and-set: the policy version the admin edited (0: the default policy).
        expected_version: Option<u64>,
    },
}

impl AclCommand {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Set { .. } => "acl.set",
        }
    }

    /// The audit chain it belongs to: its mesh's.
    pub fn scope(&self) -> Option<MeshId> {
        match self {
            Self::Set { mesh, .. } => Some(mesh.clone()),
        }
    }
}

impl Acls {
    /// Applies one of the domain's commands.
    pub(crate) fn apply(
        &mut self,
        meshes: &dyn MeshExists,
        command: &AclCommand,
        actor: &Actor,
        at: At,
    ) -> Result<Applied, Reject> {
        match command {
            AclCommand::Set {
                mesh,
                document,
                expected_version,
            } => self.set(meshes, mesh, document, *expected_version, actor, at),
        }
    }
}

/// What a successful command of this domain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclOutcome {
    /// A mesh's ACL policy was replaced.
    Set {
        /// Its new version.
        version: u64,
    },
}

/// Why this domain refused a command (a refused command changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AclReject {
    /// Compare-and-set on the ACL policy failed: it changed since the admin read it.
    #[error("the policy of mesh {mesh} is at version {actual}, not {expected}")]
    VersionMismatch {
        /// The mesh.
        mesh: MeshId,
        /// The version the admin expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
    /// The policy document is not a valid policy (line and column 0: no position).
    #[error("invalid policy: {message}")]
    InvalidPolicy {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong, with its position.
        message: String,
    },
    /// A policy test in the document fails.
    #[error("{message}")]
    PolicyTestFailed {
        /// 1-based line of the failing test's `[[test]]` header.
        line: u32,
        /// Which test, what it expected and what it got.
        message: String,
    },
}
