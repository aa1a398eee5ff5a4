//! Strict base64url (RFC 7515 §2, RFC 4648 §5): the URL alphabet only, no padding,
//! no whitespace, and canonical trailing bits, so that every byte string has
//! exactly one accepted encoding (a token cannot be altered by flipping unused bits).
//!
//! Decoding appends into a caller-owned buffer, which callers reuse, so steady-state
//! decoding allocates nothing. Neighbours: [`crate::jose::token`] splits the token,
//! [`crate::jose::jwk`] decodes key members.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a base64url segment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    /// A byte outside the URL-safe alphabet (including `=`, `+`, `/` and whitespace).
    #[error("invalid base64url character")]
    InvalidCharacter,
    /// The length leaves a single dangling character.
    #[error("invalid base64url length")]
    InvalidLength,
    /// The last character carries bits that do not belong to the decoded bytes.
    #[error("non-canonical base64url (trailing bits set)")]
    NonCanonical,
}

/// Bytes that decoding `encoded_len` base64url characters produces at most.
pub const fn decoded_len_upper_bound(encoded_len: usize) -> usize {
    encoded_len / 4 * 3 + 3
}

/// Decodes `input` strictly, replacing the contents of `out`.
///
/// `out` keeps its capacity between calls; it is only grown when a segment is longer
/// than anything decoded into it before.
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
    out.clear();
    URL_SAFE_NO_PAD
        .decode_vec(input, out)
        .map_err(|error| match error {
            base64::DecodeError::InvalidLength(_) => Base64Error::InvalidLength,
            base64::DecodeError::InvalidLastSymbol(_, _) => Base64Error::NonCanonical,
            base64::DecodeError::InvalidByte(_, _) | base64::DecodeError::InvalidPadding => {
                Base64Error::InvalidCharacter
            }
        })
}

/// Decodes `input` strictly into a new vector (for keys and tools, off the hot path).
pub fn decode(input: &[u8]) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::with_capacity(decoded_len_upper_bound(input.len()));
    decode_into(input, &mut out)?;
    Ok(out)
}

/// Encodes `input` as unpadded base64url.
pub fn encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

/// Appends the unpadded base64url encoding of `input` to `out`.
pub fn encode_into(input: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(input, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_url_alphabet() {
        assert_eq!(decode(b"-_8").as_deref(), Ok(&[0xfb, 0xff][..]));
        assert_eq!(decode(b"").as_deref(), Ok(&[][..]));
        assert_eq!(decode(b"Zm9v").as_deref(), Ok(&b"foo"[..]));
    }

    #[test]
    fn refuses_everything_but_the_canonical_form() {
        assert_eq!(decode(b"Zm8="), Err(Base64Error::InvalidCharacter));
        assert_eq!(decode(b"+/8"), Err(Base64Error::InvalidCharacter));
        assert_eq!(decode(b"Zm 9v"), Err(Base64Error::InvalidCharacter));
        assert_eq!(decode(b"Zm9v\n"), Err(Base64Error::InvalidCharacter));
        assert_eq!(decode(b"Z"), Err(Base64Error::InvalidLength));
        assert_eq!(decode(b"Zm9vY"), Err(Base64Error::InvalidLength));
        // "Zm8" is "fo"; "Zm9" has the two unused low bits of '9' set.
        assert_eq!(decode(b"Zm8").as_deref(), Ok(&b"fo"[..]));
        assert_eq!(decode(b"Zm9"), Err(Base64Error::NonCanonical));
        assert_eq!(decode(b"Zh"), Err(Base64Error::NonCanonical));
    }

    #[test]
    fn every_byte_string_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        for end in 0..bytes.len() {
            let slice = bytes.get(..end).unwrap_or_default();
            assert_eq!(decode(encode(slice).as_bytes()).as_deref(), Ok(slice));
        }
    }

    #[test]
    fn reused_buffer_keeps_its_capacity() {
        let mut out = Vec::with_capacity(64);
        let before = out.capacity();
        decode_into(b"Zm9vYmFy", &mut out).unwrap_or_default();
        decode_into(b"Zm9v", &mut out).unwrap_or_default();
        assert_eq!(out, b"foo");
        assert_eq!(out.capacity(), before);
    }
}
