//! Data-plane sessions: the authenticated hybrid handshake between two approved nodes, and
//! the per-session sealing state.
//!
//! ```text
//! initiator I                                             responder R
//!   HandshakeInit { i_index, hello_i, sig_I("init" ‖ H(prologue, hello_i)) }  ──►
//!                        R checks sig_I with I's certificate key, runs hybrid::respond
//!   ◄── HandshakeReply { r_index, hello_r, sig_R("reply" ‖ transcript) }
//!   I checks sig_R, derives keys
//!   HandshakeConfirm { r_index, sig_I("confirm" ‖ transcript) }  ──►
//!                        R checks sig_I; the session is live on both sides
//! prologue = "x0t session v1" ‖ mesh ‖ I's node id ‖ R's node id ‖ i_index
//! ```
//!
//! Both ML-DSA identities sign the transcript (each with a role label, so one signature can
//! never stand for the other), the keys depend on X25519 and ML-KEM secrets and on every byte
//! exchanged, and the KEM is the stronger of the two certificates' profiles (ML-KEM-512 only
//! when both ends are `constrained`). The messages travel on the libp2p connection whose
//! peer id the certificates name; the frames then go over UDP.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use x0t_crypto::aead::{Opener, Sealer, TAG_LEN};
use x0t_crypto::frame::{
    self, DEFAULT_HOPS, Frame, FrameHeader, FrameKind, HEADER_LEN, ReplayWindow,
};
use x0t_crypto::hybrid::{self, InitiatorHello, ResponderHello, SessionKeys};
use x0t_crypto::kem::KemAlgorithm;
use x0t_crypto::{CryptoError, NodeCertificate, Signature, SignatureDomain, SigningKey};
use x0t_types::{MeshId, NodeId, PqProfile};

/// The KEM a session between two profiles uses: the stronger of the two.
pub fn kem_for(a: PqProfile, b: PqProfile) -> KemAlgorithm {
    if a == PqProfile::Constrained && b == PqProfile::Constrained {
        KemAlgorithm::MlKem512
    } else {
        KemAlgorithm::MlKem768
    }
}

/// The context both ends bind into the key exchange.
fn prologue(
    mesh: &MeshId,
    initiator: &NodeId,
    responder: &NodeId,
    initiator_index: u32,
) -> Vec<u8> {
    let mut out = b"x0t session v1".to_vec();
    out.push(mesh.as_str().len() as u8);
    out.extend_from_slice(mesh.as_str().as_bytes());
    out.extend_from_slice(initiator.as_bytes());
    out.extend_from_slice(responder.as_bytes());
    out.extend_from_slice(&initiator_index.to_be_bytes());
    out
}

fn init_digest(prologue: &[u8], hello: &[u8]) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new_derive_key("x0t 2026-11 session init v1");
    for part in [prologue, hello] {
        hasher.update(&(part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let mut out = b"init".to_vec();
    out.extend_from_slice(hasher.finalize().as_bytes());
    out
}

fn labelled(label: &[u8], transcript: &[u8; 32]) -> Vec<u8> {
    let mut out = label.to_vec();
    out.extend_from_slice(transcript);
    out
}

fn check_signature(
    certificate: &NodeCertificate,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let key = &certificate.identity_key;
    let signature = Signature::from_bytes(key.algorithm(), signature)
        .map_err(|e| format!("malformed signature: {e}"))?;
    key.verify(SignatureDomain::HandshakeTranscript, message, &signature)
        .map_err(|_| {
            format!(
                "bad handshake signature from {}",
                certificate.node_id.short()
            )
        })
}

/// Who a handshake is between, from this side's point of view.
#[derive(Clone, Copy, Debug)]
pub struct Parties<'a> {
    /// The mesh.
    pub mesh: &'a MeshId,
    /// This node's identity.
    pub identity: &'a SigningKey,
    /// This node's PQ profile (from its certificate).
    pub profile: PqProfile,
    /// The peer's verified certificate.
    pub peer: &'a NodeCertificate,
}

/// The initiator's state between its first and third message.
pub struct Initiating {
    local_index: u32,
    initiator: hybrid::Initiator,
    started: Instant,
}

impl std::fmt::Debug for Initiating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Initiating(index {})", self.local_index)
    }
}

/// The first message: the hello and its signature.
#[derive(Clone, Debug)]
pub struct InitMessage {
    /// `InitiatorHello` bytes.
    pub hello: Vec<u8>,
    /// The initiator's signature.
    pub signature: Vec<u8>,
}

/// Starts a handshake to `parties.peer`, receiving under `local_index`.
pub fn initiate(
    parties: Parties<'_>,
    local_index: u32,
) -> Result<(Initiating, InitMessage), String> {
    let kem = kem_for(parties.profile, parties.peer.pq_profile);
    let prologue = prologue(
        parties.mesh,
        &parties.identity.node_id(),
        &parties.peer.node_id,
        local_index,
    );
    let (initiator, hello) = hybrid::Initiator::start(kem, &prologue).map_err(|e| e.to_string())?;
    let hello = hello.encode();
    let signature = parties
        .identity
        .sign(
            SignatureDomain::HandshakeTranscript,
            &init_digest(&prologue, &hello),
        )
        .map_err(|e| e.to_string())?;
    Ok((
        Initiating {
            local_index,
            initiator,
            started: Instant::now(),
        },
        InitMessage {
            hello,
            signature: signature.as_bytes().to_vec(),
        },
    ))
}

/// The responder's answer and the keys it will use once the initiator confirms.
pub struct Responding {
    /// The transcript the initiator must sign.
    pub transcript: [u8; 32],
    keys: SessionKeys,
    initiator_index: u32,
    local_index: u32,
}

impl std::fmt::Debug for Responding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Responding(index {})", self.local_index)
    }
}

/// Answers a first message from `parties.peer`, receiving under `local_index`.
pub fn respond(
    parties: Parties<'_>,
    initiator_index: u32,
    message: &InitMessage,
    local_index: u32,
) -> Result<(Responding, InitMessage), String> {
    let prologue = prologue(
        parties.mesh,
        &parties.peer.node_id,
        &parties.identity.node_id(),
        initiator_index,
    );
    check_signature(
        parties.peer,
        &init_digest(&prologue, &message.hello),
        &message.signature,
    )?;
    let hello = InitiatorHello::decode(&message.hello).map_err(|e| e.to_string())?;
    let kem = kem_for(parties.profile, parties.peer.pq_profile);
    let (reply, keys) = hybrid::respond(kem, &prologue, &hello).map_err(|e| e.to_string())?;
    let signature = parties
        .identity
        .sign(
            SignatureDomain::HandshakeTranscript,
            &labelled(b"reply", &keys.transcript_hash),
        )
        .map_err(|e| e.to_string())?;
    Ok((
        Responding {
            transcript: keys.transcript_hash,
            keys,
            initiator_index,
            local_index,
        },
        InitMessage {
            hello: reply.encode(),
            signature: signature.as_bytes().to_vec(),
        },
    ))
}

/// The initiator checks the reply and gets its session plus the confirmation to send.
pub fn finish(
    parties: Parties<'_>,
    initiating: Initiating,
    responder_index: u32,
    reply: &InitMessage,
) -> Result<(Session, Vec<u8>), String> {
    let hello = ResponderHello::decode(&reply.hello).map_err(|e| e.to_string())?;
    let keys = initiating
        .initiator
        .finish(&hello)
        .map_err(|e| e.to_string())?;
    check_signature(
        parties.peer,
        &labelled(b"reply", &keys.transcript_hash),
        &reply.signature,
    )?;
    let confirm = parties
        .identity
        .sign(
            SignatureDomain::HandshakeTranscript,
            &labelled(b"confirm", &keys.transcript_hash),
        )
        .map_err(|e| e.to_string())?;
    let session = Session::new(
        parties.peer.node_id,
        initiating.local_index,
        responder_index,
        keys,
        true,
        initiating.started,
    );
    Ok((session, confirm.as_bytes().to_vec()))
}

/// The responder checks the confirmation and gets its session.
pub fn confirm(
    parties: Parties<'_>,
    responding: Responding,
    signature: &[u8],
) -> Result<Session, String> {
    check_signature(
        parties.peer,
        &labelled(b"confirm", &responding.transcript),
        signature,
    )?;
    Ok(Session::new(
        parties.peer.node_id,
        responding.local_index,
        responding.initiator_index,
        responding.keys,
        false,
        Instant::now(),
    ))
}

/// One live session with a peer: keys for both directions, the replay window, counters.
pub struct Session {
    /// The peer.
    pub peer: NodeId,
    /// The index frames to us carry.
    pub local_index: u32,
    /// The index frames to the peer carry.
    pub remote_index: u32,
    /// Whether this side started it.
    pub initiator: bool,
    /// When the handshake started (this side).
    pub started: Instant,
    /// When it became live.
    pub created: Instant,
    sealer: Mutex<Sealer>,
    opener: Opener,
    window: Mutex<ReplayWindow>,
    /// Frames sealed.
    pub frames_sent: AtomicU64,
    /// Frames opened.
    pub frames_received: AtomicU64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Session({} local {} remote {})",
            self.peer.short(),
            self.local_index,
            self.remote_index
        )
    }
}

impl Session {
    fn new(
        peer: NodeId,
        local_index: u32,
        remote_index: u32,
        keys: SessionKeys,
        initiator: bool,
        started: Instant,
    ) -> Self {
        Self {
            peer,
            local_index,
            remote_index,
            initiator,
            started,
            created: Instant::now(),
            sealer: Mutex::new(Sealer::new(keys.send)),
            opener: Opener::new(keys.receive),
            window: Mutex::new(ReplayWindow::new()),
            frames_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
        }
    }

    /// Seals `payload` into frame bytes from `src` to the peer.
    pub fn seal(
        &self,
        kind: FrameKind,
        src: NodeId,
        payload: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
        self.seal_into(kind, src, payload, &mut out)?;
        Ok(out)
    }

    /// Seals `payload` as a frame from `src` to the peer, appended to `out` (a batch being
    /// built); returns the frame's length.
    pub fn seal_into(
        &self,
        kind: FrameKind,
        src: NodeId,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, CryptoError> {
        let header = FrameHeader {
            kind,
            hops: DEFAULT_HOPS,
            dst: self.peer,
            src,
            session: self.remote_index,
            counter: 0,
        };
        let len = {
            let mut sealer = self.sealer.lock().unwrap_or_else(|p| p.into_inner());
            frame::seal_into(&mut sealer, header, payload, out)?
        };
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        Ok(len)
    }

    /// Opens a frame addressed to this session (replays and forgeries refused).
    pub fn open(&self, frame: &Frame) -> Result<Vec<u8>, CryptoError> {
        let plaintext = {
            let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            frame.open(&self.opener, &mut window)?
        };
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        Ok(plaintext)
    }

    /// Opens the frame `bytes` (with its decoded `header`) in place; returns the plaintext.
    pub fn open_in_place<'a>(
        &self,
        header: &FrameHeader,
        bytes: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let plaintext = {
            let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
            frame::open_in_place(header, bytes, &self.opener, &mut window)?
        };
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        Ok(plaintext)
    }

    /// Frames sealed so far under this session's send key.
    pub fn sealed_count(&self) -> u64 {
        self.sealer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sealed_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x0t_crypto::SigAlgorithm;

    fn certificate(identity: &SigningKey, profile: PqProfile) -> NodeCertificate {
        NodeCertificate {
            mesh: MeshId::new("m").unwrap_or_else(|e| panic!("{e}")),
            node_id: identity.node_id(),
            identity_key: identity.verifying_key().clone(),
            peer_id: vec![1; 38],
            overlay_ip: std::net::Ipv4Addr::new(100, 64, 0, 1),
            tags: Vec::new(),
            device_class: x0t_types::DeviceClass::Server,
            pq_profile: profile,
            not_before: x0t_types::Timestamp(0),
            not_after: x0t_types::Timestamp(u64::MAX),
            ledger_index: 1,
            issuer: identity.node_id(),
        }
    }

    fn key() -> SigningKey {
        SigningKey::generate(SigAlgorithm::MlDsa65).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn both_identities_sign_and_frames_flow_both_ways() {
        let mesh = MeshId::new("m").unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (key(), key());
        let (cert_a, cert_b) = (
            certificate(&a, PqProfile::Standard),
            certificate(&b, PqProfile::Constrained),
        );
        let at_a = Parties {
            mesh: &mesh,
            identity: &a,
            profile: PqProfile::Standard,
            peer: &cert_b,
        };
        let at_b = Parties {
            mesh: &mesh,
            identity: &b,
            profile: PqProfile::Constrained,
            peer: &cert_a,
        };
        let (initiating, init) = initiate(at_a, 7).unwrap_or_else(|e| panic!("{e}"));
        // A hello for a different initiator index (a replay into another slot) is refused.
        assert!(respond(at_b, 8, &init, 9).is_err());
        let (responding, reply) = respond(at_b, 7, &init, 9).unwrap_or_else(|e| panic!("{e}"));
        let (session_a, confirmation) =
            finish(at_a, initiating, 9, &reply).unwrap_or_else(|e| panic!("{e}"));
        // A confirmation signed by anyone else is refused.
        let stranger = key();
        let forged = stranger
            .sign(
                SignatureDomain::HandshakeTranscript,
                &labelled(b"confirm", &responding.transcript),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(confirm(at_b, responding, forged.as_bytes()).is_err());
        let (_, init) = initiate(at_a, 7).unwrap_or_else(|e| panic!("{e}"));
        let (responding, _) = respond(at_b, 7, &init, 9).unwrap_or_else(|e| panic!("{e}"));
        // The reply signature cannot be replayed as a confirmation (role labels differ).
        assert!(confirm(at_b, responding, &reply.signature).is_err());

        // A fresh, complete handshake.
        let (initiating, init) = initiate(at_a, 11).unwrap_or_else(|e| panic!("{e}"));
        let (responding, reply) = respond(at_b, 11, &init, 12).unwrap_or_else(|e| panic!("{e}"));
        let (session_a2, confirmation2) =
            finish(at_a, initiating, 12, &reply).unwrap_or_else(|e| panic!("{e}"));
        let session_b = confirm(at_b, responding, &confirmation2).unwrap_or_else(|e| panic!("{e}"));
        drop((session_a, confirmation));
        let bytes = session_a2
            .seal(FrameKind::Data, a.node_id(), b"hello b")
            .unwrap_or_else(|e| panic!("{e}"));
        let frame = Frame::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(frame.header.session, 12);
        assert_eq!(
            session_b.open(&frame).unwrap_or_else(|e| panic!("{e}")),
            b"hello b"
        );
        assert!(session_b.open(&frame).is_err(), "a replay is refused");
        let back = session_b
            .seal(FrameKind::Data, b.node_id(), b"hello a")
            .unwrap_or_else(|e| panic!("{e}"));
        let frame = Frame::decode(&back).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(frame.header.session, 11);
        assert_eq!(
            session_a2.open(&frame).unwrap_or_else(|e| panic!("{e}")),
            b"hello a"
        );
    }

    #[test]
    fn the_kem_is_the_stronger_profile() {
        use PqProfile::{Constrained, Standard};
        assert_eq!(kem_for(Constrained, Constrained), KemAlgorithm::MlKem512);
        assert_eq!(kem_for(Standard, Constrained), KemAlgorithm::MlKem768);
        assert_eq!(kem_for(Constrained, Standard), KemAlgorithm::MlKem768);
    }
}
