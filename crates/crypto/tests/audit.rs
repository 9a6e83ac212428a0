//! The registration and audit encodings: pinned bytes, signatures, and a chain whose every
//! tampering is found at its exact position.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::PathBuf;

use common::{ANCHOR, T0, fixed_identity_key};
use proptest::prelude::*;
use x0t_crypto::{
    AuditEntry, AuditStatement, Registration, SigAlgorithm, SignedAuditStatement, SignedPayload,
    SignedRegistration, SigningKey, VerifyingKey, command_digest, verify_chain,
};
use x0t_types::{Actor, DeviceClass, MeshId, NodeId, Tag};

fn golden(name: &str, fresh: &[u8]) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("X0T_BLESS").is_some() {
        std::fs::write(&path, hex::encode(fresh) + "\n").unwrap();
    }
    hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap()
}

fn mesh() -> MeshId {
    MeshId::new("factory-berlin").unwrap()
}

fn registration(key: &VerifyingKey) -> Registration {
    Registration {
        mesh: mesh(),
        node_id: key.node_id(),
        identity_key: key.clone(),
        peer_id: (0..38).collect(),
        hostname: "robot-7.hall-b".to_owned(),
        device_class: DeviceClass::Robot,
        requested_tags: vec![Tag::new("robot").unwrap()],
        requested_at: T0,
    }
}

fn statement(issuer: NodeId) -> AuditStatement {
    AuditStatement {
        mesh: Some(mesh()),
        actor: Actor::ApiKey {
            key_id: "k3y1d".to_owned(),
        },
        action: "node.approve".to_owned(),
        command_digest: command_digest(b"the command"),
        requested_at: T0,
        issuer,
    }
}

#[test]
fn registration_body_bytes_are_pinned() {
    let reg = registration(&fixed_identity_key());
    let body = reg.encode_body().unwrap();
    assert_eq!(body, golden("registration_v1.body.hex", &body));
    assert_eq!(&body[..5], b"X0TR\x01");
    assert_eq!(Registration::decode_body(&body).unwrap(), reg);
}

#[test]
fn statement_and_entry_bytes_are_pinned() {
    let body = statement(NodeId::from_bytes([0xa7; 32]))
        .encode_body()
        .unwrap();
    assert_eq!(body, golden("audit_statement_v1.body.hex", &body));
    assert_eq!(&body[..5], b"X0TA\x01");
    let entry = AuditEntry {
        mesh: None,
        seq: 3,
        log_index: 99,
        at: T0,
        actor: Actor::Anchor {
            node_id: NodeId::from_bytes([1; 32]),
        },
        action: "anchor.add".to_owned(),
        subject: "raft 7".to_owned(),
        details: "peer 12D3…".to_owned(),
        evidence: vec![0xee; 10],
        prev_hash: [0x11; 32],
    };
    let bytes = entry.encode().unwrap();
    assert_eq!(bytes, golden("audit_entry_v1.hex", &bytes));
    assert_eq!(AuditEntry::decode(&bytes).unwrap(), entry);
    let hash = entry.hash().unwrap();
    assert_eq!(hash.to_vec(), golden("audit_entry_v1.hash.hex", &hash));
}

#[test]
fn a_registration_is_bound_to_its_key_and_window() {
    let node = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let signed = registration(node.verifying_key()).sign(&node).unwrap();
    let decoded = SignedRegistration::decode(&signed.encode()).unwrap();
    assert!(decoded.verify_self(T0).is_ok());
    assert!(decoded.verify_self(T0.saturating_add(9 * 60_000)).is_ok());
    assert!(decoded.verify_self(T0.saturating_add(11 * 60_000)).is_err());
    // Signed by another key than the one it names: refused when signing.
    let other = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    assert!(registration(node.verifying_key()).sign(&other).is_err());
    // Any flipped byte of the envelope: refused.
    let bytes = signed.encode();
    for i in (0..bytes.len()).step_by(97) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        let ok = SignedRegistration::decode(&bad).is_ok_and(|r| r.verify_self(T0).is_ok());
        assert!(!ok, "flip at byte {i} accepted");
    }
}

/// A chain of `n` entries: registrations signed by nodes, approvals stated by the anchor.
fn chain(n: usize) -> Vec<(AuditEntry, [u8; 32])> {
    let node = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let reg = registration(node.verifying_key())
        .sign(&node)
        .unwrap()
        .encode();
    let stmt = SignedAuditStatement::sign(statement(ANCHOR.node_id()), &ANCHOR)
        .unwrap()
        .encode();
    let mut prev = [0u8; 32];
    (0..n)
        .map(|seq| {
            let (actor, action, evidence) = if seq % 2 == 0 {
                (
                    Actor::Node {
                        node_id: node.node_id(),
                    },
                    "node.register",
                    reg.clone(),
                )
            } else {
                (
                    Actor::ApiKey {
                        key_id: "k3y1d".to_owned(),
                    },
                    "node.approve",
                    stmt.clone(),
                )
            };
            let entry = AuditEntry {
                mesh: Some(mesh()),
                seq: seq as u64,
                log_index: 10 + seq as u64,
                at: T0.saturating_add(seq as u64),
                actor,
                action: action.to_owned(),
                subject: node.node_id().to_string(),
                details: format!("step {seq}"),
                evidence,
                prev_hash: prev,
            };
            let hash = entry.hash().unwrap();
            prev = hash;
            (entry, hash)
        })
        .collect()
}

fn anchors(id: &NodeId) -> Option<VerifyingKey> {
    (*id == ANCHOR.node_id()).then(|| ANCHOR.verifying_key().clone())
}

#[test]
fn an_intact_chain_verifies_and_a_foreign_signer_does_not() {
    let entries = chain(6);
    verify_chain(&entries, &anchors).unwrap();
    let err = verify_chain(&entries, &|_: &NodeId| None).unwrap_err();
    assert_eq!(err.index, 1, "{err}");
    assert!(err.reason.contains("not a known anchor"), "{err}");
}

#[test]
fn dropped_and_reordered_entries_are_found_where_they_happen() {
    let entries = chain(6);
    for k in 0..6 {
        let mut dropped = entries.clone();
        dropped.remove(k);
        if k < 5 {
            assert_eq!(verify_chain(&dropped, &anchors).unwrap_err().index, k);
        } else {
            // Dropping the tail leaves a valid, shorter chain: only the head hash (which the
            // export carries and the live ledger answers) shows it.
            verify_chain(&dropped, &anchors).unwrap();
        }
    }
    for k in 0..5 {
        let mut swapped = entries.clone();
        swapped.swap(k, k + 1);
        assert_eq!(verify_chain(&swapped, &anchors).unwrap_err().index, k);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any single flipped byte of any entry's canonical bytes (or of its stored hash) is
    /// reported at that entry, never later and never earlier.
    #[test]
    fn a_flipped_byte_is_found_at_its_entry(k in 0usize..5, pos in any::<prop::sample::Index>(),
                                            bit in 0u8..8, in_hash in any::<bool>()) {
        static CHAIN: std::sync::LazyLock<Vec<(AuditEntry, [u8; 32])>> =
            std::sync::LazyLock::new(|| chain(5));
        let mut entries = CHAIN.clone();
        if in_hash {
            let i = pos.index(32);
            entries[k].1[i] ^= 1 << bit;
        } else {
            let mut bytes = entries[k].0.encode().unwrap();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            match AuditEntry::decode(&bytes) {
                // Undecodable: an export reader reports this entry's position.
                Err(_) => return Ok(()),
                Ok(entry) => entries[k].0 = entry,
            }
        }
        let err = verify_chain(&entries, &anchors).unwrap_err();
        prop_assert_eq!(err.index, k, "{}", err);
    }
}

#[test]
fn oversized_and_garbage_entries_are_refused() {
    assert!(AuditEntry::decode(&vec![0u8; 1 << 20]).is_err());
    assert!(AuditEntry::decode(b"X0TL\x01").is_err());
    assert!(SignedAuditStatement::decode(b"garbage").is_err());
    assert!(SignedRegistration::decode(&[0u8; 3]).is_err());
}
