//! A small HTTP client for the node API, used by the CLI, the testnet and node joins.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::NodeError;
use crate::api::{
    AddAnchor, CreateJoinToken, CreateMesh, ErrorBody, JoinTokenView, MeshView, UpdateSettings,
};
use crate::control::ClusterStatus;

/// Talks to one node's API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    admin_key: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:7410`), optionally with an admin key.
    pub fn new(base: &str, admin_key: Option<String>) -> Result<Self, NodeError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| NodeError::Client(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            admin_key,
            http,
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, NodeError> {
        let request = match &self.admin_key {
            Some(key) => request.bearer_auth(key.trim()),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| NodeError::Client(format!("{}: {e}", self.base)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| NodeError::Client(e.to_string()))?;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::Client(format!("bad answer: {e}")))
        } else {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| format!("{} ({})", b.error.message, b.error.code))
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            Err(NodeError::Api {
                status: status.as_u16(),
                message,
            })
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /api/v1/cluster`.
    pub async fn cluster(&self) -> Result<ClusterStatus, NodeError> {
        self.send(self.http.get(self.url("/api/v1/cluster"))).await
    }

    /// `POST /api/v1/cluster/anchors`.
    pub async fn add_anchor(&self, body: &AddAnchor) -> Result<ClusterStatus, NodeError> {
        self.post("/api/v1/cluster/anchors", body).await
    }

    /// `POST /api/v1/cluster/join-tokens`.
    pub async fn create_join_token(
        &self,
        body: &CreateJoinToken,
    ) -> Result<JoinTokenView, NodeError> {
        self.post("/api/v1/cluster/join-tokens", body).await
    }

    /// `POST /api/v1/meshes`.
    pub async fn create_mesh(&self, body: &CreateMesh) -> Result<MeshView, NodeError> {
        self.post("/api/v1/meshes", body).await
    }

    /// `GET /api/v1/meshes/{mesh}` (linearizable unless `stale`).
    pub async fn mesh(&self, mesh: &str, stale: bool) -> Result<MeshView, NodeError> {
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
    ) -> Result<MeshView, NodeError> {
        self.send(
            self.http
                .put(self.url(&format!("/api/v1/meshes/{mesh}/settings")))
                .json(body),
        )
        .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, NodeError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }
}
