//! The control protocol from a peer's bytes: Raft RPCs (AppendEntries, Vote, snapshot
//! chunks), forwarded writes, enrollment, and the mesh protocol members gossip over (hello,
//! mesh state, link states, handshakes, relayed messages, failover reports). Decoding never
//! panics; whatever decodes re-encodes to a frame that decodes to the same bytes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use x0t_wire::control::{ControlRequest, ControlResponse};
use x0t_wire::frame::{decode_body, decode_frame, encode_frame};

fn check<T: Serialize + DeserializeOwned>(decoded: std::io::Result<T>) {
    let Ok(value) = decoded else {
        return;
    };
    let frame = encode_frame(&value).expect("a decoded message encodes");
    let again: T = decode_frame(&frame).expect("an encoded message decodes");
    assert_eq!(
        encode_frame(&again).expect("encodes"),
        frame,
        "re-encoding is not stable"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => check(decode_body::<ControlRequest>(rest)),
        1 => check(decode_body::<ControlResponse>(rest)),
        2 => check(decode_frame::<ControlRequest>(rest)),
        _ => check(decode_frame::<ControlResponse>(rest)),
    }
});
