//! The control plane of one node: its openraft instance, the inbound control protocol, and
//! the write/read paths the API uses (writes forwarded to the leader, linearizable reads).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use libp2p::PeerId;
use openraft::{ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot};
use x0t_consensus::{AnchorNode, LogId, LogStore, Raft, SledStorage, StateMachineStore};
use x0t_crypto::SigningKey;
use x0t_ledger::ProposedCommand;
use x0t_ledger::{Ledger, Outcome, Reject};

use crate::p2p::{P2p, P2pError};
use crate::raft_network::NetworkFactory;

mod inbound;
mod membership;
mod writes;

/// How long a client write or read barrier waits for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// Inbound control requests handled at once.
const MAX_INBOUND_IN_FLIGHT: usize = 256;
/// Most commands proposed together in one log entry.
pub const MAX_BATCH_COMMANDS: usize = 256;
/// Most encoded command bytes in one log entry. With [`MAX_ENTRIES_PER_APPEND`] this keeps
/// every AppendEntries request well under the control protocol's 16 MiB frame limit.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Most entries openraft sends in one AppendEntries request.
const MAX_ENTRIES_PER_APPEND: u64 = 32;
/// Batches of writes this node has proposed (or forwarded) and not yet seen committed. While
/// one is in flight, new writes queue up and leave together in the next batch: measured on
/// 3 anchors with 64 clients, 1 gives the largest batches and the most writes/s (2 and 4 cost
/// 30–50 % more CPU per write; docs/benchmarks.md), and a lone write still leaves at once.
const MAX_BATCHES_IN_FLIGHT: usize = 1;
/// While writers are concurrent, a batch waits this long per write of the previous batch
/// for more writes to join, up to [`MAX_BATCH_LINGER`] (see [`linger_after`]).
const BATCH_LINGER_PER_WRITE: Duration = Duration::from_micros(100);
/// The longest a batch waits for more writes.
const MAX_BATCH_LINGER: Duration = Duration::from_millis(2);
/// Writes queued for the next batch; beyond this, writers wait (back-pressure).
const MAX_QUEUED_WRITES: usize = 4096;

/// One try of an operation that must run on the leader.
enum Attempt<T> {
    /// Finished, successfully or not: stop.
    Done(Result<T, ControlError>),
    /// Worth retrying (no leader yet, leadership moved); the reason is reported on timeout.
    Retry(String),
}

/// Raft timing and log-compaction settings.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log after a snapshot (slow followers catch up from the log
    /// instead of a snapshot while within this window).
    pub keep_after_snapshot: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        // Sub-second elections on a LAN or loopback, for the < 2 s failover promise.
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            snapshot_every: 10_000,
            keep_after_snapshot: 1_000,
        }
    }
}

/// Why a control-plane operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ControlError {
    /// No leader could be found in time (election in progress, or no quorum).
    #[error("no leader available (cluster electing or without quorum): {0}")]
    NoLeader(String),
    /// The ledger refused the command.
    #[error(transparent)]
    Rejected(#[from] Reject),
    /// Raft failed.
    #[error("raft: {0}")]
    Raft(String),
    /// The leader could not be reached.
    #[error(transparent)]
    Network(#[from] P2pError),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// A membership change the cluster refuses (unknown anchor, the last voter).
    #[error("{0}")]
    Membership(String),
}

pub use x0t_types::api::ClusterStatus;

/// What queued writes wait for: the log id of the entry that carried them, and what applying
/// each did.
type BatchResult = Result<(LogId, Vec<Result<Outcome, Reject>>), ControlError>;

/// Writes waiting to leave in the next batch, kept together: one local client write, or a
/// batch a follower forwarded to this (leading) node.
struct QueuedWrites {
    commands: Vec<ProposedCommand>,
    /// Their encoded size, counted against [`MAX_BATCH_BYTES`].
    size: usize,
    /// Forwarded by a follower: if this node is not the leader when the batch leaves, the
    /// follower is told to ask the leader itself rather than this node forwarding it again.
    forwarded: bool,
    reply: oneshot::Sender<BatchResult>,
}

/// Enrollment calls waiting at most this many at once; beyond, callers are told to retry.
const MAX_QUEUED_ENROLLMENTS: usize = 256;

/// An enrollment call from a peer, for the service layer to answer.
#[derive(Debug)]
pub struct Enrollment {
    /// The Noise-authenticated peer that sent it.
    pub peer: PeerId,
    /// The call.
    pub request: crate::p2p::protocol::EnrollRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<
        Result<crate::p2p::protocol::EnrollResponse, crate::p2p::protocol::EnrollError>,
    >,
}

/// This node's control plane.
#[derive(Clone)]
pub struct ControlPlane {
    raft: Raft,
    state: StateMachineStore,
    p2p: P2p,
    id: u64,
    node: AnchorNode,
    /// This anchor's ML-DSA identity: signs audit statements and certificates.
    identity: Arc<SigningKey>,
    /// Where enrollment calls from strangers go (the service layer answers them), once set.
    enrollment: Arc<std::sync::OnceLock<mpsc::Sender<Enrollment>>>,
    /// Peers allowed to send Raft RPCs before they appear in our membership (while joining).
    expected_peers: Arc<RwLock<HashSet<PeerId>>>,
    /// Where mesh members' requests go (the anchors' side of the mesh), once it serves.
    mesh: Arc<std::sync::OnceLock<Arc<dyn MeshRequests>>>,
    /// The batcher's queue. `None` only in the batcher's own handle, so that the queue closes
    /// (and the batcher ends) when the last outside handle is dropped.
    writes: Option<mpsc::Sender<QueuedWrites>>,
}

/// The anchors' side of the mesh as the control plane sees it: it routes mesh members'
/// requests there (members authenticate with their certificate, not Raft membership), and
/// stops it at shutdown. Implemented by `anchor_mesh::AnchorMesh`, which reads the ledger
/// through the control plane — so the control plane does not depend on it.
pub trait MeshRequests: Send + Sync + 'static {
    /// The answer to one request of a mesh member.
    fn answer(
        &self,
        control: &ControlPlane,
        peer: PeerId,
        remote: Option<&libp2p::Multiaddr>,
        request: crate::p2p::protocol::MeshRequest,
    ) -> Result<crate::p2p::protocol::MeshResponse, String>;
    /// A member's connection closed.
    fn forget(&self, peer: &PeerId);
    /// The node is shutting down.
    fn stop(&self);
}

impl ControlPlane {
    /// Sends mesh members' requests to `handler` from now on (once; later calls are ignored).
    pub fn serve_mesh_requests(&self, handler: Arc<dyn MeshRequests>) {
        let _ = self.mesh.set(handler);
    }

    /// Opens the stores in `storage` and starts Raft.
    pub async fn start(
        id: u64,
        node: AnchorNode,
        identity: Arc<SigningKey>,
        storage: &SledStorage,
        p2p: P2p,
        settings: &RaftSettings,
    ) -> Result<Self, ControlError> {
        let storage_error = |e: x0t_consensus::StoreError| ControlError::Storage(e.to_string());
        let log = LogStore::new(storage.tree("raft-log").map_err(storage_error)?)
            .map_err(storage_error)?;
        let state = StateMachineStore::open(
            storage.tree("state").map_err(storage_error)?,
            storage.tree("snapshot").map_err(storage_error)?,
        )
        .map_err(storage_error)?;
        let config = openraft::Config {
            cluster_name: "x0t".to_owned(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_timeout_min_ms,
            election_timeout_max: settings.election_timeout_max_ms,
            install_snapshot_timeout: 5_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.keep_after_snapshot,
            snapshot_max_chunk_size: 1024 * 1024,
            max_payload_entries: MAX_ENTRIES_PER_APPEND,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ControlError::Raft(e.to_string()))?;
        let raft = Raft::new(
            id,
            Arc::new(config),
            NetworkFactory { p2p: p2p.clone() },
            log,
            state.clone(),
        )
        .await
        .map_err(|e| ControlError::Raft(e.to_string()))?;
        let mut this = Self {
            raft,
            state,
            p2p,
            id,
            node,
            identity,
            enrollment: Arc::default(),
            expected_peers: Arc::default(),
            mesh: Arc::default(),
            writes: None,
        };
        let (writes, queue) = mpsc::channel(MAX_QUEUED_WRITES);
        tokio::spawn(this.clone().propose_batches(queue));
        this.writes = Some(writes);
        Ok(this)
    }

    /// This node's Raft id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How this node is reached.
    pub fn node(&self) -> &AnchorNode {
        &self.node
    }

    /// Hands enrollment calls (from any peer) to the caller, which must answer each; until
    /// this is called they are refused. Call once.
    pub fn take_enrollments(&self) -> Option<mpsc::Receiver<Enrollment>> {
        let (sender, receiver) = mpsc::channel(MAX_QUEUED_ENROLLMENTS);
        self.enrollment.set(sender).ok().map(|()| receiver)
    }

    /// This anchor's identity key.
    pub fn identity(&self) -> &SigningKey {
        &self.identity
    }

    /// The libp2p handle.
    pub fn p2p(&self) -> &P2p {
        &self.p2p
    }

    /// The Raft handle (tests, admin operations).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Makes this node the single voter of a new cluster, unless it already belongs to one.
    /// Returns whether it bootstrapped.
    pub async fn bootstrap_if_uninitialized(&self) -> Result<bool, ControlError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        if initialized {
            return Ok(false);
        }
        let members = BTreeMap::from([(self.id, self.node.clone())]);
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        Ok(true)
    }

    /// Allows `peers` to send Raft RPCs before they are in our membership (joining).
    pub fn expect_peers(&self, peers: impl IntoIterator<Item = PeerId>) {
        let mut expected = self
            .expected_peers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        expected.extend(peers);
    }

    /// Read access to the applied state (not linearizable by itself; see [`Self::read_barrier`]).
    pub fn read<R>(&self, f: impl FnOnce(&Ledger) -> R) -> R {
        self.state.read(|state| f(&state.ledger))
    }

    /// The cluster as this node sees it.
    pub fn status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voter_ids: HashSet<u64> = membership.voter_ids().collect();
        let mut voters = BTreeMap::new();
        let mut learners = BTreeMap::new();
        for (id, node) in membership.nodes() {
            if voter_ids.contains(id) {
                voters.insert(*id, node.clone());
            } else {
                learners.insert(*id, node.clone());
            }
        }
        let state = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower if voter_ids.contains(&self.id) => "follower",
            ServerState::Follower => "learner",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        ClusterStatus {
            id: self.id,
            state: state.to_owned(),
            leader: metrics.current_leader,
            term: metrics.current_term,
            voters,
            learners,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|l| l.index),
            snapshot_index: metrics.snapshot.map(|l| l.index),
            purged_index: metrics.purged.map(|l| l.index),
        }
    }

    fn leader(&self) -> Option<(u64, AnchorNode)> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .clone();
        Some((leader, node))
    }

    /// Stops Raft and checkpoints the applied state (so the next start replays nothing).
    pub async fn shutdown(&self) {
        if let Some(members) = self.mesh.get() {
            members.stop();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(%e, "raft shutdown");
        }
        if let Err(e) = self.state.persist() {
            tracing::warn!(%e, "checkpointing the state machine at shutdown");
        }
    }
}

pub(crate) use crate::clock::now;
