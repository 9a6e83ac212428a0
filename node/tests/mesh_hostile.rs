//! A member under attack, in one process on loopback: peers without a valid certificate get
//! nothing but a refusal and a closed connection, and malformed, truncated, replayed, forged,
//! oversized and misaddressed frames are dropped and counted while the member keeps serving.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::eventually;
use common::member::{MESH, enroll, start};
use x0t_client::ApiClient;
use x0t_crypto::frame::{Frame, FrameKind};
use x0t_crypto::{NodeCertificate, SignedNodeCertificate};
use x0t_node::mesh::MemberInfo;
use x0t_node::mesh::session::{self, InitMessage, Parties};
use x0t_node::p2p::protocol::{
    ControlRequest, ControlResponse, MeshRequest, MeshResponse, PeerHello,
};
use x0t_node::p2p::{ConnectionEvent, P2p, P2pConfig};
use x0t_types::Timestamp;

struct Attacker {
    p2p: P2p,
    events: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ConnectionEvent>>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn p2p_for(dir: &std::path::Path) -> Attacker {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (events_tx, events) = tokio::sync::mpsc::channel(64);
    let (p2p, _inbound) = x0t_node::p2p::spawn(
        P2pConfig {
            keypair: x0t_node::run::libp2p_keypair(dir).unwrap(),
            listen: Vec::new(),
            request_timeout: Duration::from_secs(5),
            connection_events: Some(events_tx),
        },
        shutdown,
    )
    .await
    .unwrap();
    Attacker {
        p2p,
        events: tokio::sync::Mutex::new(events),
        _stop: stop,
    }
}

impl Attacker {
    /// Waits until the member closed the connection.
    async fn disconnected(&self) {
        let mut events = self.events.lock().await;
        tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(event) = events.recv().await {
                if matches!(event, ConnectionEvent::Disconnected { .. }) {
                    return;
                }
            }
        })
        .await
        .expect("the member did not disconnect a refused peer");
    }
}

fn hello(certificate: Vec<u8>) -> ControlRequest {
    ControlRequest::Mesh(MeshRequest::Hello(PeerHello {
        certificate,
        data_port: 9,
        listen: Vec::new(),
        state_index: 0,
        instance: 1,
    }))
}

fn refusal(answer: ControlResponse) -> String {
    match answer {
        ControlResponse::Mesh(Err(why)) | ControlResponse::Refused(why) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_are_refused_and_bad_frames_are_counted() {
    let root = tempfile::tempdir().unwrap();
    let (anchors, key) = common::cluster(root.path(), 1).await;
    let anchor_url = anchors[0].info().api_url;
    let admin = ApiClient::new(&anchor_url, Some(key)).unwrap();
    let (dir, id) = enroll(&admin, &anchor_url, root.path(), "target", "server").await;
    let target = start(dir, id).await;
    let info = MemberInfo::load(&target.dir).unwrap();
    let target_peer: libp2p::PeerId = info.peer_id.parse().unwrap();
    let target_addrs: Vec<libp2p::Multiaddr> =
        info.p2p_addrs.iter().map(|a| a.parse().unwrap()).collect();

    // The attacker is a real, approved node: it can try everything a member can.
    let (attacker_dir, _) = enroll(&admin, &anchor_url, root.path(), "attacker", "robot").await;
    let identity = x0t_node::identity::load_identity(&attacker_dir).unwrap();
    let signed = x0t_node::agent::load_certificate(&attacker_dir)
        .unwrap()
        .unwrap();
    let attacker = p2p_for(&attacker_dir).await;
    let ask = async |request: ControlRequest| {
        attacker
            .p2p
            .request(target_peer, target_addrs.clone(), request)
            .await
            .unwrap()
    };
    // A refusal comes with its reason, then the connection is closed.
    let refused = async |request: ControlRequest| {
        let why = refusal(ask(request).await);
        attacker.disconnected().await;
        why
    };

    // 1. Asking for anything before a hello is refused.
    let why = refused(ControlRequest::Mesh(MeshRequest::Peers)).await;
    assert!(why.contains("hello"), "{why}");
    // 2. No certificate, garbage, an expired one (signed by the real anchor), one naming
    //    another libp2p peer: each refused with its reason.
    assert!(
        refused(hello(Vec::new()))
            .await
            .contains("unreadable certificate")
    );
    assert!(
        refused(hello(vec![7; 3_000]))
            .await
            .contains("unreadable certificate")
    );
    let anchor_key = x0t_node::identity::load_identity(&anchors[0].dir).unwrap();
    let mut expired: NodeCertificate = signed.payload().clone();
    expired.issuer = anchor_key.node_id();
    expired.not_before = Timestamp(1_000);
    expired.not_after = Timestamp(2_000);
    let expired = SignedNodeCertificate::sign(expired, &anchor_key).unwrap();
    let why = refused(hello(expired.encode())).await;
    assert!(why.contains("valid"), "{why}");
    let mut elsewhere: NodeCertificate = signed.payload().clone();
    elsewhere.issuer = anchor_key.node_id();
    elsewhere.peer_id = x0t_node::agent::fresh_peer_id();
    let elsewhere = SignedNodeCertificate::sign(elsewhere, &anchor_key).unwrap();
    assert!(
        refused(hello(elsewhere.encode()))
            .await
            .contains("another libp2p peer")
    );

    // 3. With its real certificate it gets in, and sets up a session by hand.
    let answer = ask(hello(signed.encode())).await;
    let ControlResponse::Mesh(Ok(MeshResponse::Hello(their))) = answer else {
        panic!("hello refused: {answer:?}");
    };
    let target_cert = SignedNodeCertificate::decode(&their.certificate)
        .unwrap()
        .payload()
        .clone();
    let parties = Parties {
        mesh: &x0t_types::MeshId::new(MESH).unwrap(),
        identity: &identity,
        profile: signed.payload().pq_profile,
        peer: &target_cert,
    };
    let (initiating, init) = session::initiate(parties, 77).unwrap();
    let ControlResponse::Mesh(Ok(MeshResponse::HandshakeReply {
        responder_index,
        hello,
        signature,
    })) = ask(ControlRequest::Mesh(MeshRequest::HandshakeInit {
        initiator_index: 77,
        hello: init.hello,
        signature: init.signature,
    }))
    .await
    else {
        panic!("handshake refused");
    };
    let (session, confirmation) = session::finish(
        parties,
        initiating,
        responder_index,
        &InitMessage { hello, signature },
    )
    .unwrap();
    // A confirmation with a wrong signature is refused; the real one accepted.
    assert!(
        refusal(
            ask(ControlRequest::Mesh(MeshRequest::HandshakeConfirm {
                responder_index: responder_index ^ 1,
                signature: confirmation.clone(),
            }))
            .await
        )
        .contains("no such handshake")
    );
    let answer = ask(ControlRequest::Mesh(MeshRequest::HandshakeConfirm {
        responder_index,
        signature: confirmation,
    }))
    .await;
    assert!(
        matches!(answer, ControlResponse::Mesh(Ok(MeshResponse::Done))),
        "{answer:?}"
    );

    // 4. Frames over UDP.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let data = std::net::SocketAddr::from(([127, 0, 0, 1], info.data_port));
    let me = identity.node_id();
    let mut ping = vec![1u8];
    ping.extend_from_slice(&42u64.to_be_bytes());
    let good = session.seal(FrameKind::Keepalive, me, &ping).unwrap();
    udp.send_to(&good, data).await.unwrap();
    // The ping is answered through the session: the session works.
    let mut buf = vec![0u8; 2_048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), udp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let pong = session.open(&Frame::decode(&buf[..n]).unwrap()).unwrap();
    assert_eq!(pong[0], 2);
    assert_eq!(&pong[1..], &42u64.to_be_bytes());

    let sends: Vec<(&str, Vec<u8>)> = vec![
        ("frames_replayed", good.clone()),
        ("frames_malformed", good[..good.len() - 5].to_vec()),
        ("frames_malformed", vec![0xee; 300]),
        ("frames_malformed", b"x0".to_vec()),
        ("frames_forged", {
            // A fresh counter, so the window lets it through to authentication.
            let mut flipped = session.seal(FrameKind::Keepalive, me, &ping).unwrap();
            *flipped.last_mut().unwrap() ^= 0x40;
            flipped
        }),
        ("frames_oversized", vec![0u8; 20_000]),
        ("frames_unknown_session", {
            let mut other = session.seal(FrameKind::Keepalive, me, &ping).unwrap();
            other[70..74].copy_from_slice(&0xdead_beefu32.to_be_bytes());
            other
        }),
        ("frames_not_for_us", {
            let mut other = session.seal(FrameKind::Keepalive, me, &ping).unwrap();
            other[6] ^= 1;
            other
        }),
        ("packets_spoofed", {
            // An IPv4 packet claiming another source address.
            let mut packet = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0, 100, 64, 9, 9];
            packet.extend_from_slice(&target_cert.overlay_ip.octets());
            packet.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
            session.seal(FrameKind::Data, me, &packet).unwrap()
        }),
    ];
    let mut expected = std::collections::BTreeMap::<&str, u64>::new();
    for (counter, bytes) in &sends {
        udp.send_to(bytes, data).await.unwrap();
        *expected.entry(counter).or_default() += 1;
    }
    let counters = eventually(
        "every bad frame counted",
        Duration::from_secs(5),
        async || {
            let counters = target.status().await.counters;
            expected
                .iter()
                .all(|(name, n)| counters[*name] >= *n)
                .then_some(counters)
        },
    )
    .await;
    eprintln!("{counters:?}");
    assert_eq!(
        counters["frames_received"], 2,
        "the ping and the spoofed packet's frame"
    );

    // Still serving: a real peer gets in and pings it.
    let (dir, id) = enroll(&admin, &anchor_url, root.path(), "friend", "server").await;
    let friend = start(dir, id).await;
    eventually("the friend verified", Duration::from_secs(20), async || {
        (friend
            .status()
            .await
            .peers
            .iter()
            .any(|p| p.node_id == target.node_id))
        .then_some(())
    })
    .await;
    let report = friend.client().ping(&target.node_id, 2).await.unwrap();
    assert!(report.rtts_ms.iter().all(Option::is_some));

    friend.stop().await;
    target.stop().await;
    for anchor in anchors {
        anchor.stop().await;
    }
}
