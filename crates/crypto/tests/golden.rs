//! Golden tests: the exact bytes of every signed encoding are pinned in `tests/golden/`.
//!
//! If one of these fails, an encoding changed: that breaks every certificate and token already
//! issued. Bump the format version instead. To regenerate after a deliberate version bump:
//! `X0T_BLESS=1 cargo test -p x0t-crypto --test golden`.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::PathBuf;

use common::{T0, certificate, token};
use x0t_crypto::{
    SigAlgorithm, SignedJoinToken, SignedNodeCertificate, SignedPayload, SigningKey, VerifyingKey,
};
use x0t_types::{NodeId, Timestamp};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Reads a pinned hex file, or writes it when blessing.
fn golden(name: &str, fresh: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let path = golden_path(name);
    if std::env::var_os("X0T_BLESS").is_some() {
        let bytes = fresh();
        std::fs::write(&path, hex::encode(&bytes) + "\n").unwrap();
        return bytes;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); see this file's docs",
            path.display()
        )
    });
    hex::decode(text.trim()).unwrap()
}

/// The issuer the unsigned golden bodies name: a fixed id, no key needed.
const FIXED_ISSUER: NodeId = NodeId::from_bytes([0xa7; 32]);

#[test]
fn certificate_body_bytes_are_pinned() {
    let cert = certificate(FIXED_ISSUER);
    let body = cert.encode_body().unwrap();
    assert_eq!(
        body,
        golden("node_certificate_v1.body.hex", || body.clone())
    );
    // Hand-checked landmarks of the layout in cert.rs.
    assert_eq!(&body[..5], b"X0TC\x01");
    assert_eq!(body[5] as usize, "factory-berlin".len());
    assert_eq!(&body[body.len() - 32..], FIXED_ISSUER.as_bytes());
    assert_eq!(
        x0t_crypto::NodeCertificate::decode_body(&body).unwrap(),
        cert
    );
}

#[test]
fn token_body_bytes_are_pinned() {
    let token = token(FIXED_ISSUER);
    let body = token.encode_body().unwrap();
    assert_eq!(body, golden("join_token_v1.body.hex", || body.clone()));
    assert_eq!(&body[..5], b"X0TJ\x01");
    assert_eq!(x0t_crypto::JoinToken::decode_body(&body).unwrap(), token);
}

/// A real signed certificate and token made once with a real anchor key: they must decode,
/// re-encode to the same bytes, and verify, forever (within their validity window).
#[test]
fn signed_objects_from_a_past_build_still_verify() {
    let mut anchor_key: Option<SigningKey> = None;
    let mut anchor = || {
        anchor_key
            .get_or_insert_with(|| SigningKey::generate(SigAlgorithm::MlDsa65).unwrap())
            .verifying_key()
            .clone()
    };
    let public = golden("anchor_v1.pub.hex", || anchor().as_bytes().to_vec());
    let public = VerifyingKey::from_bytes(SigAlgorithm::MlDsa65, &public).unwrap();

    let cert_bytes = golden("node_certificate_v1.signed.hex", || {
        let key = anchor_key.as_ref().unwrap();
        SignedNodeCertificate::sign(certificate(key.node_id()), key)
            .unwrap()
            .encode()
    });
    let token_bytes = golden("join_token_v1.signed.hex", || {
        let key = anchor_key.as_ref().unwrap();
        SignedJoinToken::sign(token(key.node_id()), key)
            .unwrap()
            .encode()
    });

    let cert = SignedNodeCertificate::decode(&cert_bytes).unwrap();
    assert_eq!(cert.encode(), cert_bytes);
    assert_eq!(cert.payload(), &certificate(public.node_id()));
    cert.verify(&public, T0).unwrap();
    assert!(
        cert.verify(&public, T0.saturating_add(31 * Timestamp::DAY))
            .is_err(),
        "expired"
    );
    assert!(
        cert.verify(&public, Timestamp(T0.as_millis() - 1)).is_err(),
        "not yet valid"
    );

    let token = SignedJoinToken::decode(&token_bytes).unwrap();
    assert_eq!(token.encode(), token_bytes);
    assert_eq!(token.payload(), &common::token(public.node_id()));
    token
        .verify(&public, T0.saturating_add(Timestamp::HOUR))
        .unwrap();
    assert_eq!(
        hex::encode(token.payload().secret.hash()),
        hex::encode(x0t_crypto::TokenSecret::from_bytes([0x5a; 32]).hash())
    );

    // Another anchor's key is refused with a clear reason.
    let stranger = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let err = cert
        .verify(stranger.verifying_key(), T0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("issued by"), "{err}");
}

#[test]
fn token_text_form_roundtrips() {
    let path = golden_path("join_token_v1.signed.hex");
    let bytes = hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
    let token = SignedJoinToken::decode(&bytes).unwrap();
    let text = token.to_text();
    assert!(text.starts_with("x0tj1_"));
    assert_eq!(
        SignedJoinToken::from_text(&format!("  {text}\n"))
            .unwrap()
            .encode(),
        bytes
    );
    assert!(SignedJoinToken::from_text(&text[6..]).is_err());
    assert!(SignedJoinToken::from_text(&"x".repeat(1_000_000)).is_err());
}

/// A mesh state naming the fixed identity key as its only anchor (and issuer).
fn mesh_state() -> x0t_crypto::MeshState {
    let anchor = common::fixed_identity_key();
    x0t_crypto::MeshState {
        mesh: x0t_types::MeshId::new("factory-berlin").unwrap(),
        ledger_index: 4_242,
        issued_at: T0,
        issuer: anchor.node_id(),
        anchors: vec![anchor],
        revoked: vec![
            NodeId::from_bytes([0x11; 32]),
            NodeId::from_bytes([0x22; 32]),
        ],
        policy_version: 3,
        policy_digest: x0t_crypto::policy_digest("version = 1\n"),
    }
}

#[test]
fn mesh_state_body_bytes_are_pinned() {
    let state = mesh_state();
    let body = state.encode_body().unwrap();
    assert_eq!(body, golden("mesh_state_v1.body.hex", || body.clone()));
    assert_eq!(&body[..5], b"X0TM\x01");
    assert_eq!(&body[body.len() - 32..], &state.policy_digest);
    assert_eq!(x0t_crypto::MeshState::decode_body(&body).unwrap(), state);
    assert!(state.is_revoked(&NodeId::from_bytes([0x22; 32])));
    assert!(!state.is_revoked(&NodeId::from_bytes([0x33; 32])));
}

#[test]
fn mesh_state_refuses_what_it_cannot_mean() {
    let bad = |change: fn(&mut x0t_crypto::MeshState)| {
        let mut state = mesh_state();
        change(&mut state);
        state.encode_body().unwrap_err().to_string()
    };
    assert!(bad(|s| s.anchors.clear()).contains("anchors"));
    assert!(bad(|s| s.revoked.reverse()).contains("sorted"));
    assert!(bad(|s| s.issuer = NodeId::from_bytes([9; 32])).contains("not one of its anchors"));
    assert!(bad(|s| s.policy_version = 0).contains("policy digest"));
    // Every truncation of a valid body is refused with an error, never a panic.
    let body = mesh_state().encode_body().unwrap();
    for len in 0..body.len() {
        assert!(x0t_crypto::MeshState::decode_body(&body[..len]).is_err());
    }
    let mut longer = body.clone();
    longer.push(0);
    assert!(x0t_crypto::MeshState::decode_body(&longer).is_err());
}

#[test]
fn a_signed_mesh_state_verifies_only_under_its_anchor() {
    let anchor = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let mut state = mesh_state();
    state.anchors = vec![anchor.verifying_key().clone()];
    state.issuer = anchor.node_id();
    let signed = x0t_crypto::SignedMeshState::sign(state.clone(), &anchor).unwrap();
    let decoded = x0t_crypto::SignedMeshState::decode(&signed.encode()).unwrap();
    assert_eq!(decoded.verify(anchor.verifying_key(), T0).unwrap(), &state);
    // Years later it still verifies: states are superseded, not expired.
    decoded
        .verify(
            anchor.verifying_key(),
            T0.saturating_add(3_650 * Timestamp::DAY),
        )
        .unwrap();
    let stranger = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    assert!(decoded.verify(stranger.verifying_key(), T0).is_err());
    let mut bytes = signed.encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(
        x0t_crypto::SignedMeshState::decode(&bytes)
            .and_then(|s| s.verify(anchor.verifying_key(), T0).cloned())
            .is_err()
    );
}

/// A link state of the fixed issuer with two links.
fn link_state() -> x0t_crypto::LinkStateAdvert {
    x0t_crypto::LinkStateAdvert {
        mesh: x0t_types::MeshId::new("factory-berlin").unwrap(),
        origin: FIXED_ISSUER,
        sequence: 77,
        issued_at: T0,
        links: vec![
            x0t_crypto::AdvertisedLink {
                neighbor: NodeId::from_bytes([0x11; 32]),
                rtt_micros: 1_250,
                loss_permille: 0,
            },
            x0t_crypto::AdvertisedLink {
                neighbor: NodeId::from_bytes([0x22; 32]),
                rtt_micros: 100_000,
                loss_permille: 50,
            },
        ],
    }
}

#[test]
fn link_state_body_bytes_are_pinned_and_nonsense_is_refused() {
    let state = link_state();
    let body = state.encode_body().unwrap();
    assert_eq!(body, golden("link_state_v1.body.hex", || body.clone()));
    assert_eq!(&body[..5], b"X0TL\x01");
    assert_eq!(
        x0t_crypto::LinkStateAdvert::decode_body(&body).unwrap(),
        state
    );
    let bad = |change: fn(&mut x0t_crypto::LinkStateAdvert)| {
        let mut state = link_state();
        change(&mut state);
        state.encode_body().unwrap_err().to_string()
    };
    assert!(bad(|s| s.links.reverse()).contains("sorted"));
    assert!(bad(|s| s.links[1].neighbor = FIXED_ISSUER).contains("itself"));
    assert!(bad(|s| s.links[1].loss_permille = 1_001).contains("per thousand"));
    // Every truncation of a valid body is refused, never a panic; so is a byte more.
    for len in 0..body.len() {
        assert!(x0t_crypto::LinkStateAdvert::decode_body(&body[..len]).is_err());
    }
    let mut longer = body.clone();
    longer.push(0);
    assert!(x0t_crypto::LinkStateAdvert::decode_body(&longer).is_err());
}

#[test]
fn a_signed_link_state_verifies_only_under_its_origin_and_only_while_fresh() {
    let origin = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    let mut state = link_state();
    state.origin = origin.node_id();
    let signed = x0t_crypto::SignedLinkState::sign(state.clone(), &origin).unwrap();
    let decoded = x0t_crypto::SignedLinkState::decode(&signed.encode()).unwrap();
    assert_eq!(decoded.verify(origin.verifying_key(), T0).unwrap(), &state);
    // A receiver whose clock runs a little behind or ahead still takes it …
    let skew = x0t_crypto::LINK_STATE_SKEW_MS;
    let lifetime = x0t_crypto::LINK_STATE_LIFETIME_MS;
    decoded
        .verify(origin.verifying_key(), Timestamp(T0.as_millis() - skew))
        .unwrap();
    decoded
        .verify(
            origin.verifying_key(),
            Timestamp(T0.as_millis() + lifetime - 1),
        )
        .unwrap();
    // … but a replay after its lifetime is refused by time (the sequence refuses it too).
    assert!(
        decoded
            .verify(origin.verifying_key(), Timestamp(T0.as_millis() + lifetime))
            .is_err()
    );
    // Nobody else can speak for the origin's links.
    let other = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
    assert!(decoded.verify(other.verifying_key(), T0).is_err());
    assert!(x0t_crypto::SignedLinkState::sign(state, &other).is_err());
    let mut bytes = signed.encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(
        x0t_crypto::SignedLinkState::decode(&bytes)
            .and_then(|s| s.verify(origin.verifying_key(), T0).cloned())
            .is_err()
    );
}
