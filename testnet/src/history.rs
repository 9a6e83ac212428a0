//! A Jepsen-style workload over the control plane and its checker.
//!
//! Concurrent clients send mesh-settings reads, writes and compare-and-sets, node
//! registrations, approvals and status reads to any anchor's HTTP API, and record every
//! operation with the time it was sent and answered. The history is then split per key (one
//! mesh's settings, one node's lifecycle) and each key's sub-history is checked with
//! stateright's linearizability tester against a sequential model. Splitting is sound because
//! every operation touches one key, and it keeps checking fast: the search is exponential in
//! the operations concurrent on one key, not in the whole history.
//!
//! What an answer means:
//! - a success or a domain refusal (409 version mismatch, 404 no such node…) is a completed
//!   operation with that result;
//! - a connection that could not be opened is an operation that never happened (dropped);
//! - anything else (timeout, 5xx, reset) is an operation of unknown outcome: it stays in
//!   flight forever (it may take effect at any later point or never), and the client goes on
//!   under a new thread id, as Jepsen's clients do. A read of unknown outcome changes nothing
//!   and is dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use x0t_crypto::{Registration, SigAlgorithm, SigningKey};
use x0t_types::{DeviceClass, MeshId, NodeState, Tag, Timestamp, base32};

/// One key of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The settings (description, version) of mesh `chaos-{n}`.
    Settings(usize),
    /// The lifecycle of node `n` (registered in mesh `chaos-0`).
    Node(usize),
}

/// An operation as a client invoked it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read a mesh's settings (linearizable read).
    Read,
    /// Set a mesh's description unconditionally.
    Write(String),
    /// Set a mesh's description if its version is still the one given.
    Cas(u64, String),
    /// Register the node (no token: it waits for approval).
    Register,
    /// Approve the node.
    Approve,
    /// Read the node's state (linearizable read).
    Status,
}

/// What an operation answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// A settings read: version and description.
    Settings(u64, String),
    /// A settings write took effect at this version.
    Written(u64),
    /// A compare-and-set found another version.
    CasFailed,
    /// A node's state (`None`: not registered).
    State(Option<NodeLife>),
    /// The registration was recorded.
    Registered,
    /// The node was already registered.
    Exists,
    /// The approval was recorded.
    Approved,
    /// The node is not pending (already approved).
    NotPending,
    /// No such node.
    NotFound,
}

/// The part of a node's lifecycle this workload drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeLife {
    /// Registered, waiting for approval.
    Pending,
    /// Approved.
    Approved,
}

/// The sequential model of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Model {
    version: u64,
    description: String,
    node: Option<NodeLife>,
}

impl SequentialSpec for Model {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match op {
            Op::Read => Ret::Settings(self.version, self.description.clone()),
            Op::Write(text) => {
                self.version += 1;
                self.description = text.clone();
                Ret::Written(self.version)
            }
            Op::Cas(expected, text) if *expected == self.version => {
                self.version += 1;
                self.description = text.clone();
                Ret::Written(self.version)
            }
            Op::Cas(..) => Ret::CasFailed,
            Op::Register => match self.node {
                None => {
                    self.node = Some(NodeLife::Pending);
                    Ret::Registered
                }
                Some(_) => Ret::Exists,
            },
            Op::Approve => match self.node {
                None => Ret::NotFound,
                Some(NodeLife::Pending) => {
                    self.node = Some(NodeLife::Approved);
                    Ret::Approved
                }
                Some(NodeLife::Approved) => Ret::NotPending,
            },
            Op::Status => Ret::State(self.node),
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok(Ret),
    /// Never reached the anchor (connection refused or not opened in time).
    Dropped,
    /// Unknown: it may or may not have taken effect.
    Unknown(String),
}

/// One recorded operation.
#[derive(Clone, Debug)]
pub struct Record {
    /// The client's thread id (a new one after every unknown outcome).
    pub thread: u64,
    /// The key it touched.
    pub key: Key,
    /// What it asked.
    pub op: Op,
    /// The anchor (1-based index) it was sent to.
    pub anchor: usize,
    /// When it was sent.
    pub invoked: Instant,
    /// When its answer (or failure) arrived.
    pub completed: Instant,
    /// What happened.
    pub outcome: Outcome,
}

impl Record {
    /// Whether the operation can change state.
    pub fn is_write(&self) -> bool {
        !matches!(self.op, Op::Read | Op::Status)
    }

    /// Whether a write took effect for certain (answered with a change).
    pub fn acknowledged_write(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Ok(Ret::Written(_) | Ret::Registered | Ret::Approved)
        )
    }
}

/// The whole run's operations.
#[derive(Debug, Default)]
pub struct History {
    /// Every operation, in the order they completed.
    pub records: Vec<Record>,
}

/// Result of checking a history.
#[derive(Debug)]
pub struct Verdict {
    /// Operations answered.
    pub ok: usize,
    /// Operations of unknown outcome.
    pub unknown: usize,
    /// Operations that never reached an anchor.
    pub dropped: usize,
    /// Keys checked.
    pub keys: usize,
    /// Keys whose history is not linearizable, with the tester's account.
    pub violations: Vec<(Key, String)>,
    /// Time the checker took.
    pub checked_in: Duration,
}

impl History {
    /// Checks every key's sub-history for linearizability, giving each key's search at most
    /// `budget`. The search (stateright's) is quick on a linearizable history but must try
    /// every order before it can say no, so a key it cannot decide in time is reported as a
    /// violation too ("undecided"): either way the run has failed.
    pub fn check(&self, budget: Duration) -> Verdict {
        let started = Instant::now();
        let mut per_key: BTreeMap<Key, Vec<&Record>> = BTreeMap::new();
        for record in &self.records {
            per_key.entry(record.key).or_default().push(record);
        }
        let mut violations = Vec::new();
        for (key, records) in &per_key {
            // Events in real-time order; at equal instants an invocation goes first (the
            // more permissive reading: the two operations overlap).
            let mut events: Vec<(Instant, u8, Record)> = Vec::new();
            for record in records {
                match &record.outcome {
                    Outcome::Dropped => {}
                    Outcome::Unknown(_) if !record.is_write() => {}
                    Outcome::Unknown(_) => events.push((record.invoked, 0, (*record).clone())),
                    Outcome::Ok(_) => {
                        events.push((record.invoked, 0, (*record).clone()));
                        events.push((record.completed, 1, (*record).clone()));
                    }
                }
            }
            events.sort_by_key(|(at, kind, _)| (*at, *kind));
            let key = *key;
            let (done, answer) = std::sync::mpsc::channel();
            // A thread per key, so a search past its budget can be left behind.
            std::thread::spawn(move || {
                let _ = done.send(check_key(key, events));
            });
            match answer.recv_timeout(budget) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => violations.push((key, why)),
                Err(_) => violations.push((
                    key,
                    format!("undecided: no linearization found within {budget:?}"),
                )),
            }
        }
        let count = |f: fn(&Outcome) -> bool| self.records.iter().filter(|r| f(&r.outcome)).count();
        Verdict {
            ok: count(|o| matches!(o, Outcome::Ok(_))),
            unknown: count(|o| matches!(o, Outcome::Unknown(_))),
            dropped: count(|o| matches!(o, Outcome::Dropped)),
            keys: per_key.len(),
            violations,
            checked_in: started.elapsed(),
        }
    }
}

/// Feeds one key's events to stateright's linearizability tester.
fn check_key(key: Key, events: Vec<(Instant, u8, Record)>) -> Result<(), String> {
    let mut tester = LinearizabilityTester::new(initial_model(key));
    for (_, kind, record) in events {
        let result = if kind == 0 {
            tester.on_invoke(record.thread, record.op.clone())
        } else if let Outcome::Ok(ret) = &record.outcome {
            tester.on_return(record.thread, ret.clone())
        } else {
            Ok(&mut tester)
        };
        if let Err(e) = result {
            return Err(format!("history rejected by the tester: {e}"));
        }
    }
    if tester.is_consistent() {
        Ok(())
    } else {
        Err(format!("not linearizable: {tester:?}"))
    }
}

/// Every key starts from here: meshes are created before the run (version 1, empty
/// description), nodes are not registered.
fn initial_model(key: Key) -> Model {
    match key {
        Key::Settings(_) => Model {
            version: 1,
            ..Model::default()
        },
        Key::Node(_) => Model::default(),
    }
}

/// The mesh holding key `Settings(n)`.
pub fn mesh_name(n: usize) -> String {
    format!("chaos-{n}")
}

/// Where the clients send their operations: (anchor index, API base URL) of each anchor
/// currently in the cluster. The fault injector updates it when anchors join or leave.
pub type Targets = Arc<RwLock<Vec<(usize, String)>>>;

/// Workload sizes.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent clients.
    pub clients: usize,
    /// Meshes whose settings are read and written.
    pub meshes: usize,
    /// Nodes registered and approved.
    pub nodes: usize,
    /// Per-operation timeout (an operation past it has an unknown outcome).
    pub op_timeout: Duration,
    /// Pause between a client's operations.
    pub think: Duration,
    /// Most operations per client (the run also ends when told to stop).
    pub max_ops_per_client: usize,
    /// Read with `?stale=true` (from the anchor's local state, no read barrier): not
    /// linearizable by design, so a run with it shows the checker catching stale reads.
    pub stale_reads: bool,
}

/// The prepared workload: admin key, node registrations, the shared history.
pub struct Workload {
    config: WorkloadConfig,
    admin_key: String,
    registrations: Vec<(String, String)>,
    /// The recorded history.
    pub history: Arc<Mutex<History>>,
}

impl Workload {
    /// Creates the meshes through `admin_url` and signs a registration for every node.
    pub async fn prepare(
        config: WorkloadConfig,
        admin_url: &str,
        admin_key: &str,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        for n in 0..config.meshes.max(1) {
            let response = http
                .post(format!("{admin_url}/api/v1/meshes"))
                .bearer_auth(admin_key)
                .json(&json!({ "name": mesh_name(n), "description": "" }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "creating mesh {}: {} {}",
                mesh_name(n),
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let mut registrations = Vec::new();
        let now = Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64,
        );
        for n in 0..config.nodes {
            let key = SigningKey::generate(SigAlgorithm::MlDsa65)?;
            let signed = Registration {
                mesh: MeshId::new(mesh_name(0))?,
                node_id: key.node_id(),
                identity_key: key.verifying_key().clone(),
                peer_id: libp2p::identity::Keypair::generate_ed25519()
                    .public()
                    .to_peer_id()
                    .to_bytes(),
                hostname: format!("chaos-{n}"),
                device_class: DeviceClass::Robot,
                requested_tags: vec![Tag::new("robot")?],
                requested_at: now,
            }
            .sign(&key)?;
            registrations.push((key.node_id().to_string(), base32::encode(&signed.encode())));
        }
        Ok(Self {
            config,
            admin_key: admin_key.to_owned(),
            registrations,
            history: Arc::new(Mutex::new(History::default())),
        })
    }

    /// Runs the clients against `targets` until `stop` turns true or every client has done
    /// its operations.
    pub async fn run(
        &self,
        targets: Targets,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(self.config.op_timeout)
            .connect_timeout(self.config.op_timeout)
            .pool_max_idle_per_host(0)
            .build()?;
        let mut tasks = Vec::new();
        for client in 0..self.config.clients {
            let client = Client {
                id: client as u64,
                http: http.clone(),
                admin_key: self.admin_key.clone(),
                registrations: self.registrations.clone(),
                config: self.config.clone(),
                history: self.history.clone(),
                targets: targets.clone(),
                rng: 0x9e37_79b9_7f4a_7c15
                    ^ (client as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d),
            };
            tasks.push(tokio::spawn(client.run(stop.clone())));
        }
        for task in tasks {
            task.await.context("a client panicked")?;
        }
        Ok(())
    }

    /// One final linearizable read of every key through `url`, recorded in the history
    /// (it makes an acknowledged write that was lost visible to the checker).
    pub async fn final_reads(&self, anchor: usize, url: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let client = Client {
            id: 1_000_000,
            http,
            admin_key: self.admin_key.clone(),
            registrations: self.registrations.clone(),
            config: WorkloadConfig {
                stale_reads: false,
                ..self.config.clone()
            },
            history: self.history.clone(),
            targets: Arc::new(RwLock::new(vec![(anchor, url.to_owned())])),
            rng: 1,
        };
        let keys: Vec<Key> = (0..self.config.meshes)
            .map(Key::Settings)
            .chain((0..self.config.nodes).map(Key::Node))
            .collect();
        for (n, key) in keys.into_iter().enumerate() {
            let op = match key {
                Key::Settings(_) => Op::Read,
                Key::Node(_) => Op::Status,
            };
            let record = client
                .perform((client.id << 20) + n as u64, key, op, anchor, url)
                .await;
            anyhow::ensure!(
                matches!(record.outcome, Outcome::Ok(_)),
                "final read of {key:?} failed: {:?}",
                record.outcome
            );
        }
        Ok(())
    }
}

struct Client {
    id: u64,
    http: reqwest::Client,
    admin_key: String,
    registrations: Vec<(String, String)>,
    config: WorkloadConfig,
    history: Arc<Mutex<History>>,
    targets: Targets,
    rng: u64,
}

impl Client {
    fn next(&mut self) -> u64 {
        // xorshift64: deterministic per client, no dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    async fn run(mut self, stop: tokio::sync::watch::Receiver<bool>) {
        // Thread ids: client id in the high bits, a counter bumped after every unknown
        // outcome in the low bits.
        let mut thread = self.id << 20;
        let mut last_version: BTreeMap<usize, u64> = BTreeMap::new();
        for seq in 0..self.config.max_ops_per_client {
            if *stop.borrow() {
                break;
            }
            let targets = self
                .targets
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if targets.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let (anchor, url) = targets[(self.next() % targets.len() as u64) as usize].clone();
            let settings =
                self.config.meshes > 0 && (self.config.nodes == 0 || self.next().is_multiple_of(2));
            let (key, op) = if settings {
                let n = (self.next() % self.config.meshes as u64) as usize;
                let text = format!("c{}-{seq}", self.id);
                let op = match self.next() % 3 {
                    0 => Op::Read,
                    1 => Op::Write(text),
                    _ => Op::Cas(*last_version.get(&n).unwrap_or(&1), text),
                };
                (Key::Settings(n), op)
            } else {
                let n = (self.next() % self.config.nodes as u64) as usize;
                let op = match self.next() % 3 {
                    0 => Op::Register,
                    1 => Op::Approve,
                    _ => Op::Status,
                };
                (Key::Node(n), op)
            };
            let record = self.perform(thread, key, op, anchor, &url).await;
            match &record.outcome {
                Outcome::Ok(Ret::Settings(v, _) | Ret::Written(v)) => {
                    if let Key::Settings(n) = key {
                        last_version.insert(n, *v);
                    }
                }
                Outcome::Unknown(_) if record.is_write() => {
                    thread += 1;
                    // Back off a little: the anchor answered badly or not at all.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Outcome::Unknown(_) | Outcome::Dropped => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Outcome::Ok(_) => {}
            }
            if !self.config.think.is_zero() {
                tokio::time::sleep(self.config.think).await;
            }
        }
    }

    /// Sends one operation to `url` and records it under `thread`.
    async fn perform(&self, thread: u64, key: Key, op: Op, anchor: usize, url: &str) -> Record {
        let invoked = Instant::now();
        let outcome = self.send(key, &op, url).await;
        let record = Record {
            thread,
            key,
            op,
            anchor,
            invoked,
            completed: Instant::now(),
            outcome,
        };
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .push(record.clone());
        record
    }

    async fn send(&self, key: Key, op: &Op, url: &str) -> Outcome {
        let (method, path, body) = match (key, op) {
            (Key::Settings(n), Op::Read) => (
                reqwest::Method::GET,
                format!(
                    "/api/v1/meshes/{}?stale={}",
                    mesh_name(n),
                    self.config.stale_reads
                ),
                None,
            ),
            (Key::Settings(n), Op::Write(text)) => (
                reqwest::Method::PUT,
                format!("/api/v1/meshes/{}/settings", mesh_name(n)),
                Some(json!({ "description": text })),
            ),
            (Key::Settings(n), Op::Cas(version, text)) => (
                reqwest::Method::PUT,
                format!("/api/v1/meshes/{}/settings", mesh_name(n)),
                Some(json!({ "description": text, "expected_version": version })),
            ),
            (Key::Node(n), Op::Register) => (
                reqwest::Method::POST,
                format!("/api/v1/meshes/{}/nodes/register", mesh_name(0)),
                Some(json!({ "registration": self.registrations[n].1 })),
            ),
            (Key::Node(n), Op::Approve) => (
                reqwest::Method::POST,
                format!(
                    "/api/v1/meshes/{}/nodes/{}/approve",
                    mesh_name(0),
                    self.registrations[n].0
                ),
                Some(json!({})),
            ),
            (Key::Node(n), Op::Status) => (
                reqwest::Method::GET,
                format!(
                    "/api/v1/meshes/{}/nodes/{}/status?stale={}",
                    mesh_name(0),
                    self.registrations[n].0,
                    self.config.stale_reads
                ),
                None,
            ),
            (key, op) => return Outcome::Unknown(format!("{op:?} does not apply to {key:?}")),
        };
        let mut request = self
            .http
            .request(method, format!("{url}{path}"))
            .bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() => return Outcome::Dropped,
            Err(e) => return Outcome::Unknown(e.to_string()),
        };
        let status = response.status().as_u16();
        let body: serde_json::Value = match response.json().await {
            Ok(body) => body,
            Err(e) => return Outcome::Unknown(format!("{status}: unreadable answer: {e}")),
        };
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let ret = match (op, status, code) {
            (Op::Read, 200, _) => Ret::Settings(
                body["version"].as_u64().unwrap_or_default(),
                body["description"].as_str().unwrap_or_default().to_owned(),
            ),
            (Op::Write(_) | Op::Cas(..), 200, _) => {
                Ret::Written(body["version"].as_u64().unwrap_or_default())
            }
            (Op::Cas(..), 409, "version_mismatch") => Ret::CasFailed,
            (Op::Register, 200 | 201, _) => Ret::Registered,
            (Op::Register, 409, "node_exists") => Ret::Exists,
            (Op::Approve, 200, _) => Ret::Approved,
            (Op::Approve, 409, "invalid_state") => Ret::NotPending,
            (Op::Approve, 404, "no_such_node") => Ret::NotFound,
            (Op::Status, 200, _) => {
                let state: Option<NodeState> = serde_json::from_value(body["state"].clone()).ok();
                match state {
                    Some(NodeState::PendingApproval) => Ret::State(Some(NodeLife::Pending)),
                    Some(NodeState::Approved) => Ret::State(Some(NodeLife::Approved)),
                    other => return Outcome::Unknown(format!("unexpected node state {other:?}")),
                }
            }
            (Op::Status, 404, "no_such_node") => Ret::State(None),
            _ => return Outcome::Unknown(format!("{status} {code}: {body}")),
        };
        Outcome::Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(thread: u64, key: Key, op: Op, at: (u64, u64), outcome: Outcome) -> Record {
        let base = Instant::now();
        Record {
            thread,
            key,
            op,
            anchor: 1,
            invoked: base + Duration::from_millis(at.0),
            completed: base + Duration::from_millis(at.1),
            outcome,
        }
    }

    #[test]
    fn the_checker_accepts_a_linearizable_history_and_catches_a_lost_write() {
        let key = Key::Settings(0);
        let mut history = History::default();
        history.records.push(record(
            1,
            key,
            Op::Write("a".into()),
            (0, 10),
            Outcome::Ok(Ret::Written(2)),
        ));
        // A read overlapping nothing, after the write: must see it.
        history.records.push(record(
            2,
            key,
            Op::Read,
            (20, 30),
            Outcome::Ok(Ret::Settings(2, "a".into())),
        ));
        // An unknown write may or may not happen: both later reads are fine.
        history.records.push(record(
            3,
            key,
            Op::Write("b".into()),
            (40, 50),
            Outcome::Unknown("timeout".into()),
        ));
        history.records.push(record(
            4,
            key,
            Op::Read,
            (60, 70),
            Outcome::Ok(Ret::Settings(2, "a".into())),
        ));
        let verdict = history.check(Duration::from_secs(10));
        assert!(verdict.violations.is_empty(), "{verdict:?}");
        assert_eq!((verdict.ok, verdict.unknown), (3, 1));

        // The acknowledged write vanishes from a later read: not linearizable.
        history.records.push(record(
            5,
            key,
            Op::Read,
            (80, 90),
            Outcome::Ok(Ret::Settings(1, String::new())),
        ));
        let verdict = history.check(Duration::from_secs(10));
        assert_eq!(verdict.violations.len(), 1, "{verdict:?}");
    }

    #[test]
    fn node_lifecycles_are_checked_per_key() {
        let mut history = History::default();
        history.records.push(record(
            1,
            Key::Node(0),
            Op::Register,
            (0, 10),
            Outcome::Ok(Ret::Registered),
        ));
        history.records.push(record(
            2,
            Key::Node(1),
            Op::Approve,
            (0, 10),
            Outcome::Ok(Ret::NotFound),
        ));
        history.records.push(record(
            1,
            Key::Node(0),
            Op::Approve,
            (20, 30),
            Outcome::Ok(Ret::Approved),
        ));
        history.records.push(record(
            2,
            Key::Node(0),
            Op::Status,
            (40, 50),
            Outcome::Ok(Ret::State(Some(NodeLife::Approved))),
        ));
        assert!(history.check(Duration::from_secs(10)).violations.is_empty());
        // Approved twice: the second must have found it approved.
        history.records.push(record(
            3,
            Key::Node(0),
            Op::Approve,
            (60, 70),
            Outcome::Ok(Ret::Approved),
        ));
        assert_eq!(history.check(Duration::from_secs(10)).violations.len(), 1);
    }
}
