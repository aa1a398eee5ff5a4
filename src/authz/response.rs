//! The ext_authz answers. The one place where an [`Outcome`] becomes an HTTP
//! status, a `WWW-Authenticate` challenge (RFC 6750 §3) and a JSON body.
//!
//! Denials depend only on the outcome and the framing (closing, `HEAD`), so
//! all of them are rendered once at start-up and copied out per request.

use std::io::Write as _;

use crate::Outcome;
use crate::Verified;
use crate::http::response::{CONNECTION_CLOSE, Framing, status_line};
use crate::policy::ForwardClaim;
use jwtgate_engine::json::{JsonStr, Kind, Value};

/// The realm named in every challenge.
pub(super) const REALM: &str = "jwtgate";

/// The identity headers jwtgate owns. Every allowed response carries all of
/// them, empty when there is nothing to say, so that a proxy copying them to
/// the upstream request always overwrites whatever the client sent.
pub const IDENTITY_HEADERS: [&str; 4] = ["x-jwt-sub", "x-jwt-iss", "x-jwt-kid", "x-jwt-payload"];

/// The status a denial earns. Every token failure is 401: nginx `auth_request`
/// treats any status but 2xx, 401 and 403 as its own error (500), and RFC 6750
/// asks for 401 with `invalid_token` for a token that is expired, revoked,
/// malformed or otherwise invalid.
pub(super) const fn status(outcome: Outcome) -> u16 {
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
        | Outcome::WrongType
        | Outcome::AmbiguousToken
        // The token could not be checked: still a denial the proxy acts on
        // (a 5xx would make nginx auth_request answer 500 to the client).
        | Outcome::KeysUnavailable
        // The token verified but is revoked, or could not be checked against
        // the revocations: a denial, like an invalid token.
        | Outcome::Revoked
        | Outcome::RevocationsUnavailable => 401,
        // RFC 6750 §3.1: the token is fine, its permissions are not.
        Outcome::InsufficientScope => 403,
        // `Outcome` is `#[non_exhaustive]` across the crate boundary: an outcome
        // the engine adds later is a denial until it is mapped on purpose
        // (`every_outcome_is_mapped_on_purpose` fails until then).
        _ => 401,
    }
}

/// The RFC 6750 §3.1 error code of a denial, if the client is at fault:
/// none for a missing token (§3.1) and none when jwtgate could not check the
/// token (its keys are unavailable): "invalid_token" would send clients to
/// fetch new tokens from an identity provider that may be down.
const fn error_code(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Valid
        | Outcome::Missing
        | Outcome::KeysUnavailable
        | Outcome::RevocationsUnavailable => None,
        Outcome::InsufficientScope => Some("insufficient_scope"),
        Outcome::Malformed
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
        | Outcome::WrongType
        | Outcome::AmbiguousToken
        // RFC 6750 §3.1: "revoked" is one of invalid_token's reasons.
        | Outcome::Revoked => Some("invalid_token"),
        // See `status`: fail closed until mapped.
        _ => Some("invalid_token"),
    }
}

fn render_denial(outcome: Outcome, framing: Framing) -> Vec<u8> {
    let body = format!("{{\"error\":\"{}\"}}", outcome.name());
    let challenge = match (outcome, error_code(outcome)) {
        // RFC 6750 §3.1: no error code when the request carried no credentials.
        (Outcome::Missing, _) => format!("Bearer realm=\"{REALM}\""),
        (_, None) => format!(
            "Bearer realm=\"{REALM}\", error_description=\"{}\"",
            outcome.name()
        ),
        (_, Some(code)) => format!(
            "Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{}\"",
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

/// Denials do not depend on the peer.
const ANY_PEER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The four framings, in the order [`Denials`] stores them.
const FRAMINGS: [Framing; 4] = [
    Framing {
        close: false,
        head_only: false,
        peer: ANY_PEER,
    },
    Framing {
        close: true,
        head_only: false,
        peer: ANY_PEER,
    },
    Framing {
        close: false,
        head_only: true,
        peer: ANY_PEER,
    },
    Framing {
        close: true,
        head_only: true,
        peer: ANY_PEER,
    },
];

fn framing_index(framing: Framing) -> usize {
    usize::from(framing.close) + 2 * usize::from(framing.head_only)
}

/// Every denial, rendered once: indexed by outcome, then by framing.
#[derive(Debug, Clone)]
pub(crate) struct Denials {
    rendered: Vec<[Vec<u8>; 4]>,
}

impl Default for Denials {
    fn default() -> Denials {
        Denials {
            rendered: Outcome::ALL
                .iter()
                .map(|&outcome| FRAMINGS.map(|framing| render_denial(outcome, framing)))
                .collect(),
        }
    }
}

impl Denials {
    /// The complete response for `outcome`.
    pub(crate) fn response(&self, outcome: Outcome, framing: Framing) -> &[u8] {
        self.rendered
            .get(outcome.index())
            .and_then(|variants| variants.get(framing_index(framing)))
            .map_or(&[], Vec::as_slice)
    }
}

/// Whether `byte` goes into a header value as it is: visible ASCII other
/// than `%` (the escape itself) and `,` (the list separator of HTTP fields,
/// RFC 9110 §5.6.1, which jwtgate uses to join array claims).
const fn is_plain(byte: u8) -> bool {
    byte.is_ascii_graphic() && byte != b'%' && byte != b','
}

fn push_encoded(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if is_plain(byte) {
        out.push(byte);
    } else {
        let hex = |nibble: u8| HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
        out.extend_from_slice(&[b'%', hex(byte >> 4), hex(byte & 0x0f)]);
    }
}

/// Writes a header value so that it can never break the header block nor
/// read as a list: visible ASCII other than `%` and `,` goes as is, every
/// other byte of the UTF-8 text (space, controls such as an escaped CR or LF,
/// non-ASCII, `%`, `,`) as `%XX`.
fn push_value(out: &mut Vec<u8>, value: Option<JsonStr<'_>>) {
    let Some(value) = value else { return };
    // Fast path: most claim values are plain ASCII without escapes.
    let raw = value.raw().as_bytes();
    if raw.iter().all(|&b| is_plain(b) && b != b'\\') {
        out.extend_from_slice(raw);
        return;
    }
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        for &byte in c.encode_utf8(&mut utf8).as_bytes() {
            push_encoded(out, byte);
        }
    }
}

/// Encodes `out[from..]` once more, in place: every `%` becomes `%25` and
/// every `,` becomes `%2C`. A nested array is one element of its parent:
/// its separators must not read as the parent's, and its escapes must
/// survive the one decoding the parent's element gets.
fn escape_again(out: &mut Vec<u8>, from: usize) {
    let special = out
        .get(from..)
        .map_or(0, |tail| memchr::memchr2_iter(b'%', b',', tail).count());
    if special == 0 {
        return;
    }
    let old_len = out.len();
    out.resize(old_len + 2 * special, 0);
    // From the back, so every byte moves once.
    let mut write = out.len();
    let mut read = old_len;
    while read > from {
        read -= 1;
        let byte = out.get(read).copied().unwrap_or(0);
        let expanded: &[u8] = match byte {
            b',' => b"%2C",
            b'%' => b"%25",
            _ => std::slice::from_ref(&byte),
        };
        write -= expanded.len();
        if let Some(slot) = out.get_mut(write..write + expanded.len()) {
            slot.copy_from_slice(expanded);
        }
    }
}

/// Writes a forwarded claim of any JSON kind: a string as [`push_value`] does,
/// an array as its elements joined with commas, anything else as its JSON
/// text, percent-encoded like a string (so an object's commas are `%2C`).
///
/// Invariant: a `,` in the output only ever separates the elements of a
/// top-level array, and every element decodes with one percent-decoding. A
/// string or scalar element is already encoded by the rules above; a nested
/// array element is encoded once more by [`escape_again`].
fn push_claim(out: &mut Vec<u8>, value: Option<Value<'_>>) {
    let Some(value) = value else { return };
    match value.kind() {
        Kind::String => push_value(out, value.as_str()),
        Kind::Array => {
            for (index, element) in value
                .as_array()
                .into_iter()
                .flat_map(|a| a.iter())
                .enumerate()
            {
                if index > 0 {
                    out.push(b',');
                }
                let from = out.len();
                push_claim(out, Some(element));
                if element.kind() == Kind::Array {
                    escape_again(out, from);
                }
            }
        }
        _ => {
            for &byte in value.raw_json().as_bytes() {
                push_encoded(out, byte);
            }
        }
    }
}

/// The headers an allowed answer carries for one rule: the rule's forwarded
/// claims, and every header any rule forwards (so each is always present).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'p> {
    /// The matched rule's forwarded claims.
    pub forward_claims: &'p [ForwardClaim],
    /// Every forwarded header of the policy, other than the `x-jwt-*` four.
    pub all_headers: &'p [Box<str>],
    /// Fill `x-jwt-payload`.
    pub forward_payload: bool,
}

fn forwarded_claim<'t>(
    forward_claims: &[ForwardClaim],
    header: &str,
    claims: &crate::Claims<'t>,
) -> Option<Option<Value<'t>>> {
    forward_claims
        .iter()
        .find(|forward| &*forward.header == header)
        .map(|forward| claims.lookup(&forward.claim))
}

/// Writes the allow response for a verified token.
pub(super) fn allowed(
    out: &mut Vec<u8>,
    verified: &Verified<'_>,
    identity: Identity<'_>,
    close: bool,
) {
    // No body, so the same bytes answer HEAD.
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-jwtgate-outcome: valid\r\n");
    let claims = &verified.claims;
    let rule = identity.forward_claims;
    for (header, default) in [("x-jwt-sub", claims.sub), ("x-jwt-iss", claims.iss)] {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b": ");
        match forwarded_claim(rule, header, claims) {
            Some(value) => push_claim(out, value),
            None => push_value(out, default),
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-jwt-kid: ");
    match forwarded_claim(rule, "x-jwt-kid", claims) {
        Some(value) => push_claim(out, value),
        None => push_value(out, verified.header.kid),
    }
    out.extend_from_slice(b"\r\nx-jwt-payload: ");
    match forwarded_claim(rule, "x-jwt-payload", claims) {
        Some(value) => push_claim(out, value),
        // Already base64url, which is header-safe, and exactly what was signed.
        None if identity.forward_payload => out.extend_from_slice(verified.payload_b64),
        None => {}
    }
    out.extend_from_slice(b"\r\n");
    for header in identity.all_headers {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b": ");
        if let Some(value) = forwarded_claim(rule, header, claims) {
            push_claim(out, value);
        }
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(CONNECTION_CLOSE);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a 200 that carries no identity: a request let through without a
/// valid token (an excluded endpoint, a preflight, no matching rule with
/// `default_action = "allow"`, a missing token where allowed, or a failure
/// under `action = "log"`, which `log` marks). Every identity header is
/// present and empty, so no client-supplied copy survives.
pub(super) fn allowed_without_identity(
    out: &mut Vec<u8>,
    outcome: &str,
    log: bool,
    all_headers: &[Box<str>],
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-jwtgate-outcome: ");
    out.extend_from_slice(outcome.as_bytes());
    out.extend_from_slice(b"\r\n");
    if log {
        out.extend_from_slice(b"x-jwtgate-action: log\r\n");
    }
    out.extend_from_slice(b"x-jwt-sub: \r\nx-jwt-iss: \r\nx-jwt-kid: \r\nx-jwt-payload: \r\n");
    for header in all_headers {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b": \r\n");
    }
    if close {
        out.extend_from_slice(CONNECTION_CLOSE);
    }
    out.extend_from_slice(b"\r\n");
}

/// The answer of `--danger-no-verify` (benchmarks only): a 200 of the same
/// shape as an allowed one, with empty identity headers and an outcome that
/// says nothing was checked.
pub(super) fn unverified(out: &mut Vec<u8>, close: bool) {
    allowed_without_identity(out, "unverified", false, &[], close);
}

/// A 400 for a check request jwtgate cannot route (missing forwarded headers,
/// an ambiguous path), with a static reason; the connection stays usable.
pub(super) fn bad_request(out: &mut Vec<u8>, detail: &'static str, framing: Framing) {
    let mut body = [0u8; 256];
    let len = {
        let mut cursor = std::io::Cursor::new(body.as_mut_slice());
        // Details are static ASCII without quotes or backslashes, shorter than the buffer.
        let _ = write!(
            cursor,
            "{{\"error\":\"bad_request\",\"detail\":\"{detail}\"}}"
        );
        usize::try_from(cursor.position()).unwrap_or(0)
    };
    crate::http::response::write_simple(
        out,
        400,
        "application/json",
        b"",
        body.get(..len).unwrap_or_default(),
        framing,
    );
}

/// The answer to a gRPC check whose route names (in `jwtgate_rule`) a rule
/// the policy does not define: a mismatch between the proxy's configuration
/// and jwtgate's, which must deny, never allow.
pub(super) const UNKNOWN_RULE: &str =
    "the route's jwtgate_rule context extension names no rule of the policy";

pub(super) fn unknown_rule(out: &mut Vec<u8>, framing: Framing) {
    crate::http::response::write_simple(
        out,
        403,
        "application/json",
        b"cache-control: no-store\r\nx-jwtgate-outcome: unknown_rule\r\n",
        br#"{"error":"unknown_rule","detail":"the route's jwtgate_rule context extension names no rule of the policy"}"#,
        framing,
    );
}

/// The answer to a request whose token the shard was too far behind to
/// verify; `retry-after` spreads the retries over the next second.
pub(super) fn overloaded(out: &mut Vec<u8>, framing: Framing) {
    crate::http::response::write_simple(
        out,
        429,
        "application/json",
        b"cache-control: no-store\r\nretry-after: 1\r\nx-jwtgate-outcome: overloaded\r\n",
        br#"{"error":"overloaded","detail":"the server is too far behind to verify a token it has not seen; retry"}"#,
        framing,
    );
}

/// The answer to a request that matches no rule under `default_action = "deny"`.
pub(super) fn no_matching_rule(out: &mut Vec<u8>, framing: Framing) {
    crate::http::response::write_simple(
        out,
        403,
        "application/json",
        b"cache-control: no-store\r\nx-jwtgate-outcome: no_matching_rule\r\n",
        br#"{"error":"no_matching_rule"}"#,
        framing,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwtgate_engine::internals::json::Tape;

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
    fn string_claims_escape_commas_and_percent_signs() {
        // The upstream splits on commas: a string is one value.
        assert_eq!(encoded(r#""a,b""#), "a%2Cb");
        assert_eq!(
            encoded(r#""CN=Alice,OU=Eng,O=Acme""#),
            "CN=Alice%2COU=Eng%2CO=Acme"
        );
        // `%` is escaped too, so an encoded-looking value stays distinct.
        assert_eq!(encoded(r#""a%2Cb""#), "a%252Cb");
        assert_ne!(encoded(r#""a,b""#), encoded(r#""a%2Cb""#));
        // The slow path (an escape in the JSON text) agrees with the fast one.
        assert_eq!(encoded(r#""a\u002cb""#), "a%2Cb");
        assert_eq!(encoded(r#""\u0025,""#), "%25%2C");
        // Through push_claim as well (a forwarded string claim).
        let text = r#"{"dn":"CN=Alice,O=Acme","pct":"50%,60%"}"#;
        let mut tape = Tape::with_capacity(8);
        let object = tape.parse(text.as_bytes(), 8).unwrap();
        let object = object.as_object().unwrap();
        for (name, want) in [("dn", "CN=Alice%2CO=Acme"), ("pct", "50%25%2C60%25")] {
            let mut out = Vec::new();
            push_claim(&mut out, object.get(name));
            assert_eq!(String::from_utf8(out).unwrap(), want, "{name}");
        }
    }

    /// Splits a rendered claim the way an upstream reads it: on `,`, then
    /// one percent-decoding per element.
    fn upstream_reading(header: &str) -> Vec<String> {
        header
            .split(',')
            .map(|element| {
                let bytes = element.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&element[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    #[test]
    fn forwarded_arrays_keep_their_elements_apart() {
        let text =
            r#"{"roles":["admin","viewer,superuser"],"nested":[["a","b"],"c"],"n":[1,true]}"#;
        let mut tape = Tape::with_capacity(32);
        let value = tape.parse(text.as_bytes(), 8).unwrap();
        let object = value.as_object().unwrap();
        let render = |name: &str| {
            let mut out = Vec::new();
            push_claim(&mut out, object.get(name));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(render("roles"), "admin,viewer%2Csuperuser");
        assert_eq!(render("nested"), "a%2Cb,c");
        assert_eq!(render("n"), "1,true");
    }

    #[test]
    fn array_elements_escape_percent_signs_consistently() {
        let text = r#"{"pct":["a%2Cb","a,b","100%"],"deep":[["x,y"],["x","y"]],"obj":[{"a":1,"b":"c,d"}],"top":{"a":1,"b":2}}"#;
        let mut tape = Tape::with_capacity(32);
        let value = tape.parse(text.as_bytes(), 8).unwrap();
        let object = value.as_object().unwrap();
        let render = |name: &str| {
            let mut out = Vec::new();
            push_claim(&mut out, object.get(name));
            String::from_utf8(out).unwrap()
        };
        // An element that looks encoded stays apart from one with a comma.
        assert_eq!(render("pct"), "a%252Cb,a%2Cb,100%25");
        assert_eq!(upstream_reading(&render("pct")), ["a%2Cb", "a,b", "100%"]);
        // A nested array is encoded once more: ["x,y"] and ["x","y"] differ.
        assert_eq!(render("deep"), "x%252Cy,x%2Cy");
        assert_eq!(upstream_reading(&render("deep")), ["x%2Cy", "x,y"]);
        // Objects are one value: their commas are escaped like a string's.
        assert_eq!(render("obj"), "{\"a\":1%2C\"b\":\"c%2Cd\"}");
        assert_eq!(upstream_reading(&render("obj")), [r#"{"a":1,"b":"c,d"}"#]);
        assert_eq!(render("top"), "{\"a\":1%2C\"b\":2}");
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
    fn every_outcome_is_mapped_on_purpose() {
        // `status` and `error_code` name 22 outcomes; their `_` arms exist only
        // because the enum is `#[non_exhaustive]` in another crate. A new
        // outcome needs its own arms there, then this count.
        assert_eq!(Outcome::COUNT, 22);
    }

    #[test]
    fn every_denial_names_its_outcome_and_frames_its_body() {
        let denials = Denials::default();
        for &outcome in Outcome::ALL.iter().filter(|&&o| o != Outcome::Valid) {
            for framing in FRAMINGS {
                let text = String::from_utf8(denials.response(outcome, framing).to_vec()).unwrap();
                let (head, body) = text.split_once("\r\n\r\n").unwrap();
                let json = format!("{{\"error\":\"{}\"}}", outcome.name());
                assert_eq!(body, if framing.head_only { "" } else { json.as_str() });
                assert!(head.contains(&format!("content-length: {}\r\n", json.len())));
                assert!(head.contains(&format!("x-jwtgate-outcome: {}", outcome.name())));
                assert_eq!(head.ends_with("connection: close"), framing.close);
                match error_code(outcome) {
                    Some(code) => assert!(head.contains(&format!(
                        "error=\"{code}\", error_description=\"{}\"",
                        outcome.name()
                    ))),
                    None => assert!(!head.contains("error="), "{head}"),
                }
                let status = if outcome == Outcome::InsufficientScope {
                    "403 Forbidden"
                } else {
                    "401 Unauthorized"
                };
                assert!(
                    head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                    "{head}"
                );
            }
        }
    }
}
