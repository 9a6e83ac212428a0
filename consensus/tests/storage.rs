//! The sled stores against openraft's own storage test suite, plus restart and snapshot checks.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Cursor;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite, log_id};
use openraft::{Entry, EntryPayload, RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;
use x0t_consensus::{LogStore, Response, SledStorage, StateMachineStore, TypeConfig};
use x0t_ledger::Outcome;
use x0t_types::{Command, MeshId, MeshSettings, Proposal, Timestamp};

fn open(dir: &std::path::Path) -> (LogStore, StateMachineStore) {
    let storage = SledStorage::open(dir).unwrap();
    let log = LogStore::new(storage.tree("raft-log").unwrap());
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

fn create_mesh(index: u64, name: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Proposal {
            command: Command::CreateMesh {
                mesh: MeshId::new(name).unwrap(),
                settings: MeshSettings::default(),
            },
            proposed_at: Timestamp(index * 1000),
            request_id: None,
        }),
    }
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
        let responses = sm
            .apply([
                create_mesh(1, "a"),
                create_mesh(2, "b"),
                create_mesh(3, "a"),
            ])
            .await
            .unwrap();
        assert!(matches!(
            responses[0],
            Response::Applied(Outcome::MeshCreated { .. })
        ));
        assert!(matches!(responses[2], Response::Rejected(_)));
        let snapshot = sm.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 3)));
        sm.apply([create_mesh(4, "c")]).await.unwrap();
    });

    // Reopen: records and last_applied come back from sled.
    runtime().block_on(async {
        let (_, mut sm) = open(dir.path());
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 1, 4)));
        assert_eq!(sm.read(|s| s.ledger.meshes().count()), 3);

        // Install the older snapshot into a fresh store: state = snapshot.
        let snapshot = sm.get_current_snapshot().await.unwrap().unwrap();
        let other = tempfile::tempdir().unwrap();
        let (_, mut fresh) = open(other.path());
        fresh
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(fresh.read(|s| s.ledger.meshes().count()), 2);
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
        assert_eq!(fresh.read(|s| s.ledger.meshes().count()), 2);
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
