//! Seeds for the fuzz targets (`fuzz/corpus/<target>/`): real encodings of every format the
//! targets decode, so the fuzzers start from bytes that pass checksums and magic numbers
//! instead of finding them. Signed objects are made here with fresh keys; ledger entries,
//! records and the audit chain come from a real anchor that this run starts, drives through
//! the API (mesh, token, registration, approval) and stops, then reads back from its sled files.
//!
//! Usage: `x0t-testnet fuzz-seeds --out fuzz/corpus` (re-run when a format changes).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use x0t_client::ApiClient;
use x0t_crypto::bearer::{SecretToken, TokenKind};
use x0t_crypto::frame::{Frame, FrameHeader, FrameKind};
use x0t_crypto::hybrid::{Initiator, respond};
use x0t_crypto::kem::KemAlgorithm;
use x0t_crypto::{
    AdvertisedLink, LinkStateAdvert, MeshState, Registration, SigAlgorithm, SignedNodeCertificate,
    SigningKey,
};
use x0t_node::api::{CreateMesh, CreateToken, RegisterNode};
use x0t_node::p2p::protocol::{
    ControlRequest, ControlResponse, ForwardedWriteError, MeshRequest, MeshResponse, PeerHello,
};
use x0t_node::run::ADMIN_KEY_FILE;
use x0t_node::testnet;
use x0t_types::{DeviceClass, MeshId, Tag, Timestamp, base32};

/// Writes seeds for every target under `out/<target>/`; answers how many files it wrote.
pub(crate) async fn write(out: &Path, x0t: &Path) -> anyhow::Result<usize> {
    let mut seeds = Seeds {
        out: out.to_path_buf(),
        written: 0,
    };
    let anchor = SigningKey::generate(SigAlgorithm::MlDsa65)?;
    let node = SigningKey::generate(SigAlgorithm::MlDsa65)?;
    let mesh = MeshId::new("seeds")?;
    let now = Timestamp(1_795_651_200_000);

    // Link states and mesh states (what members gossip and anchors push).
    let advert = x0t_crypto::SignedLinkState::sign(
        LinkStateAdvert {
            mesh: mesh.clone(),
            origin: node.node_id(),
            sequence: 7,
            issued_at: now,
            links: vec![AdvertisedLink {
                neighbor: anchor.node_id(),
                rtt_micros: 850,
                loss_permille: 3,
            }],
        },
        &node,
    )?;
    seeds.put("link_state", "advert", 0, &advert.encode())?;
    let state = x0t_crypto::SignedMeshState::sign(
        MeshState {
            mesh: mesh.clone(),
            ledger_index: 12,
            issued_at: now,
            issuer: anchor.node_id(),
            anchors: vec![anchor.verifying_key().clone()],
            revoked: vec![node.node_id()],
            policy_version: 2,
            policy_digest: [9; 32],
        },
        &anchor,
    )?;
    seeds.put("link_state", "mesh-state", 1, &state.encode())?;

    // Data-plane frames and the hybrid handshake.
    let (initiator, hello) = Initiator::start(KemAlgorithm::MlKem768, b"seeds")?;
    let (reply, responder_keys) = respond(KemAlgorithm::MlKem768, b"seeds", &hello)?;
    seeds.put("dataplane_frame", "initiator-hello", 1, &hello.encode())?;
    seeds.put("dataplane_frame", "responder-hello", 2, &reply.encode())?;
    let _initiator_keys = initiator.finish(&reply)?;
    let mut sealer = x0t_crypto::aead::Sealer::new(responder_keys.send);
    let header = FrameHeader {
        kind: FrameKind::Data,
        hops: 3,
        dst: node.node_id(),
        src: anchor.node_id(),
        session: 5,
        counter: 0,
    };
    let packet = ipv4_udp(Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(100, 64, 0, 3));
    let frame = Frame::seal(&mut sealer, header, &packet)?;
    seeds.put("dataplane_frame", "data-frame", 0, &frame.encode()?)?;
    seeds.put("dataplane_frame", "ipv4-udp", 3, &packet)?;

    // Key files, as written to disk.
    let dir = tempfile::tempdir()?;
    let key_path = dir.path().join("identity.key");
    x0t_crypto::keyfile::write_signing_key(&key_path, &node, false)?;
    let key_file = std::fs::read(&key_path)?;
    seeds.put("key_file", "identity", 0, &key_file)?;
    // The target appends the checksum itself for odd selectors.
    seeds.put(
        "key_file",
        "identity-body",
        1,
        &key_file[..key_file.len() - 32],
    )?;

    // Control-protocol messages.
    let hello_msg = PeerHello {
        certificate: vec![1, 2, 3],
        data_port: 7401,
        listen: vec!["/ip4/127.0.0.1/udp/7401/quic-v1".to_owned()],
        state_index: 12,
        instance: 99,
    };
    let requests = [
        ("read-index", ControlRequest::ReadIndex),
        (
            "mesh-hello",
            ControlRequest::Mesh(MeshRequest::Hello(hello_msg.clone())),
        ),
        (
            "mesh-link-state",
            ControlRequest::Mesh(MeshRequest::LinkState {
                state: advert.encode(),
                certificate: vec![7; 16],
            }),
        ),
        (
            "mesh-failovers",
            ControlRequest::Mesh(MeshRequest::Failovers {
                durations_ms: vec![900, 1_020],
            }),
        ),
        (
            "enroll-anchors",
            ControlRequest::Enroll(x0t_node::p2p::protocol::EnrollRequest::Anchors),
        ),
        (
            "vote",
            ControlRequest::Vote(openraft::raft::VoteRequest::new(
                openraft::Vote::new(3, 1),
                Some(openraft::LogId::new(
                    openraft::CommittedLeaderId::new(2, 1),
                    40,
                )),
            )),
        ),
    ];
    for (name, request) in &requests {
        let frame = x0t_wire_frame(request)?;
        seeds.put("control_frame", name, 0, &frame[4..])?;
        seeds.put("control_frame", &format!("{name}-frame"), 2, &frame)?;
    }
    let responses = [
        (
            "mesh-hello",
            ControlResponse::Mesh(Ok(MeshResponse::Hello(hello_msg))),
        ),
        (
            "not-leader",
            ControlResponse::ClientWrite(Err(ForwardedWriteError::NotLeader)),
        ),
        (
            "refused",
            ControlResponse::Refused("not approved".to_owned()),
        ),
    ];
    for (name, response) in &responses {
        let frame = x0t_wire_frame(response)?;
        seeds.put("control_frame", &format!("response-{name}"), 1, &frame[4..])?;
        seeds.put(
            "control_frame",
            &format!("response-{name}-frame"),
            3,
            &frame,
        )?;
    }

    // Bearer secrets (fresh ones: nothing that ever opened an API).
    for (name, kind) in [
        ("admin-key", TokenKind::Admin),
        ("anchor-join", TokenKind::AnchorJoin),
    ] {
        seeds.put(
            "token",
            name,
            1,
            SecretToken::generate(kind).to_text().as_bytes(),
        )?;
    }

    // A real anchor: token, registration, certificate, audit chain, then its files.
    let root = tempfile::tempdir()?;
    let _cleanup = testnet::KillOnDrop(root.path().to_path_buf());
    let base = testnet::free_base_port(1, std::process::id())?;
    let infos = testnet::up(x0t, root.path(), 1, base, &[]).await?;
    let key = std::fs::read_to_string(testnet::node_dir(root.path(), 1).join(ADMIN_KEY_FILE))?;
    let admin = ApiClient::new(&infos[0].api_url, Some(key.trim().to_owned()))?;
    admin
        .create_mesh(&CreateMesh {
            name: mesh.as_str().to_owned(),
            description: "fuzz seeds".to_owned(),
            plan: None,
        })
        .await?;
    let token = admin
        .create_token(
            mesh.as_str(),
            &CreateToken {
                ttl_secs: Some(3_600),
                reusable: true,
                uses: Some(5),
                pre_approved: true,
                ..Default::default()
            },
        )
        .await?;
    seeds.put("token", "join-token-text", 1, token.token.as_bytes())?;
    let envelope = x0t_crypto::SignedJoinToken::from_text(&token.token)?;
    seeds.put("token", "join-token", 0, &envelope.encode())?;
    let registration = Registration {
        mesh: mesh.clone(),
        node_id: node.node_id(),
        identity_key: node.verifying_key().clone(),
        peer_id: libp2p_identity_bytes(),
        hostname: "robot-seed".to_owned(),
        device_class: DeviceClass::Robot,
        requested_tags: vec![Tag::new("robot")?],
        requested_at: Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64,
        ),
    }
    .sign(&node)?;
    seeds.put("certificate", "registration", 1, &registration.encode())?;
    let status = admin
        .register(
            mesh.as_str(),
            &RegisterNode {
                registration: base32::encode(&registration.encode()),
                token: Some(token.token.clone()),
            },
        )
        .await?;
    let certificate = status
        .certificate
        .context("a pre-approved registration answers a certificate")?;
    seeds.put("certificate", "certificate-text", 2, certificate.as_bytes())?;
    let signed = SignedNodeCertificate::from_text(&certificate)?;
    seeds.put("certificate", "certificate", 0, &signed.encode())?;
    let export = admin.audit_export(mesh.as_str(), "json").await?;
    let parsed = x0t_node::audit_file::parse(&export).map_err(anyhow::Error::msg)?;
    for (i, row) in parsed.entries.iter().enumerate().take(8) {
        let Ok(view) = row else { continue };
        let (entry, _) =
            x0t_node::service::audit_entry_from_view(&mesh, view).map_err(anyhow::Error::msg)?;
        seeds.put("ledger_entry", &format!("audit-{i}"), 5, &entry.encode()?)?;
    }
    testnet::down(root.path()).await?;
    seeds.stored_records(&testnet::node_dir(root.path(), 1).join("db"))?;
    Ok(seeds.written)
}

struct Seeds {
    out: PathBuf,
    written: usize,
}

impl Seeds {
    /// Writes `selector ‖ bytes` as `out/<target>/<name>`.
    fn put(&mut self, target: &str, name: &str, selector: u8, bytes: &[u8]) -> anyhow::Result<()> {
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir)?;
        let mut data = vec![selector];
        data.extend_from_slice(bytes);
        std::fs::write(dir.join(format!("seed-{name}")), data)?;
        self.written += 1;
        Ok(())
    }

    /// Every value in the anchor's sled files, filed under the first decoder that takes it.
    fn stored_records(&mut self, db: &Path) -> anyhow::Result<()> {
        use x0t_consensus::records;
        let db = sled::open(db).with_context(|| format!("opening {}", db.display()))?;
        let mut kinds = [0usize; 4];
        for name in db.tree_names() {
            let tree = db.open_tree(&name)?;
            for item in tree.iter() {
                let (key, value) = item?;
                // A ledger record's seed is its key (length first) and its value.
                let record = u8::try_from(key.len()).ok().map(|len| {
                    let mut seed = vec![len];
                    seed.extend_from_slice(&key);
                    seed.extend_from_slice(&value);
                    seed
                });
                let kind = if records::decode_log_entry(&value).is_ok() {
                    0
                } else if records::decode_ledger_record(&key, &value).is_ok() {
                    1
                } else if records::decode_applied(&value).is_ok() {
                    2
                } else if records::decode_snapshot_state(&value).is_ok() {
                    3
                } else {
                    continue;
                };
                // A handful of each is plenty: the fuzzer mutates from there.
                if kinds[kind] < 6 {
                    let label = ["log-entry", "record", "applied", "snapshot"][kind];
                    let bytes = match (kind, &record) {
                        (1, Some(seed)) => seed.as_slice(),
                        _ => &value[..],
                    };
                    self.put(
                        "ledger_entry",
                        &format!("{label}-{}", kinds[kind]),
                        kind as u8,
                        bytes,
                    )?;
                    kinds[kind] += 1;
                }
            }
        }
        anyhow::ensure!(
            kinds[0] > 0 && kinds[1] > 0,
            "the anchor's files held no log entry or record: {kinds:?}"
        );
        Ok(())
    }
}

fn x0t_wire_frame<T: serde::Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
    Ok(x0t_wire::frame::encode_frame(value)?)
}

fn libp2p_identity_bytes() -> Vec<u8> {
    libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_bytes()
}

/// A minimal IPv4/UDP packet from `src` to `dst` (port 5000 → 7000, 4 payload bytes).
fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut packet = vec![
        0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0,
        0, // version/IHL … protocol UDP, checksum 0
    ];
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(&[0x13, 0x88, 0x1b, 0x58, 0, 12, 0, 0, b'x', b'0', b't', b'!']);
    packet
}
