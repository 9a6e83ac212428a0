//! The write path: writes queue for this node's batcher, leave together as one log entry
//! (proposed here when leading, forwarded to the leader otherwise), and each writer gets its
//! own outcome; linearizable reads wait for the read index.

use std::sync::Arc;
use std::time::{Duration, Instant};
use x0t_ledger::{Command, NodeCommand, Proposal, ProposedCommand};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use x0t_consensus::{AnchorNode, LogId, Response};
use x0t_crypto::{AuditStatement, SignedAuditStatement};
use x0t_ledger::Outcome;
use x0t_types::Actor;

use crate::p2p::protocol::{ControlRequest, ControlResponse, ForwardedWriteError};
use crate::raft_network::peer_of;

use super::{
    Attempt, BATCH_LINGER_PER_WRITE, BatchResult, ControlError, ControlPlane, LEADER_WAIT,
    MAX_BATCH_BYTES, MAX_BATCH_COMMANDS, MAX_BATCH_LINGER, MAX_BATCHES_IN_FLIGHT, QueuedWrites,
    now,
};

impl ControlPlane {
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
    pub(super) fn statement(
        &self,
        actor: Actor,
        command: &Command,
    ) -> Result<Vec<u8>, ControlError> {
        if matches!(command, Command::Nodes(NodeCommand::Register { .. })) {
            return Ok(Vec::new());
        }
        let statement = AuditStatement {
            mesh: x0t_ledger::command_scope(command),
            actor,
            action: command.action().to_owned(),
            command_digest: x0t_ledger::command_digest(command),
            requested_at: now(),
            issuer: self.identity.node_id(),
        };
        SignedAuditStatement::sign(statement, &self.identity)
            .map(|signed| signed.encode())
            .map_err(|e| ControlError::Raft(format!("signing the audit statement: {e}")))
    }

    /// Queues `commands` (`size` encoded bytes) for the batcher, kept together in one entry,
    /// and waits for them to be committed and applied.
    pub(super) async fn enqueue(
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
    pub(super) async fn propose_batches(self, mut queue: mpsc::Receiver<QueuedWrites>) {
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
    pub(super) async fn propose_queued(&self, mut batch: Vec<QueuedWrites>) {
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
    pub(super) async fn propose(&self, commands: Vec<ProposedCommand>) -> BatchResult {
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
    pub(super) async fn via_leader<T, L>(
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
    pub(super) async fn unless_leader_changes<T>(
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

    pub(super) async fn write_local(
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
}

/// How long the next batch waits for company, given how many writes the previous one
/// carried. A lone writer (previous batch of one) never waits. Concurrent writers wait in
/// proportion: under load the CPU, not the batcher, is what writes queue for, and batches
/// that leave the moment they can stay small (measured: ~5 writes per entry at 64 clients
/// on 2 cores) — each entry costs a log append, a flush and a replication round on every
/// anchor. Waiting up to 2 ms grows them ~4× and raised throughput by ~30 %
/// (docs/benchmarks.md).
pub(super) fn linger_after(previous_batch: usize) -> Option<Duration> {
    let waits = u32::try_from(previous_batch.saturating_sub(1)).unwrap_or(u32::MAX);
    (waits > 0).then(|| (BATCH_LINGER_PER_WRITE * waits).min(MAX_BATCH_LINGER))
}

/// The size of `command` as the log encodes it.
pub(super) fn encoded_size(command: &ProposedCommand) -> Result<usize, ControlError> {
    bincode::serde::encode_into_std_write(
        command,
        &mut std::io::sink(),
        bincode::config::standard(),
    )
    .map_err(|e| ControlError::Raft(format!("cannot encode the command: {e}")))
}

/// Refuses a forwarded batch larger than this node would build itself: every entry must fit
/// the bounds that keep replication under the frame limit. Returns its encoded size.
pub(super) fn check_batch(commands: &[ProposedCommand]) -> Result<usize, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use x0t_ledger::MeshCommand;
    use x0t_types::{MeshId, MeshSettings};

    fn update(description_len: usize) -> ProposedCommand {
        ProposedCommand {
            command: Command::Meshes(MeshCommand::UpdateSettings {
                mesh: MeshId::new("m").unwrap(),
                expected_version: None,
                settings: MeshSettings {
                    description: "x".repeat(description_len),
                },
            }),
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
