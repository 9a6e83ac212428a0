//! `x0t.v1.AuditService`: a mesh's audit chain, streamed and verified.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use x0t_proto::pb;
use x0t_proto::pb::audit_service_server::{AuditService, AuditServiceServer};

use super::{GrpcFace, status_of};
use crate::service::ExportFormat;

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::AuditChunk, Status>> + Send>>;

/// The service, ready to be routed.
pub(super) fn server(face: GrpcFace) -> AuditServiceServer<GrpcFace> {
    AuditServiceServer::new(face).max_encoding_message_size(super::MAX_ANSWER)
}

#[tonic::async_trait]
impl AuditService for GrpcFace {
    type ExportAuditStream = ChunkStream;

    async fn export_audit(
        &self,
        request: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<Self::ExportAuditStream>, Status> {
        self.viewer(&request)?;
        let body = request.into_inner();
        let format = match body.format.as_str() {
            "" | "json" => ExportFormat::Json,
            "csv" => ExportFormat::Csv,
            other => {
                return Err(Status::invalid_argument(format!(
                    "format must be json or csv, not {other:?}"
                )));
            }
        };
        let stream = self
            .service
            .export_audit(&body.mesh, format)
            .await
            .map_err(status_of)?
            .map(|chunk| chunk.map(|data| pb::AuditChunk { data }).map_err(status_of));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn verify_audit(
        &self,
        request: Request<pb::MeshRef>,
    ) -> Result<Response<pb::AuditVerification>, Status> {
        self.viewer(&request)?;
        let verdict = self
            .service
            .verify_audit(&request.into_inner().mesh)
            .await
            .map_err(status_of)?;
        Ok(Response::new(verdict.into()))
    }
}
