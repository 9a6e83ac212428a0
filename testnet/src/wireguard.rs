//! A userspace WireGuard tunnel (Cloudflare's `boringtun-cli`, configured with `wg` from
//! wireguard-tools) between two namespaces of a lab: the comparison the data-plane
//! benchmark measures x0t against, on the same veth topology in the same run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x0t_testnet::netns::Lab;

/// The UDP port each end listens on (inside its own namespace).
const PORT: u16 = 51_820;
/// WireGuard's usual MTU over a 1,500-byte underlay (80 bytes of IPv4 + UDP + WireGuard).
pub(crate) const MTU: u16 = 1_420;

/// Why the comparison cannot run here, if it cannot: a missing program.
pub(crate) fn unavailable() -> Option<String> {
    for (program, how) in [
        (
            "boringtun-cli",
            "cargo install boringtun-cli --version 0.7.1 --locked",
        ),
        ("wg", "apt-get install wireguard-tools"),
    ] {
        if which(program).is_none() {
            return Some(format!(
                "{program} not found (scripts/bench installs it; or: {how})"
            ));
        }
    }
    None
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Two boringtun-cli processes, one in each of the lab's first two namespaces, peered with
/// each other; killed on drop.
pub(crate) struct WireGuardPair {
    /// The tunnel address of each end.
    pub(crate) addresses: [String; 2],
    children: Vec<tokio::process::Child>,
    names: [String; 2],
    _keys: tempfile::TempDir,
}

impl WireGuardPair {
    /// Starts and configures both ends; fails unless a ping crosses the tunnel.
    pub(crate) async fn start(lab: &Lab) -> anyhow::Result<Self> {
        // Interface names are per namespace, but the control sockets all live in
        // /var/run/wireguard: unique per run.
        let tag = std::process::id() % 100_000;
        let names = [format!("bt{tag}a"), format!("bt{tag}b")];
        let addresses = ["172.31.254.1".to_owned(), "172.31.254.2".to_owned()];
        let keys = tempfile::tempdir()?;
        let mut publics = Vec::new();
        for i in 0..2 {
            let private = run_capture("wg", &["genkey"], None).await?;
            let path = keys.path().join(format!("{i}.key"));
            std::fs::write(&path, &private)?;
            publics.push(run_capture("wg", &["pubkey"], Some(private.as_bytes())).await?);
        }
        let mut pair = Self {
            addresses,
            children: Vec::new(),
            names,
            _keys: keys,
        };
        for i in 0..2 {
            let child = lab
                .command(i, "boringtun-cli")
                .args([pair.names[i].as_str(), "--foreground"])
                .args(["--disable-drop-privileges"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting boringtun-cli")?;
            pair.children.push(child);
        }
        for i in 0..2 {
            let socket = Path::new("/var/run/wireguard").join(format!("{}.sock", pair.names[i]));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !socket.exists() {
                if Instant::now() > deadline {
                    bail!("boringtun-cli made no control socket {}", socket.display());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let other = 1 - i;
            let key = pair._keys.path().join(format!("{i}.key"));
            let endpoint = format!("{}:{PORT}", lab.node_ip(other));
            let allowed = format!("{}/32", pair.addresses[other]);
            let port = PORT.to_string();
            let key = key.to_string_lossy();
            let set = [
                "set",
                pair.names[i].as_str(),
                "private-key",
                &key,
                "listen-port",
                &port,
                "peer",
                publics[other].as_str(),
                "endpoint",
                &endpoint,
                "allowed-ips",
                &allowed,
            ];
            check(lab.command(i, "wg").args(set), "wg set").await?;
            let address = format!("{}/24", pair.addresses[i]);
            check(
                lab.command(i, "ip")
                    .args(["addr", "add", &address, "dev", &pair.names[i]]),
                "ip addr add",
            )
            .await?;
            let mtu = MTU.to_string();
            check(
                lab.command(i, "ip")
                    .args(["link", "set", &pair.names[i], "mtu", &mtu, "up"]),
                "ip link set up",
            )
            .await?;
        }
        let ping = lab
            .command(0, "ping")
            .args(["-c", "3", "-i", "0.2", "-W", "2", &pair.addresses[1]])
            .output()
            .await?;
        if !ping.status.success() {
            bail!(
                "no ping through the boringtun tunnel: {}",
                String::from_utf8_lossy(&ping.stdout)
            );
        }
        Ok(pair)
    }

    /// The boringtun processes' ids (for their CPU time).
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(|c| c.id()).collect()
    }
}

impl Drop for WireGuardPair {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for name in &self.names {
            let _ =
                std::fs::remove_file(Path::new("/var/run/wireguard").join(format!("{name}.sock")));
        }
    }
}

async fn run_capture(program: &str, args: &[&str], input: Option<&[u8]>) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(input) = input {
            stdin.write_all(input).await?;
        }
        drop(stdin);
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

async fn check(command: &mut tokio::process::Command, what: &str) -> anyhow::Result<()> {
    let output = command.stdout(Stdio::null()).output().await?;
    if !output.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
