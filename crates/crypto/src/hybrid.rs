//! Hybrid key exchange: X25519 + ML-KEM, combined with blake3.
//!
//! ```text
//! initiator                                      responder
//!   e_x, E_x = X25519 ephemeral
//!   dk, ek   = ML-KEM key pair
//!   ---- InitiatorHello { kem, E_x, ek } ------------>
//!                                                  f_x, F_x = X25519 ephemeral
//!                                                  ct, ss_kem = Encaps(ek)
//!   <--- ResponderHello { kem, F_x, ct } -------------
//!   ss_kem = Decaps(dk, ct)
//!   both:  ss_dh      = X25519(e_x, F_x) = X25519(f_x, E_x)
//!          transcript = blake3::derive_key(TRANSCRIPT, len|prologue, len|hello_i, len|hello_r)
//!          okm        = blake3::derive_key(SESSION, ss_dh | ss_kem | transcript)  (64 bytes)
//!          key_i2r    = okm[0..32], key_r2i = okm[32..64]
//! ```
//!
//! Both secrets go into one KDF call, so recovering the session keys needs *both* the X25519
//! secret and the ML-KEM secret: breaking either primitive alone (a quantum computer against
//! X25519, a flaw in ML-KEM) reveals nothing. The transcript (every byte both sides sent, plus
//! a caller prologue naming the mesh and the two identities) is in the KDF too, so any change
//! to any message gives different keys. The handshake is unauthenticated by itself: the data
//! plane signs [`SessionKeys::transcript_hash`] with both ends' ML-DSA identities.

use std::fmt;

use rand_core::OsRng;
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};

use crate::CryptoError;
use crate::aead::AeadKey;
use crate::kem::{KemAlgorithm, KemCiphertext, KemPublicKey, KemSecretKey, generate_kem_keypair};
use crate::wire::{Reader, Writer};

/// Wire version of both handshake messages.
pub const HANDSHAKE_VERSION: u8 = 1;
/// Longest prologue accepted, in bytes.
pub const MAX_PROLOGUE_LEN: usize = 4096;
const INITIATOR_HELLO: u8 = 1;
const RESPONDER_HELLO: u8 = 2;
const TRANSCRIPT_CONTEXT: &str = "x0t 2026-11 hybrid handshake v1 transcript";
const SESSION_CONTEXT: &str = "x0t 2026-11 hybrid handshake v1 session keys";
/// The longest KEM field any supported algorithm uses.
const MAX_KEM_FIELD: usize = 1184;

/// First message: the initiator's ephemeral X25519 share and ML-KEM encapsulation key.
#[derive(Clone, PartialEq, Eq)]
pub struct InitiatorHello {
    /// The initiator's ephemeral X25519 public key.
    pub x25519: [u8; 32],
    /// The initiator's ephemeral ML-KEM encapsulation key (its algorithm is the profile).
    pub kem_public: KemPublicKey,
}

/// Second message: the responder's ephemeral X25519 share and the ML-KEM ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponderHello {
    /// The responder's ephemeral X25519 public key.
    pub x25519: [u8; 32],
    /// The ciphertext encapsulating the ML-KEM shared secret to the initiator.
    pub kem_ciphertext: KemCiphertext,
}

fn encode_hello(kind: u8, kem: KemAlgorithm, x25519: &[u8; 32], kem_field: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(4 + 32 + 2 + kem_field.len());
    w.u8(HANDSHAKE_VERSION)
        .u8(kind)
        .u8(kem.code())
        .bytes(x25519)
        .medium_bytes(kem_field);
    w.finish()
}

fn decode_hello<'a>(
    what: &'static str,
    kind: u8,
    bytes: &'a [u8],
) -> Result<(KemAlgorithm, [u8; 32], &'a [u8]), CryptoError> {
    let mut r = Reader::new(what, bytes);
    let version = r.u8()?;
    if version != HANDSHAKE_VERSION {
        return Err(r.error(format_args!(
            "handshake version {version}, this build speaks {HANDSHAKE_VERSION}"
        )));
    }
    let found = r.u8()?;
    if found != kind {
        return Err(r.error(format_args!("message type {found}, expected {kind}")));
    }
    let code = r.u8()?;
    let kem = KemAlgorithm::from_code(code)
        .ok_or_else(|| r.error(format_args!("unknown KEM code {code:#04x}")))?;
    let x25519 = r.array::<32>()?;
    let field = r.medium_bytes(MAX_KEM_FIELD)?;
    r.finish()?;
    Ok((kem, x25519, field))
}

impl InitiatorHello {
    /// The canonical wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_hello(
            INITIATOR_HELLO,
            self.kem_public.algorithm(),
            &self.x25519,
            self.kem_public.as_bytes(),
        )
    }

    /// Parses wire bytes, bounding every field.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        let (kem, x25519, field) = decode_hello("initiator hello", INITIATOR_HELLO, bytes)?;
        Ok(Self {
            x25519,
            kem_public: KemPublicKey::from_bytes(kem, field)?,
        })
    }
}

impl ResponderHello {
    /// The canonical wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_hello(
            RESPONDER_HELLO,
            self.kem_ciphertext.algorithm(),
            &self.x25519,
            self.kem_ciphertext.as_bytes(),
        )
    }

    /// Parses wire bytes, bounding every field.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        let (kem, x25519, field) = decode_hello("responder hello", RESPONDER_HELLO, bytes)?;
        Ok(Self {
            x25519,
            kem_ciphertext: KemCiphertext::from_bytes(kem, field)?,
        })
    }
}

impl fmt::Debug for InitiatorHello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InitiatorHello({})", self.kem_public.algorithm())
    }
}

impl fmt::Debug for ResponderHello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponderHello({})", self.kem_ciphertext.algorithm())
    }
}

/// The result of a handshake for one side: a key to send with, a key to receive with, and
/// the transcript hash both sides must sign.
pub struct SessionKeys {
    /// Hash of the prologue and both messages; equal on both sides iff they saw the same bytes.
    pub transcript_hash: [u8; 32],
    /// Key for packets this side sends.
    pub send: AeadKey,
    /// Key for packets this side receives.
    pub receive: AeadKey,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("send", &self.send)
            .field("receive", &self.receive)
            .finish_non_exhaustive()
    }
}

/// The initiator's state between sending its hello and receiving the reply.
pub struct Initiator {
    prologue: Vec<u8>,
    kem: KemAlgorithm,
    x25519_secret: EphemeralSecret,
    kem_secret: KemSecretKey,
    hello_bytes: Vec<u8>,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Initiator({})", self.kem)
    }
}

fn check_prologue(prologue: &[u8]) -> Result<(), CryptoError> {
    if prologue.len() > MAX_PROLOGUE_LEN {
        return Err(CryptoError::Invalid {
            what: "handshake prologue",
            reason: format!("{} bytes, limit {MAX_PROLOGUE_LEN}", prologue.len()),
        });
    }
    Ok(())
}

impl Initiator {
    /// Draws fresh ephemeral keys and builds the first message. `prologue` binds context both
    /// sides already agree on (mesh, both node ids); a mismatch yields different keys.
    pub fn start(
        kem: KemAlgorithm,
        prologue: &[u8],
    ) -> Result<(Self, InitiatorHello), CryptoError> {
        check_prologue(prologue)?;
        let x25519_secret = EphemeralSecret::random_from_rng(OsRng);
        let (kem_public, kem_secret) = generate_kem_keypair(kem)?;
        let hello = InitiatorHello {
            x25519: X25519Public::from(&x25519_secret).to_bytes(),
            kem_public,
        };
        let initiator = Self {
            prologue: prologue.to_vec(),
            kem,
            x25519_secret,
            kem_secret,
            hello_bytes: hello.encode(),
        };
        Ok((initiator, hello))
    }

    /// Completes the exchange with the responder's reply.
    pub fn finish(self, reply: &ResponderHello) -> Result<SessionKeys, CryptoError> {
        if reply.kem_ciphertext.algorithm() != self.kem {
            return Err(CryptoError::Invalid {
                what: "responder hello",
                reason: format!(
                    "reply uses {}, handshake was started with {}",
                    reply.kem_ciphertext.algorithm(),
                    self.kem
                ),
            });
        }
        let dh = self
            .x25519_secret
            .diffie_hellman(&X25519Public::from(reply.x25519));
        if !dh.was_contributory() {
            return Err(CryptoError::NonContributory);
        }
        let kem_secret = self.kem_secret.decapsulate(&reply.kem_ciphertext)?;
        let transcript = transcript_hash(&self.prologue, &self.hello_bytes, &reply.encode());
        let (i2r, r2i) = session_keys(dh.as_bytes(), kem_secret.as_bytes(), &transcript);
        Ok(SessionKeys {
            transcript_hash: transcript,
            send: i2r,
            receive: r2i,
        })
    }
}

/// Answers an initiator's hello. `kem` is the algorithm the responder expects for this peer
/// (from its certificate's PQ profile); a hello offering anything else is refused, so an
/// attacker cannot downgrade a session to a weaker parameter set.
pub fn respond(
    kem: KemAlgorithm,
    prologue: &[u8],
    hello: &InitiatorHello,
) -> Result<(ResponderHello, SessionKeys), CryptoError> {
    check_prologue(prologue)?;
    if hello.kem_public.algorithm() != kem {
        return Err(CryptoError::Invalid {
            what: "initiator hello",
            reason: format!(
                "offers {}, this peer's profile requires {kem}",
                hello.kem_public.algorithm()
            ),
        });
    }
    let x25519_secret = EphemeralSecret::random_from_rng(OsRng);
    let reply_x25519 = X25519Public::from(&x25519_secret).to_bytes();
    let dh = x25519_secret.diffie_hellman(&X25519Public::from(hello.x25519));
    if !dh.was_contributory() {
        return Err(CryptoError::NonContributory);
    }
    let (kem_ciphertext, kem_secret) = hello.kem_public.encapsulate()?;
    let reply = ResponderHello {
        x25519: reply_x25519,
        kem_ciphertext,
    };
    let transcript = transcript_hash(prologue, &hello.encode(), &reply.encode());
    let (i2r, r2i) = session_keys(dh.as_bytes(), kem_secret.as_bytes(), &transcript);
    Ok((
        reply,
        SessionKeys {
            transcript_hash: transcript,
            send: r2i,
            receive: i2r,
        },
    ))
}

fn transcript_hash(prologue: &[u8], initiator_hello: &[u8], responder_hello: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(TRANSCRIPT_CONTEXT);
    for part in [prologue, initiator_hello, responder_hello] {
        // Length prefixes keep part boundaries unambiguous.
        hasher.update(&(part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

fn session_keys(dh: &[u8; 32], kem: &[u8; 32], transcript: &[u8; 32]) -> (AeadKey, AeadKey) {
    let mut hasher = blake3::Hasher::new_derive_key(SESSION_CONTEXT);
    hasher.update(dh);
    hasher.update(kem);
    hasher.update(transcript);
    let mut okm = zeroize::Zeroizing::new([0u8; 64]);
    hasher.finalize_xof().fill(okm.as_mut());
    let mut i2r = [0u8; 32];
    let mut r2i = [0u8; 32];
    i2r.copy_from_slice(&okm[..32]);
    r2i.copy_from_slice(&okm[32..]);
    (AeadKey::from_bytes(i2r), AeadKey::from_bytes(r2i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aead::{Opener, Sealer};

    #[test]
    fn both_sides_agree_and_talk() {
        for kem in KemAlgorithm::ALL {
            let (initiator, hello) = Initiator::start(kem, b"mesh a|n1|n2").unwrap();
            let hello = InitiatorHello::decode(&hello.encode()).unwrap();
            let (reply, responder_keys) = respond(kem, b"mesh a|n1|n2", &hello).unwrap();
            let reply = ResponderHello::decode(&reply.encode()).unwrap();
            let initiator_keys = initiator.finish(&reply).unwrap();

            assert_eq!(
                initiator_keys.transcript_hash,
                responder_keys.transcript_hash
            );
            assert_eq!(
                initiator_keys.send.key_id(),
                responder_keys.receive.key_id()
            );
            assert_eq!(
                initiator_keys.receive.key_id(),
                responder_keys.send.key_id()
            );
            assert_ne!(
                initiator_keys.send.key_id(),
                initiator_keys.receive.key_id()
            );

            let mut sealer = Sealer::new(initiator_keys.send);
            let opener = Opener::new(responder_keys.receive);
            let sealed = sealer.seal(b"h", b"ping").unwrap();
            assert_eq!(
                opener
                    .open(sealed.counter, b"h", &sealed.ciphertext)
                    .unwrap(),
                b"ping"
            );
        }
    }

    #[test]
    fn prologue_mismatch_gives_other_keys() {
        let kem = KemAlgorithm::MlKem768;
        let (initiator, hello) = Initiator::start(kem, b"mesh a").unwrap();
        let (reply, responder_keys) = respond(kem, b"mesh b", &hello).unwrap();
        let initiator_keys = initiator.finish(&reply).unwrap();
        assert_ne!(
            initiator_keys.send.key_id(),
            responder_keys.receive.key_id()
        );
    }

    #[test]
    fn downgrade_and_low_order_points_refused() {
        let (_, hello) = Initiator::start(KemAlgorithm::MlKem512, b"").unwrap();
        assert!(respond(KemAlgorithm::MlKem768, b"", &hello).is_err());

        let (initiator, mut hello) = Initiator::start(KemAlgorithm::MlKem768, b"").unwrap();
        let honest = hello.x25519;
        hello.x25519 = [0; 32];
        assert!(matches!(
            respond(KemAlgorithm::MlKem768, b"", &hello),
            Err(CryptoError::NonContributory)
        ));
        hello.x25519 = honest;
        let (mut reply, _) = respond(KemAlgorithm::MlKem768, b"", &hello).unwrap();
        reply.x25519 = [0; 32];
        assert!(matches!(
            initiator.finish(&reply),
            Err(CryptoError::NonContributory)
        ));
    }

    #[test]
    fn decoders_reject_garbage() {
        let (_, hello) = Initiator::start(KemAlgorithm::MlKem768, b"").unwrap();
        let bytes = hello.encode();
        assert!(InitiatorHello::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ResponderHello::decode(&bytes).is_err(), "type byte checked");
        let mut long = bytes.clone();
        long.push(0);
        assert!(InitiatorHello::decode(&long).is_err());
        assert!(InitiatorHello::decode(&[]).is_err());
        assert!(check_prologue(&vec![0; MAX_PROLOGUE_LEN + 1]).is_err());
    }
}
