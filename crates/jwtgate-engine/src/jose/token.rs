//! The compact serialization (RFC 7515 §7.1): `header.payload.signature`, split into
//! borrowed segments without copying or decoding anything.

use crate::outcome::{Outcome, Rejection};

/// A compact JWS cut into its three base64url segments, all borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawToken<'t> {
    /// The protected header, still base64url.
    pub header: &'t [u8],
    /// The payload, still base64url.
    pub payload: &'t [u8],
    /// The signature, still base64url.
    pub signature: &'t [u8],
    /// `header '.' payload`: the exact bytes the signature covers (RFC 7515 §5.2),
    /// as received, never re-encoded.
    pub signing_input: &'t [u8],
}

const ENCRYPTED: Rejection =
    Rejection::new(Outcome::Malformed, "encrypted tokens are not supported");
const NOT_COMPACT: Rejection = Rejection::new(
    Outcome::Malformed,
    "not a compact JWS: expected three base64url segments separated by dots",
);
const EMPTY_HEADER: Rejection = Rejection::new(Outcome::Malformed, "empty header segment");

impl<'t> RawToken<'t> {
    /// Splits `token` at its dots. Five segments are a JWE (RFC 7516), which jwtgate
    /// refuses by name; any other count is malformed.
    pub fn split(token: &'t [u8]) -> Result<RawToken<'t>, Rejection> {
        // Two forward searches find the first two dots; one backward search, over
        // the signature only, proves there is no third. Only when there is does the
        // rest get counted, to tell a JWE (five segments) from other shapes.
        let first = memchr::memchr(b'.', token).ok_or(NOT_COMPACT)?;
        let second = memchr::memchr(b'.', token.get(first + 1..).unwrap_or_default())
            .map(|offset| first + 1 + offset)
            .ok_or(NOT_COMPACT)?;
        if memchr::memrchr(b'.', token) != Some(second) {
            let rest = token.get(second + 1..).unwrap_or_default();
            return Err(if memchr::memchr_iter(b'.', rest).count() == 2 {
                ENCRYPTED
            } else {
                NOT_COMPACT
            });
        }
        let (signing_input, signature) = token.split_at(second);
        let (header, payload) = signing_input.split_at(first);
        let payload = payload.get(1..).unwrap_or_default();
        let signature = signature.get(1..).unwrap_or_default();
        if header.is_empty() {
            return Err(EMPTY_HEADER);
        }
        Ok(RawToken {
            header,
            payload,
            signature,
            signing_input,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_segments() {
        let token = RawToken::split(b"aGVhZA.cGF5.c2ln");
        assert_eq!(
            token,
            Ok(RawToken {
                header: b"aGVhZA",
                payload: b"cGF5",
                signature: b"c2ln",
                signing_input: b"aGVhZA.cGF5",
            })
        );
        let empty_parts = RawToken::split(b"aGVhZA..");
        assert_eq!(
            empty_parts.map(|t| (t.payload, t.signature)),
            Ok((&b""[..], &b""[..]))
        );
    }

    #[test]
    fn names_encrypted_tokens() {
        assert_eq!(RawToken::split(b"a.b.c.d.e"), Err(ENCRYPTED));
        assert_eq!(RawToken::split(b"...."), Err(ENCRYPTED));
    }

    #[test]
    fn refuses_other_shapes() {
        for token in [
            &b""[..],
            b"abc",
            b"a.b",
            b"a.b.c.d",
            b"a.b.c.d.e.f",
            b".b.c",
        ] {
            assert_eq!(
                RawToken::split(token)
                    .map(|t| t.header)
                    .map_err(|r| r.outcome()),
                Err(Outcome::Malformed)
            );
        }
    }
}
