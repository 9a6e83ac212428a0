//! What members gossip and anchors push: signed link-state adverts and signed mesh states
//! (anchors, revocations, policy digest). Accepted input is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x0t_crypto::{LinkStateAdvert, MeshState};
use x0t_fuzz::{check_signed, unrelated_key};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        check_signed::<LinkStateAdvert>(rest, unrelated_key());
    } else {
        check_signed::<MeshState>(rest, unrelated_key());
    }
});
