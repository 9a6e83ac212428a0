//! Remembered requests: retries apply once, records stay per entry, memory is bounded.
#![allow(clippy::unwrap_used)]

use x0t_types::{Plan, Timestamp};

use super::{Key, MAX_REMEMBERED_REQUESTS, REQUEST_MEMORY_MS, Requests};
use crate::core::audit::AuditChains;
use crate::domain::Domain;
use crate::meshes::{self, Meshes};
use crate::testkit::{
    ApplyExt, ApplyMeta, assert_round_trips, booted, change, mesh, meta, settings,
};
use crate::{Command, MeshCommand, StoredChange};

#[test]
fn retried_requests_apply_once_and_are_forgotten_oldest_first() {
    let mut ledger = booted();
    let with_id = |index, id| ApplyMeta {
        request_id: Some(id),
        ..meta(index)
    };
    let create = Command::Meshes(MeshCommand::Create {
        mesh: mesh("m"),
        settings: settings(""),
        plan: Plan::Starter,
    });
    let first = ledger.ap(&create, with_id(1, 7)).unwrap();
    // The retry gets the first result, not MeshExists, and changes nothing.
    assert_eq!(ledger.ap(&create, with_id(2, 7)).unwrap(), first);
    let bump = Command::Meshes(MeshCommand::UpdateSettings {
        mesh: mesh("m"),
        expected_version: None,
        settings: settings("x"),
    });
    ledger.ap(&bump, with_id(3, 8)).unwrap();
    ledger.ap(&bump, with_id(4, 8)).unwrap();
    assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 2, "applied once");
    // A rejected request's rejection is remembered too.
    let cas = Command::Meshes(MeshCommand::UpdateSettings {
        mesh: mesh("m"),
        expected_version: Some(1),
        settings: settings("y"),
    });
    let rejected = ledger.ap(&cas, with_id(5, 9)).unwrap_err();
    assert_eq!(ledger.ap(&cas, with_id(6, 9)).unwrap_err(), rejected);
    // Several requests in one entry share one record.
    let at = |position, id| ApplyMeta {
        position,
        ..with_id(7, id)
    };
    ledger.take_changes();
    let tenth = ledger.ap(&bump, at(0, 10)).unwrap();
    ledger.ap(&bump, at(1, 11)).unwrap();
    let changed: Vec<StoredChange> = ledger
        .take_changes()
        .into_iter()
        .filter(|change| change.domain != AuditChains::NAME)
        .map(|change| StoredChange {
            value: None,
            ..change
        })
        .collect();
    assert_eq!(
        changed,
        [
            change::<Meshes>(meshes::Key::Mesh(mesh("m")), None),
            change::<Requests>(Key::Entry(7), None)
        ],
        "two requests of one entry: one record"
    );
    assert_eq!(ledger.ap(&bump, at(2, 10)).unwrap(), tenth);
    assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 4);
    // Results are remembered for REQUEST_MEMORY_MS of log time, then forgotten.
    let later = |index: u64, id| ApplyMeta {
        timestamp: Timestamp(7_000 + REQUEST_MEMORY_MS),
        ..with_id(index, id)
    };
    ledger.ap(&bump, later(8, 12)).unwrap();
    assert!(ledger.requests.remembers(10), "exactly at the limit: kept");
    assert!(!ledger.requests.remembers(7), "applied at 1 s: forgotten");
    let much_later = |index: u64, id| ApplyMeta {
        timestamp: Timestamp(7_001 + REQUEST_MEMORY_MS),
        ..with_id(index, id)
    };
    ledger.ap(&bump, much_later(9, 13)).unwrap();
    assert!(!ledger.requests.remembers(10) && !ledger.requests.remembers(11));
    assert!(ledger.requests.remembers(12) && ledger.requests.remembers(13));
    // Bounded memory: beyond the cap the oldest ids go first, whatever their age. (A
    // refused command is remembered too, and adds no audit entry to hold in memory.)
    let refused = Command::Meshes(MeshCommand::UpdateSettings {
        mesh: mesh("absent"),
        expected_version: None,
        settings: settings("x"),
    });
    for i in 0..MAX_REMEMBERED_REQUESTS as u64 {
        let _ = ledger.ap(&refused, much_later(10 + i, 1_000 + u128::from(i)));
    }
    assert_eq!(ledger.remembered_requests(), MAX_REMEMBERED_REQUESTS);
    assert!(!ledger.requests.remembers(12));
    assert_round_trips(&mut ledger);
}

/// A result remembered by storage format 4 (one flat outcome and refusal enum) loads as this
/// release's per-domain result, so a retry that straddles the upgrade still gets it; the
/// group is written back in the newest form.
#[test]
fn results_remembered_by_format_4_load_upgraded() {
    use crate::core::format4;
    let old = format4::RequestGroup {
        index: 9,
        applied_at: Timestamp(5),
        requests: vec![
            format4::RequestRecord {
                request_id: 1,
                position: 0,
                result: Ok(format4::Outcome::AclSet { version: 3 }),
            },
            format4::RequestRecord {
                request_id: 2,
                position: 1,
                result: Err(format4::Reject::TokenUsedUp {
                    token_id: "t".into(),
                    uses: 1,
                }),
            },
        ],
    };
    let record = crate::domain::stored::<Requests>(&super::Value::Group(old));
    let ledger = crate::Ledger::from_records([record]).unwrap();
    assert_eq!(
        ledger.requests.remembered(1),
        Some(&Ok(crate::AclOutcome::Set { version: 3 }.into()))
    );
    assert_eq!(
        ledger.requests.remembered(2),
        Some(&Err(crate::NodeReject::TokenUsedUp {
            token_id: "t".into(),
            uses: 1
        }
        .into()))
    );
    let rewritten: Vec<_> = ledger.records().collect();
    assert_eq!(rewritten.len(), 1);
    assert_eq!(
        rewritten[0].value[0], 1,
        "stored again as the newest variant"
    );
}
