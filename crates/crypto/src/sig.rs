//! ML-DSA (FIPS 204) signatures through liboqs: identities, certificates, tokens, transcripts.

use std::fmt;

use x0t_types::{NodeId, PqProfile};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Which ML-DSA parameter set a key or signature belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigAlgorithm {
    /// ML-DSA-44 (NIST category 2), for constrained devices.
    MlDsa44,
    /// ML-DSA-65 (NIST category 3), the default for every identity.
    MlDsa65,
}

impl SigAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 2] = [Self::MlDsa44, Self::MlDsa65];

    /// The stable one-byte code used in signed encodings and key files. Never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::MlDsa44 => 0x44,
            Self::MlDsa65 => 0x65,
        }
    }

    /// The algorithm for a code, if it is one we support.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The standard name, e.g. `ML-DSA-65`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MlDsa44 => "ML-DSA-44",
            Self::MlDsa65 => "ML-DSA-65",
        }
    }

    /// The signature algorithm of a post-quantum profile.
    pub const fn for_profile(profile: PqProfile) -> Self {
        match profile {
            PqProfile::Standard => Self::MlDsa65,
            PqProfile::Constrained => Self::MlDsa44,
        }
    }

    /// Length of a public key in bytes (FIPS 204 table 2).
    pub const fn public_key_len(self) -> usize {
        match self {
            Self::MlDsa44 => 1312,
            Self::MlDsa65 => 1952,
        }
    }

    /// Length of a secret key in bytes as liboqs stores it.
    pub const fn secret_key_len(self) -> usize {
        match self {
            Self::MlDsa44 => 2560,
            Self::MlDsa65 => 4032,
        }
    }

    /// Length of a signature in bytes.
    pub const fn signature_len(self) -> usize {
        match self {
            Self::MlDsa44 => 2420,
            Self::MlDsa65 => 3309,
        }
    }

    fn oqs(self) -> Result<oqs::sig::Sig, CryptoError> {
        oqs::init();
        let algorithm = match self {
            Self::MlDsa44 => oqs::sig::Algorithm::MlDsa44,
            Self::MlDsa65 => oqs::sig::Algorithm::MlDsa65,
        };
        oqs::sig::Sig::new(algorithm).map_err(|e| CryptoError::oqs("signature setup", e))
    }
}

impl fmt::Display for SigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a signature is about. Each domain is a distinct FIPS 204 context string, so a
/// signature made for one purpose (say a join token) can never be replayed as another
/// (a certificate), whatever the bytes happen to look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureDomain {
    /// A [`crate::NodeCertificate`] signed by an anchor.
    NodeCertificate,
    /// A [`crate::JoinToken`] signed by an anchor.
    JoinToken,
    /// A data-plane handshake transcript signed by one end of the session.
    HandshakeTranscript,
    /// Binding of a node's libp2p peer id to its ML-DSA identity.
    PeerIdBinding,
    /// A node's [`crate::Registration`], signed with its own identity key.
    Registration,
    /// An anchor's [`crate::AuditStatement`]: who asked for a ledger change.
    AuditStatement,
    /// The throwaway probe [`SigningKey::check_pair`] signs; never leaves the process.
    KeyPairProbe,
    /// A [`crate::MeshState`] signed by an anchor: anchors, revocations, policy version.
    MeshState,
    /// A [`crate::LinkStateAdvert`] signed by the node whose links it lists.
    LinkState,
}

impl SignatureDomain {
    /// The context string handed to ML-DSA.
    pub const fn context(self) -> &'static [u8] {
        match self {
            Self::NodeCertificate => b"x0t/node-certificate/v1",
            Self::JoinToken => b"x0t/join-token/v1",
            Self::HandshakeTranscript => b"x0t/handshake-transcript/v1",
            Self::PeerIdBinding => b"x0t/peer-id-binding/v1",
            Self::Registration => b"x0t/node-registration/v1",
            Self::AuditStatement => b"x0t/audit-statement/v1",
            Self::KeyPairProbe => b"x0t/key-pair-probe/v1",
            Self::MeshState => b"x0t/mesh-state/v1",
            Self::LinkState => b"x0t/link-state/v1",
        }
    }

    /// A human name for error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NodeCertificate => "node certificate",
            Self::JoinToken => "join token",
            Self::HandshakeTranscript => "handshake transcript",
            Self::PeerIdBinding => "peer id binding",
            Self::Registration => "node registration",
            Self::AuditStatement => "audit statement",
            Self::KeyPairProbe => "key pair probe",
            Self::MeshState => "mesh state",
            Self::LinkState => "link state",
        }
    }
}

/// An ML-DSA public key: what a node's [`NodeId`] is the hash of.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifyingKey {
    algorithm: SigAlgorithm,
    bytes: Vec<u8>,
}

impl VerifyingKey {
    length_checked_bytes!(SigAlgorithm, "ML-DSA public key", public_key_len);

    /// The node id this key stands for: blake3 of the public key bytes.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_bytes(*blake3::hash(&self.bytes).as_bytes())
    }

    /// Checks `signature` over `message` in `domain`.
    pub fn verify(
        &self,
        domain: SignatureDomain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        if signature.algorithm != self.algorithm {
            return Err(CryptoError::AlgorithmMismatch {
                key: self.algorithm.name(),
                signature: signature.algorithm.name(),
            });
        }
        let sig = self.algorithm.oqs()?;
        let bad = || CryptoError::BadSignature {
            what: domain.name(),
        };
        let public = sig.public_key_from_bytes(&self.bytes).ok_or_else(bad)?;
        let signature = sig.signature_from_bytes(&signature.bytes).ok_or_else(bad)?;
        sig.verify_with_ctx_str(message, signature, domain.context(), public)
            .map_err(|_| bad())
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VerifyingKey({}, {})",
            self.algorithm,
            self.node_id().short()
        )
    }
}

/// An ML-DSA signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    algorithm: SigAlgorithm,
    bytes: Vec<u8>,
}

impl Signature {
    length_checked_bytes!(SigAlgorithm, "ML-DSA signature", signature_len);
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signature({}, {} bytes)",
            self.algorithm,
            self.bytes.len()
        )
    }
}

/// An ML-DSA key pair: a node's long-term identity, or an anchor's certificate-signing key.
pub struct SigningKey {
    public: VerifyingKey,
    secret: Zeroizing<Vec<u8>>,
}

impl SigningKey {
    /// Generates a fresh key pair from the operating system's randomness (inside liboqs).
    pub fn generate(algorithm: SigAlgorithm) -> Result<Self, CryptoError> {
        let (public, secret) = algorithm
            .oqs()?
            .keypair()
            .map_err(|e| CryptoError::oqs("ML-DSA key generation", e))?;
        Ok(Self {
            public: VerifyingKey {
                algorithm,
                bytes: public.into_vec(),
            },
            secret: Zeroizing::new(secret.into_vec()),
        })
    }

    /// Rebuilds a key pair from stored bytes (lengths checked; consistency is the key file's
    /// checksum's job, plus [`SigningKey::check_pair`] where wanted).
    pub fn from_parts(
        algorithm: SigAlgorithm,
        public: &[u8],
        secret: &[u8],
    ) -> Result<Self, CryptoError> {
        check_len(
            "ML-DSA secret key",
            algorithm.secret_key_len(),
            secret.len(),
        )?;
        Ok(Self {
            public: VerifyingKey::from_bytes(algorithm, public)?,
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    /// The public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> SigAlgorithm {
        self.public.algorithm
    }

    /// The node id of this key's public half.
    pub fn node_id(&self) -> NodeId {
        self.public.node_id()
    }

    /// Signs `message` in `domain`. ML-DSA signing in liboqs is randomized ("hedged"), so two
    /// signatures of one message differ; both verify.
    pub fn sign(&self, domain: SignatureDomain, message: &[u8]) -> Result<Signature, CryptoError> {
        let sig = self.algorithm().oqs()?;
        let secret =
            sig.secret_key_from_bytes(&self.secret)
                .ok_or_else(|| CryptoError::InvalidLength {
                    what: "ML-DSA secret key",
                    expected: self.algorithm().secret_key_len(),
                    actual: self.secret.len(),
                })?;
        let signature = sig
            .sign_with_ctx_str(message, domain.context(), secret)
            .map_err(|e| CryptoError::oqs("ML-DSA signing", e))?;
        Ok(Signature {
            algorithm: self.algorithm(),
            bytes: signature.into_vec(),
        })
    }

    /// Proves the secret half matches the public half by signing and verifying a probe.
    /// Used after loading a key from disk.
    pub fn check_pair(&self) -> Result<(), CryptoError> {
        const PROBE: &[u8] = b"x0t key pair consistency probe";
        let signature = self.sign(SignatureDomain::KeyPairProbe, PROBE)?;
        self.public
            .verify(SignatureDomain::KeyPairProbe, PROBE, &signature)
    }

    pub(crate) fn secret_bytes(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?}, secret: <redacted>)", self.public)
    }
}

/// Generates `from_bytes` (length-checked for the algorithm), `algorithm` and `as_bytes` for a
/// `{ algorithm, bytes: Vec<u8> }` struct: the four public byte-carrying types share them.
macro_rules! length_checked_bytes {
    ($algorithm:ty, $what:literal, $len:ident) => {
        /// Wraps raw bytes after checking their length for `algorithm`.
        pub fn from_bytes(algorithm: $algorithm, bytes: &[u8]) -> Result<Self, CryptoError> {
            $crate::sig::check_len($what, algorithm.$len(), bytes.len())?;
            Ok(Self {
                algorithm,
                bytes: bytes.to_vec(),
            })
        }

        /// The algorithm these bytes belong to.
        pub fn algorithm(&self) -> $algorithm {
            self.algorithm
        }

        /// The raw bytes.
        pub fn as_bytes(&self) -> &[u8] {
            &self.bytes
        }
    };
}
pub(crate) use length_checked_bytes;

pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), CryptoError> {
    if expected == actual {
        Ok(())
    } else {
        Err(CryptoError::InvalidLength {
            what,
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_both_parameter_sets() {
        for algorithm in SigAlgorithm::ALL {
            let key = SigningKey::generate(algorithm).unwrap();
            assert_eq!(
                key.verifying_key().as_bytes().len(),
                algorithm.public_key_len()
            );
            let signature = key.sign(SignatureDomain::JoinToken, b"hello").unwrap();
            assert_eq!(signature.as_bytes().len(), algorithm.signature_len());
            let public = key.verifying_key();
            public
                .verify(SignatureDomain::JoinToken, b"hello", &signature)
                .unwrap();
            assert!(
                public
                    .verify(SignatureDomain::JoinToken, b"hellO", &signature)
                    .is_err()
            );
            // Domain separation: same bytes, other purpose, no.
            assert!(
                public
                    .verify(SignatureDomain::NodeCertificate, b"hello", &signature)
                    .is_err()
            );
            key.check_pair().unwrap();
        }
    }

    #[test]
    fn wrong_key_and_algorithm_rejected() {
        let a = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
        let b = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
        let c = SigningKey::generate(SigAlgorithm::MlDsa44).unwrap();
        let signature = a.sign(SignatureDomain::JoinToken, b"m").unwrap();
        assert!(
            b.verifying_key()
                .verify(SignatureDomain::JoinToken, b"m", &signature)
                .is_err()
        );
        assert!(matches!(
            c.verifying_key()
                .verify(SignatureDomain::JoinToken, b"m", &signature),
            Err(CryptoError::AlgorithmMismatch { .. })
        ));
        assert_ne!(a.node_id(), b.node_id());
        // A mismatched pair is caught.
        let mixed = SigningKey::from_parts(
            SigAlgorithm::MlDsa65,
            b.verifying_key().as_bytes(),
            a.secret_bytes(),
        )
        .unwrap();
        assert!(mixed.check_pair().is_err());
    }

    #[test]
    fn lengths_are_checked() {
        assert!(matches!(
            VerifyingKey::from_bytes(SigAlgorithm::MlDsa65, &[0; 10]),
            Err(CryptoError::InvalidLength {
                expected: 1952,
                actual: 10,
                ..
            })
        ));
        assert!(Signature::from_bytes(SigAlgorithm::MlDsa44, &[0; 2421]).is_err());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let key = SigningKey::generate(SigAlgorithm::MlDsa44).unwrap();
        let text = format!("{key:?}");
        assert!(text.contains("<redacted>"));
        assert!(text.len() < 200);
    }
}
