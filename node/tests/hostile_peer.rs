//! A peer that is not an anchor, and one that sends malformed or oversized control frames:
//! both are refused, and the node keeps serving.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, noise, tcp, yamux};
use tokio::sync::watch;
use x0t_node::control::RaftSettings;
use x0t_node::p2p::protocol::{CONTROL_PROTOCOL, ControlRequest, ControlResponse};
use x0t_node::{NodeConfig, NodeInfo};

/// Sends raw bytes as a request and returns the raw response bytes.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        io.read_to_end(&mut out).await?;
        Ok(out)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        io.take(1 << 20).read_to_end(&mut out).await?;
        Ok(out)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&res).await?;
        io.close().await
    }
}

fn frame(request: &ControlRequest) -> Vec<u8> {
    let body = bincode::serde::encode_to_vec(request, bincode::config::standard()).unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_garbage_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, shutdown) = watch::channel(false);
    let node = tokio::spawn(x0t_node::run(
        NodeConfig {
            data_dir: dir.path().to_path_buf(),
            p2p_listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            api_listen: "127.0.0.1:0".parse().unwrap(),
            join: None,
            raft: RaftSettings::default(),
        },
        shutdown,
    ));
    let info = loop {
        if let Ok(info) = NodeInfo::load(dir.path()) {
            break info;
        }
        assert!(!node.is_finished());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let target: PeerId = info.peer_id.parse().unwrap();
    let addr: Multiaddr = info.p2p_addrs[0].parse().unwrap();

    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(
                    StreamProtocol::new(CONTROL_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            )
        })
        .unwrap()
        .build();

    let vote = ControlRequest::Vote(openraft::raft::VoteRequest {
        vote: openraft::Vote::new(99, 1),
        last_log_id: None,
    });
    let me = swarm.local_peer_id().to_string();
    let me_as_anchor = x0t_consensus::AnchorNode {
        peer_id: me.clone(),
        addrs: vec![],
        api_url: "http://127.0.0.1:1".into(),
    };
    // "Add me" without having redeemed a join token.
    let add_me = ControlRequest::AddAnchor {
        id: 42,
        node: me_as_anchor,
    };
    // A join with a well-formed but made-up token.
    let join = ControlRequest::JoinAnchor {
        token: format!("x0tanc_AAAAAAAAAAAAA_{}", "A".repeat(52)),
        anchor: x0t_types::AnchorRecord {
            raft_id: 42,
            node_id: x0t_types::NodeId::from_bytes([4; 32]),
            identity_key: x0t_types::PublicKeyBytes {
                algorithm: 0x65,
                bytes: vec![4; 1952],
            },
            peer_id: me,
            addrs: vec![],
            api_url: "http://127.0.0.1:1".into(),
        },
    };
    let mut oversized = u32::MAX.to_be_bytes().to_vec();
    oversized.extend([0u8; 64]);
    let mut garbage = 16u32.to_be_bytes().to_vec();
    garbage.extend([0xffu8; 16]);
    let cases = [
        ("vote from a stranger", frame(&vote)),
        ("add-me from a stranger", frame(&add_me)),
        ("join with a made-up token", frame(&join)),
        ("oversized frame", oversized),
        ("garbage frame", garbage),
    ];

    for (name, bytes) in cases {
        swarm
            .behaviour_mut()
            .send_request_with_addresses(&target, bytes, vec![addr.clone()]);
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    }) => return Ok(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        error,
                        ..
                    }) => {
                        return Err(error.to_string());
                    }
                    _ => {}
                }
            }
        })
        .await
        .unwrap();
        match name {
            "vote from a stranger" | "add-me from a stranger" => {
                let response = outcome.unwrap();
                let (decoded, _): (ControlResponse, usize) =
                    bincode::serde::decode_from_slice(&response[4..], bincode::config::standard())
                        .unwrap();
                assert!(
                    matches!(decoded, ControlResponse::Refused(ref why) if why.contains("not an anchor")),
                    "{name}: {decoded:?}"
                );
            }
            "join with a made-up token" => {
                let response = outcome.unwrap();
                let (decoded, _): (ControlResponse, usize) =
                    bincode::serde::decode_from_slice(&response[4..], bincode::config::standard())
                        .unwrap();
                assert!(
                    matches!(decoded, ControlResponse::JoinAnchor(Err(ref why)) if why.contains("anchor-join token")),
                    "{name}: {decoded:?}"
                );
            }
            _ => assert!(
                outcome.is_err() || outcome.unwrap().is_empty(),
                "{name} got an answer"
            ),
        }
    }

    // The node still serves and is still its own leader.
    let status = x0t_client::ApiClient::new(&info.api_url, None)
        .unwrap()
        .cluster()
        .await
        .unwrap();
    assert_eq!(status.leader, Some(info.raft_id));
    stop.send(true).unwrap();
    node.await.unwrap().unwrap();
}
