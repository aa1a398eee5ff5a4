//! Claim requirements of a rule (function-level authorization: a valid token
//! is not permission for every endpoint) and the claims a rule forwards as
//! headers. Both name claims by dotted path (`realm_access.roles`), compiled
//! at load time.

use crate::Claims;
use jwtgate_engine::json::{JsonStr, Kind, Value};

/// What a required claim must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTest {
    /// The claim is a space-separated string (OAuth `scope`) containing this
    /// word, or an array (`scp`, `roles`) with this string among its elements.
    Contains(Box<str>),
    /// The claim is this string (or a number or boolean written this way).
    Equals(Box<str>),
}

/// One requirement: a claim (dotted path) and its test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequirement {
    /// Dotted path of the claim.
    pub claim: Box<str>,
    /// The test.
    pub test: ClaimTest,
}

fn string_is(value: JsonStr<'_>, wanted: &str) -> bool {
    value == wanted
}

impl ClaimRequirement {
    /// Whether `claims` meet the requirement.
    pub fn holds(&self, claims: &Claims<'_>) -> bool {
        let Some(value) = claims.lookup(&self.claim) else {
            return false;
        };
        match &self.test {
            ClaimTest::Equals(wanted) => scalar_is(&value, wanted),
            ClaimTest::Contains(wanted) => {
                if let Some(text) = value.as_str() {
                    text.to_cow().split(' ').any(|word| word == &**wanted)
                } else if let Some(array) = value.as_array() {
                    array
                        .iter()
                        .any(|element| element.as_str().is_some_and(|s| string_is(s, wanted)))
                } else {
                    false
                }
            }
        }
    }
}

fn scalar_is(value: &Value<'_>, wanted: &str) -> bool {
    match value.kind() {
        Kind::String => value.as_str().is_some_and(|s| string_is(s, wanted)),
        Kind::Number | Kind::Bool => value.raw_json() == wanted,
        _ => false,
    }
}

/// A claim forwarded to the upstream as a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardClaim {
    /// Dotted path of the claim.
    pub claim: Box<str>,
    /// Header name, lower case.
    pub header: Box<str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwtgate_engine::internals::json::Tape;

    fn holds(claims_json: &str, claim: &str, test: ClaimTest) -> bool {
        let mut tape = Tape::with_capacity(64);
        let value = tape.parse(claims_json.as_bytes(), 16).unwrap();
        let claims = Claims::parse(value).unwrap();
        ClaimRequirement {
            claim: claim.into(),
            test,
        }
        .holds(&claims)
    }

    #[test]
    fn scope_strings_arrays_and_equality() {
        let json = r#"{"scope":"read:orders write:orders","scp":["a","read:users"],"class":"admin","level":3,"realm":{"roles":["ops"]}}"#;
        let contains = |w: &str| ClaimTest::Contains(w.into());
        let equals = |w: &str| ClaimTest::Equals(w.into());
        assert!(holds(json, "scope", contains("read:orders")));
        assert!(!holds(json, "scope", contains("read")));
        assert!(holds(json, "scp", contains("read:users")));
        assert!(!holds(json, "scp", contains("b")));
        assert!(holds(json, "class", equals("admin")));
        assert!(!holds(json, "class", equals("Admin")));
        assert!(holds(json, "level", equals("3")));
        assert!(holds(json, "realm.roles", contains("ops")));
        assert!(!holds(json, "missing", contains("x")));
        assert!(!holds(json, "realm", equals("x")));
        assert!(holds(r#"{"scope":"a\u0020b"}"#, "scope", contains("b")));
    }
}
