//! Key files: a node's ML-DSA identity on disk.
//!
//! ```text
//! v1 = "X0TK" | u8 version=1 | u8 kind=1 (ML-DSA identity) | u8 sig_alg
//!    | u16 len | public key | u16 len | secret key
//!    | checksum (32) = blake3::derive_key("x0t 2026-11 key file v1 checksum", all bytes before)
//! ```
//!
//! Files are written to a temporary sibling opened `O_EXCL` with mode 0600, fsynced, then moved
//! into place (hard link when overwriting is not allowed, so two concurrent `keygen`s cannot
//! both win; rename when it is), and the directory is fsynced. A crash at any point leaves
//! either the old file or the new one, never a torn one. Reading refuses a file that group or
//! others can access, because a leaked identity key lets anyone impersonate the node.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::CryptoError;
use crate::sig::{SigAlgorithm, SigningKey};

const MAGIC: &[u8; 4] = b"X0TK";
/// Version of the key file format this build writes and reads.
pub const KEY_FILE_VERSION: u8 = 1;
const KIND_IDENTITY: u8 = 1;
const CHECKSUM_CONTEXT: &str = "x0t 2026-11 key file v1 checksum";
/// Larger than any valid key file; bigger files are refused before being read.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CryptoError {
    let path = path.to_path_buf();
    move |source| CryptoError::Io {
        action,
        path,
        source,
    }
}

/// Encodes a key in the v1 key file format.
fn encode(key: &SigningKey) -> Zeroizing<Vec<u8>> {
    let public = key.verifying_key().as_bytes();
    let secret = key.secret_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(7 + 4 + public.len() + secret.len() + 32));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[KEY_FILE_VERSION, KIND_IDENTITY, key.algorithm().code()]);
    out.extend_from_slice(&(public.len() as u16).to_be_bytes());
    out.extend_from_slice(public);
    out.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    out.extend_from_slice(secret);
    let checksum = blake3::derive_key(CHECKSUM_CONTEXT, &out);
    out.extend_from_slice(&checksum);
    out
}

/// Decodes key-file bytes already read from `path` (which every error names): what
/// [`read_signing_key`] does after reading, for callers holding the bytes (and the fuzz target).
pub fn decode_key_file(path: &Path, bytes: &[u8]) -> Result<SigningKey, CryptoError> {
    decode(path, bytes)
}

/// Decodes the v1 key file format, naming `path` in every error.
fn decode(path: &Path, bytes: &[u8]) -> Result<SigningKey, CryptoError> {
    let truncated = |detail: String| CryptoError::KeyFileTruncated {
        path: path.to_path_buf(),
        detail,
    };
    let corrupt = |detail: String| CryptoError::KeyFileCorrupt {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.len() < MAGIC.len() + 1 {
        return Err(truncated(format!(
            "{} bytes, too short for a header",
            bytes.len()
        )));
    }
    if &bytes[..4] != MAGIC {
        return Err(corrupt("not an x0t key file (bad magic)".to_owned()));
    }
    if bytes[4] != KEY_FILE_VERSION {
        return Err(CryptoError::KeyFileVersion {
            path: path.to_path_buf(),
            found: bytes[4],
            supported: KEY_FILE_VERSION,
        });
    }
    let mut rest = &bytes[5..];
    let mut take = |len: usize, what: &str| -> Result<&[u8], CryptoError> {
        if rest.len() < len {
            return Err(truncated(format!(
                "{what} needs {len} bytes, only {} left",
                rest.len()
            )));
        }
        let (head, tail) = rest.split_at(len);
        rest = tail;
        Ok(head)
    };
    let header = take(2, "header")?;
    if header[0] != KIND_IDENTITY {
        return Err(corrupt(format!("unknown key kind {}", header[0])));
    }
    let algorithm = SigAlgorithm::from_code(header[1])
        .ok_or_else(|| corrupt(format!("unknown algorithm code {:#04x}", header[1])))?;
    let length = |bytes: &[u8]| usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    let public_len = length(take(2, "public key length")?);
    if public_len != algorithm.public_key_len() {
        return Err(corrupt(format!(
            "public key length {public_len} is wrong for {algorithm}"
        )));
    }
    let public = take(public_len, "public key")?;
    let secret_len = length(take(2, "secret key length")?);
    if secret_len != algorithm.secret_key_len() {
        return Err(corrupt(format!(
            "secret key length {secret_len} is wrong for {algorithm}"
        )));
    }
    let secret = take(secret_len, "secret key")?;
    let checksum = take(32, "checksum")?;
    if !rest.is_empty() {
        return Err(corrupt(format!("{} unexpected trailing bytes", rest.len())));
    }
    let body_len = bytes.len() - 32;
    if blake3::derive_key(CHECKSUM_CONTEXT, &bytes[..body_len]) != checksum {
        return Err(corrupt(
            "checksum mismatch (the file was damaged or edited)".to_owned(),
        ));
    }
    let key = SigningKey::from_parts(algorithm, public, secret)?;
    // The checksum only proves the file is as written; a file assembled from two keys (found
    // by the key_file fuzz target) would load as an identity whose signatures no one can
    // verify under the public key it names.
    key.check_pair()
        .map_err(|_| corrupt("the public and secret keys are not one pair".to_owned()))?;
    Ok(key)
}

/// Writes `key` to `path` atomically with mode 0600, creating the directory (0700) if needed.
/// Without `overwrite`, an existing file is left untouched and [`CryptoError::KeyFileExists`]
/// is returned.
pub fn write_signing_key(
    path: &Path,
    key: &SigningKey,
    overwrite: bool,
) -> Result<(), CryptoError> {
    write_secret_file(path, &encode(key), overwrite)
}

/// Writes any secret (a key in another format, an API token) the way key files are written:
/// 0600 in a 0700 directory, atomically, durably; refuses to replace an existing file unless
/// `overwrite`.
pub fn write_secret_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), CryptoError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(io_error("creating directory", &dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error("setting permissions on", &dir))?;
    }
    if !overwrite && path.exists() {
        return Err(CryptoError::KeyFileExists {
            path: path.to_path_buf(),
        });
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".to_owned());
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = write_temp_then_place(&temp, path, bytes, overwrite);
    // The temporary name is gone after a rename; after a link (or a failure) remove it.
    let _ = fs::remove_file(&temp);
    result?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing directory", &dir))
}

fn write_temp_then_place(
    temp: &Path,
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
) -> Result<(), CryptoError> {
    // A stale temporary from a crashed run is ours to replace.
    let _ = fs::remove_file(temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(io_error("creating", temp))?;
    file.write_all(bytes).map_err(io_error("writing", temp))?;
    file.sync_all().map_err(io_error("syncing", temp))?;
    drop(file);
    if overwrite {
        fs::rename(temp, path).map_err(io_error("replacing", path))
    } else {
        fs::hard_link(temp, path).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                CryptoError::KeyFileExists {
                    path: path.to_path_buf(),
                }
            } else {
                io_error("creating", path)(source)
            }
        })
    }
}

/// Reads a key written by [`write_signing_key`], refusing files other users can read. The
/// key that loads is a checked pair (its secret half signs what its public half verifies).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, CryptoError> {
    let bytes = read_secret_file(path, MAX_KEY_FILE_LEN)?;
    decode(path, &bytes)
}

/// Reads a secret file written by [`write_secret_file`]: refuses a missing file, one that is
/// not a regular file, one group or others can access, or one larger than `max_len`.
pub fn read_secret_file(path: &Path, max_len: u64) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CryptoError::KeyFileMissing {
            path: path.to_path_buf(),
        },
        _ => io_error("opening", path)(source),
    })?;
    let metadata = file.metadata().map_err(io_error("inspecting", path))?;
    if !metadata.is_file() {
        return Err(CryptoError::KeyFileCorrupt {
            path: path.to_path_buf(),
            detail: "not a regular file".to_owned(),
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if metadata.size() > max_len {
        return Err(CryptoError::KeyFileCorrupt {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes is larger than any such file ({max_len})",
                metadata.size()
            ),
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.size() as usize));
    file.take(max_len)
        .read_to_end(&mut bytes)
        .map_err(io_error("reading", path))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity.key");
        let key = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
        write_signing_key(&path, &key, false).unwrap();
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let loaded = read_signing_key(&path).unwrap();
        assert_eq!(loaded.verifying_key(), key.verifying_key());
        loaded.check_pair().unwrap();
        // No temporary left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    /// Regression test for the key_file fuzz target's first crash
    /// (fuzz/corpus/key_file/regression-mismatched-halves): a file with a valid checksum
    /// whose public half belongs to another key loaded, and signed unverifiably.
    #[test]
    fn a_file_of_two_keys_halves_is_refused() {
        let first = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
        let second = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
        let mut bytes = encode(&first).to_vec();
        let public_at = 7 + 2;
        let public = second.verifying_key().as_bytes();
        bytes[public_at..public_at + public.len()].copy_from_slice(public);
        let body_len = bytes.len() - 32;
        let checksum = blake3::derive_key(CHECKSUM_CONTEXT, &bytes[..body_len]);
        bytes[body_len..].copy_from_slice(&checksum);
        let err = decode_key_file(Path::new("mixed.key"), &bytes).unwrap_err();
        assert!(matches!(err, CryptoError::KeyFileCorrupt { .. }), "{err}");
        assert!(err.to_string().contains("not one pair"), "{err}");
        assert!(err.to_string().contains("mixed.key"), "{err}");
    }

    #[test]
    fn refuses_to_overwrite_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        let first = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
        let second = SigningKey::generate(SigAlgorithm::MlDsa65).unwrap();
        write_signing_key(&path, &first, false).unwrap();
        let err = write_signing_key(&path, &second, false).unwrap_err();
        assert!(matches!(err, CryptoError::KeyFileExists { .. }), "{err}");
        assert!(err.to_string().contains("--force"));
        assert_eq!(read_signing_key(&path).unwrap().node_id(), first.node_id());
        write_signing_key(&path, &second, true).unwrap();
        assert_eq!(read_signing_key(&path).unwrap().node_id(), second.node_id());
    }

    #[test]
    fn clear_errors_for_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        assert!(matches!(
            read_signing_key(&path),
            Err(CryptoError::KeyFileMissing { .. })
        ));

        let key = SigningKey::generate(SigAlgorithm::MlDsa44).unwrap();
        write_signing_key(&path, &key, false).unwrap();
        let good = fs::read(&path).unwrap();
        let rewrite = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        };

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_signing_key(&path).unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyFilePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0644"));

        for cut in [0, 3, 10, good.len() / 2, good.len() - 1] {
            rewrite(&good[..cut]);
            let err = read_signing_key(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::KeyFileTruncated { .. }),
                "cut {cut}: {err}"
            );
        }

        let mut wrong_version = good.clone();
        wrong_version[4] = 9;
        rewrite(&wrong_version);
        assert!(matches!(
            read_signing_key(&path),
            Err(CryptoError::KeyFileVersion {
                found: 9,
                supported: 1,
                ..
            })
        ));

        let mut flipped = good.clone();
        flipped[100] ^= 0x01;
        rewrite(&flipped);
        assert!(matches!(
            read_signing_key(&path),
            Err(CryptoError::KeyFileCorrupt { .. })
        ));

        rewrite(b"-----BEGIN PRIVATE KEY-----");
        assert!(matches!(
            read_signing_key(&path),
            Err(CryptoError::KeyFileCorrupt { .. })
        ));

        let mut long = good.clone();
        long.push(0);
        rewrite(&long);
        assert!(matches!(
            read_signing_key(&path),
            Err(CryptoError::KeyFileCorrupt { .. })
        ));

        rewrite(&good);
        assert_eq!(read_signing_key(&path).unwrap().node_id(), key.node_id());
    }
}
