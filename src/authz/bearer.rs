//! Where the token is in a check request: the `Authorization` header, either
//! `Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive and extra
//! spaces are tolerated) or the raw token alone. Cookies and other sources
//! arrive with the policy layer.

use crate::http::RequestHead;

/// What the request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'b> {
    /// A token, borrowed from the header value.
    Token(&'b [u8]),
    /// No bearer token: no `Authorization` header, an empty one, or another scheme.
    Missing,
    /// An `Authorization` header that cannot be read as one bearer token.
    Malformed(&'static str),
}

/// Finds the bearer token of `head`.
///
/// Two `Authorization` headers are refused rather than resolved: a proxy and
/// the origin could pick different ones, and the origin's pick is unchecked.
pub fn credential<'b>(head: &RequestHead<'_, 'b>) -> Credential<'b> {
    let mut values = head.header_values("authorization");
    let Some(value) = values.next() else {
        return Credential::Missing;
    };
    if values.next().is_some() {
        return Credential::Malformed("more than one Authorization header");
    }
    from_value(value)
}

fn is_space(byte: &u8) -> bool {
    *byte == b' ' || *byte == b'\t'
}

/// Reads one `Authorization` value.
pub fn from_value(value: &[u8]) -> Credential<'_> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Credential::Missing;
    }
    let Some(space) = value.iter().position(is_space) else {
        if value.eq_ignore_ascii_case(b"bearer") {
            return Credential::Malformed("Bearer scheme without a token");
        }
        return Credential::Token(value);
    };
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Credential::Missing;
    }
    let token = rest.trim_ascii();
    if token.iter().any(is_space) {
        return Credential::Malformed("the bearer token contains whitespace");
    }
    Credential::Token(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_raw_token_and_other_schemes() {
        let cases: [(&[u8], Credential<'_>); 11] = [
            (b"Bearer a.b.c", Credential::Token(b"a.b.c")),
            (b"bearer a.b.c", Credential::Token(b"a.b.c")),
            (b"BEARER    a.b.c  ", Credential::Token(b"a.b.c")),
            (b"Bearer\ta.b.c", Credential::Token(b"a.b.c")),
            (b"a.b.c", Credential::Token(b"a.b.c")),
            (b"  a.b.c ", Credential::Token(b"a.b.c")),
            (b"Basic dXNlcjpwYXNz", Credential::Missing),
            (b"", Credential::Missing),
            (
                b"Bearer",
                Credential::Malformed("Bearer scheme without a token"),
            ),
            (
                b"Bearer   ",
                Credential::Malformed("Bearer scheme without a token"),
            ),
            (
                b"Bearer a.b.c d.e.f",
                Credential::Malformed("the bearer token contains whitespace"),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                from_value(value),
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
