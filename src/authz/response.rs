//! The ext_authz answers. The one place where an [`Outcome`] becomes an HTTP
//! status, a `WWW-Authenticate` challenge (RFC 6750 §3) and a JSON body.
//!
//! Denials depend only on the outcome and the framing (closing, `HEAD`), so
//! all of them are rendered once at start-up and copied out per request.

use std::io::Write as _;

use crate::Outcome;
use crate::Verified;
use crate::http::response::{CONNECTION_CLOSE, Framing, status_line};
use crate::jose::json::JsonStr;

/// The realm named in every challenge.
pub const REALM: &str = "jwtgate";

/// The identity headers jwtgate owns. Every allowed response carries all of
/// them, empty when there is nothing to say, so that a proxy copying them to
/// the upstream request always overwrites whatever the client sent.
pub const IDENTITY_HEADERS: [&str; 4] = ["x-jwt-sub", "x-jwt-iss", "x-jwt-kid", "x-jwt-payload"];

/// The status a denial earns. Every token failure is 401: nginx `auth_request`
/// treats any status but 2xx, 401 and 403 as its own error (500), and RFC 6750
/// asks for 401 with `invalid_token` for a token that is expired, revoked,
/// malformed or otherwise invalid.
pub const fn status(outcome: Outcome) -> u16 {
    match outcome {
        Outcome::Valid => 200,
        Outcome::Missing
        | Outcome::Malformed
        | Outcome::TokenTooLarge
        | Outcome::UnsupportedCrit
        | Outcome::AlgNotAllowed
        | Outcome::UnknownKid
        | Outcome::BadSignature
        | Outcome::Expired
        | Outcome::NotYetValid
        | Outcome::IssuedInFuture
        | Outcome::LifetimeTooLong
        | Outcome::MissingClaim
        | Outcome::WrongIssuer
        | Outcome::WrongAudience
        | Outcome::WrongSubject
        | Outcome::WrongType => 401,
    }
}

fn render_denial(outcome: Outcome, framing: Framing) -> Vec<u8> {
    let body = format!("{{\"error\":\"{}\"}}", outcome.name());
    let challenge = match outcome {
        // RFC 6750 §3.1: no error code when the request carried no credentials.
        Outcome::Missing => format!("Bearer realm=\"{REALM}\""),
        _ => format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
            outcome.name()
        ),
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(status_line(status(outcome)).as_bytes());
    let _ = write!(
        out,
        "content-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\n\
         www-authenticate: {challenge}\r\nx-jwtgate-outcome: {}\r\n",
        body.len(),
        outcome.name()
    );
    if framing.close {
        out.extend_from_slice(CONNECTION_CLOSE);
    }
    out.extend_from_slice(b"\r\n");
    if !framing.head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The four framings, in the order [`Denials`] stores them.
const FRAMINGS: [Framing; 4] = [
    Framing {
        close: false,
        head_only: false,
    },
    Framing {
        close: true,
        head_only: false,
    },
    Framing {
        close: false,
        head_only: true,
    },
    Framing {
        close: true,
        head_only: true,
    },
];

fn framing_index(framing: Framing) -> usize {
    usize::from(framing.close) + 2 * usize::from(framing.head_only)
}

/// Every denial, rendered once: indexed by outcome, then by framing.
#[derive(Debug, Clone)]
pub struct Denials {
    rendered: Vec<[Vec<u8>; 4]>,
}

impl Default for Denials {
    fn default() -> Denials {
        Denials {
            rendered: Outcome::ALL
                .into_iter()
                .map(|outcome| FRAMINGS.map(|framing| render_denial(outcome, framing)))
                .collect(),
        }
    }
}

impl Denials {
    /// The complete response for `outcome`.
    pub fn response(&self, outcome: Outcome, framing: Framing) -> &[u8] {
        self.rendered
            .get(outcome.index())
            .and_then(|variants| variants.get(framing_index(framing)))
            .map_or(&[], Vec::as_slice)
    }
}

/// Writes a header value so that it can never break the header block: visible
/// ASCII other than `%` goes as is, every other byte of the UTF-8 text
/// (space, controls such as an escaped CR or LF, non-ASCII, `%`) as `%XX`.
fn push_value(out: &mut Vec<u8>, value: Option<JsonStr<'_>>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let Some(value) = value else { return };
    // Fast path: most claim values are plain ASCII without escapes.
    let raw = value.raw().as_bytes();
    if raw
        .iter()
        .all(|&b| b.is_ascii_graphic() && b != b'%' && b != b'\\')
    {
        out.extend_from_slice(raw);
        return;
    }
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        for &byte in c.encode_utf8(&mut utf8).as_bytes() {
            if byte.is_ascii_graphic() && byte != b'%' {
                out.push(byte);
            } else {
                let hex = |nibble: u8| HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
                out.extend_from_slice(&[b'%', hex(byte >> 4), hex(byte & 0x0f)]);
            }
        }
    }
}

/// Writes the allow response for a verified token.
pub fn allowed(out: &mut Vec<u8>, verified: &Verified<'_>, forward_payload: bool, close: bool) {
    // No body, so the same bytes answer HEAD.
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-jwtgate-outcome: valid\r\nx-jwt-sub: ",
    );
    push_value(out, verified.claims.sub);
    out.extend_from_slice(b"\r\nx-jwt-iss: ");
    push_value(out, verified.claims.iss);
    out.extend_from_slice(b"\r\nx-jwt-kid: ");
    push_value(out, verified.header.kid);
    out.extend_from_slice(b"\r\nx-jwt-payload: ");
    if forward_payload {
        // Already base64url, which is header-safe, and exactly what was signed.
        out.extend_from_slice(verified.payload_b64);
    }
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(CONNECTION_CLOSE);
    }
    out.extend_from_slice(b"\r\n");
}

/// The answer of `--danger-no-verify` (benchmarks only): a 200 of the same
/// shape as an allowed one, with empty identity headers and an outcome that
/// says nothing was checked.
pub fn unverified(out: &mut Vec<u8>, close: bool) {
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-jwtgate-outcome: unverified\r\n\
          x-jwt-sub: \r\nx-jwt-iss: \r\nx-jwt-kid: \r\nx-jwt-payload: \r\n",
    );
    if close {
        out.extend_from_slice(CONNECTION_CLOSE);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::json::Tape;

    fn encoded(json_string: &str) -> String {
        let text = format!("{{\"v\":{json_string}}}");
        let mut tape = Tape::with_capacity(8);
        let value = tape.parse(text.as_bytes(), 8).unwrap();
        let string = value
            .as_object()
            .unwrap()
            .get("v")
            .unwrap()
            .as_str()
            .unwrap();
        let mut out = Vec::new();
        push_value(&mut out, Some(string));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_values_cannot_inject_or_smuggle() {
        assert_eq!(encoded(r#""alice""#), "alice");
        assert_eq!(encoded(r#""https://idp.example/""#), "https://idp.example/");
        assert_eq!(encoded(r#""a b""#), "a%20b");
        assert_eq!(encoded(r#""100%""#), "100%25");
        assert_eq!(encoded(r#""x\r\nset-cookie: y""#), "x%0D%0Aset-cookie:%20y");
        assert_eq!(encoded(r#""caf\u00e9""#), "caf%C3%A9");
        assert_eq!(encoded("\"caf\u{e9}\""), "caf%C3%A9");
        assert_eq!(encoded(r#""a\"b\\c""#), "a\"b\\c");
    }

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let denials = Denials::default();
        let text = String::from_utf8(
            denials
                .response(Outcome::Missing, Framing::default())
                .to_vec(),
        )
        .unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(text.contains("\r\nwww-authenticate: Bearer realm=\"jwtgate\"\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"missing\"}"));
        assert!(!text.contains("connection: close"));
    }

    #[test]
    fn every_denial_names_its_outcome_and_frames_its_body() {
        let denials = Denials::default();
        for outcome in Outcome::ALL.into_iter().filter(|o| *o != Outcome::Valid) {
            for framing in FRAMINGS {
                let text = String::from_utf8(denials.response(outcome, framing).to_vec()).unwrap();
                let (head, body) = text.split_once("\r\n\r\n").unwrap();
                let json = format!("{{\"error\":\"{}\"}}", outcome.name());
                assert_eq!(body, if framing.head_only { "" } else { json.as_str() });
                assert!(head.contains(&format!("content-length: {}\r\n", json.len())));
                assert!(head.contains(&format!("x-jwtgate-outcome: {}", outcome.name())));
                assert_eq!(head.ends_with("connection: close"), framing.close);
                if outcome != Outcome::Missing {
                    assert!(head.contains(&format!(
                        "error=\"invalid_token\", error_description=\"{}\"",
                        outcome.name()
                    )));
                }
            }
        }
    }
}
