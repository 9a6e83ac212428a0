//! The sled stores against openraft's own storage test suite, plus restart and snapshot checks.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Cursor;
use x0t_ledger::{AnchorCommand, Command, MeshCommand, Proposal, ProposedCommand};
use x0t_ledger::{MeshOutcome, MeshReject};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite, log_id};
use openraft::{Entry, EntryPayload, RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;
use x0t_consensus::{
    LogStore, Response, STORAGE_FORMAT_VERSION, SledStorage, StateMachineStore, StoreError,
    TypeConfig,
};
use x0t_crypto::{AuditStatement, SigAlgorithm, SignedAuditStatement, SigningKey};
use x0t_ledger::{Outcome, Reject};
use x0t_types::{Actor, AnchorRecord, MeshId, MeshSettings, Plan, PublicKeyBytes, Timestamp};

/// The anchor that signs every test command's audit statement.
static ANCHOR: std::sync::LazyLock<SigningKey> =
    std::sync::LazyLock::new(|| SigningKey::generate(SigAlgorithm::MlDsa65).unwrap());

/// `command` as the anchor proposes it: with its signed statement of who asked.
fn proposed(command: Command) -> ProposedCommand {
    let statement = SignedAuditStatement::sign(
        AuditStatement {
            mesh: x0t_ledger::command_scope(&command),
            actor: Actor::Anchor {
                node_id: ANCHOR.node_id(),
            },
            action: command.action().to_owned(),
            command_digest: x0t_ledger::command_digest(&command),
            requested_at: Timestamp(0),
            issuer: ANCHOR.node_id(),
        },
        &ANCHOR,
    )
    .unwrap()
    .encode();
    ProposedCommand {
        command,
        request_id: None,
        statement,
    }
}

/// Entry 0: the anchor records itself, as at bootstrap.
fn bootstrap() -> Entry<TypeConfig> {
    let anchor = AnchorRecord {
        raft_id: 1,
        node_id: ANCHOR.node_id(),
        identity_key: PublicKeyBytes {
            algorithm: ANCHOR.algorithm().code(),
            bytes: ANCHOR.verifying_key().as_bytes().to_vec(),
        },
        peer_id: "12D3KooW".into(),
        addrs: vec![],
        api_url: String::new(),
    };
    Entry {
        log_id: log_id(1, 1, 0),
        payload: EntryPayload::Normal(Proposal {
            proposed_at: Timestamp(0),
            commands: vec![proposed(Command::Anchors(AnchorCommand::Add { anchor }))],
        }),
    }
}

fn open(dir: &std::path::Path) -> (LogStore, StateMachineStore) {
    let storage = SledStorage::open(dir).unwrap();
    let log = LogStore::new(storage.tree("raft-log").unwrap()).unwrap();
    let sm = StateMachineStore::open(
        storage.tree("state").unwrap(),
        storage.tree("snapshot").unwrap(),
    )
    .unwrap();
    (log, sm)
}

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let (log, sm) = open(dir.path());
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_stores_pass_the_openraft_suite() {
    Suite::test_all(SledBuilder).unwrap();
}

/// An entry carrying one "create mesh" command per name, applied in order.
fn create_meshes(index: u64, names: &[&str]) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Proposal {
            proposed_at: Timestamp(index * 1000),
            commands: names
                .iter()
                .map(|name| {
                    proposed(Command::Meshes(MeshCommand::Create {
                        mesh: MeshId::new(*name).unwrap(),
                        settings: MeshSettings::default(),
                        plan: Plan::Starter,
                    }))
                })
                .collect(),
        }),
    }
}

fn create_mesh(index: u64, name: &str) -> Entry<TypeConfig> {
    create_meshes(index, &[name])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn state_survives_reopen_and_snapshots_restore() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let (_, mut sm) = open(dir.path());
        sm.apply([bootstrap()]).await.unwrap();
        let responses = sm
            .apply([
                create_mesh(1, "a"),
                create_meshes(2, &["b", "x", "b"]),
                create_mesh(3, "a"),
            ])
            .await
            .unwrap();
        let Response::Commands(first) = &responses[0] else {
            panic!("{responses:?}")
        };
        assert!(matches!(
            first[..],
            [Ok(Outcome::Meshes(MeshOutcome::Created { .. }))]
        ));
        // Commands of one entry apply in order: the second "b" sees the first.
        let Response::Commands(batch) = &responses[1] else {
            panic!("{responses:?}")
        };
        assert!(matches!(
            batch[..],
            [
                Ok(_),
                Ok(_),
                Err(Reject::Meshes(MeshReject::MeshExists { .. }))
            ]
        ));
        assert!(matches!(&responses[2], Response::Commands(r) if r[0].is_err()));
        let snapshot = sm.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 3)));
        sm.persist().unwrap();
        sm.apply([create_mesh(4, "c")]).await.unwrap();
        sm.persist().unwrap();
        // Applied, but not yet checkpointed: a crash now loses it from the state tree (the
        // Raft log still has it and openraft re-applies it).
        sm.apply([create_mesh(5, "d")]).await.unwrap();
    });

    // Reopen: records and last_applied come back from sled.
    runtime().block_on(async {
        let (_, mut sm) = open(dir.path());
        let (applied, _) = sm.applied_state().await.unwrap();
        // Usually entry 5 was not checkpointed; on a slow machine its apply may have come
        // after the interval and been. Either way records and last_applied agree.
        let meshes = sm.read(|s| s.ledger.meshes().count());
        match applied {
            Some(id) if id == log_id(1, 1, 4) => assert_eq!(meshes, 4),
            Some(id) if id == log_id(1, 1, 5) => assert_eq!(meshes, 5),
            other => panic!("reopened at {other:?}"),
        }

        // Install the older snapshot into a fresh store: state = snapshot.
        let snapshot = sm.get_current_snapshot().await.unwrap().unwrap();
        let other = tempfile::tempdir().unwrap();
        let (_, mut fresh) = open(other.path());
        fresh
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(fresh.read(|s| s.ledger.meshes().count()), 3);
        assert_eq!(fresh.read(|s| s.last_applied), Some(log_id(1, 1, 3)));

        // A damaged snapshot is refused and changes nothing.
        let mut data = sm
            .get_current_snapshot()
            .await
            .unwrap()
            .unwrap()
            .snapshot
            .into_inner();
        let last = data.len() - 1;
        data[last] ^= 1;
        let meta = sm.get_current_snapshot().await.unwrap().unwrap().meta;
        let err = fresh
            .install_snapshot(&meta, Box::new(Cursor::new(data)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert_eq!(fresh.read(|s| s.ledger.meshes().count()), 3);
    });
}

#[test]
fn appended_entries_and_vote_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let (mut log, _) = open(dir.path());
        let entries = [create_mesh(1, "a"), create_mesh(2, "b")];
        openraft::storage::RaftLogStorageExt::blocking_append(&mut log, entries)
            .await
            .unwrap();
        log.save_vote(&openraft::Vote::new(3, 9)).await.unwrap();
    });
    runtime().block_on(async {
        let (mut log, _) = open(dir.path());
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 2)));
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(openraft::Vote::new(3, 9))
        );
        log.purge(log_id(1, 1, 1)).await.unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 1)));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 2)));
    });
}

/// Opens a raw sled database, waiting out the lock of a handle of the same path that is
/// still closing (sled releases it when its last IO job ends).
fn raw_sled(dir: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{}: {e}", dir.display()),
        }
    }
}

#[test]
fn databases_of_another_format_are_refused_untouched() {
    // An early, unmarked database that holds data.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(dir.path());
        db.open_tree("raft-log")
            .unwrap()
            .insert(b"e1", b"old")
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledStorage::open(dir.path()).err().unwrap();
    assert!(
        matches!(err, StoreError::IncompatibleFormat { found: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("move the data dir aside"), "{err}");
    // A newer format.
    let newer = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(newer.path());
        db.insert(b"x0t/storage-format", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledStorage::open(newer.path()).err().unwrap();
    assert!(
        matches!(err, StoreError::IncompatibleFormat { found: 99, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("written by a newer release"),
        "a future format says so: {err}"
    );
    // A fresh database is marked and opens again.
    let fresh = tempfile::tempdir().unwrap();
    drop(SledStorage::open(fresh.path()).unwrap());
    let storage = SledStorage::open(fresh.path()).unwrap();
    drop(storage);
    let db = raw_sled(fresh.path());
    assert_eq!(
        db.get(b"x0t/storage-format").unwrap().unwrap().as_ref(),
        STORAGE_FORMAT_VERSION.to_be_bytes()
    );
    // The refused database still holds its data.
    let db = raw_sled(dir.path());
    assert!(
        db.open_tree("raft-log")
            .unwrap()
            .get(b"e1")
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_database_in_use_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let held = SledStorage::open(dir.path()).unwrap();
    let err = SledStorage::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("is in use"), "{err}");
    drop(held);
    // Once the holder is gone, the database opens (waiting out its closing IO if needed).
    SledStorage::open(dir.path()).unwrap();
}
