//! Soak: a long run of churn against three anchors, watching for growth. About `agents` light
//! agents stay live (arrivals while at or below that, departures while at or above: the
//! fleet does not grow, so what grows is the system). Light agents (see
//! [`crate::scale`]) join (register, approved, connect), leave and come back (same
//! identity, a restarted device), leave for good, and are revoked; one anchor at a time is
//! killed (-9) and restarted from disk every few minutes. Once a minute the run samples each
//! anchor's resident memory and sled directory; the figure is the growth per minute (least
//! squares over the samples after a warm-up), against the goal of < 1 MB/min.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use x0t_node::NodeInfo;
use x0t_node::testnet;

use crate::scale::{
    AgentContext, AgentStats, AnchorAddr, Enrollment, LightAgent, LoopbackAnchors, MESH,
    approve_all, dir_bytes, register_all, rss_bytes,
};

/// Sizes of a soak run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// How long it runs.
    pub duration: Duration,
    /// Agents kept live (churn replaces the ones that go).
    pub agents: usize,
    /// One churn event every this long.
    pub churn_every: Duration,
    /// One anchor restarted (kill -9, restart from disk) every this long.
    pub restart_every: Duration,
    /// Samples before this much time has passed are left out of the growth figure.
    pub warm_up: Duration,
}

/// One per-minute sample.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Since the run started.
    pub at: Duration,
    /// Each anchor's resident memory (bytes; 0 while it restarts).
    pub rss: Vec<u64>,
    /// Each anchor's sled directory (bytes).
    pub disk: Vec<u64>,
    /// Live agents at that moment.
    pub live: usize,
}

/// What a soak run saw.
#[derive(Debug)]
pub struct SoakReport {
    /// Samples, one a minute.
    pub samples: Vec<Sample>,
    /// Churn events done: joins, rejoins, leaves, revocations, anchor restarts.
    pub events: [usize; 5],
    /// Per anchor: resident-memory growth, MB per minute (after warm-up).
    pub rss_growth: Vec<f64>,
    /// Per anchor: sled growth, MB per minute (after warm-up).
    pub disk_growth: Vec<f64>,
    /// Agent requests that failed (revoked agents' last reports, restarts).
    pub failures: usize,
}

/// Least-squares slope of (minutes, megabytes) points.
pub fn slope_mb_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

struct Live {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<Enrollment>>,
    node_id: String,
}

/// Runs the soak; prints a line a minute as it goes.
pub async fn run(exe: &Path, config: &SoakConfig) -> anyhow::Result<SoakReport> {
    let cluster = LoopbackAnchors::start(exe, 3, "soak").await?;
    let (dir, base, anchors, admin_key, http) = (
        cluster.dir.clone(),
        cluster.base,
        cluster.anchors.clone(),
        cluster.admin_key.clone(),
        cluster.http.clone(),
    );

    let stats = Arc::new(AgentStats::default());
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::unbounded_channel();
    // Nobody waits on connections here; keep the channel drained.
    tokio::spawn(async move { while connected_rx.recv().await.is_some() {} });
    let ctx = AgentContext {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        anchors: anchors.clone(),
        poll: Duration::from_secs(1),
        report_every: Duration::from_secs(1),
        stats: stats.clone(),
        connected: connected_tx,
    };
    let mut live: VecDeque<Live> = VecDeque::new();
    // Agents that left but may come back with the same identity (a restarted device).
    let mut away: Vec<Enrollment> = Vec::new();
    let mut serial = 0usize;
    let mut events = [0usize; 5];

    // The first agents.
    let first: Vec<Enrollment> = (0..config.agents)
        .map(|_| {
            serial += 1;
            Enrollment::new(serial)
        })
        .collect::<anyhow::Result<_>>()?;
    register_all(&http, &anchors, &first, 16).await?;
    let ids: Vec<String> = first.iter().map(Enrollment::node_id).collect();
    approve_all(&http, &anchors, &admin_key, &ids, 16).await?;
    for enrollment in first {
        live.push_back(start_agent(enrollment, &ctx).await?);
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = started;
    let mut next_restart = started + config.restart_every;
    let mut restart_turn = 0usize;
    let mut rng = 0x5851_f42d_4c95_7f2d_u64;
    let mut tick = tokio::time::interval(config.churn_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < config.duration {
        tick.tick().await;
        if Instant::now() >= next_sample {
            let sample = sample(&dir, started.elapsed(), live.len());
            eprintln!(
                "soak {:>5.1} min: {} live agents, anchor RSS {:?} MiB, sled {:?} MiB",
                sample.at.as_secs_f64() / 60.0,
                sample.live,
                sample.rss.iter().map(|b| b / (1 << 20)).collect::<Vec<_>>(),
                sample
                    .disk
                    .iter()
                    .map(|b| b / (1 << 20))
                    .collect::<Vec<_>>(),
            );
            samples.push(sample);
            next_sample += Duration::from_secs(60);
        }
        if Instant::now() >= next_restart {
            let index = restart_turn % 3 + 1;
            restart_turn += 1;
            let info = NodeInfo::load(&testnet::node_dir(&dir, index))?;
            testnet::kill_and_wait(info.pid).await;
            let pid = testnet::spawn_node(exe, &dir, index, base, None, &[])?;
            testnet::wait_ready(&dir, index, pid, Duration::from_secs(60)).await?;
            events[4] += 1;
            next_restart += config.restart_every;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // The population stays near its target: devices arrive while it is at or below
        // it and go while it is at or above it, so growth measured is the system's, not
        // a growing fleet's.
        let below = live.len() <= config.agents;
        let above = live.len() >= config.agents;
        match rng % 10 {
            // A new device joins: registered, approved, connected.
            0..=2 if below => {
                serial += 1;
                live.push_back(join_new(serial, &http, &anchors, &admin_key, &ctx).await?);
                events[0] += 1;
            }
            // A device that left comes back (same identity and certificate).
            3..=4 if below && !away.is_empty() => {
                let enrollment = away.swap_remove((rng >> 8) as usize % away.len());
                live.push_back(start_agent(enrollment, &ctx).await?);
                events[1] += 1;
            }
            // A device goes away (it may come back).
            5..=7 if above => {
                let gone = live.pop_front().expect("not empty");
                let _ = gone.stop.send(true);
                if let Ok(Ok(enrollment)) = gone.task.await {
                    away.push(enrollment);
                }
                events[2] += 1;
            }
            // An admin revokes a device.
            8 if !live.is_empty() => {
                let victim = live.pop_front().expect("not empty");
                let url = format!(
                    "{}/api/v1/meshes/{MESH}/nodes/{}/revoke",
                    anchors[0].api_url, victim.node_id
                );
                let _ = http
                    .post(&url)
                    .bearer_auth(&admin_key)
                    .json(&json!({ "reason": "soak churn" }))
                    .send()
                    .await;
                let _ = victim.stop.send(true);
                let _ = victim.task.await;
                events[3] += 1;
            }
            _ => {}
        }
        // Keep the population near its target.
        while live.len() < config.agents / 2 {
            serial += 1;
            live.push_back(join_new(serial, &http, &anchors, &admin_key, &ctx).await?);
            events[0] += 1;
        }
    }
    samples.push(sample(&dir, started.elapsed(), live.len()));
    for agent in live {
        let _ = agent.stop.send(true);
        let _ = agent.task.await;
    }
    testnet::down(&dir).await?;

    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= config.warm_up).collect();
    let rss_growth = (0..3)
        .map(|a| {
            let points: Vec<(f64, f64)> = after
                .iter()
                .filter(|s| s.rss[a] > 0)
                .map(|s| (s.at.as_secs_f64() / 60.0, s.rss[a] as f64 / 1e6))
                .collect();
            slope_mb_per_min(&points)
        })
        .collect();
    let disk_growth = (0..3)
        .map(|a| {
            let points: Vec<(f64, f64)> = after
                .iter()
                .map(|s| (s.at.as_secs_f64() / 60.0, s.disk[a] as f64 / 1e6))
                .collect();
            slope_mb_per_min(&points)
        })
        .collect();
    Ok(SoakReport {
        samples,
        events,
        rss_growth,
        disk_growth,
        failures: stats.failures.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// A new device: registered, approved, its agent started.
async fn join_new(
    serial: usize,
    http: &reqwest::Client,
    anchors: &[AnchorAddr],
    admin_key: &str,
    ctx: &AgentContext,
) -> anyhow::Result<Live> {
    let enrollment = Enrollment::new(serial)?;
    register_all(http, anchors, std::slice::from_ref(&enrollment), 1).await?;
    approve_all(http, anchors, admin_key, &[enrollment.node_id()], 1).await?;
    start_agent(enrollment, ctx).await
}

async fn start_agent(enrollment: Enrollment, ctx: &AgentContext) -> anyhow::Result<Live> {
    let node_id = enrollment.node_id();
    let agent = LightAgent::start(enrollment).await?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(agent.run(ctx.clone(), stopped));
    Ok(Live {
        stop,
        task,
        node_id,
    })
}

fn sample(dir: &Path, at: Duration, live: usize) -> Sample {
    let mut rss = Vec::new();
    let mut disk = Vec::new();
    for index in 1..=3 {
        let node = testnet::node_dir(dir, index);
        rss.push(
            NodeInfo::load(&node)
                .ok()
                .and_then(|info| rss_bytes(info.pid))
                .unwrap_or(0),
        );
        disk.push(dir_bytes(&node.join("db")));
    }
    Sample {
        at,
        rss,
        disk,
        live,
    }
}
