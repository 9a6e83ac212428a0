//! Network-namespace labs: N node namespaces on one bridge, plus a veth from this (the
//! root) namespace so anchors started here are reachable from every node and the test can
//! call their APIs. Everything is created on this machine only and always removed: on drop,
//! and, for labs left behind by a killed test run, when the next lab is created.
//!
//! ```text
//!  root ns: anchors on 10.A.B.254 ──veth── [hub ns: br0] ──veth── n1 ns: eth0 10.A.B.1
//!                                                        ──veth── n2 ns: eth0 10.A.B.2 …
//! ```

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// Every namespace this harness creates starts with this.
const PREFIX: &str = "x0t-";

/// The nftables table of partitions and losses ([`Lab::cut`], [`Lab::heal`]).
const CUT_TABLE: &str = "x0tcut";

static LABS: AtomicU32 = AtomicU32::new(0);

fn run(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills every process inside `namespace` and deletes it.
fn remove_namespace(namespace: &str) {
    if let Ok(output) = Command::new("ip")
        .args(["netns", "pids", namespace])
        .output()
    {
        for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", namespace])
        .stderr(Stdio::null())
        .status();
}

/// Removes labs whose creating process is gone (a test run killed before it cleaned up).
fn remove_stale_labs() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let owner = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|pid| !pid_alive(pid)) {
            remove_namespace(name);
        }
    }
}

/// Whether this machine can host a lab (root, `ip`, `/dev/net/tun`); the reason if not.
pub fn unavailable() -> Option<String> {
    // SAFETY-free check: root is uid 0 in /proc/self/status.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("network-namespace labs need root".to_owned());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed".to_owned());
    }
    if Command::new("nft").arg("-v").output().is_err() {
        return Some("`nft` (nftables) is not installed".to_owned());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".to_owned());
    }
    None
}

/// Set to `1` when network-namespace tests must run: a test that cannot set up a lab then
/// fails instead of passing without having run. `scripts/test` sets it when it runs as root.
pub const REQUIRE_ENV: &str = "X0T_REQUIRE_NETNS";

/// Where skipped tests are listed (`scripts/test` prints the list at the end), under the
/// target directory.
pub const SKIPPED_FILE: &str = "skipped-tests.txt";

/// Whether the test `name` must be skipped because this machine cannot host a lab. A skip is
/// said on stderr and listed in `target/skipped-tests.txt`, so it never passes silently; with
/// [`REQUIRE_ENV`]`=1` it is a failure instead (the panic names what is missing).
pub fn skip_unless_available(name: &str) -> bool {
    let Some(why) = unavailable() else {
        return false;
    };
    assert!(
        std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
        "{name}: {REQUIRE_ENV}=1 but this machine cannot host a network-namespace lab: {why}"
    );
    eprintln!("SKIPPED {name}: {why}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(target.join(SKIPPED_FILE))
    {
        use std::io::Write as _;
        let _ = writeln!(file, "{name}: {why}");
    }
    true
}

/// How [`Lab::degrade`] degraded a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degraded {
    /// `tc netem`: delay and loss.
    Netem,
    /// The kernel has no netem: loss only (nftables), no delay.
    LossOnly,
}

/// A lab: node namespaces on one bridge, reachable from the root namespace.
#[derive(Debug)]
pub struct Lab {
    /// The namespace holding the bridge.
    pub hub: String,
    /// The node namespaces, in order.
    pub nodes: Vec<String>,
    subnet: [u8; 2],
    host_link: String,
}

impl Lab {
    /// Creates a lab of `nodes` namespaces (at most 200).
    pub fn create(nodes: usize) -> anyhow::Result<Self> {
        if let Some(why) = unavailable() {
            bail!(why);
        }
        anyhow::ensure!((1..=200).contains(&nodes), "a lab has 1 to 200 nodes");
        remove_stale_labs();
        let pid = std::process::id();
        let serial = LABS.fetch_add(1, Ordering::Relaxed);
        // A /24 per lab, picked from the process id and a counter: parallel test processes
        // get different subnets (and different namespace names).
        let mix = pid
            .wrapping_mul(2_654_435_761)
            .wrapping_add(serial.wrapping_mul(40_503));
        let subnet = [100 + (mix % 100) as u8, (mix >> 8) as u8];
        let base = format!("{PREFIX}{pid}-{serial}");
        let mut lab = Self {
            hub: format!("{base}-hub"),
            nodes: (1..=nodes).map(|i| format!("{base}-n{i}")).collect(),
            subnet,
            host_link: format!("x0h{:x}", mix & 0xff_ffff),
        };
        lab.build().inspect_err(|_| lab.destroy())?;
        Ok(lab)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let hub = self.hub.clone();
        run(&["ip", "netns", "add", &hub])?;
        run(&["ip", "-n", &hub, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"])?;
        // A lab bridge is a wire: no iptables pass for bridged frames (br_netfilter, when
        // loaded, would charge every packet of both the raw and the tunnelled paths).
        for table in ["iptables", "ip6tables", "arptables"] {
            let key = format!("net.bridge.bridge-nf-call-{table}=0");
            let _ = run(&["ip", "netns", "exec", &hub, "sysctl", "-qw", &key]);
        }
        for (i, ns) in self.nodes.clone().iter().enumerate() {
            let port = format!("v{}", i + 1);
            run(&["ip", "netns", "add", ns])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&[
                "ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ])?;
            run(&[
                "ip", "-n", &hub, "link", "set", &port, "master", "br0", "up",
            ])?;
            let addr = format!("{}/24", self.node_ip(i));
            run(&["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
        }
        let link = self.host_link.clone();
        run(&[
            "ip", "link", "add", &link, "type", "veth", "peer", "name", "vhost", "netns", &hub,
        ])?;
        run(&[
            "ip", "-n", &hub, "link", "set", "vhost", "master", "br0", "up",
        ])?;
        let addr = format!("{}/24", self.host_ip());
        run(&["ip", "addr", "add", &addr, "dev", &link])?;
        run(&["ip", "link", "set", &link, "up"])?;
        Ok(())
    }

    /// Node `i`'s (0-based) address on the bridge.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], (i + 1) as u8)
    }

    /// This (root) namespace's address on the bridge: where anchors listen.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], 254)
    }

    /// A command run inside node `i`'s namespace.
    pub fn command(
        &self,
        i: usize,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command
            .args(["netns", "exec", &self.nodes[i]])
            .arg(program)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Takes node `i`'s link down or up (a cut cable).
    pub fn set_link(&self, i: usize, up: bool) -> anyhow::Result<()> {
        run(&[
            "ip",
            "-n",
            &self.nodes[i],
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ])
    }

    /// Cuts every path between nodes `i` and `j` (blackhole routes on both sides): they can
    /// reach each other only through other nodes.
    pub fn block(&self, i: usize, j: usize) -> anyhow::Result<()> {
        for (from, to) in [(i, j), (j, i)] {
            let target = format!("{}/32", self.node_ip(to));
            run(&[
                "ip",
                "-n",
                &self.nodes[from],
                "route",
                "add",
                "blackhole",
                &target,
            ])?;
        }
        Ok(())
    }

    /// Puts node `i` behind a stateful firewall that admits no inbound connection (what a
    /// NAT does to the node behind it): only replies to what it sent get in.
    pub fn no_inbound(&self, i: usize) -> anyhow::Result<()> {
        // Only the underlay is filtered, as a NAT would: the overlay (TUN) is the mesh's.
        self.nft_rule(
            i,
            "x0tnat",
            "input",
            &["iifname", "eth0", "ct", "state", "new", "drop"],
        )
    }

    /// Degrades node `i`'s link: every packet it sends is delayed by `delay_ms` and lost
    /// with `loss_percent` probability (`tc netem`). Kernels built without netem (this
    /// CI's is one) get the loss alone, from an nftables rule; the answer says which.
    pub fn degrade(&self, i: usize, delay_ms: u32, loss_percent: u32) -> anyhow::Result<Degraded> {
        let ns = &self.nodes[i];
        let (delay, loss) = (format!("{delay_ms}ms"), format!("{loss_percent}%"));
        let netem = run(&[
            "tc", "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", &delay,
            "loss", &loss,
        ]);
        if netem.is_ok() {
            return Ok(Degraded::Netem);
        }
        let below = loss_percent.to_string();
        self.nft_rule(
            i,
            "x0tloss",
            "output",
            &[
                "oif", "eth0", "numgen", "random", "mod", "100", "<", &below, "drop",
            ],
        )?;
        Ok(Degraded::LossOnly)
    }

    /// Silently drops every packet between nodes `i` and `j`, both ways, as a partition
    /// does: neither side gets an error, only silence (nftables, undone by [`Lab::heal`]).
    pub fn cut(&self, i: usize, j: usize) -> anyhow::Result<()> {
        self.cut_one_way(i, j)?;
        self.cut_one_way(j, i)
    }

    /// Drops what node `from` sends to node `to`; the other direction still flows.
    pub fn cut_one_way(&self, from: usize, to: usize) -> anyhow::Result<()> {
        let to = self.node_ip(to).to_string();
        self.nft_rule(from, CUT_TABLE, "output", &["ip", "daddr", &to, "drop"])
    }

    /// Loses `percent` % of what node `from` sends to node `to`, at random (nftables).
    pub fn lose(&self, from: usize, to: usize, percent: u32) -> anyhow::Result<()> {
        let to = self.node_ip(to).to_string();
        let below = percent.min(100).to_string();
        self.nft_rule(
            from,
            CUT_TABLE,
            "output",
            &[
                "ip", "daddr", &to, "numgen", "random", "mod", "100", "<", &below, "drop",
            ],
        )
    }

    /// Removes every [`Lab::cut`], [`Lab::cut_one_way`] and [`Lab::lose`] rule (not
    /// [`Lab::no_inbound`] or [`Lab::degrade`]).
    pub fn heal(&self) -> anyhow::Result<()> {
        for ns in &self.nodes {
            let listed = Command::new("ip")
                .args([
                    "netns", "exec", ns, "nft", "list", "table", "inet", CUT_TABLE,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .with_context(|| format!("nft in {ns}"))?;
            if listed.success() {
                run(&[
                    "ip", "netns", "exec", ns, "nft", "delete", "table", "inet", CUT_TABLE,
                ])?;
            }
        }
        Ok(())
    }

    /// Undoes [`Lab::degrade`] on node `i`.
    pub fn undegrade(&self, i: usize) {
        let ns = &self.nodes[i];
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(["netns", "exec", ns])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["tc", "qdisc", "del", "dev", "eth0", "root"]);
        quiet(&["nft", "delete", "table", "inet", "x0tloss"]);
    }

    /// Adds `rule` to a filter chain on `hook` (`input`, `output`) of table `table` in node
    /// `i`'s namespace, creating both.
    fn nft_rule(&self, i: usize, table: &str, hook: &str, rule: &[&str]) -> anyhow::Result<()> {
        let nft = |args: &[&str]| {
            let mut command = vec!["ip", "netns", "exec", &self.nodes[i], "nft"];
            command.extend_from_slice(args);
            run(&command)
        };
        nft(&["add", "table", "inet", table])?;
        nft(&[
            "add", "chain", "inet", table, hook, "{", "type", "filter", "hook", hook, "priority",
            "0", ";", "}",
        ])?;
        let mut add = vec!["add", "rule", "inet", table, hook];
        add.extend_from_slice(rule);
        nft(&add)
    }

    fn destroy(&self) {
        for ns in &self.nodes {
            remove_namespace(ns);
        }
        remove_namespace(&self.hub);
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.destroy();
    }
}
