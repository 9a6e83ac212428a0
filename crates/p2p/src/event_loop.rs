//! The swarm's event loop and the handle everything else uses to reach it.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, identify, identity, noise, ping, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use super::codec::BincodeCodec;
use super::protocol::{CONTROL_PROTOCOL, ControlRequest, ControlResponse};

/// Queue depths: bounded everywhere, so a flood waits or is refused instead of growing memory.
const COMMAND_QUEUE: usize = 1024;
const INBOUND_QUEUE: usize = 1024;

/// Errors reaching a peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum P2pError {
    /// The peer could not be dialed, timed out, or the stream failed.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// What failed.
        reason: String,
    },
    /// The event loop has stopped (node shutting down).
    #[error("the network event loop has stopped")]
    Stopped,
    /// Setting up the swarm failed.
    #[error("network setup: {0}")]
    Setup(String),
}

/// What the swarm needs to start.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// The libp2p identity.
    pub keypair: identity::Keypair,
    /// Addresses to listen on (TCP and/or QUIC multiaddrs).
    pub listen: Vec<Multiaddr>,
    /// How long one control request may take end to end.
    pub request_timeout: Duration,
    /// Where to report connections opening and closing (mesh members gate peers on them).
    pub connection_events: Option<mpsc::Sender<ConnectionEvent>>,
}

/// A connection to a peer opened or the last one closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The first connection to `peer` is up.
    Connected {
        /// The authenticated (Noise) peer.
        peer: PeerId,
        /// The address its connection comes from (dialed or seen).
        remote: Multiaddr,
    },
    /// The last connection to `peer` closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
}

/// A request from a peer, to be answered with [`P2p::respond`].
#[derive(Debug)]
pub struct InboundRequest {
    /// The authenticated (Noise) peer that sent it.
    pub peer: PeerId,
    /// The address its connection comes from, if the connection is still known.
    pub remote: Option<Multiaddr>,
    /// The request.
    pub request: ControlRequest,
    /// Where the answer goes.
    pub channel: ResponseChannel<ControlResponse>,
}

enum Command {
    Request {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: ControlRequest,
        reply: oneshot::Sender<Result<ControlResponse, P2pError>>,
    },
    Respond {
        channel: ResponseChannel<ControlResponse>,
        response: ControlResponse,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Disconnect {
        peer: PeerId,
    },
    CloseOlderConnections {
        peer: PeerId,
    },
}

/// A cloneable handle to the swarm's event loop.
#[derive(Clone, Debug)]
pub struct P2p {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request { peer, .. } => write!(f, "Request({peer})"),
            Self::Respond { .. } => f.write_str("Respond"),
            Self::ListenAddrs { .. } => f.write_str("ListenAddrs"),
            Self::Disconnect { peer } => write!(f, "Disconnect({peer})"),
            Self::CloseOlderConnections { peer } => write!(f, "CloseOlderConnections({peer})"),
        }
    }
}

impl P2p {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Sends `request` to `peer` (dialing `addrs` if not connected) and waits for the answer.
    pub async fn request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: ControlRequest,
    ) -> Result<ControlResponse, P2pError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request {
                peer,
                addrs,
                request,
                reply,
            })
            .await
            .map_err(|_| P2pError::Stopped)?;
        answer.await.map_err(|_| P2pError::Stopped)?
    }

    /// Answers an inbound request.
    pub async fn respond(
        &self,
        channel: ResponseChannel<ControlResponse>,
        response: ControlResponse,
    ) {
        // If the loop is gone the node is stopping; the peer sees the stream close.
        let _ = self
            .commands
            .send(Command::Respond { channel, response })
            .await;
    }

    /// Closes every connection to `peer` (a mesh member whose certificate failed or was
    /// revoked). It may dial again; it will be refused again.
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Disconnect { peer }).await;
    }

    /// Closes every connection to `peer` but the newest: after the peer restarted, the older
    /// ones lead to a process that is gone (and would swallow requests until they time out).
    pub async fn close_older_connections(&self, peer: PeerId) {
        let _ = self
            .commands
            .send(Command::CloseOlderConnections { peer })
            .await;
    }

    /// The addresses the swarm is listening on (resolved ports).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, P2pError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ListenAddrs { reply })
            .await
            .map_err(|_| P2pError::Stopped)?;
        answer.await.map_err(|_| P2pError::Stopped)
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    control: request_response::Behaviour<BincodeCodec<ControlRequest, ControlResponse>>,
}

/// Builds the swarm, starts listening and spawns the event loop. Returns the handle and the
/// stream of inbound requests (bounded; when full, new requests are refused as overloaded).
pub async fn spawn(
    config: P2pConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(P2p, mpsc::Receiver<InboundRequest>), P2pError> {
    let setup = |e: &dyn std::fmt::Display| P2pError::Setup(e.to_string());
    let local_peer_id = config.keypair.public().to_peer_id();
    let request_timeout = config.request_timeout;
    let connection_events = config.connection_events;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        // A peer that vanishes without closing (power loss, partition) must be noticed in
        // about a second, not after QUIC's default 10 s idle timeout.
        .with_quic_config(|mut quic| {
            quic.max_idle_timeout = 2_000;
            quic.keep_alive_interval = Duration::from_millis(500);
            quic
        })
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                "/x0t/1.0.0".to_owned(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
            control: request_response::Behaviour::with_codec(
                BincodeCodec::default(),
                [(StreamProtocol::new(CONTROL_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(request_timeout)
                    .with_max_concurrent_streams(1024),
            ),
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(120))
                // One address at a time, in the caller's order of preference (QUIC, then
                // TCP), so peers end up with one connection, not one per transport.
                .with_dial_concurrency_factor(std::num::NonZeroU8::MIN)
        })
        .build();
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| setup(&e))?;
    }
    // Wait until every listener has a concrete address, so callers can advertise real ports.
    let mut listening = 0;
    while listening < config.listen.len() {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening for peers");
                listening += 1;
            }
            SwarmEvent::ListenerError { error, .. } => return Err(setup(&error)),
            SwarmEvent::ListenerClosed { reason, .. } => {
                return Err(P2pError::Setup(format!("listener closed: {reason:?}")));
            }
            _ => {}
        }
    }

    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let mut event_loop = EventLoop {
        swarm,
        commands: command_rx,
        inbound: inbound_tx,
        pending: HashMap::new(),
        remotes: HashMap::new(),
        connections: HashMap::new(),
        connection_events,
    };
    tokio::spawn(async move {
        tokio::select! {
            () = event_loop.run() => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
        tracing::debug!("network event loop stopped");
    });
    Ok((
        P2p {
            commands,
            local_peer_id,
        },
        inbound_rx,
    ))
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<InboundRequest>,
    pending:
        HashMap<OutboundRequestId, (PeerId, oneshot::Sender<Result<ControlResponse, P2pError>>)>,
    /// The remote address of the newest connection to each connected peer.
    remotes: HashMap<PeerId, Multiaddr>,
    /// Each connected peer's connections, oldest first.
    connections: HashMap<PeerId, Vec<libp2p::swarm::ConnectionId>>,
    connection_events: Option<mpsc::Sender<ConnectionEvent>>,
}

impl EventLoop {
    async fn run(&mut self) {
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                addrs,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .control
                    .send_request_with_addresses(&peer, request, addrs);
                self.pending.insert(id, (peer, reply));
            }
            Command::Respond { channel, response } => {
                // Fails only if the peer gave up on the stream; nothing to do then.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .control
                    .send_response(channel, response);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Disconnect { peer } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::CloseOlderConnections { peer } => {
                if let Some(ids) = self.connections.get(&peer)
                    && let Some((_newest, older)) = ids.split_last()
                {
                    for id in older.iter().copied() {
                        self.swarm.close_connection(id);
                    }
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Control(event)) => self.on_control_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!(%address, "new listen address");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "incoming connection failed");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                self.remotes.insert(peer_id, remote.clone());
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .push(connection_id);
                if num_established.get() == 1 {
                    self.report(ConnectionEvent::Connected {
                        peer: peer_id,
                        remote,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if let Some(ids) = self.connections.get_mut(&peer_id) {
                    ids.retain(|id| *id != connection_id);
                }
                if num_established == 0 {
                    self.connections.remove(&peer_id);
                    self.remotes.remove(&peer_id);
                    self.report(ConnectionEvent::Disconnected { peer: peer_id });
                }
            }
            _ => {}
        }
    }

    fn report(&self, event: ConnectionEvent) {
        if let Some(events) = &self.connection_events
            && events.try_send(event).is_err()
        {
            // The member's loop is far behind; it re-checks its peers on its own timer.
            tracing::warn!("connection event queue full; dropping an event");
        }
    }

    fn on_control_event(
        &mut self,
        event: request_response::Event<ControlRequest, ControlResponse>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let inbound = InboundRequest {
                    peer,
                    remote: self.remotes.get(&peer).cloned(),
                    request,
                    channel,
                };
                if let Err(mpsc::error::TrySendError::Full(inbound)) =
                    self.inbound.try_send(inbound)
                {
                    tracing::warn!(%peer, "inbound control queue full; refusing request");
                    let _ = self.swarm.behaviour_mut().control.send_response(
                        inbound.channel,
                        ControlResponse::Refused("node overloaded".to_owned()),
                    );
                }
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(P2pError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                // Includes frames that fail to decode or exceed the size bound.
                tracing::debug!(%peer, %error, "inbound control request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}
