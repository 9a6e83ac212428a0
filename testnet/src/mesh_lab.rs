//! A whole mesh in a [`Lab`]: three anchors (`x0t up`) in the root namespace on the lab
//! bridge, and one agent per node namespace (`x0t join`, then `x0t agent run --tun`). The
//! namespace tests and the data-plane benchmark drive it. It is a test harness: failures are
//! `anyhow` errors carrying the agents' logs where they help.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x0t_client::ApiClient;
use x0t_node::api::{CreateToken, SetAcl};
use x0t_node::run::{ADMIN_KEY_FILE, NodeInfo};
use x0t_node::testnet;

use crate::netns::Lab;

/// The mesh every lab uses.
pub const MESH: &str = "default";

/// A policy that lets every node reach every node.
pub const ALLOW_ALL: &str = r#"
version = 1

[[rule]]
name = "everyone"
action = "allow"
src = ["*"]
dst = ["*"]
"#;

/// The `x0t` binary a test of this workspace runs: `target/<profile>/x0t`, next to the
/// test binary's `deps` directory (built by `cargo build -p x0t-node` or nextest).
pub fn x0t_for_tests() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("no target directory above the test binary")?
        .join("x0t");
    anyhow::ensure!(
        exe.exists(),
        "{} not built (cargo build -p x0t-node)",
        exe.display()
    );
    Ok(exe)
}

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
        Self::start_shaped(exe, policy, tags, spare, |_| Ok(())).await
    }

    /// As [`MeshLab::start`], with `shape` run on the lab before any agent starts (cut
    /// paths, firewalls): agents then wait for every other member either way, neighbours
    /// or reached through relays.
    pub async fn start_shaped(
        exe: &Path,
        policy: &str,
        tags: &[&str],
        spare: usize,
        shape: impl FnOnce(&Lab) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        let lab = Lab::create(tags.len() + spare.max(1))?;
        shape(&lab)?;
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

    /// Kills agent `i`'s process with SIGKILL (no goodbye to anyone).
    pub async fn kill_agent(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.agents[i].child.take() {
            child.start_kill()?;
            let _ = child.wait().await;
        }
        Ok(())
    }

    /// Agent `i`'s route to agent `to` from its status: (next hop node id, relays).
    pub async fn route(&self, i: usize, to: usize) -> Option<(String, usize)> {
        let status = self.status(i).await;
        let target = &self.agents[to].node_id;
        status["data_plane"]["routes"]
            .as_array()?
            .iter()
            .find(|r| r["destination"].as_str() == Some(target.as_str()))
            .and_then(|r| {
                let path = r["path"].as_array()?;
                Some((
                    r["next_hop"].as_str()?.to_owned(),
                    path.len().saturating_sub(1),
                ))
            })
    }

    /// Agent `i`'s data-plane counter `name`.
    pub async fn counter(&self, i: usize, name: &str) -> u64 {
        self.status(i).await["data_plane"]["counters"][name]
            .as_u64()
            .unwrap_or(0)
    }

    /// Whether agent `i` sees its link to agent `j` alive (its probes answered).
    pub async fn link_alive(&self, i: usize, j: usize) -> bool {
        let status = self.status(i).await;
        let target = &self.agents[j].node_id;
        status["data_plane"]["peers"]
            .as_array()
            .and_then(|peers| {
                peers
                    .iter()
                    .find(|p| p["node_id"].as_str() == Some(target.as_str()))
            })
            .and_then(|p| p["link_alive"].as_bool())
            .unwrap_or(false)
    }

    /// Agent `i`'s event log (`x0t events --json`), oldest first.
    pub async fn events(&self, i: usize) -> Vec<serde_json::Value> {
        let dir = self.agents[i].dir.to_string_lossy().into_owned();
        let Ok(output) = self.x0t(i, &["events", "--json", "--dir", &dir]).await else {
            return Vec::new();
        };
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Agent `i`'s own SLO figures (`x0t slo --json`; null if unreadable).
    pub async fn slo(&self, i: usize) -> serde_json::Value {
        let dir = self.agents[i].dir.to_string_lossy().into_owned();
        match self.x0t(i, &["slo", "--json", "--dir", &dir]).await {
            Ok(output) => serde_json::from_slice(&output.stdout).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// The index of the agent with node id `node_id`.
    pub fn agent_index(&self, node_id: &str) -> Option<usize> {
        self.agents.iter().position(|a| a.node_id == node_id)
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

/// A stream of probes through the mesh: `ping` every [`PROBE_INTERVAL`] from one agent's
/// namespace to another's overlay address, its replies read back by sequence number.
#[derive(Debug)]
pub struct ProbeStream {
    child: tokio::process::Child,
}

/// How often a [`ProbeStream`] probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// What a [`ProbeStream`] saw.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    /// Probes sent.
    pub sent: u32,
    /// Sequence numbers answered, in order.
    pub answered: Vec<u32>,
    /// When each answer arrived (seconds since the Unix epoch, `ping -D`), in the same
    /// order; empty if the output carried no timestamps.
    pub arrived: Vec<f64>,
}

impl ProbeReport {
    /// Reads `ping -D`'s output: reply lines (`[time] … icmp_seq=N …`) and the "N packets
    /// transmitted" summary.
    pub fn parse(output: &str) -> Self {
        let mut replies: Vec<(u32, Option<f64>)> = output
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| {
                let rest = l.split("icmp_seq=").nth(1)?;
                let seq = rest.split_whitespace().next()?.parse().ok()?;
                let at = l
                    .strip_prefix('[')
                    .and_then(|r| r.split(']').next())
                    .and_then(|t| t.parse::<f64>().ok());
                Some((seq, at))
            })
            .collect();
        replies.sort_by_key(|(seq, _)| *seq);
        replies.dedup_by_key(|(seq, _)| *seq);
        let answered: Vec<u32> = replies.iter().map(|(seq, _)| *seq).collect();
        let arrived: Vec<f64> = replies.iter().filter_map(|(_, at)| *at).collect();
        let arrived = if arrived.len() == answered.len() {
            arrived
        } else {
            Vec::new()
        };
        let sent = output
            .lines()
            .find_map(|l| {
                l.split_once(" packets transmitted")
                    .and_then(|(n, _)| n.trim().parse().ok())
            })
            .unwrap_or_else(|| answered.last().copied().unwrap_or(0));
        Self {
            sent,
            answered,
            arrived,
        }
    }

    /// The longest time without an answer: between two answers' arrivals (their sequence
    /// numbers at [`PROBE_INTERVAL`] when the output had no timestamps), or from the last
    /// answer to the end of the stream. `ping` slows down while nothing comes back, so
    /// sequence numbers alone would understate an outage; arrival times do not.
    pub fn longest_gap(&self) -> Duration {
        let mut longest = Duration::ZERO;
        if self.arrived.is_empty() {
            for pair in self.answered.windows(2) {
                longest = longest.max(PROBE_INTERVAL * (pair[1] - pair[0] - 1));
            }
        } else {
            for pair in self.arrived.windows(2) {
                let between = Duration::from_secs_f64((pair[1] - pair[0]).max(0.0));
                longest = longest.max(between.saturating_sub(PROBE_INTERVAL));
            }
        }
        if let Some(last) = self.answered.last() {
            longest = longest.max(PROBE_INTERVAL * self.sent.saturating_sub(*last));
        }
        longest
    }

    /// Whether probes were answered after sequence `after`.
    pub fn answered_after(&self, after: u32) -> usize {
        self.answered.iter().filter(|s| **s > after).count()
    }
}

impl ProbeStream {
    /// Starts probing from agent `from` to agent `to` for `seconds`.
    pub fn start(net: &MeshLab, from: usize, to: usize, seconds: u32) -> anyhow::Result<Self> {
        let child = net
            .lab
            .command(from, "ping")
            .args([
                "-n",
                "-D",
                "-i",
                "0.01",
                "-W",
                "1",
                "-w",
                &seconds.to_string(),
            ])
            .arg(&net.agents[to].overlay)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self { child })
    }

    /// Waits for the stream to end and reads what it saw.
    pub async fn finish(self) -> anyhow::Result<ProbeReport> {
        let output = self.child.wait_with_output().await?;
        Ok(ProbeReport::parse(&String::from_utf8_lossy(&output.stdout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_find_the_longest_gap() {
        let output = "PING 100.64.0.3 (100.64.0.3) 56(84) bytes of data.\n\
            [1000.000] 64 bytes from 100.64.0.3: icmp_seq=1 ttl=64 time=0.5 ms\n\
            [1000.010] 64 bytes from 100.64.0.3: icmp_seq=2 ttl=64 time=0.5 ms\n\
            [1000.910] 64 bytes from 100.64.0.3: icmp_seq=60 ttl=64 time=0.5 ms\n\
            [1000.920] 64 bytes from 100.64.0.3: icmp_seq=61 ttl=64 time=0.5 ms\n\
            \n--- 100.64.0.3 ping statistics ---\n\
            65 packets transmitted, 4 received, 93.8% packet loss, time 950ms\n";
        let report = ProbeReport::parse(output);
        assert_eq!(report.sent, 65);
        assert_eq!(report.answered, vec![1, 2, 60, 61]);
        // By arrival: 0.9 s without an answer (the sequence numbers say only 0.57 s).
        let gap = report.longest_gap();
        assert!(
            gap > Duration::from_millis(880) && gap < Duration::from_millis(900),
            "{gap:?}"
        );
        assert_eq!(report.answered_after(2), 2);
        // Without timestamps, the sequence numbers count.
        let plain = ProbeReport::parse(&output.replace("[1000.", "[x"));
        assert!(plain.arrived.is_empty());
        assert_eq!(plain.longest_gap(), PROBE_INTERVAL * 57);
        // A stream that ends in an outage counts it.
        let tail = ProbeReport {
            sent: 500,
            answered: vec![1, 2, 3],
            arrived: Vec::new(),
        };
        assert_eq!(tail.longest_gap(), PROBE_INTERVAL * 497);
    }
}
