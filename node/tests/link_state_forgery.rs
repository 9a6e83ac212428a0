//! Forged and replayed link states at a running member: an approved node that misbehaves
//! (it says hello properly, then floods states it should not) changes nothing. A state for
//! another origin signed with its own key, a certificate no anchor signed, a replayed or
//! older state, and links it invents are refused or ignored, and counted.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use common::eventually;
use common::member::{MESH, agent, enroll};
use libp2p::{Multiaddr, PeerId};
use rand_core::RngCore;
use x0t_crypto::{
    AdvertisedLink, LinkStateAdvert, NodeCertificate, SigAlgorithm, SignedLinkState,
    SignedNodeCertificate, SigningKey,
};
use x0t_node::mesh::MemberInfo;
use x0t_node::p2p::protocol::{
    ControlRequest, ControlResponse, MeshRequest, MeshResponse, PeerHello,
};
use x0t_node::p2p::{P2p, P2pConfig};
use x0t_types::{DeviceClass, MeshId, NodeId, PqProfile, Timestamp};

fn advert(origin: NodeId, sequence: u64, links: Vec<AdvertisedLink>) -> LinkStateAdvert {
    LinkStateAdvert {
        mesh: MeshId::new(MESH).unwrap(),
        origin,
        sequence,
        issued_at: Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        ),
        links,
    }
}

async fn send(
    p2p: &P2p,
    to: PeerId,
    addrs: &[Multiaddr],
    request: MeshRequest,
) -> Result<MeshResponse, String> {
    match p2p
        .request(to, addrs.to_vec(), ControlRequest::Mesh(request))
        .await
        .unwrap()
    {
        ControlResponse::Mesh(answer) => answer,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_and_replayed_link_states_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let (anchors, _key, admin, anchor_url) = common::member::open_mesh(root.path()).await;
    let a = agent(&admin, &anchor_url, root.path(), "a", "server").await;
    let b = agent(&admin, &anchor_url, root.path(), "b", "server").await;
    // Mallory is approved, but does not run the member code: it speaks for itself.
    let (m_dir, m_id) = enroll(&admin, &anchor_url, root.path(), "mallory", "server").await;
    let m_id: NodeId = m_id.parse().unwrap();
    let b_id: NodeId = b.node_id.parse().unwrap();
    let a_id: NodeId = a.node_id.parse().unwrap();
    for member in [&a, &b] {
        eventually("direct routes", Duration::from_secs(20), async || {
            let status = member.status().await;
            (status.link_states == 2 && status.routes.len() == 1).then_some(())
        })
        .await;
    }

    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let (p2p, _inbound) = x0t_node::p2p::spawn(
        P2pConfig {
            keypair: x0t_node::run::libp2p_keypair(&m_dir).unwrap(),
            listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()],
            request_timeout: Duration::from_secs(10),
            connection_events: None,
        },
        shutdown,
    )
    .await
    .unwrap();
    let info = MemberInfo::load(&a.dir).unwrap();
    let a_peer: PeerId = info.peer_id.parse().unwrap();
    let a_addrs: Vec<Multiaddr> = info.p2p_addrs.iter().map(|s| s.parse().unwrap()).collect();
    let m_cert = x0t_node::agent::load_certificate(&m_dir)
        .unwrap()
        .unwrap()
        .encode();
    let m_key = x0t_node::identity::load_identity(&m_dir).unwrap();
    let hello = PeerHello {
        certificate: m_cert.clone(),
        data_port: 9,
        listen: Vec::new(),
        state_index: 0,
        instance: rand_core::OsRng.next_u64(),
    };
    let answer = send(&p2p, a_peer, &a_addrs, MeshRequest::Hello(hello)).await;
    assert!(matches!(answer, Ok(MeshResponse::Hello(_))), "{answer:?}");
    let counters = |status: &x0t_node::mesh::local_api::MemberStatus| {
        (
            status.counters["link_states_refused"],
            status.counters["link_states_stale"],
        )
    };
    let before = a.status().await;
    let (refused0, stale0) = counters(&before);

    // 1. A state for B, signed by Mallory (Mallory's own, with B's id put in place of its
    //    own): refused, only B's key verifies a state of B's.
    let mut forged = SignedLinkState::sign(advert(m_id, u64::MAX / 2, vec![]), &m_key)
        .unwrap()
        .encode();
    let (m_bytes, b_bytes) = (m_id.as_bytes().to_vec(), b_id.as_bytes().to_vec());
    let mut at = 0;
    while let Some(found) = forged[at..]
        .windows(32)
        .position(|w| w == m_bytes.as_slice())
    {
        forged[at + found..at + found + 32].copy_from_slice(&b_bytes);
        at += found + 32;
    }
    assert!(at > 0, "the origin is in the encoding");
    let answer = send(
        &p2p,
        a_peer,
        &a_addrs,
        MeshRequest::LinkState {
            state: forged,
            certificate: m_cert.clone(),
        },
    )
    .await;
    assert!(answer.is_err(), "{answer:?}");

    // 2. A made-up node with a certificate no anchor signed: refused.
    let stranger = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let fake_cert = SignedNodeCertificate::sign(
        NodeCertificate {
            mesh: MeshId::new(MESH).unwrap(),
            node_id: stranger.node_id(),
            identity_key: stranger.verifying_key().clone(),
            peer_id: PeerId::random().to_bytes(),
            overlay_ip: "100.64.9.9".parse().unwrap(),
            tags: vec![],
            device_class: DeviceClass::Server,
            pq_profile: PqProfile::Standard,
            not_before: Timestamp(0),
            not_after: Timestamp(u64::MAX / 2),
            ledger_index: 1,
            issuer: stranger.node_id(),
        },
        &stranger,
    )
    .unwrap();
    let invented = SignedLinkState::sign(
        advert(
            stranger.node_id(),
            1,
            vec![AdvertisedLink {
                neighbor: a_id,
                rtt_micros: 1,
                loss_permille: 0,
            }],
        ),
        &stranger,
    )
    .unwrap();
    let answer = send(
        &p2p,
        a_peer,
        &a_addrs,
        MeshRequest::LinkState {
            state: invented.encode(),
            certificate: fake_cert.encode(),
        },
    )
    .await;
    assert!(answer.is_err(), "{answer:?}");

    // 3. Mallory's own state, claiming a 1 µs link to B that B does not report: stored
    //    (it is authentic), but no route goes through it.
    let own = SignedLinkState::sign(
        advert(
            m_id,
            1_000,
            vec![AdvertisedLink {
                neighbor: b_id,
                rtt_micros: 1,
                loss_permille: 0,
            }],
        ),
        &m_key,
    )
    .unwrap()
    .encode();
    let take = |state: Vec<u8>| MeshRequest::LinkState {
        state,
        certificate: m_cert.clone(),
    };
    assert!(matches!(
        send(&p2p, a_peer, &a_addrs, take(own.clone())).await,
        Ok(MeshResponse::Done)
    ));
    // 4. The same state again, and an older one: nothing changes (counted as stale).
    assert!(send(&p2p, a_peer, &a_addrs, take(own)).await.is_ok());
    let older = SignedLinkState::sign(advert(m_id, 999, vec![]), &m_key)
        .unwrap()
        .encode();
    assert!(send(&p2p, a_peer, &a_addrs, take(older)).await.is_ok());

    let after = a.status().await;
    let (refused, stale) = counters(&after);
    assert_eq!(refused - refused0, 2, "{after:?}");
    assert_eq!(stale - stale0, 2, "{after:?}");
    assert_eq!(after.link_states, 3, "Mallory's own state is held");
    let to_b = after
        .routes
        .iter()
        .find(|r| r.destination == b.node_id)
        .unwrap();
    assert_eq!(
        to_b.path,
        vec![b.node_id.clone()],
        "still direct: {after:?}"
    );
    assert!(
        !after
            .routes
            .iter()
            .any(|r| r.destination == m_id.to_string()),
        "no route over a link only one end reports: {after:?}"
    );
    // B's state is B's own: its routes were never touched by the forgery.
    let b_status = b.status().await;
    assert_eq!(b_status.routes.len(), 1, "{b_status:?}");

    a.stop().await;
    b.stop().await;
    for anchor in anchors {
        anchor.stop().await;
    }
}
