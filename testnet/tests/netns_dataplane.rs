//! The data plane in network namespaces: real `x0t` processes, real TUN devices, real
//! kernels forwarding ICMP and TCP between overlay addresses. Three anchors run in the root
//! namespace on the lab bridge; each agent runs in its own namespace (`x0t join`, then
//! `x0t agent run --tun`). Needs root (CI runs as root); run by `scripts/test` in the
//! `netns` nextest profile.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::time::{Duration, Instant};

use x0t_crypto::{NodeCertificate, SigAlgorithm, SignedNodeCertificate, SigningKey};
use x0t_node::api::{ExplainAcl, Reason};
use x0t_node::run::NodeInfo;
use x0t_node::testnet;
use x0t_testnet::mesh_lab::MeshLab;
use x0t_types::{DeviceClass, MeshId, PqProfile, Tag, Timestamp};

const MESH: &str = "default";

/// Everything may talk, except robots to servers on tcp/5202.
const POLICY: &str = r#"
version = 1

[[rule]]
name = "everyone"
action = "allow"
src = ["*"]
dst = ["*"]

[[rule]]
name = "no-robot-debug"
action = "deny"
src = ["tag:robot"]
dst = ["tag:server"]
ports = ["tcp/5202"]
description = "robots never reach the servers' debug port"
"#;

fn x0t_exe() -> PathBuf {
    x0t_testnet::mesh_lab::x0t_for_tests().unwrap()
}

async fn start(tags: &[&str], spare: usize) -> MeshLab {
    MeshLab::start(&x0t_exe(), POLICY, tags, spare)
        .await
        .unwrap()
}

/// Whether this test must be skipped (said visibly; a failure under `X0T_REQUIRE_NETNS=1`).
fn skip(name: &str) -> bool {
    x0t_testnet::netns::skip_unless_available(&format!("netns_dataplane::{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_nodes_reach_each_other_and_the_policy_holds() {
    if skip("approved_nodes_reach_each_other_and_the_policy_holds") {
        return;
    }
    let net = start(&["robot", "server", "server"], 0).await;
    // ICMP and TCP between every pair of the three approved nodes.
    for (from, to) in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)] {
        assert!(net.ping(from, to, 2).await, "ping {from} → {to}");
    }
    for (from, to) in [(0, 1), (1, 2), (2, 0)] {
        assert!(
            net.tcp(from, to, 5201).await.unwrap(),
            "tcp {from} → {to} :5201"
        );
    }
    // The deny rule blocks exactly robot → server tcp/5202 …
    assert!(
        !net.tcp(0, 1, 5202).await.unwrap(),
        "robot → server :5202 must be denied"
    );
    assert!(
        !net.tcp(0, 2, 5202).await.unwrap(),
        "robot → server :5202 must be denied"
    );
    // … and nothing it does not name.
    assert!(
        net.tcp(1, 0, 5202).await.unwrap(),
        "server → robot :5202 is not named"
    );
    assert!(
        net.tcp(2, 1, 5202).await.unwrap(),
        "server → server :5202 is not named"
    );
    // The robot's own end refused the SYNs before they left.
    let status = net.status(0).await;
    assert!(
        status["data_plane"]["counters"]["packets_denied"]
            .as_u64()
            .unwrap()
            > 0
    );
    // `explain` names the rule.
    let decision = net
        .admin
        .explain_acl(
            MESH,
            &ExplainAcl {
                src: "n1".into(),
                dst: "n2".into(),
                port: 5202,
                proto: Some("tcp".into()),
                document: None,
            },
        )
        .await
        .unwrap();
    assert!(!decision.allowed);
    assert_eq!(decision.deciding_rule.unwrap().name, "no-robot-debug");
}

/// A node whose certificate is signed by a key that is not an anchor's, given the real
/// members' addresses, reaches nothing and is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_signed_by_a_stranger_reaches_nothing() {
    if skip("a_node_signed_by_a_stranger_reaches_nothing") {
        return;
    }
    let net = start(&["server", "server"], 1).await;
    // Forge an agent in the lab's third namespace.
    let dir = net.root.path().join("rogue");
    std::fs::create_dir_all(&dir).unwrap();
    let identity =
        x0t_node::identity::generate_identity(&dir, SigAlgorithm::MlDsa65, false).unwrap();
    let keypair = x0t_node::run::libp2p_keypair(&dir).unwrap();
    let rogue_anchor = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let now = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let cert = NodeCertificate {
        mesh: MeshId::new(MESH).unwrap(),
        node_id: identity.node_id(),
        identity_key: identity.verifying_key().clone(),
        peer_id: keypair.public().to_peer_id().to_bytes(),
        overlay_ip: "100.64.0.99".parse().unwrap(),
        tags: vec![Tag::new("server").unwrap()],
        device_class: DeviceClass::Server,
        pq_profile: PqProfile::Standard,
        not_before: now,
        not_after: now.saturating_add(Timestamp::DAY),
        ledger_index: 1,
        issuer: rogue_anchor.node_id(),
    };
    let signed = SignedNodeCertificate::sign(cert, &rogue_anchor).unwrap();
    std::fs::write(dir.join("node.cert"), signed.to_text()).unwrap();
    // It trusts its own "anchor", and knows where the real members are.
    let mut anchors: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(net.agents[0].dir.join("anchors.json")).unwrap())
            .unwrap();
    anchors[0]["node_id"] = rogue_anchor.node_id().to_string().into();
    anchors[0]["public_key"] = hex::encode(rogue_anchor.verifying_key().as_bytes()).into();
    anchors.truncate(1);
    std::fs::write(
        dir.join("anchors.json"),
        serde_json::to_vec(&anchors).unwrap(),
    )
    .unwrap();
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.agents[0].dir.join("agent.json")).unwrap())
            .unwrap();
    state["node_id"] = identity.node_id().to_string().into();
    state["overlay_ip"] = "100.64.0.99".into();
    std::fs::write(dir.join("agent.json"), serde_json::to_vec(&state).unwrap()).unwrap();
    // Each member's peer cache lists the other: together, where both are.
    let mut peers: Vec<serde_json::Value> = Vec::new();
    for agent in &net.agents {
        let cached = std::fs::read(agent.dir.join("peers.json")).unwrap();
        peers.extend(serde_json::from_slice::<Vec<serde_json::Value>>(&cached).unwrap());
    }
    assert_eq!(peers.len(), 2, "{peers:?}");
    std::fs::write(dir.join("peers.json"), serde_json::to_vec(&peers).unwrap()).unwrap();
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let spare = net.spare_namespace().unwrap();
    let mut rogue = net
        .lab
        .command(spare, net.exe())
        .args(["agent", "run", "--tun", "--dir", dir.to_str().unwrap()])
        .args([
            "--ip",
            &net.lab.node_ip(spare).to_string(),
            "--state-poll",
            "1",
        ])
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // It reaches no one, and no member lists it.
    for to in 0..2 {
        let reached = net
            .lab
            .command(spare, "ping")
            .args([
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "1",
                "-q",
                &net.agents[to].overlay,
            ])
            .output()
            .await
            .unwrap()
            .status
            .success();
        assert!(!reached, "the rogue node reached member {to}");
        assert!(
            !net.peer_ids(to)
                .await
                .contains(&identity.node_id().to_string())
        );
    }
    let log = std::fs::read_to_string(net.agents[0].dir.join("agent.log")).unwrap();
    assert!(
        log.contains("refusing a peer"),
        "member 1 never refused the rogue node:\n{log}"
    );
    let _ = rogue.kill().await;
}

/// Starts an iperf3 server on node `to` and a client from node `from` for `secs` seconds.
async fn transfer(
    net: &MeshLab,
    from: usize,
    to: usize,
    secs: u32,
) -> (tokio::process::Child, tokio::process::Child) {
    let server = net.iperf_server(to, 5301).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = net
        .lab
        .command(from, "iperf3")
        .args([
            "-c",
            &net.agents[to].overlay,
            "-p",
            "5301",
            "-t",
            &secs.to_string(),
        ])
        .args(["-b", "50M", "--connect-timeout", "2000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_revoked_mid_transfer_is_cut_off_everywhere_within_2s() {
    if skip("a_node_revoked_mid_transfer_is_cut_off_everywhere_within_2s") {
        return;
    }
    let net = start(&["robot", "server", "server"], 0).await;
    let (mut server, mut client) = transfer(&net, 0, 1, 8).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flowing = net.status(1).await["data_plane"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node_id"] == net.agents[0].node_id.as_str())
        .map(|p| p["bytes_received"].as_u64().unwrap())
        .unwrap();
    assert!(
        flowing > 1_000_000,
        "the transfer is not flowing ({flowing} bytes)"
    );

    let revoked = Instant::now();
    net.admin
        .reject_or_revoke(
            MESH,
            &net.agents[0].node_id,
            "revoke",
            &Reason {
                reason: "stolen".into(),
            },
        )
        .await
        .unwrap();
    let mut cut = Vec::new();
    for peer in [1, 2] {
        loop {
            if !net.peer_ids(peer).await.contains(&net.agents[0].node_id) {
                cut.push(revoked.elapsed());
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(2),
                "node {} still holds the revoked node after 2 s",
                peer + 1
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("revoked node cut off after {cut:?} (peers 2 and 3)");
    // Nothing gets through any more, in either direction.
    assert!(!net.ping(0, 1, 2).await);
    assert!(!net.ping(2, 0, 2).await);
    let _ = client.kill().await;
    let _ = server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_anchor_dead_flows_continue_and_new_sessions_come_up() {
    if skip("with_every_anchor_dead_flows_continue_and_new_sessions_come_up") {
        return;
    }
    let mut net = start(&["server", "server", "server"], 0).await;
    let (mut server, client) = transfer(&net, 0, 1, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // kill -9 every anchor: the control plane is gone.
    for i in 1..=3 {
        let info = NodeInfo::load(&testnet::node_dir(&net.anchors, i)).unwrap();
        testnet::kill_and_wait(info.pid).await;
    }
    // The running transfer finishes.
    let output = client.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "the transfer broke when the anchors died: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = server.kill().await;
    // A restarted agent comes back from its cache (certificate, signed state, policy,
    // peers) and brings new sessions up with both others.
    if let Some(mut child) = net.agents[2].child.take() {
        let _ = child.kill().await;
    }
    net.start_agent(2).unwrap();
    net.wait_peers(2, 2).await.unwrap();
    assert!(
        net.ping(2, 0, 3).await,
        "new session 3 → 1 without anchors\n{}",
        net.logs()
    );
    let reached = net.ping(1, 2, 3).await;
    assert!(
        reached,
        "new session 2 → 3 without anchors\n{}\n{}\n{}",
        net.status(1).await,
        net.status(2).await,
        net.logs()
    );
    let status = net.status(2).await;
    assert_eq!(
        status["data_plane"]["policy_version"], 1,
        "policy from the cache"
    );
    assert_eq!(status["data_plane"]["anchors_reached"], 0);
}

/// The link to peer `peer` as agent `i` reports it: (alive, loss per thousand).
async fn link(net: &MeshLab, i: usize, peer: &str) -> Option<(bool, u64)> {
    let status = net.status(i).await;
    let peers = status["data_plane"]["peers"].as_array()?.clone();
    let entry = peers.iter().find(|p| p["node_id"] == peer)?;
    Some((
        entry["link_alive"].as_bool()?,
        entry["loss_permille"].as_u64()?,
    ))
}

async fn counter(net: &MeshLab, i: usize, name: &str) -> u64 {
    net.status(i).await["data_plane"]["counters"][name]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_is_found_within_about_a_second_and_comes_back() {
    if skip("a_dead_link_is_found_within_about_a_second_and_comes_back") {
        return;
    }
    let net = start(&["server", "server"], 0).await;
    assert!(net.ping(0, 1, 2).await, "no path before the cut");
    let peer = net.agents[1].node_id.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while link(&net, 0, &peer).await.map(|l| l.0) != Some(true) {
        assert!(
            Instant::now() < deadline,
            "the link never came up: {}",
            net.status(0).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cut node 2 off the bridge: its probes stop answering.
    let cut = Instant::now();
    net.lab.set_link(1, false).unwrap();
    let detected = loop {
        if link(&net, 0, &peer).await.map(|l| l.0) == Some(false) {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(5),
            "the dead link was not noticed: {}",
            net.status(0).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("dead link noticed after {detected:?}");
    // The monitor gives up after 0.8 s of silence at 0.2 s probes; the bound is generous
    // for a loaded machine (the figure itself goes to the routing benchmark).
    assert!(
        detected < Duration::from_secs(3),
        "noticed after {detected:?}"
    );
    assert!(counter(&net, 0, "links_down").await >= 1);
    // The peer stays verified (its session survives); the link comes back with the cable.
    net.lab.set_link(1, true).unwrap();
    let back = Instant::now();
    while link(&net, 0, &peer).await.map(|l| l.0) != Some(true) {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the link did not come back: {}",
            net.status(0).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, loss) = link(&net, 0, &peer).await.unwrap();
    assert!(
        loss > 0,
        "the outage shows in the loss figure: {}",
        net.status(0).await
    );
    assert!(counter(&net, 0, "links_up_again").await >= 1);
    assert!(net.ping(0, 1, 3).await, "no path after the cable came back");
}
