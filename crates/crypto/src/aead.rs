//! ChaCha20-Poly1305 with a nonce discipline that cannot repeat a nonce under one key.
//!
//! The rule is enforced by types, not by care: an [`AeadKey`] is not `Clone` and is consumed
//! by exactly one [`Sealer`] (or [`Opener`]). A `Sealer` draws nonces from its own counter,
//! which only goes up and refuses to wrap, so every nonce it uses is fresh for its key. The
//! counter travels with the packet (the data plane's frame carries it), which is also what a
//! replay window on the receiving side checks. Each direction of a session has its own key
//! (the `hybrid` key exchange derives them), so the two ends never seal under the same key.

use std::fmt;

use rand_core::{OsRng, RngCore};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
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

    /// The cipher keyed with this key. ring's ChaCha20-Poly1305 (RFC 8439, the same
    /// algorithm and bytes as any other implementation) runs BoringSSL's assembly: about
    /// three times the portable crate's speed, which the data plane needs.
    fn cipher(&self) -> LessSafeKey {
        match UnboundKey::new(&CHACHA20_POLY1305, self.0.as_ref()) {
            Ok(key) => LessSafeKey::new(key),
            // ring refuses only a key of the wrong length, and ours is 32 bytes by type.
            Err(_) => unreachable!("ChaCha20-Poly1305 takes a 32-byte key"),
        }
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
    Nonce::assume_unique_for_key(nonce)
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
    cipher: LessSafeKey,
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
        let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_LEN);
        ciphertext.extend_from_slice(plaintext);
        let (counter, tag) = self.seal_in_place(associated_data, &mut ciphertext)?;
        ciphertext.extend_from_slice(&tag);
        Ok(Sealed {
            counter,
            ciphertext,
        })
    }

    /// Encrypts `buffer` in place and returns the counter used and the tag (which goes
    /// right after the ciphertext): the data plane's path, with no allocation.
    pub fn seal_in_place(
        &mut self,
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> Result<(u64, [u8; TAG_LEN]), CryptoError> {
        let counter = self.next_counter;
        if counter > Self::MAX_COUNTER {
            return Err(CryptoError::NonceExhausted);
        }
        let tag = self
            .cipher
            .seal_in_place_separate_tag(nonce(counter), Aad::from(associated_data), buffer)
            // Only fails for plaintexts beyond ChaCha20's 256 GiB per-nonce limit.
            .map_err(|_| CryptoError::Invalid {
                what: "AEAD plaintext",
                reason: "too long".to_owned(),
            })?;
        self.next_counter = counter + 1;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok((counter, out))
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer(next counter {})", self.next_counter)
    }
}

/// Opens packets sealed by the matching [`Sealer`].
pub struct Opener {
    cipher: LessSafeKey,
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
        let mut buffer = ciphertext.to_vec();
        let len = self
            .open_in_place(counter, associated_data, &mut buffer)?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }

    /// Like [`Opener::open`], in place: `buffer` holds ciphertext and tag and ends up
    /// holding the plaintext (returned) followed by leftovers. On failure its contents are
    /// unspecified and must be dropped.
    pub fn open_in_place<'a>(
        &self,
        counter: u64,
        associated_data: &[u8],
        buffer: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        if buffer.len() < TAG_LEN {
            return Err(CryptoError::AeadOpen);
        }
        self.cipher
            .open_in_place(nonce(counter), Aad::from(associated_data), buffer)
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

    /// RFC 8439 section 2.8.2: the AEAD test vector, so a change of implementation cannot
    /// change the algorithm or its bytes.
    #[test]
    fn rfc8439_aead_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        // The RFC's nonce is 07000000 4041424344454647; ours is 00000000 ‖ counter, so the
        // vector is replayed through ring directly with the RFC's nonce.
        let cipher = AeadKey::from_bytes(key).cipher();
        let mut buffer = plaintext.to_vec();
        let nonce = Nonce::assume_unique_for_key([
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ]);
        let tag = cipher
            .seal_in_place_separate_tag(nonce, Aad::from(&aad), &mut buffer)
            .unwrap();
        assert_eq!(
            hex::encode(&buffer[..16]),
            "d31a8d34648e60db7b86afbc53ef7ec2"
        );
        assert_eq!(hex::encode(&buffer[buffer.len() - 2..]), "6116");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "1ae10b594f09e26a7e902ecbd0600691"
        );
    }

    #[test]
    fn in_place_and_allocating_paths_agree() {
        let (mut a, opener) = pair();
        let (mut b, _) = pair();
        let sealed = a.seal(b"aad", b"payload bytes").unwrap();
        let mut buffer = b"payload bytes".to_vec();
        let (counter, tag) = b.seal_in_place(b"aad", &mut buffer).unwrap();
        buffer.extend_from_slice(&tag);
        assert_eq!((counter, &buffer), (sealed.counter, &sealed.ciphertext));
        let plaintext = opener.open_in_place(0, b"aad", &mut buffer).unwrap();
        assert_eq!(plaintext, b"payload bytes");
        buffer[0] ^= 1;
        assert!(opener.open_in_place(0, b"aad", &mut buffer).is_err());
    }
}
