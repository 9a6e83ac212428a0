//! A gRPC client for the admin API (`x0t.v1.NodeService`, `AuditService`, `AclService` over
//! one connection): what the admin CLI talks to any node with. Answers come back as the same
//! `x0t-types` API types the HTTP client returns.

use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use x0t_proto::pb;
use x0t_proto::pb::acl_service_client::AclServiceClient;
use x0t_proto::pb::audit_service_client::AuditServiceClient;
use x0t_proto::pb::node_service_client::NodeServiceClient;
use x0t_types::api::{
    AclDecision, AclVersionView, AclView, AuditVerification, ExplainAcl, NodeStatus, NodeView,
    RotateTokens, SetAcl, TokenView,
};

use crate::ClientError;
use x0t_proto::ERROR_CODE_KEY;

/// Largest answer accepted (a node list of a large mesh, an audit export chunk).
const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// Talks gRPC to one node's API port (one HTTP/2 connection shared by the domains' services).
#[derive(Clone, Debug)]
pub struct AdminClient {
    nodes: NodeServiceClient<Channel>,
    audit: AuditServiceClient<Channel>,
    acl: AclServiceClient<Channel>,
    key: Option<String>,
    url: String,
}

/// The HTTP status a gRPC code corresponds to, so both clients report errors alike.
fn http_status(code: Code) -> u16 {
    match code {
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => 409,
        Code::ResourceExhausted => 413,
        Code::Unavailable | Code::DeadlineExceeded => 503,
        _ => 500,
    }
}

fn error(status: Status) -> ClientError {
    let code = status
        .metadata()
        .get(ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("grpc")
        .to_owned();
    ClientError::Api {
        status: http_status(status.code()),
        message: format!("{} ({code})", status.message()),
    }
}

fn bad_answer(e: String) -> ClientError {
    ClientError::Client(format!("bad answer: {e}"))
}

impl AdminClient {
    /// Connects to `url` (the node's API URL, e.g. `http://127.0.0.1:7410`).
    pub async fn connect(url: &str, key: Option<String>) -> Result<Self, ClientError> {
        let channel = Channel::from_shared(url.to_owned())
            .map_err(|e| ClientError::Client(format!("{url}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .connect()
            .await
            .map_err(|e| ClientError::Client(format!("{url}: {e}")))?;
        Ok(Self {
            nodes: NodeServiceClient::new(channel.clone()).max_decoding_message_size(MAX_ANSWER),
            audit: AuditServiceClient::new(channel.clone()).max_decoding_message_size(MAX_ANSWER),
            acl: AclServiceClient::new(channel).max_decoding_message_size(MAX_ANSWER),
            key: key.map(|k| k.trim().to_owned()),
            url: url.to_owned(),
        })
    }

    /// The URL it talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, ClientError> {
        let mut request = Request::new(message);
        if let Some(key) = &self.key {
            let value = format!("Bearer {key}")
                .parse()
                .map_err(|_| ClientError::Client("the API key is not valid metadata".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    /// Lists nodes.
    pub async fn list_nodes(
        &self,
        request: pb::ListNodesRequest,
    ) -> Result<Vec<NodeView>, ClientError> {
        let answer = self
            .nodes
            .clone()
            .list_nodes(self.request(request)?)
            .await
            .map_err(error)?;
        answer
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| NodeView::try_from(n).map_err(bad_answer))
            .collect()
    }

    /// One node.
    pub async fn node(&self, mesh: &str, id: &str) -> Result<NodeView, ClientError> {
        let request = pb::NodeRef {
            mesh: mesh.to_owned(),
            id: id.to_owned(),
        };
        let node = self
            .nodes
            .clone()
            .get_node(self.request(request)?)
            .await
            .map_err(error)?;
        NodeView::try_from(node.into_inner()).map_err(bad_answer)
    }

    /// A node's state and certificate.
    pub async fn node_status(&self, mesh: &str, id: &str) -> Result<NodeStatus, ClientError> {
        let request = pb::NodeRef {
            mesh: mesh.to_owned(),
            id: id.to_owned(),
        };
        let status = self
            .nodes
            .clone()
            .get_node_status(self.request(request)?)
            .await
            .map_err(error)?;
        NodeStatus::try_from(status.into_inner()).map_err(bad_answer)
    }

    /// Approves a node (optionally granting `tags`).
    pub async fn approve(
        &self,
        mesh: &str,
        id: &str,
        tags: Option<Vec<String>>,
    ) -> Result<NodeView, ClientError> {
        let request = pb::ApproveNodeRequest {
            mesh: mesh.to_owned(),
            id: id.to_owned(),
            tags: tags.map(|tags| pb::TagList { tags }),
        };
        let node = self
            .nodes
            .clone()
            .approve_node(self.request(request)?)
            .await
            .map_err(error)?;
        NodeView::try_from(node.into_inner()).map_err(bad_answer)
    }

    /// Rejects (`revoke = false`) or revokes a node.
    pub async fn reject_or_revoke(
        &self,
        mesh: &str,
        id: &str,
        revoke: bool,
        reason: String,
    ) -> Result<NodeView, ClientError> {
        let request = self.request(pb::NodeReasonRequest {
            mesh: mesh.to_owned(),
            id: id.to_owned(),
            reason,
        })?;
        let mut nodes = self.nodes.clone();
        let node = if revoke {
            nodes.revoke_node(request).await
        } else {
            nodes.reject_node(request).await
        }
        .map_err(error)?;
        NodeView::try_from(node.into_inner()).map_err(bad_answer)
    }

    /// Re-issues a node's token.
    pub async fn reissue_token(
        &self,
        mesh: &str,
        id: &str,
        ttl_secs: u64,
    ) -> Result<TokenView, ClientError> {
        let request = pb::ReissueTokenRequest {
            mesh: mesh.to_owned(),
            id: id.to_owned(),
            ttl_secs,
        };
        let token = self
            .nodes
            .clone()
            .reissue_token(self.request(request)?)
            .await
            .map_err(error)?;
        Ok(token.into_inner().into())
    }

    /// Issues a join token.
    pub async fn create_token(
        &self,
        request: pb::CreateTokenRequest,
    ) -> Result<TokenView, ClientError> {
        let token = self
            .nodes
            .clone()
            .create_token(self.request(request)?)
            .await
            .map_err(error)?;
        Ok(token.into_inner().into())
    }

    /// Rotates a mesh's join tokens.
    pub async fn rotate_tokens(&self, mesh: &str) -> Result<RotateTokens, ClientError> {
        let request = pb::MeshRef {
            mesh: mesh.to_owned(),
        };
        let rotated = self
            .nodes
            .clone()
            .rotate_tokens(self.request(request)?)
            .await
            .map_err(error)?;
        Ok(rotated.into_inner().into())
    }

    /// The audit export (`json` or `csv`), streamed and collected.
    pub async fn export_audit(&self, mesh: &str, format: &str) -> Result<Vec<u8>, ClientError> {
        let request = pb::ExportAuditRequest {
            mesh: mesh.to_owned(),
            format: format.to_owned(),
        };
        let mut stream = self
            .audit
            .clone()
            .export_audit(self.request(request)?)
            .await
            .map_err(error)?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(error)? {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(bytes)
    }

    /// Asks the node to verify its audit chain.
    pub async fn verify_audit(&self, mesh: &str) -> Result<AuditVerification, ClientError> {
        let request = pb::MeshRef {
            mesh: mesh.to_owned(),
        };
        let verdict = self
            .audit
            .clone()
            .verify_audit(self.request(request)?)
            .await
            .map_err(error)?;
        Ok(verdict.into_inner().into())
    }

    /// The mesh's ACL policy: the current one, or a kept older `version`.
    pub async fn acl(&self, mesh: &str, version: Option<u64>) -> Result<AclView, ClientError> {
        let request = pb::GetAclRequest {
            mesh: mesh.to_owned(),
            version,
        };
        let acl = self
            .acl
            .clone()
            .get_acl(self.request(request)?)
            .await
            .map_err(error)?;
        acl.into_inner().try_into().map_err(bad_answer)
    }

    /// The kept versions of the mesh's ACL policy, newest first.
    pub async fn acl_history(&self, mesh: &str) -> Result<Vec<AclVersionView>, ClientError> {
        let request = pb::MeshRef {
            mesh: mesh.to_owned(),
        };
        let history = self
            .acl
            .clone()
            .acl_history(self.request(request)?)
            .await
            .map_err(error)?;
        Ok(history
            .into_inner()
            .versions
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Replaces the mesh's ACL policy.
    pub async fn set_acl(&self, mesh: &str, body: SetAcl) -> Result<AclView, ClientError> {
        let request = pb::SetAclRequest {
            mesh: mesh.to_owned(),
            document: body.document,
            expected_version: body.expected_version,
        };
        let acl = self
            .acl
            .clone()
            .set_acl(self.request(request)?)
            .await
            .map_err(error)?;
        acl.into_inner().try_into().map_err(bad_answer)
    }

    /// Checks a policy document without saving it: how many rules and tests it has.
    pub async fn validate_acl(
        &self,
        mesh: &str,
        document: String,
    ) -> Result<(u32, u32), ClientError> {
        let request = pb::ValidateAclRequest {
            mesh: mesh.to_owned(),
            document,
        };
        let checked = self
            .acl
            .clone()
            .validate_acl(self.request(request)?)
            .await
            .map_err(error)?
            .into_inner();
        Ok((checked.rules, checked.tests))
    }

    /// Explains a flow under the mesh's ACL policy.
    pub async fn explain_acl(
        &self,
        mesh: &str,
        body: ExplainAcl,
    ) -> Result<AclDecision, ClientError> {
        let request = pb::ExplainAclRequest {
            mesh: mesh.to_owned(),
            src: body.src,
            dst: body.dst,
            port: u32::from(body.port),
            proto: body.proto.unwrap_or_default(),
            document: body.document,
        };
        let decision = self
            .acl
            .clone()
            .explain_acl(self.request(request)?)
            .await
            .map_err(error)?;
        decision.into_inner().try_into().map_err(bad_answer)
    }
}
