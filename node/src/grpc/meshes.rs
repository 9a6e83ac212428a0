//! `x0t.v1.MeshService`: meshes.

use tonic::{Request, Response, Status};
use x0t_proto::pb;
use x0t_proto::pb::mesh_service_server::{MeshService, MeshServiceServer};
use x0t_types::api::CreateMesh;

use super::{GrpcFace, parse_optional, status_of};

/// The service, ready to be routed.
pub(super) fn server(face: GrpcFace) -> MeshServiceServer<GrpcFace> {
    MeshServiceServer::new(face).max_encoding_message_size(super::MAX_ANSWER)
}

#[tonic::async_trait]
impl MeshService for GrpcFace {
    async fn create_mesh(
        &self,
        request: Request<pb::CreateMeshRequest>,
    ) -> Result<Response<pb::Mesh>, Status> {
        let caller = self.admin(&request)?;
        let body = request.into_inner();
        let plan = parse_optional(&body.plan)?;
        let mesh = self
            .service
            .create_mesh(
                &caller,
                CreateMesh {
                    name: body.name,
                    description: body.description,
                    plan,
                },
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(mesh.into()))
    }
}
