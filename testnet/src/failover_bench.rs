//! `x0t-testnet bench failover`: the relay-kill scenario, repeated. A diamond of agents in
//! network namespaces (A–B–C and A–D–C, no direct A–C nor B–D path); `ping` probes A→C
//! every 10 ms through the mesh; the relay in use is killed with SIGKILL; the gap in the
//! probes' sequence numbers is the failover time seen from outside. Beside it, what the
//! system measured of itself: A's `link_down` (detection) and `path_switched` (failover)
//! events and its SLO endpoint. The killed relay is restarted and the next run kills
//! whichever relay is in use then.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use x0t_testnet::mesh_lab::{ALLOW_ALL, MeshLab, ProbeStream};

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;

/// The goal: failover under this at p99.
const GOAL: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Nearest-rank percentile of `values` (sorted here).
fn percentile(values: &[u64], p: usize) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    (n > 0).then(|| sorted[(n * p).div_ceil(100).clamp(1, n) - 1])
}

fn summary(name: &str, values: &[u64]) {
    let f = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v}"));
    println!(
        "{name:<44} {:>7} {:>7} {:>7} {:>5}",
        f(percentile(values, 50)),
        f(percentile(values, 99)),
        f(values.iter().max().copied()),
        values.len()
    );
}

/// Waits until A routes to C through one relay whose links to A and C are both alive,
/// and the other relay (if running) is up as well; answers the relay in use.
async fn settled(net: &MeshLab) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((hop, 1)) = net.route(A, C).await
            && let Some(relay) = net.agent_index(&hop)
        {
            let mut all_up = true;
            for r in [B, D] {
                all_up &= net.link_alive(A, r).await && net.link_alive(C, r).await;
            }
            if all_up && net.ping(A, C, 1).await {
                return Ok(relay);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the diamond did not settle: {}\n{}",
                net.status(A).await,
                net.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `runs` relay kills.
pub(crate) async fn run(exe: &Path, runs: usize) -> anyhow::Result<()> {
    println!("starting the diamond (3 anchors, 4 agents in namespaces)…");
    let mut net = MeshLab::start_shaped(exe, ALLOW_ALL, &["server"; 4], 0, |lab| {
        lab.block(A, C)?;
        lab.block(B, D)
    })
    .await?;
    let (mut gaps, mut switched_after_kill, mut self_failover, mut detection) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut new_sessions = 0;
    println!(
        "{:>3} {:>6} {:>9} {:>9} {:>12} {:>12} {:>10}",
        "run", "relay", "gap ms", "lost", "switch@kill", "self fail", "detect"
    );
    for run in 1..=runs {
        let relay = settled(&net).await?;
        let sessions = (
            net.counter(A, "sessions_up").await,
            net.counter(C, "sessions_up").await,
        );
        let stream = ProbeStream::start(&net, A, C, 5)?;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let kill_ms = now_ms();
        net.kill_agent(relay).await?;
        let report = stream.finish().await?;
        let gap = report.longest_gap().as_millis() as u64;
        gaps.push(gap);
        // A's own record of this failure.
        let events = net.events(A).await;
        let relay_id = net.agents[relay].node_id.clone();
        let c_id = net.agents[C].node_id.clone();
        let after_kill = |e: &&serde_json::Value| e["at_ms"].as_u64().unwrap_or(0) >= kill_ms;
        let down = events
            .iter()
            .filter(after_kill)
            .find(|e| e["kind"] == "link_down" && e["node"] == relay_id.as_str());
        let switch = events
            .iter()
            .filter(after_kill)
            .find(|e| e["kind"] == "path_switched" && e["node"] == c_id.as_str());
        let switch_at = switch
            .and_then(|e| e["at_ms"].as_u64())
            .map(|t| t - kill_ms);
        let failover = switch.and_then(|e| e["duration_ms"].as_u64());
        let detect = down.and_then(|e| e["duration_ms"].as_u64());
        switched_after_kill.extend(switch_at);
        self_failover.extend(failover);
        detection.extend(detect);
        let now = (
            net.counter(A, "sessions_up").await,
            net.counter(C, "sessions_up").await,
        );
        if now != sessions {
            new_sessions += 1;
        }
        let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        println!(
            "{run:>3} {:>6} {gap:>9} {:>9} {:>12} {:>12} {:>10}",
            ["A", "B", "C", "D"][relay],
            report.sent.saturating_sub(report.answered.len() as u32),
            show(switch_at),
            show(failover),
            show(detect)
        );
        net.start_agent(relay)
            .with_context(|| format!("restarting relay {}", relay + 1))?;
    }
    let slo = net.slo(A).await;
    println!();
    println!("failover over {runs} relay kills (ms)              p50     p99     max     n");
    summary("probe gap, from outside (10 ms probes)", &gaps);
    summary(
        "A's path switch, after the kill (wall clock)",
        &switched_after_kill,
    );
    summary("A's own failover figure (path_switched)", &self_failover);
    summary("A's own detection figure (link_down)", &detection);
    let field = |name: &str, key: &str| {
        slo[name][key]
            .as_u64()
            .map_or("-".to_owned(), |v| v.to_string())
    };
    println!(
        "{:<44} {:>7} {:>7} {:>7} {:>5}",
        "A's SLO endpoint: failover",
        field("failover", "p50_ms"),
        field("failover", "p99_ms"),
        field("failover", "max_ms"),
        field("failover", "count")
    );
    println!(
        "{:<44} {:>7} {:>7} {:>7} {:>5}",
        "A's SLO endpoint: time to repair (links)",
        field("link_outage", "p50_ms"),
        field("link_outage", "p99_ms"),
        field("link_outage", "max_ms"),
        field("link_outage", "count")
    );
    if let Some(p99) = percentile(&gaps, 99) {
        println!(
            "\nprobe-gap p99 {p99} ms = {:.2}× the 2 s goal; runs where a session was set up again: {new_sessions}",
            p99 as f64 / GOAL.as_millis() as f64
        );
    }
    Ok(())
}
