use std::path::PathBuf;

/// Everything that can go wrong in `x0t-crypto`.
///
/// Verification failures say *what* failed but never leak secret material. Mapping to HTTP or
/// gRPC statuses happens in `x0t-node`, never here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// liboqs refused an operation (algorithm disabled, internal failure).
    #[error("liboqs {operation} failed: {detail}")]
    Oqs {
        /// What we asked liboqs to do.
        operation: &'static str,
        /// liboqs' own description.
        detail: String,
    },
    /// A key, ciphertext or signature of the wrong length for its algorithm.
    #[error("invalid {what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being parsed.
        what: &'static str,
        /// The length the algorithm requires.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// A signature did not verify.
    #[error("signature verification failed for {what}")]
    BadSignature {
        /// What the signature was over.
        what: &'static str,
    },
    /// A signature made with one algorithm was checked against a key of another.
    #[error("algorithm mismatch: key is {key}, signature is {signature}")]
    AlgorithmMismatch {
        /// The key's algorithm.
        key: &'static str,
        /// The signature's algorithm.
        signature: &'static str,
    },
    /// Bytes that do not decode as the expected structure.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A value outside what the encoding or the domain accepts.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being built.
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A certificate or token was checked outside its validity window.
    #[error("{what} is not valid at {now}: valid from {not_before} until {not_after}")]
    OutsideValidity {
        /// What was checked.
        what: &'static str,
        /// The time it was checked at.
        now: x0t_types::Timestamp,
        /// Start of its validity.
        not_before: x0t_types::Timestamp,
        /// End of its validity.
        not_after: x0t_types::Timestamp,
    },
    /// The X25519 peer share was a low-order point, which would make the shared secret
    /// predictable.
    #[error("X25519 share from the peer is not contributory (low-order point)")]
    NonContributory,
    /// AEAD open failed: wrong key, wrong nonce, tampered ciphertext or associated data.
    #[error("AEAD authentication failed")]
    AeadOpen,
    /// A sealed frame whose counter was received before or is too old.
    #[error("replayed frame (counter {counter}): {reason}")]
    Replay {
        /// The frame's counter.
        counter: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A sealing key used up its nonce space; the session must rekey.
    #[error("nonce space of this key is exhausted; rekey the session")]
    NonceExhausted,
    /// A key file does not exist.
    #[error("no key file at {path} (run `x0t keygen` to create one)")]
    KeyFileMissing {
        /// Where we looked.
        path: PathBuf,
    },
    /// A key file exists and overwriting it was not asked for.
    #[error(
        "a key file already exists at {path}; refusing to overwrite it (use --force to replace it, which changes this node's identity)"
    )]
    KeyFileExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key file readable by group or others.
    #[error(
        "key file {path} has permissions {mode:04o}; it must be 0600 (run `chmod 600 {path}` if you trust its contents)"
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file shorter than its header says.
    #[error("key file {path} is truncated: {detail}")]
    KeyFileTruncated {
        /// The file.
        path: PathBuf,
        /// What was missing.
        detail: String,
    },
    /// A key file written by an unknown version of the format.
    #[error("key file {path} has format version {found}; this build reads version {supported}")]
    KeyFileVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u8,
        /// The version this build understands.
        supported: u8,
    },
    /// A key file whose contents are damaged or not a key file at all.
    #[error("key file {path} is corrupt: {detail}")]
    KeyFileCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An I/O failure reading or writing a key file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl CryptoError {
    pub(crate) fn oqs(operation: &'static str, error: oqs::Error) -> Self {
        Self::Oqs {
            operation,
            detail: error.to_string(),
        }
    }

    pub(crate) fn decode(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Decode {
            what,
            reason: reason.into(),
        }
    }
}
