//! Data-plane frames: what one node sends another through the mesh, directly or through
//! relays, plus the receive-side replay window and the rekey policy.
//!
//! A frame is a fixed 84-byte header and a body:
//!
//! ```text
//! "x0" | u8 version (1) | u8 kind | u8 hops left | u8 reserved (0)
//!      | dst node id (32) | src node id (32)
//!      | u32 session (chosen by the receiver) | u64 counter | u16 body length
//! body: the AEAD ciphertext with its 16-byte tag (data, keepalive), or a handshake message
//! ```
//!
//! A relay reads only the destination and the hop count ([`peek_route`]) and decrements the
//! count in place ([`take_hop`]); it cannot read or alter anything else undetected: the
//! ciphertext is sealed end to end with the whole header as associated data, except the hop
//! count (zeroed in the associated data), which relays must change. The counter in the header
//! is the AEAD nonce counter; the receiver opens first and only then records the counter in
//! its [`ReplayWindow`], so forged frames cannot move the window.

use crate::CryptoError;
use crate::aead::{Opener, Sealer, TAG_LEN};
use x0t_types::NodeId;

/// The first two bytes of every frame.
pub const FRAME_MAGIC: [u8; 2] = *b"x0";
/// The frame layout version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 2 + 1 + 1 + 1 + 1 + 32 + 32 + 4 + 8 + 2;
/// Largest body (ciphertext with tag, or handshake message).
pub const MAX_BODY_LEN: usize = u16::MAX as usize;
/// Largest frame.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_BODY_LEN;
/// Hops a new frame may take (direct delivery uses none).
pub const DEFAULT_HOPS: u8 = 8;

/// Offset of the hop count in the header.
const HOPS_AT: usize = 4;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// An IP packet or stream bytes, sealed.
    Data,
    /// The initiator's hybrid handshake message (clear; signed transcripts follow sealed).
    HandshakeInit,
    /// The responder's reply.
    HandshakeReply,
    /// A sealed empty body: liveness, and proof the session keys still work.
    Keepalive,
}

impl FrameKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 4] = [
        Self::Data,
        Self::HandshakeInit,
        Self::HandshakeReply,
        Self::Keepalive,
    ];

    /// The stable one-byte code. Never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::Data => 1,
            Self::HandshakeInit => 2,
            Self::HandshakeReply => 3,
            Self::Keepalive => 4,
        }
    }

    /// The kind for a code, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether the body is AEAD-sealed with the session keys.
    pub const fn is_sealed(self) -> bool {
        matches!(self, Self::Data | Self::Keepalive)
    }
}

/// The fixed header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the body is.
    pub kind: FrameKind,
    /// Relay hops still allowed; a relay drops a frame that arrives with 0.
    pub hops: u8,
    /// The node the frame is for.
    pub dst: NodeId,
    /// The node that sealed it.
    pub src: NodeId,
    /// The receiver's session index (0 in a handshake init: no session yet).
    pub session: u32,
    /// The AEAD nonce counter (sealed kinds), or a handshake sequence number.
    pub counter: u64,
}

impl FrameHeader {
    /// The header bytes for a body of `body_len` bytes.
    fn encode(&self, body_len: u16) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..2].copy_from_slice(&FRAME_MAGIC);
        out[2] = FRAME_VERSION;
        out[3] = self.kind.code();
        out[HOPS_AT] = self.hops;
        out[5] = 0;
        out[6..38].copy_from_slice(self.dst.as_bytes());
        out[38..70].copy_from_slice(self.src.as_bytes());
        out[70..74].copy_from_slice(&self.session.to_be_bytes());
        out[74..82].copy_from_slice(&self.counter.to_be_bytes());
        out[82..84].copy_from_slice(&body_len.to_be_bytes());
        out
    }

    /// Parses the header of the frame `bytes`, checking the whole frame's shape: exactly
    /// one frame (the body length matches), a known kind, the reserved byte zero, and a
    /// sealed body at least a tag long. The body itself is left where it is.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        check_prefix(bytes)?;
        let kind = FrameKind::from_code(bytes[3])
            .ok_or_else(|| decode_error(format!("unknown frame kind {}", bytes[3])))?;
        if bytes[5] != 0 {
            return Err(decode_error("reserved byte is not zero"));
        }
        let array = |range: std::ops::Range<usize>| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes[range]);
            out
        };
        let body_len = usize::from(u16::from_be_bytes([bytes[82], bytes[83]]));
        if bytes.len() != HEADER_LEN + body_len {
            return Err(decode_error(format!(
                "header says {body_len} body bytes, {} follow",
                bytes.len() - HEADER_LEN
            )));
        }
        if kind.is_sealed() && body_len < TAG_LEN {
            return Err(decode_error("a sealed body is shorter than its tag"));
        }
        let mut session = [0u8; 4];
        session.copy_from_slice(&bytes[70..74]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&bytes[74..82]);
        Ok(Self {
            kind,
            hops: bytes[HOPS_AT],
            dst: NodeId::from_bytes(array(6..38)),
            src: NodeId::from_bytes(array(38..70)),
            session: u32::from_be_bytes(session),
            counter: u64::from_be_bytes(counter),
        })
    }

    /// The associated data a sealed body is bound to: the header with the hop count zeroed.
    fn associated_data(&self, body_len: u16) -> [u8; HEADER_LEN] {
        let mut header = self.encode(body_len);
        header[HOPS_AT] = 0;
        header
    }
}

/// A whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its header.
    pub header: FrameHeader,
    /// Its body.
    pub body: Vec<u8>,
}

fn decode_error(reason: impl Into<String>) -> CryptoError {
    CryptoError::Decode {
        what: "data-plane frame",
        reason: reason.into(),
    }
}

fn check_prefix(bytes: &[u8]) -> Result<(), CryptoError> {
    if bytes.len() < HEADER_LEN {
        return Err(decode_error(format!(
            "{} bytes; a header is {HEADER_LEN}",
            bytes.len()
        )));
    }
    if bytes[..2] != FRAME_MAGIC {
        return Err(decode_error("not a frame (bad magic)"));
    }
    if bytes[2] != FRAME_VERSION {
        return Err(decode_error(format!(
            "frame version {}; this build speaks {FRAME_VERSION}",
            bytes[2]
        )));
    }
    Ok(())
}

impl Frame {
    /// The frame's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        let body_len = u16::try_from(self.body.len()).map_err(|_| CryptoError::Invalid {
            what: "data-plane frame",
            reason: format!("body of {} bytes; at most {MAX_BODY_LEN}", self.body.len()),
        })?;
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.extend_from_slice(&self.header.encode(body_len));
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// Parses a frame; refuses anything but exactly one well-formed frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        let header = FrameHeader::decode(bytes)?;
        Ok(Self {
            header,
            body: bytes[HEADER_LEN..].to_vec(),
        })
    }

    /// Seals `payload` as the next frame of a session (the counter comes from the sealer).
    pub fn seal(
        sealer: &mut Sealer,
        mut header: FrameHeader,
        payload: &[u8],
    ) -> Result<Self, CryptoError> {
        let body_len = sealed_body_len(header.kind, payload.len())?;
        header.counter = sealer.sealed_count();
        let sealed = sealer.seal(&header.associated_data(body_len), payload)?;
        debug_assert_eq!(sealed.counter, header.counter);
        Ok(Self {
            header,
            body: sealed.ciphertext,
        })
    }

    /// Opens a sealed frame and records its counter in `window`: a replayed, forged or
    /// altered frame is refused and leaves the window as it was.
    pub fn open(&self, opener: &Opener, window: &mut ReplayWindow) -> Result<Vec<u8>, CryptoError> {
        if !self.header.kind.is_sealed() {
            return Err(CryptoError::Invalid {
                what: "data-plane frame",
                reason: format!("{:?} frames are not sealed", self.header.kind),
            });
        }
        let body_len = u16::try_from(self.body.len()).map_err(|_| CryptoError::AeadOpen)?;
        window.check(self.header.counter)?;
        let plaintext = opener.open(
            self.header.counter,
            &self.header.associated_data(body_len),
            &self.body,
        )?;
        window.accept(self.header.counter)?;
        Ok(plaintext)
    }
}

/// Seals `payload` as the next frame of a session and appends the whole frame to `out`:
/// the data plane's path (one copy of the payload, no allocation once `out` has room).
/// Returns the frame's length. On error `out` is left as it was.
pub fn seal_into(
    sealer: &mut Sealer,
    mut header: FrameHeader,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, CryptoError> {
    let body_len = sealed_body_len(header.kind, payload.len())?;
    header.counter = sealer.sealed_count();
    let start = out.len();
    out.extend_from_slice(&header.encode(body_len));
    out.extend_from_slice(payload);
    let body = start + HEADER_LEN;
    match sealer.seal_in_place(&header.associated_data(body_len), &mut out[body..]) {
        Ok((counter, tag)) => {
            debug_assert_eq!(counter, header.counter);
            out.extend_from_slice(&tag);
            Ok(out.len() - start)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Opens the sealed frame `bytes` (whose `header` came from [`FrameHeader::decode`] of the
/// same bytes) in place and records its counter in `window`; returns the plaintext, a slice
/// of `bytes`. A replayed, forged or altered frame is refused and leaves the window as it
/// was (the bytes are then garbage).
pub fn open_in_place<'a>(
    header: &FrameHeader,
    bytes: &'a mut [u8],
    opener: &Opener,
    window: &mut ReplayWindow,
) -> Result<&'a mut [u8], CryptoError> {
    if !header.kind.is_sealed() {
        return Err(CryptoError::Invalid {
            what: "data-plane frame",
            reason: format!("{:?} frames are not sealed", header.kind),
        });
    }
    let body_len = bytes
        .len()
        .checked_sub(HEADER_LEN)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(CryptoError::AeadOpen)?;
    window.check(header.counter)?;
    let plaintext = opener.open_in_place(
        header.counter,
        &header.associated_data(body_len),
        &mut bytes[HEADER_LEN..],
    )?;
    window.accept(header.counter)?;
    Ok(plaintext)
}

/// The body length of a sealed frame carrying `payload_len` bytes, if it can be sealed.
fn sealed_body_len(kind: FrameKind, payload_len: usize) -> Result<u16, CryptoError> {
    if !kind.is_sealed() {
        return Err(CryptoError::Invalid {
            what: "data-plane frame",
            reason: format!("{kind:?} frames are not sealed"),
        });
    }
    payload_len
        .checked_add(TAG_LEN)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| CryptoError::Invalid {
            what: "data-plane frame",
            reason: format!(
                "payload of {payload_len} bytes; at most {}",
                MAX_BODY_LEN - TAG_LEN
            ),
        })
}

/// What a relay needs from a frame without parsing the rest: its destination and the hops it
/// has left.
pub fn peek_route(bytes: &[u8]) -> Result<(NodeId, u8), CryptoError> {
    check_prefix(bytes)?;
    let mut dst = [0u8; 32];
    dst.copy_from_slice(&bytes[6..38]);
    Ok((NodeId::from_bytes(dst), bytes[HOPS_AT]))
}

/// Uses one hop of a frame being relayed, in place; refuses a frame with none left.
pub fn take_hop(bytes: &mut [u8]) -> Result<u8, CryptoError> {
    check_prefix(bytes)?;
    let hops = bytes[HOPS_AT]
        .checked_sub(1)
        .ok_or_else(|| decode_error("no hops left"))?;
    bytes[HOPS_AT] = hops;
    Ok(hops)
}

/// The counters a receiver has accepted: the highest, and a bitmap of the last
/// [`ReplayWindow::SIZE`] counters (the highest included). Frames may arrive out of order
/// within the window; older ones and repeats are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// One past the highest accepted counter (0: nothing accepted yet).
    next: u64,
    /// Bit `c % SIZE` is set when counter `c` (within the window) was accepted.
    seen: [u64; Self::WORDS],
}

impl ReplayWindow {
    /// How many counters the window spans: a frame up to `SIZE - 1` behind the highest
    /// accepted one may still arrive.
    pub const SIZE: u64 = 2048;
    const WORDS: usize = (Self::SIZE / 64) as usize;

    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    fn bit(counter: u64) -> (usize, u64) {
        let slot = counter % Self::SIZE;
        ((slot / 64) as usize, 1 << (slot % 64))
    }

    /// Whether `counter` would be accepted now (new and not too old).
    pub fn check(&self, counter: u64) -> Result<(), CryptoError> {
        if counter > Sealer::MAX_COUNTER {
            // No sealer uses it; refusing it also keeps `next` from overflowing.
            return Err(CryptoError::Replay {
                counter,
                reason: "beyond the nonce space",
            });
        }
        if counter >= self.next {
            return Ok(());
        }
        if self.next - counter > Self::SIZE {
            return Err(CryptoError::Replay {
                counter,
                reason: "older than the replay window",
            });
        }
        let (word, bit) = Self::bit(counter);
        if self.seen[word] & bit != 0 {
            return Err(CryptoError::Replay {
                counter,
                reason: "already received",
            });
        }
        Ok(())
    }

    /// Records `counter` as received (after its frame opened).
    pub fn accept(&mut self, counter: u64) -> Result<(), CryptoError> {
        self.check(counter)?;
        if counter >= self.next {
            // Slide: forget the slots the window moves past.
            let advance = counter - self.next + 1;
            if advance >= Self::SIZE {
                self.seen.iter_mut().for_each(|w| *w = 0);
            } else {
                for c in self.next..=counter {
                    let (word, bit) = Self::bit(c);
                    self.seen[word] &= !bit;
                }
            }
            self.next = counter + 1;
        }
        let (word, bit) = Self::bit(counter);
        self.seen[word] |= bit;
        Ok(())
    }
}

/// When a session must get new keys: after so many frames sealed or so much time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Frames sealed under one key.
    pub after_frames: u64,
    /// Milliseconds since the keys were made.
    pub after_ms: u64,
}

impl RekeyPolicy {
    /// Two minutes or 2^32 frames, whichever comes first (WireGuard rekeys after 2 min).
    pub const DEFAULT: Self = Self {
        after_frames: 1 << 32,
        after_ms: 120_000,
    };

    /// Whether keys that sealed `sealed` frames and are `age_ms` old must be replaced.
    pub const fn due(&self, sealed: u64, age_ms: u64) -> bool {
        sealed >= self.after_frames || age_ms >= self.after_ms
    }
}
