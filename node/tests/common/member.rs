//! Approved agents running the data plane in this process (userspace mode, loopback).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use x0t_client::ApiClient;
use x0t_node::agent::{self, JoinOptions};
use x0t_node::api::CreateToken;
use x0t_node::mesh::local_api::{LocalClient, MemberStatus};
use x0t_node::mesh::{MemberConfig, run_member};
use x0t_types::{DeviceClass, MeshId, Tag};

pub const MESH: &str = "default";

/// A policy that lets every node reach every node.
#[allow(dead_code)] // not every test binary that includes `common` uses it
pub const ALLOW_ALL: &str = r#"
version = 1

[[rule]]
name = "everyone"
action = "allow"
src = ["*"]
dst = ["*"]
"#;

/// One anchor whose mesh allows every flow: the anchors, the admin key, an admin client and
/// the anchor's API URL.
#[allow(dead_code)] // not every test binary that includes `common` uses it
pub async fn open_mesh(root: &Path) -> (Vec<super::TestNode>, String, ApiClient, String) {
    let (anchors, key) = super::cluster(root, 1).await;
    let anchor_url = anchors[0].info().api_url;
    let admin = ApiClient::new(&anchor_url, Some(key.clone())).unwrap();
    admin
        .set_acl(
            MESH,
            &x0t_node::api::SetAcl {
                document: ALLOW_ALL.to_owned(),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    (anchors, key, admin, anchor_url)
}

pub struct Agent {
    pub dir: PathBuf,
    pub node_id: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), x0t_node::NodeError>>,
}

impl Agent {
    pub fn client(&self) -> LocalClient {
        LocalClient::for_data_dir(&self.dir).unwrap()
    }

    pub async fn status(&self) -> MemberStatus {
        self.client().status().await.unwrap()
    }

    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Enrolls an agent with a pre-approved token granting `tag`, then runs its data plane.
pub async fn agent(
    admin: &ApiClient,
    anchor_url: &str,
    root: &Path,
    name: &str,
    tag: &str,
) -> Agent {
    let (dir, node_id) = enroll(admin, anchor_url, root, name, tag).await;
    start(dir, node_id).await
}

/// Enrolls an agent with a pre-approved token granting `tag`; answers its data dir and id.
pub async fn enroll(
    admin: &ApiClient,
    anchor_url: &str,
    root: &Path,
    name: &str,
    tag: &str,
) -> (PathBuf, String) {
    let token = admin
        .create_token(
            MESH,
            &CreateToken {
                pre_approved: true,
                tags: vec![tag.to_owned()],
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .token;
    let dir = root.join(name);
    let (state, _) = agent::join(
        &JoinOptions {
            data_dir: dir.clone(),
            anchor: anchor_url.to_owned(),
            mesh: MeshId::new(MESH).unwrap(),
            token: Some(token),
            tags: vec![Tag::new(tag).unwrap()],
            device_class: DeviceClass::Server,
            hostname: Some(name.to_owned()),
            timeout: Duration::from_secs(20),
            poll_every: Duration::from_millis(100),
        },
        |_| {},
    )
    .await
    .unwrap();
    (dir, state.node_id)
}

/// Runs the data plane of an enrolled agent (userspace mode, loopback).
pub async fn start(dir: PathBuf, node_id: String) -> Agent {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let (stop, shutdown) = watch::channel(false);
    let config = MemberConfig {
        data_dir: dir.clone(),
        p2p_listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()],
        data_listen: "127.0.0.1:0".parse().unwrap(),
        api_listen: "127.0.0.1:0".parse().unwrap(),
        tun: None,
        rekey: x0t_crypto::frame::RekeyPolicy::DEFAULT,
        state_poll: Duration::from_millis(500),
    };
    let mut task = tokio::spawn(run_member(config, shutdown));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if task.is_finished() {
            panic!("agent {name} exited: {:?}", (&mut task).await);
        }
        if let Ok(client) = LocalClient::for_data_dir(&dir)
            && client.status().await.is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent {name}: no local API"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Agent {
        dir,
        node_id,
        stop,
        task,
    }
}
