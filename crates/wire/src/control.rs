//! The x0t control protocol (`/x0t/control/1`): Raft RPCs between anchors, writes and read
//! barriers forwarded from followers to the leader.

use openraft::error::{CheckIsLeaderError, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use x0t_consensus::{AnchorNode, LogId, TypeConfig};
use x0t_ledger::ProposedCommand;
use x0t_ledger::{Outcome, Reject};
use x0t_types::api::{AnchorView, NodeStatus, RegisterNode};
use x0t_types::{AnchorRecord, NodeId};

/// The protocol name on the wire.
pub const CONTROL_PROTOCOL: &str = "/x0t/control/1";

/// A request on the control protocol.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Raft AppendEntries (also heartbeats).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<u64>),
    /// One chunk of a Raft snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Client writes a follower forwards to the leader, to be proposed as one entry; the
    /// leader stamps the time. Their request ids make retries (after a leader change) apply
    /// once.
    ClientWrite {
        /// The commands, in order.
        commands: Vec<ProposedCommand>,
    },
    /// A follower asks the leader for a linearizable read index.
    ReadIndex,
    /// A node that is not yet a member presents an anchor-join token to become an anchor.
    /// The only request accepted from a peer outside the membership (enrollment); the record
    /// must name the requesting peer.
    JoinAnchor {
        /// The token text (`x0tanc_…`); spent once.
        token: String,
        /// The anchor it wants recorded.
        anchor: AnchorRecord,
    },
    /// "Add this anchor" (learner, then voter): from a member (a follower forwarding to the
    /// leader), or from a node that redeemed a join token for itself.
    AddAnchor {
        /// Raft id of the new anchor.
        id: u64,
        /// How to reach it.
        node: AnchorNode,
    },
    /// Node enrollment over libp2p (`x0t join --anchor <multiaddr>`): what a node that is not
    /// approved may ask, the same operations as the public HTTP routes. A registration must
    /// name the Noise-authenticated peer that sends it.
    Enroll(EnrollRequest),
    /// Between approved nodes of a mesh, and from an approved node to an anchor: the
    /// certificate exchange that must come first, mesh state, and session handshakes.
    Mesh(MeshRequest),
    /// "Remove this anchor from the Raft membership": from a member (a follower forwarding
    /// to the leader). Last, so the older variants keep their tags on the wire.
    RemoveAnchor {
        /// Raft id of the anchor to remove.
        id: u64,
    },
}

/// Longest certificate envelope a peer may present (bytes).
pub const MAX_HELLO_CERTIFICATE: usize = 8 * 1024;
/// Most listen addresses a peer may advertise.
pub const MAX_HELLO_ADDRS: usize = 8;
/// Most peers an anchor lists in one answer.
pub const MAX_PRESENCE: usize = 4_096;

/// What a mesh member says about itself when a connection opens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerHello {
    /// Its node certificate (signed envelope bytes).
    pub certificate: Vec<u8>,
    /// The UDP port its data plane receives frames on (TCP: userspace streams).
    pub data_port: u16,
    /// Its libp2p listen addresses (an unspecified IP means "the address you see me at").
    pub listen: Vec<String>,
    /// The ledger index of the newest mesh state it holds.
    pub state_index: u64,
    /// Random per process start: a new value means the peer restarted and holds none of
    /// the sessions we had with it.
    pub instance: u64,
}

/// Where a mesh member can be reached, as an anchor last heard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPresence {
    /// Its node id.
    pub node_id: String,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its libp2p addresses, unspecified IPs already replaced by the observed one.
    pub addrs: Vec<String>,
    /// Its overlay address (from its certificate).
    pub overlay_ip: String,
}

/// A request between mesh members. Everything but `Hello` is refused from a peer whose
/// certificate has not been verified on this connection.
#[derive(Debug, Serialize, Deserialize)]
pub enum MeshRequest {
    /// The certificate exchange; answered with the receiver's own hello (an agent) or the
    /// current signed mesh state (an anchor).
    Hello(PeerHello),
    /// The newest signed mesh state, if newer than `have_index`.
    State {
        /// The index the asker already holds.
        have_index: u64,
    },
    /// A newer signed mesh state, pushed by an anchor or forwarded by a member (gossip).
    StateUpdate {
        /// The signed state's envelope bytes.
        state: Vec<u8>,
    },
    /// The policy document of a version (verified against the state's digest by the asker).
    Policy {
        /// The version.
        version: u64,
    },
    /// The members an anchor knows how to reach.
    Peers,
    /// Opens a data-plane session: the first handshake message, signed by the initiator.
    HandshakeInit {
        /// The index the initiator will receive frames under.
        initiator_index: u32,
        /// `hybrid::InitiatorHello` bytes.
        hello: Vec<u8>,
        /// The initiator's ML-DSA signature over the prologue and its hello.
        signature: Vec<u8>,
    },
    /// A signed link state, flooded: its origin's measured links, with the origin's
    /// certificate (receivers may not have met the origin).
    LinkState {
        /// `SignedLinkState` envelope bytes.
        state: Vec<u8>,
        /// The origin's signed certificate.
        certificate: Vec<u8>,
    },
    /// Completes a session: the initiator's signature over the whole transcript.
    HandshakeConfirm {
        /// The index the responder receives frames under.
        responder_index: u32,
        /// The initiator's ML-DSA signature over the transcript hash.
        signature: Vec<u8>,
    },
    /// A handshake message for a member the sender has no connection to, passed hop by hop
    /// along the routes. Relays check only who handed it to them and the hop count: the
    /// handshake inside is signed by both ends, so a relay can neither read the session's
    /// keys nor forge a party.
    Relayed(RelayedHandshake),
    /// A member's failover times since its last report (its `path_switched` events), to an
    /// anchor: the mesh's SLO figures on every node's API.
    Failovers {
        /// Each failover, in milliseconds; at most [`MAX_REPORTED_FAILOVERS`].
        durations_ms: Vec<u32>,
    },
}

/// The most failover times one report carries.
pub const MAX_REPORTED_FAILOVERS: usize = 64;

/// The most a relayed handshake message may weigh (certificate, hello, signature): a relay
/// passes on nothing larger. The largest real one (ML-KEM-768 ciphertext, ML-DSA-65
/// signature, a certificate) is under 12 KiB.
pub const MAX_RELAYED_BYTES: usize = 32 * 1024;

/// A handshake message on its way through relays ([`MeshRequest::Relayed`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct RelayedHandshake {
    /// The member it is for.
    pub to: NodeId,
    /// The member that sent it.
    pub from: NodeId,
    /// Relays it may still pass; one that receives it at 0 for another node refuses it.
    pub hops: u8,
    /// The sender's signed certificate (the receiver may never have met the sender).
    pub certificate: Vec<u8>,
    /// The message.
    pub message: HandshakeMessage,
}

impl RelayedHandshake {
    /// The bytes it carries (certificate and message), for [`MAX_RELAYED_BYTES`].
    pub fn weight(&self) -> usize {
        self.certificate.len()
            + match &self.message {
                HandshakeMessage::Init {
                    hello, signature, ..
                } => hello.len() + signature.len(),
                HandshakeMessage::Confirm { signature, .. } => signature.len(),
            }
    }
}

/// The handshake messages that may travel through relays.
#[derive(Debug, Serialize, Deserialize)]
pub enum HandshakeMessage {
    /// As [`MeshRequest::HandshakeInit`].
    Init {
        /// The index the initiator will receive frames under.
        initiator_index: u32,
        /// `hybrid::InitiatorHello` bytes.
        hello: Vec<u8>,
        /// The initiator's ML-DSA signature over the prologue and its hello.
        signature: Vec<u8>,
    },
    /// As [`MeshRequest::HandshakeConfirm`].
    Confirm {
        /// The index the responder receives frames under.
        responder_index: u32,
        /// The initiator's ML-DSA signature over the transcript hash.
        signature: Vec<u8>,
    },
}

/// The answer to a [`MeshRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum MeshResponse {
    /// An agent's own hello.
    Hello(PeerHello),
    /// A signed mesh state (an anchor's answer to `Hello` and `State`); `None`: nothing newer.
    State(Option<Vec<u8>>),
    /// A policy document.
    Policy(String),
    /// Members and their addresses.
    Peers(Vec<PeerPresence>),
    /// The responder's handshake message, signed over the transcript.
    HandshakeReply {
        /// The index the responder will receive frames under.
        responder_index: u32,
        /// `hybrid::ResponderHello` bytes.
        hello: Vec<u8>,
        /// The responder's ML-DSA signature over the transcript hash.
        signature: Vec<u8>,
    },
    /// Accepted, nothing to say.
    Done,
}

/// An enrollment call.
#[derive(Debug, Serialize, Deserialize)]
pub enum EnrollRequest {
    /// Register (as `POST /api/v1/meshes/{mesh}/nodes/register`).
    Register {
        /// The mesh.
        mesh: String,
        /// The signed registration and optional token.
        body: RegisterNode,
    },
    /// A node's state and certificate (as `GET …/nodes/{id}/status`).
    Status {
        /// The mesh.
        mesh: String,
        /// The node id.
        id: String,
    },
    /// The anchors and their keys (as `GET /api/v1/cluster/anchors`).
    Anchors,
}

/// The answer to an enrollment call.
#[derive(Debug, Serialize, Deserialize)]
pub enum EnrollResponse {
    /// A node's state.
    Status(NodeStatus),
    /// The anchors.
    Anchors(Vec<AnchorView>),
}

/// A refused enrollment call: the HTTP status and error code the HTTP route would give.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollError {
    /// The matching HTTP status.
    pub status: u16,
    /// The stable error code.
    pub code: String,
    /// Why.
    pub message: String,
}

/// Why forwarded writes were not committed.
#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardedWriteError {
    /// The receiver is not (or no longer) the leader, or has no quorum: ask the leader.
    NotLeader,
    /// They failed; the reason.
    Failed(String),
}

/// The answer to a [`ControlRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum ControlResponse {
    /// Answer to AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// Answer to Vote.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// Answer to InstallSnapshot.
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// Answer to forwarded writes: the log id of the entry that carried them and what
    /// applying each did.
    ClientWrite(Result<(LogId, Vec<Result<Outcome, Reject>>), ForwardedWriteError>),
    /// Answer to ReadIndex: the log index a follower must have applied to read linearizably.
    ReadIndex(Result<Option<LogId>, RaftError<u64, CheckIsLeaderError<u64, AnchorNode>>>),
    /// Answer to JoinAnchor: the current members (to accept Raft traffic from), or why not.
    JoinAnchor(Result<Vec<AnchorNode>, String>),
    /// Answer to AddAnchor.
    AddAnchor(Result<(), String>),
    /// Answer to Enroll.
    Enroll(Result<EnrollResponse, EnrollError>),
    /// Answer to a mesh request, or why it was refused.
    Mesh(Result<MeshResponse, String>),
    /// The request was refused before reaching Raft (unauthorized peer, overload).
    Refused(String),
    /// Answer to [`ControlRequest::RemoveAnchor`].
    RemoveAnchor(Result<(), String>),
}
