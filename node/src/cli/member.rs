//! The `x0t` commands of an approved node's data plane: `agent run`, `ping`, `expose`,
//! `connect`, and the peer table of `status`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use x0t_node::identity;
use x0t_node::mesh::local_api::{LocalClient, MemberStatus};
use x0t_node::mesh::{MemberConfig, MemberInfo, TunConfig};

/// A data directory argument shared by the member commands.
#[derive(Debug, clap::Args)]
pub(crate) struct MemberDir {
    /// Data directory of the approved node [default: $X0T_DATA_DIR, else /var/lib/x0t as
    /// root, else ~/.local/share/x0t]
    #[arg(long, env = identity::DATA_DIR_ENV)]
    dir: Option<PathBuf>,
}

impl MemberDir {
    fn resolve(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(identity::default_data_dir)
    }

    fn client(&self) -> anyhow::Result<LocalClient> {
        Ok(LocalClient::for_data_dir(&self.resolve())?)
    }
}

/// `x0t agent …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Run this approved node's data plane until interrupted: connect to the anchors and
    /// the other members, bring sessions up, carry packets (TUN) or streams (userspace).
    Run {
        #[command(flatten)]
        dir: MemberDir,
        /// Create a TUN device with the node's overlay address (needs root); without it the
        /// node runs in userspace mode (`x0t expose` / `x0t connect`).
        #[arg(long)]
        tun: bool,
        /// TUN device name.
        #[arg(long, default_value = "x0t0")]
        tun_name: String,
        /// TUN MTU (the underlay MTU minus 128 bytes of overhead).
        #[arg(long, default_value_t = 1_372)]
        mtu: u16,
        /// IP for peer-to-peer (libp2p) and data-plane sockets.
        #[arg(long, default_value = "0.0.0.0")]
        ip: IpAddr,
        /// libp2p port (TCP and QUIC); 0 picks one.
        #[arg(long, default_value_t = 7421)]
        p2p_port: u16,
        /// Data-plane port (UDP frames, TCP userspace streams); 0 picks one.
        #[arg(long, default_value_t = 7422)]
        data_port: u16,
        /// Local API listen address (loopback).
        #[arg(long, default_value = "127.0.0.1:7420")]
        api_listen: SocketAddr,
        /// Ask an anchor for a newer mesh state this often, in seconds (pushes are instant).
        #[arg(long, default_value_t = 2)]
        state_poll: u64,
        /// Renew session keys after this many seconds.
        #[arg(long, default_value_t = 120, hide = true)]
        rekey_after: u64,
    },
}

pub(crate) async fn agent(which: AgentCommand) -> anyhow::Result<()> {
    let AgentCommand::Run {
        dir,
        tun,
        tun_name,
        mtu,
        ip,
        p2p_port,
        data_port,
        api_listen,
        state_poll,
        rekey_after,
    } = which;
    let data_dir = dir.resolve();
    let ip_part = match ip {
        IpAddr::V4(ip) => format!("/ip4/{ip}"),
        IpAddr::V6(ip) => format!("/ip6/{ip}"),
    };
    let config = MemberConfig {
        data_dir: data_dir.clone(),
        p2p_listen: vec![
            format!("{ip_part}/udp/{p2p_port}/quic-v1").parse()?,
            format!("{ip_part}/tcp/{p2p_port}").parse()?,
        ],
        data_listen: SocketAddr::new(ip, data_port),
        api_listen,
        tun: tun.then_some(TunConfig {
            name: tun_name,
            mtu,
        }),
        rekey: x0t_crypto::frame::RekeyPolicy {
            after_ms: rekey_after.max(1) * 1_000,
            ..x0t_crypto::frame::RekeyPolicy::DEFAULT
        },
        state_poll: Duration::from_secs(state_poll.max(1)),
    };
    let shutdown = crate::shutdown_signal().await;
    let member = tokio::spawn(x0t_node::mesh::run_member(config, shutdown));
    while !member.is_finished() {
        if let Ok(info) = MemberInfo::load(&data_dir)
            && info.pid == std::process::id()
        {
            println!(
                "x0t agent {} is up in mesh {}",
                &info.node_id[..16],
                info.mesh
            );
            println!(
                "  overlay:   {}{}",
                info.overlay_ip,
                info.tun
                    .as_deref()
                    .map(|t| format!(" on {t}"))
                    .unwrap_or_else(|| " (userspace mode)".to_owned())
            );
            println!("  data port: {} (UDP frames, TCP streams)", info.data_port);
            println!("  peers:     {}", info.p2p_addrs.join(" "));
            println!("  status:    x0t status --dir {}", data_dir.display());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    member.await.context("agent task failed")??;
    Ok(())
}

/// `x0t events`.
#[derive(Debug, clap::Args)]
pub(crate) struct EventsArgs {
    /// Keep printing new events as they happen (until interrupted).
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    dir: MemberDir,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let client = args.dir.client()?;
    let print = |event: &x0t_node::events::MeshEvent| -> anyhow::Result<()> {
        if args.json {
            println!("{}", serde_json::to_string(event)?);
        } else {
            let kind = serde_json::to_value(event.kind)?;
            let took = event
                .duration_ms
                .map_or(String::new(), |ms| format!(" ({ms} ms)"));
            println!(
                "{:>6} {:>12.3}s {:<15} {:<17} {}{took}",
                event.id,
                event.uptime_us as f64 / 1e6,
                kind.as_str().unwrap_or("?"),
                event.node.as_deref().map_or("-", |n| &n[..n.len().min(16)]),
                event.detail
            );
        }
        Ok(())
    };
    if !args.follow {
        for event in client.events(0).await? {
            print(&event)?;
        }
        return Ok(());
    }
    // The live stream (server-sent events): what is kept, then each event as it happens.
    let mut failed = None;
    client
        .follow_events(0, |event| match print(&event) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })
        .await?;
    failed.map_or(Ok(()), Err)
}

/// `x0t slo`, `x0t topology`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    dir: MemberDir,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn figures(p: &x0t_node::events::Percentiles) -> String {
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    format!(
        "p50 {:>8}  p99 {:>8}  max {:>8}  ({} measured)",
        ms(p.p50_ms),
        ms(p.p99_ms),
        ms(p.max_ms),
        p.count
    )
}

pub(crate) async fn slo(args: ReportArgs) -> anyhow::Result<()> {
    let slo = args.dir.client()?.slo().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&slo)?);
        return Ok(());
    }
    let report = &slo.report;
    println!(
        "from {} events; {} link failures, {} destinations left unreachable",
        report.events, report.failures, report.unreachable
    );
    println!("failover      {}", figures(&report.failover));
    println!("detection     {}", figures(&report.detection));
    println!("time to repair {}", figures(&report.link_outage));
    let span = |ms: u64| {
        if ms < 10_000 {
            format!("{ms} ms")
        } else if ms < 7_200_000 {
            format!("{:.1} min", ms as f64 / 60_000.0)
        } else {
            format!("{:.1} h", ms as f64 / 3_600_000.0)
        }
    };
    match (
        slo.onboarding.approved_to_first_session_ms,
        slo.onboarding.started_to_first_session_ms,
    ) {
        (Some(approved), Some(started)) => println!(
            "onboarding    approved → first session {}; this run's start → first session {}",
            span(approved),
            span(started)
        ),
        _ => println!("onboarding    no session yet"),
    }
    Ok(())
}

pub(crate) async fn topology(args: ReportArgs) -> anyhow::Result<()> {
    let topology = args.dir.client()?.topology().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&topology)?);
        return Ok(());
    }
    println!("{:<17} {:<16} {:<10} VIA", "NODE", "OVERLAY", "REACH");
    for node in &topology.nodes {
        let reach = match (node.local, node.neighbour, node.reachable) {
            (true, _, _) => "this node",
            (_, true, true) => "neighbour",
            (_, _, true) => "relayed",
            _ => "no route",
        };
        println!(
            "{:<17} {:<16} {:<10} {}",
            &node.node_id[..16],
            node.overlay_ip.as_deref().unwrap_or("-"),
            reach,
            node.via.as_deref().map_or("-", |v| &v[..16])
        );
    }
    println!();
    println!(
        "{:<17} {:<17} {:<10} {:>9} {:>6}",
        "A", "B", "HEALTH", "RTT", "LOSS"
    );
    for link in &topology.links {
        println!(
            "{:<17} {:<17} {:<10} {:>9} {:>6}",
            &link.a[..16],
            &link.b[..16],
            link.health,
            link.rtt_micros.map_or("-".to_owned(), |us| format!(
                "{:.2} ms",
                f64::from(us) / 1e3
            )),
            link.loss_permille
                .map_or("-".to_owned(), |l| format!("{:.1}%", f64::from(l) / 10.0)),
        );
    }
    Ok(())
}

/// `x0t ping`.
#[derive(Debug, clap::Args)]
pub(crate) struct PingArgs {
    /// The node: id, short id or overlay address.
    node: String,
    /// How many pings.
    #[arg(short = 'c', long, default_value_t = 4)]
    count: u32,
    #[command(flatten)]
    dir: MemberDir,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn ping(args: PingArgs) -> anyhow::Result<()> {
    let report = args.dir.client()?.ping(&args.node, args.count).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (seq, rtt) in report.rtts_ms.iter().enumerate() {
            match rtt {
                Some(ms) => println!("from {}: seq={seq} time={ms:.3} ms", &report.node_id[..16]),
                None => println!("from {}: seq={seq} timeout", &report.node_id[..16]),
            }
        }
    }
    let answered = report.rtts_ms.iter().flatten().count();
    anyhow::ensure!(answered > 0, "no answer from {}", args.node);
    Ok(())
}

/// `x0t expose`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExposeArgs {
    /// The local TCP port to offer to the mesh.
    port: u16,
    /// The name peers use: `x0t connect <this node>/<name>`.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    dir: MemberDir,
}

pub(crate) async fn expose(args: ExposeArgs) -> anyhow::Result<()> {
    args.dir.client()?.expose(&args.name, args.port).await?;
    println!(
        "exposed 127.0.0.1:{} to the mesh as {:?} (the policy decides who may connect)",
        args.port, args.name
    );
    Ok(())
}

/// `x0t connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// `<node>/<service>`: node id, short id or overlay address, and the exposed name.
    target: String,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[command(flatten)]
    dir: MemberDir,
}

pub(crate) async fn connect(args: ConnectArgs) -> anyhow::Result<()> {
    let bound = args
        .dir
        .client()?
        .connect(&args.target, args.listen)
        .await?;
    println!(
        "forwarding {bound} → {} through the mesh (until the agent stops)",
        args.target
    );
    Ok(())
}

/// The peer table `x0t status` prints when the agent is running.
pub(crate) fn print_peers(status: &MemberStatus) {
    println!(
        "data plane:  {} {}, policy v{}, mesh state #{}, {} anchor(s) reached",
        status.overlay_ip,
        status
            .tun
            .as_deref()
            .map(|t| format!("on {t}"))
            .unwrap_or_else(|| "userspace".to_owned()),
        status.policy_version,
        status.state_index,
        status.anchors_reached
    );
    if status.peers.is_empty() {
        println!("peers:       none yet");
        return;
    }
    println!(
        "{:<18} {:<15} {:<28} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "PEER", "OVERLAY", "PATH", "RTT", "LINK", "SENT", "RECEIVED", "SESSION"
    );
    for p in &status.peers {
        println!(
            "{:<18} {:<15} {:<28} {:>9} {:>9} {:>10} {:>10} {:>8}",
            &p.node_id[..16],
            p.overlay_ip,
            p.path,
            p.rtt_ms
                .map(|ms| format!("{ms:.2}ms"))
                .unwrap_or_else(|| "-".to_owned()),
            link(p),
            bytes(p.bytes_sent),
            bytes(p.bytes_received),
            p.session_age_s
                .map(|s| format!("{s}s"))
                .unwrap_or_else(|| "-".to_owned()),
        );
    }
    let dropped: u64 = status
        .counters
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("frames_sent")
                && !k.starts_with("frames_received")
                && !k.starts_with("links_")
                // Duplicates are how flooding works, not drops.
                && *k != "link_states_stale"
        })
        .map(|(_, v)| v)
        .sum();
    if dropped > 0 {
        println!("dropped:     {dropped} (x0t status --json for the reasons)");
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1}G", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1}M", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1}K", n as f64 / 1024.0),
        n => format!("{n}B"),
    }
}

/// The running member's status, if one runs on `dir`.
pub(crate) async fn running_status(dir: &std::path::Path) -> Option<MemberStatus> {
    let client = LocalClient::for_data_dir(dir).ok()?;
    client.status().await.ok()
}

/// A peer's link as the status table shows it: up (with its loss, if any), down, or "-"
/// before the first probe answer.
fn link(p: &x0t_node::mesh::local_api::PeerStatus) -> String {
    match (p.link_alive, p.session_age_s.is_some(), p.loss_permille) {
        (true, _, 0) => "up".to_owned(),
        (true, _, loss) => format!("up {:.1}%", f64::from(loss) / 10.0),
        (false, true, _) => "down".to_owned(),
        (false, false, _) => "-".to_owned(),
    }
}
