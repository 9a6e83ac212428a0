//! What the data plane reads from an IP packet to enforce the policy, and the flow table that
//! lets replies through. Pure: no I/O, no clock (callers pass `now`).
//!
//! Enforcement happens at both ends: the sender checks `self → peer` before sealing, the
//! receiver checks `peer → self` after opening. A packet that belongs to a flow one of the
//! two ends already allowed (same 5-tuple, either direction) passes without a new decision,
//! which is what lets replies through under a directional policy (`replies_allowed`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use x0t_policy::Protocol;

/// The parts of an IPv4 packet a flow decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// TCP, UDP or ICMP; anything else is never allowed.
    pub protocol: Option<Protocol>,
    /// Source port (ICMP: the echo identifier, so request and reply form one flow).
    pub src_port: u16,
    /// Destination port (ICMP: the echo identifier).
    pub dst_port: u16,
}

impl PacketInfo {
    /// The port a policy decision is about: the destination port (0 for ICMP, which has none).
    pub fn policy_port(&self) -> u16 {
        match self.protocol {
            Some(Protocol::Icmp) => 0,
            _ => self.dst_port,
        }
    }
}

/// Why a packet could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Not an IPv4 packet (IPv6 is not carried yet).
    #[error("not an IPv4 packet")]
    NotIpv4,
    /// Shorter than its headers say.
    #[error("truncated packet")]
    Truncated,
}

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Reads the addresses, protocol and ports of an IPv4 packet. Later fragments (which carry
/// no transport header) count as their protocol with ports 0.
pub fn parse_ipv4(packet: &[u8]) -> Result<PacketInfo, PacketError> {
    let first = *packet.first().ok_or(PacketError::Truncated)?;
    if first >> 4 != 4 {
        return Err(PacketError::NotIpv4);
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 || packet.len() < header_len {
        return Err(PacketError::Truncated);
    }
    let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total_len < header_len || total_len > packet.len() {
        return Err(PacketError::Truncated);
    }
    let fragment_offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let transport = &packet[header_len..total_len];
    let ports = |transport: &[u8]| -> Result<(u16, u16), PacketError> {
        if fragment_offset != 0 {
            return Ok((0, 0));
        }
        if transport.len() < 4 {
            return Err(PacketError::Truncated);
        }
        Ok((
            u16::from_be_bytes([transport[0], transport[1]]),
            u16::from_be_bytes([transport[2], transport[3]]),
        ))
    };
    let (protocol, src_port, dst_port) = match packet[9] {
        PROTO_TCP => {
            let (s, d) = ports(transport)?;
            (Some(Protocol::Tcp), s, d)
        }
        PROTO_UDP => {
            let (s, d) = ports(transport)?;
            (Some(Protocol::Udp), s, d)
        }
        PROTO_ICMP => {
            // Echo request (8) / reply (0): the identifier ties them into one flow.
            let id = if fragment_offset == 0 && transport.len() >= 6 {
                u16::from_be_bytes([transport[4], transport[5]])
            } else {
                0
            };
            (Some(Protocol::Icmp), id, id)
        }
        _ => (None, 0, 0),
    };
    Ok(PacketInfo {
        src,
        dst,
        protocol,
        src_port,
        dst_port,
    })
}

/// One direction-independent flow: the initiator's address and port, the responder's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Its protocol.
    pub protocol: Protocol,
    /// The side that opened it.
    pub initiator: (Ipv4Addr, u16),
    /// The other side.
    pub responder: (Ipv4Addr, u16),
}

impl FlowKey {
    /// The flow a packet opens if it is the first of its flow.
    pub fn opened_by(packet: &PacketInfo) -> Option<Self> {
        Some(Self {
            protocol: packet.protocol?,
            initiator: (packet.src, packet.src_port),
            responder: (packet.dst, packet.dst_port),
        })
    }

    fn reversed(self) -> Self {
        Self {
            protocol: self.protocol,
            initiator: self.responder,
            responder: self.initiator,
        }
    }
}

/// How long an idle flow stays open.
pub fn idle_timeout(protocol: Protocol) -> Duration {
    match protocol {
        Protocol::Tcp => Duration::from_secs(300),
        Protocol::Udp => Duration::from_secs(60),
        Protocol::Icmp => Duration::from_secs(30),
    }
}

/// The flows allowed so far and when each last carried a packet. Bounded: when full, a new
/// flow is refused until idle ones expire (an existing flow never is).
#[derive(Debug)]
pub struct FlowTable {
    flows: HashMap<FlowKey, Duration>,
    capacity: usize,
}

impl FlowTable {
    /// A table holding at most `capacity` flows.
    pub fn new(capacity: usize) -> Self {
        Self {
            flows: HashMap::new(),
            capacity,
        }
    }

    /// Whether `packet` belongs to an open flow (in either direction); refreshes it if so.
    /// `now` is any monotonic clock reading.
    pub fn admit_existing(&mut self, packet: &PacketInfo, now: Duration) -> bool {
        let Some(key) = FlowKey::opened_by(packet) else {
            return false;
        };
        for key in [key, key.reversed()] {
            if let Some(last) = self.flows.get_mut(&key) {
                if now.saturating_sub(*last) <= idle_timeout(key.protocol) {
                    *last = now;
                    return true;
                }
                self.flows.remove(&key);
                return false;
            }
        }
        false
    }

    /// Records the flow `packet` opens (after the policy allowed it). False when the table is
    /// full of live flows.
    pub fn open(&mut self, packet: &PacketInfo, now: Duration) -> bool {
        let Some(key) = FlowKey::opened_by(packet) else {
            return false;
        };
        if self.flows.len() >= self.capacity && !self.flows.contains_key(&key) {
            self.expire(now);
            if self.flows.len() >= self.capacity {
                return false;
            }
        }
        self.flows.insert(key, now);
        true
    }

    /// Drops idle flows.
    pub fn expire(&mut self, now: Duration) {
        self.flows
            .retain(|key, last| now.saturating_sub(*last) <= idle_timeout(key.protocol));
    }

    /// Forgets every flow involving `ip` (a peer that left or was revoked).
    pub fn forget_address(&mut self, ip: Ipv4Addr) {
        self.flows
            .retain(|key, _| key.initiator.0 != ip && key.responder.0 != ip);
    }

    /// Forgets every flow, so each is decided again (the policy changed).
    pub fn clear(&mut self) {
        self.flows.clear();
    }

    /// Open flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is open.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal IPv4 packet with a transport header of `transport` bytes.
    pub(crate) fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], transport: &[u8]) -> Vec<u8> {
        let total = 20 + transport.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(transport);
        p
    }

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> PacketInfo {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0; 16]);
        parse_ipv4(&ipv4(PROTO_TCP, src, dst, &t)).unwrap_or_else(|e| panic!("{e}"))
    }

    const A: [u8; 4] = [100, 64, 0, 1];
    const B: [u8; 4] = [100, 64, 0, 2];

    #[test]
    fn reads_tcp_udp_icmp() {
        let p = tcp(A, 40_000, B, 443);
        assert_eq!(p.protocol, Some(Protocol::Tcp));
        assert_eq!(
            (p.src_port, p.dst_port, p.policy_port()),
            (40_000, 443, 443)
        );
        let udp = parse_ipv4(&ipv4(PROTO_UDP, A, B, &[0, 53, 0, 53, 0, 8, 0, 0])).unwrap();
        assert_eq!(udp.protocol, Some(Protocol::Udp));
        let echo = parse_ipv4(&ipv4(PROTO_ICMP, A, B, &[8, 0, 0, 0, 0x12, 0x34, 0, 1])).unwrap();
        assert_eq!(
            (echo.protocol, echo.src_port, echo.policy_port()),
            (Some(Protocol::Icmp), 0x1234, 0)
        );
        let gre = parse_ipv4(&ipv4(47, A, B, &[0; 8])).unwrap();
        assert_eq!(gre.protocol, None);
    }

    #[test]
    fn refuses_what_is_not_a_whole_ipv4_packet() {
        assert_eq!(parse_ipv4(&[]), Err(PacketError::Truncated));
        assert_eq!(parse_ipv4(&[0x60; 40]), Err(PacketError::NotIpv4));
        let good = ipv4(PROTO_TCP, A, B, &[0; 20]);
        for len in 0..24 {
            assert!(parse_ipv4(&good[..len]).is_err(), "{len} bytes");
        }
        let mut lying = good.clone();
        lying[2..4].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(parse_ipv4(&lying), Err(PacketError::Truncated));
        let mut short_header = good;
        short_header[0] = 0x44;
        assert_eq!(parse_ipv4(&short_header), Err(PacketError::Truncated));
    }

    #[test]
    fn replies_ride_the_flow_their_request_opened() {
        let mut table = FlowTable::new(8);
        let t0 = Duration::from_secs(1_000);
        let request = tcp(A, 40_000, B, 443);
        let reply = tcp(B, 443, A, 40_000);
        assert!(!table.admit_existing(&reply, t0), "nothing open yet");
        assert!(table.open(&request, t0));
        assert!(table.admit_existing(&reply, t0));
        assert!(table.admit_existing(&request, t0));
        // Another port pair is another flow.
        assert!(!table.admit_existing(&tcp(B, 443, A, 40_001), t0));
        // Idle flows expire; traffic keeps them alive.
        assert!(table.admit_existing(&reply, t0 + Duration::from_secs(299)));
        assert!(!table.admit_existing(&reply, t0 + Duration::from_secs(700)));
        assert!(table.is_empty());
    }

    #[test]
    fn a_full_table_refuses_new_flows_only() {
        let mut table = FlowTable::new(2);
        let t0 = Duration::ZERO;
        assert!(table.open(&tcp(A, 1, B, 80), t0));
        assert!(table.open(&tcp(A, 2, B, 80), t0));
        assert!(!table.open(&tcp(A, 3, B, 80), t0));
        assert!(
            table.open(&tcp(A, 1, B, 80), t0),
            "an existing flow is refreshed"
        );
        // Once the others idle out there is room again.
        assert!(table.open(&tcp(A, 3, B, 80), Duration::from_secs(301)));
        table.forget_address(Ipv4Addr::from(B));
        assert!(table.is_empty());
    }
}
