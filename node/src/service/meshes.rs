//! Meshes: list, read, create, and replace a mesh's settings (compare-and-set).

use super::ErrorKind;
use x0t_ledger::Reject;
use x0t_ledger::{Command, MeshCommand};
use x0t_ledger::{MeshOutcome, MeshReject, Outcome};
use x0t_types::MeshSettings;
use x0t_types::api::{CreateMesh, MeshView, UpdateSettings};

use super::{Caller, Service, ServiceError, mesh_id};

/// A mesh as the API shows it.
pub fn mesh_view(mesh: &x0t_ledger::Mesh) -> MeshView {
    MeshView {
        name: mesh.id.to_string(),
        description: mesh.settings.description.clone(),
        version: mesh.version,
        plan: mesh.plan,
        token_epoch: mesh.token_epoch,
        created_at_ms: mesh.created_at.as_millis(),
        updated_at_ms: mesh.updated_at.as_millis(),
        updated_index: mesh.updated_index,
    }
}

impl Service {
    /// Every mesh.
    pub async fn list_meshes(&self, stale: bool) -> Result<Vec<MeshView>, ServiceError> {
        self.barrier(stale).await?;
        Ok(self.control.read(|l| l.meshes().map(mesh_view).collect()))
    }

    /// One mesh.
    pub async fn get_mesh(&self, mesh: &str, stale: bool) -> Result<MeshView, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.barrier(stale).await?;
        self.control
            .read(|l| l.mesh(&mesh).map(mesh_view))
            .ok_or_else(|| Reject::Meshes(MeshReject::NoSuchMesh { mesh }).into())
    }

    /// Creates a mesh.
    pub async fn create_mesh(
        &self,
        caller: &Caller,
        body: CreateMesh,
    ) -> Result<MeshView, ServiceError> {
        let command = Command::Meshes(MeshCommand::Create {
            mesh: mesh_id(&body.name)?,
            settings: MeshSettings {
                description: body.description,
            },
            plan: body.plan.unwrap_or_default(),
        });
        match self.control.write_as(caller.actor(), command).await? {
            (_, Outcome::Meshes(MeshOutcome::Created { mesh })) => Ok(mesh_view(&mesh)),
            (_, other) => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// Replaces a mesh's settings (compare-and-set with `expected_version`).
    pub async fn update_settings(
        &self,
        caller: &Caller,
        mesh: &str,
        body: UpdateSettings,
    ) -> Result<MeshView, ServiceError> {
        let command = Command::Meshes(MeshCommand::UpdateSettings {
            mesh: mesh_id(mesh)?,
            expected_version: body.expected_version,
            settings: MeshSettings {
                description: body.description,
            },
        });
        match self.control.write_as(caller.actor(), command).await? {
            (_, Outcome::Meshes(MeshOutcome::Updated { mesh })) => Ok(mesh_view(&mesh)),
            (_, other) => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }
}

/// The kind and stable code of each refusal of the meshes domain.
pub(super) fn reject_kind(reject: &MeshReject) -> (ErrorKind, &'static str) {
    match reject {
        MeshReject::MeshExists { .. } => (ErrorKind::Conflict, "mesh_exists"),
        MeshReject::NoSuchMesh { .. } => (ErrorKind::NotFound, "no_such_mesh"),
        MeshReject::VersionMismatch { .. } => (ErrorKind::Conflict, "version_mismatch"),
    }
}
