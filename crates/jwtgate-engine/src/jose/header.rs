//! The JOSE header of a JWS (RFC 7515 §4), typed once from its validated JSON.
//!
//! What is read: `alg` (required), `kid`, `typ`. What is refused: `crit` in any form
//! (jwtgate implements no extension, so RFC 7515 §4.1.11 obliges it to reject) and
//! `b64` (RFC 7797 unencoded payloads). What is never used to find or trust a key:
//! `jku`, `x5u`, `jwk`, `x5c`, `x5t`, `x5t#S256` — they are left unread.

use crate::jose::alg::{Algorithm, AlgorithmError};
use crate::jose::json::{JsonStr, Object, Value, short_key};
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

/// The header members jwtgate reads or refuses; everything else is ignored.
#[derive(Clone, Copy)]
enum Member {
    Alg,
    Kid,
    Typ,
    Crit,
    B64,
}

fn member(name: JsonStr<'_>) -> Option<Member> {
    const NAMES: [(&str, Member); 5] = [
        ("alg", Member::Alg),
        ("kid", Member::Kid),
        ("typ", Member::Typ),
        ("crit", Member::Crit),
        ("b64", Member::B64),
    ];
    const ALG: Option<u64> = short_key(b"alg");
    const KID: Option<u64> = short_key(b"kid");
    const TYP: Option<u64> = short_key(b"typ");
    const CRIT: Option<u64> = short_key(b"crit");
    const B64: Option<u64> = short_key(b"b64");
    match name.short_key() {
        ALG => Some(Member::Alg),
        KID => Some(Member::Kid),
        TYP => Some(Member::Typ),
        CRIT => Some(Member::Crit),
        B64 => Some(Member::B64),
        Some(_) => None,
        // Plain but longer than any of these names.
        None if name.as_plain().is_some() => None,
        // An escaped name is still the member it spells.
        None => NAMES
            .iter()
            .find(|(text, _)| name == *text)
            .map(|&(_, member)| member),
    }
}

impl<'t> Header<'t> {
    /// Types a validated JSON value as a JWS header, in one pass over its members.
    pub(crate) fn parse(value: Value<'t>) -> Result<Header<'t>, Rejection> {
        let members = value
            .as_object()
            .ok_or(malformed("header is not a JSON object"))?;
        let (mut alg, mut kid, mut typ, mut crit, mut b64) = (None, None, None, false, false);
        for (name, value) in members.members() {
            match member(name) {
                Some(Member::Alg) => alg = Some(value),
                Some(Member::Kid) => {
                    kid = Some(
                        value
                            .as_str()
                            .ok_or(malformed("header kid is not a string"))?,
                    )
                }
                Some(Member::Typ) => {
                    typ = Some(
                        value
                            .as_str()
                            .ok_or(malformed("header typ is not a string"))?,
                    )
                }
                Some(Member::Crit) => crit = true,
                Some(Member::B64) => b64 = true,
                None => {}
            }
        }
        if crit {
            return Err(Rejection::new(
                Outcome::UnsupportedCrit,
                "header names critical extensions (crit); jwtgate implements none",
            ));
        }
        if b64 {
            return Err(Rejection::new(
                Outcome::UnsupportedCrit,
                "unencoded payloads (b64, RFC 7797) are not supported",
            ));
        }
        let alg = alg
            .ok_or(malformed("header has no alg"))?
            .as_str()
            .ok_or(malformed("header alg is not a string"))?;
        Ok(Header {
            algorithm: parse_algorithm(alg)?,
            kid,
            typ,
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
