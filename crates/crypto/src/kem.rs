//! ML-KEM (FIPS 203) key encapsulation through liboqs.

use std::fmt;

use x0t_types::PqProfile;
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::sig::{check_len, length_checked_bytes};

/// Which ML-KEM parameter set a key or ciphertext belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KemAlgorithm {
    /// ML-KEM-512 (NIST category 1), for constrained devices.
    MlKem512,
    /// ML-KEM-768 (NIST category 3), the default for every session.
    MlKem768,
}

impl KemAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 2] = [Self::MlKem512, Self::MlKem768];

    /// The stable one-byte code used in handshake messages. Never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::MlKem512 => 0x05,
            Self::MlKem768 => 0x07,
        }
    }

    /// The algorithm for a code, if it is one we support.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The standard name, e.g. `ML-KEM-768`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MlKem512 => "ML-KEM-512",
            Self::MlKem768 => "ML-KEM-768",
        }
    }

    /// The KEM of a post-quantum profile.
    pub const fn for_profile(profile: PqProfile) -> Self {
        match profile {
            PqProfile::Standard => Self::MlKem768,
            PqProfile::Constrained => Self::MlKem512,
        }
    }

    /// Length of an encapsulation key in bytes (FIPS 203 table 3).
    pub const fn public_key_len(self) -> usize {
        match self {
            Self::MlKem512 => 800,
            Self::MlKem768 => 1184,
        }
    }

    /// Length of a ciphertext in bytes.
    pub const fn ciphertext_len(self) -> usize {
        match self {
            Self::MlKem512 => 768,
            Self::MlKem768 => 1088,
        }
    }

    /// Length of the shared secret: 32 bytes for every ML-KEM parameter set.
    pub const SHARED_SECRET_LEN: usize = 32;

    fn oqs(self) -> Result<oqs::kem::Kem, CryptoError> {
        oqs::init();
        let algorithm = match self {
            Self::MlKem512 => oqs::kem::Algorithm::MlKem512,
            Self::MlKem768 => oqs::kem::Algorithm::MlKem768,
        };
        oqs::kem::Kem::new(algorithm).map_err(|e| CryptoError::oqs("KEM setup", e))
    }
}

impl fmt::Display for KemAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An ML-KEM encapsulation (public) key.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey {
    algorithm: KemAlgorithm,
    bytes: Vec<u8>,
}

/// An ML-KEM decapsulation (secret) key; wiped from memory on drop.
pub struct KemSecretKey {
    algorithm: KemAlgorithm,
    bytes: Zeroizing<Vec<u8>>,
}

/// An ML-KEM ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct KemCiphertext {
    algorithm: KemAlgorithm,
    bytes: Vec<u8>,
}

/// The 32-byte secret both sides of an encapsulation share; wiped on drop.
pub struct KemSharedSecret(Zeroizing<[u8; 32]>);

impl KemSharedSecret {
    /// The secret bytes, for key derivation only.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KemSharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KemSharedSecret(<redacted>)")
    }
}

/// Generates a fresh ML-KEM key pair.
pub fn generate_kem_keypair(
    algorithm: KemAlgorithm,
) -> Result<(KemPublicKey, KemSecretKey), CryptoError> {
    let (public, secret) = algorithm
        .oqs()?
        .keypair()
        .map_err(|e| CryptoError::oqs("ML-KEM key generation", e))?;
    Ok((
        KemPublicKey {
            algorithm,
            bytes: public.into_vec(),
        },
        KemSecretKey {
            algorithm,
            bytes: Zeroizing::new(secret.into_vec()),
        },
    ))
}

impl KemPublicKey {
    length_checked_bytes!(KemAlgorithm, "ML-KEM public key", public_key_len);

    /// Draws a fresh shared secret and the ciphertext that carries it to the key's owner.
    pub fn encapsulate(&self) -> Result<(KemCiphertext, KemSharedSecret), CryptoError> {
        let kem = self.algorithm.oqs()?;
        let public = kem
            .public_key_from_bytes(&self.bytes)
            .ok_or(CryptoError::InvalidLength {
                what: "ML-KEM public key",
                expected: self.algorithm.public_key_len(),
                actual: self.bytes.len(),
            })?;
        let (ciphertext, shared) = kem
            .encapsulate(public)
            .map_err(|e| CryptoError::oqs("ML-KEM encapsulation", e))?;
        Ok((
            KemCiphertext {
                algorithm: self.algorithm,
                bytes: ciphertext.into_vec(),
            },
            shared_secret(shared.into_vec())?,
        ))
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KemPublicKey({}, {} bytes)",
            self.algorithm,
            self.bytes.len()
        )
    }
}

impl KemCiphertext {
    length_checked_bytes!(KemAlgorithm, "ML-KEM ciphertext", ciphertext_len);
}

impl fmt::Debug for KemCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KemCiphertext({}, {} bytes)",
            self.algorithm,
            self.bytes.len()
        )
    }
}

impl KemSecretKey {
    /// The algorithm of this key.
    pub fn algorithm(&self) -> KemAlgorithm {
        self.algorithm
    }

    /// Recovers the shared secret from a ciphertext. ML-KEM uses implicit rejection: a
    /// tampered ciphertext yields an unrelated secret rather than an error, so the handshake
    /// fails later at key confirmation instead of leaking which check failed.
    pub fn decapsulate(&self, ciphertext: &KemCiphertext) -> Result<KemSharedSecret, CryptoError> {
        if ciphertext.algorithm != self.algorithm {
            return Err(CryptoError::Invalid {
                what: "ML-KEM ciphertext",
                reason: format!(
                    "ciphertext is {}, key is {}",
                    ciphertext.algorithm, self.algorithm
                ),
            });
        }
        let kem = self.algorithm.oqs()?;
        let length_error = || CryptoError::Invalid {
            what: "ML-KEM decapsulation input",
            reason: "wrong length".to_owned(),
        };
        let secret = kem
            .secret_key_from_bytes(&self.bytes)
            .ok_or_else(length_error)?;
        let ciphertext = kem
            .ciphertext_from_bytes(&ciphertext.bytes)
            .ok_or_else(length_error)?;
        let shared = kem
            .decapsulate(secret, ciphertext)
            .map_err(|e| CryptoError::oqs("ML-KEM decapsulation", e))?;
        shared_secret(shared.into_vec())
    }
}

impl fmt::Debug for KemSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemSecretKey({}, <redacted>)", self.algorithm)
    }
}

fn shared_secret(bytes: Vec<u8>) -> Result<KemSharedSecret, CryptoError> {
    let bytes = Zeroizing::new(bytes);
    let mut out = Zeroizing::new([0u8; 32]);
    check_len(
        "ML-KEM shared secret",
        KemAlgorithm::SHARED_SECRET_LEN,
        bytes.len(),
    )?;
    out.copy_from_slice(&bytes);
    Ok(KemSharedSecret(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encapsulate_decapsulate_both_parameter_sets() {
        for algorithm in KemAlgorithm::ALL {
            let (public, secret) = generate_kem_keypair(algorithm).unwrap();
            assert_eq!(public.as_bytes().len(), algorithm.public_key_len());
            let (ciphertext, sent) = public.encapsulate().unwrap();
            assert_eq!(ciphertext.as_bytes().len(), algorithm.ciphertext_len());
            let received = secret.decapsulate(&ciphertext).unwrap();
            assert_eq!(sent.as_bytes(), received.as_bytes());

            // Implicit rejection: a flipped ciphertext bit gives a different secret.
            let mut tampered = ciphertext.as_bytes().to_vec();
            tampered[0] ^= 1;
            let tampered = KemCiphertext::from_bytes(algorithm, &tampered).unwrap();
            let other = secret.decapsulate(&tampered).unwrap();
            assert_ne!(other.as_bytes(), sent.as_bytes());
        }
    }

    #[test]
    fn mismatched_algorithms_rejected() {
        let (public, _) = generate_kem_keypair(KemAlgorithm::MlKem768).unwrap();
        let (_, secret512) = generate_kem_keypair(KemAlgorithm::MlKem512).unwrap();
        let (ciphertext, _) = public.encapsulate().unwrap();
        assert!(secret512.decapsulate(&ciphertext).is_err());
        assert!(KemPublicKey::from_bytes(KemAlgorithm::MlKem512, public.as_bytes()).is_err());
    }
}
