//! The JOSE header of a JWS (RFC 7515 §4), typed once from its validated JSON.
//!
//! What is read: `alg` (required), `kid`, `typ`. What is refused: `crit` in any form
//! (jwtgate implements no extension, so RFC 7515 §4.1.11 obliges it to reject) and
//! `b64` (RFC 7797 unencoded payloads). What is never used to find or trust a key:
//! `jku`, `x5u`, `jwk`, `x5c`, `x5t`, `x5t#S256` — they are left unread.

use crate::jose::alg::{Algorithm, AlgorithmError};
use crate::jose::json::{JsonStr, Object, Value};
use crate::outcome::{Outcome, Rejection};

/// A JWS protected header.
#[derive(Debug, Clone, Copy)]
pub struct Header<'t> {
    /// The algorithm the token claims; the key still has to agree.
    pub algorithm: Algorithm,
    /// The key id, when present.
    pub kid: Option<JsonStr<'t>>,
    /// The media type of the whole token, when present.
    pub typ: Option<JsonStr<'t>>,
    /// Every member, for callers that want more.
    pub members: Object<'t>,
}

const fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Outcome::Malformed, detail)
}

fn optional_string<'t>(
    members: Object<'t>,
    name: &str,
    not_string: Rejection,
) -> Result<Option<JsonStr<'t>>, Rejection> {
    members
        .get(name)
        .map(|value| value.as_str().ok_or(not_string))
        .transpose()
}

impl<'t> Header<'t> {
    /// Types a validated JSON value as a JWS header.
    pub fn parse(value: Value<'t>) -> Result<Header<'t>, Rejection> {
        let members = value
            .as_object()
            .ok_or(malformed("header is not a JSON object"))?;
        if members.get("crit").is_some() {
            return Err(Rejection::new(
                Outcome::UnsupportedCrit,
                "header names critical extensions (crit); jwtgate implements none",
            ));
        }
        if members.get("b64").is_some() {
            return Err(Rejection::new(
                Outcome::UnsupportedCrit,
                "unencoded payloads (b64, RFC 7797) are not supported",
            ));
        }
        let alg = members
            .get("alg")
            .ok_or(malformed("header has no alg"))?
            .as_str()
            .ok_or(malformed("header alg is not a string"))?;
        let algorithm = parse_algorithm(alg)?;
        Ok(Header {
            algorithm,
            kid: optional_string(members, "kid", malformed("header kid is not a string"))?,
            typ: optional_string(members, "typ", malformed("header typ is not a string"))?,
            members,
        })
    }
}

fn parse_algorithm(alg: JsonStr<'_>) -> Result<Algorithm, Rejection> {
    let classified = match alg.as_plain() {
        Some(name) => Algorithm::from_name(name),
        // An escaped alg is legal JSON; unescape it into a small stack buffer so that
        // `"RS\u0032\u0035\u0036"` means RS256 and `"n\u006fne"` is still `none`.
        None => {
            let mut buffer = [0u8; 16];
            let mut length = 0;
            let mut fits = true;
            for c in alg.chars() {
                let mut utf8 = [0u8; 4];
                let encoded = c.encode_utf8(&mut utf8).as_bytes();
                match buffer.get_mut(length..length + encoded.len()) {
                    Some(slot) => slot.copy_from_slice(encoded),
                    None => fits = false,
                }
                length += encoded.len();
            }
            let name = buffer
                .get(..length)
                .filter(|_| fits)
                .and_then(|b| std::str::from_utf8(b).ok());
            name.map_or(Err(AlgorithmError::Unknown), Algorithm::from_name)
        }
    };
    classified.map_err(|error| match error {
        AlgorithmError::None => {
            Rejection::new(Outcome::AlgNotAllowed, "alg none is never accepted")
        }
        AlgorithmError::Unsupported => {
            Rejection::new(Outcome::AlgNotAllowed, "alg is not supported by jwtgate")
        }
        AlgorithmError::Unknown => {
            Rejection::new(Outcome::AlgNotAllowed, "alg is not a known JWS algorithm")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::json::Tape;

    fn header(json: &str) -> Result<(Algorithm, Option<String>, Option<String>), Rejection> {
        let mut tape = Tape::new();
        let value = tape
            .parse(json.as_bytes(), 8)
            .map_err(|_| malformed("json"))?;
        Header::parse(value).map(|h| {
            (
                h.algorithm,
                h.kid.map(|k| k.to_string()),
                h.typ.map(|t| t.to_string()),
            )
        })
    }

    fn outcome(json: &str) -> Outcome {
        header(json)
            .err()
            .map_or(Outcome::Valid, Rejection::outcome)
    }

    #[test]
    fn reads_alg_kid_and_typ() {
        assert_eq!(
            header(r#"{"alg":"ES256","kid":"k1","typ":"JWT","x5t":"ignored"}"#),
            Ok((Algorithm::Es256, Some("k1".into()), Some("JWT".into())))
        );
        assert_eq!(
            header(r#"{"alg":"RS\u0032\u0035\u0036"}"#).map(|h| h.0),
            Ok(Algorithm::Rs256)
        );
    }

    #[test]
    fn refuses_none_in_every_spelling() {
        for json in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"NONE"}"#,
            r#"{"alg":"nOnE"}"#,
            r#"{"alg":"n\u006fne"}"#,
        ] {
            assert_eq!(outcome(json), Outcome::AlgNotAllowed, "{json}");
        }
    }

    #[test]
    fn refuses_extensions_and_bad_types() {
        assert_eq!(
            outcome(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#),
            Outcome::UnsupportedCrit
        );
        assert_eq!(
            outcome(r#"{"alg":"RS256","crit":[]}"#),
            Outcome::UnsupportedCrit
        );
        assert_eq!(
            outcome(r#"{"alg":"HS256","b64":false}"#),
            Outcome::UnsupportedCrit
        );
        assert_eq!(
            outcome(r#"{"alg":"HS256","b64":true}"#),
            Outcome::UnsupportedCrit
        );
        assert_eq!(outcome(r#"{"kid":"a"}"#), Outcome::Malformed);
        assert_eq!(outcome(r#"{"alg":256}"#), Outcome::Malformed);
        assert_eq!(outcome(r#"{"alg":"RS256","kid":1}"#), Outcome::Malformed);
        assert_eq!(outcome(r#"{"alg":"RS256","typ":null}"#), Outcome::Malformed);
        assert_eq!(outcome(r#"["RS256"]"#), Outcome::Malformed);
        assert_eq!(outcome(r#"{"alg":"ES512"}"#), Outcome::AlgNotAllowed);
        assert_eq!(outcome(r#"{"alg":"RS256\u0000"}"#), Outcome::AlgNotAllowed);
    }
}
