//! `x0t-testnet bench control-plane` and `bench load`: write load and leader-kill
//! unavailability of x0t anchors beside a 3-member etcd on loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use x0t_node::run::{ADMIN_KEY_FILE, NodeInfo};
use x0t_node::testnet;

/// One system under test.
pub(crate) enum System {
    X0t {
        urls: Vec<String>,
        key: String,
        http: reqwest::Client,
    },
    Etcd {
        clients: Vec<etcd_client::Client>,
    },
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            Self::X0t { .. } => "x0t",
            Self::Etcd { .. } => "etcd",
        }
    }

    /// One write of `value` by client `task` through endpoint `endpoint`.
    async fn write(&self, task: usize, endpoint: usize, value: &str) -> anyhow::Result<()> {
        match self {
            Self::X0t { urls, key, http } => {
                let url = format!(
                    "{}/api/v1/meshes/bench-{}/settings",
                    urls[endpoint % urls.len()],
                    task % 64
                );
                let response = http
                    .put(url)
                    .bearer_auth(key)
                    .json(&serde_json::json!({ "description": value }))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("x0t answered {}", response.status());
                }
                Ok(())
            }
            Self::Etcd { clients } => {
                let mut client = clients[endpoint % clients.len()].clone();
                client
                    .put(format!("bench/{}", task % 64), value, None)
                    .await?;
                Ok(())
            }
        }
    }
}

pub(crate) struct LoadResult {
    pub(crate) ops: usize,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

impl LoadResult {
    pub(crate) fn writes_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

pub(crate) async fn load(
    system: Arc<System>,
    clients: usize,
    ops: usize,
    value: Arc<String>,
    max: Duration,
) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + max;
    let mut tasks = Vec::new();
    for task in 0..clients {
        let (system, next, errors, value) =
            (system.clone(), next.clone(), errors.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < ops && Instant::now() < deadline {
                let start = Instant::now();
                match system.write(task, task, &value).await {
                    Ok(()) => latencies.push(start.elapsed().as_secs_f64() * 1e3),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    LoadResult {
        ops: latencies.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// Writes steadily through `endpoint` while `kill` runs; returns the longest gap between
/// successful writes from just before the kill until writes succeed again.
pub(crate) async fn unavailability(
    system: Arc<System>,
    endpoint: usize,
    kill: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Duration> {
    let value = "x".repeat(256);
    // Warm up and settle.
    for _ in 0..20 {
        system.write(0, endpoint, &value).await?;
    }
    let writer_system = system.clone();
    let writer = tokio::spawn(async move {
        let mut successes = Vec::new();
        let stop = Instant::now() + Duration::from_secs(8);
        while Instant::now() < stop {
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                writer_system.write(0, endpoint, &value),
            )
            .await;
            if matches!(attempt, Ok(Ok(()))) {
                successes.push(Instant::now());
                if successes.len() > 50
                    && successes[successes.len() - 50] > stop - Duration::from_secs(19)
                {
                    // Enough writes after recovery.
                }
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        successes
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    kill.await?;
    let successes = writer.await?;
    // The unavailability window is the longest gap between consecutive successful writes:
    // a write already in flight at the kill may still succeed, so the gap need not start
    // exactly at the kill.
    let recovered = successes
        .iter()
        .any(|t| *t > killed_at + Duration::from_millis(1));
    if !recovered {
        bail!("{}: writes never resumed within 8 s", system.name());
    }
    Ok(successes
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default())
}

pub(crate) struct Etcd {
    children: Vec<Child>,
    client_urls: Vec<String>,
}

pub(crate) async fn start_etcd(binary: &Path, dir: &Path, base: u16) -> anyhow::Result<Etcd> {
    if !binary.exists() {
        bail!(
            "{} not found: install Debian's etcd-server (scripts/lib.sh does)",
            binary.display()
        );
    }
    let peer = |i: u16| format!("http://127.0.0.1:{}", base + 2 * i + 1);
    let client = |i: u16| format!("http://127.0.0.1:{}", base + 2 * i);
    let cluster = (0..3)
        .map(|i| format!("e{i}={}", peer(i)))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for i in 0..3u16 {
        let log = std::fs::File::create(dir.join(format!("etcd{i}.log")))?;
        children.push(
            Command::new(binary)
                .args(["--name", &format!("e{i}")])
                .arg("--data-dir")
                .arg(dir.join(format!("etcd{i}")))
                .args([
                    "--listen-client-urls",
                    &client(i),
                    "--advertise-client-urls",
                    &client(i),
                ])
                .args([
                    "--listen-peer-urls",
                    &peer(i),
                    "--initial-advertise-peer-urls",
                    &peer(i),
                ])
                .args([
                    "--initial-cluster",
                    &cluster,
                    "--initial-cluster-state",
                    "new",
                ])
                .args(["--initial-cluster-token", "x0t-bench"])
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .context("starting etcd")?,
        );
    }
    let client_urls: Vec<String> = (0..3).map(client).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = 0;
        for url in &client_urls {
            if let Ok(mut c) = etcd_client::Client::connect([url], None).await
                && c.status().await.map(|s| s.leader() != 0).unwrap_or(false)
            {
                ready += 1;
            }
        }
        if ready == 3 {
            return Ok(Etcd {
                children,
                client_urls,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "etcd cluster did not come up; see {}/etcd*.log",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn print_row(name: &str, clients: usize, result: &LoadResult) {
    println!(
        "{name:<5} {clients:>7} {:>8} {:>7} {:>10.0} {:>9.2} {:>9.2}",
        result.ops,
        result.errors,
        result.writes_per_sec(),
        result.p50_ms,
        result.p99_ms
    );
}

pub(crate) async fn control_plane(
    ops_single: usize,
    ops_concurrent: usize,
    value_bytes: usize,
    max: Duration,
    x0t: PathBuf,
    etcd: PathBuf,
) -> anyhow::Result<()> {
    if !x0t.exists() {
        bail!(
            "{} not found: cargo build --release -p x0t-node",
            x0t.display()
        );
    }
    let root = tempfile::tempdir()?;
    let ours_dir = root.path().join("x0t");
    std::fs::create_dir_all(&ours_dir)?;
    let base = 27_400;
    eprintln!("starting 3 x0t anchors …");
    let infos = testnet::up(&x0t, &ours_dir, 3, base, &[]).await?;
    let guard = testnet::KillOnDrop(ours_dir.clone());
    let key = std::fs::read_to_string(testnet::node_dir(&ours_dir, 1).join(ADMIN_KEY_FILE))?
        .trim()
        .to_owned();
    let urls: Vec<String> = infos.iter().map(|i| i.api_url.clone()).collect();
    let ours = x0t_system(&urls, key, 64).await?;

    eprintln!("starting 3 etcd members …");
    let mut etcd_cluster = start_etcd(&etcd, root.path(), 27_500).await?;
    let mut clients = Vec::new();
    for url in &etcd_cluster.client_urls {
        clients.push(etcd_client::Client::connect([url], None).await?);
    }
    let theirs = Arc::new(System::Etcd { clients });

    let value = Arc::new("v".repeat(value_bytes));
    println!(
        "control-plane write benchmark: 3 members each, loopback, {value_bytes}-byte values, writes spread over all members"
    );
    println!(
        "{:<5} {:>7} {:>8} {:>7} {:>10} {:>9} {:>9}",
        "sys", "clients", "ops", "errors", "writes/s", "p50 ms", "p99 ms"
    );
    for (clients, ops) in [(1, ops_single), (64, ops_concurrent)] {
        let a = load(ours.clone(), clients, ops, value.clone(), max).await;
        print_row("x0t", clients, &a);
        let b = load(theirs.clone(), clients, ops, value.clone(), max).await;
        print_row("etcd", clients, &b);
        println!(
            "      ratio x0t/etcd at {clients} client(s): {:.2}x writes/s, p99 {:.2}x",
            a.writes_per_sec() / b.writes_per_sec(),
            a.p99_ms / b.p99_ms
        );
    }

    // Leader kill under a steady writer talking to a surviving member.
    let status = x0t_client::ApiClient::new(&urls[0], None)?
        .cluster()
        .await?;
    let leader = status.leader.context("x0t has no leader")?;
    let leader_index = (1..=3)
        .find(|&i| {
            NodeInfo::load(&testnet::node_dir(&ours_dir, i))
                .map(|n| n.raft_id == leader)
                .unwrap_or(false)
        })
        .context("leader not found")?;
    let survivor = (0..3).find(|&i| i + 1 != leader_index).unwrap_or(0);
    let pid = NodeInfo::load(&testnet::node_dir(&ours_dir, leader_index))?.pid;
    let ours_gap = unavailability(ours.clone(), survivor, async move {
        testnet::kill_and_wait(pid).await;
        Ok(())
    })
    .await?;

    let mut leader_endpoint = None;
    for (i, url) in etcd_cluster.client_urls.iter().enumerate() {
        let mut c = etcd_client::Client::connect([url], None).await?;
        let status = c.status().await?;
        if status.header().map(|h| h.member_id()) == Some(status.leader()) {
            leader_endpoint = Some(i);
        }
    }
    let leader_endpoint = leader_endpoint.context("etcd leader not found")?;
    let survivor = (0..3).find(|&i| i != leader_endpoint).unwrap_or(0);
    let mut leader_child = etcd_cluster.children.remove(leader_endpoint);
    let theirs_gap = unavailability(theirs.clone(), survivor, async move {
        leader_child.start_kill()?;
        leader_child.wait().await?;
        Ok(())
    })
    .await?;
    println!(
        "leader kill -9 (writes through a surviving member): write unavailability x0t {:.0} ms, etcd {:.0} ms, ratio x0t/etcd {:.2}x",
        ours_gap.as_secs_f64() * 1e3,
        theirs_gap.as_secs_f64() * 1e3,
        ours_gap.as_secs_f64() / theirs_gap.as_secs_f64()
    );
    drop(guard);
    drop(etcd_cluster);
    Ok(())
}

/// Drives a running testnet: the profiling loop behind the figures in docs/benchmarks.md.
pub(crate) async fn load_only(
    dir: &Path,
    clients: usize,
    ops: usize,
    value_bytes: usize,
    max: Duration,
) -> anyhow::Result<()> {
    let mut urls = Vec::new();
    for index in 1.. {
        let node = testnet::node_dir(dir, index);
        if !node.exists() {
            break;
        }
        urls.push(NodeInfo::load(&node)?.api_url);
    }
    if urls.is_empty() {
        bail!("no testnet in {} (x0t testnet up --dir …)", dir.display());
    }
    let key = std::fs::read_to_string(testnet::node_dir(dir, 1).join(ADMIN_KEY_FILE))?
        .trim()
        .to_owned();
    let system = x0t_system(&urls, key, clients).await?;
    let value = Arc::new("v".repeat(value_bytes));
    let result = load(system, clients, ops, value, max).await;
    print_row("x0t", clients, &result);
    Ok(())
}

/// The x0t side of the benchmark: an HTTP client and one mesh per client to write to.
pub(crate) async fn x0t_system(
    urls: &[String],
    key: String,
    clients: usize,
) -> anyhow::Result<Arc<System>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    let admin = x0t_client::ApiClient::new(&urls[0], Some(key.clone()))?;
    for i in 0..clients.min(64) {
        let mesh = format!("bench-{i}");
        if admin.mesh(&mesh, false).await.is_err() {
            admin
                .create_mesh(&x0t_node::api::CreateMesh {
                    name: mesh,
                    description: String::new(),
                    plan: None,
                })
                .await?;
        }
    }
    Ok(Arc::new(System::X0t {
        urls: urls.to_vec(),
        key,
        http,
    }))
}
