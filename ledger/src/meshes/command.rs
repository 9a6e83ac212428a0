//! The commands of the meshes domain.

use serde::{Deserialize, Serialize};
use x0t_types::{MeshId, MeshSettings, Plan};

use super::{Mesh, Meshes};
use crate::Reject;
use crate::domain::{Applied, At};

/// What a client asks of the meshes domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeshCommand {
    /// Creates a mesh; refused if it exists.
    Create {
        /// Its name.
        mesh: MeshId,
        /// Its initial settings.
        settings: MeshSettings,
        /// Its plan.
        plan: Plan,
    },
    /// Replaces a mesh's settings. With `expected_version`, only if the mesh is at exactly
    /// that version (compare-and-set); without, unconditionally.
    UpdateSettings {
        /// Which mesh.
        mesh: MeshId,
        /// The version the client read, for compare-and-set.
        expected_version: Option<u64>,
        /// The new settings.
        settings: MeshSettings,
    },
}

impl MeshCommand {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Create { .. } => "mesh.create",
            Self::UpdateSettings { .. } => "mesh.update_settings",
        }
    }

    /// The audit chain it belongs to: its mesh's.
    pub fn scope(&self) -> Option<MeshId> {
        match self {
            Self::Create { mesh, .. } | Self::UpdateSettings { mesh, .. } => Some(mesh.clone()),
        }
    }
}

impl Meshes {
    /// Applies one of the domain's commands.
    pub(crate) fn apply(&mut self, command: &MeshCommand, at: At) -> Result<Applied, Reject> {
        match command {
            MeshCommand::Create {
                mesh,
                settings,
                plan,
            } => self.create(mesh, settings, *plan, at),
            MeshCommand::UpdateSettings {
                mesh,
                expected_version,
                settings,
            } => self.update_settings(mesh, *expected_version, settings, at),
        }
    }
}

/// What a successful command of this domain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeshOutcome {
    /// A mesh was created at version 1.
    Created {
        /// The new mesh.
        mesh: Mesh,
    },
    /// A mesh's settings were replaced.
    Updated {
        /// The mesh after the change.
        mesh: Mesh,
    },
}

/// Why this domain refused a command (a refused command changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MeshReject {
    /// The mesh already exists.
    #[error("mesh {mesh} already exists")]
    MeshExists {
        /// Its name.
        mesh: MeshId,
    },
    /// No mesh by that name.
    #[error("no mesh named {mesh}")]
    NoSuchMesh {
        /// The name asked for.
        mesh: MeshId,
    },
    /// Compare-and-set failed: the mesh moved on since the client read it.
    #[error("mesh {mesh} is at version {actual}, not {expected}")]
    VersionMismatch {
        /// The mesh.
        mesh: MeshId,
        /// The version the client expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
}
