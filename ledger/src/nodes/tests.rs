//! The nodes domain's tests: the lifecycle, tokens, certificates, and the policy and audit
//! effects of node commands.
#![allow(clippy::unwrap_used)]

use crate::{AclCommand, Command, MeshCommand, NodeCommand};
use crate::{AclOutcome, AclReject, NodeOutcome, NodeReject};
use x0t_crypto::{
    NodeCertificate, Registration, SigAlgorithm, SignedNodeCertificate, SigningKey, is_overlay_ip,
};
use x0t_types::{
    DeviceClass, MeshId, MeshSettings, NodeId, NodeState, Plan, PqProfile, Tag, Timestamp,
    TokenProof, TokenUsage,
};

use super::overlay_ip_for;
use crate::acl::{self, Acls};
use crate::stored::encode;
use crate::testkit::{ANCHOR, ApplyExt, booted, change, meta};
use crate::{Ledger, Outcome, Reject};

fn mesh() -> MeshId {
    MeshId::new("factory").unwrap()
}

fn tag(t: &str) -> Tag {
    Tag::new(t).unwrap()
}

fn with_mesh() -> Ledger {
    let mut ledger = booted();
    ledger
        .ap(
            &Command::Meshes(MeshCommand::Create {
                mesh: mesh(),
                settings: MeshSettings::default(),
                plan: Plan::Enterprise,
            }),
            meta(1),
        )
        .unwrap();
    ledger
}

fn key() -> SigningKey {
    SigningKey::generate(SigAlgorithm::MlDsa65).unwrap()
}

fn registration(node: &SigningKey, at: u64) -> Vec<u8> {
    Registration {
        mesh: mesh(),
        node_id: node.node_id(),
        identity_key: node.verifying_key().clone(),
        peer_id: vec![7; 38],
        hostname: "robot-1".into(),
        device_class: DeviceClass::Robot,
        requested_tags: vec![tag("robot")],
        requested_at: Timestamp(at),
    }
    .sign(node)
    .unwrap()
    .encode()
}

fn certificate(
    ledger: &Ledger,
    node: &SigningKey,
    tags: Vec<Tag>,
    at: u64,
    signer: &SigningKey,
) -> Vec<u8> {
    certificate_with(ledger, node, tags, at, signer, PqProfile::Standard)
}

fn certificate_with(
    ledger: &Ledger,
    node: &SigningKey,
    tags: Vec<Tag>,
    at: u64,
    signer: &SigningKey,
    pq_profile: PqProfile,
) -> Vec<u8> {
    let cert = NodeCertificate {
        mesh: mesh(),
        node_id: node.node_id(),
        identity_key: node.verifying_key().clone(),
        peer_id: vec![7; 38],
        overlay_ip: ledger.propose_overlay_ip(&mesh(), &node.node_id()).unwrap(),
        tags,
        device_class: DeviceClass::Robot,
        pq_profile,
        not_before: Timestamp(at),
        not_after: Timestamp(at + 90 * Timestamp::DAY),
        ledger_index: 1,
        issuer: signer.node_id(),
    };
    SignedNodeCertificate::sign(cert, signer).unwrap().encode()
}

fn register(
    node: &SigningKey,
    token: Option<TokenProof>,
    certificate: Option<Vec<u8>>,
    index: u64,
) -> Command {
    Command::Nodes(NodeCommand::Register {
        registration: registration(node, index * 1_000),
        token,
        certificate,
    })
}

fn add_token(id: u8, usage: TokenUsage, pre_approved: bool, from: u64, ttl: u64) -> Command {
    Command::Nodes(NodeCommand::AddJoinToken {
        mesh: mesh(),
        token_id: [id; 16],
        secret_hash: [id; 32],
        usage,
        pre_approved,
        tags: vec![tag("line-3")],
        not_before: Timestamp(from),
        not_after: Timestamp(from + ttl),
        for_node: None,
    })
}

fn proof(id: u8) -> Option<TokenProof> {
    Some(TokenProof {
        token_id: [id; 16],
        secret_hash: [id; 32],
    })
}

#[test]
fn register_approve_revoke_reenroll() {
    let mut ledger = with_mesh();
    let node = key();
    let outcome = ledger.ap(&register(&node, None, None, 2), meta(2)).unwrap();
    assert!(matches!(
        outcome,
        Outcome::Nodes(NodeOutcome::Registered {
            state: NodeState::PendingApproval,
            overlay_ip: None,
            ..
        })
    ));
    assert!(matches!(
        ledger.ap(&register(&node, None, None, 3), meta(3)),
        Err(Reject::Nodes(NodeReject::NodeExists { .. }))
    ));
    // A certificate from a key that is not an anchor, or with a flipped byte: refused.
    let stranger = key();
    let forged = certificate(&ledger, &node, vec![tag("robot")], 4_000, &stranger);
    let approve = |certificate| {
        Command::Nodes(NodeCommand::Approve {
            mesh: mesh(),
            node_id: node.node_id(),
            certificate,
        })
    };
    assert!(matches!(
        ledger.ap(&approve(forged), meta(4)),
        Err(Reject::Nodes(NodeReject::BadCertificate(_)))
    ));
    let good = certificate(&ledger, &node, vec![tag("robot")], 4_000, &ANCHOR);
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 1;
    assert!(matches!(
        ledger.ap(&approve(flipped), meta(4)),
        Err(Reject::Nodes(NodeReject::BadCertificate(_)))
    ));
    let Outcome::Nodes(NodeOutcome::Approved { overlay_ip, .. }) =
        ledger.ap(&approve(good), meta(4)).unwrap()
    else {
        panic!("not approved")
    };
    assert!(ledger.overlay_ip_taken(&mesh(), overlay_ip));
    let record = ledger.node(&mesh(), &node.node_id()).unwrap();
    assert_eq!(record.state, NodeState::Approved);
    assert_eq!(record.tags, vec![tag("robot")]);
    // Revoke: the address is released, the record stays with its reason.
    ledger
        .ap(
            &Command::Nodes(NodeCommand::Revoke {
                mesh: mesh(),
                node_id: node.node_id(),
                reason: "stolen".into(),
            }),
            meta(5),
        )
        .unwrap();
    let record = ledger.node(&mesh(), &node.node_id()).unwrap();
    assert_eq!(record.state, NodeState::Revoked);
    assert_eq!(record.state_reason.as_deref(), Some("stolen"));
    assert!(!ledger.overlay_ip_taken(&mesh(), overlay_ip));
    // The same key cannot come back; a new key goes back to pending.
    assert!(matches!(
        ledger.ap(&register(&node, None, None, 6), meta(6)),
        Err(Reject::Nodes(NodeReject::NodeExists {
            state: NodeState::Revoked,
            ..
        }))
    ));
    let renewed = key();
    ledger
        .ap(&register(&renewed, None, None, 6), meta(6))
        .unwrap();
    assert_eq!(
        ledger.node(&mesh(), &renewed.node_id()).unwrap().state,
        NodeState::PendingApproval
    );
    ledger.take_changes();
    assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);
}

fn set_acl(document: &str, expected_version: Option<u64>) -> Command {
    Command::Acl(AclCommand::Set {
        mesh: mesh(),
        document: document.into(),
        expected_version,
    })
}

#[test]
fn policy_updates_are_checked_versioned_audited_and_set_pq_profiles() {
    let mut ledger = with_mesh();
    let head = |l: &Ledger| l.audit_head(Some(&mesh())).len;
    let before = head(&ledger);
    // Invalid, failing tests, stale compare-and-set, unknown mesh: nothing changes.
    let bad = ledger.ap(
        &set_acl("version = 1\n[[rule]]\naction = \"allow\"\n", None),
        meta(2),
    );
    assert!(
        matches!(
            bad,
            Err(Reject::Acl(AclReject::InvalidPolicy { line: 2, .. }))
        ),
        "{bad:?}"
    );
    let failing =
        "version = 1\n[[test]]\nsrc = \"tag:a\"\ndst = \"tag:b\"\nport = 1\nexpect = \"allow\"\n";
    assert!(matches!(
        ledger.ap(&set_acl(failing, None), meta(2)),
        Err(Reject::Acl(AclReject::PolicyTestFailed { message, line: 2 })) if message.contains("test #1")
    ));
    assert!(matches!(
        ledger.ap(&set_acl("version = 1\n", Some(3)), meta(2)),
        Err(Reject::Acl(AclReject::VersionMismatch {
            expected: 3,
            actual: 0,
            ..
        }))
    ));
    assert!(ledger.acl(&mesh()).is_none());
    assert_eq!(head(&ledger), before);

    let constrained = "version = 1\n[pq]\nrobot = \"constrained\"\n";
    assert_eq!(
        ledger.ap(&set_acl(constrained, Some(0)), meta(3)).unwrap(),
        Outcome::Acl(AclOutcome::Set { version: 1 })
    );
    let acl = ledger.acl(&mesh()).unwrap();
    assert_eq!((acl.version, acl.updated_index), (1, 3));
    assert_eq!(acl.document, constrained);
    assert_eq!(head(&ledger), before + 1);
    assert_eq!(
        ledger.pq_profile(&mesh(), DeviceClass::Robot),
        PqProfile::Constrained
    );

    // A robot's certificate must now carry the constrained profile.
    let node = key();
    ledger.ap(&register(&node, None, None, 4), meta(4)).unwrap();
    let approve = |certificate| {
        Command::Nodes(NodeCommand::Approve {
            mesh: mesh(),
            node_id: node.node_id(),
            certificate,
        })
    };
    let standard = certificate(&ledger, &node, vec![tag("robot")], 5_000, &ANCHOR);
    assert!(matches!(
        ledger.ap(&approve(standard), meta(5)),
        Err(Reject::Nodes(NodeReject::BadCertificate(m))) if m.contains("PQ profile standard")
    ));
    let right = certificate_with(
        &ledger,
        &node,
        vec![tag("robot")],
        5_000,
        &ANCHOR,
        PqProfile::Constrained,
    );
    ledger.ap(&approve(right), meta(5)).unwrap();

    // The next update needs version 1; records round-trip.
    assert!(
        ledger
            .ap(&set_acl("version = 1\n", Some(0)), meta(6))
            .is_err()
    );
    assert_eq!(
        ledger
            .ap(&set_acl("version = 1\n", Some(1)), meta(6))
            .unwrap(),
        Outcome::Acl(AclOutcome::Set { version: 2 })
    );
    assert!(
        ledger
            .take_changes()
            .iter()
            .any(|c| c.domain == "acl" && c.key == encode(&acl::Key::Version(mesh(), 2)))
    );
    assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);

    // Every version stays readable until MAX_ACL_VERSIONS newer ones exist.
    assert_eq!(
        ledger.acl_version(&mesh(), 1).unwrap().document,
        constrained
    );
    for n in 3..=(crate::MAX_ACL_VERSIONS as u64 + 2) {
        let doc = format!("version = 1\n# {n}\n");
        ledger.ap(&set_acl(&doc, None), meta(4 + n)).unwrap();
    }
    let kept: Vec<u64> = ledger.acl_history(&mesh()).map(|a| a.version).collect();
    assert_eq!(kept.len(), crate::MAX_ACL_VERSIONS);
    assert_eq!((kept[0], *kept.last().unwrap()), (34, 3));
    assert!(ledger.acl_version(&mesh(), 2).is_none());
    let changes = ledger.take_changes();
    assert!(changes.contains(&change::<Acls>(acl::Key::Version(mesh(), 1), None)));
    assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);
}

#[test]
fn stale_or_foreign_registrations_are_refused() {
    let mut ledger = with_mesh();
    let node = key();
    // Signed 11 minutes before the proposal.
    let stale = Command::Nodes(NodeCommand::Register {
        registration: registration(&node, 1_000),
        token: None,
        certificate: None,
    });
    assert!(matches!(
        ledger.ap(&stale, meta(661)),
        Err(Reject::Nodes(NodeReject::BadRegistration(_)))
    ));
    let mut garbage = registration(&node, 2_000);
    garbage.truncate(100);
    let bad = Command::Nodes(NodeCommand::Register {
        registration: garbage,
        token: None,
        certificate: None,
    });
    assert!(ledger.ap(&bad, meta(2)).is_err());
    assert_eq!(ledger.node_counts(&mesh()).total, 0);
}

#[test]
fn tokens_single_use_expiry_rotation_and_limits() {
    let mut ledger = with_mesh();
    let hour = Timestamp::HOUR;
    // TTL bounds.
    assert!(matches!(
        ledger.ap(
            &add_token(1, TokenUsage::SingleUse, false, 0, hour - 1),
            meta(2)
        ),
        Err(Reject::Invalid(_))
    ));
    assert!(
        ledger
            .ap(
                &add_token(1, TokenUsage::SingleUse, false, 0, 31 * Timestamp::DAY),
                meta(2)
            )
            .is_err()
    );
    ledger
        .ap(
            &add_token(1, TokenUsage::SingleUse, false, 0, hour),
            meta(2),
        )
        .unwrap();
    // Single use: a second registration with it is refused.
    let (a, b) = (key(), key());
    ledger
        .ap(&register(&a, proof(1), None, 3), meta(3))
        .unwrap();
    assert_eq!(
        ledger.node(&mesh(), &a.node_id()).unwrap().state,
        NodeState::PendingApproval
    );
    assert!(matches!(
        ledger.ap(&register(&b, proof(1), None, 4), meta(4)),
        Err(Reject::Nodes(NodeReject::TokenUsedUp { .. }))
    ));
    // Wrong secret: unknown.
    let wrong = Some(TokenProof {
        token_id: [1; 16],
        secret_hash: [9; 32],
    });
    assert!(matches!(
        ledger.ap(&register(&b, wrong, None, 4), meta(4)),
        Err(Reject::Nodes(NodeReject::InvalidToken))
    ));
    // Reusable with a limit of 2.
    ledger
        .ap(
            &add_token(
                2,
                TokenUsage::Reusable { max_uses: Some(2) },
                false,
                0,
                hour,
            ),
            meta(5),
        )
        .unwrap();
    ledger
        .ap(&register(&b, proof(2), None, 5), meta(5))
        .unwrap();
    let c = key();
    ledger
        .ap(&register(&c, proof(2), None, 6), meta(6))
        .unwrap();
    assert!(matches!(
        ledger.ap(&register(&key(), proof(2), None, 7), meta(7)),
        Err(Reject::Nodes(NodeReject::TokenUsedUp { uses: 2, .. }))
    ));
    // Expired: proposal time past not_after.
    ledger
        .ap(
            &add_token(
                3,
                TokenUsage::Reusable { max_uses: None },
                false,
                8_000,
                hour,
            ),
            meta(8),
        )
        .unwrap();
    let late = 8 + hour / 1_000;
    assert!(matches!(
        ledger.ap(&register(&key(), proof(3), None, late), meta(late)),
        Err(Reject::Nodes(NodeReject::TokenExpired { .. }))
    ));
    // Rotation invalidates older tokens, with its own error.
    ledger
        .ap(
            &add_token(
                4,
                TokenUsage::Reusable { max_uses: None },
                false,
                9_000,
                hour,
            ),
            meta(9),
        )
        .unwrap();
    let Outcome::Nodes(NodeOutcome::JoinTokensRotated { epoch: 1, .. }) = ledger
        .ap(
            &Command::Nodes(NodeCommand::RotateJoinTokens { mesh: mesh() }),
            meta(10),
        )
        .unwrap()
    else {
        panic!("rotation")
    };
    assert!(matches!(
        ledger.ap(&register(&key(), proof(4), None, 11), meta(11)),
        Err(Reject::Nodes(NodeReject::TokenRotated { .. }))
    ));
    ledger
        .ap(
            &add_token(5, TokenUsage::SingleUse, false, 11_000, hour),
            meta(11),
        )
        .unwrap();
    assert!(
        ledger.join_token(&mesh(), &[4; 16]).is_none(),
        "rotated-out tokens are forgotten"
    );
    ledger
        .ap(&register(&key(), proof(5), None, 12), meta(12))
        .unwrap();
    ledger.take_changes();
    assert!(Ledger::from_records(ledger.records()).unwrap() == ledger);
}

#[test]
fn a_pre_approved_token_approves_with_its_tags_and_a_valid_certificate() {
    let mut ledger = with_mesh();
    ledger
        .ap(
            &add_token(
                1,
                TokenUsage::Reusable { max_uses: None },
                true,
                0,
                Timestamp::HOUR,
            ),
            meta(2),
        )
        .unwrap();
    let node = key();
    // Without a certificate, or with tags other than the token's: refused.
    assert!(matches!(
        ledger.ap(&register(&node, proof(1), None, 3), meta(3)),
        Err(Reject::Nodes(NodeReject::BadCertificate(_)))
    ));
    let wrong_tags = certificate(&ledger, &node, vec![tag("admin")], 3_000, &ANCHOR);
    assert!(matches!(
        ledger.ap(&register(&node, proof(1), Some(wrong_tags), 3), meta(3)),
        Err(Reject::Nodes(NodeReject::BadCertificate(_)))
    ));
    let cert = certificate(&ledger, &node, vec![tag("line-3")], 3_000, &ANCHOR);
    let outcome = ledger
        .ap(&register(&node, proof(1), Some(cert.clone()), 3), meta(3))
        .unwrap();
    assert!(matches!(
        outcome,
        Outcome::Nodes(NodeOutcome::Registered {
            state: NodeState::Approved,
            overlay_ip: Some(_),
            ..
        })
    ));
    // Another node offering a certificate for the same address: refused.
    let other = key();
    let mut clash = SignedNodeCertificate::decode(&certificate(
        &ledger,
        &other,
        vec![tag("line-3")],
        3_000,
        &ANCHOR,
    ))
    .unwrap()
    .payload()
    .clone();
    clash.overlay_ip = ledger
        .node(&mesh(), &node.node_id())
        .unwrap()
        .overlay_ip
        .unwrap();
    let clash = SignedNodeCertificate::sign(clash, &ANCHOR)
        .unwrap()
        .encode();
    assert!(matches!(
        ledger.ap(&register(&other, proof(1), Some(clash), 4), meta(4)),
        Err(Reject::Nodes(NodeReject::OverlayIpTaken { .. }))
    ));
}

#[test]
fn a_reissued_token_replaces_the_node_and_keeps_its_address() {
    let mut ledger = with_mesh();
    let old = key();
    ledger.ap(&register(&old, None, None, 2), meta(2)).unwrap();
    let cert = certificate(&ledger, &old, vec![tag("robot")], 2_000, &ANCHOR);
    ledger
        .ap(
            &Command::Nodes(NodeCommand::Approve {
                mesh: mesh(),
                node_id: old.node_id(),
                certificate: cert,
            }),
            meta(2),
        )
        .unwrap();
    let ip = ledger
        .node(&mesh(), &old.node_id())
        .unwrap()
        .overlay_ip
        .unwrap();
    let mut reissue = add_token(7, TokenUsage::SingleUse, false, 3_000, Timestamp::HOUR);
    if let Command::Nodes(NodeCommand::AddJoinToken { for_node, .. }) = &mut reissue {
        *for_node = Some(old.node_id());
    }
    ledger.ap(&reissue, meta(3)).unwrap();
    let new = key();
    let mut cert = SignedNodeCertificate::decode(&certificate(
        &ledger,
        &new,
        vec![tag("robot")],
        4_000,
        &ANCHOR,
    ))
    .unwrap()
    .payload()
    .clone();
    cert.overlay_ip = ip;
    let cert = SignedNodeCertificate::sign(cert, &ANCHOR).unwrap().encode();
    ledger
        .ap(&register(&new, proof(7), Some(cert), 4), meta(4))
        .unwrap();
    let old_record = ledger.node(&mesh(), &old.node_id()).unwrap();
    assert_eq!(old_record.state, NodeState::Revoked);
    let new_record = ledger.node(&mesh(), &new.node_id()).unwrap();
    assert_eq!(
        (new_record.state, new_record.overlay_ip),
        (NodeState::Approved, Some(ip))
    );
    assert_eq!(new_record.replaces, Some(old.node_id()));
}

#[test]
fn the_audit_chain_records_every_applied_command_and_verifies() {
    let mut ledger = with_mesh();
    let node = key();
    ledger.ap(&register(&node, None, None, 2), meta(2)).unwrap();
    let _ = ledger.ap(&register(&node, None, None, 3), meta(3)); // refused: not audited
    ledger
        .ap(
            &Command::Nodes(NodeCommand::Reject {
                mesh: mesh(),
                node_id: node.node_id(),
                reason: "unknown device".into(),
            }),
            meta(4),
        )
        .unwrap();
    let entries: Vec<(x0t_crypto::AuditEntry, [u8; 32])> = ledger
        .audit_entries(Some(&mesh()), 0, usize::MAX)
        .map(|r| (x0t_crypto::AuditEntry::decode(&r.entry).unwrap(), r.hash))
        .collect();
    let actions: Vec<&str> = entries.iter().map(|(e, _)| e.action.as_str()).collect();
    assert_eq!(actions, ["mesh.create", "node.register", "node.reject"]);
    assert_eq!(ledger.audit_head(Some(&mesh())).len, 3);
    x0t_crypto::verify_chain(&entries, &|id| ledger.anchor_key(id)).unwrap();
    // A statement for another command is refused before anything changes.
    let revoke = Command::Nodes(NodeCommand::Revoke {
        mesh: mesh(),
        node_id: node.node_id(),
        reason: String::new(),
    });
    let mut proposed = crate::ProposedCommand {
        command: revoke.clone(),
        request_id: None,
        statement: crate::testkit::statement(&Command::Nodes(NodeCommand::RotateJoinTokens {
            mesh: mesh(),
        })),
    };
    let m = crate::ApplyMeta {
        index: 5,
        position: 0,
        timestamp: Timestamp(5_000),
    };
    assert!(matches!(
        ledger.apply(&proposed, m),
        Err(Reject::BadStatement(_))
    ));
    proposed.statement.clear();
    assert!(matches!(
        ledger.apply(&proposed, m),
        Err(Reject::BadStatement(_))
    ));
    assert_eq!(ledger.audit_head(Some(&mesh())).len, 3);
    // Records round-trip, heads included.
    ledger.take_changes();
    let rebuilt = Ledger::from_records(ledger.records()).unwrap();
    assert_eq!(
        rebuilt.audit_head(Some(&mesh())),
        ledger.audit_head(Some(&mesh()))
    );
    assert_eq!(ledger.audit_entries(None, 0, 1).count(), 1);
}

#[test]
fn nodes_are_found_by_full_id_short_id_and_prefix() {
    let mut ledger = with_mesh();
    let nodes: Vec<SigningKey> = (0..3).map(|_| key()).collect();
    for (i, node) in nodes.iter().enumerate() {
        ledger
            .ap(
                &register(node, None, None, 2 + i as u64),
                meta(2 + i as u64),
            )
            .unwrap();
    }
    for node in &nodes {
        let id = node.node_id();
        let full = id.to_string();
        for query in [
            full.clone(),
            id.short(),
            full[..9].to_owned(),
            full[..5].to_uppercase(),
        ] {
            match ledger.find_node(&mesh(), &query) {
                Ok(found) => assert_eq!(found.node_id, id, "{query}"),
                // A 5-character prefix may be shared; then it must say so.
                Err(Reject::Invalid(why)) => {
                    assert!(query.len() < 8 && why.contains("several"), "{query}: {why}")
                }
                Err(e) => panic!("{query}: {e}"),
            }
        }
    }
    for bad in ["zzzzzzzzzzzzzzzz", "", "ünïcödé-prefix-x", "!!"] {
        assert!(ledger.find_node(&mesh(), bad).is_err(), "{bad:?}");
    }
}

#[test]
fn overlay_addresses_are_stable_and_skip_taken_ones() {
    let id = NodeId::from_bytes([9; 32]);
    let first = overlay_ip_for(&id, |_| false).unwrap();
    assert!(is_overlay_ip(first));
    assert_eq!(overlay_ip_for(&id, |_| false), Some(first));
    let second = overlay_ip_for(&id, |ip| ip == first).unwrap();
    assert_ne!(first, second);
    assert!(is_overlay_ip(second));
}
