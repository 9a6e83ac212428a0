//! Anchors in network namespaces, and the faults Jepsen's etcd analysis and etcd's robustness
//! tests inject, on one machine: partitions (leader in the minority, leader in the majority,
//! a bridge), one-way cuts, random loss, delay where the kernel has netem, kill -9,
//! SIGSTOP/SIGCONT pauses, restarts from disk, and anchors added and removed.
//!
//! ```text
//!  this namespace: clients ──veth── [hub: br0] ──veth── anchor 1 ns (10.A.B.1)
//!                                               ──veth── anchor 2 ns (10.A.B.2) …
//! ```
//!
//! Faults are nftables rules inside the anchors' namespaces, so they cut anchor↔anchor
//! traffic only: the clients in this namespace still reach every anchor's API, as clients
//! on the far side of a partition would reach the nodes on their side.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x0t_client::ApiClient;
use x0t_node::NodeInfo;
use x0t_node::run::{ADMIN_KEY_FILE, JoinConfig};
use x0t_node::testnet::{self, Placement};

use crate::netns::{Degraded, Lab};

/// A cluster of anchors, one per namespace, with spare namespaces for anchors added later.
pub struct AnchorCluster {
    // Field order matters for drop: processes die (KillOnDrop) before their namespaces go.
    _kill: testnet::KillOnDrop,
    lab: Lab,
    _root: tempfile::TempDir,
    dir: PathBuf,
    exe: PathBuf,
    base: u16,
    admin_key: String,
    /// Anchors in the membership now (1-based indices).
    members: Vec<usize>,
    /// Anchors that were removed (their directories stay, their processes are gone).
    removed: Vec<usize>,
    slots: usize,
}

/// How long a fault's effects took to clear.
#[derive(Clone, Debug)]
pub struct Healed {
    /// From the end of the fault until every member had the same leader and took a write.
    pub after: Duration,
}

impl AnchorCluster {
    /// Starts `anchors` anchors (a Raft cluster) with `spare` empty namespaces beside them.
    pub async fn start(exe: &Path, anchors: usize, spare: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(anchors + spare <= 7, "at most 7 anchors in all");
        let lab = Lab::create(anchors + spare)?;
        let root = tempfile::tempdir()?;
        let dir = root.path().join("anchors");
        let base = testnet::free_base_port(anchors + spare, std::process::id())?;
        let kill = testnet::KillOnDrop(dir.clone());
        let placements: Vec<Placement> = (0..anchors + spare)
            .map(|i| placement(&lab, i + 1))
            .collect();
        let place = |index: usize| placements[index - 1].clone();
        testnet::up_placed(exe, &dir, anchors, base, &place, &[])
            .await
            .context("starting the anchors in their namespaces")?;
        let admin_key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE))?
            .trim()
            .to_owned();
        Ok(Self {
            _kill: kill,
            lab,
            _root: root,
            dir,
            exe: exe.to_path_buf(),
            base,
            admin_key,
            members: (1..=anchors).collect(),
            removed: Vec::new(),
            slots: anchors + spare,
        })
    }

    /// The admin key.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// Anchors in the membership (1-based).
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// A namespace no anchor has used yet.
    pub fn free_slot(&self) -> Option<usize> {
        (1..=self.slots).find(|i| !self.members.contains(i) && !self.removed.contains(i))
    }

    /// Anchor `index`'s recorded state (pid, URLs, Raft id).
    pub fn info(&self, index: usize) -> anyhow::Result<NodeInfo> {
        NodeInfo::load(&testnet::node_dir(&self.dir, index))
            .with_context(|| format!("anchor {index} has no node.json"))
    }

    /// Anchor `index`'s API base URL.
    pub fn url(&self, index: usize) -> anyhow::Result<String> {
        Ok(self.info(index)?.api_url)
    }

    /// (index, URL) of every member, for the workload's clients.
    pub fn targets(&self) -> Vec<(usize, String)> {
        self.members
            .iter()
            .filter_map(|&i| self.url(i).ok().map(|url| (i, url)))
            .collect()
    }

    /// The anchor that leads now: the leader named with the highest term by any member
    /// that answers within a second (a paused or cut-off old leader may still think it
    /// leads, at an older term).
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, u64)> = None;
        for &i in &self.members {
            let Ok(url) = self.url(i) else { continue };
            let Ok(client) = ApiClient::with_timeout(&url, None, Duration::from_secs(1)) else {
                continue;
            };
            if let Ok(status) = client.cluster().await
                && let Some(leader) = status.leader
                && best.is_none_or(|(term, _)| status.term > term)
            {
                best = Some((status.term, leader));
            }
        }
        let (_, raft_id) = best?;
        self.index_of(raft_id)
    }

    /// Waits up to `timeout` for a leader.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                bail!("no leader within {timeout:?}:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn index_of(&self, raft_id: u64) -> Option<usize> {
        (1..=self.slots).find(|&i| self.info(i).is_ok_and(|info| info.raft_id == raft_id))
    }

    /// Members other than `index`.
    pub fn others(&self, index: usize) -> Vec<usize> {
        self.members
            .iter()
            .copied()
            .filter(|&i| i != index)
            .collect()
    }

    /// Cuts every link between the groups (anchor indices); links inside a group stay.
    pub fn partition(&self, groups: &[&[usize]]) -> anyhow::Result<()> {
        for (g, group) in groups.iter().enumerate() {
            for other in &groups[g + 1..] {
                for &a in *group {
                    for &b in *other {
                        self.lab.cut(a - 1, b - 1)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Cuts `a`↔`b` only: the rest of the mesh of links stays (a bridge when both still
    /// reach a third anchor).
    pub fn cut(&self, a: usize, b: usize) -> anyhow::Result<()> {
        self.lab.cut(a - 1, b - 1)
    }

    /// Drops what `from` sends to `to`; the other direction flows.
    pub fn cut_one_way(&self, from: usize, to: usize) -> anyhow::Result<()> {
        self.lab.cut_one_way(from - 1, to - 1)
    }

    /// Loses `percent` % of the packets on every link between members, both ways.
    pub fn lose_everywhere(&self, percent: u32) -> anyhow::Result<()> {
        for &a in &self.members {
            for &b in &self.members {
                if a != b {
                    self.lab.lose(a - 1, b - 1, percent)?;
                }
            }
        }
        Ok(())
    }

    /// Delays (and loses `loss` % of) what `index` sends, with `tc netem` where the kernel
    /// has it; without netem, only the loss is applied (the answer says which).
    pub fn degrade(&self, index: usize, delay_ms: u32, loss: u32) -> anyhow::Result<Degraded> {
        self.lab.degrade(index - 1, delay_ms, loss)
    }

    /// Undoes [`AnchorCluster::degrade`].
    pub fn undegrade(&self, index: usize) {
        self.lab.undegrade(index - 1);
    }

    /// Kills every member (kill -9) and starts them all again from their data directories:
    /// the whole control plane restarting from disk.
    pub async fn restart_all(&self) -> anyhow::Result<()> {
        for &index in &self.members {
            self.kill(index).await?;
        }
        let mut pids = Vec::new();
        for &index in &self.members {
            pids.push(self.spawn(index, None)?);
        }
        for (&index, pid) in self.members.iter().zip(pids) {
            testnet::wait_ready(&self.dir, index, pid, Duration::from_secs(60)).await?;
        }
        Ok(())
    }

    /// Starts anchor `index`'s process in its namespace (joining with `join`, or from its
    /// data directory); answers its pid.
    fn spawn(&self, index: usize, join: Option<&JoinConfig>) -> anyhow::Result<u32> {
        Ok(testnet::spawn_node_placed(
            &self.exe,
            &self.dir,
            index,
            self.base,
            &placement(&self.lab, index),
            join,
            &[],
        )?)
    }

    /// Removes every cut and loss.
    pub fn heal(&self) -> anyhow::Result<()> {
        self.lab.heal()
    }

    /// kill -9 of anchor `index`, waiting until it is gone.
    pub async fn kill(&self, index: usize) -> anyhow::Result<()> {
        testnet::kill_and_wait(self.info(index)?.pid).await;
        Ok(())
    }

    /// SIGSTOP (`pause = true`) or SIGCONT anchor `index`.
    pub fn pause(&self, index: usize, pause: bool) -> anyhow::Result<()> {
        testnet::signal(self.info(index)?.pid, if pause { "STOP" } else { "CONT" });
        Ok(())
    }

    /// Starts anchor `index` again from its data directory (after [`AnchorCluster::kill`]).
    pub async fn restart(&self, index: usize) -> anyhow::Result<()> {
        let pid = self.spawn(index, None)?;
        testnet::wait_ready(&self.dir, index, pid, Duration::from_secs(60)).await?;
        Ok(())
    }

    /// Starts a new anchor in spare namespace `index`, joining through member `via` with an
    /// anchor-join token, and waits until it is a voter.
    pub async fn add_anchor(&mut self, index: usize, via: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            index <= self.slots && !self.members.contains(&index),
            "namespace {index} is not a free slot"
        );
        let admin = ApiClient::new(&self.url(via)?, Some(self.admin_key.clone()))?;
        let token = admin
            .create_join_token(&x0t_node::api::CreateJoinToken::default())
            .await?
            .token;
        let info = self.info(via)?;
        let quic = info
            .p2p_addrs
            .iter()
            .find(|a| a.contains("quic"))
            .context("no QUIC address")?;
        let peer: libp2p::Multiaddr = format!("{quic}/p2p/{}", info.peer_id).parse()?;
        let pid = self.spawn(index, Some(&JoinConfig::Token { peer, token }))?;
        let joined = testnet::wait_ready(&self.dir, index, pid, Duration::from_secs(60)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(status) = admin.cluster().await
                && status.voters.contains_key(&joined.raft_id)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("anchor {index} did not become a voter:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.members.push(index);
        Ok(())
    }

    /// Removes member `index` from the membership through member `via`, then stops its
    /// process (kill -9: a removed anchor has nothing left to save).
    pub async fn remove_anchor(&mut self, index: usize, via: usize) -> anyhow::Result<()> {
        let raft_id = self.info(index)?.raft_id;
        let admin = ApiClient::new(&self.url(via)?, Some(self.admin_key.clone()))?;
        let status = admin.remove_anchor(raft_id).await?;
        anyhow::ensure!(
            !status.voters.contains_key(&raft_id),
            "anchor {index} is still a voter: {status:?}"
        );
        self.members.retain(|&i| i != index);
        self.removed.push(index);
        self.kill(index).await
    }

    /// Waits until every member names the same leader and takes a linearizable write
    /// through its own API; answers how long that took. This is "healed": any client of
    /// any anchor is served again.
    pub async fn wait_healed(&self, probe_mesh: &str, timeout: Duration) -> anyhow::Result<Healed> {
        let started = Instant::now();
        let deadline = started + timeout;
        let clients: Vec<ApiClient> = self
            .members
            .iter()
            .map(|&i| {
                ApiClient::with_timeout(
                    &self.url(i)?,
                    Some(self.admin_key.clone()),
                    Duration::from_millis(800),
                )
                .map_err(anyhow::Error::from)
            })
            .collect::<anyhow::Result<_>>()?;
        let mut served = vec![false; clients.len()];
        loop {
            let mut leaders = Vec::new();
            for client in &clients {
                leaders.push(client.cluster().await.ok().and_then(|s| s.leader));
            }
            let agreed = leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0]);
            if agreed {
                let writes = clients
                    .iter()
                    .zip(&served)
                    .map(|(client, done)| async move {
                        if *done {
                            return true;
                        }
                        client
                            .update_settings(
                                probe_mesh,
                                &x0t_node::api::UpdateSettings {
                                    description: "heal probe".to_owned(),
                                    expected_version: None,
                                },
                            )
                            .await
                            .is_ok()
                    });
                let results = futures::future::join_all(writes).await;
                for (done, ok) in served.iter_mut().zip(results) {
                    *done |= ok;
                }
                if served.iter().all(|d| *d) {
                    return Ok(Healed {
                        after: started.elapsed(),
                    });
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "not healed after {timeout:?}: leaders {leaders:?}, writes served {served:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of every anchor's log, for failure reports.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for index in 1..=self.slots {
            let path = testnet::node_dir(&self.dir, index).join("x0t.log");
            let Ok(log) = std::fs::read_to_string(&path) else {
                continue;
            };
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            out.push_str(&format!("--- anchor {index} ---\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The data directory of anchor `index` (its sled files are under `db/`).
    pub fn data_dir(&self, index: usize) -> PathBuf {
        testnet::node_dir(&self.dir, index)
    }
}

/// Anchor `index` (1-based) runs in the lab's namespace `index - 1`.
fn placement(lab: &Lab, index: usize) -> Placement {
    Placement {
        ip: IpAddr::V4(lab.node_ip(index - 1)),
        wrapper: vec![
            "ip".to_owned(),
            "netns".to_owned(),
            "exec".to_owned(),
            lab.nodes[index - 1].clone(),
        ],
    }
}
