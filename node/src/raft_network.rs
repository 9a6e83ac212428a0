//! openraft's network over the libp2p control protocol.

use libp2p::{Multiaddr, PeerId};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use x0t_consensus::{AnchorNode, TypeConfig};

use crate::p2p::protocol::{ControlRequest, ControlResponse};
use crate::p2p::{P2p, P2pError};

/// Parses the peer id and addresses a membership entry advertises.
pub(crate) fn peer_of(node: &AnchorNode) -> Result<(PeerId, Vec<Multiaddr>), String> {
    let peer = node
        .peer_id
        .parse::<PeerId>()
        .map_err(|e| format!("bad peer id {:?}: {e}", node.peer_id))?;
    let mut addrs: Vec<Multiaddr> = node.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    // QUIC first: the swarm dials one address at a time, and on loopback and LANs a QUIC
    // connection costs less CPU per request than Noise + Yamux over TCP (measured in
    // docs/benchmarks.md); TCP remains the fallback when UDP is blocked.
    addrs.sort_by_key(|addr| !is_quic(addr));
    Ok((peer, addrs))
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1))
}

/// Makes one [`RaftClient`] per target.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) p2p: P2p,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = RaftClient;

    async fn new_client(&mut self, target: u64, node: &AnchorNode) -> RaftClient {
        RaftClient {
            p2p: self.p2p.clone(),
            target,
            peer: peer_of(node),
        }
    }
}

/// Sends Raft RPCs to one member.
pub(crate) struct RaftClient {
    p2p: P2p,
    target: u64,
    peer: Result<(PeerId, Vec<Multiaddr>), String>,
}

type RpcResult<T, E> = Result<T, RPCError<u64, AnchorNode, E>>;

impl RaftClient {
    async fn call<E: std::error::Error>(
        &self,
        request: ControlRequest,
    ) -> RpcResult<ControlResponse, E> {
        let (peer, addrs) = self
            .peer
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        match self.p2p.request(peer, addrs, request).await {
            Ok(ControlResponse::Refused(reason)) => Err(RPCError::Network(NetworkError::new(
                &std::io::Error::other(format!("peer refused: {reason}")),
            ))),
            Ok(response) => Ok(response),
            Err(error @ P2pError::Request { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&error)))
            }
            Err(error) => Err(RPCError::Network(NetworkError::new(&error))),
        }
    }

    fn unexpected<E: std::error::Error>(
        &self,
        response: &ControlResponse,
    ) -> RPCError<u64, AnchorNode, E> {
        RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
            "unexpected answer from {}: {response:?}",
            self.target
        ))))
    }
}

fn remote<E: std::error::Error>(
    target: u64,
    error: RaftError<u64, E>,
) -> RPCError<u64, AnchorNode, RaftError<u64, E>> {
    RPCError::RemoteError(RemoteError::new(target, error))
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, RaftError<u64>> {
        match self.call(ControlRequest::AppendEntries(rpc)).await? {
            ControlResponse::AppendEntries(result) => result.map_err(|e| remote(self.target, e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        match self.call(ControlRequest::InstallSnapshot(rpc)).await? {
            ControlResponse::InstallSnapshot(result) => result.map_err(|e| remote(self.target, e)),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, RaftError<u64>> {
        match self.call(ControlRequest::Vote(rpc)).await? {
            ControlResponse::Vote(result) => result.map_err(|e| remote(self.target, e)),
            other => Err(self.unexpected(&other)),
        }
    }
}
