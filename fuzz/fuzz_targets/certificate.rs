//! Node certificates and registrations as peers and files present them: the envelope, its
//! canonical body, and the `x0tc1_` text form. Accepted input is canonical and never
//! verifies under an unrelated key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x0t_crypto::{NodeCertificate, Registration, SignedNodeCertificate};
use x0t_fuzz::{check_signed, unrelated_key};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => check_signed::<NodeCertificate>(rest, unrelated_key()),
        1 => check_signed::<Registration>(rest, unrelated_key()),
        _ => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(certificate) = SignedNodeCertificate::from_text(text)
            {
                check_signed::<NodeCertificate>(&certificate.encode(), unrelated_key());
            }
        }
    }
});
