//! Every token a person or a peer hands in: join tokens (envelope and `x0tj1_` text) and the
//! bearer secrets of the API (`x0tadm_…` admin keys, `x0tanc_…` anchor-join tokens).
#![no_main]

use libfuzzer_sys::fuzz_target;
use x0t_crypto::bearer::{SecretToken, TokenKind};
use x0t_crypto::{JoinToken, SignedJoinToken};
use x0t_fuzz::{check_signed, unrelated_key};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        check_signed::<JoinToken>(rest, unrelated_key());
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(token) = SignedJoinToken::from_text(text) {
        check_signed::<JoinToken>(&token.encode(), unrelated_key());
    }
    for kind in [TokenKind::Admin, TokenKind::AnchorJoin] {
        if let Some(token) = SecretToken::parse(kind, text) {
            let again = SecretToken::parse(kind, &token.to_text()).expect("text form parses");
            assert_eq!(again, token, "text form is not stable");
        }
    }
});
