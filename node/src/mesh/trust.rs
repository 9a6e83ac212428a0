//! What a mesh member trusts, decided offline: the anchor keys, the newest signed mesh state
//! (revocations, policy version) and the compiled policy. No I/O and no clock: callers pass
//! `now` and the bytes they received or loaded.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use x0t_crypto::{
    MeshState, NodeCertificate, SignedMeshState, SignedNodeCertificate, VerifyingKey, policy_digest,
};
use x0t_policy::Policy;
use x0t_types::{MeshId, NodeId, Timestamp};

/// Why a certificate, state or policy was not accepted.
pub type TrustError = String;

/// What accepting a newer state changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChange {
    /// Nodes revoked by this state that the previous one did not list.
    pub newly_revoked: Vec<NodeId>,
    /// The policy version the state names, when it differs from the compiled one.
    pub policy_wanted: Option<u64>,
}

/// The anchors, revocations and policy a member acts on.
#[derive(Debug)]
pub struct Trust {
    mesh: MeshId,
    anchors: BTreeMap<NodeId, VerifyingKey>,
    state: Option<SignedMeshState>,
    revoked: HashSet<NodeId>,
    policy: Arc<Policy>,
    policy_version: u64,
    policy_document: Option<String>,
}

impl Trust {
    /// Trust in `anchors` (learned at enrollment), no state yet: default deny.
    pub fn new(mesh: MeshId, anchors: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            mesh,
            anchors: anchors.into_iter().map(|k| (k.node_id(), k)).collect(),
            state: None,
            revoked: HashSet::new(),
            policy: Arc::new(Policy::deny_all()),
            policy_version: 0,
            policy_document: None,
        }
    }

    /// The mesh.
    pub fn mesh(&self) -> &MeshId {
        &self.mesh
    }

    /// Ledger index of the newest accepted state (0: none).
    pub fn state_index(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.payload().ledger_index)
    }

    /// The newest accepted state's envelope bytes, to cache or forward.
    pub fn state_bytes(&self) -> Option<Vec<u8>> {
        self.state.as_ref().map(SignedMeshState::encode)
    }

    /// The newest accepted state.
    pub fn state(&self) -> Option<&MeshState> {
        self.state.as_ref().map(SignedMeshState::payload)
    }

    /// The trusted anchors' keys.
    pub fn anchor_ids(&self) -> impl Iterator<Item = &NodeId> {
        self.anchors.keys()
    }

    /// Whether `node` is revoked.
    pub fn is_revoked(&self, node: &NodeId) -> bool {
        self.revoked.contains(node)
    }

    /// The compiled policy and its version (0: none yet, everything denied).
    pub fn policy(&self) -> (Arc<Policy>, u64) {
        (self.policy.clone(), self.policy_version)
    }

    /// The document of the compiled policy, to cache.
    pub fn policy_document(&self) -> Option<&str> {
        self.policy_document.as_deref()
    }

    /// Checks a peer's certificate offline: signed by a trusted anchor, valid at `now`, for
    /// this mesh, not revoked, and naming `peer_id` (the Noise-authenticated libp2p peer).
    pub fn verify_certificate(
        &self,
        bytes: &[u8],
        peer_id: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<NodeCertificate, TrustError> {
        let signed = SignedNodeCertificate::decode(bytes)
            .map_err(|e| format!("unreadable certificate: {e}"))?;
        let issuer = signed.payload().issuer;
        let key = self.anchors.get(&issuer).ok_or_else(|| {
            format!(
                "certificate signed by {}, which is not an anchor",
                issuer.short()
            )
        })?;
        let cert = signed
            .verify(key, now)
            .map_err(|e| format!("certificate refused: {e}"))?;
        if cert.mesh != self.mesh {
            return Err(format!(
                "certificate is for mesh {}, not {}",
                cert.mesh, self.mesh
            ));
        }
        if self.is_revoked(&cert.node_id) {
            return Err(format!("node {} is revoked", cert.node_id.short()));
        }
        if let Some(peer_id) = peer_id
            && cert.peer_id != peer_id
        {
            return Err("certificate names another libp2p peer".to_owned());
        }
        Ok(cert.clone())
    }

    /// Accepts a signed state if a trusted anchor signed it for this mesh and it is newer
    /// than the one held. Its anchor list replaces the trusted set.
    pub fn accept_state(&mut self, bytes: &[u8]) -> Result<Option<StateChange>, TrustError> {
        let signed =
            SignedMeshState::decode(bytes).map_err(|e| format!("unreadable mesh state: {e}"))?;
        let issuer = signed.payload().issuer;
        let key = self.anchors.get(&issuer).ok_or_else(|| {
            format!(
                "mesh state signed by {}, which is not an anchor",
                issuer.short()
            )
        })?;
        let state = signed
            .verify_signature(key)
            .map_err(|e| format!("mesh state refused: {e}"))?
            .clone();
        if state.mesh != self.mesh {
            return Err(format!(
                "mesh state is for mesh {}, not {}",
                state.mesh, self.mesh
            ));
        }
        if state.ledger_index <= self.state_index() {
            return Ok(None);
        }
        let newly_revoked = state
            .revoked
            .iter()
            .filter(|id| !self.revoked.contains(id))
            .copied()
            .collect();
        self.revoked = state.revoked.iter().copied().collect();
        self.anchors = state
            .anchors
            .iter()
            .map(|k| (k.node_id(), k.clone()))
            .collect();
        let policy_wanted =
            (state.policy_version != self.policy_version).then_some(state.policy_version);
        if state.policy_version == 0 {
            self.policy = Arc::new(Policy::deny_all());
            self.policy_version = 0;
            self.policy_document = None;
        }
        self.state = Some(signed);
        Ok(Some(StateChange {
            newly_revoked,
            policy_wanted: policy_wanted.filter(|v| *v != 0),
        }))
    }

    /// Installs the document of the policy version the current state names; the digest must
    /// match the state's. Returns whether the policy changed.
    pub fn accept_policy(&mut self, version: u64, document: &str) -> Result<bool, TrustError> {
        let Some(state) = self.state() else {
            return Err("no mesh state names a policy yet".to_owned());
        };
        if state.policy_version != version {
            return Err(format!(
                "policy version {version} is not the one in force ({})",
                state.policy_version
            ));
        }
        if policy_digest(document) != state.policy_digest {
            return Err(format!(
                "policy version {version} does not match the signed digest"
            ));
        }
        if self.policy_version == version {
            return Ok(false);
        }
        let policy = Policy::parse(document).map_err(|e| format!("policy {version}: {e}"))?;
        self.policy = Arc::new(policy);
        self.policy_version = version;
        self.policy_document = Some(document.to_owned());
        Ok(true)
    }
}
