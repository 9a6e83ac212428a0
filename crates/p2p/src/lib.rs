//! Node-to-node networking: one libp2p swarm (TCP + QUIC, Noise, Yamux, identify, ping and
//! the x0t control protocol) driven by one event loop; everything else holds a [`P2p`] handle.

mod codec;
mod event_loop;
pub use x0t_wire::control as protocol;

pub use event_loop::{ConnectionEvent, InboundRequest, P2p, P2pConfig, P2pError, spawn};
