//! A tiny canonical binary writer/reader for the signed encodings.
//!
//! Hand-specified rather than bincode so that the bytes that get signed are documented in one
//! place (ARCHITECTURE.md), stable across library upgrades and easy to reimplement from C or
//! Python. All integers are big-endian; every variable-length field carries a length prefix
//! whose maximum is checked on read *before* anything is allocated.

use crate::CryptoError;

/// Appends fields to a byte buffer.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.buf.push(value);
        self
    }

    pub(crate) fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    /// A byte string with a one-byte length. Callers guarantee `bytes.len() <= 255` by
    /// construction (validated types); the assertion documents it.
    pub(crate) fn short_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        debug_assert!(bytes.len() <= usize::from(u8::MAX));
        self.u8(bytes.len() as u8).bytes(bytes)
    }

    /// A byte string with a two-byte length (keys and signatures, all under 64 KiB).
    pub(crate) fn medium_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        debug_assert!(bytes.len() <= usize::from(u16::MAX));
        self.u16(bytes.len() as u16).bytes(bytes)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from a byte slice, failing with a [`CryptoError::Decode`] naming `what`.
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Self {
            what,
            rest: bytes,
            offset: 0,
        }
    }

    pub(crate) fn error(&self, reason: impl std::fmt::Display) -> CryptoError {
        CryptoError::decode(self.what, format!("{reason} (at byte {})", self.offset))
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], CryptoError> {
        if self.rest.len() < len {
            return Err(self.error(format_args!(
                "truncated: need {len} more bytes, have {}",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        self.offset += len;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CryptoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CryptoError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CryptoError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CryptoError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, CryptoError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A byte string with a one-byte length, at most `max` long.
    pub(crate) fn short_bytes(&mut self, max: usize) -> Result<&'a [u8], CryptoError> {
        let len = usize::from(self.u8()?);
        self.bounded(len, max)
    }

    /// A byte string with a two-byte length, at most `max` long.
    pub(crate) fn medium_bytes(&mut self, max: usize) -> Result<&'a [u8], CryptoError> {
        let len = usize::from(self.u16()?);
        self.bounded(len, max)
    }

    /// A byte string with a four-byte length, at most `max` long.
    pub(crate) fn long_bytes(&mut self, max: usize) -> Result<&'a [u8], CryptoError> {
        let len = self.u32()? as usize;
        self.bounded(len, max)
    }

    fn bounded(&mut self, len: usize, max: usize) -> Result<&'a [u8], CryptoError> {
        if len > max {
            return Err(self.error(format_args!(
                "field of {len} bytes exceeds the limit of {max}"
            )));
        }
        self.take(len)
    }

    /// Fails unless every byte was consumed: trailing bytes would make two encodings of one
    /// value, which a canonical (signed) format must not allow.
    pub(crate) fn finish(self) -> Result<(), CryptoError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error(format_args!("{} trailing bytes", self.rest.len())))
        }
    }
}
