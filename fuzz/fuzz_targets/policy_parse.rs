//! Policy documents from untrusted bytes: parsing never panics, and every accepted document's
//! compiled engine agrees with the reference evaluator on its own test flows (run in both
//! directions) and explains them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x0t_policy::{Flow, Policy, PolicyDocument, reference};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Tests may fail; the document must still parse and compile consistently.
    let _ = Policy::parse(text);
    let Ok(document) = PolicyDocument::parse(text) else {
        return;
    };
    let policy = Policy::compile(document);
    for test in &policy.document().tests {
        for (src, dst) in [(&test.src, &test.dst), (&test.dst, &test.src)] {
            let flow = Flow {
                src: src.clone(),
                dst: dst.clone(),
                protocol: test.protocol,
                port: test.port,
            };
            assert_eq!(
                policy.decide(&flow),
                reference::decide(policy.document(), &flow)
            );
            let _ = x0t_policy::explain_text(&policy.explain(&flow, 1));
        }
    }
});
