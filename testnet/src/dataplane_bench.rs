//! `x0t-testnet bench dataplane`: in one run, on one veth topology (two namespaces on a
//! bridge), iperf3 TCP throughput over the raw veth and through the x0t tunnel (1 and 4
//! streams), ping round trips both ways, the hybrid handshake's time (crypto alone, and end
//! to end as the agents log it) and the agents' CPU time per Gbit carried; and the same
//! measures through a userspace WireGuard (boringtun) between the same two namespaces, as
//! the comparison.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x0t_crypto::{NodeCertificate, SigAlgorithm, SigningKey};
use x0t_node::mesh::session::{self, Parties};
use x0t_testnet::mesh_lab::{ALLOW_ALL, MeshLab};
use x0t_testnet::netns::Lab;

use crate::wireguard::{self, WireGuardPair};
use x0t_types::{DeviceClass, MeshId, PqProfile, Timestamp};

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start at ") ".
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// iperf3 from namespace `from` to `ip` in namespace `to`: received bits per second.
async fn iperf(
    lab: &Lab,
    from: usize,
    to: usize,
    ip: &str,
    streams: u32,
    seconds: u32,
) -> anyhow::Result<f64> {
    let mut server = lab
        .command(to, "iperf3")
        .args(["-s", "-1", "-p", "5201", "-B", ip])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let output = lab
        .command(from, "iperf3")
        .args(["-c", ip, "-p", "5201", "-J", "-t", &seconds.to_string()])
        .args(["-P", &streams.to_string()])
        .output()
        .await?;
    let _ = server.kill().await;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("iperf3 said: {}", String::from_utf8_lossy(&output.stderr)))?;
    let retransmits = report["end"]["sum_sent"]["retransmits"]
        .as_u64()
        .unwrap_or(0);
    if retransmits > 0 {
        println!("  ({streams} stream(s) to {ip}: {retransmits} TCP retransmissions)");
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("no throughput in iperf3's report: {}", report["error"]))
}

/// Mean round trip of `count` pings from namespace `from` to `ip`, in milliseconds.
async fn ping(lab: &Lab, from: usize, ip: &str, count: u32) -> anyhow::Result<f64> {
    let output = lab
        .command(from, "ping")
        .args(["-c", &count.to_string(), "-i", "0.02", "-q", ip])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "rtt min/avg/max/mdev = 0.041/0.052/0.081/0.010 ms"
    let line = text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .with_context(|| format!("ping printed no summary: {text}"))?;
    let values = line.split('=').nth(1).context("ping summary")?.trim();
    values
        .split('/')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .context("ping average")
}

/// The signed hybrid handshake in this process (both ends, ML-KEM-768, ML-DSA-65): mean ms.
fn handshake_crypto(rounds: u32) -> anyhow::Result<f64> {
    let mesh = MeshId::new("bench")?;
    let cert = |key: &SigningKey| NodeCertificate {
        mesh: mesh.clone(),
        node_id: key.node_id(),
        identity_key: key.verifying_key().clone(),
        peer_id: vec![1; 38],
        overlay_ip: std::net::Ipv4Addr::new(100, 64, 0, 1),
        tags: Vec::new(),
        device_class: DeviceClass::Server,
        pq_profile: PqProfile::Standard,
        not_before: Timestamp(0),
        not_after: Timestamp(u64::MAX),
        ledger_index: 1,
        issuer: key.node_id(),
    };
    let (a, b) = (
        SigningKey::generate(SigAlgorithm::MlDsa65)?,
        SigningKey::generate(SigAlgorithm::MlDsa65)?,
    );
    let (cert_a, cert_b) = (cert(&a), cert(&b));
    let at_a = Parties {
        mesh: &mesh,
        identity: &a,
        profile: PqProfile::Standard,
        peer: &cert_b,
    };
    let at_b = Parties {
        mesh: &mesh,
        identity: &b,
        profile: PqProfile::Standard,
        peer: &cert_a,
    };
    let started = Instant::now();
    for i in 0..rounds {
        let run = || -> Result<(), String> {
            let (initiating, init) = session::initiate(at_a, i)?;
            let (responding, reply) = session::respond(at_b, i, &init, i + 1)?;
            let (_, confirmation) = session::finish(at_a, initiating, i + 1, &reply)?;
            session::confirm(at_b, responding, &confirmation)?;
            Ok(())
        };
        run().map_err(anyhow::Error::msg)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1_000.0 / f64::from(rounds))
}

/// One tunnel's throughput and what it cost the processes carrying it.
#[derive(Clone, Copy, Debug)]
struct Carried {
    bits: f64,
    cpu_per_gbit: f64,
}

/// iperf3 from namespace 0 to `ip` (through a tunnel), with the CPU time `pids` used.
async fn measure(
    lab: &Lab,
    ip: &str,
    pids: &[u32],
    streams: u32,
    seconds: u32,
) -> anyhow::Result<Carried> {
    let before: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let bits = iperf(lab, 0, 1, ip, streams, seconds).await?;
    let cpu: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - before;
    let gbit = bits * f64::from(seconds) / 1e9;
    Ok(Carried {
        bits,
        cpu_per_gbit: cpu / gbit.max(1e-9),
    })
}

/// The data plane's AEAD alone on one core, framing included (seal a packet of `size`
/// bytes into a frame, then open it in place): Gbit/s of plaintext for each direction.
fn aead_alone(size: usize, duration: Duration) -> anyhow::Result<(f64, f64)> {
    use x0t_crypto::aead::{Opener, Sealer};
    use x0t_crypto::frame::{self, FrameHeader, FrameKind, ReplayWindow};
    use x0t_crypto::hybrid::{self, Initiator};
    use x0t_crypto::kem::KemAlgorithm;
    let kem = KemAlgorithm::MlKem768;
    let (initiator, hello) = Initiator::start(kem, b"bench")?;
    let (reply, responder) = hybrid::respond(kem, b"bench", &hello)?;
    let keys = initiator.finish(&reply)?;
    let mut sealer = Sealer::new(keys.send);
    let opener = Opener::new(responder.receive);
    let header = FrameHeader {
        kind: FrameKind::Data,
        hops: frame::DEFAULT_HOPS,
        dst: x0t_types::NodeId::from_bytes([1; 32]),
        src: x0t_types::NodeId::from_bytes([2; 32]),
        session: 1,
        counter: 0,
    };
    let packet = vec![0x45u8; size];
    // Seal a batch of frames, then open them: the two costs timed apart.
    let batch = 1_000;
    let mut frames = Vec::with_capacity(batch * (size + 128));
    let (mut sealing, mut opening, mut bytes) = (Duration::ZERO, Duration::ZERO, 0usize);
    let mut window = ReplayWindow::new();
    while sealing + opening < duration {
        frames.clear();
        let started = Instant::now();
        let mut lengths = Vec::with_capacity(batch);
        for _ in 0..batch {
            lengths.push(frame::seal_into(&mut sealer, header, &packet, &mut frames)?);
        }
        sealing += started.elapsed();
        let started = Instant::now();
        let mut at = 0;
        for len in lengths {
            let bytes = &mut frames[at..at + len];
            let parsed = FrameHeader::decode(bytes)?;
            frame::open_in_place(&parsed, bytes, &opener, &mut window)?;
            at += len;
        }
        opening += started.elapsed();
        bytes += batch * size;
    }
    let gbit = |t: Duration| bytes as f64 * 8.0 / t.as_secs_f64() / 1e9;
    Ok((gbit(sealing), gbit(opening)))
}

/// End-to-end handshake times the agents logged ("session up (initiator) … ms=N").
fn logged_handshakes(lab: &MeshLab) -> Vec<u64> {
    lab.agents
        .iter()
        .filter_map(|a| std::fs::read_to_string(a.dir.join("agent.log")).ok())
        .flat_map(|log| {
            log.lines()
                .filter(|l| l.contains("session up (initiator)"))
                .filter_map(|l| l.rsplit("ms=").next()?.trim().parse().ok())
                .collect::<Vec<u64>>()
        })
        .collect()
}

/// Runs the benchmark and prints its table.
pub(crate) async fn run(exe: &Path, seconds: u32) -> anyhow::Result<()> {
    if let Some(why) = x0t_testnet::netns::unavailable() {
        bail!("{why}");
    }
    println!(
        "x0t-testnet bench dataplane: two namespaces on a veth bridge, {seconds} s per iperf3 run"
    );
    println!("  x0t binary: {}", exe.display());
    let lab = MeshLab::start(exe, ALLOW_ALL, &["server", "server"], 0).await?;
    let raw_ip = lab.lab.node_ip(1).to_string();
    let overlay = lab.agents[1].overlay.clone();
    // The first packet sets the session up; measure after that.
    if !lab.ping(0, 1, 3).await {
        bail!("no path through the tunnel:\n{}", lab.logs());
    }
    let pids: Vec<u32> = lab
        .agents
        .iter()
        .filter_map(|a| a.child.as_ref()?.id())
        .collect();

    let wireguard = match wireguard::unavailable() {
        Some(why) => {
            println!("  boringtun comparison skipped: {why}");
            None
        }
        None => Some(WireGuardPair::start(&lab.lab).await?),
    };
    if wireguard.is_some() {
        println!("  boringtun-cli tunnel up (MTU {})", wireguard::MTU);
    }

    let mut rows = Vec::new();
    for streams in [1, 4] {
        let raw = iperf(&lab.lab, 0, 1, &raw_ip, streams, seconds).await?;
        let tunnel = measure(&lab.lab, &overlay, &pids, streams, seconds).await?;
        let boring = match &wireguard {
            Some(wg) => {
                Some(measure(&lab.lab, &wg.addresses[1], &wg.pids(), streams, seconds).await?)
            }
            None => None,
        };
        rows.push((streams, raw, tunnel, boring));
    }
    let raw_rtt = ping(&lab.lab, 0, &raw_ip, 50).await?;
    let tunnel_rtt = ping(&lab.lab, 0, &overlay, 50).await?;
    let boring_rtt = match &wireguard {
        Some(wg) => Some(ping(&lab.lab, 0, &wg.addresses[1], 50).await?),
        None => None,
    };
    let crypto_ms = handshake_crypto(50)?;
    let packet = usize::from(lab.mtu);
    let (seal_gbit, open_gbit) = aead_alone(packet, Duration::from_secs(1))?;
    let logged = logged_handshakes(&lab);

    let na = || "n/a".to_owned();
    println!();
    println!("| measure | raw veth | x0t tunnel | boringtun | x0t / raw | x0t / boringtun |");
    println!("|---|---|---|---|---|---|");
    for (streams, raw, tunnel, boring) in &rows {
        println!(
            "| iperf3 TCP, {streams} stream{} | {:.2} Gbit/s | {:.2} Gbit/s | {} | {:.2} | {} |",
            if *streams == 1 { "" } else { "s" },
            raw / 1e9,
            tunnel.bits / 1e9,
            boring.map_or_else(na, |b| format!("{:.2} Gbit/s", b.bits / 1e9)),
            tunnel.bits / raw,
            boring.map_or_else(na, |b| format!("{:.2}", tunnel.bits / b.bits)),
        );
    }
    println!(
        "| ping RTT (mean of 50) | {raw_rtt:.3} ms | {tunnel_rtt:.3} ms | {} | +{:.3} ms | {} |",
        boring_rtt.map_or_else(na, |b| format!("{b:.3} ms")),
        tunnel_rtt - raw_rtt,
        boring_rtt.map_or_else(na, |b| format!("{:+.3} ms", tunnel_rtt - b)),
    );
    for (streams, _, tunnel, boring) in &rows {
        println!(
            "| CPU per Gbit, {streams} stream{} (both ends) | | {:.2} CPU-s | {} | | {} |",
            if *streams == 1 { "" } else { "s" },
            tunnel.cpu_per_gbit,
            boring.map_or_else(na, |b| format!("{:.2} CPU-s", b.cpu_per_gbit)),
            boring.map_or_else(na, |b| format!(
                "{:.2}",
                tunnel.cpu_per_gbit / b.cpu_per_gbit
            )),
        );
    }
    println!();
    // What the AEAD alone would need to carry the raw pair's one-stream rate: a bound no
    // amount of system-call batching moves.
    let raw_one = rows.first().map_or(0.0, |r| r.1) / 1e9;
    let cores = raw_one / seal_gbit + raw_one / open_gbit;
    println!(
        "AEAD alone (ChaCha20-Poly1305 with framing, {packet}-byte packets, one core): seal {seal_gbit:.2} Gbit/s, open {open_gbit:.2} Gbit/s; \
         carrying the raw pair's {raw_one:.1} Gbit/s would take {cores:.1} cores for the AEAD alone (this machine has {})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "hybrid handshake, crypto only (X25519 + ML-KEM-768, 3 ML-DSA-65 signatures and verifications): {crypto_ms:.2} ms"
    );
    if !logged.is_empty() {
        println!(
            "hybrid handshake end to end (over libp2p, as the agents logged it): {logged:?} ms"
        );
    }
    Ok(())
}
