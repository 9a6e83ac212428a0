//! The packet paths: TUN → policy → seal → UDP, and UDP → open → policy → TUN; keepalive
//! pings measure round trips. Every frame that fails a check is dropped and counted.
//!
//! Both paths work in batches, because per-packet system calls, not cryptography, were the
//! tunnel's cost: the TUN device hands over whole TCP segments (offload), which are split,
//! sealed back to back into one buffer and leave in one segmented UDP send ([`super::udp`]);
//! the receiver gets runs of datagrams in one call, opens each in place and writes the
//! packets to the TUN device together, where the kernel coalesces them again.

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use quinn_udp::RecvMeta;
use x0t_crypto::CryptoError;
use x0t_crypto::aead::TAG_LEN;
use x0t_crypto::frame::{DEFAULT_HOPS, FrameHeader, FrameKind, HEADER_LEN, take_hop};

use super::packet::{PacketInfo, parse_ipv4};
use super::session::Session;
use super::udp::{MAX_SEGMENTED_BYTES, RECV_BUFFER};
use super::{Counters, MAX_QUEUED_PER_PEER, Member, Peer, TunConfig, lock, read};
use crate::NodeError;

/// The largest inner packet carried (jumbo frames); the TUN MTU may not exceed it.
pub const MAX_INNER_PACKET: usize = 9_216;
/// The largest datagram accepted: a frame carrying the largest inner packet. Anything
/// longer is dropped and counted before it is parsed.
pub const MAX_DATAGRAM: usize = HEADER_LEN + TAG_LEN + MAX_INNER_PACKET;

/// Receive buffers handed to one `recvmmsg` (each holds a datagram or a coalesced run).
const RECV_SLOTS: usize = 8;

/// Room before each packet written to the TUN device, for the offload (virtio) header.
const TUN_HEADROOM: usize = 16;

/// Keepalive payload: a ping (`PING ‖ u64 id`), answered by `PONG ‖ id`.
pub(crate) const PING: u8 = 1;
/// See [`PING`].
pub(crate) const PONG: u8 = 2;
/// Keepalive payload: a link probe (`PROBE ‖ u64 sequence`), answered by `PROBE_REPLY ‖
/// sequence`; feeds the peer's link monitor.
pub(crate) const PROBE: u8 = 3;
/// See [`PROBE`].
pub(crate) const PROBE_REPLY: u8 = 4;

/// Which way a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Along the route in use (through relays when it is not direct).
    Route,
    /// Over the direct link only.
    Direct,
}

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
    /// Seals and sends one frame to `peer`: along the route in use, or over the direct
    /// link only (`Path::Direct`: link probes measure that link, not the route).
    pub(crate) async fn send_frame(
        &self,
        peer: &Peer,
        session: &Session,
        kind: FrameKind,
        payload: &[u8],
        path: Path,
    ) {
        let endpoint = match path {
            Path::Route => self.data_endpoint(peer),
            Path::Direct => peer.direct(),
        };
        let Some(endpoint) = endpoint else {
            Counters::bump(&self.counters.packets_no_route);
            return;
        };
        let bytes = match session.seal(kind, self.node_id, payload) {
            Ok(bytes) => bytes,
            Err(e) => {
                // Nonce space used up: the maintenance timer renews the keys.
                tracing::warn!(%e, "cannot seal a frame");
                return;
            }
        };
        match self.udp.send(endpoint, &bytes).await {
            Ok(()) => {
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
            self.send_frame(peer, session, FrameKind::Data, &packet, Path::Route)
                .await;
        }
    }

    /// Seals an IP packet read from the TUN device for the peer holding its destination, if
    /// the policy allows the flow, into `out` (sent when the run ends).
    async fn send_packet(self: &Arc<Self>, packet: &[u8], info: &PacketInfo, out: &mut Outgoing) {
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
            self.push_data(out, &peer, &session, packet).await;
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
        self.open_session_soon(peer);
    }

    /// Sets up a session with `peer` in the background (unless one is being set up), then
    /// sends what was queued for it.
    pub(crate) fn open_session_soon(self: &Arc<Self>, peer: Arc<Peer>) {
        if peer.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
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

    /// Seals a data packet for `peer` onto the run in `out`, first sending the run if this
    /// frame cannot join it (another endpoint, a larger frame, or the run is full or ended).
    async fn push_data(&self, out: &mut Outgoing, peer: &Peer, session: &Session, packet: &[u8]) {
        let len = HEADER_LEN + packet.len() + TAG_LEN;
        let Some(endpoint) = self.data_endpoint(peer) else {
            Counters::bump(&self.counters.packets_no_route);
            return;
        };
        if !out.fits(endpoint, len, self.udp.max_segments()) {
            self.send_run(out).await;
        }
        if let Err(e) = session.seal_into(FrameKind::Data, self.node_id, packet, &mut out.buf) {
            // Nonce space used up: the maintenance timer renews the keys.
            tracing::warn!(%e, "cannot seal a frame");
            return;
        }
        out.add(endpoint, len);
        peer.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Sends the run of frames in `out` and empties it.
    async fn send_run(&self, out: &mut Outgoing) {
        if let Some(destination) = out.destination
            && out.count > 0
        {
            match self
                .udp
                .send_segments(destination, &out.buf, out.segment)
                .await
            {
                Ok(()) => {
                    self.counters
                        .frames_sent
                        .fetch_add(out.count as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(%destination, %e, "UDP send failed"),
            }
        }
        out.clear();
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
        let mut out = Outgoing::default();
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
                self.send_packet(packet, &info, &mut out).await;
            }
            self.send_run(&mut out).await;
        }
    }

    /// Receives frames on the UDP socket until the task is dropped. Each call takes what is
    /// queued (up to [`RECV_SLOTS`] datagrams or coalesced runs); the packets go to the TUN
    /// device together, so offload can coalesce them.
    pub(crate) async fn receive_frames(self: Arc<Self>) {
        let mut storage = vec![0u8; RECV_SLOTS * RECV_BUFFER];
        let mut meta = [RecvMeta::default(); RECV_SLOTS];
        let mut batch = TunBatch::default();
        let mut relayed = Outgoing::default();
        let mut gro = tun_rs::GROTable::default();
        loop {
            let count = {
                let mut bufs: Vec<IoSliceMut<'_>> = storage
                    .chunks_mut(RECV_BUFFER)
                    .map(IoSliceMut::new)
                    .collect();
                match self.udp.recv(&mut bufs, &mut meta).await {
                    Ok(count) => count,
                    Err(e) => {
                        // ICMP errors from earlier sends surface here on some systems; go on.
                        tracing::debug!(%e, "UDP receive error");
                        continue;
                    }
                }
            };
            for (slot, received) in storage.chunks_mut(RECV_BUFFER).zip(&meta).take(count) {
                let bytes = &mut slot[..received.len.min(RECV_BUFFER)];
                // A run of datagrams of `stride` bytes (the last may be shorter).
                let stride = if received.stride == 0 {
                    bytes.len().max(1)
                } else {
                    received.stride
                };
                for datagram in bytes.chunks_mut(stride) {
                    self.on_datagram(datagram, received.addr, &mut batch, &mut relayed)
                        .await;
                    if batch.len >= tun_rs::IDEAL_BATCH_SIZE {
                        self.write_tun(&mut gro, &mut batch).await;
                    }
                }
            }
            self.write_tun(&mut gro, &mut batch).await;
            self.send_run(&mut relayed).await;
        }
    }

    /// Writes the batch to the TUN device (coalescing what it can) and empties it.
    async fn write_tun(&self, gro: &mut tun_rs::GROTable, batch: &mut TunBatch) {
        if batch.len == 0 {
            return;
        }
        if let Some(tun) = &self.tun
            && let Err(e) = tun
                .send_multiple(gro, &mut batch.bufs[..batch.len], TUN_HEADROOM)
                .await
        {
            tracing::debug!(%e, "TUN write failed");
        }
        batch.len = 0;
    }

    async fn on_datagram(
        self: &Arc<Self>,
        bytes: &mut [u8],
        from: SocketAddr,
        batch: &mut TunBatch,
        relayed: &mut Outgoing,
    ) {
        if bytes.len() > MAX_DATAGRAM {
            Counters::bump(&self.counters.frames_oversized);
            return;
        }
        self.on_frame(bytes, from, batch, relayed).await;
    }

    /// One datagram: decode, find its session, open in place, then deliver (policy
    /// permitting).
    async fn on_frame(
        self: &Arc<Self>,
        bytes: &mut [u8],
        from: SocketAddr,
        batch: &mut TunBatch,
        relayed: &mut Outgoing,
    ) {
        let header = match FrameHeader::decode(bytes) {
            Ok(header) => header,
            Err(_) => {
                Counters::bump(&self.counters.frames_malformed);
                return;
            }
        };
        if header.dst != self.node_id {
            self.relay(bytes, &header, from, relayed).await;
            return;
        }
        if !header.kind.is_sealed() {
            // Handshakes run over the authenticated libp2p connection.
            Counters::bump(&self.counters.frames_malformed);
            return;
        }
        let Some(session) = read(&self.sessions).get(&header.session).cloned() else {
            Counters::bump(&self.counters.frames_unknown_session);
            return;
        };
        if session.peer != header.src {
            Counters::bump(&self.counters.frames_forged);
            return;
        }
        let frame_len = bytes.len();
        let plaintext = match session.open_in_place(&header, bytes) {
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
        peer.last_heard_us.store(self.micros(), Ordering::Relaxed);
        peer.bytes_received
            .fetch_add(frame_len as u64, Ordering::Relaxed);
        // The frame is authentic: follow the peer to where it sends from (roaming, NAT) —
        // unless it came through relays, which say nothing of where the peer is.
        if header.hops == DEFAULT_HOPS && peer.direct() != Some(from) {
            self.set_endpoint(&peer, from);
        }
        match header.kind {
            FrameKind::Data => self.deliver(&peer, plaintext, batch),
            FrameKind::Keepalive => self.on_keepalive(&peer, &session, plaintext).await,
            _ => {}
        }
    }

    /// Passes on a frame for another node: only from a neighbour, only for a sender and a
    /// destination this node verified, with a hop left, and never back where it came from.
    /// The frame stays sealed end to end; only its hop count changes.
    async fn relay(
        &self,
        bytes: &mut [u8],
        header: &FrameHeader,
        from: SocketAddr,
        out: &mut Outgoing,
    ) {
        let refuse = || Counters::bump(&self.counters.frames_not_for_us);
        if !read(&self.by_endpoint).contains_key(&from) {
            return refuse();
        }
        let (target, known_sender) = {
            let peers = read(&self.peers);
            (
                peers.get(&header.dst).cloned(),
                peers.contains_key(&header.src),
            )
        };
        let Some(target) = target.filter(|_| known_sender) else {
            return refuse();
        };
        let Some(endpoint) = self.data_endpoint(&target).filter(|e| *e != from) else {
            return refuse();
        };
        if take_hop(bytes).is_err() {
            return refuse();
        }
        if !out.fits(endpoint, bytes.len(), self.udp.max_segments()) {
            self.send_run(out).await;
        }
        out.buf.extend_from_slice(bytes);
        out.add(endpoint, bytes.len());
        Counters::bump(&self.counters.frames_relayed);
    }

    /// Checks an opened packet and adds it to the batch bound for the TUN device.
    fn deliver(&self, peer: &Peer, packet: &[u8], batch: &mut TunBatch) {
        let Ok(info) = parse_ipv4(packet) else {
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
        batch.push(packet);
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
                self.send_frame(peer, session, FrameKind::Keepalive, &pong, Path::Route)
                    .await;
            }
            PROBE => {
                let mut reply = vec![PROBE_REPLY];
                reply.extend_from_slice(&id);
                // Back the way it came: the probe measures the direct link.
                self.send_frame(peer, session, FrameKind::Keepalive, &reply, Path::Direct)
                    .await;
            }
            PROBE_REPLY => {
                let (answered, transition, rtt) = {
                    let mut monitor = lock(&peer.monitor);
                    let (answered, transition) =
                        monitor.reply(u64::from_be_bytes(id), self.micros());
                    (answered, transition, monitor.health().rtt_micros)
                };
                if let (true, Some(rtt)) = (answered, rtt) {
                    peer.rtt_micros.store(u64::from(rtt), Ordering::Relaxed);
                }
                if transition == Some(x0t_routing::Transition::Recovered) {
                    Counters::bump(&self.counters.links_up_again);
                    self.links_changed.store(true, Ordering::Release);
                    let since = peer.down_since_us.swap(0, Ordering::AcqRel);
                    self.event_timed(
                        crate::events::EventKind::LinkRecovered,
                        Some(&peer.cert.node_id),
                        "probes answered again".to_owned(),
                        (since != 0).then(|| self.micros().saturating_sub(since) / 1_000),
                    );
                    tracing::info!(node = %peer.cert.node_id.short(), "link up again");
                }
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

/// Frames sealed back to back for one endpoint, waiting to leave in one segmented send:
/// all `segment` bytes long but the last, which may be shorter (and then ends the run).
#[derive(Debug, Default)]
struct Outgoing {
    buf: Vec<u8>,
    destination: Option<SocketAddr>,
    segment: usize,
    count: usize,
    ended: bool,
}

impl Outgoing {
    /// Whether a frame of `len` bytes to `destination` can join the run.
    fn fits(&self, destination: SocketAddr, len: usize, max_segments: usize) -> bool {
        self.count == 0
            || (self.destination == Some(destination)
                && !self.ended
                && len <= self.segment
                && self.count < max_segments
                && self.buf.len() + len <= MAX_SEGMENTED_BYTES)
    }

    /// Records a frame of `len` bytes just sealed onto the buffer.
    fn add(&mut self, destination: SocketAddr, len: usize) {
        if self.count == 0 {
            self.destination = Some(destination);
            self.segment = len;
        } else if len < self.segment {
            self.ended = true;
        }
        self.count += 1;
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.destination = None;
        self.segment = 0;
        self.count = 0;
        self.ended = false;
    }
}

/// Room in each TUN-bound buffer: the packet may become the head of a coalesced segment of
/// up to 64 KiB, and the offload code coalesces only into a buffer with that capacity (else
/// every packet is written on its own). Pages are touched only as far as they are filled.
const TUN_BUFFER_CAPACITY: usize = 2 * TUN_HEADROOM + 65_535;

/// Packets bound for the TUN device, each behind [`TUN_HEADROOM`] bytes; the buffers are
/// reused from batch to batch.
#[derive(Debug, Default)]
struct TunBatch {
    bufs: Vec<Vec<u8>>,
    len: usize,
}

impl TunBatch {
    fn push(&mut self, packet: &[u8]) {
        if self.len == self.bufs.len() {
            self.bufs.push(Vec::with_capacity(TUN_BUFFER_CAPACITY));
        }
        let buf = &mut self.bufs[self.len];
        buf.clear();
        buf.resize(TUN_HEADROOM, 0);
        buf.extend_from_slice(packet);
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_run_holds_equal_frames_to_one_endpoint_and_ends_after_a_short_one() {
        let mut out = Outgoing::default();
        assert!(out.fits(addr(1), 1_000, 64));
        out.add(addr(1), 1_000);
        assert!(out.fits(addr(1), 1_000, 64));
        assert!(!out.fits(addr(2), 1_000, 64), "another endpoint");
        assert!(!out.fits(addr(1), 1_001, 64), "a larger frame");
        assert!(!out.fits(addr(1), 1_000, 1), "no segmentation offload");
        out.add(addr(1), 600);
        assert!(!out.fits(addr(1), 600, 64), "a short frame ended the run");
        out.clear();
        assert!(out.fits(addr(2), 1_500, 64));
        // The byte limit of one segmented send.
        out.add(addr(2), 1_500);
        out.buf.resize(MAX_SEGMENTED_BYTES - 1_000, 0);
        assert!(!out.fits(addr(2), 1_500, 64));
    }

    #[test]
    fn tun_batches_reuse_their_buffers() {
        let mut batch = TunBatch::default();
        batch.push(b"abc");
        batch.push(b"defg");
        assert_eq!(batch.len, 2);
        assert_eq!(&batch.bufs[1][TUN_HEADROOM..], b"defg");
        batch.len = 0;
        batch.push(b"x");
        assert_eq!((batch.len, batch.bufs.len()), (1, 2));
        assert_eq!(batch.bufs[0].len(), TUN_HEADROOM + 1);
        // Room to coalesce into, or the offload code writes packet by packet.
        assert!(
            batch
                .bufs
                .iter()
                .all(|b| b.capacity() >= TUN_BUFFER_CAPACITY)
        );
    }
}
