//! `jwtgate inspect`: decodes a token's header and claims without trusting them,
//! shows times in human form, points out risky header members, and, given keys
//! and settings, runs the real engine to name exactly which check fails.

use std::fmt::Write as _;

use jwtgate_engine::base64url;
use jwtgate_engine::internals::RawToken;
use jwtgate_engine::internals::json::Tape;
use jwtgate_engine::json::{Kind, Value};

use crate::time;
use crate::{Outcome, UnixTime, Verifier};

/// What `inspect` found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The human report.
    pub report: String,
    /// The engine's verdict, when a verifier was given.
    pub outcome: Option<Outcome>,
}

/// Header members that name keys by reference or by value: jwtgate never uses
/// them to find or trust a key (RFC 8725 §3.10, §2.5).
const KEY_REFERENCES: [&str; 6] = ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256"];

fn pretty(value: Value<'_>, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent + 1);
    match value.kind() {
        Kind::Object => {
            let Some(object) = value.as_object() else {
                return;
            };
            if object.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            let count = object.len();
            for (position, (name, member)) in object.members().enumerate() {
                let _ = write!(out, "{pad}\"{}\": ", name.raw());
                pretty(member, indent + 1, out);
                out.push_str(if position + 1 < count { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}}}", "  ".repeat(indent));
        }
        Kind::Array => {
            let Some(array) = value.as_array() else {
                return;
            };
            let scalars = array
                .iter()
                .all(|v| !matches!(v.kind(), Kind::Object | Kind::Array));
            if scalars {
                let items: Vec<&str> = array.iter().map(|v| v.raw_json()).collect();
                let _ = write!(out, "[{}]", items.join(", "));
                return;
            }
            out.push_str("[\n");
            let count = array.len();
            for (position, element) in array.iter().enumerate() {
                out.push_str(&pad);
                pretty(element, indent + 1, out);
                out.push_str(if position + 1 < count { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}]", "  ".repeat(indent));
        }
        _ => out.push_str(value.raw_json()),
    }
}

/// Decodes one segment and prints it, or says exactly why it cannot be read.
fn segment(label: &str, encoded: &[u8], out: &mut String) -> Option<Vec<u8>> {
    let decoded = match base64url::decode(encoded) {
        Ok(decoded) => decoded,
        Err(error) => {
            let _ = writeln!(out, "{label}: not strict base64url ({error})");
            return None;
        }
    };
    let mut tape = Tape::new();
    match tape.parse(&decoded, 32) {
        Ok(value) => {
            let _ = write!(out, "{label} (decoded, not trusted until verified):\n  ");
            pretty(value, 1, out);
            out.push('\n');
        }
        Err(error) => {
            let preview: String = String::from_utf8_lossy(&decoded).chars().take(80).collect();
            let _ = writeln!(out, "{label}: not strict JSON ({error}): {preview:?}");
        }
    }
    Some(decoded)
}

/// Inspects `token` at `now`; with a verifier, also verifies it.
pub fn inspect(token: &[u8], verifier: Option<&Verifier>, now: UnixTime) -> Inspection {
    let mut out = String::new();
    let token = token.trim_ascii();
    let raw = match RawToken::split(token) {
        Ok(raw) => Some(raw),
        Err(rejection) => {
            let _ = writeln!(out, "structure: {}", rejection.detail());
            None
        }
    };
    if let Some(raw) = raw {
        let header = segment("header", raw.header, &mut out);
        let claims = segment("claims", raw.payload, &mut out);
        let _ = writeln!(
            out,
            "signature: {} bytes (base64url: {} characters)",
            raw.signature.len() * 3 / 4,
            raw.signature.len()
        );
        if let Some(claims) = claims {
            times(&claims, now, &mut out);
        }
        if let Some(header) = header {
            notes(&header, &mut out);
        }
    }
    let outcome = verifier.map(|verifier| {
        let mut scratch = verifier.scratch();
        match verifier.verify(token, now, &mut scratch) {
            Ok(verified) => {
                let _ = writeln!(
                    out,
                    "verdict: valid (alg {}, key {})",
                    verified.algorithm(),
                    verified.key.describe()
                );
                Outcome::Valid
            }
            Err(rejection) => {
                let _ = writeln!(
                    out,
                    "verdict: {} ({})",
                    rejection.outcome(),
                    rejection.detail()
                );
                rejection.outcome()
            }
        }
    });
    if outcome.is_none() {
        out.push_str("verdict: not verified (give --jwks to check the signature and claims)\n");
    }
    Inspection {
        report: out,
        outcome,
    }
}

fn times(claims: &[u8], now: UnixTime, out: &mut String) {
    let mut tape = Tape::new();
    let Some(object) = tape.parse(claims, 32).ok().and_then(|v| v.as_object()) else {
        return;
    };
    let mut lines = Vec::new();
    for name in ["iat", "nbf", "exp"] {
        let Some(value) = object.get(name) else {
            continue;
        };
        let line = match value.as_f64().filter(|v| v.is_finite() && v.abs() < 1e15) {
            #[allow(clippy::cast_possible_truncation)] // bounded by the filter above
            Some(seconds) => {
                let seconds = seconds.floor() as i64;
                format!(
                    "  {name} {}  {}  ({})",
                    value.raw_json(),
                    time::rfc3339(seconds),
                    time::relative(seconds, now.0)
                )
            }
            None => format!("  {name} {}  (not a NumericDate)", value.raw_json()),
        };
        lines.push(line);
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "times (now {}):", time::rfc3339(now.0));
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn notes(header: &[u8], out: &mut String) {
    let mut tape = Tape::new();
    let Some(object) = tape.parse(header, 32).ok().and_then(|v| v.as_object()) else {
        return;
    };
    let mut notes = Vec::new();
    if object
        .get("alg")
        .and_then(|v| v.as_str())
        .is_some_and(|alg| alg.to_cow().eq_ignore_ascii_case("none"))
    {
        notes.push("alg none: an unsigned token; jwtgate never accepts it".to_owned());
    }
    if object.get("crit").is_some() {
        notes.push(
            "crit: names extensions jwtgate does not implement, so it refuses the token".to_owned(),
        );
    }
    if object.get("b64").is_some() {
        notes.push("b64: unencoded payloads (RFC 7797) are refused".to_owned());
    }
    for name in KEY_REFERENCES {
        if object.get(name).is_some() {
            notes.push(format!(
                "{name}: names a key by the token's own say-so; jwtgate never uses it"
            ));
        }
    }
    if !notes.is_empty() {
        out.push_str("notes:\n");
        for note in notes {
            let _ = writeln!(out, "  - {note}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    #[test]
    fn shows_claims_times_and_verdict() {
        let now = UnixTime(1_700_000_000);
        let token = demo::demo_token(now, 3600, "alice").unwrap();
        let verifier = demo::demo_verifier().unwrap();
        let inspection = inspect(token.as_bytes(), Some(&verifier), UnixTime(now.0 + 7200));
        assert_eq!(inspection.outcome, Some(Outcome::Expired));
        let report = inspection.report;
        assert!(report.contains("\"sub\": \"alice\""), "{report}");
        assert!(
            report.contains("exp 1700003600  2023-11-14T23:13:20Z  (60 min ago)"),
            "{report}"
        );
        assert!(
            report.contains("verdict: expired (exp has passed)"),
            "{report}"
        );
    }

    #[test]
    fn explains_broken_and_risky_tokens() {
        let header = base64url::encode(br#"{"alg":"none","jku":"https://evil/"}"#);
        let token = format!("{header}.e30.");
        let inspection = inspect(token.as_bytes(), None, UnixTime(0));
        assert_eq!(inspection.outcome, None);
        assert!(
            inspection.report.contains("alg none"),
            "{}",
            inspection.report
        );
        assert!(
            inspection.report.contains("jku: names a key"),
            "{}",
            inspection.report
        );
        let jwe = inspect(b"a.b.c.d.e", None, UnixTime(0));
        assert!(jwe.report.contains("encrypted tokens are not supported"));
        let bad = inspect(b"eyJhbGciOiJIUzI1NiJ9=.e30.x", None, UnixTime(0));
        assert!(
            bad.report.contains("header: not strict base64url"),
            "{}",
            bad.report
        );
    }
}
