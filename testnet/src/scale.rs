//! Scale: many registered nodes and many live agents against a few anchors, on one machine.
//!
//! A **light agent** is what an anchor sees of a real member, without the data plane: its
//! own ML-DSA identity and libp2p swarm (QUIC, Noise), a signed registration, the wait for
//! approval (polling its status, as `x0t join` does), then the certificate hello to every
//! anchor and a signed link-state report every interval. Thousands of them run in this one
//! process on one tokio runtime; their memory is this process's growth divided by their
//! number. They have no TUN, no probes between members and no sessions (a mesh of 1,000
//! full members on two cores would measure the machine, not the anchors).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use libp2p::{Multiaddr, PeerId};
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use x0t_crypto::{
    LinkStateAdvert, Registration, SigAlgorithm, SignedLinkState, SignedNodeCertificate, SigningKey,
};
use x0t_node::NodeInfo;
use x0t_node::p2p::protocol::{ControlRequest, ControlResponse, MeshRequest, PeerHello};
use x0t_node::p2p::{P2p, P2pConfig};
use x0t_types::{DeviceClass, MeshId, Tag, Timestamp, base32};

/// The mesh every node of a scale run joins.
pub const MESH: &str = "scale";

/// How to reach one anchor.
#[derive(Clone, Debug)]
pub struct AnchorAddr {
    /// Its libp2p peer id.
    pub peer: PeerId,
    /// Its peer addresses.
    pub addrs: Vec<Multiaddr>,
    /// Its API.
    pub api_url: String,
}

impl AnchorAddr {
    /// From a running anchor's `node.json`.
    pub fn from_info(info: &NodeInfo) -> anyhow::Result<Self> {
        Ok(Self {
            peer: info.peer_id.parse()?,
            addrs: info
                .p2p_addrs
                .iter()
                .map(|a| a.parse())
                .collect::<Result<_, _>>()?,
            api_url: info.api_url.clone(),
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A node's identity and its signed registration (base32, as the API takes it).
pub struct Enrollment {
    /// Its ML-DSA identity.
    pub key: SigningKey,
    /// Its libp2p identity (the registration names it).
    pub keypair: libp2p::identity::Keypair,
    /// The registration text.
    pub registration: String,
}

impl Enrollment {
    /// A fresh identity with a registration for [`MESH`].
    pub fn new(n: usize) -> anyhow::Result<Self> {
        let key = SigningKey::generate(SigAlgorithm::MlDsa65)?;
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let signed = Registration {
            mesh: MeshId::new(MESH)?,
            node_id: key.node_id(),
            identity_key: key.verifying_key().clone(),
            peer_id: keypair.public().to_peer_id().to_bytes(),
            hostname: format!("scale-{n}"),
            device_class: DeviceClass::Sensor,
            requested_tags: vec![Tag::new("sensor")?],
            requested_at: Timestamp(now_ms()),
        }
        .sign(&key)?;
        Ok(Self {
            key,
            keypair,
            registration: base32::encode(&signed.encode()),
        })
    }

    /// Its node id (text).
    pub fn node_id(&self) -> String {
        self.key.node_id().to_string()
    }
}

/// Registers `enrollments` through the anchors' APIs, `concurrency` at a time (spread over
/// the anchors); answers the time it took.
pub async fn register_all(
    http: &reqwest::Client,
    anchors: &[AnchorAddr],
    enrollments: &[Enrollment],
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, enrollment) in enrollments.iter().enumerate() {
        let permit = permits.clone().acquire_owned().await?;
        let url = format!(
            "{}/api/v1/meshes/{MESH}/nodes/register",
            anchors[n % anchors.len()].api_url
        );
        let body = json!({ "registration": enrollment.registration });
        let http = http.clone();
        tasks.spawn(async move {
            let _permit = permit;
            retry(|| async {
                let response = http.post(&url).json(&body).send().await?;
                let status = response.status();
                if status.is_success() || status.as_u16() == 409 {
                    return Ok(());
                }
                bail!(
                    "register: {status} {}",
                    response.text().await.unwrap_or_default()
                )
            })
            .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// Approves `node_ids` (admin key), `concurrency` at a time; answers when each approval
/// was answered, in order.
pub async fn approve_all(
    http: &reqwest::Client,
    anchors: &[AnchorAddr],
    admin_key: &str,
    node_ids: &[String],
    concurrency: usize,
) -> anyhow::Result<Vec<Instant>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, id) in node_ids.iter().enumerate() {
        let permit = permits.clone().acquire_owned().await?;
        let url = format!(
            "{}/api/v1/meshes/{MESH}/nodes/{id}/approve",
            anchors[n % anchors.len()].api_url
        );
        let http = http.clone();
        let key = admin_key.to_owned();
        tasks.spawn(async move {
            let _permit = permit;
            retry(|| async {
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({}))
                    .send()
                    .await?;
                let status = response.status();
                // 409: approved by an earlier attempt whose answer was lost.
                if status.is_success() || status.as_u16() == 409 {
                    return Ok(());
                }
                bail!(
                    "approve: {status} {}",
                    response.text().await.unwrap_or_default()
                )
            })
            .await?;
            Ok::<_, anyhow::Error>((n, Instant::now()))
        });
    }
    let mut at = vec![Instant::now(); node_ids.len()];
    while let Some(done) = tasks.join_next().await {
        let (n, when) = done??;
        at[n] = when;
    }
    Ok(at)
}

/// Up to 5 attempts, 200 ms apart (a leader change under load answers 503 once or twice).
async fn retry<F, Fut>(mut attempt: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut last = None;
    for _ in 0..5 {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

/// Counters the light agents share.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Agents whose hello at least one anchor accepted.
    pub connected: AtomicUsize,
    /// Link-state reports the anchors took.
    pub reports: AtomicUsize,
    /// Requests that failed (after the agent was connected).
    pub failures: AtomicUsize,
}

/// What every light agent of a run shares.
#[derive(Clone)]
pub struct AgentContext {
    /// For status polls.
    pub http: reqwest::Client,
    /// The anchors.
    pub anchors: Vec<AnchorAddr>,
    /// How often a waiting agent polls its status.
    pub poll: Duration,
    /// How often a connected agent reports its link state.
    pub report_every: Duration,
    /// Shared counters.
    pub stats: Arc<AgentStats>,
    /// Where an agent says (node id, when) it is first connected.
    pub connected: tokio::sync::mpsc::UnboundedSender<(String, Instant)>,
}

/// One light agent (see the module docs).
pub struct LightAgent {
    enrollment: Enrollment,
    p2p: P2p,
    _stop_swarm: watch::Sender<bool>,
}

impl LightAgent {
    /// Starts the agent's swarm (QUIC on loopback, ephemeral port).
    pub async fn start(enrollment: Enrollment) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let (p2p, mut inbound) = x0t_node::p2p::spawn(
            P2pConfig {
                keypair: enrollment.keypair.clone(),
                listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse()?],
                request_timeout: Duration::from_secs(10),
                connection_events: None,
            },
            stopped,
        )
        .await?;
        // Members are not asked anything by anchors; refuse whatever comes.
        tokio::spawn(async move { while inbound.recv().await.is_some() {} });
        Ok(Self {
            enrollment,
            p2p,
            _stop_swarm: stop,
        })
    }

    /// Waits for approval (polling its status every `ctx.poll`), says hello to every
    /// anchor, then reports a signed link state every `ctx.report_every` until `stop`.
    /// Answers its identity, so the same device can come back later.
    pub async fn run(
        self,
        ctx: AgentContext,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Enrollment> {
        let AgentContext {
            http,
            anchors,
            poll,
            report_every,
            stats,
            connected: connected_tx,
        } = ctx;
        let id = self.enrollment.node_id();
        let mut n = 0usize;
        let certificate = loop {
            if *stop.borrow() {
                return Ok(self.enrollment);
            }
            let url = format!(
                "{}/api/v1/meshes/{MESH}/nodes/{id}/status",
                anchors[n % anchors.len()].api_url
            );
            n += 1;
            if let Ok(response) = http.get(&url).query(&[("stale", "true")]).send().await
                && let Ok(body) = response.json::<serde_json::Value>().await
                && body["state"] == "approved"
                && let Some(text) = body["certificate"].as_str()
            {
                break SignedNodeCertificate::from_text(text)?.encode();
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        };
        let hello = PeerHello {
            certificate: certificate.clone(),
            data_port: 0,
            listen: Vec::new(),
            state_index: 0,
            instance: now_ms(),
        };
        // Which anchors took this agent's hello. An anchor that restarted forgot it and
        // refuses reports until it hears a hello again (a real member re-greets when its
        // connection comes back).
        let mut greeted = vec![false; anchors.len()];
        let mut first = true;
        for (i, anchor) in anchors.iter().enumerate() {
            greeted[i] = self.hello(anchor, &hello, &id, &stats).await;
            if greeted[i] && first {
                first = false;
                stats.connected.fetch_add(1, Ordering::Relaxed);
                let _ = connected_tx.send((id.clone(), Instant::now()));
            }
        }
        let mesh = MeshId::new(MESH)?;
        let mut sequence = 0u64;
        let mut tick = tokio::time::interval(report_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return Ok(self.enrollment),
            }
            if *stop.borrow() {
                return Ok(self.enrollment);
            }
            sequence += 1;
            let state = SignedLinkState::sign(
                LinkStateAdvert {
                    mesh: mesh.clone(),
                    origin: self.enrollment.key.node_id(),
                    sequence,
                    issued_at: Timestamp(now_ms()),
                    links: Vec::new(),
                },
                &self.enrollment.key,
            )?
            .encode();
            for (i, anchor) in anchors.iter().enumerate() {
                if !greeted[i] {
                    greeted[i] = self.hello(anchor, &hello, &id, &stats).await;
                    if !greeted[i] {
                        continue;
                    }
                }
                let answer = self
                    .p2p
                    .request(
                        anchor.peer,
                        anchor.addrs.clone(),
                        ControlRequest::Mesh(MeshRequest::LinkState {
                            state: state.clone(),
                            certificate: certificate.clone(),
                        }),
                    )
                    .await;
                match answer {
                    Ok(ControlResponse::Mesh(Ok(_))) => {
                        stats.reports.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        greeted[i] = false;
                    }
                }
            }
        }
    }
}

impl LightAgent {
    /// Presents the certificate to `anchor`; whether it was taken.
    async fn hello(
        &self,
        anchor: &AnchorAddr,
        hello: &PeerHello,
        id: &str,
        stats: &AgentStats,
    ) -> bool {
        let answer = self
            .p2p
            .request(
                anchor.peer,
                anchor.addrs.clone(),
                ControlRequest::Mesh(MeshRequest::Hello(hello.clone())),
            )
            .await;
        match answer {
            // Anchors answer a hello with the mesh's signed state.
            Ok(ControlResponse::Mesh(Ok(_))) => true,
            other => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                let mut why = format!("{other:?}");
                why.truncate(200);
                tracing_free_log(&format!("agent {id}: hello refused: {why}"));
                false
            }
        }
    }
}

/// Failures are counted, and the first few printed (no tracing subscriber in the bench).
fn tracing_free_log(line: &str) {
    static PRINTED: AtomicUsize = AtomicUsize::new(0);
    if PRINTED.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("{line}");
    }
}

/// Resident memory of process `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Clock ticks: 100 per second on Linux (USER_HZ).
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Total size of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Percentile `p` (0–100) of `values` (sorted in place).
pub fn percentile(values: &mut [Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

/// Context for errors of a scale step.
pub fn step<T>(result: anyhow::Result<T>, what: &str) -> anyhow::Result<T> {
    result.with_context(|| what.to_owned())
}

/// Anchors on loopback with [`MESH`] created: what the scale and soak runs start from.
pub struct LoopbackAnchors {
    _kill: x0t_node::testnet::KillOnDrop,
    _root: tempfile::TempDir,
    /// The testnet directory (`node1/`, `node2/`…).
    pub dir: std::path::PathBuf,
    /// Base port of the testnet.
    pub base: u16,
    /// How to reach each anchor.
    pub anchors: Vec<AnchorAddr>,
    /// The bootstrap admin key.
    pub admin_key: String,
    /// An HTTP client (30 s timeout).
    pub http: reqwest::Client,
}

impl LoopbackAnchors {
    /// Starts `count` anchors in a temporary directory and creates [`MESH`].
    pub async fn start(exe: &Path, count: usize, description: &str) -> anyhow::Result<Self> {
        use x0t_node::testnet;
        let root = tempfile::tempdir()?;
        let dir = root.path().join("anchors");
        let kill = testnet::KillOnDrop(dir.clone());
        let base = testnet::free_base_port(count, std::process::id())?;
        let infos = testnet::up(exe, &dir, count, base, &[]).await?;
        let admin_key = std::fs::read_to_string(
            testnet::node_dir(&dir, 1).join(x0t_node::run::ADMIN_KEY_FILE),
        )?
        .trim()
        .to_owned();
        let anchors: Vec<AnchorAddr> = infos
            .iter()
            .map(AnchorAddr::from_info)
            .collect::<anyhow::Result<_>>()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let created = http
            .post(format!("{}/api/v1/meshes", anchors[0].api_url))
            .bearer_auth(&admin_key)
            .json(&json!({ "name": MESH, "description": description }))
            .send()
            .await?;
        anyhow::ensure!(
            created.status().is_success(),
            "creating the mesh: {}",
            created.status()
        );
        Ok(Self {
            _kill: kill,
            _root: root,
            dir,
            base,
            anchors,
            admin_key,
            http,
        })
    }
}

/// Sizes of a scale run.
#[derive(Clone, Debug)]
pub struct ScaleConfig {
    /// Anchors (loopback processes).
    pub anchors: usize,
    /// Nodes registered in all (the agents among them).
    pub nodes: usize,
    /// Live light agents (approved, connected, reporting).
    pub agents: usize,
    /// Registrations and approvals in flight at once.
    pub concurrency: usize,
    /// How often a waiting agent polls its status.
    pub poll: Duration,
    /// How often a connected agent reports its link state.
    pub report_every: Duration,
    /// Steady state measured after every agent is connected.
    pub steady: Duration,
}

/// What a scale run measured.
#[derive(Debug)]
pub struct ScaleReport {
    /// Time to register every node.
    pub registration: Duration,
    /// Approval answered → the agent's first hello accepted, per agent.
    pub approval_to_connected: Vec<Duration>,
    /// Time to approve every agent.
    pub approval: Duration,
    /// Agents connected at the end.
    pub connected: usize,
    /// Link-state reports the anchors took during the steady state.
    pub steady_reports: usize,
    /// Failed agent requests in all.
    pub failures: usize,
    /// Each anchor's resident memory at the end.
    pub anchor_rss: Vec<u64>,
    /// Each anchor's CPU use in the steady state (1.0 = one core).
    pub anchor_cpu: Vec<f64>,
    /// This process's growth per light agent (bytes).
    pub per_agent_bytes: u64,
    /// Each anchor's data directory size at the end.
    pub anchor_disk: Vec<u64>,
}

impl ScaleReport {
    /// Registrations per second.
    pub fn registration_rate(&self, nodes: usize) -> f64 {
        nodes as f64 / self.registration.as_secs_f64().max(1e-9)
    }
}

/// Starts `config.anchors` anchors on loopback, registers `config.nodes` nodes, starts
/// `config.agents` light agents (the first nodes), approves them, measures the steady state.
pub async fn run(exe: &Path, config: &ScaleConfig) -> anyhow::Result<ScaleReport> {
    use x0t_node::testnet;
    anyhow::ensure!(config.agents <= config.nodes, "more agents than nodes");
    let cluster = LoopbackAnchors::start(exe, config.anchors, "scale run").await?;
    let (dir, anchors, admin_key, http) = (
        cluster.dir.clone(),
        cluster.anchors.clone(),
        cluster.admin_key.clone(),
        cluster.http.clone(),
    );

    eprintln!("scale: signing {} registrations", config.nodes);
    let mut enrollments = Vec::with_capacity(config.nodes);
    let chunks: Vec<(usize, usize)> = (0..config.nodes)
        .step_by(500)
        .map(|start| (start, (start + 500).min(config.nodes)))
        .collect();
    for (start, end) in chunks {
        let made = tokio::task::spawn_blocking(move || {
            (start..end)
                .map(Enrollment::new)
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??;
        enrollments.extend(made);
    }

    eprintln!(
        "scale: registering {} nodes through {} anchors",
        config.nodes,
        anchors.len()
    );
    let registration = step(
        register_all(&http, &anchors, &enrollments, config.concurrency).await,
        "registering",
    )?;
    eprintln!(
        "scale: {} registrations in {:.1} s ({:.0}/s)",
        config.nodes,
        registration.as_secs_f64(),
        config.nodes as f64 / registration.as_secs_f64()
    );

    // The agents: their swarms start now, they poll until approved.
    let before_agents = rss_bytes(std::process::id()).unwrap_or(0);
    let stats = Arc::new(AgentStats::default());
    let (stop, stopped) = watch::channel(false);
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::unbounded_channel();
    let agent_ids: Vec<String> = enrollments[..config.agents]
        .iter()
        .map(Enrollment::node_id)
        .collect();
    let poll_http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let ctx = AgentContext {
        http: poll_http,
        anchors: anchors.clone(),
        poll: config.poll,
        report_every: config.report_every,
        stats: stats.clone(),
        connected: connected_tx,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for enrollment in enrollments.drain(..config.agents) {
        let agent = LightAgent::start(enrollment).await?;
        tasks.spawn(agent.run(ctx.clone(), stopped.clone()));
    }
    drop(ctx);
    drop(enrollments);
    eprintln!("scale: {} agents started, approving them", config.agents);
    let approval_started = Instant::now();
    let approved_at = step(
        approve_all(&http, &anchors, &admin_key, &agent_ids, config.concurrency).await,
        "approving",
    )?;
    let approval = approval_started.elapsed();
    let mut connected_at = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120) + config.poll * 2;
    while connected_at.len() < config.agents {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, connected_rx.recv()).await {
            Ok(Some((id, at))) => {
                connected_at.insert(id, at);
            }
            _ => break,
        }
    }
    let approval_to_connected: Vec<Duration> = agent_ids
        .iter()
        .zip(&approved_at)
        .filter_map(|(id, approved)| {
            connected_at
                .get(id)
                .map(|at| at.saturating_duration_since(*approved))
        })
        .collect();
    eprintln!(
        "scale: {}/{} agents connected; steady state for {:?}",
        connected_at.len(),
        config.agents,
        config.steady
    );
    let per_agent_bytes = rss_bytes(std::process::id())
        .unwrap_or(0)
        .saturating_sub(before_agents)
        / config.agents.max(1) as u64;
    let pids: Vec<u32> = (1..=config.anchors)
        .map(|i| NodeInfo::load(&testnet::node_dir(&dir, i)).map(|info| info.pid))
        .collect::<Result<_, _>>()?;
    let cpu_before: Vec<Duration> = pids
        .iter()
        .map(|&p| cpu_time(p).unwrap_or_default())
        .collect();
    let reports_before = stats.reports.load(Ordering::Relaxed);
    let steady_started = Instant::now();
    tokio::time::sleep(config.steady).await;
    let steady = steady_started.elapsed();
    let anchor_cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(&p, before)| {
            cpu_time(p)
                .unwrap_or_default()
                .saturating_sub(*before)
                .as_secs_f64()
                / steady.as_secs_f64()
        })
        .collect();
    let steady_reports = stats.reports.load(Ordering::Relaxed) - reports_before;
    let anchor_rss: Vec<u64> = pids.iter().map(|&p| rss_bytes(p).unwrap_or(0)).collect();
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            eprintln!("scale: an agent ended with: {e:#}");
        }
    }
    testnet::down(&dir).await?;
    let anchor_disk = (1..=config.anchors)
        .map(|i| dir_bytes(&testnet::node_dir(&dir, i).join("db")))
        .collect();
    Ok(ScaleReport {
        registration,
        approval_to_connected,
        approval,
        connected: stats.connected.load(Ordering::Relaxed),
        steady_reports,
        failures: stats.failures.load(Ordering::Relaxed),
        anchor_rss,
        anchor_cpu,
        per_agent_bytes,
        anchor_disk,
    })
}
