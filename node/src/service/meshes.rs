//! Meshes: list, read, create, and replace a mesh's settings (compare-and-set).

use x0t_ledger::Reject;
use x0t_types::api::{CreateMesh, MeshView, UpdateSettings};
use x0t_types::{Command, MeshSettings};

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
            .ok_or_else(|| Reject::NoSuchMesh { mesh }.into())
    }

    /// Creates a mesh.
    pub async fn create_mesh(
        &self,
        caller: &Caller,
        body: CreateMesh,
    ) -> Result<MeshView, ServiceError> {
        let command = Command::CreateMesh {
            mesh: mesh_id(&body.name)?,
            settings: MeshSettings {
                description: body.description,
            },
            plan: body.plan.unwrap_or_default(),
        };
        match self.control.write_as(caller.actor(), command).await? {
            (_, x0t_ledger::Outcome::MeshCreated { mesh }) => Ok(mesh_view(&mesh)),
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
        let command = Command::UpdateMeshSettings {
            mesh: mesh_id(mesh)?,
            expected_version: body.expected_version,
            settings: MeshSettings {
                description: body.description,
            },
        };
        match self.control.write_as(caller.actor(), command).await? {
            (_, x0t_ledger::Outcome::MeshUpdated { mesh }) => Ok(mesh_view(&mesh)),
            (_, other) => Err(ServiceError::internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tonic::Code;
    use x0t_types::api::{CreateMesh, UpdateSettings};

    use crate::service::ErrorKind;
    use crate::service::testkit::{MESH, anchor, assert_error};

    #[tokio::test]
    async fn meshes_are_created_read_and_updated_by_compare_and_set() {
        let a = anchor().await;
        let s = &a.service;
        let create = |name: &str| CreateMesh {
            name: name.to_owned(),
            description: "line 3".to_owned(),
            plan: None,
        };
        let mesh = s.create_mesh(&a.admin, create("factory")).await.unwrap();
        assert_eq!((mesh.name.as_str(), mesh.version), ("factory", 1));
        let names: Vec<String> = s
            .list_meshes(false)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, vec![MESH.to_owned(), "factory".to_owned()]);

        let error = s
            .create_mesh(&a.admin, create("factory"))
            .await
            .unwrap_err();
        assert_error(
            &error,
            ErrorKind::Conflict,
            "mesh_exists",
            409,
            Code::AlreadyExists,
        );
        let error = s
            .create_mesh(&a.admin, create("Bad Name"))
            .await
            .unwrap_err();
        assert_error(
            &error,
            ErrorKind::BadRequest,
            "bad_request",
            400,
            Code::InvalidArgument,
        );

        let update = |version| UpdateSettings {
            description: "line 4".to_owned(),
            expected_version: Some(version),
        };
        let updated = s
            .update_settings(&a.admin, "factory", update(1))
            .await
            .unwrap();
        assert_eq!(
            (updated.description.as_str(), updated.version),
            ("line 4", 2)
        );
        let error = s
            .update_settings(&a.admin, "factory", update(1))
            .await
            .unwrap_err();
        assert_error(
            &error,
            ErrorKind::Conflict,
            "version_mismatch",
            409,
            Code::FailedPrecondition,
        );
        let error = s.get_mesh("nowhere", true).await.unwrap_err();
        assert_error(
            &error,
            ErrorKind::NotFound,
            "no_such_mesh",
            404,
            Code::NotFound,
        );
        assert_eq!(s.get_mesh("factory", true).await.unwrap().version, 2);
        a.stop().await;
    }
}
