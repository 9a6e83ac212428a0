//! The gRPC face of the [`Service`] (tonic, `x0t.v1.MeshAdmin`), served on the API port next
//! to the HTTP routes. Each call authenticates from the `authorization` metadata exactly as
//! the HTTP face does, calls the same service method, and maps [`ServiceError`] to a gRPC
//! status (the stable error code rides in the `x0t-error-code` metadata).

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};
use x0t_proto::pb;
use x0t_proto::pb::mesh_admin_server::{MeshAdmin, MeshAdminServer};
use x0t_types::api::{
    ApproveNode, CreateMesh, CreateToken, ExplainAcl, Reason, RegisterNode, SetAcl, ValidateAcl,
};
use x0t_types::{DeviceClass, NodeState, Tag};

use crate::limits::MAX_POLICY_BODY;
use crate::service::{Caller, ErrorKind, ExportFormat, NodeFilter, Service, ServiceError};

pub use x0t_proto::{ERROR_CODE_KEY, ERROR_COLUMN_KEY, ERROR_LINE_KEY};

/// The one place service errors become gRPC statuses.
pub fn status_of(error: ServiceError) -> Status {
    let code = match error.kind {
        ErrorKind::BadRequest => Code::InvalidArgument,
        ErrorKind::Unauthorized => Code::Unauthenticated,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Conflict if error.code.ends_with("_exists") => Code::AlreadyExists,
        ErrorKind::Conflict => Code::FailedPrecondition,
        ErrorKind::TooLarge => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Unprocessable => Code::FailedPrecondition,
        ErrorKind::Internal => Code::Internal,
    };
    let mut status = Status::new(code, error.message);
    if let Ok(value) = MetadataValue::try_from(error.code) {
        status.metadata_mut().insert(ERROR_CODE_KEY, value);
    }
    if let Some((line, column)) = error.position {
        status.metadata_mut().insert(ERROR_LINE_KEY, line.into());
        status
            .metadata_mut()
            .insert(ERROR_COLUMN_KEY, column.into());
    }
    status
}

fn authorization<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The tonic service over a [`Service`].
#[derive(Clone)]
pub struct GrpcFace {
    service: Service,
}

/// The gRPC service, ready to be routed (decoded messages bounded like HTTP bodies).
pub fn server(service: Service) -> MeshAdminServer<GrpcFace> {
    MeshAdminServer::new(GrpcFace { service })
        // The largest message is a policy document (SetAcl); every other request is bounded
        // again by the service layer's own checks.
        .max_decoding_message_size(MAX_POLICY_BODY)
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// The event stream on a node's API port (`x0t.v1.MeshEvents`): the link changes this node
/// sees in its members' link states, as `GET /api/v1/meshes/{mesh}/events` streams them.
pub fn events_server(service: Service) -> pb::mesh_events_server::MeshEventsServer<GrpcFace> {
    pb::mesh_events_server::MeshEventsServer::new(GrpcFace { service })
}

#[tonic::async_trait]
impl pb::mesh_events_server::MeshEvents for GrpcFace {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::MeshEvent, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.viewer(&request)?;
        let body = request.into_inner();
        let events = self
            .service
            .follow_mesh_events(&body.mesh, body.after)
            .map_err(status_of)?;
        Ok(Response::new(Box::pin(
            events.map(|e| Ok(crate::events::event_message(e))),
        )))
    }
}

impl GrpcFace {
    /// Rejects (`revoke = false`) or revokes the node a request names.
    async fn turn_away(
        &self,
        request: Request<pb::NodeReasonRequest>,
        revoke: bool,
    ) -> Result<Response<pb::Node>, Status> {
        let caller = self.admin(&request)?;
        let body = request.into_inner();
        let reason = Reason {
            reason: body.reason,
        };
        let node = if revoke {
            self.service
                .revoke(&caller, &body.mesh, &body.id, reason)
                .await
        } else {
            self.service
                .reject(&caller, &body.mesh, &body.id, reason)
                .await
        }
        .map_err(status_of)?;
        Ok(Response::new(node.into()))
    }

    fn admin<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.service
            .authorize_admin(authorization(request))
            .map_err(status_of)
    }

    fn viewer<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.service
            .authenticate(authorization(request))
            .map_err(status_of)
    }
}

fn parse_optional<T: std::str::FromStr<Err = x0t_types::TypesError>>(
    text: &str,
) -> Result<Option<T>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e: x0t_types::TypesError| Status::invalid_argument(e.to_string()))
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::AuditChunk, Status>> + Send>>;

#[tonic::async_trait]
impl MeshAdmin for GrpcFace {
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

    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        let body = request.into_inner();
        let status = self
            .service
            .register(
                &body.mesh,
                RegisterNode {
                    registration: body.registration,
                    token: body.token,
                },
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(status.into()))
    }

    async fn get_node_status(
        &self,
        request: Request<pb::NodeRef>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        let body = request.into_inner();
        let status = self
            .service
            .node_status(&body.mesh, &body.id, false)
            .await
            .map_err(status_of)?;
        Ok(Response::new(status.into()))
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        self.viewer(&request)?;
        let body = request.into_inner();
        let filter = NodeFilter {
            state: parse_optional::<NodeState>(&body.state)?,
            tag: if body.tag.is_empty() {
                None
            } else {
                Some(Tag::new(body.tag).map_err(|e| Status::invalid_argument(e.to_string()))?)
            },
            device_class: parse_optional::<DeviceClass>(&body.device_class)?,
            q: Some(body.q).filter(|q| !q.is_empty()),
            offset: usize::try_from(body.offset).unwrap_or(usize::MAX),
            limit: match body.limit {
                0 => crate::limits::MAX_LIST_LIMIT,
                n => usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(crate::limits::MAX_LIST_LIMIT),
            },
        };
        let nodes = self
            .service
            .list_nodes(&body.mesh, &filter, false)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::ListNodesResponse {
            nodes: nodes.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_node(&self, request: Request<pb::NodeRef>) -> Result<Response<pb::Node>, Status> {
        self.viewer(&request)?;
        let body = request.into_inner();
        let node = self
            .service
            .get_node(&body.mesh, &body.id, false)
            .await
            .map_err(status_of)?;
        Ok(Response::new(node.into()))
    }

    async fn approve_node(
        &self,
        request: Request<pb::ApproveNodeRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        let caller = self.admin(&request)?;
        let body = request.into_inner();
        let node = self
            .service
            .approve(
                &caller,
                &body.mesh,
                &body.id,
                ApproveNode {
                    tags: body.tags.map(|t| t.tags),
                },
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(node.into()))
    }

    async fn reject_node(
        &self,
        request: Request<pb::NodeReasonRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        self.turn_away(request, false).await
    }

    async fn revoke_node(
        &self,
        request: Request<pb::NodeReasonRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        self.turn_away(request, true).await
    }

    async fn reissue_token(
        &self,
        request: Request<pb::ReissueTokenRequest>,
    ) -> Result<Response<pb::Token>, Status> {
        let caller = self.admin(&request)?;
        let body = request.into_inner();
        let token = self
            .service
            .reissue_token(
                &caller,
                &body.mesh,
                &body.id,
                CreateToken {
                    ttl_secs: Some(body.ttl_secs).filter(|&t| t != 0),
                    ..CreateToken::default()
                },
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(token.into()))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::Token>, Status> {
        let caller = self.admin(&request)?;
        let body = request.into_inner();
        let token = self
            .service
            .create_token(
                &caller,
                &body.mesh,
                CreateToken {
                    ttl_secs: Some(body.ttl_secs).filter(|&t| t != 0),
                    reusable: body.reusable,
                    uses: body.uses,
                    pre_approved: body.pre_approved,
                    tags: body.tags,
                },
            )
            .await
            .map_err(status_of)?;
        Ok(Response::new(token.into()))
    }

    async fn rotate_tokens(
        &self,
        request: Request<pb::MeshRef>,
    ) -> Result<Response<pb::RotateTokensResponse>, Status> {
        let caller = self.admin(&request)?;
        let rotated = self
            .service
            .rotate_tokens(&caller, &request.into_inner().mesh)
            .await
            .map_err(status_of)?;
        Ok(Response::new(rotated.into()))
    }

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
