//! A loopback testnet for the browser console: anchor processes, members that join with a
//! pre-approved token and run their data plane, and devices that register and wait in
//! pending approval — the same `x0t` commands an operator runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x0t_client::ApiClient;
use x0t_node::api::CreateToken;
use x0t_node::run::ADMIN_KEY_FILE;
use x0t_node::testnet;

/// The anchors, members and waiting devices of one run (all killed on drop).
pub struct ConsoleLab {
    // Dropped first (fields drop in order): it reads the anchors' pids from `root`.
    _anchors: testnet::KillOnDrop,
    root: tempfile::TempDir,
    exe: PathBuf,
    /// API URL of each anchor.
    pub anchors: Vec<String>,
    /// The bootstrap admin key.
    pub key: String,
    processes: Vec<tokio::process::Child>,
}

impl ConsoleLab {
    /// Starts `anchors` anchor processes of `exe` on free loopback ports.
    pub async fn start(exe: &Path, anchors: usize) -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("anchors");
        std::fs::create_dir_all(&dir)?;
        let base = testnet::free_base_port(anchors, std::process::id())?;
        let infos = testnet::up(exe, &dir, anchors, base, &[]).await?;
        let guard = testnet::KillOnDrop(dir.clone());
        let key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE))?
            .trim()
            .to_owned();
        Ok(Self {
            exe: exe.to_owned(),
            anchors: infos.into_iter().map(|i| i.api_url).collect(),
            key,
            processes: Vec::new(),
            _anchors: guard,
            root,
        })
    }

    /// An admin client of the first anchor.
    pub fn admin(&self) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::new(&self.anchors[0], Some(self.key.clone()))?)
    }

    /// The data directory of device `name`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn join_command(&self, name: &str, timeout: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.exe);
        command
            .args(["join", "--anchor", &self.anchors[0], "--hostname", name])
            .args([
                "--device-class",
                "robot",
                "--tags",
                "robot",
                "--timeout",
                timeout,
            ])
            .arg("--dir")
            .arg(self.dir(name))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Device `name` joins with a pre-approved token (approved at once) and runs its agent.
    pub async fn member(&mut self, name: &str) -> anyhow::Result<()> {
        let token = self
            .admin()?
            .create_token(
                "default",
                &CreateToken {
                    ttl_secs: Some(3_600),
                    pre_approved: true,
                    tags: vec!["robot".into()],
                    ..CreateToken::default()
                },
            )
            .await?;
        let status = self
            .join_command(name, "1m")
            .env("X0T_TOKEN", &token.token)
            .status()
            .await?;
        if !status.success() {
            bail!("{name} could not join ({status})");
        }
        self.run_agent(name)
    }

    /// Device `name` registers and waits for approval in the background (its `x0t join`
    /// ends once an admin approves it).
    pub fn pending(&mut self, name: &str) -> anyhow::Result<()> {
        let child = self.join_command(name, "10m").spawn().context("x0t join")?;
        self.processes.push(child);
        Ok(())
    }

    /// Waits until device `name` holds its certificate (its join ended approved).
    pub async fn wait_approved(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while !self.dir(name).join("node.cert").exists() {
            if started.elapsed() > timeout {
                bail!("{name} holds no certificate after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Runs the data plane of approved device `name` (userspace mode, loopback).
    pub fn run_agent(&mut self, name: &str) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir(name).join("agent.log"))?;
        let child = tokio::process::Command::new(&self.exe)
            .args([
                "agent",
                "run",
                "--ip",
                "127.0.0.1",
                "--p2p-port",
                "0",
                "--data-port",
                "0",
            ])
            .args(["--api-listen", "127.0.0.1:0", "--dir"])
            .arg(self.dir(name))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("x0t agent run")?;
        self.processes.push(child);
        Ok(())
    }

    /// The node id device `name` enrolled with (from its `agent.json`).
    pub fn node_id(&self, name: &str) -> anyhow::Result<String> {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir(name).join("agent.json"))?)?;
        state["node_id"]
            .as_str()
            .map(str::to_owned)
            .context("agent.json has no node_id")
    }

    /// The local API (and console) URL of device `name`'s running agent.
    pub async fn member_url(&self, name: &str, timeout: Duration) -> anyhow::Result<String> {
        let started = Instant::now();
        loop {
            if let Ok(info) = x0t_node::mesh::MemberInfo::load(&self.dir(name)) {
                return Ok(info.api_url);
            }
            if started.elapsed() > timeout {
                bail!("{name}'s agent wrote no member.json in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every log of the run, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in walk(self.root.path()) {
            if entry.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&entry).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!("--- {}\n", entry.display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}
