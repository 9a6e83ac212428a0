//! The signed mesh state: what an agent needs from the control plane to decide, offline, whom
//! to trust: the anchor set, the revoked node ids, and which policy version is in force.
//!
//! ```text
//! body v1 = "X0TM" | u8 version=1
//!         | u8 len | mesh (ASCII)
//!         | u64 ledger_index                  the signer's applied index: newer supersedes older
//!         | u64 issued_at_ms
//!         | issuer node id (32)               must be one of the anchors below
//!         | u8 count | count × (u8 sig_alg | u16 len | anchor identity public key)
//!                                             sorted by node id, unique, 1..=16
//!         | u32 count | count × node id (32)  revoked nodes; sorted, unique, at most 65,536
//!         | u64 policy_version                0 = no policy yet (default deny)
//!         | policy digest (32)                `policy_digest` of the document; zero if none
//! ```
//!
//! Anchors sign it whenever one of its parts changes and gossip it; agents keep the newest
//! they have verified on disk, so data paths keep working when the control plane cannot
//! answer. A state never expires by time (an agent cut off from the anchors must keep
//! forwarding with what it knows); a newer `ledger_index` supersedes it. Revoked nodes whose
//! certificates have expired may be left out: an expired certificate is refused anyway.

use x0t_types::{MeshId, NodeId, Timestamp};

use crate::CryptoError;
use crate::sig::{SigAlgorithm, SignatureDomain, VerifyingKey};
use crate::signed::{Signed, SignedPayload, read_header, read_mesh};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"X0TM";
/// Version of the mesh state body encoding.
pub const MESH_STATE_VERSION: u8 = 1;
/// Most anchors a state lists.
pub const MAX_STATE_ANCHORS: usize = 16;
/// Most revoked node ids a state lists.
pub const MAX_STATE_REVOKED: usize = 65_536;

/// The control plane's view of a mesh that agents act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshState {
    /// The mesh.
    pub mesh: MeshId,
    /// The ledger index the signer had applied: states are ordered by it.
    pub ledger_index: u64,
    /// When the anchor signed it.
    pub issued_at: Timestamp,
    /// The anchor that signed it.
    pub issuer: NodeId,
    /// The anchors' identity keys, sorted by node id.
    pub anchors: Vec<VerifyingKey>,
    /// Revoked nodes of the mesh, sorted.
    pub revoked: Vec<NodeId>,
    /// The policy in force: version (0 = none) and the digest of its document.
    pub policy_version: u64,
    /// `policy_digest` of the document of `policy_version` (zero bytes when there is none).
    pub policy_digest: [u8; 32],
}

/// A mesh state with the signature of the anchor that issued it.
pub type SignedMeshState = Signed<MeshState>;

impl MeshState {
    /// Whether `node` is revoked in this state.
    pub fn is_revoked(&self, node: &NodeId) -> bool {
        self.revoked.binary_search(node).is_ok()
    }

    /// The key of anchor `id`, if it is one.
    pub fn anchor_key(&self, id: &NodeId) -> Option<&VerifyingKey> {
        self.anchors.iter().find(|key| key.node_id() == *id)
    }

    fn validate(&self) -> Result<(), CryptoError> {
        let invalid = |reason: String| CryptoError::Invalid {
            what: "mesh state",
            reason,
        };
        if self.anchors.is_empty() || self.anchors.len() > MAX_STATE_ANCHORS {
            return Err(invalid(format!(
                "{} anchors; expected 1 to {MAX_STATE_ANCHORS}",
                self.anchors.len()
            )));
        }
        if self
            .anchors
            .windows(2)
            .any(|pair| pair[0].node_id() >= pair[1].node_id())
        {
            return Err(invalid(
                "anchors must be sorted by node id and unique".into(),
            ));
        }
        if self.anchor_key(&self.issuer).is_none() {
            return Err(invalid(format!(
                "issuer {} is not one of its anchors",
                self.issuer.short()
            )));
        }
        if self.revoked.len() > MAX_STATE_REVOKED {
            return Err(invalid(format!(
                "{} revoked nodes exceeds the limit of {MAX_STATE_REVOKED}",
                self.revoked.len()
            )));
        }
        if self.revoked.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(invalid("revoked nodes must be sorted and unique".into()));
        }
        if (self.policy_version == 0) != (self.policy_digest == [0; 32]) {
            return Err(invalid(
                "a policy digest goes with a policy version, and only then".into(),
            ));
        }
        Ok(())
    }
}

impl SignedPayload for MeshState {
    const WHAT: &'static str = "mesh state";
    const DOMAIN: SignatureDomain = SignatureDomain::MeshState;
    const MAX_BODY_LEN: usize = 5
        + 1
        + MeshId::MAX_LEN
        + 16
        + 32
        + 1
        + MAX_STATE_ANCHORS * (3 + SigAlgorithm::MlDsa65.public_key_len())
        + 4
        + MAX_STATE_REVOKED * 32
        + 8
        + 32;

    fn encode_body(&self) -> Result<Vec<u8>, CryptoError> {
        self.validate()?;
        let mut w =
            Writer::with_capacity(120 + self.anchors.len() * 1_960 + self.revoked.len() * 32);
        w.bytes(MAGIC)
            .u8(MESH_STATE_VERSION)
            .short_bytes(self.mesh.as_str().as_bytes())
            .u64(self.ledger_index)
            .u64(self.issued_at.as_millis())
            .bytes(self.issuer.as_bytes())
            .u8(self.anchors.len() as u8);
        for key in &self.anchors {
            w.u8(key.algorithm().code()).medium_bytes(key.as_bytes());
        }
        w.u32(self.revoked.len() as u32);
        for id in &self.revoked {
            w.bytes(id.as_bytes());
        }
        w.u64(self.policy_version).bytes(&self.policy_digest);
        Ok(w.finish())
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut r = Reader::new(Self::WHAT, bytes);
        read_header(&mut r, MAGIC, MESH_STATE_VERSION, "mesh state")?;
        let mesh = read_mesh(&mut r)?;
        let ledger_index = r.u64()?;
        let issued_at = Timestamp(r.u64()?);
        let issuer = NodeId::from_bytes(r.array()?);
        let count = usize::from(r.u8()?);
        if count > MAX_STATE_ANCHORS {
            return Err(r.error(format_args!(
                "{count} anchors exceeds the limit of {MAX_STATE_ANCHORS}"
            )));
        }
        let mut anchors = Vec::with_capacity(count);
        for _ in 0..count {
            let code = r.u8()?;
            let algorithm = SigAlgorithm::from_code(code)
                .ok_or_else(|| r.error(format_args!("unknown anchor key algorithm {code:#04x}")))?;
            anchors.push(VerifyingKey::from_bytes(
                algorithm,
                r.medium_bytes(algorithm.public_key_len())?,
            )?);
        }
        let count = r.u32()? as usize;
        if count > MAX_STATE_REVOKED {
            return Err(r.error(format_args!(
                "{count} revoked nodes exceeds the limit of {MAX_STATE_REVOKED}"
            )));
        }
        // Bounded by the check above and by the body length the envelope already checked.
        let mut revoked = Vec::with_capacity(count.min(bytes.len() / 32));
        for _ in 0..count {
            revoked.push(NodeId::from_bytes(r.array()?));
        }
        let state = Self {
            mesh,
            ledger_index,
            issued_at,
            issuer,
            anchors,
            revoked,
            policy_version: r.u64()?,
            policy_digest: r.array()?,
        };
        r.finish()?;
        state.validate()?;
        Ok(state)
    }

    fn issuer(&self) -> NodeId {
        self.issuer
    }

    fn validity(&self) -> (Timestamp, Timestamp) {
        // Never expires by time; superseded by a newer ledger index (see the module docs).
        (self.issued_at, Timestamp(u64::MAX))
    }
}
