//! Length-prefixed bincode frames for request-response, bounded on read.
//!
//! Frame: `u32 big-endian length | bincode body`. A frame longer than [`MAX_FRAME_LEN`] is
//! refused before a byte of it is buffered; a body that does not decode, or decodes with bytes
//! left over, is an `InvalidData` error for that one stream — never a panic, never the node.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest frame accepted or sent: Raft snapshot chunks are sent in pieces well below this.
pub(crate) const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The codec for one request/response pair of types.
pub(crate) struct BincodeCodec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Clone for BincodeCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self(PhantomData)
    }
}

impl<Req, Resp> Default for BincodeCodec<Req, Resp> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

pub(crate) fn encode_frame<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
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

pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
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

async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin + Send>(io: &mut R) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME_LEN}"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    decode_body(&body)
}

async fn write_frame<W: AsyncWrite + Unpin + Send>(io: &mut W, frame: Vec<u8>) -> io::Result<()> {
    io.write_all(&frame).await?;
    io.close().await
}

impl<Req, Resp> request_response::Codec for BincodeCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, encode_frame(&req)?).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, encode_frame(&res)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn frames_roundtrip_and_bad_frames_are_errors() {
        let frame = encode_frame(&(7u64, "hello".to_owned())).unwrap();
        let value: (u64, String) = read_frame(&mut Cursor::new(frame.clone())).await.unwrap();
        assert_eq!(value, (7, "hello".to_owned()));

        // Oversized length prefix: refused without allocating.
        let mut huge = (u32::MAX).to_be_bytes().to_vec();
        huge.extend([0; 16]);
        let err = read_frame::<(u64, String), _>(&mut Cursor::new(huge))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // Truncated body.
        let err =
            read_frame::<(u64, String), _>(&mut Cursor::new(frame[..frame.len() - 2].to_vec()))
                .await
                .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        // Garbage body of a plausible length.
        let mut garbage = 8u32.to_be_bytes().to_vec();
        garbage.extend([0xff; 8]);
        assert!(
            read_frame::<(u64, String), _>(&mut Cursor::new(garbage))
                .await
                .is_err()
        );
    }
}
