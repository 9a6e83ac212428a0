//! Remembered request results: a write retried after a leader change carries the same
//! request id and gets its first result instead of being applied twice. One record per log
//! entry (an entry carries a batch of writes), forgotten after [`REQUEST_MEMORY_MS`] of log
//! time or beyond [`MAX_REMEMBERED_REQUESTS`], oldest first — by the log's times and indices
//! only, so every replica forgets the same ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use x0t_types::Timestamp;

use crate::domain::{At, Domain};
use crate::{Ledger, Outcome, Reject};

/// How long (in the leader's time) the ledger remembers a request's result. A node retries a
/// write for at most a few seconds after a leader change; the margin covers clock skew
/// between successive leaders.
pub const REQUEST_MEMORY_MS: u64 = 30_000;

/// The most request results remembered at once, whatever their age: bounds memory and
/// snapshot size. At this many, the oldest is forgotten first; even at 10,000 writes/s that
/// still covers 6.5 s of retries.
pub const MAX_REMEMBERED_REQUESTS: usize = 65_536;

/// The remembered result of one request, for answering its retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request id.
    pub request_id: u128,
    /// Its position within its entry.
    pub position: u32,
    /// What applying it returned, without mesh settings: a retry carries the same command,
    /// whose settings are put back when the result is replayed (keeps records small).
    pub result: Result<Outcome, Reject>,
}

/// The requests of one log entry, remembered (and stored) together: an entry carries a batch
/// of writes, and one record per entry keeps the storage cost per batch, not per write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestGroup {
    /// The log index of the entry.
    pub index: u64,
    /// The leader's time stamped on the entry (ages the group out).
    pub applied_at: Timestamp,
    /// Its requests, in position order.
    pub requests: Vec<RequestRecord>,
}

/// The remembered requests' part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    /// Remembered request results by log index, oldest first.
    groups: BTreeMap<u64, RequestGroup>,
    /// Derived from `groups`: the index of the group remembering each request.
    index: BTreeMap<u128, u64>,
    changed: BTreeSet<Key>,
}

/// A request group's key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Key {
    /// The group of one log entry, by its index.
    Entry(u64),
}

/// A request group, as stored. Variants are appended, never reordered; an older one is
/// upgraded when it is loaded (and written in the newest form when it next changes).
#[derive(Serialize, Deserialize)]
pub(crate) enum Value {
    /// The group of one log entry, as storage format 4 wrote it (one flat outcome and
    /// refusal enum of every domain).
    Group(crate::core::format4::RequestGroup),
    /// The group of one log entry (storage format 5: each domain's own outcomes).
    GroupV5(RequestGroup),
}

impl Domain for Requests {
    const NAME: &'static str = "requests";
    type Key = Key;
    type Value = Value;

    fn key_of(value: &Value) -> Key {
        match value {
            Value::Group(group) => Key::Entry(group.index),
            Value::GroupV5(group) => Key::Entry(group.index),
        }
    }

    fn get(&self, key: &Key) -> Option<Value> {
        match key {
            Key::Entry(index) => self.groups.get(index).cloned().map(Value::GroupV5),
        }
    }

    fn values(&self) -> Vec<Value> {
        self.groups.values().cloned().map(Value::GroupV5).collect()
    }

    fn load(&mut self, value: Value) {
        let group = match value {
            Value::Group(old) => old.upgrade(),
            Value::GroupV5(group) => group,
        };
        for request in &group.requests {
            self.index.insert(request.request_id, group.index);
        }
        self.groups.insert(group.index, group);
    }

    fn changes(&self) -> &BTreeSet<Key> {
        &self.changed
    }

    fn changes_mut(&mut self) -> &mut BTreeSet<Key> {
        &mut self.changed
    }
}

impl Requests {
    /// The remembered (settings-less) result of `request_id`, if any.
    pub(crate) fn remembered(&self, request_id: u128) -> Option<&Result<Outcome, Reject>> {
        let index = self.index.get(&request_id)?;
        self.groups
            .get(index)?
            .requests
            .iter()
            .find(|r| r.request_id == request_id)
            .map(|r| &r.result)
    }

    /// Whether the result of `request_id` is remembered.
    #[cfg(test)]
    pub(crate) fn remembers(&self, request_id: u128) -> bool {
        self.index.contains_key(&request_id)
    }

    /// Remembers `result` for `request_id` in the group of its entry, then forgets what is
    /// too old or too many.
    pub(crate) fn remember(&mut self, request_id: u128, at: At, result: Result<Outcome, Reject>) {
        let group = self.groups.entry(at.index).or_insert_with(|| RequestGroup {
            index: at.index,
            applied_at: at.timestamp,
            requests: Vec::new(),
        });
        group.requests.push(RequestRecord {
            request_id,
            position: at.position,
            result,
        });
        self.index.insert(request_id, at.index);
        self.changed.insert(Key::Entry(at.index));
        self.forget_old(at.timestamp);
    }

    /// Forgets groups older than [`REQUEST_MEMORY_MS`] and, beyond
    /// [`MAX_REMEMBERED_REQUESTS`], the oldest ones.
    fn forget_old(&mut self, now: Timestamp) {
        while let Some((&index, oldest)) = self.groups.first_key_value() {
            let expired = oldest.applied_at.0.saturating_add(REQUEST_MEMORY_MS) < now.0;
            if !expired && self.index.len() <= MAX_REMEMBERED_REQUESTS {
                break;
            }
            if let Some((_, group)) = self.groups.pop_first() {
                for request in &group.requests {
                    self.index.remove(&request.request_id);
                }
            }
            self.changed.insert(Key::Entry(index));
        }
    }
}

impl Ledger {
    /// How many request results are remembered.
    pub fn remembered_requests(&self) -> usize {
        self.requests.index.len()
    }
}

#[cfg(test)]
mod tests;
