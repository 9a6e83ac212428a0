//! Identity key files read from disk. Half the inputs get a valid checksum appended, so the
//! fuzzer reaches the length fields and liboqs's key import behind the checksum.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use x0t_crypto::keyfile::decode_key_file;

/// The key file format's checksum context (`crates/crypto/src/keyfile.rs`).
const CHECKSUM_CONTEXT: &str = "x0t 2026-11 key file v1 checksum";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzzed.key");
    if selector % 2 == 0 {
        let _ = decode_key_file(path, rest);
    } else {
        let mut file = rest.to_vec();
        file.extend_from_slice(&blake3::derive_key(CHECKSUM_CONTEXT, rest));
        if let Ok(key) = decode_key_file(path, &file) {
            // A key that loads passed the pair check (a public half from another key is
            // refused: the first crash this target found). A secret half altered in its
            // small coefficients can still pass one probe and sign unverifiably now and then:
            // only recomputing the public key would catch that, and only someone who can
            // write the file (and so owns the node) can make one. So: no panics, that's all.
            if let Ok(signature) = key.sign(x0t_crypto::SignatureDomain::LinkState, b"fuzz") {
                let _ = key.verifying_key().verify(
                    x0t_crypto::SignatureDomain::LinkState,
                    b"fuzz",
                    &signature,
                );
            }
        }
    }
});
