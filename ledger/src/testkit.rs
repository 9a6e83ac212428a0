//! What the ledger's unit tests share: a bootstrapped ledger, its anchor, signed statements
//! for commands, and stored-change helpers.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use x0t_crypto::{AuditStatement, SigAlgorithm, SignedAuditStatement, SigningKey};
use x0t_types::{Actor, AnchorRecord, MeshId, MeshSettings, PublicKeyBytes, Timestamp};

use crate::domain::Domain;
use crate::stored::encode;
use crate::{AnchorCommand, Command, ProposedCommand};
use crate::{Ledger, Outcome, Reject, StoredChange, command_bytes, command_scope};

/// The anchor every test ledger is bootstrapped with.
pub(crate) static ANCHOR: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate(SigAlgorithm::MlDsa65).unwrap());

/// Test metadata: the real [`crate::ApplyMeta`] plus the request id the proposal carries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ApplyMeta {
    pub(crate) index: u64,
    pub(crate) position: u32,
    pub(crate) timestamp: Timestamp,
    pub(crate) request_id: Option<u128>,
}

pub(crate) fn meta(index: u64) -> ApplyMeta {
    ApplyMeta {
        index,
        position: 0,
        timestamp: Timestamp(1_000 * index),
        request_id: None,
    }
}

thread_local! {
    static STATEMENTS: RefCell<HashMap<Vec<u8>, Vec<u8>>> = RefCell::new(HashMap::new());
}

/// The statement [`ANCHOR`] signs for `command` as an admin key (cached: signing is the
/// slow part and a statement does not depend on the request id).
pub(crate) fn statement(command: &Command) -> Vec<u8> {
    let bytes = command_bytes(command);
    STATEMENTS.with(|cache| {
        cache
            .borrow_mut()
            .entry(bytes.clone())
            .or_insert_with(|| {
                SignedAuditStatement::sign(
                    AuditStatement {
                        mesh: command_scope(command),
                        actor: Actor::ApiKey {
                            key_id: "test".into(),
                        },
                        action: command.action().to_owned(),
                        command_digest: crate::command_digest(command),
                        requested_at: Timestamp(0),
                        issuer: ANCHOR.node_id(),
                    },
                    &ANCHOR,
                )
                .unwrap()
                .encode()
            })
            .clone()
    })
}

pub(crate) trait ApplyExt {
    fn ap(&mut self, command: &Command, meta: ApplyMeta) -> Result<Outcome, Reject>;
}

impl ApplyExt for Ledger {
    fn ap(&mut self, command: &Command, m: ApplyMeta) -> Result<Outcome, Reject> {
        let proposed = ProposedCommand {
            command: command.clone(),
            request_id: m.request_id,
            statement: statement(command),
        };
        self.apply(
            &proposed,
            crate::ApplyMeta {
                index: m.index,
                position: m.position,
                timestamp: m.timestamp,
            },
        )
    }
}

/// An anchor record with [`ANCHOR`]'s key.
pub(crate) fn anchor(raft_id: u64) -> AnchorRecord {
    AnchorRecord {
        raft_id,
        node_id: ANCHOR.node_id(),
        identity_key: PublicKeyBytes {
            algorithm: ANCHOR.algorithm().code(),
            bytes: ANCHOR.verifying_key().as_bytes().to_vec(),
        },
        peer_id: "12D3KooW".into(),
        addrs: vec!["/ip4/127.0.0.1/udp/1/quic-v1".into()],
        api_url: "http://127.0.0.1:2".into(),
    }
}

/// A ledger that knows [`ANCHOR`] (raft id 1), as after bootstrap.
pub(crate) fn booted() -> Ledger {
    let mut ledger = Ledger::new();
    ledger
        .ap(
            &Command::Anchors(AnchorCommand::Add { anchor: anchor(1) }),
            meta(0),
        )
        .unwrap();
    ledger.take_changes();
    ledger
}

/// A mesh name.
pub(crate) fn mesh(name: &str) -> MeshId {
    MeshId::new(name).unwrap()
}

/// Mesh settings with `text` as the description.
pub(crate) fn settings(text: &str) -> MeshSettings {
    MeshSettings {
        description: text.to_owned(),
    }
}

/// The stored change of domain `D` under `key` (`None`: deleted).
pub(crate) fn change<D: Domain>(key: D::Key, value: Option<D::Value>) -> StoredChange {
    StoredChange {
        domain: D::NAME,
        key: encode(&key),
        value: value.map(|v| encode(&v)),
    }
}

/// Asserts that `ledger` and the ledger rebuilt from its stored records are the same.
pub(crate) fn assert_round_trips(ledger: &mut Ledger) {
    ledger.take_changes();
    let rebuilt = Ledger::from_records(ledger.records()).unwrap();
    assert!(rebuilt == *ledger, "stored records rebuild the ledger");
}
