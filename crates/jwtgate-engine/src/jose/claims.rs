//! The JWT claims set (RFC 7519 §4), typed once from its validated JSON.
//!
//! Registered claims get their RFC types checked here, so every later check reads
//! typed values: `exp`/`nbf`/`iat` are [`NumericDate`]s, `iss`/`sub`/`jti` strings,
//! `aud` a string or an array of strings. A claim of the wrong type makes the whole
//! token malformed; it is never ignored. Other claims stay reachable, zero-copy,
//! through [`Claims::get`] and [`Claims::lookup`].

use std::fmt;
use std::str::FromStr;

use crate::jose::json::{Array, JsonStr, Object, Value, short_key};
use crate::outcome::{Outcome, Rejection};

/// Seconds since the Unix epoch, as JWT NumericDate values are (fractions allowed).
///
/// Only values from 0 to the last second of the year 9999 exist: anything else is
/// refused at parse time, so comparisons never meet NaN, infinities or overflow.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct NumericDate(f64);

impl NumericDate {
    /// 9999-12-31T23:59:59Z.
    pub const MAX_SECONDS: i64 = 253_402_300_799;

    /// A whole-second date, if it is in range.
    pub fn from_seconds(seconds: i64) -> Option<NumericDate> {
        (0..=NumericDate::MAX_SECONDS)
            .contains(&seconds)
            .then_some(NumericDate(seconds as f64))
    }

    fn from_f64(seconds: f64) -> Option<NumericDate> {
        (seconds.is_finite() && (0.0..=NumericDate::MAX_SECONDS as f64).contains(&seconds))
            .then_some(NumericDate(seconds))
    }

    /// Parses the JSON number text of a claim.
    pub fn from_json_number(text: &str) -> Option<NumericDate> {
        // Most dates are plain integers: take them without float parsing.
        if text.len() <= 12 {
            let whole = text.bytes().try_fold(0i64, |value, byte| {
                byte.is_ascii_digit()
                    .then(|| value * 10 + i64::from(byte - b'0'))
            });
            if let Some(seconds) = whole {
                return NumericDate::from_seconds(seconds);
            }
        }
        text.parse::<f64>().ok().and_then(NumericDate::from_f64)
    }

    /// The date as seconds, with any fraction.
    pub const fn as_f64(self) -> f64 {
        self.0
    }

    /// Whole seconds, rounded down.
    #[allow(clippy::cast_possible_truncation)] // in 0..=MAX_SECONDS by construction
    pub fn seconds(self) -> i64 {
        self.0.floor() as i64
    }
}

impl fmt::Display for NumericDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 {
            write!(f, "{}", self.seconds())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The claims RFC 7519 registers, which jwtgate types and can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisteredClaim {
    /// `iss`
    Iss,
    /// `sub`
    Sub,
    /// `aud`
    Aud,
    /// `exp`
    Exp,
    /// `nbf`
    Nbf,
    /// `iat`
    Iat,
    /// `jti`
    Jti,
}

impl RegisteredClaim {
    /// Every registered claim.
    pub const ALL: [RegisteredClaim; 7] = [
        RegisteredClaim::Iss,
        RegisteredClaim::Sub,
        RegisteredClaim::Aud,
        RegisteredClaim::Exp,
        RegisteredClaim::Nbf,
        RegisteredClaim::Iat,
        RegisteredClaim::Jti,
    ];

    /// The claim's name in the claims set.
    pub const fn name(self) -> &'static str {
        match self {
            RegisteredClaim::Iss => "iss",
            RegisteredClaim::Sub => "sub",
            RegisteredClaim::Aud => "aud",
            RegisteredClaim::Exp => "exp",
            RegisteredClaim::Nbf => "nbf",
            RegisteredClaim::Iat => "iat",
            RegisteredClaim::Jti => "jti",
        }
    }
}

/// The name of a claim a configuration requires: registered or private.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClaimName {
    /// One of RFC 7519's registered claims.
    Registered(RegisteredClaim),
    /// Any other top-level claim.
    Other(Box<str>),
}

impl ClaimName {
    /// The claim's name in the claims set.
    pub fn as_str(&self) -> &str {
        match self {
            ClaimName::Registered(claim) => claim.name(),
            ClaimName::Other(name) => name,
        }
    }
}

impl FromStr for ClaimName {
    type Err = std::convert::Infallible;

    fn from_str(name: &str) -> Result<ClaimName, Self::Err> {
        Ok(RegisteredClaim::ALL
            .into_iter()
            .find(|claim| claim.name() == name)
            .map_or_else(|| ClaimName::Other(name.into()), ClaimName::Registered))
    }
}

impl fmt::Display for ClaimName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `aud` claim: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Copy)]
pub enum Audience<'t> {
    /// `"aud": "api"`
    One(JsonStr<'t>),
    /// `"aud": ["api", "web"]`, every element checked to be a string.
    Many(Array<'t>),
}

impl<'t> Audience<'t> {
    /// Every audience value.
    pub fn iter(&self) -> impl Iterator<Item = JsonStr<'t>> + use<'t> {
        let (one, many) = match *self {
            Audience::One(value) => (Some(value), None),
            Audience::Many(array) => (None, Some(array.iter().filter_map(|v| v.as_str()))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// A typed JWT claims set, borrowing the decoded payload.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'t> {
    members: Object<'t>,
    /// `iss`
    pub iss: Option<JsonStr<'t>>,
    /// `sub`
    pub sub: Option<JsonStr<'t>>,
    /// `aud`
    pub aud: Option<Audience<'t>>,
    /// `exp`
    pub exp: Option<NumericDate>,
    /// `nbf`
    pub nbf: Option<NumericDate>,
    /// `iat`
    pub iat: Option<NumericDate>,
    /// `jti`
    pub jti: Option<JsonStr<'t>>,
}

const fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Outcome::Malformed, detail)
}

fn string(value: Value<'_>, not_string: Rejection) -> Result<JsonStr<'_>, Rejection> {
    value.as_str().ok_or(not_string)
}

fn date(value: Value<'_>, bad: Rejection) -> Result<NumericDate, Rejection> {
    value
        .number_text()
        .and_then(NumericDate::from_json_number)
        .ok_or(bad)
}

impl<'t> Claims<'t> {
    /// Types a validated JSON value as a claims set.
    ///
    /// Not a stable API: [`Verifier::verify`](crate::Verifier::verify) is how
    /// claims are read; this is public for jwtgate's service crate tests.
    #[doc(hidden)]
    pub fn parse(value: Value<'t>) -> Result<Claims<'t>, Rejection> {
        let members = value.as_object().ok_or(malformed(
            "payload is not a JSON object, so the token is not a JWT",
        ))?;
        let mut claims = Claims {
            members,
            iss: None,
            sub: None,
            aud: None,
            exp: None,
            nbf: None,
            iat: None,
            jti: None,
        };
        // One pass over the members; a registered name appears at most once because
        // the JSON layer refuses duplicate member names.
        for (name, value) in members.members() {
            const ISS: Option<u64> = short_key(b"iss");
            const SUB: Option<u64> = short_key(b"sub");
            const AUD: Option<u64> = short_key(b"aud");
            const EXP: Option<u64> = short_key(b"exp");
            const NBF: Option<u64> = short_key(b"nbf");
            const IAT: Option<u64> = short_key(b"iat");
            const JTI: Option<u64> = short_key(b"jti");
            let registered = match name.short_key() {
                ISS => Some(RegisteredClaim::Iss),
                SUB => Some(RegisteredClaim::Sub),
                AUD => Some(RegisteredClaim::Aud),
                EXP => Some(RegisteredClaim::Exp),
                NBF => Some(RegisteredClaim::Nbf),
                IAT => Some(RegisteredClaim::Iat),
                JTI => Some(RegisteredClaim::Jti),
                Some(_) => None,
                // Plain but longer than any registered name.
                None if name.as_plain().is_some() => None,
                // An escaped name is still the claim it spells.
                None => RegisteredClaim::ALL
                    .into_iter()
                    .find(|claim| name == claim.name()),
            };
            if let Some(registered) = registered {
                claims.set(registered, value)?;
            }
        }
        Ok(claims)
    }

    fn set(&mut self, claim: RegisteredClaim, value: Value<'t>) -> Result<(), Rejection> {
        match claim {
            RegisteredClaim::Iss => {
                self.iss = Some(string(value, malformed("iss is not a string"))?)
            }
            RegisteredClaim::Sub => {
                self.sub = Some(string(value, malformed("sub is not a string"))?)
            }
            RegisteredClaim::Jti => {
                self.jti = Some(string(value, malformed("jti is not a string"))?)
            }
            RegisteredClaim::Exp => {
                self.exp = Some(date(
                    value,
                    malformed("exp is not a NumericDate from 1970 to 9999"),
                )?);
            }
            RegisteredClaim::Nbf => {
                self.nbf = Some(date(
                    value,
                    malformed("nbf is not a NumericDate from 1970 to 9999"),
                )?);
            }
            RegisteredClaim::Iat => {
                self.iat = Some(date(
                    value,
                    malformed("iat is not a NumericDate from 1970 to 9999"),
                )?);
            }
            RegisteredClaim::Aud => {
                let not_audience = malformed("aud is not a string or an array of strings");
                self.aud = Some(match (value.as_str(), value.as_array()) {
                    (Some(one), _) => Audience::One(one),
                    (None, Some(many)) if many.iter().all(|v| v.as_str().is_some()) => {
                        Audience::Many(many)
                    }
                    _ => return Err(not_audience),
                });
            }
        }
        Ok(())
    }

    /// Every claim, in payload order.
    pub fn members(&self) -> Object<'t> {
        self.members
    }

    /// The top-level claim named exactly `name`.
    pub fn get(&self, name: &str) -> Option<Value<'t>> {
        self.members.get(name)
    }

    /// A claim by top-level name, or else by a dotted path into nested objects
    /// (`realm_access.roles`). The exact name wins, because claim names such as
    /// `https://example.com/roles` contain dots themselves.
    pub fn lookup(&self, path: &str) -> Option<Value<'t>> {
        if let Some(value) = self.members.get(path) {
            return Some(value);
        }
        let mut segments = path.split('.');
        let first = self.members.get(segments.next()?)?;
        segments.try_fold(first, |value, segment| value.as_object()?.get(segment))
    }

    /// Is the claim present (any type, including `null`)?
    pub fn contains(&self, name: &ClaimName) -> bool {
        match name {
            ClaimName::Registered(claim) => match claim {
                RegisteredClaim::Iss => self.iss.is_some(),
                RegisteredClaim::Sub => self.sub.is_some(),
                RegisteredClaim::Aud => self.aud.is_some(),
                RegisteredClaim::Exp => self.exp.is_some(),
                RegisteredClaim::Nbf => self.nbf.is_some(),
                RegisteredClaim::Iat => self.iat.is_some(),
                RegisteredClaim::Jti => self.jti.is_some(),
            },
            ClaimName::Other(name) => self.members.get(name).is_some(),
        }
    }

    /// The raw JSON text of the whole claims set.
    pub fn raw_json(&self) -> &'t str {
        self.members.raw_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::json::Tape;

    fn with_claims<T>(json: &str, check: impl FnOnce(Result<Claims<'_>, Rejection>) -> T) -> T {
        let mut tape = Tape::new();
        match tape.parse(json.as_bytes(), 16) {
            Ok(value) => check(Claims::parse(value)),
            Err(_) => check(Err(malformed("json"))),
        }
    }

    fn outcome(json: &str) -> Outcome {
        with_claims(json, |claims| {
            claims.err().map_or(Outcome::Valid, Rejection::outcome)
        })
    }

    #[test]
    fn types_registered_claims() {
        with_claims(
            r#"{"iss":"https://idp/","sub":"u1","aud":["a","b"],"exp":1700000000,"nbf":1.5,"iat":0,"jti":"j"}"#,
            |claims| {
                let Ok(claims) = claims else {
                    unreachable!("valid claims")
                };
                assert_eq!(
                    claims.iss.map(|s| s.to_string()).as_deref(),
                    Some("https://idp/")
                );
                assert_eq!(claims.exp.map(NumericDate::seconds), Some(1_700_000_000));
                assert_eq!(claims.nbf.map(NumericDate::as_f64), Some(1.5));
                assert_eq!(claims.iat.map(NumericDate::seconds), Some(0));
                let audiences: Vec<String> = claims
                    .aud
                    .iter()
                    .flat_map(|a| a.iter())
                    .map(|s| s.to_string())
                    .collect();
                assert_eq!(audiences, ["a", "b"]);
                assert!(claims.contains(&ClaimName::Registered(RegisteredClaim::Jti)));
                assert!(!claims.contains(&"scope".parse().unwrap_or(ClaimName::Other("x".into()))));
            },
        );
    }

    #[test]
    fn refuses_wrongly_typed_registered_claims() {
        for json in [
            r#"{"exp":"1700000000"}"#,
            r#"{"exp":true}"#,
            r#"{"exp":null}"#,
            r#"{"exp":-1}"#,
            r#"{"exp":253402300800}"#,
            r#"{"exp":1e400}"#,
            r#"{"nbf":[1]}"#,
            r#"{"iat":{}}"#,
            r#"{"iss":1}"#,
            r#"{"sub":null}"#,
            r#"{"jti":["a"]}"#,
            r#"{"aud":1}"#,
            r#"{"aud":["a",1]}"#,
            r#"{"\u0065xp":"soon"}"#,
            r#"["not","an","object"]"#,
            r#""string""#,
        ] {
            assert_eq!(outcome(json), Outcome::Malformed, "{json}");
        }
    }

    #[test]
    fn accepts_edge_dates() {
        assert_eq!(outcome(r#"{"exp":253402300799}"#), Outcome::Valid);
        assert_eq!(outcome(r#"{"exp":1.7e9}"#), Outcome::Valid);
        assert_eq!(outcome(r#"{"exp":0}"#), Outcome::Valid);
        assert_eq!(
            NumericDate::from_json_number("1700000000.9").map(NumericDate::seconds),
            Some(1_700_000_000)
        );
        assert_eq!(
            NumericDate::from_json_number("-0"),
            NumericDate::from_seconds(0)
        );
    }

    #[test]
    fn looks_up_nested_and_dotted_names() {
        with_claims(
            r#"{"realm_access":{"roles":["admin"]},"https://example.com/roles":"r","a":{"b":{"c":1}}}"#,
            |claims| {
                let Ok(claims) = claims else {
                    unreachable!("valid claims")
                };
                assert_eq!(
                    claims.lookup("realm_access.roles").map(|v| v.raw_json()),
                    Some(r#"["admin"]"#)
                );
                assert_eq!(
                    claims
                        .lookup("https://example.com/roles")
                        .map(|v| v.raw_json()),
                    Some("\"r\"")
                );
                assert_eq!(claims.lookup("a.b.c").map(|v| v.raw_json()), Some("1"));
                assert!(claims.lookup("a.x").is_none());
                assert!(claims.lookup("a.b.c.d").is_none());
            },
        );
    }
}
