//! The meshes domain's tests: creation, compare-and-set, limits.
#![allow(clippy::unwrap_used)]

use crate::{Command, MeshCommand};
use crate::{MeshOutcome, MeshReject};
use x0t_types::command::MAX_DESCRIPTION_LEN;
use x0t_types::{Plan, Timestamp};

use crate::testkit::{ApplyExt, booted, mesh, meta, settings};
use crate::{Outcome, Reject};

#[test]
fn create_then_compare_and_set() {
    let mut ledger = booted();
    let create = Command::Meshes(MeshCommand::Create {
        mesh: mesh("m"),
        settings: settings("a"),
        plan: Plan::Starter,
    });
    assert!(matches!(
        ledger.ap(&create, meta(1)),
        Ok(Outcome::Meshes(MeshOutcome::Created { .. }))
    ));
    assert_eq!(
        ledger.ap(&create, meta(2)),
        Err(Reject::Meshes(MeshReject::MeshExists { mesh: mesh("m") }))
    );
    let update = |expected, text: &str| {
        Command::Meshes(MeshCommand::UpdateSettings {
            mesh: mesh("m"),
            expected_version: expected,
            settings: settings(text),
        })
    };
    let Ok(Outcome::Meshes(MeshOutcome::Updated { mesh: updated })) =
        ledger.ap(&update(Some(1), "b"), meta(3))
    else {
        panic!("update failed")
    };
    assert_eq!((updated.version, updated.updated_at), (2, Timestamp(3_000)));
    assert_eq!(
        ledger.ap(&update(Some(1), "c"), meta(4)),
        Err(Reject::Meshes(MeshReject::VersionMismatch {
            mesh: mesh("m"),
            expected: 1,
            actual: 2
        }))
    );
    assert_eq!(ledger.mesh(&mesh("m")).unwrap().settings, settings("b"));
    assert!(ledger.ap(&update(None, "d"), meta(5)).is_ok());
    assert_eq!(ledger.mesh(&mesh("m")).unwrap().version, 3);
    let missing = Command::Meshes(MeshCommand::UpdateSettings {
        mesh: mesh("nope"),
        expected_version: None,
        settings: settings(""),
    });
    assert!(matches!(
        ledger.ap(&missing, meta(6)),
        Err(Reject::Meshes(MeshReject::NoSuchMesh { .. }))
    ));
    let huge = update(None, &"x".repeat(MAX_DESCRIPTION_LEN + 1));
    assert!(matches!(ledger.ap(&huge, meta(7)), Err(Reject::Invalid(_))));
}
