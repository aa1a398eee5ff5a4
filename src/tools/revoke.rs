//! `jwtgate revoke`: writes a revocation to the store the configuration's
//! `[revocation]` table names (a file, or Redis, where every instance
//! following it applies it), or lists the revocations in force.
//!
//! Unless `--ttl` says otherwise, an entry lasts as long as a token it
//! covers can still be valid: the longest `max_lifetime` (plus leeway) of
//! the token configurations it concerns, from now (a subject's cut-off:
//! from the cut-off). A configuration without `max_lifetime` bounds nothing,
//! so `--ttl` is then required.
//!
//! Neighbours: [`crate::revocation`] (the record, the stores).

use std::path::Path;
use std::time::Duration;

use crate::UnixTime;
use crate::config;
use crate::revocation::file;
use crate::revocation::redis::RedisStore;
use crate::revocation::{Kind, Revocation, RevocationSet, Store};

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One token of `issuer`.
    Token {
        /// Its issuer.
        issuer: String,
        /// Its `jti`.
        jti: String,
    },
    /// Every token of `subject` by `issuer` issued before `before`.
    Subject {
        /// The issuer.
        issuer: String,
        /// The subject.
        subject: String,
        /// The cut-off (default: now).
        before: Option<UnixTime>,
    },
    /// Every token `config` verifies with the key `kid`.
    Key {
        /// The key's id.
        kid: String,
        /// The token configuration.
        config: String,
    },
}

/// Writes the revocation of `target` to the store of the configuration at
/// `path`; the line that says what was done.
pub fn revoke(
    path: &Path,
    target: Target,
    ttl: Option<Duration>,
    now: UnixTime,
) -> Result<String, String> {
    let loaded = config::load(path).map_err(|e| e.to_string())?;
    let settings = loaded.revocation.as_ref().ok_or_else(|| {
        format!(
            "{}: no [revocation] table names a store to write to",
            path.display()
        )
    })?;
    let validations: Vec<(&str, &jwtgate_engine::Validation)> = loaded
        .policy
        .configs
        .iter()
        .zip(loaded.keys.iter())
        .map(|(config, keys)| (&*config.name, keys.verifier().validation()))
        .collect();
    let (kind, scope, name, before, concerned): (
        Kind,
        String,
        String,
        Option<UnixTime>,
        Vec<&str>,
    ) = match target {
        Target::Token { issuer, jti } => {
            let concerned = issued_by(&validations, &issuer)?;
            (Kind::Token, issuer, jti, None, concerned)
        }
        Target::Subject {
            issuer,
            subject,
            before,
        } => {
            let concerned = issued_by(&validations, &issuer)?;
            // By default the tokens issued up to the end of this second:
            // iat is whole seconds, and a token issued a moment before
            // the revocation must be covered.
            (
                Kind::Subject,
                issuer,
                subject,
                Some(before.unwrap_or(UnixTime(now.0 + 1))),
                concerned,
            )
        }
        Target::Key { kid, config } => {
            let Some(&(own, _)) = validations.iter().find(|(name, _)| *name == config) else {
                return Err(format!(
                    "no token configuration is named {config:?} in {}",
                    path.display()
                ));
            };
            // A leaked key signs new tokens for as long as it is trusted:
            // no token lifetime bounds that, only its removal from the
            // key set does, which the operator knows and this does not.
            if ttl.is_none() {
                return Err(format!(
                    "a key stays usable until the identity provider drops it from its key set: \
                     give --ttl for at least that long (e.g. --ttl 720h) for kid {kid:?}"
                ));
            }
            (Kind::Key, config, kid, None, vec![own])
        }
    };
    let start = before.unwrap_or(now);
    let expires = match ttl {
        Some(ttl) => UnixTime(
            start
                .0
                .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        ),
        None => UnixTime(
            start
                .0
                .saturating_add(longest_life(&validations, &concerned, &scope)?),
        ),
    };
    if expires <= now {
        return Err(format!(
            "the revocation would end at {} (Unix seconds), already past: no token it covers can still be valid",
            expires.0
        ));
    }
    let revocation = Revocation {
        kind,
        scope: scope.into(),
        name: name.into(),
        before,
        expires,
    };
    // What a store holds must read back: an empty or overlong field, or an
    // instant past year 9999, is refused here, not left for every reader.
    Revocation::parse(
        &revocation.to_line(),
        &mut jwtgate_engine::internals::json::Tape::new(),
    )
    .map_err(|e| format!("cannot revoke that: {e}"))?;
    let stored = match &settings.store {
        Store::File(file_path) => {
            // A file that does not read keeps the service on its last set:
            // an entry appended to it would never take effect.
            let mut stored = revocation.clone();
            if file_path.exists() {
                file::read_each(file_path, &mut |existing| {
                    if existing.matches(stored.kind, &stored.scope, &stored.name) {
                        stored.before = stored.before.max(existing.before);
                        stored.expires = stored.expires.max(existing.expires);
                    }
                })
                .map_err(|e| format!("{e}: fix the file first, nothing was revoked"))?;
            }
            file::append(file_path, &stored).map_err(|e| e.to_string())?;
            stored
        }
        store @ Store::Redis { .. } => RedisStore::open(store)?.revoke(&revocation)?,
    };
    Ok(format!(
        "revoked {} until {} ({} s from now), in {}: {}",
        describe(&stored),
        stored.expires.0,
        stored.expires.0 - now.0,
        settings.store.describe(),
        stored.to_line()
    ))
}

/// The revocations in force in the store of the configuration at `path`,
/// one JSON line each, and a summary line.
pub fn list(path: &Path, now: UnixTime) -> Result<(Vec<String>, String), String> {
    let loaded = config::load(path).map_err(|e| e.to_string())?;
    let settings = loaded.revocation.as_ref().ok_or_else(|| {
        format!(
            "{}: no [revocation] table names a store to list",
            path.display()
        )
    })?;
    let revocations = match &settings.store {
        Store::File(file_path) => file::read(file_path).map_err(|e| e.to_string())?,
        store @ Store::Redis { .. } => RedisStore::open(store)?.read_all()?.0,
    };
    let set = RevocationSet::from_revocations(revocations).without_expired(now);
    let mut lines: Vec<String> = set.iter().map(Revocation::to_line).collect();
    lines.sort();
    let summary = format!(
        "{} in force in {}: {} jti, {} subject, {} kid",
        set.len(),
        settings.store.describe(),
        set.count(Kind::Token),
        set.count(Kind::Subject),
        set.count(Kind::Key)
    );
    Ok((lines, summary))
}

/// `text` as an instant: Unix seconds, or RFC 3339
/// (`2026-12-06T10:00:00Z`, a fraction of a second counts as the second after).
pub fn instant(text: &str) -> Option<UnixTime> {
    crate::time::parse_instant(text).map(UnixTime)
}

fn describe(revocation: &Revocation) -> String {
    match revocation.kind {
        Kind::Token => format!(
            "jti {:?} of issuer {:?}",
            &*revocation.name, &*revocation.scope
        ),
        Kind::Subject => format!(
            "the tokens of subject {:?} of issuer {:?} issued before {}",
            &*revocation.name,
            &*revocation.scope,
            revocation.before.map_or(0, |before| before.0)
        ),
        Kind::Key => format!(
            "kid {:?} of token_config {:?}",
            &*revocation.name, &*revocation.scope
        ),
    }
}

/// The token configurations whose tokens `issuer` issues: those that
/// require that issuer, and those that require none (they accept any).
fn issued_by<'v>(
    validations: &[(&'v str, &jwtgate_engine::Validation)],
    issuer: &str,
) -> Result<Vec<&'v str>, String> {
    let concerned: Vec<&str> = validations
        .iter()
        .filter(|(_, validation)| {
            validation
                .expected_issuer()
                .is_none_or(|expected| expected == issuer)
        })
        .map(|(name, _)| *name)
        .collect();
    if concerned.is_empty() {
        // Compared byte for byte, as tokens are: a revocation of an issuer
        // spelled otherwise would match nothing, silently.
        let accepted: Vec<&str> = validations
            .iter()
            .filter_map(|(_, validation)| validation.expected_issuer())
            .collect();
        return Err(format!(
            "no token configuration accepts tokens of issuer {issuer:?} (they accept {accepted:?}): \
             a revocation of it would match nothing"
        ));
    }
    Ok(concerned)
}

/// The longest a token of the `concerned` configurations can still be
/// accepted from now, in seconds: `max_lifetime` and twice the leeway.
fn longest_life(
    validations: &[(&str, &jwtgate_engine::Validation)],
    concerned: &[&str],
    scope: &str,
) -> Result<i64, String> {
    if concerned.is_empty() {
        return Err(format!(
            "no token configuration accepts tokens of {scope:?}: give --ttl for how long the revocation must last"
        ));
    }
    let iat = jwtgate_engine::ClaimName::Registered(jwtgate_engine::RegisteredClaim::Iat);
    let mut longest = 0i64;
    for name in concerned {
        let Some((_, validation)) = validations.iter().find(|(own, _)| own == name) else {
            continue;
        };
        let Some(lifetime) = validation.max_lifetime_seconds() else {
            return Err(format!(
                "token_config {name:?} sets no max_lifetime, so nothing bounds how long its tokens live: give --ttl"
            ));
        };
        // A token without iat has its lifetime measured from now, so it is
        // accepted until its exp, however far: nothing bounds it.
        if !validation.required_claims().contains(&iat) {
            return Err(format!(
                "token_config {name:?} accepts tokens without iat, whose lifetime nothing bounds: \
                 give --ttl, or add \"iat\" to its require"
            ));
        }
        // An iat up to one leeway ahead and an exp honoured one leeway past.
        let leeway = validation.leeway_seconds();
        longest = longest.max(lifetime.saturating_add(2 * leeway));
    }
    Ok(longest)
}

#[cfg(test)]
mod tests {
    use super::instant;
    use crate::UnixTime;

    #[test]
    fn an_instant_is_unix_seconds_or_rfc_3339_in_utc() {
        assert_eq!(instant("1700000000"), Some(UnixTime(1_700_000_000)));
        assert_eq!(
            instant("2023-11-14T22:13:20Z"),
            Some(UnixTime(1_700_000_000))
        );
        assert_eq!(
            instant("2023-11-14T22:13:19.5+00:00"),
            Some(UnixTime(1_700_000_000))
        );
        assert_eq!(instant("1970-01-01T00:00:00Z"), Some(UnixTime(0)));
        assert_eq!(
            instant("2024-02-29T00:00:00Z"),
            Some(UnixTime(1_709_164_800))
        );
        for wrong in [
            "",
            "-5",
            "2023-11-14T22:13:20",
            "2023-13-01T00:00:00Z",
            "tomorrow",
        ] {
            assert_eq!(instant(wrong), None, "{wrong}");
        }
    }
}
