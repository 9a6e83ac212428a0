//! Format 4's encodings, pinned, and statements over either encoding.
#![allow(clippy::unwrap_used)]

use x0t_crypto::{AuditStatement, SignedAuditStatement, command_digest, command_digest_v2};
use x0t_types::{Actor, Timestamp};

use super::{Command, legacy_command_bytes};
use crate::testkit::{ANCHOR, booted, mesh, meta, settings};
use crate::{Command as Current, MeshCommand, ProposedCommand, Reject, command_bytes};

fn create() -> Current {
    MeshCommand::Create {
        mesh: mesh("factory"),
        settings: settings("line 3"),
        plan: x0t_types::Plan::Pro,
    }
    .into()
}

fn signed(command: &Current, digest: [u8; 32]) -> ProposedCommand {
    let statement = SignedAuditStatement::sign(
        AuditStatement {
            mesh: command.scope(),
            actor: Actor::ApiKey {
                key_id: "test".into(),
            },
            action: command.action().to_owned(),
            command_digest: digest,
            requested_at: Timestamp(0),
            issuer: ANCHOR.node_id(),
        },
        &ANCHOR,
    )
    .unwrap()
    .encode();
    ProposedCommand {
        command: command.clone(),
        request_id: None,
        statement,
    }
}

fn apply(proposed: &ProposedCommand) -> Result<(), Reject> {
    let m = meta(1);
    booted()
        .apply(
            proposed,
            crate::ApplyMeta {
                index: m.index,
                position: m.position,
                timestamp: m.timestamp,
            },
        )
        .map(drop)
}

/// The flat enum's variant order is format 4's: its first and last commands keep their
/// indices (bincode writes the index first), and format 5 writes the domain first.
#[test]
fn format4_and_format5_encodings_are_pinned() {
    let old = legacy_command_bytes(&create()).unwrap();
    assert_eq!(old[0], 0, "CreateMesh was format 4's first command");
    let acl: Current = crate::AclCommand::Set {
        mesh: mesh("factory"),
        document: String::new(),
        expected_version: None,
    }
    .into();
    assert_eq!(
        legacy_command_bytes(&acl).unwrap()[0],
        13,
        "SetAcl was its 14th and last"
    );
    assert_eq!(&command_bytes(&create())[..2], &[0, 0], "meshes, create");
    assert_eq!(command_bytes(&acl)[0], 4, "the ACL domain is the 5th");
    assert!(matches!(
        Command::downgrade(&create()),
        Some(Command::CreateMesh { .. })
    ));
}

/// A statement signed over a command's format-4 bytes (an entry written before the
/// migration) still verifies; one over the current bytes verifies; but neither digest is
/// taken for the other encoding, whatever the bytes.
#[test]
fn statements_over_either_encoding_verify_and_never_cross() {
    let command = create();
    let legacy = legacy_command_bytes(&command).unwrap();
    let current = command_bytes(&command);
    assert!(apply(&signed(&command, command_digest(&legacy))).is_ok());
    assert!(apply(&signed(&command, command_digest_v2(&current))).is_ok());
    for wrong in [command_digest(&current), command_digest_v2(&legacy)] {
        let refused = apply(&signed(&command, wrong)).unwrap_err();
        assert!(matches!(refused, Reject::BadStatement(_)), "{refused:?}");
    }
}
