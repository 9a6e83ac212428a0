//! Data-plane frames: pinned header bytes, sealing end to end through relays, tampering and
//! replays refused without moving the window, garbage refused without a panic, and the replay
//! window against a plain model.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;

use proptest::prelude::*;
use x0t_crypto::CryptoError;
use x0t_crypto::aead::{Opener, Sealer};
use x0t_crypto::frame::{
    DEFAULT_HOPS, Frame, FrameHeader, FrameKind, HEADER_LEN, MAX_BODY_LEN, RekeyPolicy,
    ReplayWindow, open_in_place, peek_route, seal_into, take_hop,
};
use x0t_crypto::hybrid::{self, Initiator};
use x0t_crypto::kem::KemAlgorithm;
use x0t_types::NodeId;

const A: NodeId = NodeId::from_bytes([0xaa; 32]);
const B: NodeId = NodeId::from_bytes([0xbb; 32]);

/// One direction of a real hybrid session: A's sealer, B's opener.
fn session() -> (Sealer, Opener) {
    let kem = KemAlgorithm::MlKem768;
    let (initiator, hello) = Initiator::start(kem, b"frames").unwrap();
    let (reply, responder) = hybrid::respond(kem, b"frames", &hello).unwrap();
    let keys = initiator.finish(&reply).unwrap();
    (Sealer::new(keys.send), Opener::new(responder.receive))
}

fn header(kind: FrameKind) -> FrameHeader {
    FrameHeader {
        kind,
        hops: DEFAULT_HOPS,
        dst: B,
        src: A,
        session: 0x0102_0304,
        counter: 0,
    }
}

#[test]
fn header_bytes_are_pinned() {
    let frame = Frame {
        header: FrameHeader {
            counter: 0x1122_3344_5566_7788,
            ..header(FrameKind::HandshakeInit)
        },
        body: b"hello".to_vec(),
    };
    let bytes = frame.encode().unwrap();
    let mut expected = b"x0\x01\x02\x08\x00".to_vec();
    expected.extend([0xbb; 32]);
    expected.extend([0xaa; 32]);
    expected.extend([1, 2, 3, 4]);
    expected.extend([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    expected.extend([0, 5]);
    expected.extend(b"hello");
    assert_eq!(bytes, expected);
    assert_eq!(HEADER_LEN, 84);
    assert_eq!(Frame::decode(&bytes).unwrap(), frame);
}

#[test]
fn sealed_frames_cross_relays_and_open_once() {
    let (mut sealer, opener) = session();
    let mut window = ReplayWindow::new();
    let frame = Frame::seal(&mut sealer, header(FrameKind::Data), b"an IP packet").unwrap();
    assert_eq!(frame.header.counter, 0);
    let mut bytes = frame.encode().unwrap();
    // Two relays route on the header and use a hop each; the seal still holds.
    for expected in [DEFAULT_HOPS - 1, DEFAULT_HOPS - 2] {
        assert_eq!(peek_route(&bytes).unwrap(), (B, expected + 1));
        assert_eq!(take_hop(&mut bytes).unwrap(), expected);
    }
    let received = Frame::decode(&bytes).unwrap();
    assert_eq!(
        received.open(&opener, &mut window).unwrap(),
        b"an IP packet"
    );
    // The same frame again is a replay.
    assert!(matches!(
        received.open(&opener, &mut window),
        Err(CryptoError::Replay { counter: 0, .. })
    ));
    // A relay cannot take a hop that is not there.
    let mut spent = bytes.clone();
    while take_hop(&mut spent).is_ok() {}
    assert_eq!(peek_route(&spent).unwrap().1, 0);
    // Keepalives are sealed too; handshakes are not.
    let keepalive = Frame::seal(&mut sealer, header(FrameKind::Keepalive), b"").unwrap();
    assert_eq!(keepalive.open(&opener, &mut window).unwrap(), b"");
    assert!(Frame::seal(&mut sealer, header(FrameKind::HandshakeReply), b"x").is_err());
}

#[test]
fn any_change_but_the_hop_count_is_refused_and_the_window_stays() {
    let (mut sealer, opener) = session();
    let frame = Frame::seal(&mut sealer, header(FrameKind::Data), b"payload").unwrap();
    let bytes = frame.encode().unwrap();
    for index in 0..bytes.len() {
        if index == 4 {
            continue; // the hop count: relays change it
        }
        let mut tampered = bytes.clone();
        tampered[index] ^= 0x01;
        let mut window = ReplayWindow::new();
        let opened = Frame::decode(&tampered).and_then(|f| f.open(&opener, &mut window));
        assert!(opened.is_err(), "byte {index} flipped, frame still opened");
        assert_eq!(window, ReplayWindow::new(), "byte {index} moved the window");
    }
}

#[test]
fn in_place_paths_match_the_allocating_ones() {
    let (mut sealer, opener) = session();
    let mut window = ReplayWindow::new();
    // Two frames appended to one buffer (how a batch is built), then a third the other way.
    let mut out = b"prefix".to_vec();
    let first = seal_into(&mut sealer, header(FrameKind::Data), b"one", &mut out).unwrap();
    let second = seal_into(&mut sealer, header(FrameKind::Data), b"two!", &mut out).unwrap();
    assert_eq!((first, second), (HEADER_LEN + 3 + 16, HEADER_LEN + 4 + 16));
    assert_eq!(out.len(), 6 + first + second);
    let third = Frame::seal(&mut sealer, header(FrameKind::Data), b"three")
        .unwrap()
        .encode()
        .unwrap();
    // Each opens both ways: by the allocating decoder and in place.
    let one = out[6..6 + first].to_vec();
    assert_eq!(
        Frame::decode(&one)
            .unwrap()
            .open(&opener, &mut window)
            .unwrap(),
        b"one"
    );
    for (mut bytes, expected, counter) in [
        (out[6 + first..].to_vec(), &b"two!"[..], 1),
        (third, &b"three"[..], 2),
    ] {
        let parsed = FrameHeader::decode(&bytes).unwrap();
        assert_eq!(parsed.counter, counter);
        let plaintext = open_in_place(&parsed, &mut bytes, &opener, &mut window).unwrap();
        assert_eq!(plaintext, expected);
    }
    // A replay and a flipped byte are refused in place too, and the window stays.
    let mut again = out[6..6 + first].to_vec();
    let parsed = FrameHeader::decode(&again).unwrap();
    assert!(matches!(
        open_in_place(&parsed, &mut again, &opener, &mut window),
        Err(CryptoError::Replay { counter: 0, .. })
    ));
    let mut fresh = Vec::new();
    seal_into(&mut sealer, header(FrameKind::Data), b"four", &mut fresh).unwrap();
    let before = window.clone();
    let last = fresh.len() - 1;
    fresh[last] ^= 1;
    let parsed = FrameHeader::decode(&fresh).unwrap();
    assert!(open_in_place(&parsed, &mut fresh, &opener, &mut window).is_err());
    assert_eq!(window, before);
    // Handshake kinds are not sealed; an error leaves the buffer as it was.
    let mut untouched = b"keep".to_vec();
    assert!(
        seal_into(
            &mut sealer,
            header(FrameKind::HandshakeInit),
            b"x",
            &mut untouched
        )
        .is_err()
    );
    assert_eq!(untouched, b"keep");
}

#[test]
fn out_of_order_within_the_window_is_fine_older_is_not() {
    let (mut sealer, opener) = session();
    let frames: Vec<Frame> = (0..ReplayWindow::SIZE + 10)
        .map(|_| Frame::seal(&mut sealer, header(FrameKind::Data), b"p").unwrap())
        .collect();
    let mut window = ReplayWindow::new();
    let last = frames.len() - 1;
    frames[last].open(&opener, &mut window).unwrap();
    // Within SIZE behind the newest: accepted once, in any order.
    frames[last - 5].open(&opener, &mut window).unwrap();
    frames[last - 1].open(&opener, &mut window).unwrap();
    assert!(frames[last - 5].open(&opener, &mut window).is_err());
    // The window holds SIZE counters, the newest included.
    let oldest = last - (ReplayWindow::SIZE as usize - 1);
    frames[oldest].open(&opener, &mut window).unwrap();
    // A counter no sealer uses is refused (and cannot overflow the window).
    assert!(ReplayWindow::new().accept(u64::MAX).is_err());
    // Further back: refused.
    assert!(matches!(
        frames[oldest - 1].open(&opener, &mut window),
        Err(CryptoError::Replay { .. })
    ));
}

#[test]
fn oversized_and_malformed_frames_are_refused() {
    let (mut sealer, _) = session();
    assert!(Frame::seal(&mut sealer, header(FrameKind::Data), &vec![0; MAX_BODY_LEN]).is_err());
    let too_big = Frame {
        header: header(FrameKind::HandshakeInit),
        body: vec![0; MAX_BODY_LEN + 1],
    };
    assert!(too_big.encode().is_err());
    let frame = Frame::seal(&mut sealer, header(FrameKind::Data), b"12345").unwrap();
    let bytes = frame.encode().unwrap();
    for len in 0..bytes.len() {
        assert!(Frame::decode(&bytes[..len]).is_err(), "truncated to {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Frame::decode(&longer).is_err());
    for (index, value, what) in [
        (0, b'y', "magic"),
        (2, 2, "version"),
        (3, 9, "kind"),
        (5, 1, "reserved"),
    ] {
        let mut bad = bytes.clone();
        bad[index] = value;
        assert!(Frame::decode(&bad).is_err(), "{what}");
    }
    // A sealed kind with a body shorter than a tag.
    let short = Frame {
        header: header(FrameKind::Data),
        body: vec![0; 3],
    };
    assert!(Frame::decode(&short.encode().unwrap()).is_err());
}

#[test]
fn rekey_is_due_after_frames_or_time() {
    let policy = RekeyPolicy::DEFAULT;
    assert!(!policy.due(0, 0));
    assert!(!policy.due(1_000, 119_999));
    assert!(policy.due(0, 120_000));
    assert!(policy.due(1 << 32, 0));
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Frame::decode(&bytes);
        let _ = peek_route(&bytes);
        let mut copy = bytes.clone();
        let _ = take_hop(&mut copy);
    }

    #[test]
    fn decoded_frames_encode_to_the_same_bytes(
        kind in 0usize..4,
        hops in any::<u8>(),
        session in any::<u32>(),
        counter in any::<u64>(),
        body in prop::collection::vec(any::<u8>(), 16..100),
    ) {
        let frame = Frame {
            header: FrameHeader { kind: FrameKind::ALL[kind], hops, dst: B, src: A, session, counter },
            body,
        };
        let bytes = frame.encode().unwrap();
        prop_assert_eq!(Frame::decode(&bytes).unwrap().encode().unwrap(), bytes);
    }

    /// The window agrees with a plain model: a counter is accepted iff it is new and less than
    /// SIZE behind the highest accepted one.
    #[test]
    fn replay_window_matches_a_model(
        // Each step is an offset from the next expected counter: mostly a little ahead, often
        // behind (out of order, repeats, too old), now and then far ahead.
        steps in prop::collection::vec(
            prop_oneof![8 => -2_200i64..40, 1 => 2_000i64..5_000, 1 => Just(i64::MAX / 2), 1 => Just(i64::MAX)],
            1..400,
        ),
    ) {
        let mut window = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        for offset in steps {
            let next = seen.iter().next_back().map_or(0, |&max: &u64| max + 1);
            let counter = u64::try_from(i128::from(next) + i128::from(offset)).unwrap_or(0);
            let expected = counter != u64::MAX
                && !seen.contains(&counter)
                && (counter >= next || next - counter <= ReplayWindow::SIZE);
            prop_assert_eq!(window.accept(counter).is_ok(), expected, "counter {}", counter);
            if expected {
                seen.insert(counter);
            }
        }
    }
}
