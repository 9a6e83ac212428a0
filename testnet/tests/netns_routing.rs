//! Self-healing routing in network namespaces: real `x0t` agents with TUN devices, some
//! paths cut (blackhole routes), some nodes behind a stateful firewall that admits no
//! inbound connection (a NAT), relays killed with SIGKILL, links degraded with `tc netem`.
//! Needs root; run by `scripts/test` in the `netns` nextest profile.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::time::{Duration, Instant};

use x0t_testnet::mesh_lab::{ALLOW_ALL as POLICY, MeshLab, ProbeStream};

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;

fn x0t_exe() -> PathBuf {
    x0t_testnet::mesh_lab::x0t_for_tests().unwrap()
}

/// Whether this test must be skipped (said visibly; a failure under `X0T_REQUIRE_NETNS=1`).
fn skip(name: &str) -> bool {
    x0t_testnet::netns::skip_unless_available(&format!("netns_routing::{name}"))
}

/// A–B–C and A–D–C: no direct A–C path (nor B–D).
async fn diamond() -> MeshLab {
    MeshLab::start_shaped(&x0t_exe(), POLICY, &["server"; 4], 0, |lab| {
        lab.block(A, C)?;
        lab.block(B, D)
    })
    .await
    .unwrap()
}

/// Waits until agent `from` routes to `to` through one relay and a ping gets through;
/// answers the relay's agent index.
async fn relayed_path(net: &MeshLab, from: usize, to: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((hop, 1)) = net.route(from, to).await
            && net.ping(from, to, 2).await
        {
            return net.agent_index(&hop).unwrap();
        }
        if Instant::now() > deadline {
            let mut statuses = String::new();
            for i in 0..net.agents.len() {
                statuses.push_str(&format!(
                    "--- status {} ---\n{}\n",
                    i + 1,
                    net.status(i).await
                ));
            }
            panic!(
                "no relayed path from {from} to {to}:\n{statuses}{}",
                net.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn event_kinds(net: &MeshLab, i: usize) -> Vec<String> {
    let dir = net.agents[i].dir.to_string_lossy().into_owned();
    let output = net
        .x0t(i, &["events", "--json", "--dir", &dir])
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_goes_around_a_killed_relay_in_the_same_session() {
    if skip("traffic_goes_around_a_killed_relay_in_the_same_session") {
        return;
    }
    let mut net = diamond().await;
    let relay = relayed_path(&net, A, C).await;
    let other = if relay == B { D } else { B };
    let sessions = (
        net.counter(A, "sessions_up").await,
        net.counter(C, "sessions_up").await,
    );
    let stream = ProbeStream::start(&net, A, C, 8).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    net.kill_agent(relay).await.unwrap();
    let report = stream.finish().await.unwrap();
    let gap = report.longest_gap();
    eprintln!(
        "relay {} killed: {} of {} probes answered, longest gap {gap:?}",
        relay + 1,
        report.answered.len(),
        report.sent
    );
    assert!(
        report.answered_after(report.sent.saturating_sub(100)) > 50,
        "the probes did not resume: {report:?}\n{}",
        net.logs()
    );
    assert!(gap < Duration::from_secs(5), "gap {gap:?}\n{}", net.logs());
    let (hop, relays) = net.route(A, C).await.unwrap();
    assert_eq!((net.agent_index(&hop), relays), (Some(other), 1));
    // The end-to-end session carried on: neither end set up a new one.
    assert_eq!(
        (
            net.counter(A, "sessions_up").await,
            net.counter(C, "sessions_up").await
        ),
        sessions,
        "a session was set up again"
    );
    let kinds = event_kinds(&net, A).await;
    for kind in ["link_down", "route_changed", "path_switched"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_relay_is_avoided_and_nothing_is_black_holed() {
    if skip("a_degraded_relay_is_avoided_and_nothing_is_black_holed") {
        return;
    }
    let net = diamond().await;
    let relay = relayed_path(&net, A, C).await;
    let other = if relay == B { D } else { B };
    let stream = ProbeStream::start(&net, A, C, 12).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let how = net.lab.degrade(relay, 100, 5).unwrap();
    eprintln!("relay {} degraded: {how:?}", relay + 1);
    let degraded = Instant::now();
    let moved = loop {
        if let Some((hop, _)) = net.route(A, C).await
            && net.agent_index(&hop) == Some(other)
        {
            break degraded.elapsed();
        }
        assert!(
            degraded.elapsed() < Duration::from_secs(10),
            "traffic stayed on the degraded relay: {}",
            net.status(A).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = stream.finish().await.unwrap();
    eprintln!(
        "moved off the degraded relay after {moved:?}; {} of {} probes answered, longest gap {:?}",
        report.answered.len(),
        report.sent,
        report.longest_gap()
    );
    assert!(
        report.longest_gap() < Duration::from_secs(10),
        "black-holed: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_behind_nats_reach_each_other_through_a_relay() {
    if skip("members_behind_nats_reach_each_other_through_a_relay") {
        return;
    }
    // Node 1 is reachable. Node 3 admits no inbound connection (it sits behind a NAT), and
    // node 2 has no path to it (another network): node 2 reaches it only through node 1,
    // whose frames get into node 3 only as answers to node 3's own (its probes).
    let net = MeshLab::start_shaped(&x0t_exe(), POLICY, &["server"; 3], 0, |lab| {
        lab.no_inbound(2)?;
        lab.block(1, 2)
    })
    .await
    .unwrap();
    assert_eq!(relayed_path(&net, 1, 2).await, 0);
    assert_eq!(relayed_path(&net, 2, 1).await, 0);
    assert!(net.tcp(1, 2, 5301).await.unwrap(), "TCP through the relay");
    let status = net.status(1).await;
    let peer = status["data_plane"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node_id"] == net.agents[2].node_id.as_str())
        .unwrap()
        .clone();
    assert!(peer["path"].as_str().unwrap().starts_with("via "), "{peer}");
    assert!(net.counter(0, "frames_relayed").await > 0);
}
