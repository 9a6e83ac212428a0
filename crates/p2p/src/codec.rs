//! The request-response codec of the control protocol: `x0t_wire::frame`'s length-prefixed,
//! bounded frames read from and written to libp2p streams.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;
use x0t_wire::frame::{body_len, decode_body, encode_frame};

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

async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin + Send>(io: &mut R) -> io::Result<T> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    // Checked against the limit before a byte of the body is buffered.
    let mut body = vec![0u8; body_len(prefix)?];
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
