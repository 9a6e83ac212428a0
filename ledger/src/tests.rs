//! Properties of the whole ledger: determinism, persistence of exactly the changed records,
//! and that the generators reach every command of every domain.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use proptest::prelude::*;
use x0t_crypto::{SigAlgorithm, SigningKey};
use x0t_types::{KeyRole, NodeId, Plan, Timestamp};

use crate::testkit::{ANCHOR, ApplyExt, anchor, booted, mesh, meta, settings};
use crate::{AclCommand, AnchorCommand, ApiKeyCommand, Command, MeshCommand, NodeCommand};
use crate::{Ledger, StoredRecord, overlay_ip_for};

/// Node identities the generated commands register, approve, turn away and replace.
static NODE_KEYS: LazyLock<Vec<SigningKey>> = LazyLock::new(|| {
    (0..3)
        .map(|_| SigningKey::generate(SigAlgorithm::MlDsa65).unwrap())
        .collect()
});

fn tag(name: &str) -> x0t_types::Tag {
    x0t_types::Tag::new(name).unwrap()
}

/// A registration of node `k` into `mesh`, signed at 10 s (inside the window of every
/// generated proposal's time).
fn registration(k: usize, mesh_name: &str) -> Vec<u8> {
    let key = &NODE_KEYS[k];
    x0t_crypto::Registration {
        mesh: mesh(mesh_name),
        node_id: key.node_id(),
        identity_key: key.verifying_key().clone(),
        peer_id: vec![k as u8 + 1; 38],
        hostname: format!("robot-{k}"),
        device_class: x0t_types::DeviceClass::Robot,
        requested_tags: vec![tag("robot")],
        requested_at: Timestamp(10_000),
    }
    .sign(key)
    .unwrap()
    .encode()
}

/// A certificate [`ANCHOR`] signs for node `k` in `mesh` at its preferred overlay address.
fn certificate(
    k: usize,
    mesh_name: &str,
    tags: Vec<x0t_types::Tag>,
    pq: x0t_types::PqProfile,
) -> Vec<u8> {
    let key = &NODE_KEYS[k];
    let cert = x0t_crypto::NodeCertificate {
        mesh: mesh(mesh_name),
        node_id: key.node_id(),
        identity_key: key.verifying_key().clone(),
        peer_id: vec![k as u8 + 1; 38],
        overlay_ip: overlay_ip_for(&key.node_id(), |_| false).unwrap(),
        tags,
        device_class: x0t_types::DeviceClass::Robot,
        pq_profile: pq,
        not_before: Timestamp(0),
        not_after: Timestamp(90 * Timestamp::DAY),
        ledger_index: 0,
        issuer: ANCHOR.node_id(),
    };
    x0t_crypto::SignedNodeCertificate::sign(cert, &ANCHOR)
        .unwrap()
        .encode()
}

/// Signed inputs are made once per value (signing is the slow part).
fn cached(key: String, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    thread_local! {
        static SIGNED: RefCell<HashMap<String, Vec<u8>>> = RefCell::new(HashMap::new());
    }
    SIGNED.with(|c| c.borrow_mut().entry(key).or_insert_with(make).clone())
}

fn node_id(k: usize) -> NodeId {
    NODE_KEYS[k].node_id()
}

/// Every command the ledger knows, over small pools of meshes, nodes, tokens and
/// documents, so that sequences collide: a token used up, a node approved twice, a
/// policy that changes which certificates are valid.
fn command() -> impl Strategy<Value = Command> {
    use x0t_types::{PqProfile, TokenProof, TokenUsage};
    let name = prop_oneof![Just("a"), Just("b"), Just("c")];
    let node = 0usize..3;
    let profile = prop_oneof![Just(PqProfile::Standard), Just(PqProfile::Constrained)];
    let documents = prop_oneof![
        Just("version = 1\n".to_owned()),
        Just("version = 1\n[pq]\nrobot = \"constrained\"\n".to_owned()),
        Just("version = 1\n[[rule]]\naction = \"allow\"\n".to_owned()),
    ];
    prop_oneof![
        3 => (name.clone(), "[a-z]{0,8}").prop_map(|(m, text)| Command::Meshes(MeshCommand::Create {
            mesh: mesh(m),
            settings: settings(&text),
            plan: Plan::Pro,
        })),
        1 => (name.clone(), proptest::option::of(0u64..5), "[a-z]{0,8}").prop_map(
            |(m, expected_version, text)| Command::Meshes(MeshCommand::UpdateSettings {
                mesh: mesh(m),
                expected_version,
                settings: settings(&text)
            })
        ),
        1 => (2u64..4).prop_map(|raft_id| Command::Anchors(AnchorCommand::Add {
            anchor: anchor(raft_id)
        })),
        1 => (0u64..3).prop_map(|raft_id| Command::Anchors(AnchorCommand::Remove { raft_id })),
        1 => (0u8..3, prop_oneof![Just(KeyRole::Admin), Just(KeyRole::Viewer)]).prop_map(
            |(k, role)| Command::ApiKeys(ApiKeyCommand::Add {
                key_id: format!("k{k}"),
                secret_hash: [k; 32],
                label: String::new(),
                role,
            })
        ),
        1 => (0u8..3, 1u64..60).prop_map(|(t, expires)| Command::Anchors(AnchorCommand::AddJoinToken {
            token_id: format!("t{t}"),
            secret_hash: [1; 32],
            expires_at: Timestamp(expires * 1_000),
        })),
        1 => (0u8..3, any::<bool>(), 4u64..6).prop_map(|(t, right, raft_id)| {
            Command::Anchors(AnchorCommand::RedeemJoinToken {
                token_id: format!("t{t}"),
                secret_hash: if right { [1; 32] } else { [2; 32] },
                anchor: anchor(raft_id),
            })
        }),
        4 => (
            node.clone(),
            prop_oneof![Just("a"), Just("b")],
            proptest::option::of((0u8..3, any::<bool>())),
            proptest::option::of(profile.clone()),
        )
            .prop_map(|(k, m, token, cert)| Command::Nodes(NodeCommand::Register {
                registration: cached(format!("reg {k} {m}"), || registration(k, m)),
                token: token.map(|(t, right)| TokenProof {
                    token_id: [t; 16],
                    secret_hash: if right { [t; 32] } else { [9; 32] },
                }),
                // Pre-approved tokens grant `line-3`; re-issued ones the old node's tags.
                certificate: cert.map(|pq| {
                    cached(format!("cert {k} {m} line-3 {pq:?}"), || {
                        certificate(k, m, vec![tag("line-3")], pq)
                    })
                }),
            })),
        3 => (node.clone(), prop_oneof![Just("a"), Just("b")], profile).prop_map(|(k, m, pq)| {
            Command::Nodes(NodeCommand::Approve {
                mesh: mesh(m),
                node_id: node_id(k),
                certificate: cached(format!("cert {k} {m} robot {pq:?}"), || {
                    certificate(k, m, vec![tag("robot")], pq)
                }),
            })
        }),
        3 => (node.clone(), name.clone(), any::<bool>()).prop_map(|(k, m, revoke)| {
            let (mesh, node_id, reason) = (mesh(m), node_id(k), "r".to_owned());
            if revoke {
                Command::Nodes(NodeCommand::Revoke { mesh, node_id, reason })
            } else {
                Command::Nodes(NodeCommand::Reject { mesh, node_id, reason })
            }
        }),
        4 => (
            name.clone(),
            0u8..3,
            prop_oneof![
                Just(TokenUsage::SingleUse),
                Just(TokenUsage::Reusable { max_uses: None }),
                Just(TokenUsage::Reusable { max_uses: Some(2) }),
            ],
            any::<bool>(),
            proptest::option::of(node),
            prop_oneof![Just(Timestamp::HOUR), Just(1_000)],
        )
            .prop_map(|(m, t, usage, pre_approved, for_node, ttl)| Command::Nodes(NodeCommand::AddJoinToken {
                mesh: mesh(m),
                token_id: [t; 16],
                secret_hash: [t; 32],
                usage,
                pre_approved,
                tags: vec![tag("line-3")],
                not_before: Timestamp(0),
                not_after: Timestamp(ttl),
                for_node: for_node.map(node_id),
            })),
        1 => name.clone().prop_map(|m| Command::Nodes(NodeCommand::RotateJoinTokens { mesh: mesh(m) })),
        1 => (name, documents, proptest::option::of(0u64..3)).prop_map(
            |(m, document, expected_version)| Command::Acl(AclCommand::Set {
                mesh: mesh(m),
                document,
                expected_version,
            })
        ),
    ]
}

/// The audit action of every command the ledger knows: a new command is added here, and to
/// the generator, or the tests below fail.
const EVERY_ACTION: [&str; 15] = [
    "mesh.create",
    "mesh.update_settings",
    "anchor.add",
    "anchor.remove",
    "api_key.add",
    "anchor_join_token.add",
    "anchor_join_token.redeem",
    "node.register",
    "node.approve",
    "node.reject",
    "node.revoke",
    "node.reissue_token",
    "token.create",
    "token.rotate",
    "acl.set",
];

/// The generator reaches every command: a new command must be added to it.
#[test]
fn the_generator_covers_every_command() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..2_000 {
        let command = command().new_tree(&mut runner).unwrap().current();
        seen.insert(command.action());
    }
    assert_eq!(seen, EVERY_ACTION.into_iter().collect::<BTreeSet<_>>());
}

/// Generated sequences are not all refusals: every command succeeds somewhere in them, so
/// the property below exercises every command's changes, not only its checks.
#[test]
fn generated_sequences_apply_every_command() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut applied = BTreeSet::new();
    let sequences = proptest::collection::vec(command(), 0..40);
    for _ in 0..200 {
        let mut ledger = booted();
        let commands = sequences.new_tree(&mut runner).unwrap().current();
        for (i, command) in commands.iter().enumerate() {
            if ledger.ap(command, meta(i as u64 + 1)).is_ok() {
                applied.insert(command.action());
            }
        }
    }
    let missing: Vec<&str> = EVERY_ACTION
        .into_iter()
        .filter(|a| !applied.contains(a))
        .collect();
    assert!(missing.is_empty(), "never applied: {missing:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    /// Same log, same state; persisting only the changed records and reloading gives the
    /// same state as the live ledger, derived indexes (overlay addresses, chain heads,
    /// remembered requests) included; a rejected command changes nothing.
    #[test]
    fn deterministic_and_persistable(commands in proptest::collection::vec(command(), 0..40)) {
        let mut a = booted();
        let mut b = booted();
        let mut persisted: BTreeMap<(String, Vec<u8>), StoredRecord> =
            a.records().map(|r| ((r.domain.clone(), r.key.clone()), r)).collect();
        for (i, command) in commands.iter().enumerate() {
            let before = a.clone();
            let m = meta(i as u64 + 1);
            let result = a.ap(command, m);
            prop_assert_eq!(&result, &b.ap(command, m));
            if result.is_err() {
                prop_assert_eq!(&a, &before);
            }
            for change in a.take_changes() {
                let key = (change.domain.to_owned(), change.key);
                match change.value {
                    Some(value) => {
                        let record = StoredRecord { domain: key.0.clone(), key: key.1.clone(), value };
                        persisted.insert(key, record);
                    }
                    None => { persisted.remove(&key); }
                }
            }
            b.take_changes();
        }
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&Ledger::from_records(persisted.into_values()).unwrap(), &a);
        prop_assert_eq!(&Ledger::from_records(a.records()).unwrap(), &a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// Every command of this release has a storage-format-4 form that upgrades back to it
    /// unchanged, and whose format-4 bytes decode: the log migration and the check of
    /// statements signed over format-4 bytes lose nothing.
    #[test]
    fn commands_round_trip_through_format4(command in command()) {
        use crate::migrations::format4;
        let old = format4::Command::downgrade(&command).unwrap();
        let bytes = format4::legacy_command_bytes(&command).unwrap();
        let (decoded, used): (format4::Command, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&decoded, &old);
        prop_assert_eq!(old.upgrade(), command);
    }
}
