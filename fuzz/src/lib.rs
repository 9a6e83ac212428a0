//! Checks the fuzz targets share: every decoder answers `Ok` or `Err` for any bytes, and
//! whatever it accepts is canonical (encoding it again gives the bytes it came from), so a
//! signature over those bytes means one thing.

use x0t_crypto::{SigAlgorithm, Signed, SignedPayload, SigningKey, VerifyingKey};
use x0t_types::Timestamp;

/// Decodes `bytes` as a signed envelope of `T`; if accepted, checks that its body and the
/// envelope re-encode to exactly what was read, and runs verification against `key` (which
/// must fail or succeed without panicking; a random input cannot carry a valid signature).
pub fn check_signed<T: SignedPayload + std::fmt::Debug>(bytes: &[u8], key: &VerifyingKey) {
    let Ok(envelope) = Signed::<T>::decode(bytes) else {
        return;
    };
    let body = envelope
        .payload()
        .encode_body()
        .expect("an accepted payload encodes");
    assert_eq!(body, envelope.body(), "accepted a non-canonical body");
    assert_eq!(
        envelope.encode(),
        bytes,
        "accepted a non-canonical envelope"
    );
    assert!(
        envelope.verify(key, Timestamp(0)).is_err(),
        "a fuzzed envelope verified under an unrelated key"
    );
}

/// A fixed key for the checks above (generated once per process).
pub fn unrelated_key() -> &'static VerifyingKey {
    static KEY: std::sync::OnceLock<VerifyingKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::generate(SigAlgorithm::MlDsa65)
            .expect("liboqs generates a key")
            .verifying_key()
            .clone()
    })
}
