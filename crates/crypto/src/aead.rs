//! ChaCha20-Poly1305 with a nonce discipline that cannot repeat a nonce under one key.
//!
//! The rule is enforced by types, not by care: an [`AeadKey`] is not `Clone` and is consumed
//! by exactly one [`Sealer`] (or [`Opener`]). A `Sealer` draws nonces from its own counter,
//! which only goes up and refuses to wrap, so every nonce it uses is fresh for its key. The
//! counter travels with the packet (the data plane's frame carries it), which is also what a
//! replay window on the receiving side checks. Each direction of a session has its own key
//! (see [`crate::hybrid`]), so the two ends never seal under the same key.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of the authentication tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// A 256-bit AEAD key for one direction of one session; wiped on drop, never cloned.
pub struct AeadKey(Zeroizing<[u8; 32]>);

impl AeadKey {
    /// A fresh random key (for tests, benchmarks and local secrets).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Derived keys only: callers outside this crate cannot build a key from chosen bytes,
    /// which keeps two sealers from sharing one.
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A one-way 128-bit identifier of the key, safe to compare and log: lets tests and
    /// diagnostics check that two ends derived the same key without exposing it.
    pub fn key_id(&self) -> [u8; 16] {
        let hash = blake3::derive_key("x0t 2026-11 aead key id v1", self.0.as_ref());
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash[..16]);
        id
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()))
    }
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AeadKey(id {:02x?})", &self.key_id()[..4])
    }
}

/// The 96-bit nonce for a packet counter: four zero bytes, then the counter big-endian.
fn nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(nonce)
}

/// A sealed packet: the counter that formed its nonce, and ciphertext with the tag appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The nonce counter; sent in clear with the packet.
    pub counter: u64,
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// Seals packets under one key, each with a fresh nonce.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    next_counter: u64,
}

impl Sealer {
    /// The largest counter a sealer will use; beyond it the session must rekey.
    pub const MAX_COUNTER: u64 = u64::MAX - 1;

    /// Takes ownership of `key`; no other sealer can hold it.
    pub fn new(key: AeadKey) -> Self {
        Self {
            cipher: key.cipher(),
            next_counter: 0,
        }
    }

    /// How many packets this sealer has sealed so far.
    pub fn sealed_count(&self) -> u64 {
        self.next_counter
    }

    /// Encrypts and authenticates `plaintext`, binding `associated_data` (e.g. the frame
    /// header) to it. Fails only when the nonce space is used up.
    pub fn seal(
        &mut self,
        associated_data: &[u8],
        plaintext: &[u8],
    ) -> Result<Sealed, CryptoError> {
        let counter = self.next_counter;
        if counter > Self::MAX_COUNTER {
            return Err(CryptoError::NonceExhausted);
        }
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce(counter),
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            // Only fails for plaintexts beyond ChaCha20's 256 GiB per-nonce limit.
            .map_err(|_| CryptoError::Invalid {
                what: "AEAD plaintext",
                reason: "too long".to_owned(),
            })?;
        self.next_counter = counter + 1;
        Ok(Sealed {
            counter,
            ciphertext,
        })
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer(next counter {})", self.next_counter)
    }
}

/// Opens packets sealed by the matching [`Sealer`].
pub struct Opener {
    cipher: ChaCha20Poly1305,
}

impl Opener {
    /// Takes ownership of `key`.
    pub fn new(key: AeadKey) -> Self {
        Self {
            cipher: key.cipher(),
        }
    }

    /// Authenticates and decrypts. Any change to the counter, the associated data or the
    /// ciphertext fails with [`CryptoError::AeadOpen`]. Replay protection is the caller's
    /// window over `counter`, not this function's.
    pub fn open(
        &self,
        counter: u64,
        associated_data: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < TAG_LEN {
            return Err(CryptoError::AeadOpen);
        }
        self.cipher
            .decrypt(
                &nonce(counter),
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .map_err(|_| CryptoError::AeadOpen)
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opener")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealer, Opener) {
        let bytes = [9u8; 32];
        (
            Sealer::new(AeadKey::from_bytes(bytes)),
            Opener::new(AeadKey::from_bytes(bytes)),
        )
    }

    #[test]
    fn counters_never_repeat() {
        let (mut sealer, opener) = pair();
        let first = sealer.seal(b"hdr", b"same").unwrap();
        let second = sealer.seal(b"hdr", b"same").unwrap();
        assert_eq!((first.counter, second.counter), (0, 1));
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(opener.open(1, b"hdr", &second.ciphertext).unwrap(), b"same");
        assert!(opener.open(0, b"hdr", &second.ciphertext).is_err());
        assert_eq!(sealer.sealed_count(), 2);
    }

    #[test]
    fn exhausted_sealer_refuses() {
        let (mut sealer, _) = pair();
        sealer.next_counter = Sealer::MAX_COUNTER;
        assert!(sealer.seal(b"", b"last").is_ok());
        assert!(matches!(
            sealer.seal(b"", b"x"),
            Err(CryptoError::NonceExhausted)
        ));
        assert!(matches!(
            sealer.seal(b"", b"x"),
            Err(CryptoError::NonceExhausted)
        ));
    }

    #[test]
    fn short_ciphertext_is_an_error_not_a_panic() {
        let (_, opener) = pair();
        assert!(matches!(
            opener.open(0, b"", &[1, 2, 3]),
            Err(CryptoError::AeadOpen)
        ));
    }
}
