//! The data plane's bytes from the network: frames (header, routing peek, hop decrement),
//! the hybrid handshake's hellos, and the IPv4 header a decrypted packet is enforced on.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use x0t_crypto::frame::{Frame, FrameHeader, peek_route, take_hop};
use x0t_crypto::hybrid::{InitiatorHello, ResponderHello};
use x0t_wire::packet::{FlowTable, parse_ipv4};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(frame) = Frame::decode(rest) {
                assert_eq!(
                    frame.encode().expect("encodes"),
                    rest,
                    "frame not canonical"
                );
                assert_eq!(FrameHeader::decode(rest).ok(), Some(frame.header));
                let (dst, hops) = peek_route(rest).expect("a decoded frame has a route");
                assert_eq!((dst, hops), (frame.header.dst, frame.header.hops));
            }
            let mut copy = rest.to_vec();
            if let Ok(left) = take_hop(&mut copy) {
                assert_eq!(peek_route(&copy).map(|(_, hops)| hops).ok(), Some(left));
            }
        }
        1 => {
            if let Ok(hello) = InitiatorHello::decode(rest) {
                assert_eq!(hello.encode(), rest, "initiator hello not canonical");
            }
        }
        2 => {
            if let Ok(hello) = ResponderHello::decode(rest) {
                assert_eq!(hello.encode(), rest, "responder hello not canonical");
            }
        }
        _ => {
            if let Ok(packet) = parse_ipv4(rest) {
                let mut flows = FlowTable::new(4);
                let now = Duration::from_secs(1);
                let _ = flows.open(&packet, now);
                let _ = flows.admit_existing(&packet, now);
                flows.expire(now + Duration::from_secs(3_600));
            }
        }
    }
});
