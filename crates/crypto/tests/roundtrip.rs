//! Property tests: every valid value encodes to bytes that decode to the same value and
//! re-encode to the same bytes (canonical), and invalid values are refused by the encoder.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::net::Ipv4Addr;

use proptest::prelude::*;
use x0t_crypto::{JoinToken, NodeCertificate, SignedPayload, TokenSecret, TokenUsage};
use x0t_types::{DeviceClass, MeshId, NodeId, PqProfile, Tag, Timestamp};

fn tag() -> impl Strategy<Value = Tag> {
    "[a-z0-9][a-z0-9:._-]{0,20}".prop_map(|t| Tag::new(t).unwrap())
}

fn tags() -> impl Strategy<Value = Vec<Tag>> {
    proptest::collection::btree_set(tag(), 0..8).prop_map(|set| set.into_iter().collect())
}

fn mesh() -> impl Strategy<Value = MeshId> {
    "[a-z0-9][a-z0-9-]{0,30}".prop_map(|m| MeshId::new(m).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn certificate_bodies_are_canonical(
        mesh in mesh(),
        tags in tags(),
        peer_id in proptest::collection::vec(any::<u8>(), 1..=64),
        host in 0u32..(1 << 22),
        class in 0usize..4,
        profile in 0usize..2,
        not_before in 0u64..u64::MAX / 2,
        lifetime in 1u64..u64::MAX / 2,
        ledger_index in any::<u64>(),
        issuer in any::<[u8; 32]>(),
    ) {
        let identity_key = common::fixed_identity_key();
        let cert = NodeCertificate {
            mesh,
            node_id: identity_key.node_id(),
            identity_key,
            peer_id,
            overlay_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + host),
            tags,
            device_class: DeviceClass::ALL[class],
            pq_profile: PqProfile::ALL[profile],
            not_before: Timestamp(not_before),
            not_after: Timestamp(not_before + lifetime),
            ledger_index,
            issuer: NodeId::from_bytes(issuer),
        };
        let body = cert.encode_body().unwrap();
        prop_assert!(body.len() <= NodeCertificate::MAX_BODY_LEN);
        let decoded = NodeCertificate::decode_body(&body).unwrap();
        prop_assert_eq!(&decoded, &cert);
        prop_assert_eq!(decoded.encode_body().unwrap(), body);

        // Invariants the encoder enforces rather than silently signing nonsense.
        let mut bad = cert.clone();
        bad.overlay_ip = Ipv4Addr::new(10, 0, 0, 1);
        prop_assert!(bad.encode_body().is_err());
        let mut bad = cert.clone();
        bad.node_id = NodeId::from_bytes(issuer);
        prop_assert!(bad.encode_body().is_err());
        let mut bad = cert.clone();
        bad.not_after = bad.not_before;
        prop_assert!(bad.encode_body().is_err());
        if cert.tags.len() >= 2 {
            let mut bad = cert;
            bad.tags.reverse();
            prop_assert!(bad.encode_body().is_err());
        }
    }

    #[test]
    fn token_bodies_are_canonical(
        mesh in mesh(),
        tags in tags(),
        token_id in any::<[u8; 16]>(),
        secret in any::<[u8; 32]>(),
        usage in prop_oneof![
            Just(TokenUsage::SingleUse),
            Just(TokenUsage::Reusable { max_uses: None }),
            (1u32..).prop_map(|n| TokenUsage::Reusable { max_uses: Some(n) }),
        ],
        pre_approved in any::<bool>(),
        not_before in 0u64..u64::MAX / 2,
        lifetime in x0t_crypto::MIN_TOKEN_TTL_MS..=x0t_crypto::MAX_TOKEN_TTL_MS,
        issuer in any::<[u8; 32]>(),
    ) {
        let token = JoinToken {
            mesh,
            token_id,
            secret: TokenSecret::from_bytes(secret),
            usage,
            pre_approved,
            tags,
            not_before: Timestamp(not_before),
            not_after: Timestamp(not_before + lifetime),
            issuer: NodeId::from_bytes(issuer),
        };
        let body = token.encode_body().unwrap();
        prop_assert!(body.len() <= JoinToken::MAX_BODY_LEN);
        let decoded = JoinToken::decode_body(&body).unwrap();
        prop_assert_eq!(&decoded, &token);
        prop_assert_eq!(decoded.encode_body().unwrap(), body);
    }
}
