//! A whole mesh in a [`Lab`]: three anchors (`x0t up`) in the root namespace on the lab
//! bridge, and one agent per node namespace (`x0t join`, then `x0t agent run --tun`). The
//! namespace tests and the data-plane benchmark drive it. It is a test harness: failures are
//! `anyhow` errors carrying the agents' logs where they help.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x0t_node::api::{CreateToken, SetAcl};
use x0t_node::client::ApiClient;
use x0t_node::run::{ADMIN_KEY_FILE, NodeInfo};
use x0t_node::testnet;

use crate::netns::Lab;

/// The mesh every lab uses.
pub const MESH: &str = "default";

/// One agent of the lab.
#[derive(Debug)]
pub struct LabAgent {
    /// Its data directory.
    pub dir: PathBuf,
    /// Its node id.
    pub node_id: String,
    /// Its overlay address.
    pub overlay: String,
    /// Its `x0t agent run` process, while it runs.
    pub child: Option<tokio::process::Child>,
}

/// Anchors and agents in a lab.
#[derive(Debug)]
pub struct MeshLab {
    /// The namespaces.
    pub lab: Lab,
    /// Where every data dir lives (removed on drop).
    pub root: tempfile::TempDir,
    /// The anchors' testnet directory.
    pub anchors: PathBuf,
    /// An admin client of anchor 1.
    pub admin: ApiClient,
    /// Anchor 1's API URL.
    pub anchor_url: String,
    /// The agents, in namespace order.
    pub agents: Vec<LabAgent>,
    exe: PathBuf,
    spare: usize,
    /// The agents' TUN MTU (`x0t agent run --mtu`).
    pub mtu: u16,
}

impl Drop for MeshLab {
    fn drop(&mut self) {
        // Agents die with their namespaces (the lab's drop); anchors run here.
        for i in 1..=3 {
            if let Ok(info) = NodeInfo::load(&testnet::node_dir(&self.anchors, i)) {
                testnet::signal(info.pid, "KILL");
            }
        }
    }
}

impl MeshLab {
    /// Starts anchors with `policy`, then one agent per tag (each on its own namespace), and
    /// waits until every agent has verified every other. `spare` extra namespaces are left
    /// empty for the caller.
    pub async fn start(
        exe: &Path,
        policy: &str,
        tags: &[&str],
        spare: usize,
    ) -> anyhow::Result<Self> {
        let lab = Lab::create(tags.len() + spare.max(1))?;
        let root = tempfile::tempdir()?;
        let anchors = root.path().join("anchors");
        let base = testnet::free_base_port(3, std::process::id())?;
        let infos = testnet::up_on(exe, &anchors, 3, base, lab.host_ip().into(), &[]).await?;
        let key = std::fs::read_to_string(testnet::node_dir(&anchors, 1).join(ADMIN_KEY_FILE))
            .context("reading the admin key")?
            .trim()
            .to_owned();
        let anchor_url = infos[0].api_url.clone();
        let admin = ApiClient::new(&anchor_url, Some(key))?;
        admin
            .set_acl(
                MESH,
                &SetAcl {
                    document: policy.to_owned(),
                    expected_version: None,
                },
            )
            .await?;
        let mut net = Self {
            lab,
            root,
            anchors,
            admin,
            anchor_url,
            agents: Vec::new(),
            exe: exe.to_path_buf(),
            spare,
            mtu: std::env::var("X0T_LAB_MTU")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_372),
        };
        for (i, tag) in tags.iter().enumerate() {
            let agent = net.enroll(i, tag).await?;
            net.agents.push(agent);
        }
        for i in 0..tags.len() {
            net.start_agent(i)?;
        }
        for i in 0..tags.len() {
            net.wait_peers(i, tags.len() - 1).await?;
        }
        Ok(net)
    }

    /// The `x0t` binary the lab runs.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Index of the first namespace without an agent.
    pub fn spare_namespace(&self) -> Option<usize> {
        (self.spare > 0).then_some(self.agents.len())
    }

    /// Every agent's log, for a failure message.
    pub fn logs(&self) -> String {
        self.agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let log = std::fs::read_to_string(a.dir.join("agent.log")).unwrap_or_default();
                format!("--- agent {} ---\n{log}", i + 1)
            })
            .collect()
    }

    /// Runs `x0t <args>` in namespace `i`.
    pub async fn x0t(&self, i: usize, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(self.lab.command(i, &self.exe).args(args).output().await?)
    }

    async fn enroll(&self, i: usize, tag: &str) -> anyhow::Result<LabAgent> {
        let token = self
            .admin
            .create_token(
                MESH,
                &CreateToken {
                    pre_approved: true,
                    tags: vec![tag.to_owned()],
                    ..Default::default()
                },
            )
            .await?
            .token;
        let dir = self.root.path().join(format!("agent{}", i + 1));
        let dir_text = dir.to_string_lossy().into_owned();
        let output = self
            .lab
            .command(i, &self.exe)
            .args(["join", "--anchor", &self.anchor_url, "--dir", &dir_text])
            .args(["--hostname", &format!("n{}", i + 1), "--json"])
            .env("X0T_TOKEN", token)
            .output()
            .await?;
        if !output.status.success() {
            bail!("join failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let joined: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let field = |name: &str| {
            joined[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("join printed no {name}"))
        };
        Ok(LabAgent {
            dir,
            node_id: field("node_id")?,
            overlay: field("overlay_ip")?,
            child: None,
        })
    }

    /// Starts (or restarts) agent `i`'s data plane with a TUN device, logging to
    /// `<dir>/agent.log`.
    pub fn start_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let agent = &self.agents[i];
        let log = std::fs::File::create(agent.dir.join("agent.log"))?;
        let child = self
            .lab
            .command(i, &self.exe)
            .args(["agent", "run", "--tun", "--dir"])
            .arg(&agent.dir)
            .args([
                "--ip",
                &self.lab.node_ip(i).to_string(),
                "--state-poll",
                "1",
            ])
            .env("RUST_LOG", "info,x0t_node::mesh=debug")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.agents[i].child = Some(child);
        Ok(())
    }

    /// Agent `i`'s `x0t status --json` (null if it cannot be read).
    pub async fn status(&self, i: usize) -> serde_json::Value {
        let dir = self.agents[i].dir.to_string_lossy().into_owned();
        match self.x0t(i, &["status", "--json", "--dir", &dir]).await {
            Ok(output) => serde_json::from_slice(&output.stdout).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// The node ids agent `i` has verified.
    pub async fn peer_ids(&self, i: usize) -> Vec<String> {
        let status = self.status(i).await;
        status["data_plane"]["peers"]
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .filter_map(|p| p["node_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until agent `i` has verified at least `n` peers.
    pub async fn wait_peers(&self, i: usize, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.peer_ids(i).await.len() >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.agents[i].dir.join("agent.log"))
                    .unwrap_or_default();
                bail!("agent {} never saw {n} peers; log:\n{log}", i + 1);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `ping` from namespace `from` to agent `to`'s overlay address: whether a reply came.
    pub async fn ping(&self, from: usize, to: usize, count: u32) -> bool {
        let target = self.agents[to].overlay.clone();
        self.lab
            .command(from, "ping")
            .args([
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                "-q",
                &target,
            ])
            .output()
            .await
            .is_ok_and(|o| o.status.success())
    }

    /// An iperf3 server on `to`'s overlay address, `port`, serving one test.
    pub fn iperf_server(&self, to: usize, port: u16) -> anyhow::Result<tokio::process::Child> {
        Ok(self
            .lab
            .command(to, "iperf3")
            .args([
                "-s",
                "-1",
                "-p",
                &port.to_string(),
                "-B",
                &self.agents[to].overlay,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }

    /// Whether a TCP connection (an iperf3 transfer of 256 KiB) from `from` to `to`'s
    /// overlay address on `port` succeeds.
    pub async fn tcp(&self, from: usize, to: usize, port: u16) -> anyhow::Result<bool> {
        let mut server = self.iperf_server(to, port)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let client = self
            .lab
            .command(from, "iperf3")
            .args(["-c", &self.agents[to].overlay, "-p", &port.to_string()])
            .args(["-n", "256K", "--connect-timeout", "2000"])
            .output()
            .await?;
        let _ = server.kill().await;
        Ok(client.status.success())
    }
}
