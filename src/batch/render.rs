//! One JSON object per input line, the batch verifier's public output format:
//!
//! ```text
//! {"line":1,"valid":true,"alg":"RS256","kid":"k1","iss":"https://idp/","sub":"u1","aud":"api","exp":1700003600}
//! {"line":2,"valid":false,"error":"expired","detail":"exp has passed"}
//! ```
//!
//! `input` (the file name) leads each object when several inputs are given;
//! `token_config` follows `line` when a run verifies with several token
//! configurations.
//! Absent claims are left out. String claims are copied as they stand between
//! their quotes in the token's JSON, which the engine has already validated as a
//! JSON string body, so nothing is unescaped or re-escaped.

use std::io::Write as _;

use jwtgate_engine::json::JsonStr;

use crate::{Rejection, Verified};

use crate::json_string::quote_into as json_string;

fn prefix(out: &mut Vec<u8>, input: Option<&str>, line: u64) {
    out.push(b'{');
    if let Some(input) = input {
        out.extend_from_slice(b"\"input\":");
        json_string(out, input);
        out.push(b',');
    }
    let _ = write!(out, "\"line\":{line}");
}

fn string_member(out: &mut Vec<u8>, name: &str, value: Option<JsonStr<'_>>) {
    if let Some(value) = value {
        let _ = write!(out, ",\"{name}\":\"");
        out.extend_from_slice(value.raw().as_bytes());
        out.push(b'"');
    }
}

/// `,"token_config":"name"` when a run verifies with several configurations.
fn config_member(out: &mut Vec<u8>, config: Option<&str>) {
    if let Some(config) = config {
        out.extend_from_slice(b",\"token_config\":");
        json_string(out, config);
    }
}

/// Renders a verified token's line (`config`: the token configuration that
/// accepted it, when a run has several).
pub(crate) fn valid(
    out: &mut Vec<u8>,
    input: Option<&str>,
    line: u64,
    config: Option<&str>,
    verified: &Verified<'_>,
) {
    prefix(out, input, line);
    config_member(out, config);
    let _ = write!(
        out,
        ",\"valid\":true,\"alg\":\"{}\"",
        verified.algorithm().name()
    );
    string_member(out, "kid", verified.header.kid);
    let claims = &verified.claims;
    string_member(out, "iss", claims.iss);
    string_member(out, "sub", claims.sub);
    if let Some(aud) = claims.get("aud") {
        out.extend_from_slice(b",\"aud\":");
        out.extend_from_slice(aud.raw_json().as_bytes());
    }
    string_member(out, "jti", claims.jti);
    for (name, date) in [
        ("iat", claims.iat),
        ("nbf", claims.nbf),
        ("exp", claims.exp),
    ] {
        if let Some(date) = date {
            let _ = write!(out, ",\"{name}\":{date}");
        }
    }
    out.extend_from_slice(b"}\n");
}

/// Renders a refused token's line (`config`: the token configuration whose
/// reason it is, when a run has several).
pub(crate) fn rejected(
    out: &mut Vec<u8>,
    input: Option<&str>,
    line: u64,
    config: Option<&str>,
    rejection: Rejection,
) {
    prefix(out, input, line);
    config_member(out, config);
    let _ = write!(
        out,
        ",\"valid\":false,\"error\":\"{}\",\"detail\":",
        rejection.outcome().name()
    );
    json_string(out, rejection.detail());
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;

    #[test]
    fn rejections_render_one_json_line() {
        let mut out = Vec::new();
        rejected(
            &mut out,
            None,
            2,
            None,
            Rejection::new(Outcome::Expired, "exp has passed"),
        );
        assert_eq!(
            out,
            b"{\"line\":2,\"valid\":false,\"error\":\"expired\",\"detail\":\"exp has passed\"}\n"
        );
        out.clear();
        rejected(
            &mut out,
            Some("a\"b.txt"),
            7,
            Some("staging"),
            Rejection::new(Outcome::Malformed, "empty token"),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"input\":\"a\\\"b.txt\",\"line\":7,\"token_config\":\"staging\",\"valid\":false,\"error\":\"malformed\",\"detail\":\"empty token\"}\n"
        );
    }
}
