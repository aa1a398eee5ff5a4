//! Where a token configuration looks for its token: a header (raw, or after a
//! scheme such as `Bearer`), a cookie, or a query parameter (off unless
//! listed: query strings end up in logs). Every lookup borrows the request.
//!
//! A source is found by meaning, not by bytes: whatever an application
//! behind the proxy could read as the configured source counts as it, so a
//! second spelling can neither hide a garbage token (it is verified, not
//! `missing`) nor stand beside a valid one unseen (two tokens are refused).
//! Header names match ignoring case and with `_` for `-` (CGI, WSGI, Rack and
//! PHP turn both into `_`). Query and cookie names are percent-decoded (`+`
//! is a space) and match ignoring ASCII case (ASP.NET) and with `.` or a
//! space for `_` (PHP); query parameters are separated by `&` or `;` (Rack
//! before 3, Python before 3.9.2), cookies by `;` or `,` (RFC 2965 parsers).

use crate::http::RequestHead;

use super::unicode;

/// One place a token may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A header. With a `scheme` (e.g. `Bearer`), both `<scheme> <token>`
    /// (scheme case-insensitive, extra spaces tolerated) and the raw token are
    /// accepted, and another scheme counts as no token (RFC 6750 §2.1).
    Header {
        /// Header name, lower case.
        name: Box<str>,
        /// The auth scheme, if the value may carry one.
        scheme: Option<Box<str>>,
    },
    /// A cookie of this name.
    Cookie {
        /// Cookie name (matched as the module doc says).
        name: Box<str>,
    },
    /// A query parameter of the original request.
    Query {
        /// Parameter name (matched as the module doc says).
        name: Box<str>,
    },
}

/// What one source found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'b> {
    /// Nothing there.
    Absent,
    /// A token (not yet verified).
    Token(&'b [u8]),
    /// Something that cannot be read as exactly one token.
    Malformed(&'static str),
}

impl TokenSource {
    /// `Authorization: Bearer <token>` or a raw token: the flags-only source.
    pub fn authorization_bearer() -> TokenSource {
        TokenSource::Header {
            name: "authorization".into(),
            scheme: Some("Bearer".into()),
        }
    }

    /// Looks for the token in `head`; `query` is the original request's query
    /// string (after `?`), empty if none.
    pub fn find<'b>(&self, head: &RequestHead<'_, 'b>, query: &'b [u8]) -> Found<'b> {
        match self {
            TokenSource::Header { name, scheme } => {
                let mut values = head.header_values_where(|field| same_header_name(field, name));
                let Some(value) = values.next() else {
                    return Found::Absent;
                };
                if values.next().is_some() {
                    return Found::Malformed("the token header appears more than once");
                }
                header_value(value, scheme.as_deref())
            }
            TokenSource::Cookie { name } => {
                let mut found = Found::Absent;
                for value in head.header_values("cookie") {
                    for (cookie, token) in pairs(value, b";,") {
                        if same_decoded_name(cookie, name) {
                            if found != Found::Absent {
                                return Found::Malformed("the token cookie is set more than once");
                            }
                            let token = token
                                .strip_prefix(b"\"")
                                .and_then(|t| t.strip_suffix(b"\""))
                                .unwrap_or(token);
                            found = if token.is_empty() {
                                Found::Absent
                            } else {
                                Found::Token(token)
                            };
                        }
                    }
                }
                found
            }
            TokenSource::Query { name } => {
                let mut found = Found::Absent;
                for (parameter, token) in pairs(query, b"&;") {
                    if same_decoded_name(parameter, name) {
                        if found != Found::Absent {
                            return Found::Malformed("the token parameter appears more than once");
                        }
                        found = if token.is_empty() {
                            Found::Absent
                        } else {
                            Found::Token(token)
                        };
                    }
                }
                found
            }
        }
    }
}

/// `name=value` pairs separated by any of `separators`, names and values trimmed.
pub(crate) fn pairs<'t>(
    text: &'t [u8],
    separators: &'static [u8],
) -> impl Iterator<Item = (&'t [u8], &'t [u8])> {
    text.split(move |b| separators.contains(b))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let equals = memchr::memchr(b'=', pair)?;
            Some((
                pair.get(..equals)?.trim_ascii(),
                pair.get(equals + 1..)?.trim_ascii(),
            ))
        })
}

/// Header names as applications see them: case and `_`/`-` folded.
pub(crate) fn same_header_name(field: &str, name: &str) -> bool {
    let fold = |byte: u8| match byte {
        b'_' => b'-',
        _ => byte.to_ascii_lowercase(),
    };
    field.len() == name.len()
        && field
            .bytes()
            .zip(name.bytes())
            .all(|(a, b)| fold(a) == fold(b))
}

/// A query or cookie name byte as PHP and ASP.NET compare it.
fn fold_name_byte(byte: u8) -> u8 {
    match byte {
        b'.' | b' ' | b'[' => b'_',
        _ => byte.to_ascii_lowercase(),
    }
}

/// Longest decoded name compared; a longer one is no configured name.
const MAX_NAME: usize = 256;

/// Whether the raw (percent-encoded) name `raw` is read as `name` by some
/// application: decoded (`+` is a space; a malformed escape stays as
/// written, as most decoders leave it); with PHP, leading spaces dropped, cut
/// at a NUL, `.`, a space and an unclosed `[` read as `_`, and `name[...]`
/// an array of `name`; letters compared ignoring case (ASP.NET), by simple
/// case mapping or compatibility form where not ASCII ([`unicode`]).
pub(crate) fn same_decoded_name(raw: &[u8], name: &str) -> bool {
    let mut decoded = [0_u8; MAX_NAME];
    let mut len = 0;
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        let escaped = (byte == b'%')
            .then(|| {
                let digit = |at: usize| raw.get(at).and_then(|&d| (d as char).to_digit(16));
                Some(digit(i + 1)? << 4 | digit(i + 2)?)
            })
            .flatten();
        let (byte, spelled) = match (escaped, byte) {
            // Two hex digits make at most 0xFF.
            (Some(value), _) => (u8::try_from(value).unwrap_or(0), 3),
            (None, b'+') => (b' ', 1),
            (None, _) => (byte, 1),
        };
        i += spelled;
        if byte == 0 {
            break;
        }
        let Some(slot) = decoded.get_mut(len) else {
            return false;
        };
        *slot = byte;
        len += 1;
    }
    let Ok(text) = std::str::from_utf8(decoded.get(..len).unwrap_or_default()) else {
        return false;
    };
    let mut wanted = name.bytes();
    for c in text.trim_start_matches(' ').chars() {
        let Some(letter) = unicode::ascii_letter(c) else {
            return false;
        };
        match wanted.next() {
            Some(expected) if fold_name_byte(expected) == fold_name_byte(letter) => {}
            // `name[...]`: PHP's array of `name`.
            None => return letter == b'[',
            _ => return false,
        }
    }
    wanted.next().is_none()
}

/// Whether `text` has the shape of a compact JWS: three base64url segments.
fn looks_like_a_jws(text: &[u8]) -> bool {
    memchr::memchr_iter(b'.', text).count() == 2
        && text
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_space(byte: &u8) -> bool {
    *byte == b' ' || *byte == b'\t'
}

/// Reads one header value: `<scheme> <token>` or a raw token.
pub(crate) fn header_value<'b>(value: &'b [u8], scheme: Option<&str>) -> Found<'b> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return Found::Absent;
    }
    let Some(space) = value.iter().position(is_space) else {
        if scheme.is_some_and(|scheme| value.eq_ignore_ascii_case(scheme.as_bytes())) {
            return Found::Malformed("the auth scheme comes without a token");
        }
        return Found::Token(value);
    };
    let (given, rest) = value.split_at(space);
    match scheme {
        Some(scheme) if given.eq_ignore_ascii_case(scheme.as_bytes()) => {
            let token = rest.trim_ascii();
            if token.iter().any(is_space) {
                Found::Malformed("the token contains whitespace")
            } else {
                Found::Token(token)
            }
        }
        // Another scheme (`Basic ...`) is not a bearer token, unless what it
        // carries is shaped like one (`JWT <jwt>`, `Token <jwt>`): an
        // application that reads it would get a token nobody verified.
        Some(_) => {
            let credential = rest.trim_ascii();
            if looks_like_a_jws(credential) {
                Found::Token(credential)
            } else {
                Found::Absent
            }
        }
        None => Found::Malformed("the token contains whitespace"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{HeadStatus, HeaderSlots, Limits, parse_head};

    #[test]
    fn header_values_with_and_without_a_scheme() {
        let cases: [(&[u8], Option<&str>, Found<'_>); 13] = [
            (b"Bearer a.b.c", Some("Bearer"), Found::Token(b"a.b.c")),
            (b"bearer a.b.c", Some("Bearer"), Found::Token(b"a.b.c")),
            (b"BEARER    a.b.c  ", Some("Bearer"), Found::Token(b"a.b.c")),
            (b"Bearer\ta.b.c", Some("Bearer"), Found::Token(b"a.b.c")),
            (b"a.b.c", Some("Bearer"), Found::Token(b"a.b.c")),
            (b"Basic dXNlcjpwYXNz", Some("Bearer"), Found::Absent),
            (b"JWT a.b.c", Some("Bearer"), Found::Token(b"a.b.c")),
            (b"", Some("Bearer"), Found::Absent),
            (
                b"Bearer",
                Some("Bearer"),
                Found::Malformed("the auth scheme comes without a token"),
            ),
            (
                b"Bearer a b",
                Some("Bearer"),
                Found::Malformed("the token contains whitespace"),
            ),
            (b"a.b.c", None, Found::Token(b"a.b.c")),
            (
                b"Bearer a.b.c",
                None,
                Found::Malformed("the token contains whitespace"),
            ),
            (b"  ", None, Found::Absent),
        ];
        for (value, scheme, expected) in cases {
            assert_eq!(
                header_value(value, scheme),
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    fn find(source: &TokenSource, request: &[u8], query: &[u8]) -> String {
        let mut slots = HeaderSlots::default();
        let HeadStatus::Complete(head) =
            parse_head(request, &mut slots, Limits::default()).unwrap()
        else {
            panic!("complete");
        };
        match source.find(&head, query) {
            Found::Absent => "absent".into(),
            Found::Token(t) => String::from_utf8(t.to_vec()).unwrap(),
            Found::Malformed(m) => format!("malformed: {m}"),
        }
    }

    #[test]
    fn cookies_and_query_parameters() {
        let cookie = TokenSource::Cookie {
            name: "session".into(),
        };
        let req =
            |cookies: &str| format!("GET / HTTP/1.1\r\nHost: h\r\n{cookies}\r\n").into_bytes();
        assert_eq!(
            find(&cookie, &req("Cookie: a=1; session=x.y.z; b=2\r\n"), b""),
            "x.y.z"
        );
        assert_eq!(
            find(&cookie, &req("Cookie: session=\"x.y.z\"\r\n"), b""),
            "x.y.z"
        );
        assert_eq!(
            find(
                &cookie,
                &req("Cookie: a=1\r\nCookie: session=q.r.s\r\n"),
                b""
            ),
            "q.r.s"
        );
        assert_eq!(
            find(&cookie, &req("Cookie: sessionx=1; xsession=2\r\n"), b""),
            "absent"
        );
        assert_eq!(find(&cookie, &req(""), b""), "absent");
        assert!(
            find(&cookie, &req("Cookie: session=a; session=b\r\n"), b"").starts_with("malformed")
        );
        let query = TokenSource::Query {
            name: "access_token".into(),
        };
        assert_eq!(find(&query, &req(""), b"a=1&access_token=x.y.z"), "x.y.z");
        assert_eq!(find(&query, &req(""), b"access_tokens=1"), "absent");
        assert!(find(&query, &req(""), b"access_token=a&access_token=b").starts_with("malformed"));
        let header = TokenSource::authorization_bearer();
        assert!(
            find(
                &header,
                &req("Authorization: a\r\nAuthorization: b\r\n"),
                b""
            )
            .starts_with("malformed")
        );
    }

    #[test]
    fn spellings_an_application_reads_as_the_source_count_as_it() {
        let req = |fields: &str| format!("GET / HTTP/1.1\r\nHost: h\r\n{fields}\r\n").into_bytes();
        let query = TokenSource::Query {
            name: "access_token".into(),
        };
        for spelling in [
            "access%5Ftoken=x.y.z",
            "ACCESS_TOKEN=x.y.z",
            "a=1;access_token=x.y.z",
            "Access.Token=x.y.z",
            "access+token=x.y.z",
            "access%20token=x.y.z",
            "%61ccess_token=x.y.z",
            "+access_token=x.y.z",
            "%20access_token=x.y.z",
            "access_token%00=x.y.z",
            "access_token%00x=x.y.z",
            "access[token=x.y.z",
            "access_token[]=x.y.z",
            "acce%C5%BFs_token=x.y.z",
            "%EF%BD%81ccess_token=x.y.z",
        ] {
            assert_eq!(
                find(&query, &req(""), spelling.as_bytes()),
                "x.y.z",
                "{spelling}"
            );
        }
        for twice in [
            "access_token=a&access%5ftoken=b",
            "access_token=a;ACCESS_TOKEN=b",
        ] {
            assert!(
                find(&query, &req(""), twice.as_bytes()).starts_with("malformed"),
                "{twice}"
            );
        }
        for other in [
            "access_tokens=1",
            "access%zztoken=1",
            "%=1",
            "access%FFtoken=1",
            "access_toke%00n=1",
        ] {
            assert_eq!(
                find(&query, &req(""), other.as_bytes()),
                "absent",
                "{other}"
            );
        }
        let cookie = TokenSource::Cookie {
            name: "session".into(),
        };
        for spelling in [
            "Cookie: Session=x.y.z\r\n",
            "Cookie: SESSION=x.y.z\r\n",
            "Cookie: a=1, session=x.y.z\r\n",
            "Cookie: %73ession=x.y.z\r\n",
            "Cookie: %20session=x.y.z\r\n",
            "Cookie: session[x]=x.y.z\r\n",
        ] {
            assert_eq!(find(&cookie, &req(spelling), b""), "x.y.z", "{spelling}");
        }
        assert!(
            find(&cookie, &req("Cookie: session=a; Session=b\r\n"), b"").starts_with("malformed")
        );
        let header = TokenSource::Header {
            name: "x-api-token".into(),
            scheme: None,
        };
        assert_eq!(find(&header, &req("X_Api_Token: x.y.z\r\n"), b""), "x.y.z");
        assert!(
            find(&header, &req("X-Api-Token: a\r\nx_api_token: b\r\n"), b"")
                .starts_with("malformed")
        );
        assert_eq!(
            find(&header, &req("X-Api-Tokens: x.y.z\r\n"), b""),
            "absent"
        );
    }
}
