//! What a revocation is, and how it is written down: one JSON object per
//! line, the same in a revocation file, as a Redis value and in `jwtgate
//! revoke --list` (a TOML revocation file writes the same members as a
//! table, [`super::file`]):
//!
//! ```text
//! {"jti":"3f2a…","iss":"https://idp.example.com/","expires":1767225600}
//! {"sub":"alice","iss":"https://idp.example.com/","before":1767200000,"expires":1767229200}
//! {"kid":"2024-07","token_config":"users","expires":1767232800}
//! ```
//!
//! - `jti` + `iss`: that one token;
//! - `sub` + `iss` + `before`: every token of the subject issued (`iat`)
//!   before `before` ("log out everywhere"); a token without `iat` counts as
//!   issued before;
//! - `kid` + `token_config`: every token the configuration verifies with that
//!   key (a compromised key, before the identity provider drops it).
//!
//! `expires` (Unix seconds) is when the entry is dropped: the longest a
//! token it covers can still be valid. A token is never revoked by a hash
//! of its bytes: an ECDSA signature has a second valid encoding, so a
//! deny-list of token hashes could be walked around.
//!
//! Neighbours: [`super::set`] (the set the shards read).

use std::fmt;
use std::sync::Arc;

use jwtgate_engine::internals::json::Tape;

use crate::UnixTime;
use crate::json_string::quote_into;

/// Longest jti, subject, kid, issuer or configuration name accepted, in
/// bytes: a revocation is written by operators and tools, not by clients,
/// but the store is still input.
pub const MAX_FIELD_BYTES: usize = 1024;

/// What a revocation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// One token: `(iss, jti)`.
    Token,
    /// A subject's tokens issued before a cut-off: `(iss, sub, before)`.
    Subject,
    /// Every token signed with a key: `(token configuration, kid)`.
    Key,
}

impl Kind {
    /// How many kinds there are.
    pub const COUNT: usize = 3;
    /// Every kind.
    pub const ALL: [Kind; Kind::COUNT] = [Kind::Token, Kind::Subject, Kind::Key];

    /// Position in [`Kind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The members naming what is revoked, and its scope.
    pub const fn member_names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Token => ("jti", "iss"),
            Kind::Subject => ("sub", "iss"),
            Kind::Key => ("kid", "token_config"),
        }
    }

    /// The name in metrics labels and listings.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Token => "jti",
            Kind::Subject => "subject",
            Kind::Key => "kid",
        }
    }
}

/// One revocation; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it covers.
    pub kind: Kind,
    /// The issuer (`Token`, `Subject`) or the token configuration (`Key`);
    /// shared by the entries of one scope in a set.
    pub scope: Arc<str>,
    /// The jti, the subject or the kid.
    pub name: Box<str>,
    /// `Subject` only: tokens issued before this instant are refused.
    pub before: Option<UnixTime>,
    /// When the entry stops being in force.
    pub expires: UnixTime,
}

/// Why a line is not a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

pub(super) fn error(message: impl Into<String>) -> RecordError {
    RecordError(message.into())
}

impl Revocation {
    /// Whether this is the entry of `kind`, `scope` and `name`.
    pub fn matches(&self, kind: Kind, scope: &str, name: &str) -> bool {
        // The name first: it is what differs between entries of one scope.
        *self.name == *name && self.kind == kind && *self.scope == *scope
    }

    /// The entry as one JSON line (without the newline).
    pub fn to_line(&self) -> String {
        let mut out = Vec::with_capacity(96 + self.scope.len() + self.name.len());
        let (name_key, scope_key) = self.kind.member_names();
        out.push(b'{');
        quote_into(&mut out, name_key);
        out.push(b':');
        quote_into(&mut out, &self.name);
        out.push(b',');
        quote_into(&mut out, scope_key);
        out.push(b':');
        quote_into(&mut out, &self.scope);
        if let Some(before) = self.before {
            out.extend_from_slice(format!(",\"before\":{}", before.0).as_bytes());
        }
        out.extend_from_slice(format!(",\"expires\":{}}}", self.expires.0).as_bytes());
        // quote_into escapes everything JSON needs; the bytes are UTF-8.
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads one line (a JSON object; see the module documentation).
    pub fn parse(line: &str, tape: &mut Tape) -> Result<Revocation, RecordError> {
        Revocation::parse_sharing(line, tape, &mut RecentScopes::default())
    }

    /// Reads one line, taking its scope from `scopes` when a recent line had
    /// the same: a store of a million revocations of one issuer then holds
    /// that issuer once, and never allocates a copy to drop later (the holes
    /// would stay in the heap).
    pub fn parse_sharing(
        line: &str,
        tape: &mut Tape,
        scopes: &mut RecentScopes,
    ) -> Result<Revocation, RecordError> {
        let value = tape
            .parse(line.as_bytes(), 2)
            .map_err(|e| error(format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| error("not a JSON object"))?;
        let mut members = Members::default();
        for (member, value) in object.members() {
            // Compared unescaped: `"\u006ati"` is `jti`.
            let member = member.to_cow();
            let Some(slot) = members.slot(&member) else {
                return Err(unknown_member(&member));
            };
            let value = match slot {
                Written::Text(_) => Written::Text(
                    value
                        .as_str()
                        .ok_or_else(|| error(format!("{member} must be a string")))?
                        .to_cow()
                        .into_owned(),
                ),
                Written::Seconds(_) => Written::Seconds(
                    value
                        .number_text()
                        .and_then(|text| text.parse::<i64>().ok())
                        .ok_or_else(|| error(format!("{member} must be whole Unix seconds")))?,
                ),
            };
            *slot = value;
        }
        members.check(scopes)
    }
}

/// The scopes of the last few revocations read; see
/// [`Revocation::parse_sharing`].
#[derive(Debug, Default)]
pub struct RecentScopes {
    recent: Vec<Arc<str>>,
    /// Where the next new scope goes once `recent` is full.
    next: usize,
}

impl RecentScopes {
    /// How many scopes are remembered: stores hold a few issuers and
    /// configurations, read in any order.
    const SIZE: usize = 8;

    /// A shared copy of `scope`.
    pub(super) fn share(&mut self, scope: &str) -> Arc<str> {
        if let Some(shared) = self.recent.iter().find(|shared| ***shared == *scope) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = scope.into();
        if self.recent.len() < RecentScopes::SIZE {
            self.recent.push(Arc::clone(&shared));
        } else if let Some(slot) = self.recent.get_mut(self.next) {
            *slot = Arc::clone(&shared);
            self.next = (self.next + 1) % RecentScopes::SIZE;
        }
        shared
    }
}

/// The names a revocation may have, in the order they are documented.
pub(super) const MEMBERS: [&str; 7] = [
    "jti",
    "sub",
    "kid",
    "iss",
    "token_config",
    "before",
    "expires",
];

pub(super) fn unknown_member(member: &str) -> RecordError {
    error(format!(
        "unknown member {member:?} (known: {})",
        MEMBERS.join(", ")
    ))
}

/// A member's value as a file wrote it, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Written {
    /// jti, sub, kid, iss, token_config.
    Text(String),
    /// before, expires (already converted from a date-time, if one was written).
    Seconds(i64),
}

/// A revocation's members as read from either file format; [`Members::check`]
/// applies the rules both share.
#[derive(Debug, Default)]
pub(super) struct Members {
    jti: Option<Written>,
    sub: Option<Written>,
    kid: Option<Written>,
    iss: Option<Written>,
    token_config: Option<Written>,
    before: Option<Written>,
    expires: Option<Written>,
}

impl Members {
    /// Where `member`'s value goes, holding a placeholder of the type it
    /// takes; `None` for a name that is not a member.
    pub(super) fn slot(&mut self, member: &str) -> Option<&mut Written> {
        let (slot, placeholder) = match member {
            "jti" => (&mut self.jti, Written::Text(String::new())),
            "sub" => (&mut self.sub, Written::Text(String::new())),
            "kid" => (&mut self.kid, Written::Text(String::new())),
            "iss" => (&mut self.iss, Written::Text(String::new())),
            "token_config" => (&mut self.token_config, Written::Text(String::new())),
            "before" => (&mut self.before, Written::Seconds(0)),
            "expires" => (&mut self.expires, Written::Seconds(0)),
            _ => return None,
        };
        Some(slot.insert(placeholder))
    }

    /// The revocation the members describe, if they describe exactly one.
    pub(super) fn check(self, scopes: &mut RecentScopes) -> Result<Revocation, RecordError> {
        let (kind, name_member, name) = match (self.jti, self.sub, self.kid) {
            (Some(jti), None, None) => (Kind::Token, "jti", jti),
            (None, Some(sub), None) => (Kind::Subject, "sub", sub),
            (None, None, Some(kid)) => (Kind::Key, "kid", kid),
            (None, None, None) => return Err(error("needs one of jti, sub or kid")),
            _ => return Err(error("names more than one of jti, sub and kid")),
        };
        let name = text(name, name_member)?;
        let (scope_member, scope, other_scope, other) = if kind == Kind::Key {
            ("token_config", self.token_config, "iss", self.iss)
        } else {
            ("iss", self.iss, "token_config", self.token_config)
        };
        if other.is_some() {
            return Err(error(format!(
                "{other_scope} does not go with {name_member} (it takes {scope_member})"
            )));
        }
        let scope = text(
            scope.ok_or_else(|| error(format!("needs {scope_member}")))?,
            scope_member,
        )?;
        let before = match (kind, self.before) {
            (Kind::Subject, Some(before)) => Some(seconds(before, "before")?),
            (Kind::Subject, None) => return Err(error("a subject revocation needs before")),
            (_, Some(_)) => return Err(error("before goes only with sub")),
            (_, None) => None,
        };
        let expires = seconds(
            self.expires
                .ok_or_else(|| error("needs expires (Unix seconds)"))?,
            "expires",
        )?;
        Ok(Revocation {
            kind,
            scope: scopes.share(&scope),
            name: name.into(),
            before,
            expires,
        })
    }
}

impl fmt::Display for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

fn text(value: Written, member: &str) -> Result<String, RecordError> {
    let Written::Text(text) = value else {
        return Err(error(format!("{member} must be a string")));
    };
    if text.is_empty() {
        return Err(error(format!("{member} is empty")));
    }
    if text.len() > MAX_FIELD_BYTES {
        return Err(error(format!(
            "{member} is longer than {MAX_FIELD_BYTES} bytes"
        )));
    }
    Ok(text)
}

fn seconds(value: Written, member: &str) -> Result<UnixTime, RecordError> {
    match value {
        Written::Seconds(seconds) if (0..=253_402_300_799).contains(&seconds) => {
            Ok(UnixTime(seconds))
        }
        _ => Err(error(format!("{member} must be whole Unix seconds"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(line: &str) -> Result<Revocation, RecordError> {
        Revocation::parse(line, &mut Tape::new())
    }

    #[test]
    fn each_kind_reads_back_what_it_writes() {
        for revocation in [
            Revocation {
                kind: Kind::Token,
                scope: "https://idp/".into(),
                name: "a\"b\\c\u{1}".into(),
                before: None,
                expires: UnixTime(1_700_003_600),
            },
            Revocation {
                kind: Kind::Subject,
                scope: "https://idp/".into(),
                name: "alice".into(),
                before: Some(UnixTime(1_700_000_000)),
                expires: UnixTime(1_700_003_600),
            },
            Revocation {
                kind: Kind::Key,
                scope: "users".into(),
                name: "2024-07".into(),
                before: None,
                expires: UnixTime(1_700_003_600),
            },
        ] {
            let line = revocation.to_line();
            assert_eq!(parse(&line).unwrap(), revocation, "{line}");
        }
    }

    #[test]
    fn a_line_must_say_exactly_what_it_revokes() {
        for (line, wanted) in [
            (r#"{"iss":"i","expires":1}"#, "needs one of"),
            (
                r#"{"jti":"a","sub":"b","iss":"i","expires":1}"#,
                "more than one",
            ),
            (r#"{"jti":"a","expires":1}"#, "needs iss"),
            (r#"{"jti":"a","iss":"i"}"#, "needs expires"),
            (
                r#"{"jti":"a","iss":"i","expires":1.5}"#,
                "whole Unix seconds",
            ),
            (
                r#"{"jti":"a","iss":"i","expires":-1}"#,
                "whole Unix seconds",
            ),
            (r#"{"jti":"","iss":"i","expires":1}"#, "jti is empty"),
            (r#"{"jti":1,"iss":"i","expires":1}"#, "must be a string"),
            (r#"{"sub":"a","iss":"i","expires":1}"#, "needs before"),
            (
                r#"{"jti":"a","iss":"i","before":1,"expires":1}"#,
                "only with sub",
            ),
            (
                r#"{"kid":"k","iss":"i","expires":1}"#,
                "does not go with kid",
            ),
            (
                r#"{"jti":"a","iss":"i","expires":1,"why":"x"}"#,
                "unknown member",
            ),
            (r#"{"jti":"a","jti":"b","iss":"i","expires":1}"#, "not JSON"),
            ("[1]", "not a JSON object"),
        ] {
            let message = parse(line).unwrap_err().to_string();
            assert!(message.contains(wanted), "{line}: {message}");
        }
        let long = format!(
            r#"{{"jti":"{}","iss":"i","expires":1}}"#,
            "x".repeat(MAX_FIELD_BYTES + 1)
        );
        assert!(
            parse(&long)
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
    }
}
