//! Property tests: tampering with any signed, exchanged or sealed byte is detected.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{ANCHOR, SIGNED_CERT, SIGNED_TOKEN, T0};
use proptest::prelude::*;
use x0t_crypto::aead::{AeadKey, Opener, Sealer};
use x0t_crypto::hybrid::{self, Initiator};
use x0t_crypto::kem::{KemAlgorithm, KemCiphertext};
use x0t_crypto::{
    Signature, SignatureDomain, Signed, SignedJoinToken, SignedNodeCertificate, SignedPayload,
};

/// Whether `bytes` decode and verify as a `T` signed by the test anchor.
fn accepted<T: SignedPayload>(bytes: &[u8]) -> bool {
    Signed::<T>::decode(bytes)
        .and_then(|signed| signed.verify(ANCHOR.verifying_key(), T0).map(|_| ()))
        .is_ok()
}

fn flipped(bytes: &[u8], index: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = index % out.len();
    out[at] ^= mask;
    out
}

#[test]
fn untampered_objects_verify() {
    assert!(accepted::<x0t_crypto::NodeCertificate>(
        &SIGNED_CERT.encode()
    ));
    assert!(accepted::<x0t_crypto::JoinToken>(&SIGNED_TOKEN.encode()));
}

/// Every single position of both encodings, each flipped: not a sample, all of them.
#[test]
fn every_single_byte_flip_is_rejected() {
    for (name, bytes, check) in [
        (
            "certificate",
            SIGNED_CERT.encode(),
            accepted::<x0t_crypto::NodeCertificate> as fn(&[u8]) -> bool,
        ),
        (
            "token",
            SIGNED_TOKEN.encode(),
            accepted::<x0t_crypto::JoinToken>,
        ),
    ] {
        for index in 0..bytes.len() {
            assert!(
                !check(&flipped(&bytes, index, 0x01)),
                "{name}: flip at {index} accepted"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn signed_certificate_any_flip_fails(index in any::<usize>(), mask in 1u8..) {
        let bytes = flipped(&SIGNED_CERT.encode(), index, mask);
        prop_assert!(!accepted::<x0t_crypto::NodeCertificate>(&bytes));
    }

    #[test]
    fn signed_token_any_flip_fails(index in any::<usize>(), mask in 1u8..) {
        let bytes = flipped(&SIGNED_TOKEN.encode(), index, mask);
        prop_assert!(!accepted::<x0t_crypto::JoinToken>(&bytes));
        let text = SIGNED_TOKEN.to_text();
        let mut text = text.into_bytes();
        let at = index % text.len();
        text[at] = if text[at] == b'a' { b'b' } else { b'a' };
        if let Ok(text) = String::from_utf8(text) {
            prop_assert!(SignedJoinToken::from_text(&text)
                .and_then(|t| t.verify(ANCHOR.verifying_key(), T0).map(|_| ()))
                .is_err());
        }
    }

    #[test]
    fn raw_signature_any_flip_fails(index in any::<usize>(), mask in 1u8..) {
        let message = b"transcript hash stand-in";
        let signature = ANCHOR.sign(SignatureDomain::HandshakeTranscript, message).unwrap();
        let tampered = flipped(signature.as_bytes(), index, mask);
        let tampered = Signature::from_bytes(signature.algorithm(), &tampered).unwrap();
        prop_assert!(ANCHOR
            .verifying_key()
            .verify(SignatureDomain::HandshakeTranscript, message, &tampered)
            .is_err());
    }

    #[test]
    fn decoders_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        let _ = SignedNodeCertificate::decode(&bytes);
        let _ = SignedJoinToken::decode(&bytes);
        let _ = hybrid::InitiatorHello::decode(&bytes);
        let _ = hybrid::ResponderHello::decode(&bytes);
    }

    #[test]
    fn truncations_are_errors(cut in 0usize..) {
        let bytes = SIGNED_CERT.encode();
        let cut = cut % bytes.len();
        prop_assert!(SignedNodeCertificate::decode(&bytes[..cut]).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Both sides derive the same keys; altering the responder's X25519 share or its ML-KEM
    /// ciphertext in flight leaves the initiator with different keys (or a refusal).
    #[test]
    fn hybrid_exchange_binds_both_shares(
        kem_index in 0usize..2,
        tamper_x25519 in any::<bool>(),
        index in any::<usize>(),
        mask in 1u8..,
    ) {
        let kem = KemAlgorithm::ALL[kem_index];
        let (initiator, hello) = Initiator::start(kem, b"prologue").unwrap();
        let (reply, responder) = hybrid::respond(kem, b"prologue", &hello).unwrap();

        // The honest run agrees.
        let (honest_initiator, honest_hello) = Initiator::start(kem, b"prologue").unwrap();
        let (honest_reply, honest_responder) = hybrid::respond(kem, b"prologue", &honest_hello).unwrap();
        let honest = honest_initiator.finish(&honest_reply).unwrap();
        prop_assert_eq!(honest.send.key_id(), honest_responder.receive.key_id());
        prop_assert_eq!(honest.receive.key_id(), honest_responder.send.key_id());
        prop_assert_eq!(honest.transcript_hash, honest_responder.transcript_hash);

        let mut tampered = reply.clone();
        if tamper_x25519 {
            tampered.x25519[index % 32] ^= mask;
        } else {
            let bytes = flipped(reply.kem_ciphertext.as_bytes(), index, mask);
            tampered.kem_ciphertext = KemCiphertext::from_bytes(kem, &bytes).unwrap();
        }
        match initiator.finish(&tampered) {
            Err(_) => {} // e.g. a low-order X25519 point: refused outright.
            Ok(keys) => {
                prop_assert_ne!(keys.send.key_id(), responder.receive.key_id());
                prop_assert_ne!(keys.receive.key_id(), responder.send.key_id());
                prop_assert_ne!(keys.transcript_hash, responder.transcript_hash);
            }
        }
    }

    /// Altering the initiator's hello in flight (either share) gives the responder other keys.
    #[test]
    fn hybrid_exchange_binds_initiator_hello(tamper_x25519 in any::<bool>(), index in any::<usize>(), mask in 1u8..) {
        let kem = KemAlgorithm::MlKem768;
        let (initiator, hello) = Initiator::start(kem, b"").unwrap();
        let mut bytes = hello.encode();
        // Layout: version, type, kem code, 32-byte X25519 share, u16 length, KEM key.
        let at = if tamper_x25519 { 3 + index % 32 } else { 37 + index % kem.public_key_len() };
        bytes[at] ^= mask;
        let tampered = hybrid::InitiatorHello::decode(&bytes).unwrap();
        if let Ok((reply, responder)) = hybrid::respond(kem, b"", &tampered) {
            match initiator.finish(&reply) {
                Err(_) => {}
                Ok(keys) => prop_assert_ne!(keys.send.key_id(), responder.receive.key_id()),
            }
        }
    }

    #[test]
    fn aead_open_fails_on_any_tampering(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
        target in 0u8..3,
        index in any::<usize>(),
        mask in 1u8..,
    ) {
        // A real session pair, so both ends hold the same direction key.
        let (initiator, hello) = Initiator::start(KemAlgorithm::MlKem768, b"").unwrap();
        let (reply, responder) = hybrid::respond(KemAlgorithm::MlKem768, b"", &hello).unwrap();
        let keys = initiator.finish(&reply).unwrap();
        let mut sealer = Sealer::new(keys.send);
        let opener = Opener::new(responder.receive);
        let sealed = sealer.seal(&aad, &plaintext).unwrap();
        prop_assert_eq!(&opener.open(sealed.counter, &aad, &sealed.ciphertext).unwrap(), &plaintext);

        let (mut counter, mut aad2, mut ct) = (sealed.counter, aad.clone(), sealed.ciphertext.clone());
        match target {
            0 => counter ^= u64::from(mask) << (8 * (index % 8)),
            1 if !aad2.is_empty() => { let n = aad2.len(); aad2[index % n] ^= mask }
            1 => aad2.push(mask),
            _ => { let n = ct.len(); ct[index % n] ^= mask }
        }
        prop_assert!(opener.open(counter, &aad2, &ct).is_err());
        // A different key never opens it either.
        prop_assert!(Opener::new(AeadKey::generate()).open(sealed.counter, &aad, &sealed.ciphertext).is_err());
    }
}
