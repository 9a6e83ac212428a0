//! Starting a member: its identity and certificate from the data dir, its swarm, TUN device
//! and data port, and the tasks that run until shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use rand_core::RngCore;
use tokio::sync::{mpsc, watch};
use x0t_crypto::{SigAlgorithm, VerifyingKey};
use x0t_policy::Endpoint;
use x0t_types::MeshId;

use crate::NodeError;
use crate::clock::now;
use crate::p2p::P2pConfig;
use trust::Trust;

use super::{
    Counters, MAX_FLOWS, MEMBER_INFO_FILE, Member, MemberConfig, MemberInfo, cache, dataplane,
    forward, local_api, packet, trust, udp,
};

/// Runs a mesh member until `shutdown` turns true.
pub async fn run_member(
    config: MemberConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let dir = &config.data_dir;
    let not_ready = |why: &str| {
        NodeError::Config(format!(
            "{} is not an approved node's data dir: {why} (run `x0t join` first)",
            dir.display()
        ))
    };
    let state = crate::agent::load_state(dir)?.ok_or_else(|| not_ready("no agent.json"))?;
    let signed = crate::agent::load_certificate(dir)?.ok_or_else(|| not_ready("no certificate"))?;
    let anchor_views = crate::agent::load_anchors(dir)?;
    if anchor_views.is_empty() {
        return Err(not_ready("no anchors.json"));
    }
    let identity = Arc::new(crate::identity::load_identity(dir)?);
    let keypair = crate::identity::libp2p_keypair(dir)?;
    let mesh = MeshId::new(&state.mesh).map_err(|e| NodeError::Config(e.to_string()))?;
    let anchor_keys: Vec<VerifyingKey> = anchor_views
        .iter()
        .filter_map(|a| {
            let alg = SigAlgorithm::from_code(a.algorithm)?;
            VerifyingKey::from_bytes(alg, &crate::hex::unhex(&a.public_key).ok()?).ok()
        })
        .collect();
    let mut trust = Trust::new(mesh.clone(), anchor_keys);
    let cert_bytes = signed.encode();
    let cert = trust
        .verify_certificate(
            &cert_bytes,
            Some(&keypair.public().to_peer_id().to_bytes()),
            now(),
        )
        .map_err(|why| NodeError::Config(format!("this node's own certificate: {why}")))?;
    if cert.node_id != identity.node_id() {
        return Err(not_ready("the certificate names another node"));
    }
    cache::load(dir, &mut trust);
    if trust.is_revoked(&cert.node_id) {
        return Err(NodeError::Config(
            "this node is revoked (per the cached mesh state); re-enroll with a new key".to_owned(),
        ));
    }

    let (udp, streams, data_port) = bind_data_port(config.data_listen).await?;

    let tun = match &config.tun {
        Some(tun) => Some(Arc::new(dataplane::open_tun(tun, cert.overlay_ip)?)),
        None => None,
    };

    let (connection_events, mut connections) = mpsc::channel(1024);
    let (p2p, inbound) = crate::p2p::spawn(
        P2pConfig {
            keypair,
            listen: config.p2p_listen.clone(),
            request_timeout: Duration::from_secs(10),
            connection_events: Some(connection_events),
        },
        shutdown.clone(),
    )
    .await?;
    let p2p_addrs: Vec<String> = p2p
        .listen_addrs()
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();

    let anchors = anchor_views
        .iter()
        .filter_map(|a| {
            let peer: PeerId = a.peer_id.parse().ok()?;
            Some((
                peer,
                a.addrs.iter().filter_map(|s| s.parse().ok()).collect(),
            ))
        })
        .collect();
    let me = Endpoint::node(cert.node_id, cert.device_class, cert.tags.iter().cloned());
    let member = Arc::new(Member {
        mesh,
        node_id: identity.node_id(),
        identity,
        me,
        cert_bytes,
        trust: RwLock::new(trust),
        p2p: p2p.clone(),
        p2p_addrs: p2p_addrs.clone(),
        data_port,
        data_dir: dir.clone(),
        rekey: config.rekey,
        anchors: RwLock::new(anchors),
        anchors_up: RwLock::default(),
        peers: RwLock::default(),
        by_peer_id: RwLock::default(),
        by_ip: RwLock::default(),
        by_endpoint: RwLock::default(),
        sessions: RwLock::default(),
        responding: Mutex::default(),
        known: RwLock::new(cache::load_peers(dir)),
        flows: Mutex::new(packet::FlowTable::new(MAX_FLOWS)),
        udp: Arc::new(udp),
        routing: Mutex::default(),
        events: Mutex::default(),
        events_changed: watch::Sender::new(0),
        links_changed: AtomicBool::new(false),
        tun_name: config.tun.as_ref().map(|t| t.name.clone()),
        tun,
        counters: Counters::default(),
        pings: Mutex::default(),
        services: RwLock::default(),
        started: Instant::now(),
        started_at_ms: now().as_millis(),
        instance: rand_core::OsRng.next_u64(),
        last_failure_us: AtomicU64::new(0),
        last_remote_failure_us: AtomicU64::new(0),
        first_session_ms: AtomicU64::new(0),
        cert,
    });

    member.clone().serve_requests(inbound);
    // The packet paths end with the member (in one process, tests run several members: a
    // stopped one must stop answering).
    tokio::spawn(until_shutdown(
        member.clone().receive_frames(),
        shutdown.clone(),
    ));
    if member.tun.is_some() {
        tokio::spawn(until_shutdown(member.clone().read_tun(), shutdown.clone()));
    }
    tokio::spawn(forward::serve_streams(member.clone(), streams));
    {
        let member = member.clone();
        tokio::spawn(async move {
            while let Some(event) = connections.recv().await {
                member.clone().on_connection(event);
            }
        });
    }
    tokio::spawn(member.clone().maintain(config.state_poll, shutdown.clone()));
    tokio::spawn(member.clone().probe_links(shutdown.clone()));
    let (api_url, api) =
        local_api::serve(member.clone(), config.api_listen, shutdown.clone()).await?;

    let info = MemberInfo {
        node_id: member.node_id.to_string(),
        mesh: member.mesh.to_string(),
        overlay_ip: member.cert.overlay_ip.to_string(),
        peer_id: p2p.local_peer_id().to_string(),
        p2p_addrs,
        data_port,
        api_url: api_url.clone(),
        tun: member.tun_name.clone().filter(|_| member.tun.is_some()),
        pid: std::process::id(),
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| NodeError::Config(e.to_string()))?;
    std::fs::write(dir.join(MEMBER_INFO_FILE), json)
        .map_err(|e| NodeError::Config(format!("writing {MEMBER_INFO_FILE}: {e}")))?;
    tracing::info!(
        node = %member.node_id.short(),
        overlay = %member.cert.overlay_ip,
        data_port,
        %api_url,
        "mesh member ready"
    );
    // Reach the anchors and the known members at once, not at the first tick.
    member.clone().reach_out();

    let _ = shutdown.wait_for(|stop| *stop).await;
    tracing::info!("mesh member shutting down");
    let _ = api.await;
    let _ = std::fs::remove_file(dir.join(MEMBER_INFO_FILE));
    Ok(())
}

/// Runs `task` until it ends or `shutdown` turns true.
pub(super) async fn until_shutdown(
    task: impl std::future::Future<Output = ()>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        () = task => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

/// Binds the data port: UDP for frames and TCP for streams, on the same number. With port 0
/// the UDP socket picks one, which another process may hold for TCP: then try another.
pub(super) async fn bind_data_port(
    listen: SocketAddr,
) -> Result<(udp::UdpLink, tokio::net::TcpListener, u16), NodeError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let udp = udp::UdpLink::bind(listen)?;
        let port = udp
            .local_addr()
            .map_err(|e| NodeError::Config(e.to_string()))?
            .port();
        match tokio::net::TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(streams) => return Ok((udp, streams, port)),
            Err(e) if listen.port() != 0 || attempts >= 16 => {
                return Err(NodeError::Config(format!(
                    "binding TCP data port {port}: {e}"
                )));
            }
            Err(_) => continue,
        }
    }
}
