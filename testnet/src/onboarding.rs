//! `x0t-testnet bench onboarding`: how fast nodes get in, against three anchor processes.
//!
//! 1. Onboarding latency: `joins` agents, one after another, each from a fresh data dir
//!    (identity keygen included) with a pre-approved token: register → certificate verified
//!    and stored in the agent's hands. Anchor: one replicated mesh write in the same run.
//! 2. Registrations/s: `concurrent` registrations (signed beforehand) sent all at once.
//!    Anchor: the same number of mesh writes sent all at once.
//! 3. With `registered` nodes in the ledger: latency of listing them, of a filtered page and
//!    of one node, against a tiny read (`GET /api/v1/meshes`), and the anchors' RSS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use x0t_client::ApiClient;
use x0t_crypto::{Registration, SigAlgorithm, SigningKey};
use x0t_node::agent::{self, JoinOptions};
use x0t_node::api::{CreateToken, RegisterNode};
use x0t_node::run::{ADMIN_KEY_FILE, NodeInfo};
use x0t_node::testnet;
use x0t_types::{DeviceClass, MeshId, Tag, Timestamp, base32};

use crate::control_plane_bench::{load, x0t_system};

/// Sizes of one run.
pub(crate) struct Sizes {
    pub(crate) joins: usize,
    pub(crate) concurrent: usize,
    pub(crate) registered: usize,
    pub(crate) max: Duration,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    (
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN),
    )
}

fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

/// Signed registrations of `n` fresh nodes (the keygen and signing are not timed).
pub(crate) fn registrations(n: usize, prefix: &str) -> anyhow::Result<Vec<RegisterNode>> {
    let mesh = MeshId::new("default")?;
    (0..n)
        .map(|i| {
            let key = SigningKey::generate(SigAlgorithm::MlDsa65)?;
            let signed = Registration {
                mesh: mesh.clone(),
                node_id: key.node_id(),
                identity_key: key.verifying_key().clone(),
                peer_id: agent::fresh_peer_id(),
                hostname: format!("{prefix}-{i}"),
                device_class: DeviceClass::Sensor,
                requested_tags: vec![Tag::new("sensor")?],
                requested_at: now(),
            }
            .sign(&key)?;
            Ok(RegisterNode {
                registration: base32::encode(&signed.encode()),
                token: None,
            })
        })
        .collect()
}

/// Sends all `bodies` at once, spread over the anchors (one connection each: this process
/// needs a file-descriptor limit above their number); answers (elapsed, errors), and prints
/// the first error.
pub(crate) async fn register_all(urls: &[String], bodies: Vec<RegisterNode>) -> (Duration, usize) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let url = urls[i % urls.len()].clone();
        tasks.push(tokio::spawn(async move {
            let client = ApiClient::new(&url, None).map_err(|e| e.to_string())?;
            client
                .register("default", &body)
                .await
                .map_err(|e| e.to_string())
        }));
    }
    let mut errors = 0;
    let mut first = None;
    for task in tasks {
        match task.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                errors += 1;
                first.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = first {
        eprintln!("  first registration error: {e}");
    }
    (started.elapsed(), errors)
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn timed_get(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    n: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let mut ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let response = http.get(url).bearer_auth(key).send().await?;
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        bytes = response.bytes().await?.len();
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let (p50, p99, _) = summary(ms);
    Ok((p50, p99, bytes))
}

/// Runs the three measurements.
pub(crate) async fn onboarding(x0t: PathBuf, sizes: Sizes) -> anyhow::Result<()> {
    if !x0t.exists() {
        bail!(
            "{} not found: cargo build --release -p x0t-node",
            x0t.display()
        );
    }
    let root = tempfile::tempdir()?;
    let dir = root.path().join("x0t");
    std::fs::create_dir_all(&dir)?;
    let base = testnet::free_base_port(3, std::process::id())?;
    eprintln!("starting 3 x0t anchors …");
    let infos = testnet::up(&x0t, &dir, 3, base, &[]).await?;
    let _guard = testnet::KillOnDrop(dir.clone());
    let key = std::fs::read_to_string(testnet::node_dir(&dir, 1).join(ADMIN_KEY_FILE))?
        .trim()
        .to_owned();
    let urls: Vec<String> = infos.iter().map(|i| i.api_url.clone()).collect();
    let admin = ApiClient::new(&urls[0], Some(key.clone()))?;
    let writes = x0t_system(&urls, key.clone(), 64).await?;
    let value = Arc::new("v".repeat(64));

    // 1. Onboarding latency, sequential joins with a pre-approved token.
    let token = admin
        .create_token(
            "default",
            &CreateToken {
                ttl_secs: Some(3_600),
                reusable: true,
                uses: None,
                pre_approved: true,
                tags: vec!["bench".into()],
            },
        )
        .await?;
    let mut joins = Vec::new();
    let deadline = Instant::now() + sizes.max;
    for i in 0..sizes.joins {
        if Instant::now() > deadline {
            break;
        }
        let options = JoinOptions {
            data_dir: root.path().join(format!("agent{i}")),
            anchor: urls[i % urls.len()].clone(),
            mesh: MeshId::new("default")?,
            token: Some(token.token.clone()),
            tags: Vec::new(),
            device_class: DeviceClass::Robot,
            hostname: Some(format!("bench-{i}")),
            timeout: Duration::from_secs(10),
            poll_every: Duration::from_millis(50),
        };
        let started = Instant::now();
        let (_, cert) = agent::join(&options, |_| {}).await?;
        cert.context("joined without a certificate")?;
        joins.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let measured = joins.len();
    let (p50, p99, max) = summary(joins);
    let single = load(
        writes.clone(),
        1,
        sizes.joins.max(20),
        value.clone(),
        sizes.max,
    )
    .await;
    println!(
        "onboarding: 3 anchors on loopback, pre-approved token, fresh agent per join (keygen, register, certificate verified and stored)"
    );
    println!(
        "  {measured} joins: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms   (goal: p99 < 1000 ms)"
    );
    println!(
        "  anchor, one replicated mesh write: p50 {:.2} ms, p99 {:.2} ms   ratio join/write p50 {:.1}x",
        single.p50_ms,
        single.p99_ms,
        p50 / single.p50_ms
    );

    // 2. Registrations/s with `concurrent` at once.
    eprintln!("signing {} registrations …", sizes.concurrent);
    let bodies = registrations(sizes.concurrent, "burst")?;
    let (elapsed, errors) = register_all(&urls, bodies).await;
    let accepted = sizes.concurrent - errors;
    let per_sec = accepted as f64 / elapsed.as_secs_f64();
    let writes_burst = load(
        writes.clone(),
        sizes.concurrent.min(512),
        sizes.concurrent,
        value.clone(),
        sizes.max,
    )
    .await;
    println!(
        "registrations: {} sent at once: {accepted} accepted ({errors} errors) in {:.2} s = {per_sec:.0} registrations/s",
        sizes.concurrent,
        elapsed.as_secs_f64()
    );
    println!(
        "  anchor, {} mesh writes from {} clients: {:.0} writes/s   ratio registrations/writes {:.2}x",
        sizes.concurrent,
        sizes.concurrent.min(512),
        writes_burst.writes_per_sec(),
        per_sec / writes_burst.writes_per_sec()
    );

    // 3. Fill the ledger to `registered` nodes, then read.
    let have = measured + accepted;
    if sizes.registered > have {
        let more = sizes.registered - have;
        eprintln!("registering {more} more nodes (64 at a time) …");
        let started = Instant::now();
        let mut left = more;
        let mut batch_no = 0;
        while left > 0 {
            let n = left.min(1_000);
            let bodies = registrations(n, &format!("fill{batch_no}"))?;
            for chunk in bodies.chunks(64) {
                let (_, errors) = register_all(&urls, chunk.to_vec()).await;
                if errors > 0 {
                    eprintln!("  {errors} registration(s) failed");
                }
            }
            left -= n;
            batch_no += 1;
        }
        eprintln!("  filled in {:.1} s", started.elapsed().as_secs_f64());
    }
    let http = reqwest::Client::new();
    let total = admin.list_nodes("default", &[]).await?.len();
    let (list_p50, list_p99, list_bytes) = timed_get(
        &http,
        &format!("{}/api/v1/meshes/default/nodes", urls[1]),
        &key,
        20,
    )
    .await?;
    let (page_p50, page_p99, _) = timed_get(
        &http,
        &format!(
            "{}/api/v1/meshes/default/nodes?state=approved&limit=100",
            urls[1]
        ),
        &key,
        20,
    )
    .await?;
    let some = admin
        .list_nodes("default", &[("limit", "1".into())])
        .await?;
    let id = some.first().map(|n| n.short_id.clone()).unwrap_or_default();
    let (one_p50, one_p99, _) = timed_get(
        &http,
        &format!("{}/api/v1/meshes/default/nodes/{id}", urls[1]),
        &key,
        50,
    )
    .await?;
    let (tiny_p50, tiny_p99, _) =
        timed_get(&http, &format!("{}/api/v1/meshes", urls[1]), &key, 50).await?;
    println!("reads with {total} nodes registered (linearizable, from a follower or the leader):");
    println!(
        "  GET nodes (all, {:.1} MB JSON): p50 {list_p50:.1} ms, p99 {list_p99:.1} ms",
        list_bytes as f64 / 1e6
    );
    println!("  GET nodes?state=approved&limit=100: p50 {page_p50:.2} ms, p99 {page_p99:.2} ms");
    println!("  GET nodes/{{id}}: p50 {one_p50:.2} ms, p99 {one_p99:.2} ms");
    println!(
        "  anchor, GET meshes: p50 {tiny_p50:.2} ms, p99 {tiny_p99:.2} ms   ratio one-node/meshes p50 {:.2}x",
        one_p50 / tiny_p50
    );
    let rss: Vec<String> = (1..=3)
        .map(|i| {
            NodeInfo::load(&testnet::node_dir(&dir, i))
                .map(|n| format!("{:.0} MiB", rss_mib(n.pid)))
                .unwrap_or_else(|_| "?".into())
        })
        .collect();
    println!(
        "  anchor RSS: {}   (goal at 10,000 nodes: < 1 GiB)",
        rss.join(", ")
    );
    let db: u64 = (1..=3)
        .map(|i| dir_size(&testnet::node_dir(&dir, i).join("db")))
        .sum::<u64>()
        / 3;
    println!(
        "  sled database per anchor: {:.0} MiB",
        db as f64 / 1_048_576.0
    );
    testnet::down(&dir).await?;
    Ok(())
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
