//! The anchors domain's tests: anchor records and their changes, anchor-join tokens.
#![allow(clippy::unwrap_used)]

use crate::{AnchorCommand, Command};
use crate::{AnchorOutcome, AnchorReject};
use x0t_types::Timestamp;

use super::{Anchors, Key, MAX_ANCHOR_JOIN_TOKENS, Value};
use crate::testkit::{ApplyExt, anchor, assert_round_trips, booted, change, meta};
use crate::{Outcome, Reject};

#[test]
fn anchor_join_tokens_work_once_until_they_expire() {
    let mut ledger = booted();
    let add = |id: &str, expires_at| {
        Command::Anchors(AnchorCommand::AddJoinToken {
            token_id: id.into(),
            secret_hash: [1; 32],
            expires_at: Timestamp(expires_at),
        })
    };
    let redeem = |id: &str, hash, raft_id| {
        Command::Anchors(AnchorCommand::RedeemJoinToken {
            token_id: id.into(),
            secret_hash: hash,
            anchor: anchor(raft_id),
        })
    };
    // meta(n) is at n seconds.
    assert!(matches!(
        ledger.ap(&add("t1", 10_000), meta(1)),
        Ok(Outcome::Anchors(AnchorOutcome::JoinTokenAdded { .. }))
    ));
    assert!(ledger.ap(&add("t1", 10_000), meta(2)).is_err(), "id in use");
    assert!(
        ledger.ap(&add("old", 500), meta(2)).is_err(),
        "expired at birth"
    );
    ledger.take_changes();
    // A wrong secret changes nothing.
    let before = ledger.clone();
    assert_eq!(
        ledger.ap(&redeem("t1", [2; 32], 9), meta(3)),
        Err(Reject::Anchors(AnchorReject::InvalidToken))
    );
    assert_eq!(ledger, before);
    let mut huge = redeem("t1", [1; 32], 9);
    if let Command::Anchors(AnchorCommand::RedeemJoinToken { anchor, .. }) = &mut huge {
        anchor.api_url = "h".repeat(257);
    }
    assert!(matches!(ledger.ap(&huge, meta(4)), Err(Reject::Invalid(_))));
    assert!(
        ledger.anchor_join_token("t1").is_some(),
        "a refused redeem spends nothing"
    );
    assert_eq!(
        ledger.ap(&redeem("t1", [1; 32], 9), meta(4)),
        Ok(Outcome::Anchors(AnchorOutcome::JoinTokenRedeemed {
            raft_id: 9
        }))
    );
    assert_eq!(ledger.anchors().count(), 2, "the booted anchor and raft 9");
    assert!(ledger.anchor_join_token("t1").is_none(), "spent");
    assert_eq!(
        ledger.ap(&redeem("t1", [1; 32], 10), meta(5)),
        Err(Reject::Anchors(AnchorReject::InvalidToken)),
        "single use"
    );
    // Expiry uses the proposal's time.
    ledger.ap(&add("t2", 20_000), meta(6)).unwrap();
    assert!(matches!(
        ledger.ap(&redeem("t2", [1; 32], 11), meta(20)),
        Err(Reject::Anchors(AnchorReject::TokenExpired { .. }))
    ));
    assert!(
        ledger.anchor_join_token("t2").is_some(),
        "a refusal changes nothing"
    );
    // Adding a token forgets expired ones; the number outstanding is bounded.
    ledger.ap(&add("t3", 100_000), meta(21)).unwrap();
    assert!(ledger.anchor_join_token("t2").is_none());
    for i in 1..MAX_ANCHOR_JOIN_TOKENS {
        ledger
            .ap(&add(&format!("n{i}"), 100_000), meta(22))
            .unwrap();
    }
    assert_eq!(
        ledger.ap(&add("one-more", 100_000), meta(23)),
        Err(Reject::Anchors(AnchorReject::TooManyTokens))
    );
    assert_round_trips(&mut ledger);
}

#[test]
fn anchors_and_changes() {
    let mut ledger = booted();
    let anchor = anchor(7);
    ledger
        .ap(
            &Command::Anchors(AnchorCommand::Add {
                anchor: anchor.clone(),
            }),
            meta(1),
        )
        .unwrap();
    let changes = ledger.take_changes();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        changes[0],
        change::<Anchors>(Key::Anchor(7), Some(Value::Anchor(anchor)))
    );
    assert_eq!(changes[1].domain, "audit", "{changes:?}");
    assert!(ledger.take_changes().is_empty());
    ledger
        .ap(
            &Command::Anchors(AnchorCommand::Remove { raft_id: 7 }),
            meta(2),
        )
        .unwrap();
    let changes = ledger.take_changes();
    assert_eq!(changes[0], change::<Anchors>(Key::Anchor(7), None));
    assert_eq!(changes.len(), 2, "the removal and its audit entry");
    assert!(
        ledger
            .ap(
                &Command::Anchors(AnchorCommand::Remove { raft_id: 7 }),
                meta(3)
            )
            .is_err()
    );
    assert!(ledger.take_changes().is_empty(), "a reject changes nothing");
}
