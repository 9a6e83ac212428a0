//! `x0t.v1.NodeService`: registration, reads, the lifecycle, join tokens.

use tonic::{Request, Response, Status};
use x0t_proto::pb;
use x0t_proto::pb::node_service_server::{NodeService, NodeServiceServer};
use x0t_types::api::{ApproveNode, CreateToken, Reason, RegisterNode};
use x0t_types::{DeviceClass, NodeState, Tag};

use super::{GrpcFace, parse_optional, status_of};
use crate::service::NodeFilter;

/// The service, ready to be routed.
pub(super) fn server(face: GrpcFace) -> NodeServiceServer<GrpcFace> {
    NodeServiceServer::new(face).max_encoding_message_size(super::MAX_ANSWER)
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
}

#[tonic::async_trait]
impl NodeService for GrpcFace {
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
}
