//! The commands of the meshes domain.

use serde::{Deserialize, Serialize};
use x0t_types::{MeshId, MeshSettings, Plan};

use super::Meshes;
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
