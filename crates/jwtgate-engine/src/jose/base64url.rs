//! Strict base64url (RFC 7515 §2, RFC 4648 §5): the URL alphabet only, no padding,
//! no whitespace, and canonical trailing bits, so that every byte string has
//! exactly one accepted encoding (a token cannot be altered by flipping unused bits).
//!
//! Decoding appends into a caller-owned buffer, which callers reuse, so steady-state
//! decoding allocates nothing. Neighbours: `jose::token` splits the token,
//! `jose::jwk` decodes key members.

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
pub(crate) const fn decoded_len_upper_bound(encoded_len: usize) -> usize {
    encoded_len / 4 * 3 + 3
}

/// Marks bytes outside the URL-safe alphabet in [`SEXTETS`].
const INVALID: u8 = 0x80;

/// The 6-bit value of every URL-safe base64 character; [`INVALID`] elsewhere.
#[allow(clippy::indexing_slicing)] // compile-time: indices are < 64 and bytes index a 256-entry table
static SEXTETS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut index = 0;
    while index < 64 {
        table[alphabet[index] as usize] = index as u8;
        index += 1;
    }
    table
};

#[inline]
fn sextet(byte: u8) -> u32 {
    // A u8 index is always within the 256-entry table; the fallback is dead code
    // that keeps the lookup free of a panic path.
    u32::from(SEXTETS.get(usize::from(byte)).copied().unwrap_or(INVALID))
}

/// Decodes `input` strictly, replacing the contents of `out`.
///
/// `out` keeps its capacity between calls; it is only grown when a segment is longer
/// than anything decoded into it before. Hand-written rather than the `base64`
/// crate's general engine because it is the hottest loop of a verification:
/// four table lookups per three bytes, with every invalid character caught by one
/// OR-accumulated flag instead of a branch per character.
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
    out.clear();
    let (quads, rest) = input.as_chunks::<4>();
    let tail_len = match rest.len() {
        0 => 0,
        2 => 1,
        3 => 2,
        _ => return Err(Base64Error::InvalidLength),
    };
    out.resize(quads.len() * 3 + tail_len, 0);
    let (triples, tail) = out.as_chunks_mut::<3>();
    let mut invalid = 0u32;
    for ([a, b, c, d], [x, y, z]) in quads.iter().zip(triples) {
        let (a, b, c, d) = (sextet(*a), sextet(*b), sextet(*c), sextet(*d));
        invalid |= a | b | c | d;
        let bits = a << 18 | b << 12 | c << 6 | d;
        // Truncation to the low byte is the point of each cast.
        (*x, *y, *z) = ((bits >> 16) as u8, (bits >> 8) as u8, bits as u8);
    }
    match (rest, tail) {
        ([], []) => {}
        ([a, b], [x]) => {
            let (a, b) = (sextet(*a), sextet(*b));
            invalid |= a | b;
            if invalid & INVALID as u32 == 0 && b & 0x0f != 0 {
                return Err(Base64Error::NonCanonical);
            }
            *x = (a << 2 | b >> 4) as u8;
        }
        ([a, b, c], [x, y]) => {
            let (a, b, c) = (sextet(*a), sextet(*b), sextet(*c));
            invalid |= a | b | c;
            if invalid & INVALID as u32 == 0 && c & 0x03 != 0 {
                return Err(Base64Error::NonCanonical);
            }
            let bits = a << 10 | b << 4 | c >> 2;
            (*x, *y) = ((bits >> 8) as u8, bits as u8);
        }
        _ => return Err(Base64Error::InvalidLength),
    }
    if invalid & u32::from(INVALID) != 0 {
        out.clear();
        return Err(Base64Error::InvalidCharacter);
    }
    Ok(())
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
        assert_eq!(decode(b"Zm 9v"), Err(Base64Error::InvalidLength));
        assert_eq!(decode(b"Zm 9vYQ"), Err(Base64Error::InvalidCharacter));
        assert_eq!(decode(b"Zm9v\n"), Err(Base64Error::InvalidLength));
        assert_eq!(decode(b"Zm9v\n\n\n\n"), Err(Base64Error::InvalidCharacter));
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
    fn agrees_with_the_base64_crate_on_every_short_input() {
        // Exhaustive over all strings of up to 3 characters from an alphabet that
        // mixes valid, invalid and padding characters, plus every 4-byte pattern of
        // the tail-bit boundary: the hand-written decoder must accept exactly what
        // the reference strict decoder accepts, and decode it identically.
        let alphabet = b"AQgw_-+/=. \xff09Zaz";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for length in 1..=4 {
            let previous: Vec<Vec<u8>> = inputs
                .iter()
                .filter(|i| i.len() == length - 1)
                .cloned()
                .collect();
            for prefix in previous {
                for &c in alphabet {
                    let mut next = prefix.clone();
                    next.push(c);
                    inputs.push(next);
                }
            }
        }
        let mut ours = Vec::new();
        for input in inputs {
            let reference = URL_SAFE_NO_PAD.decode(&input);
            let result = decode_into(&input, &mut ours).map(|()| ours.clone());
            assert_eq!(
                result.is_ok(),
                reference.is_ok(),
                "{input:?}: {result:?} vs {reference:?}"
            );
            if let (Ok(a), Ok(b)) = (result, reference) {
                assert_eq!(a, b, "{input:?}");
            }
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
