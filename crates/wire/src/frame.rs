//! Length-prefixed bincode frames, bounded on read.
//!
//! Frame: `u32 big-endian length | bincode body`. A frame longer than [`MAX_FRAME_LEN`] is
//! refused before a byte of it is buffered; a body that does not decode, or decodes with bytes
//! left over, is an `InvalidData` error for that one stream — never a panic, never the node.
//! The async reading and writing stays with the swarm (node's `p2p::codec`); this is the part
//! that turns bytes into values, which the fuzz targets drive directly.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest frame accepted or sent: Raft snapshot chunks are sent in pieces well below this.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// Encodes `value` as one frame (length prefix included).
pub fn encode_frame<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let body = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if body.len() > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds {MAX_FRAME_LEN}", body.len()),
        ));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend(body);
    Ok(frame)
}

/// Reads a frame's length prefix: the body length, or an error if it exceeds the limit.
pub fn body_len(prefix: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME_LEN}"),
        ));
    }
    Ok(len)
}

/// Decodes a frame's body: exactly `body`, no trailing bytes.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if used != body.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} trailing bytes in frame", body.len() - used),
        ));
    }
    Ok(value)
}

/// Decodes a whole frame held in memory (prefix and body), as the stream reader would.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> io::Result<T> {
    let Some((prefix, body)) = frame.split_first_chunk::<4>() else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "frame shorter than its length prefix",
        ));
    };
    let len = body_len(*prefix)?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame says {len} body bytes, holds {}", body.len()),
        ));
    }
    decode_body(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn whole_frames_decode_and_every_bad_shape_is_an_error() {
        let frame = encode_frame(&(7u64, "hello".to_owned())).unwrap();
        let value: (u64, String) = decode_frame(&frame).unwrap();
        assert_eq!(value, (7, "hello".to_owned()));
        // Too short for the prefix, a prefix over the limit, a body shorter or longer than
        // its prefix says, and trailing bytes inside the body: all errors.
        assert!(decode_frame::<(u64, String)>(&frame[..3]).is_err());
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend([0; 8]);
        assert!(decode_frame::<(u64, String)>(&huge).is_err());
        assert!(decode_frame::<(u64, String)>(&frame[..frame.len() - 1]).is_err());
        let mut longer = frame.clone();
        longer.push(0);
        assert!(decode_frame::<(u64, String)>(&longer).is_err());
        let mut trailing = frame[4..].to_vec();
        trailing.push(0);
        assert!(decode_body::<(u64, String)>(&trailing).is_err());
    }
}
