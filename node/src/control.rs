//! The control plane of one node: its openraft instance, the inbound control protocol, and
//! the write/read paths the API uses (writes forwarded to the leader, linearizable reads).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState, SnapshotPolicy};
use tokio::sync::{Semaphore, mpsc, oneshot};
use x0t_consensus::{AnchorNode, LogId, LogStore, Raft, Response, SledStorage, StateMachineStore};
use x0t_crypto::{AuditStatement, SignedAuditStatement, SigningKey};
use x0t_ledger::{Ledger, Outcome, Reject};
use x0t_types::{Actor, AnchorRecord, Command, Proposal, ProposedCommand};

use crate::p2p::protocol::{ControlRequest, ControlResponse, ForwardedWriteError};
use crate::p2p::{InboundRequest, P2p, P2pError};
use crate::raft_network::{NetworkFactory, peer_of};
use crate::token::{SecretToken, TokenKind};

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

    /// Proposes `command`; on a follower, forwards it to the leader. Waits (up to a few
    /// seconds) for a leader during an election instead of failing at once. Concurrent writes
    /// leave together as one log entry (see [`Self::propose_batches`]).
    pub async fn write(&self, command: Command) -> Result<(LogId, Outcome), ControlError> {
        let actor = Actor::Anchor {
            node_id: self.identity.node_id(),
        };
        self.write_as(actor, command).await
    }

    /// Like [`Self::write`], on behalf of `actor`: this anchor signs a statement that `actor`
    /// asked for exactly this command, which the audit chain records.
    pub async fn write_as(
        &self,
        actor: Actor,
        command: Command,
    ) -> Result<(LogId, Outcome), ControlError> {
        // One id for every attempt of this write: the ledger applies it once.
        let mut id = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        let statement = self.statement(actor, &command)?;
        let command = ProposedCommand {
            command,
            request_id: Some(u128::from_be_bytes(id)),
            statement,
        };
        let size = encoded_size(&command)?;
        let (log_id, mut results) = self.enqueue(vec![command], size, false).await?;
        let result = results
            .pop()
            .ok_or_else(|| ControlError::Raft("the log answered no result for the write".into()))?;
        Ok((log_id, result?))
    }

    /// The signed statement that `actor` asked for `command` (empty for a registration,
    /// which the node signed itself).
    fn statement(&self, actor: Actor, command: &Command) -> Result<Vec<u8>, ControlError> {
        if matches!(command, Command::RegisterNode { .. }) {
            return Ok(Vec::new());
        }
        let statement = AuditStatement {
            mesh: x0t_ledger::command_scope(command),
            actor,
            action: command.action().to_owned(),
            command_digest: x0t_crypto::command_digest(&x0t_ledger::command_bytes(command)),
            requested_at: now(),
            issuer: self.identity.node_id(),
        };
        SignedAuditStatement::sign(statement, &self.identity)
            .map(|signed| signed.encode())
            .map_err(|e| ControlError::Raft(format!("signing the audit statement: {e}")))
    }

    /// Queues `commands` (`size` encoded bytes) for the batcher, kept together in one entry,
    /// and waits for them to be committed and applied.
    async fn enqueue(
        &self,
        commands: Vec<ProposedCommand>,
        size: usize,
        forwarded: bool,
    ) -> BatchResult {
        let writes = self
            .writes
            .as_ref()
            .ok_or_else(|| ControlError::Raft("the batcher cannot queue to itself".into()))?;
        let (reply, done) = oneshot::channel();
        writes
            .send(QueuedWrites {
                commands,
                size,
                forwarded,
                reply,
            })
            .await
            .map_err(|_| ControlError::Raft("the control plane is shutting down".into()))?;
        done.await
            .map_err(|_| ControlError::Raft("the write's batch ended without an answer".into()))?
    }

    /// The batcher: takes everything queued since the last batch left (up to
    /// [`MAX_BATCH_COMMANDS`] / [`MAX_BATCH_BYTES`]) — this node's client writes and, on the
    /// leader, the batches followers forwarded — and proposes it as one entry, with at most
    /// [`MAX_BATCHES_IN_FLIGHT`] batches outstanding. A lone write leaves at once; under load,
    /// writes share one log append, one fsync and one replication round.
    async fn propose_batches(self, mut queue: mpsc::Receiver<QueuedWrites>) {
        let permits = Arc::new(Semaphore::new(MAX_BATCHES_IN_FLIGHT));
        let mut carried: Option<QueuedWrites> = None;
        let mut last_batch = 0usize;
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let first = match carried.take() {
                Some(writes) => writes,
                None => match queue.recv().await {
                    Some(writes) => writes,
                    None => return,
                },
            };
            if let Some(linger) = linger_after(last_batch) {
                tokio::time::sleep(linger).await;
            }
            let (mut count, mut bytes) = (first.commands.len(), first.size);
            let mut batch = vec![first];
            while let Ok(next) = queue.try_recv() {
                if count + next.commands.len() > MAX_BATCH_COMMANDS
                    || bytes + next.size > MAX_BATCH_BYTES
                {
                    carried = Some(next);
                    break;
                }
                count += next.commands.len();
                bytes += next.size;
                batch.push(next);
            }
            last_batch = count;
            let this = self.clone();
            tokio::spawn(async move {
                this.propose_queued(batch).await;
                drop(permit);
            });
        }
    }

    /// Proposes one batch of queued writes and answers each.
    async fn propose_queued(&self, mut batch: Vec<QueuedWrites>) {
        if !matches!(self.leader(), Some((leader, _)) if leader == self.id) {
            // Forwarded to a node that no longer leads: the follower asks the leader itself
            // (forwarding again could bounce a batch between nodes that disagree for a moment).
            for writes in batch.extract_if(.., |w| w.forwarded) {
                let _ = writes.reply.send(Err(ControlError::NoLeader(
                    "this node is not the leader".into(),
                )));
            }
        }
        if batch.is_empty() {
            return;
        }
        let counts: Vec<usize> = batch.iter().map(|w| w.commands.len()).collect();
        let commands: Vec<ProposedCommand> = batch
            .iter_mut()
            .flat_map(|w| std::mem::take(&mut w.commands))
            .collect();
        match self.propose(commands).await {
            Ok((log_id, results)) => {
                // propose checked there is one result per command.
                let mut results = results.into_iter();
                for (writes, count) in batch.into_iter().zip(counts) {
                    let theirs = results.by_ref().take(count).collect();
                    let _ = writes.reply.send(Ok((log_id, theirs)));
                }
            }
            Err(error) => {
                for writes in batch {
                    let _ = writes.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Proposes `commands` as one entry, through the leader.
    async fn propose(&self, commands: Vec<ProposedCommand>) -> BatchResult {
        let count = commands.len();
        self.via_leader(
            || async {
                match self.write_local(commands.clone()).await {
                    Ok((log_id, Response::Commands(results))) if results.len() == count => {
                        Attempt::Done(Ok((log_id, results)))
                    }
                    Ok((_, other)) => Attempt::Done(Err(ControlError::Raft(format!(
                        "{count} commands were proposed, the log answered {other:?}"
                    )))),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                        Attempt::Retry(format!("leadership moved to {:?}", f.leader_id))
                    }
                    Err(e) => Attempt::Done(Err(ControlError::Raft(e.to_string()))),
                }
            },
            |leader, answer| match answer {
                ControlResponse::ClientWrite(Ok((log_id, results))) if results.len() == count => {
                    Attempt::Done(Ok((log_id, results)))
                }
                ControlResponse::ClientWrite(Err(ForwardedWriteError::NotLeader)) => {
                    Attempt::Retry(format!("{leader} is no longer leader"))
                }
                ControlResponse::ClientWrite(Err(ForwardedWriteError::Failed(why))) => {
                    Attempt::Done(Err(ControlError::Raft(format!("leader {leader}: {why}"))))
                }
                other => Attempt::Retry(format!("leader {leader} answered {other:?}")),
            },
            || ControlRequest::ClientWrite {
                commands: commands.clone(),
            },
        )
        .await
    }

    /// The retry loop shared by writes and read barriers: do it locally when this node leads,
    /// else send `request()` to the leader and judge its `answer`; on a retryable failure
    /// (no leader yet, leadership moved, leader unreachable) wait briefly and try again, up
    /// to [`LEADER_WAIT`].
    async fn via_leader<T, L>(
        &self,
        local: impl Fn() -> L,
        answer: impl Fn(u64, ControlResponse) -> Attempt<T>,
        request: impl Fn() -> ControlRequest,
    ) -> Result<T, ControlError>
    where
        L: std::future::Future<Output = Attempt<T>>,
    {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let attempt = match self.leader() {
                Some((leader, _)) if leader == self.id => local().await,
                Some((leader, node)) => {
                    let (peer, addrs) = peer_of(&node).map_err(ControlError::Raft)?;
                    let sent = self.p2p.request(peer, addrs, request());
                    match self.unless_leader_changes(leader, sent).await {
                        None => continue,
                        Some(Ok(response)) => answer(leader, response),
                        Some(Err(e)) => Attempt::Retry(format!("leader {leader} unreachable: {e}")),
                    }
                }
                None => Attempt::Retry("no leader known".to_owned()),
            };
            match attempt {
                Attempt::Done(result) => return result,
                Attempt::Retry(reason) if Instant::now() >= deadline => {
                    return Err(ControlError::NoLeader(reason));
                }
                Attempt::Retry(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Runs `request` (sent to `leader`) unless this node learns of another leader first:
    /// a request to a leader that died without closing its connections would otherwise hang
    /// until the transport times out, long after a new leader was elected.
    async fn unless_leader_changes<T>(
        &self,
        leader: u64,
        request: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let mut metrics = self.raft.metrics();
        tokio::select! {
            answer = request => Some(answer),
            _ = metrics.wait_for(|m| m.current_leader != Some(leader)) => {
                tracing::debug!(old_leader = leader, "leader changed while waiting for it; retrying");
                None
            }
        }
    }

    async fn write_local(
        &self,
        commands: Vec<ProposedCommand>,
    ) -> Result<(LogId, Response), RaftError<u64, ClientWriteError<u64, AnchorNode>>> {
        let proposal = Proposal {
            proposed_at: now(),
            commands,
        };
        let written = self.raft.client_write(proposal).await?;
        Ok((written.log_id, written.data))
    }

    /// Waits until this node has applied the log up to `index` (after a write that a
    /// leader elsewhere committed, before reading its effect locally).
    pub async fn wait_applied(&self, index: u64) -> Result<(), ControlError> {
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(index), "local apply")
            .await
            .map(|_| ())
            .map_err(|e| ControlError::Raft(format!("catching up after a write: {e}")))
    }

    /// Makes the next local read linearizable: confirms leadership (read index) with a quorum,
    /// via the leader when this node is a follower, and waits until this node has applied up
    /// to that index.
    pub async fn read_barrier(&self) -> Result<(), ControlError> {
        let read_index = self
            .via_leader(
                || async {
                    match self.raft.ensure_linearizable().await {
                        // The leader's ensure_linearizable already waited for its own apply.
                        Ok(_) => Attempt::Done(Ok(None)),
                        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                            Attempt::Retry("leadership moved".to_owned())
                        }
                        Err(e) => Attempt::Retry(e.to_string()),
                    }
                },
                |leader, answer| match answer {
                    ControlResponse::ReadIndex(Ok(read_index)) => Attempt::Done(Ok(read_index)),
                    other => Attempt::Retry(format!("leader {leader} answered {other:?}")),
                },
                || ControlRequest::ReadIndex,
            )
            .await?;
        let Some(read_index) = read_index else {
            return Ok(());
        };
        self.raft
            .wait(Some(LEADER_WAIT))
            .applied_index_at_least(Some(read_index.index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| ControlError::Raft(format!("catching up for a read: {e}")))
    }

    /// Adds a node as a learner, waits until it has caught up, then promotes it to voter.
    /// On a follower, asks the leader to do it.
    pub async fn add_anchor(&self, id: u64, node: AnchorNode) -> Result<(), ControlError> {
        match self.leader() {
            Some((leader, _)) if leader == self.id => self.add_anchor_local(id, node).await,
            Some((leader, leader_node)) => {
                let (peer, addrs) = peer_of(&leader_node).map_err(ControlError::Raft)?;
                match self
                    .p2p
                    .request(peer, addrs, ControlRequest::AddAnchor { id, node })
                    .await?
                {
                    ControlResponse::AddAnchor(result) => result.map_err(ControlError::Raft),
                    other => Err(ControlError::Raft(format!(
                        "leader {leader} answered {other:?}"
                    ))),
                }
            }
            None => Err(ControlError::NoLeader("no leader known".to_owned())),
        }
    }

    async fn add_anchor_local(&self, id: u64, node: AnchorNode) -> Result<(), ControlError> {
        let raft_error = |e: RaftError<u64, ClientWriteError<u64, AnchorNode>>| {
            ControlError::Raft(e.to_string())
        };
        self.raft
            .add_learner(id, node, true)
            .await
            .map_err(raft_error)?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds([id].into()), false)
            .await
            .map_err(raft_error)?;
        Ok(())
    }

    /// Removes anchor `id` from the Raft membership (it is not kept as a learner). On a
    /// follower, asks the leader to do it. The removed anchor's process should then be
    /// stopped: it no longer receives the log.
    pub async fn remove_anchor(&self, id: u64) -> Result<(), ControlError> {
        match self.leader() {
            Some((leader, _)) if leader == self.id => self.remove_anchor_local(id).await,
            Some((leader, leader_node)) => {
                let (peer, addrs) = peer_of(&leader_node).map_err(ControlError::Raft)?;
                match self
                    .p2p
                    .request(peer, addrs, ControlRequest::RemoveAnchor { id })
                    .await?
                {
                    ControlResponse::RemoveAnchor(result) => {
                        result.map_err(ControlError::Membership)
                    }
                    other => Err(ControlError::Raft(format!(
                        "leader {leader} answered {other:?}"
                    ))),
                }
            }
            None => Err(ControlError::NoLeader("no leader known".to_owned())),
        }
    }

    async fn remove_anchor_local(&self, id: u64) -> Result<(), ControlError> {
        let metrics = self.raft.metrics().borrow().clone();
        let voters: BTreeSet<u64> = metrics.membership_config.membership().voter_ids().collect();
        if !voters.contains(&id) {
            return Err(ControlError::Membership(format!(
                "anchor {id} is not a voter of this cluster (voters: {voters:?})"
            )));
        }
        if voters.len() == 1 {
            return Err(ControlError::Membership(format!(
                "anchor {id} is the last voter; a cluster cannot remove its last anchor"
            )));
        }
        self.raft
            .change_membership(ChangeMembers::RemoveVoters([id].into()), false)
            .await
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        Ok(())
    }

    fn is_member(&self, peer: &PeerId) -> bool {
        let text = peer.to_string();
        let metrics = self.raft.metrics().borrow().clone();
        let in_membership = metrics
            .membership_config
            .membership()
            .nodes()
            .any(|(_, node)| node.peer_id == text);
        in_membership
            || self
                .expected_peers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(peer)
    }

    /// Answers inbound control requests until the stream ends; at most
    /// [`MAX_INBOUND_IN_FLIGHT`] at a time.
    pub fn serve(&self, mut inbound: mpsc::Receiver<InboundRequest>) {
        let this = self.clone();
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(MAX_INBOUND_IN_FLIGHT));
            while let Some(request) = inbound.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let response = this
                        .handle(request.peer, request.remote.as_ref(), request.request)
                        .await;
                    this.p2p.respond(request.channel, response).await;
                    drop(permit);
                });
            }
        });
    }

    async fn handle(
        &self,
        peer: PeerId,
        remote: Option<&libp2p::Multiaddr>,
        request: ControlRequest,
    ) -> ControlResponse {
        let request = match request {
            // Mesh members authenticate with their certificate, not Raft membership.
            ControlRequest::Mesh(request) => {
                return match self.mesh.get() {
                    Some(members) => {
                        ControlResponse::Mesh(members.answer(self, peer, remote, request))
                    }
                    None => ControlResponse::Mesh(Err("not serving mesh members yet".to_owned())),
                };
            }
            // Enrollment: the one request a stranger may make.
            ControlRequest::JoinAnchor { token, anchor } => {
                return ControlResponse::JoinAnchor(self.join_anchor(peer, &token, anchor).await);
            }
            ControlRequest::Enroll(request) => {
                return ControlResponse::Enroll(self.enroll(peer, request).await);
            }
            ControlRequest::AddAnchor { id, node }
                if !self.is_member(&peer) && self.redeemed_for(&peer, id, &node).await =>
            {
                return ControlResponse::AddAnchor(
                    self.add_anchor(id, node).await.map_err(|e| e.to_string()),
                );
            }
            request => request,
        };
        if !self.is_member(&peer) {
            tracing::warn!(%peer, "refusing control request from a peer that is not an anchor");
            return ControlResponse::Refused("not an anchor of this cluster".to_owned());
        }
        match request {
            ControlRequest::JoinAnchor { .. }
            | ControlRequest::Enroll(_)
            | ControlRequest::Mesh(_) => ControlResponse::Refused("already handled".to_owned()),
            ControlRequest::AppendEntries(rpc) => {
                ControlResponse::AppendEntries(self.raft.append_entries(rpc).await)
            }
            ControlRequest::Vote(rpc) => ControlResponse::Vote(self.raft.vote(rpc).await),
            ControlRequest::InstallSnapshot(rpc) => {
                ControlResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            // Forwarded writes join this node's next batch, so that under load the whole
            // cluster's writes share entries, not just each node's own.
            ControlRequest::ClientWrite { commands } => match check_batch(&commands) {
                Ok(size) => {
                    ControlResponse::ClientWrite(match self.enqueue(commands, size, true).await {
                        Ok(done) => Ok(done),
                        Err(ControlError::NoLeader(_)) => Err(ForwardedWriteError::NotLeader),
                        Err(e) => Err(ForwardedWriteError::Failed(e.to_string())),
                    })
                }
                Err(why) => ControlResponse::Refused(why),
            },
            ControlRequest::ReadIndex => {
                ControlResponse::ReadIndex(self.raft.ensure_linearizable().await)
            }
            ControlRequest::AddAnchor { id, node } => ControlResponse::AddAnchor(
                self.add_anchor_local(id, node)
                    .await
                    .map_err(|e| e.to_string()),
            ),
            ControlRequest::RemoveAnchor { id } => ControlResponse::RemoveAnchor(
                self.remove_anchor_local(id)
                    .await
                    .map_err(|e| e.to_string()),
            ),
        }
    }

    /// Passes an enrollment call to the service layer and waits for its answer.
    async fn enroll(
        &self,
        peer: PeerId,
        request: crate::p2p::protocol::EnrollRequest,
    ) -> Result<crate::p2p::protocol::EnrollResponse, crate::p2p::protocol::EnrollError> {
        let refused = |status: u16, code: &str, message: &str| crate::p2p::protocol::EnrollError {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        };
        let Some(sender) = self.enrollment.get() else {
            return Err(refused(
                503,
                "unavailable",
                "this node does not serve enrollment",
            ));
        };
        let (reply, answer) = oneshot::channel();
        sender
            .try_send(Enrollment {
                peer,
                request,
                reply,
            })
            .map_err(|_| refused(503, "overloaded", "too many enrollments at once; retry"))?;
        answer
            .await
            .map_err(|_| refused(500, "internal", "the enrollment was dropped"))?
    }

    /// Spends an anchor-join token for `peer`: records it as an anchor (through the leader)
    /// and answers the members it must accept Raft traffic from before it is added.
    async fn join_anchor(
        &self,
        peer: PeerId,
        token: &str,
        anchor: AnchorRecord,
    ) -> Result<Vec<AnchorNode>, String> {
        if anchor.peer_id != peer.to_string() {
            return Err("the anchor record must name the requesting peer".to_owned());
        }
        let token = SecretToken::parse(TokenKind::AnchorJoin, token)
            .ok_or("malformed anchor-join token (x0tanc_…)")?;
        // A first check on local (possibly stale) state keeps strangers with made-up tokens
        // from writing to the log at all.
        let plausible = self.read(|ledger| {
            ledger
                .anchor_join_token(&token.id)
                .is_some_and(|t| token.matches(&t.secret_hash))
                || ledger
                    .anchors()
                    .any(|a| a.raft_id == anchor.raft_id && a.peer_id == anchor.peer_id)
        });
        if !plausible {
            tracing::warn!(%peer, "refusing an anchor join with an unknown or wrong token");
            return Err(format!(
                "anchor-join token refused: {}",
                Reject::InvalidToken
            ));
        }
        let (raft_id, peer_id) = (anchor.raft_id, anchor.peer_id.clone());
        match self
            .write(Command::RedeemAnchorJoinToken {
                token_id: token.id.clone(),
                secret_hash: token.secret_hash(),
                anchor,
            })
            .await
        {
            Ok(_) => {}
            // A retry after a lost answer: the token is spent, by this very node.
            Err(ControlError::Rejected(Reject::InvalidToken))
                if self.read(|l| {
                    l.anchors()
                        .any(|a| a.raft_id == raft_id && a.peer_id == peer_id)
                }) => {}
            Err(e) => return Err(format!("anchor-join token refused: {e}")),
        }
        tracing::info!(%peer, raft_id, "anchor-join token redeemed");
        let status = self.status();
        Ok(status
            .voters
            .into_values()
            .chain(status.learners.into_values())
            .collect())
    }

    /// Whether `peer` redeemed a join token for raft id `id` with this node record
    /// (linearizable: the redemption may have been applied on the leader only so far).
    async fn redeemed_for(&self, peer: &PeerId, id: u64, node: &AnchorNode) -> bool {
        let text = peer.to_string();
        if node.peer_id != text || self.read_barrier().await.is_err() {
            return false;
        }
        self.read(|ledger| {
            ledger
                .anchors()
                .any(|a| a.raft_id == id && a.peer_id == text)
        })
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

/// How long the next batch waits for company, given how many writes the previous one
/// carried. A lone writer (previous batch of one) never waits. Concurrent writers wait in
/// proportion: under load the CPU, not the batcher, is what writes queue for, and batches
/// that leave the moment they can stay small (measured: ~5 writes per entry at 64 clients
/// on 2 cores) — each entry costs a log append, a flush and a replication round on every
/// anchor. Waiting up to 2 ms grows them ~4× and raised throughput by ~30 %
/// (docs/benchmarks.md).
fn linger_after(previous_batch: usize) -> Option<Duration> {
    let waits = u32::try_from(previous_batch.saturating_sub(1)).unwrap_or(u32::MAX);
    (waits > 0).then(|| (BATCH_LINGER_PER_WRITE * waits).min(MAX_BATCH_LINGER))
}

/// The size of `command` as the log encodes it.
fn encoded_size(command: &ProposedCommand) -> Result<usize, ControlError> {
    bincode::serde::encode_into_std_write(
        command,
        &mut std::io::sink(),
        bincode::config::standard(),
    )
    .map_err(|e| ControlError::Raft(format!("cannot encode the command: {e}")))
}

/// Refuses a forwarded batch larger than this node would build itself: every entry must fit
/// the bounds that keep replication under the frame limit. Returns its encoded size.
fn check_batch(commands: &[ProposedCommand]) -> Result<usize, String> {
    if commands.is_empty() || commands.len() > MAX_BATCH_COMMANDS {
        return Err(format!(
            "a batch holds 1 to {MAX_BATCH_COMMANDS} commands, not {}",
            commands.len()
        ));
    }
    let mut bytes = 0;
    for command in commands {
        bytes += encoded_size(command).map_err(|e| e.to_string())?;
    }
    if bytes > MAX_BATCH_BYTES {
        return Err(format!(
            "a batch holds at most {MAX_BATCH_BYTES} bytes of commands, not {bytes}"
        ));
    }
    Ok(bytes)
}

pub(crate) use crate::clock::now;

#[cfg(test)]
mod tests {
    use super::*;
    use x0t_types::{MeshId, MeshSettings};

    fn update(description_len: usize) -> ProposedCommand {
        ProposedCommand {
            command: Command::UpdateMeshSettings {
                mesh: MeshId::new("m").unwrap(),
                expected_version: None,
                settings: MeshSettings {
                    description: "x".repeat(description_len),
                },
            },
            request_id: Some(7),
            statement: Vec::new(),
        }
    }

    #[test]
    fn forwarded_batches_are_bounded() {
        assert!(check_batch(&[]).is_err(), "empty");
        assert!(check_batch(&vec![update(10); MAX_BATCH_COMMANDS]).is_ok());
        let too_many = check_batch(&vec![update(10); MAX_BATCH_COMMANDS + 1]).unwrap_err();
        assert!(too_many.contains("257"), "{too_many}");
        // 4 KiB descriptions: 64 fit in 256 KiB with their overhead, 70 do not.
        assert!(check_batch(&vec![update(4000); 64]).is_ok());
        let too_big = check_batch(&vec![update(4096); 70]).unwrap_err();
        assert!(too_big.contains("bytes"), "{too_big}");
    }

    #[test]
    fn batches_linger_only_when_writers_are_concurrent() {
        assert_eq!(linger_after(0), None);
        assert_eq!(linger_after(1), None, "a lone writer never waits");
        assert_eq!(linger_after(2), Some(Duration::from_micros(100)));
        assert_eq!(linger_after(11), Some(Duration::from_millis(1)));
        assert_eq!(linger_after(10_000), Some(MAX_BATCH_LINGER));
    }
}
