//! The signed link state: what one node advertises about its links, for every node's routing
//! (issue 7). The origin signs it with its own identity key, so no node can speak for
//! another's links, and a receiver checks the signature against the origin's certificate.
//!
//! ```text
//! body v1 = "X0TL" | u8 version=1
//!         | u8 len | mesh (ASCII)
//!         | origin node id (32)               the signer
//!         | u64 sequence                      higher supersedes lower
//!         | u64 issued_at_ms
//!         | u16 count | count × (neighbour node id (32) | u32 rtt_micros | u16 loss_permille)
//!                                             sorted by neighbour, unique, not the origin,
//!                                             at most 256; loss at most 1,000
//! ```
//!
//! A state is valid from [`LINK_STATE_SKEW_MS`] before its issue time (clocks differ) to
//! [`LINK_STATE_LIFETIME_MS`] after it: origins re-advertise every second or so, and an old
//! state replayed later is refused by time as well as by sequence.

use x0t_types::{MeshId, NodeId, Timestamp};

use crate::CryptoError;
use crate::sig::SignatureDomain;
use crate::signed::{Signed, SignedPayload, read_header, read_mesh};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"X0TL";
/// Version of the link state body encoding.
pub const LINK_STATE_VERSION: u8 = 1;
/// Most links one state lists.
pub const MAX_ADVERTISED_LINKS: usize = 256;
/// How long after its issue time a link state is accepted.
pub const LINK_STATE_LIFETIME_MS: u64 = 120_000;
/// How far before its issue time a link state is accepted (clock skew between nodes).
pub const LINK_STATE_SKEW_MS: u64 = 60_000;

/// One advertised link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertisedLink {
    /// The node at the other end.
    pub neighbor: NodeId,
    /// Smoothed round trip, microseconds.
    pub rtt_micros: u32,
    /// Probes lost over the measuring window, per thousand.
    pub loss_permille: u16,
}

/// A node's links, as it advertises them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStateAdvert {
    /// The mesh.
    pub mesh: MeshId,
    /// The advertising node; it signs.
    pub origin: NodeId,
    /// Higher supersedes lower.
    pub sequence: u64,
    /// When the origin signed it.
    pub issued_at: Timestamp,
    /// Its links, sorted by neighbour.
    pub links: Vec<AdvertisedLink>,
}

/// A link state with its origin's signature.
pub type SignedLinkState = Signed<LinkStateAdvert>;

impl LinkStateAdvert {
    fn validate(&self) -> Result<(), CryptoError> {
        let invalid = |reason: String| CryptoError::Invalid {
            what: "link state",
            reason,
        };
        if self.links.len() > MAX_ADVERTISED_LINKS {
            return Err(invalid(format!(
                "{} links exceeds the limit of {MAX_ADVERTISED_LINKS}",
                self.links.len()
            )));
        }
        if self
            .links
            .windows(2)
            .any(|pair| pair[0].neighbor >= pair[1].neighbor)
        {
            return Err(invalid(
                "links must be sorted by neighbour and unique".into(),
            ));
        }
        if self.links.iter().any(|l| l.neighbor == self.origin) {
            return Err(invalid("a link from the origin to itself".into()));
        }
        if let Some(link) = self.links.iter().find(|l| l.loss_permille > 1_000) {
            return Err(invalid(format!(
                "loss of {} per thousand",
                link.loss_permille
            )));
        }
        Ok(())
    }
}

impl SignedPayload for LinkStateAdvert {
    const WHAT: &'static str = "link state";
    const DOMAIN: SignatureDomain = SignatureDomain::LinkState;
    const MAX_BODY_LEN: usize =
        5 + 1 + MeshId::MAX_LEN + 32 + 16 + 2 + MAX_ADVERTISED_LINKS * (32 + 4 + 2);

    fn encode_body(&self) -> Result<Vec<u8>, CryptoError> {
        self.validate()?;
        let mut w = Writer::with_capacity(64 + self.mesh.as_str().len() + self.links.len() * 38);
        w.bytes(MAGIC)
            .u8(LINK_STATE_VERSION)
            .short_bytes(self.mesh.as_str().as_bytes())
            .bytes(self.origin.as_bytes())
            .u64(self.sequence)
            .u64(self.issued_at.as_millis())
            .u16(self.links.len() as u16);
        for link in &self.links {
            w.bytes(link.neighbor.as_bytes())
                .u32(link.rtt_micros)
                .u16(link.loss_permille);
        }
        Ok(w.finish())
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(Self::WHAT, bytes);
        read_header(&mut r, MAGIC, LINK_STATE_VERSION, "link state")?;
        let mesh = read_mesh(&mut r)?;
        let origin = NodeId::from_bytes(r.array()?);
        let sequence = r.u64()?;
        let issued_at = Timestamp(r.u64()?);
        let count = usize::from(r.u16()?);
        if count > MAX_ADVERTISED_LINKS {
            return Err(r.error(format_args!(
                "{count} links exceeds the limit of {MAX_ADVERTISED_LINKS}"
            )));
        }
        let mut links = Vec::with_capacity(count);
        for _ in 0..count {
            links.push(AdvertisedLink {
                neighbor: NodeId::from_bytes(r.array()?),
                rtt_micros: r.u32()?,
                loss_permille: r.u16()?,
            });
        }
        r.finish()?;
        let state = Self {
            mesh,
            origin,
            sequence,
            issued_at,
            links,
        };
        state.validate()?;
        Ok(state)
    }

    fn issuer(&self) -> NodeId {
        self.origin
    }

    fn validity(&self) -> (Timestamp, Timestamp) {
        let at = self.issued_at.as_millis();
        (
            Timestamp(at.saturating_sub(LINK_STATE_SKEW_MS)),
            Timestamp(at.saturating_add(LINK_STATE_LIFETIME_MS)),
        )
    }
}
