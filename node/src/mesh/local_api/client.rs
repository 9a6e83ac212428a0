//! The client of a member's local API, for the CLI (`x0t status`, `ping`, `expose`,
//! `connect`, `events`, `slo`, `topology`) and tests.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    ConnectAnswer, ConnectRequest, ExposeRequest, MemberStatus, PingReport, PingRequest, SloStatus,
    TOKEN_HEADER, Topology,
};
use crate::NodeError;
use crate::mesh::LOCAL_API_TOKEN_FILE;

/// A client of a running member's local API, found through its data dir.
#[derive(Clone, Debug)]
pub struct LocalClient {
    http: reqwest::Client,
    base: String,
    token: String,
    mesh: String,
}

impl LocalClient {
    /// Reads `member.json` and the token file of the member running on `data_dir`.
    pub fn for_data_dir(data_dir: &std::path::Path) -> Result<Self, NodeError> {
        let info = crate::mesh::MemberInfo::load(data_dir)?;
        let token =
            x0t_crypto::keyfile::read_secret_file(&data_dir.join(LOCAL_API_TOKEN_FILE), 256)?;
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .map_err(|e| NodeError::Client(e.to_string()))?,
            base: info.api_url,
            token: String::from_utf8_lossy(&token).trim().to_owned(),
            mesh: info.mesh,
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, NodeError> {
        let response = request
            .header(TOKEN_HEADER, &self.token)
            .send()
            .await
            .map_err(|e| NodeError::Client(format!("{} (is `x0t agent run` running?)", e)))?;
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            return Err(NodeError::Api {
                status: status.as_u16(),
                message: body["error"]["message"]
                    .as_str()
                    .unwrap_or("no explanation")
                    .to_owned(),
            });
        }
        response
            .json()
            .await
            .map_err(|e| NodeError::Client(e.to_string()))
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<MemberStatus, NodeError> {
        self.call(self.http.get(format!("{}/v1/status", self.base)))
            .await
    }

    /// `GET /v1/events?after=ID`.
    pub async fn events(&self, after: u64) -> Result<Vec<crate::events::MeshEvent>, NodeError> {
        self.call(
            self.http
                .get(format!("{}/v1/events?after={after}", self.base)),
        )
        .await
    }

    /// `GET /api/v1/meshes/{mesh}/events?after=ID`, followed: hands `each` every event kept
    /// after `after`, then each new one as it happens, until the member stops or `each`
    /// answers false.
    pub async fn follow_events(
        &self,
        after: u64,
        mut each: impl FnMut(crate::events::MeshEvent) -> bool,
    ) -> Result<(), NodeError> {
        // No overall timeout: the stream lasts as long as the member.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| NodeError::Client(e.to_string()))?;
        let url = format!(
            "{}/api/v1/meshes/{}/events?after={after}",
            self.base, self.mesh
        );
        let mut response = http
            .get(url)
            .header(TOKEN_HEADER, &self.token)
            .send()
            .await
            .map_err(|e| NodeError::Client(format!("{e} (is `x0t agent run` running?)")))?;
        if !response.status().is_success() {
            return Err(NodeError::Api {
                status: response.status().as_u16(),
                message: "the event stream was refused".to_owned(),
            });
        }
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| NodeError::Client(e.to_string()))?
        {
            buffer.extend_from_slice(&chunk);
            // Events end with a blank line; split on bytes (a chunk may end mid-character).
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buffer.drain(..end + 2).collect();
                for line in String::from_utf8_lossy(&block).lines() {
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    let event = serde_json::from_str(data.trim())
                        .map_err(|e| NodeError::Client(format!("an event: {e}")))?;
                    if !each(event) {
                        return Ok(());
                    }
                }
            }
            if buffer.len() > 1 << 20 {
                return Err(NodeError::Client("an event of over 1 MiB".to_owned()));
            }
        }
        Ok(())
    }

    /// `GET /api/v1/meshes/{mesh}/slo`.
    pub async fn slo(&self) -> Result<SloStatus, NodeError> {
        self.call(
            self.http
                .get(format!("{}/api/v1/meshes/{}/slo", self.base, self.mesh)),
        )
        .await
    }

    /// `GET /api/v1/meshes/{mesh}/topology`.
    pub async fn topology(&self) -> Result<Topology, NodeError> {
        self.call(self.http.get(format!(
            "{}/api/v1/meshes/{}/topology",
            self.base, self.mesh
        )))
        .await
    }

    /// `POST /v1/ping`.
    pub async fn ping(&self, node: &str, count: u32) -> Result<PingReport, NodeError> {
        let body = PingRequest {
            node: node.to_owned(),
            count,
        };
        self.call(self.http.post(format!("{}/v1/ping", self.base)).json(&body))
            .await
    }

    /// `POST /v1/expose`.
    pub async fn expose(&self, name: &str, port: u16) -> Result<(), NodeError> {
        let body = ExposeRequest {
            port,
            name: name.to_owned(),
        };
        self.call::<serde_json::Value>(
            self.http
                .post(format!("{}/v1/expose", self.base))
                .json(&body),
        )
        .await
        .map(|_| ())
    }

    /// `POST /v1/connect`.
    pub async fn connect(&self, target: &str, listen: SocketAddr) -> Result<SocketAddr, NodeError> {
        let body = ConnectRequest {
            target: target.to_owned(),
            listen,
        };
        self.call::<ConnectAnswer>(
            self.http
                .post(format!("{}/v1/connect", self.base))
                .json(&body),
        )
        .await
        .map(|a| a.listen)
    }
}
