//! The packet paths: TUN → policy → seal → UDP, and UDP → open → policy → TUN; keepalive
//! pings measure round trips. Every frame that fails a check is dropped and counted.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use x0t_crypto::CryptoError;
use x0t_crypto::frame::{Frame, FrameKind, MAX_FRAME_LEN};

use super::packet::{PacketInfo, parse_ipv4};
use super::session::Session;
use super::{Counters, MAX_QUEUED_PER_PEER, Member, Peer, TunConfig, lock, read};
use crate::NodeError;

/// The largest inner packet carried (jumbo frames); the TUN MTU may not exceed it.
pub const MAX_INNER_PACKET: usize = 9_216;
/// The largest datagram accepted: a frame carrying the largest inner packet. Anything
/// longer is dropped and counted before it is parsed.
pub const MAX_DATAGRAM: usize =
    x0t_crypto::frame::HEADER_LEN + x0t_crypto::aead::TAG_LEN + MAX_INNER_PACKET;

/// Socket buffer size asked for the data plane's UDP socket (the kernel caps it at
/// `net.core.{r,w}mem_max`): bursts wait in the buffer instead of being dropped.
const UDP_BUFFER: usize = 8 << 20;

/// Binds the data plane's UDP socket with large buffers.
pub(crate) fn bind_udp(addr: SocketAddr) -> Result<tokio::net::UdpSocket, NodeError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let failed = |e: std::io::Error| NodeError::Config(format!("binding UDP {addr}: {e}"));
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(failed)?;
    for (what, result) in [
        ("receive", socket.set_recv_buffer_size(UDP_BUFFER)),
        ("send", socket.set_send_buffer_size(UDP_BUFFER)),
    ] {
        if let Err(e) = result {
            tracing::warn!(%e, "cannot enlarge the UDP {what} buffer");
        }
    }
    socket.set_nonblocking(true).map_err(failed)?;
    socket.bind(&addr.into()).map_err(failed)?;
    tokio::net::UdpSocket::from_std(socket.into()).map_err(failed)
}

/// Room before each packet written to the TUN device, for the offload (virtio) header.
const TUN_HEADROOM: usize = 16;

/// Keepalive payload: a ping (`PING ‖ u64 id`), answered by `PONG ‖ id`.
pub(crate) const PING: u8 = 1;
/// See [`PING`].
pub(crate) const PONG: u8 = 2;

/// Opens the TUN device with this node's overlay address on the whole overlay prefix.
pub(crate) fn open_tun(
    config: &TunConfig,
    overlay_ip: Ipv4Addr,
) -> Result<tun_rs::AsyncDevice, NodeError> {
    let (_, prefix) = x0t_crypto::OVERLAY_NETWORK;
    if usize::from(config.mtu) > MAX_INNER_PACKET || config.mtu < 576 {
        return Err(NodeError::Config(format!(
            "TUN MTU {} is outside 576..={MAX_INNER_PACKET}",
            config.mtu
        )));
    }
    let build = |offload: bool| {
        tun_rs::DeviceBuilder::new()
            .name(&config.name)
            // Room for bursts while the reader is busy: a full queue drops, and TCP over the
            // tunnel then backs off hard.
            .tx_queue_len(4_096)
            .ipv4(overlay_ip, prefix, None)
            .mtu(config.mtu)
            // Offload: the kernel hands over whole TCP segments (split here into packets) and
            // takes coalesced ones, so the stacks on both ends see a few large writes.
            .offload(offload)
            .build_async()
    };
    build(true)
        .or_else(|e| {
            tracing::warn!(%e, "TUN offload unavailable; one packet per read and write");
            build(false)
        })
        .map_err(|e| {
            NodeError::Config(format!(
                "opening TUN device {} (needs root and /dev/net/tun; or run without --tun for \
                 userspace mode): {e}",
                config.name
            ))
        })
}

impl Member {
    /// Seals and sends one frame to `peer`.
    pub(crate) async fn send_frame(
        &self,
        peer: &Peer,
        session: &Session,
        kind: FrameKind,
        payload: &[u8],
    ) {
        let bytes = match session.seal(kind, self.node_id, payload) {
            Ok(bytes) => bytes,
            Err(e) => {
                // Nonce space used up: the maintenance timer renews the keys.
                tracing::warn!(%e, "cannot seal a frame");
                return;
            }
        };
        let endpoint = *lock(&peer.endpoint);
        match self.udp.send_to(&bytes, endpoint).await {
            Ok(_) => {
                Counters::bump(&self.counters.frames_sent);
                peer.bytes_sent
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(%endpoint, %e, "UDP send failed"),
        }
    }

    /// Sends packets queued while the session came up.
    pub(crate) async fn flush_queue(&self, peer: &Peer, session: &Session) {
        let queued = std::mem::take(&mut *lock(&peer.queue));
        for packet in queued {
            self.send_frame(peer, session, FrameKind::Data, &packet)
                .await;
        }
    }

    /// Sends an IP packet read from the TUN device to the peer holding its destination,
    /// if the policy allows the flow.
    pub(crate) async fn send_packet(self: &Arc<Self>, packet: &[u8], info: &PacketInfo) {
        let Some(peer) = read(&self.by_ip)
            .get(&info.dst)
            .and_then(|id| read(&self.peers).get(id).cloned())
        else {
            Counters::bump(&self.counters.packets_no_route);
            return;
        };
        if !self.admit(&peer, info, true) {
            return;
        }
        if let Some(session) = peer.session() {
            self.send_frame(&peer, &session, FrameKind::Data, packet)
                .await;
            return;
        }
        // No session yet: hold the packet and set one up in the background.
        {
            let mut queue = lock(&peer.queue);
            if queue.len() >= MAX_QUEUED_PER_PEER {
                Counters::bump(&self.counters.packets_no_session);
                return;
            }
            queue.push(packet.to_vec());
        }
        if !peer.connecting.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                match this.ensure_session(&peer, false).await {
                    Ok(session) => this.flush_queue(&peer, &session).await,
                    Err(why) => {
                        let dropped = std::mem::take(&mut *lock(&peer.queue)).len();
                        this.counters
                            .packets_no_session
                            .fetch_add(dropped as u64, Ordering::Relaxed);
                        tracing::warn!(node = %peer.cert.node_id.short(), %why, "no session");
                    }
                }
                peer.connecting.store(false, Ordering::Release);
            });
        }
    }

    /// The policy check of one end: an open flow passes; otherwise the flow must be allowed
    /// (this node → peer when sending, peer → this node when receiving) and is recorded.
    fn admit(&self, peer: &Peer, info: &PacketInfo, outbound: bool) -> bool {
        let now = self.started.elapsed();
        if lock(&self.flows).admit_existing(info, now) {
            return true;
        }
        let allowed = match info.protocol {
            Some(protocol) => self.decide(peer, outbound, protocol, info.policy_port()),
            None => false,
        };
        if !allowed || !lock(&self.flows).open(info, now) {
            Counters::bump(&self.counters.packets_denied);
            tracing::debug!(
                peer = %peer.cert.node_id.short(),
                src = %info.src, dst = %info.dst, port = info.dst_port,
                protocol = ?info.protocol, outbound,
                "packet denied by policy"
            );
            return false;
        }
        true
    }

    /// Reads packets from the TUN device until it fails (a whole TCP segment at a time when
    /// offload is on, split into packets).
    pub(crate) async fn read_tun(self: Arc<Self>) {
        let Some(tun) = self.tun.clone() else { return };
        let mut original = vec![0u8; tun_rs::VIRTIO_NET_HDR_LEN + 65_535];
        let mut bufs = vec![vec![0u8; MAX_INNER_PACKET]; tun_rs::IDEAL_BATCH_SIZE];
        let mut sizes = vec![0usize; tun_rs::IDEAL_BATCH_SIZE];
        loop {
            let count = match tun
                .recv_multiple(&mut original, &mut bufs, &mut sizes, 0)
                .await
            {
                Ok(count) => count,
                Err(e) if e.kind() == std::io::ErrorKind::Other => {
                    // A packet the splitter could not handle; skip it.
                    tracing::debug!(%e, "TUN read skipped");
                    continue;
                }
                Err(e) => {
                    tracing::error!(%e, "TUN device read failed; the overlay is down");
                    return;
                }
            };
            for (buf, size) in bufs.iter().zip(&sizes).take(count) {
                let packet = &buf[..*size];
                let Ok(info) = parse_ipv4(packet) else {
                    continue; // IPv6 router solicitations and the like: not carried.
                };
                if info.dst == self.cert.overlay_ip {
                    continue;
                }
                self.send_packet(packet, &info).await;
            }
        }
    }

    /// Receives frames on the UDP socket until it fails. Whatever is already queued is
    /// taken in one go (up to a batch), and the packets go to the TUN device together, so
    /// offload can coalesce them.
    pub(crate) async fn receive_frames(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(tun_rs::IDEAL_BATCH_SIZE);
        let mut gro = tun_rs::GROTable::default();
        loop {
            let (n, from) = match self.udp.recv_from(&mut buf).await {
                Ok(received) => received,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some systems; go on.
                    tracing::debug!(%e, "UDP receive error");
                    continue;
                }
            };
            self.on_datagram(&buf[..n], from, &mut batch).await;
            while batch.len() < tun_rs::IDEAL_BATCH_SIZE {
                match self.udp.try_recv_from(&mut buf) {
                    Ok((n, from)) => self.on_datagram(&buf[..n], from, &mut batch).await,
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            if let Some(tun) = &self.tun
                && let Err(e) = tun.send_multiple(&mut gro, &mut batch, TUN_HEADROOM).await
            {
                tracing::debug!(%e, "TUN write failed");
            }
            batch.clear();
        }
    }

    async fn on_datagram(
        self: &Arc<Self>,
        bytes: &[u8],
        from: SocketAddr,
        batch: &mut Vec<Vec<u8>>,
    ) {
        if bytes.len() > MAX_DATAGRAM {
            Counters::bump(&self.counters.frames_oversized);
            return;
        }
        self.on_frame(bytes, from, batch).await;
    }

    /// One datagram: decode, find its session, open, then deliver (policy permitting).
    pub(crate) async fn on_frame(
        self: &Arc<Self>,
        bytes: &[u8],
        from: SocketAddr,
        batch: &mut Vec<Vec<u8>>,
    ) {
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(_) => {
                Counters::bump(&self.counters.frames_malformed);
                return;
            }
        };
        if frame.header.dst != self.node_id {
            Counters::bump(&self.counters.frames_not_for_us);
            return;
        }
        if !frame.header.kind.is_sealed() {
            // Handshakes run over the authenticated libp2p connection.
            Counters::bump(&self.counters.frames_malformed);
            return;
        }
        let Some(session) = read(&self.sessions).get(&frame.header.session).cloned() else {
            Counters::bump(&self.counters.frames_unknown_session);
            return;
        };
        if session.peer != frame.header.src {
            Counters::bump(&self.counters.frames_forged);
            return;
        }
        let plaintext = match session.open(&frame) {
            Ok(plaintext) => plaintext,
            Err(CryptoError::Replay { .. }) => {
                Counters::bump(&self.counters.frames_replayed);
                return;
            }
            Err(_) => {
                Counters::bump(&self.counters.frames_forged);
                return;
            }
        };
        let Some(peer) = read(&self.peers).get(&session.peer).cloned() else {
            return; // Dropped (revoked) since.
        };
        Counters::bump(&self.counters.frames_received);
        peer.bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // The frame is authentic: follow the peer to where it sends from (roaming, NAT).
        {
            let mut endpoint = lock(&peer.endpoint);
            if *endpoint != from {
                *endpoint = from;
            }
        }
        match frame.header.kind {
            FrameKind::Data => self.deliver(&peer, plaintext, batch),
            FrameKind::Keepalive => self.on_keepalive(&peer, &session, &plaintext).await,
            _ => {}
        }
    }

    /// Checks an opened packet and adds it to the batch bound for the TUN device.
    fn deliver(&self, peer: &Peer, packet: Vec<u8>, batch: &mut Vec<Vec<u8>>) {
        let Ok(info) = parse_ipv4(&packet) else {
            Counters::bump(&self.counters.frames_malformed);
            return;
        };
        if info.src != peer.cert.overlay_ip || info.dst != self.cert.overlay_ip {
            Counters::bump(&self.counters.packets_spoofed);
            return;
        }
        if !self.admit(peer, &info, false) || self.tun.is_none() {
            return;
        }
        let mut buf = Vec::with_capacity(TUN_HEADROOM + packet.len());
        buf.resize(TUN_HEADROOM, 0);
        buf.extend_from_slice(&packet);
        batch.push(buf);
    }

    async fn on_keepalive(&self, peer: &Peer, session: &Session, payload: &[u8]) {
        if payload.len() != 9 {
            return;
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&payload[1..]);
        match payload[0] {
            PING => {
                let mut pong = vec![PONG];
                pong.extend_from_slice(&id);
                self.send_frame(peer, session, FrameKind::Keepalive, &pong)
                    .await;
            }
            PONG => {
                if let Some((sent, done)) = lock(&self.pings).remove(&u64::from_be_bytes(id)) {
                    let rtt = sent.elapsed();
                    peer.rtt_micros
                        .store(rtt.as_micros() as u64, Ordering::Relaxed);
                    let _ = done.send(rtt);
                }
            }
            _ => {}
        }
    }
}
