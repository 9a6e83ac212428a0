//! The HTTP/JSON client of the node API.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ClientError;
use x0t_types::api::ClusterStatus;
use x0t_types::api::{
    AddAnchor, AnchorView, ApiKeyView, ApproveNode, AuditVerification, CertificateStatus,
    CreateApiKey, CreateJoinToken, CreateMesh, CreateToken, ErrorBody, JoinTokenView, MeshView,
    NodeStatus, NodeView, Reason, RegisterNode, RotateTokens, TokenView, UpdateSettings,
    VerifyCertificate,
};

/// Talks to one node's API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    admin_key: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:7410`), optionally with an admin key.
    pub fn new(base: &str, admin_key: Option<String>) -> Result<Self, ClientError> {
        Self::with_timeout(base, admin_key, std::time::Duration::from_secs(30))
    }

    /// [`ApiClient::new`] whose requests give up after `timeout` (connecting included).
    pub fn with_timeout(
        base: &str,
        admin_key: Option<String>,
        timeout: std::time::Duration,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ClientError::Client(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            admin_key,
            http,
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let request = match &self.admin_key {
            Some(key) => request.bearer_auth(key.trim()),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Client(format!("{}: {e}", self.base)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Client(e.to_string()))?;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Client(format!("bad answer: {e}")))
        } else {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| format!("{} ({})", b.error.message, b.error.code))
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            Err(ClientError::Api {
                status: status.as_u16(),
                message,
            })
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /api/v1/cluster`.
    pub async fn cluster(&self) -> Result<ClusterStatus, ClientError> {
        self.send(self.http.get(self.url("/api/v1/cluster"))).await
    }

    /// `DELETE /api/v1/cluster/anchors/{raft_id}`.
    pub async fn remove_anchor(&self, raft_id: u64) -> Result<ClusterStatus, ClientError> {
        self.send(
            self.http
                .delete(self.url(&format!("/api/v1/cluster/anchors/{raft_id}"))),
        )
        .await
    }

    /// `POST /api/v1/cluster/anchors`.
    pub async fn add_anchor(&self, body: &AddAnchor) -> Result<ClusterStatus, ClientError> {
        self.post("/api/v1/cluster/anchors", body).await
    }

    /// `POST /api/v1/cluster/join-tokens`.
    pub async fn create_join_token(
        &self,
        body: &CreateJoinToken,
    ) -> Result<JoinTokenView, ClientError> {
        self.post("/api/v1/cluster/join-tokens", body).await
    }

    /// `POST /api/v1/meshes`.
    pub async fn create_mesh(&self, body: &CreateMesh) -> Result<MeshView, ClientError> {
        self.post("/api/v1/meshes", body).await
    }

    /// `GET /api/v1/meshes/{mesh}` (linearizable unless `stale`).
    pub async fn mesh(&self, mesh: &str, stale: bool) -> Result<MeshView, ClientError> {
        self.send(
            self.http
                .get(self.url(&format!("/api/v1/meshes/{mesh}")))
                .query(&[("stale", stale)]),
        )
        .await
    }

    /// `PUT /api/v1/meshes/{mesh}/settings`.
    pub async fn update_settings(
        &self,
        mesh: &str,
        body: &UpdateSettings,
    ) -> Result<MeshView, ClientError> {
        self.send(
            self.http
                .put(self.url(&format!("/api/v1/meshes/{mesh}/settings")))
                .json(body),
        )
        .await
    }

    /// `GET /api/v1/meshes/{mesh}/acl`.
    pub async fn acl(&self, mesh: &str) -> Result<x0t_types::api::AclView, ClientError> {
        self.send(
            self.http
                .get(self.url(&format!("/api/v1/meshes/{mesh}/acl"))),
        )
        .await
    }

    /// `PUT /api/v1/meshes/{mesh}/acl`.
    pub async fn set_acl(
        &self,
        mesh: &str,
        body: &x0t_types::api::SetAcl,
    ) -> Result<x0t_types::api::AclView, ClientError> {
        self.send(
            self.http
                .put(self.url(&format!("/api/v1/meshes/{mesh}/acl")))
                .json(body),
        )
        .await
    }

    /// `POST /api/v1/meshes/{mesh}/acl/explain`.
    pub async fn explain_acl(
        &self,
        mesh: &str,
        body: &x0t_types::api::ExplainAcl,
    ) -> Result<x0t_types::api::AclDecision, ClientError> {
        self.post(&format!("/api/v1/meshes/{mesh}/acl/explain"), body)
            .await
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/cluster/anchors`.
    pub async fn anchors(&self) -> Result<Vec<AnchorView>, ClientError> {
        self.send(self.http.get(self.url("/api/v1/cluster/anchors")))
            .await
    }

    /// `POST /api/v1/api-keys`.
    pub async fn create_api_key(&self, body: &CreateApiKey) -> Result<ApiKeyView, ClientError> {
        self.post("/api/v1/api-keys", body).await
    }

    /// `POST /api/v1/meshes/{mesh}/nodes/register`.
    pub async fn register(
        &self,
        mesh: &str,
        body: &RegisterNode,
    ) -> Result<NodeStatus, ClientError> {
        self.post(&format!("/api/v1/meshes/{mesh}/nodes/register"), body)
            .await
    }

    /// `GET /api/v1/meshes/{mesh}/nodes/{id}/status`.
    pub async fn node_status(&self, mesh: &str, id: &str) -> Result<NodeStatus, ClientError> {
        self.send(
            self.http
                .get(self.url(&format!("/api/v1/meshes/{mesh}/nodes/{id}/status"))),
        )
        .await
    }

    /// `GET /api/v1/meshes/{mesh}/nodes` with query filters (`state`, `tag`,
    /// `device_class`, `q`, `offset`, `limit`).
    pub async fn list_nodes(
        &self,
        mesh: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<NodeView>, ClientError> {
        self.send(
            self.http
                .get(self.url(&format!("/api/v1/meshes/{mesh}/nodes")))
                .query(query),
        )
        .await
    }

    /// `GET /api/v1/meshes/{mesh}/nodes/{id}`.
    pub async fn node(&self, mesh: &str, id: &str) -> Result<NodeView, ClientError> {
        self.send(
            self.http
                .get(self.url(&format!("/api/v1/meshes/{mesh}/nodes/{id}"))),
        )
        .await
    }

    /// `POST /api/v1/meshes/{mesh}/nodes/{id}/approve`.
    pub async fn approve(
        &self,
        mesh: &str,
        id: &str,
        body: &ApproveNode,
    ) -> Result<NodeView, ClientError> {
        self.post(&format!("/api/v1/meshes/{mesh}/nodes/{id}/approve"), body)
            .await
    }

    /// `POST /api/v1/meshes/{mesh}/nodes/{id}/reject` or `…/revoke` (`action`).
    pub async fn reject_or_revoke(
        &self,
        mesh: &str,
        id: &str,
        action: &str,
        body: &Reason,
    ) -> Result<NodeView, ClientError> {
        self.post(&format!("/api/v1/meshes/{mesh}/nodes/{id}/{action}"), body)
            .await
    }

    /// `POST /api/v1/meshes/{mesh}/nodes/{id}/reissue-token`.
    pub async fn reissue_token(
        &self,
        mesh: &str,
        id: &str,
        body: &CreateToken,
    ) -> Result<TokenView, ClientError> {
        self.post(
            &format!("/api/v1/meshes/{mesh}/nodes/{id}/reissue-token"),
            body,
        )
        .await
    }

    /// `POST /api/v1/meshes/{mesh}/tokens`.
    pub async fn create_token(
        &self,
        mesh: &str,
        body: &CreateToken,
    ) -> Result<TokenView, ClientError> {
        self.post(&format!("/api/v1/meshes/{mesh}/tokens"), body)
            .await
    }

    /// `POST /api/v1/meshes/{mesh}/tokens/rotate`.
    pub async fn rotate_tokens(&self, mesh: &str) -> Result<RotateTokens, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!("/api/v1/meshes/{mesh}/tokens/rotate"))),
        )
        .await
    }

    /// `POST /api/v1/meshes/{mesh}/certificates/verify`.
    pub async fn verify_certificate(
        &self,
        mesh: &str,
        certificate: &str,
    ) -> Result<CertificateStatus, ClientError> {
        let body = VerifyCertificate {
            certificate: certificate.to_owned(),
        };
        self.post(&format!("/api/v1/meshes/{mesh}/certificates/verify"), &body)
            .await
    }

    /// `GET /api/v1/meshes/{mesh}/audit-logs/export?format=…`: the raw document.
    pub async fn audit_export(&self, mesh: &str, format: &str) -> Result<String, ClientError> {
        let request = self
            .http
            .get(self.url(&format!("/api/v1/meshes/{mesh}/audit-logs/export")))
            .query(&[("format", format)]);
        let request = match &self.admin_key {
            Some(key) => request.bearer_auth(key.trim()),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Client(format!("{}: {e}", self.base)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Client(e.to_string()))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(ClientError::Api {
                status: status.as_u16(),
                message: serde_json::from_str::<ErrorBody>(&text)
                    .map(|b| format!("{} ({})", b.error.message, b.error.code))
                    .unwrap_or(text),
            })
        }
    }

    /// `GET /api/v1/meshes/{mesh}/audit-logs/verify`.
    pub async fn audit_verify(&self, mesh: &str) -> Result<AuditVerification, ClientError> {
        self.send(
            self.http
                .get(self.url(&format!("/api/v1/meshes/{mesh}/audit-logs/verify"))),
        )
        .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }
}
