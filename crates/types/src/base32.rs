//! Lowercase RFC 4648 base32 without padding, the human form of ids and tokens.
//!
//! Lowercase because ids end up in hostnames, URLs and shell commands; no padding because the
//! length of every value we encode is fixed or carried elsewhere.

use crate::TypesError;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Encodes `bytes` as lowercase, unpadded base32.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes unpadded base32 (either case). Rejects characters outside the alphabet and
/// non-canonical trailing bits, so every byte string has exactly one accepted text form.
pub fn decode(text: &str) -> Result<Vec<u8>, TypesError> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for (position, c) in text.chars().enumerate() {
        let value = match c {
            'a'..='z' => c as u32 - 'a' as u32,
            'A'..='Z' => c as u32 - 'A' as u32,
            '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => {
                return Err(TypesError::Base32 {
                    reason: format!("character {c:?} at position {position} is not base32"),
                });
            }
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    // A valid unpadded encoding leaves fewer than 5 bits, all zero.
    if bits >= 5 || buffer != 0 {
        return Err(TypesError::Base32 {
            reason: "text has a non-canonical length or trailing bits".to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc4648_vectors() {
        // RFC 4648 section 10, lowercased and without padding.
        let cases = [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
            assert_eq!(decode(&encoded.to_uppercase()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert!(decode("mzxw6!").is_err());
        assert!(decode("m").is_err(), "one char can never be a whole byte");
        assert!(decode("mz").is_err(), "trailing bits must be zero");
    }

    proptest! {
        #[test]
        fn roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
    }
}
