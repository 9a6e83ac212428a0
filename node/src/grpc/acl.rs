//! `x0t.v1.AclService`: a mesh's ACL policy.

use tonic::{Request, Response, Status};
use x0t_proto::pb;
use x0t_proto::pb::acl_service_server::{AclService, AclServiceServer};
use x0t_types::api::{ExplainAcl, SetAcl, ValidateAcl};

use super::{GrpcFace, status_of};
use crate::limits::MAX_POLICY_BODY;
use crate::service::ServiceError;

/// The service, ready to be routed (decoded messages bounded like HTTP bodies: the largest is
/// a policy document).
pub(super) fn server(face: GrpcFace) -> AclServiceServer<GrpcFace> {
    AclServiceServer::new(face)
        .max_decoding_message_size(MAX_POLICY_BODY)
        .max_encoding_message_size(super::MAX_ANSWER)
}

#[tonic::async_trait]
impl AclService for GrpcFace {
    async fn get_acl(
        &self,
        request: Request<pb::GetAclRequest>,
    ) -> Result<Response<pb::Acl>, Status> {
        self.viewer(&request)?;
        let body = request.into_inner();
        let acl = self
            .service
            .get_acl(&body.mesh, body.version, false)
            .await
            .map_err(status_of)?;
        Ok(Response::new(acl.into()))
    }

    async fn acl_history(
        &self,
        request: Request<pb::MeshRef>,
    ) -> Result<Response<pb::AclHistoryResponse>, Status> {
        self.viewer(&request)?;
        let versions = self
            .service
            .acl_history(&request.into_inner().mesh, false)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::AclHistoryResponse {
            versions: versions.into_iter().map(Into::into).collect(),
        }))
    }

    async fn set_acl(
        &self,
        request: Request<pb::SetAclRequest>,
    ) -> Result<Response<pb::Acl>, Status> {
        let caller = self.admin(&request)?;
        let body = request.into_inner();
        let acl = self
            .service
            .set_acl(
                &caller,
                &body.mesh,
                SetAcl {
                    document: body.document,
                    expected_version: body.expected_version,
                },
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(acl.into()))
    }

    async fn explain_acl(
        &self,
        request: Request<pb::ExplainAclRequest>,
    ) -> Result<Response<pb::AclDecision>, Status> {
        self.viewer(&request)?;
        let body = request.into_inner();
        let port = u16::try_from(body.port).map_err(|_| {
            status_of(ServiceError::bad_request(format!(
                "port {} is not 0-65535",
                body.port
            )))
        })?;
        let decision = self
            .service
            .explain_acl(
                &body.mesh,
                ExplainAcl {
                    src: body.src,
                    dst: body.dst,
                    port,
                    proto: Some(body.proto).filter(|p| !p.is_empty()),
                    document: body.document,
                },
                false,
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(decision.into()))
    }

    async fn validate_acl(
        &self,
        request: Request<pb::ValidateAclRequest>,
    ) -> Result<Response<pb::AclValidation>, Status> {
        self.viewer(&request)?;
        let checked = self
            .service
            .validate_acl(ValidateAcl {
                document: request.into_inner().document,
            })
            .map_err(status_of)?;
        Ok(Response::new(checked.into()))
    }
}
