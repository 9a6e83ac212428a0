//! The data plane's UDP socket, with segmentation offload both ways: a run of equal-size
//! frames to one peer leaves in one `sendmsg` (UDP GSO: the kernel cuts it into datagrams,
//! as late as the device allows), and datagrams of one flow arriving back to back come up in
//! one `recvmsg` (UDP GRO), described by their common size (the stride). Per-frame system
//! calls were the tunnel's cost; this takes them from one per packet to one per batch.
//! Where the kernel or the device cannot segment, frames go one by one.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;

use crate::NodeError;

/// Socket buffer size asked for (the kernel caps it at `net.core.{r,w}mem_max`): bursts
/// wait in the buffer instead of being dropped.
const UDP_BUFFER: usize = 8 << 20;

/// The most bytes one segmented send may carry: a UDP datagram's payload limit over IPv4
/// (65,507), rounded down.
pub(crate) const MAX_SEGMENTED_BYTES: usize = 65_000;

/// The size of one receive buffer: room for a whole coalesced run (at most 64 KiB, the
/// largest UDP datagram too, so nothing is ever truncated).
pub(crate) const RECV_BUFFER: usize = 1 << 16;

/// The data plane's UDP socket.
#[derive(Debug)]
pub struct UdpLink {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
    /// Segmented sends the kernel refused, resent frame by frame.
    pub(crate) segmentation_fallbacks: AtomicU64,
    /// The smallest segment size refused as too large for the path (a TUN MTU above the
    /// underlay's): runs of segments this large go frame by frame (fragmented) from then on.
    too_large: AtomicUsize,
}

impl UdpLink {
    /// Binds `addr` with large buffers, GRO on and, where the kernel has it, GSO.
    pub(crate) fn bind(addr: SocketAddr) -> Result<Self, NodeError> {
        use socket2::{Domain, Protocol, Socket, Type};
        let failed = |e: io::Error| NodeError::Config(format!("binding UDP {addr}: {e}"));
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(failed)?;
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
        let socket = tokio::net::UdpSocket::from_std(socket.into()).map_err(failed)?;
        let state = UdpSocketState::new((&socket).into()).map_err(failed)?;
        // quinn-udp forbids fragmentation (its QUIC probes the path MTU). A TUN MTU above the
        // underlay's is the operator's choice here: let the kernel fragment as it did before.
        allow_fragmentation(&socket, addr);
        tracing::debug!(
            gso = state.max_gso_segments(),
            gro = state.gro_segments(),
            "UDP data socket"
        );
        Ok(Self {
            socket,
            state,
            segmentation_fallbacks: AtomicU64::new(0),
            too_large: AtomicUsize::new(usize::MAX),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// How many equal-size frames one [`UdpLink::send_segments`] may carry (1: no GSO).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments().max(1)
    }

    /// Sends one datagram.
    pub(crate) async fn send(&self, destination: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        self.socket.send_to(bytes, destination).await.map(|_| ())
    }

    /// Sends `contents`, a run of frames of `segment` bytes each (the last may be shorter),
    /// as that many datagrams to `destination`: in one system call when the kernel can
    /// segment, else one by one.
    pub(crate) async fn send_segments(
        &self,
        destination: SocketAddr,
        contents: &[u8],
        segment: usize,
    ) -> io::Result<()> {
        if contents.len() <= segment
            || self.max_segments() == 1
            || segment >= self.too_large.load(Ordering::Relaxed)
        {
            return self.send_each(destination, contents, segment).await;
        }
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: Some(segment),
            src_ip: None,
        };
        let sent = self
            .socket
            .async_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), &transmit)
            })
            .await;
        match sent {
            Ok(()) => Ok(()),
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::EINVAL)) {
                    self.too_large.fetch_min(segment, Ordering::Relaxed);
                }
                // EIO/EINVAL: the device cannot segment (quinn-udp then stops offering GSO);
                // EMSGSIZE: a segment is larger than the path allows unfragmented. Either
                // way the frames go one by one, fragmented by the kernel if need be.
                let fallbacks = self.segmentation_fallbacks.fetch_add(1, Ordering::Relaxed);
                if fallbacks == 0 {
                    tracing::info!(%e, segment, "segmented UDP send refused; sending frame by frame");
                }
                self.send_each(destination, contents, segment).await
            }
        }
    }

    async fn send_each(
        &self,
        destination: SocketAddr,
        contents: &[u8],
        segment: usize,
    ) -> io::Result<()> {
        for datagram in contents.chunks(segment.max(1)) {
            self.send(destination, datagram).await?;
        }
        Ok(())
    }

    /// Receives up to `bufs.len()` datagrams or coalesced runs; `meta[i]` says how many
    /// bytes of `bufs[i]` arrived, from whom, and their stride (the size of each datagram
    /// in the run but the last).
    pub(crate) async fn recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.socket
            .async_io(Interest::READABLE, || {
                self.state.recv((&self.socket).into(), bufs, meta)
            })
            .await
    }
}

/// Turns path-MTU discovery back to the kernel's default for UDP ("want": fragment locally
/// when a datagram exceeds the route's MTU). Neither socket2 nor nix wraps this option.
#[allow(unsafe_code)]
fn allow_fragmentation(socket: &tokio::net::UdpSocket, addr: SocketAddr) {
    let (level, option, value) = if addr.is_ipv4() {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_WANT,
        )
    } else {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_WANT,
        )
    };
    // SAFETY: setsockopt on an open socket we own, with a c_int option value that lives for
    // the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(e = %io::Error::last_os_error(), "cannot allow UDP fragmentation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits what one receive call returned into datagrams, by stride.
    fn datagrams(buf: &[u8], meta: &RecvMeta) -> Vec<Vec<u8>> {
        let stride = if meta.stride == 0 {
            meta.len
        } else {
            meta.stride
        };
        buf[..meta.len].chunks(stride).map(<[u8]>::to_vec).collect()
    }

    /// A run of equal frames and a shorter last one leaves in one segmented send and
    /// arrives as the same datagrams, in order, whether or not the kernel coalesced them.
    #[tokio::test]
    async fn segmented_runs_arrive_as_the_datagrams_they_were() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let (sender, receiver) = (
            UdpLink::bind(loopback).unwrap_or_else(|e| panic!("{e}")),
            UdpLink::bind(loopback).unwrap_or_else(|e| panic!("{e}")),
        );
        let to = receiver.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let segment = 1_200;
        let mut sent: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; segment]).collect();
        sent.push(vec![0xee; 300]);
        let contents: Vec<u8> = sent.concat();
        sender
            .send_segments(to, &contents, segment)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A single frame and an empty run are sent too (no segmentation needed).
        sender
            .send_segments(to, &[7; 40], segment)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sent.push(vec![7; 40]);

        let mut storage = vec![0u8; 4 * RECV_BUFFER];
        let mut received = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while received.len() < sent.len() && std::time::Instant::now() < deadline {
            let mut meta = [RecvMeta::default(); 4];
            let count = {
                let mut bufs: Vec<IoSliceMut<'_>> = storage
                    .chunks_mut(RECV_BUFFER)
                    .map(IoSliceMut::new)
                    .collect();
                tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    receiver.recv(&mut bufs, &mut meta),
                )
                .await
                .unwrap_or_else(|_| panic!("nothing arrived"))
                .unwrap_or_else(|e| panic!("{e}"))
            };
            for (slot, meta) in storage.chunks(RECV_BUFFER).zip(&meta).take(count) {
                received.extend(datagrams(slot, meta));
            }
        }
        assert_eq!(received, sent);
        assert!(sender.max_segments() >= 1);
    }
}
