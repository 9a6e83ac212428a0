//! A local testnet: N `x0t up` processes on loopback ports, each with its own data directory
//! and log file under one testnet directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::NodeError;
use crate::run::{ADMIN_KEY_FILE, JoinConfig, NODE_INFO_FILE, NodeInfo};
use x0t_client::ApiClient;

/// Where node `index` (1-based) of a testnet keeps its data.
pub fn node_dir(testnet_dir: &Path, index: usize) -> PathBuf {
    testnet_dir.join(format!("node{index}"))
}

/// Ports of node `index`: API, then peer-to-peer (TCP and UDP/QUIC share the number).
pub fn ports(base_port: u16, index: usize) -> (u16, u16) {
    let offset = (index as u16 - 1) * 10;
    (base_port + offset, base_port + offset + 1)
}

/// A base port whose API and peer ports (TCP and UDP) are free for `nodes` nodes right now,
/// chosen below Linux's ephemeral range (32768+), where an outgoing connection could take a
/// port between this check and the node binding it. `seed` spreads concurrent callers apart.
pub fn free_base_port(nodes: usize, seed: u32) -> Result<u16, NodeError> {
    const FIRST: u32 = 20_000;
    const SLOTS: u32 = (32_768 - FIRST) / 10 - 10;
    // Callers in one process (tests running in parallel) start at different slots: two
    // searches from the same seed would find the same free ports before either binds them.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = seed.wrapping_add(
        CALLS
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(389),
    );
    for attempt in 0..SLOTS {
        let slot = seed.wrapping_add(attempt.wrapping_mul(97)) % (SLOTS - nodes as u32);
        let base = (FIRST + slot * 10) as u16;
        let free = (1..=nodes).all(|i| {
            let (api, p2p) = ports(base, i);
            std::net::TcpListener::bind(("127.0.0.1", api)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", p2p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p2p)).is_ok()
        });
        if free {
            return Ok(base);
        }
    }
    Err(NodeError::Config(format!(
        "no {nodes} free port pairs between {FIRST} and 32767"
    )))
}

/// Whether any thread of process `pid` still runs. A killed process's main thread turns
/// zombie as soon as it exits, but its other threads (one may be finishing an fsync) keep the
/// file table — and so the listening sockets — until the last of them is gone: a restart on
/// the same ports must wait for that, not for the main thread.
fn pid_alive(pid: u32) -> bool {
    let zombie_leader = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.contains(") Z ") || stat.contains(") X "),
        Err(_) => return false,
    };
    if !zombie_leader {
        return true;
    }
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| tasks.count() > 1)
        .unwrap_or(false)
}

/// Starts one `x0t up` process for node `index`, detached, logging to `<dir>/x0t.log`.
pub fn spawn_node(
    exe: &Path,
    testnet_dir: &Path,
    index: usize,
    base_port: u16,
    join: Option<&JoinConfig>,
    extra_args: &[String],
) -> Result<u32, NodeError> {
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    spawn_node_on(
        exe,
        testnet_dir,
        index,
        base_port,
        loopback,
        join,
        extra_args,
    )
}

/// [`spawn_node`] with the API and peer sockets on `ip` (a namespace test's bridge address).
pub fn spawn_node_on(
    exe: &Path,
    testnet_dir: &Path,
    index: usize,
    base_port: u16,
    ip: std::net::IpAddr,
    join: Option<&JoinConfig>,
    extra_args: &[String],
) -> Result<u32, NodeError> {
    let placement = Placement {
        ip,
        wrapper: Vec::new(),
    };
    spawn_node_placed(
        exe,
        testnet_dir,
        index,
        base_port,
        &placement,
        join,
        extra_args,
    )
}

/// Where a testnet node runs: the address its sockets bind, and a command that puts the
/// process there, such as `ip netns exec <namespace>` (empty: this namespace). The wrapper
/// must exec the node (as `ip netns exec` does), so the pid spawned is the node's.
#[derive(Clone, Debug)]
pub struct Placement {
    /// API and peer sockets bind here.
    pub ip: std::net::IpAddr,
    /// Program and arguments the node's command line is appended to.
    pub wrapper: Vec<String>,
}

/// [`spawn_node`] placed by `placement`.
pub fn spawn_node_placed(
    exe: &Path,
    testnet_dir: &Path,
    index: usize,
    base_port: u16,
    placement: &Placement,
    join: Option<&JoinConfig>,
    extra_args: &[String],
) -> Result<u32, NodeError> {
    let ip = placement.ip;
    let dir = node_dir(testnet_dir, index);
    std::fs::create_dir_all(&dir)
        .map_err(|e| NodeError::Config(format!("{}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(dir.join(NODE_INFO_FILE));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("x0t.log"))
        .map_err(|e| NodeError::Config(format!("log file: {e}")))?;
    let log_err = log
        .try_clone()
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let (api, p2p) = ports(base_port, index);
    let mut command = match placement.wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .arg("--api-listen")
        .arg(std::net::SocketAddr::new(ip, api).to_string())
        .arg("--p2p-ip")
        .arg(ip.to_string())
        .arg("--p2p-port")
        .arg(p2p.to_string())
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // Secrets go through the environment, not the command line (visible in `ps`).
    match join {
        Some(JoinConfig::Token { peer, token }) => {
            command
                .arg("--join")
                .arg(peer.to_string())
                .env("X0T_JOIN_TOKEN", token);
        }
        Some(JoinConfig::AdminKey { api_url, admin_key }) => {
            command.arg("--join").arg(api_url).env("X0T_KEY", admin_key);
        }
        None => {}
    }
    let child = command
        .spawn()
        .map_err(|e| NodeError::Config(format!("starting {}: {e}", exe.display())))?;
    Ok(child.id())
}

/// Waits until node `index` has written `node.json` (it is serving), or fails with its log tail.
pub async fn wait_ready(
    testnet_dir: &Path,
    index: usize,
    pid: u32,
    timeout: Duration,
) -> Result<NodeInfo, NodeError> {
    let dir = node_dir(testnet_dir, index);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(info) = NodeInfo::load(&dir)
            && info.pid == pid
        {
            return Ok(info);
        }
        if !pid_alive(pid) || Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("x0t.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            return Err(NodeError::Config(format!(
                "node{index} did not become ready; last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `anchors` nodes and waits for one cluster: node1 bootstraps, then each other node
/// joins through node1's peer address with its own single-use anchor-join token, issued with
/// node1's admin key — the way a new machine joins. A directory that already holds a testnet
/// is restarted as it is (every node from its own data; none can be joined or issue a token
/// before a quorum is back).
pub async fn up(
    exe: &Path,
    testnet_dir: &Path,
    anchors: usize,
    base_port: u16,
    extra_args: &[String],
) -> Result<Vec<NodeInfo>, NodeError> {
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    up_on(exe, testnet_dir, anchors, base_port, loopback, extra_args).await
}

/// [`up`] with every anchor's sockets on `ip`.
pub async fn up_on(
    exe: &Path,
    testnet_dir: &Path,
    anchors: usize,
    base_port: u16,
    ip: std::net::IpAddr,
    extra_args: &[String],
) -> Result<Vec<NodeInfo>, NodeError> {
    let placement = |_| Placement {
        ip,
        wrapper: Vec::new(),
    };
    up_placed(exe, testnet_dir, anchors, base_port, &placement, extra_args).await
}

/// [`up`] with anchor `index` (1-based) placed by `placement(index)`.
pub async fn up_placed(
    exe: &Path,
    testnet_dir: &Path,
    anchors: usize,
    base_port: u16,
    placement: &(dyn Fn(usize) -> Placement + Sync),
    extra_args: &[String],
) -> Result<Vec<NodeInfo>, NodeError> {
    if anchors == 0 || anchors > 7 {
        return Err(NodeError::Config("a testnet has 1 to 7 anchors".into()));
    }
    let existing = (1..=7)
        .filter(|&index| node_dir(testnet_dir, index).join("db").exists())
        .count();
    if existing > 0 {
        if existing != anchors {
            return Err(NodeError::Config(format!(
                "{} holds a testnet of {existing} anchor(s); restart it with --anchors {existing}, or remove the directory for a new one",
                testnet_dir.display()
            )));
        }
        let pids = (1..=anchors)
            .map(|index| {
                spawn_node_placed(
                    exe,
                    testnet_dir,
                    index,
                    base_port,
                    &placement(index),
                    None,
                    extra_args,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut infos = Vec::new();
        for (index, pid) in (1..=anchors).zip(pids) {
            infos.push(wait_ready(testnet_dir, index, pid, Duration::from_secs(60)).await?);
        }
        wait_formed(&infos[0].api_url, anchors).await?;
        return Ok(infos);
    }
    let mut infos = Vec::new();
    let first = spawn_node_placed(
        exe,
        testnet_dir,
        1,
        base_port,
        &placement(1),
        None,
        extra_args,
    )?;
    infos.push(wait_ready(testnet_dir, 1, first, Duration::from_secs(60)).await?);
    let key = std::fs::read_to_string(node_dir(testnet_dir, 1).join(ADMIN_KEY_FILE))
        .map_err(|e| NodeError::Config(format!("reading node1's admin key: {e}")))?;
    let admin = ApiClient::new(&infos[0].api_url, Some(key.trim().to_owned()))?;
    let quic = infos[0]
        .p2p_addrs
        .iter()
        .find(|a| a.contains("quic"))
        .ok_or_else(|| NodeError::Config("node1 has no QUIC address".into()))?;
    let peer: libp2p::Multiaddr = format!("{quic}/p2p/{}", infos[0].peer_id)
        .parse()
        .map_err(|e| NodeError::Config(format!("node1's peer address: {e}")))?;
    for index in 2..=anchors {
        let token = admin
            .create_join_token(&crate::api::CreateJoinToken::default())
            .await?
            .token;
        let join = JoinConfig::Token {
            peer: peer.clone(),
            token,
        };
        let pid = spawn_node_placed(
            exe,
            testnet_dir,
            index,
            base_port,
            &placement(index),
            Some(&join),
            extra_args,
        )?;
        infos.push(wait_ready(testnet_dir, index, pid, Duration::from_secs(60)).await?);
    }
    wait_formed(&infos[0].api_url, anchors).await?;
    Ok(infos)
}

/// Waits until the node at `api_url` sees `anchors` voters and a leader.
async fn wait_formed(api_url: &str, anchors: usize) -> Result<(), NodeError> {
    let client = ApiClient::new(api_url, None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.cluster().await?;
        if status.voters.len() == anchors && status.leader.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(NodeError::Config(format!(
                "cluster did not form: {status:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops every node of the testnet (SIGTERM, then SIGKILL after 10 s). Returns how many ran.
pub async fn down(testnet_dir: &Path) -> Result<usize, NodeError> {
    let mut stopped = 0;
    for index in 1..=7 {
        let Ok(info) = NodeInfo::load(&node_dir(testnet_dir, index)) else {
            continue;
        };
        if !pid_alive(info.pid) {
            continue;
        }
        signal(info.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_alive(info.pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if pid_alive(info.pid) {
            signal(info.pid, "KILL");
        }
        stopped += 1;
    }
    Ok(stopped)
}

/// SIGKILLs `pid` and waits (up to 5 s) until it is gone, so its ports and files are free.
pub async fn kill_and_wait(pid: u32) {
    signal(pid, "KILL");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends a signal with kill(1): this crate forbids unsafe code, so no libc call.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGKILLs every node of a testnet when dropped: tests and benchmarks hold one so a panic or
/// an early return never leaves anchor processes running.
#[derive(Debug)]
pub struct KillOnDrop(pub PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for index in 1..=7 {
            if let Ok(info) = NodeInfo::load(&node_dir(&self.0, index)) {
                signal(info.pid, "KILL");
            }
        }
    }
}
