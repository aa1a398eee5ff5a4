//! The configuration file (TOML): parsed once into a validated [`Loaded`]
//! (a [`Policy`] and the server settings), or refused with an error naming
//! file, line, column and key. "Parse, don't validate": nothing downstream
//! sees a string where a type belongs.
//!
//! ```toml
//! default_action = "deny"                 # required: "allow" or "deny"
//! [server]
//! listen = "0.0.0.0:8080"
//! forwarded = "x-original"                # nginx; "x-forwarded" (Traefik, Caddy); "request-line" (Envoy)
//! [[token_config]]
//! name = "production"
//! sources = [ { header = "authorization", prefix = "Bearer" }, { cookie = "session" } ]
//! jwks_file = "keys/production.jwks.json"
//! algorithms = ["RS256", "ES256"]
//! issuer = "https://login.example.com/"
//! audiences = ["orders-api"]
//! leeway = "60s"
//! [[rule]]
//! name = "api"
//! hosts = ["api.example.com"]
//! paths = ["/v1/**"]
//! token_configs = ["production"]
//! exclude = ["GET /v1/health"]
//! ```
//!
//! Neighbours: `crate::policy` is what this builds; [`KeySet`](crate::KeySet)
//! (the engine) parses the key files; the control plane ([`crate::control`])
//! merges the `[server]` layer ([`crate::settings`]) and reloads. This module
//! keeps the file as a whole (`load`, `parse`, [`Loaded`]) and what the tables
//! share (durations; spans and errors in `error`); each table is read by a
//! module of its own: `server`, `token` (with `remote` for fetched keys) and
//! `rule`, from the serde shapes in `schema`.

mod error;
mod reload;
mod remote;
mod revocation;
mod rule;
mod schema;
mod server;
mod token;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::jwks::TokenKeys;

pub use error::ConfigError;
pub use reload::{ReloadError, Reloaded};
// What a reload refused for the keys: named by `ReloadError::Keys`.
pub use crate::jwks::{KeysRefusal, KeysRefused, UnusableKeySet};
pub(crate) use reload::{Reloader, Stamp};

use crate::policy::{DefaultAction, Policy, Rule, TokenConfig};
use crate::settings::{self, ServerLayer};
use error::Located;
use rule::{RESERVED_HEADERS, rule_of};
use schema::{DurationText, RawFile};
use server::{forwarded, server_settings, trusted_proxies};
use token::token_config;

/// A configuration, loaded and validated.
#[derive(Debug)]
pub struct Loaded {
    /// Token configurations and rules.
    pub policy: Policy,
    /// The keys of each token configuration, in the order of the policy's:
    /// local keys, or a remote source that has not been fetched yet.
    pub keys: Vec<TokenKeys>,
    /// The `[server]` table: the settings it names.
    pub server: ServerLayer,
    /// Every key file read, for reload-on-change.
    pub key_files: Vec<PathBuf>,
    /// Keys skipped with a warning, as `token_config name: warning`.
    pub warnings: Vec<String>,
    /// The `[revocation]` table, if the file has one.
    pub revocation: Option<crate::revocation::RevocationSettings>,
}

/// Reads and validates the configuration at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|error| ConfigError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read the file: {error}"),
    })?;
    parse(&source, path)
}

/// Validates `source`, the text of the file `path` (key files are relative to its folder).
pub fn parse(source: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let at = Located { file: path, source };
    let raw: RawFile = toml::from_str(source).map_err(|error| at.toml_error(&error))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let default_action = match &raw.default_action {
        None => {
            return Err(at.whole(
                "default_action",
                "is required: \"allow\" or \"deny\" (what a request that matches no rule gets)",
            ));
        }
        Some(value) => match value.get_ref().as_str() {
            "allow" => DefaultAction::Allow,
            "deny" => DefaultAction::Deny,
            _ => {
                return Err(at.at(
                    value.span(),
                    "default_action",
                    "expected \"allow\" or \"deny\"",
                ));
            }
        },
    };
    let server = server_settings(&raw.server, at)?;
    let revocation = revocation::revocation_settings(raw.revocation.as_ref(), base, at)?;
    let forwarded = forwarded(&raw.server, at)?;
    let trusted_proxies = trusted_proxies(&raw.server, &forwarded, at)?;
    let mut key_files = Vec::new();
    let mut warnings = Vec::new();
    let mut configs: Vec<TokenConfig> = Vec::with_capacity(raw.token_config.len());
    let mut keys = Vec::with_capacity(raw.token_config.len());
    for (index, config) in raw.token_config.iter().enumerate() {
        let (built, built_keys) =
            token_config(config, index, base, at, &mut key_files, &mut warnings)?;
        if configs.iter().any(|c| c.name == built.name) {
            return Err(at.at(
                config.get_ref().name.span(),
                format!("token_config[{index}].name"),
                format!(
                    "a token configuration named {:?} is already defined",
                    &*built.name
                ),
            ));
        }
        configs.push(built);
        keys.push(built_keys);
    }
    let mut rules = Vec::with_capacity(raw.rule.len());
    for (index, rule) in raw.rule.iter().enumerate() {
        let built = rule_of(rule, index, &configs, at)?;
        // Rule names label metrics and log lines: two rules of one name would
        // be counted as one.
        if rules.iter().any(|r: &Rule| r.name == built.name) {
            return Err(at.at(
                rule.get_ref().name.span(),
                format!("rule[{index}].name"),
                format!("a rule named {:?} is already defined", &*built.name),
            ));
        }
        rules.push(built);
    }
    let mut forwarded_headers: BTreeSet<Box<str>> = BTreeSet::new();
    for rule in &rules {
        for forward in rule.forward_claims.iter() {
            if !RESERVED_HEADERS.contains(&&*forward.header) {
                forwarded_headers.insert(forward.header.clone());
            }
        }
    }
    Ok(Loaded {
        policy: Policy::new(
            configs.into(),
            rules.into(),
            default_action,
            forwarded_headers.into_iter().collect(),
            forwarded,
            trusted_proxies.into(),
        ),
        keys,
        server,
        key_files,
        warnings,
        revocation,
    })
}

/// A duration as the configuration writes one (`"60s"`, `"10m"`, `"2h"`),
/// for command-line flags that take the same text.
pub fn duration_text(text: &str) -> Option<Duration> {
    parse_duration(text)
}

/// Parses a duration: a number and a unit, `ms`, `s`, `m` or `h` (`"60s"`, `"10m"`).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// The file `value` names (relative to the configuration's folder `base`),
/// if it can be read; else the error, at `key`.
fn resolve_file(
    value: &Spanned<String>,
    base: &Path,
    key: &str,
    at: Located<'_>,
) -> Result<PathBuf, ConfigError> {
    let path = base.join(value.get_ref());
    match std::fs::metadata(&path) {
        Ok(_) => Ok(path),
        Err(error) => Err(at.at(
            value.span(),
            key,
            format!(
                "cannot read {}: {error}",
                shown_path(&path, value.get_ref())
            ),
        )),
    }
}

/// `file` as an error shows it: absolute, with what the configuration
/// wrote when that was relative (relative paths are read from the
/// configuration file's folder, not from where jwtgate was started).
fn shown_path(file: &Path, written: &str) -> String {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    if Path::new(written).is_absolute() {
        absolute.display().to_string()
    } else {
        format!(
            "{} (\"{written}\" is read from the configuration file's folder)",
            absolute.display()
        )
    }
}

fn duration(
    value: &Spanned<DurationText>,
    key: &str,
    at: Located<'_>,
) -> Result<Duration, ConfigError> {
    parse_duration(value.get_ref()).ok_or_else(|| {
        at.at(
            value.span(),
            key,
            "expected a duration such as \"500ms\", \"60s\", \"10m\" or \"1h\"",
        )
    })
}

fn positive_duration(
    value: &Option<Spanned<DurationText>>,
    key: &str,
    at: Located<'_>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let parsed = duration(value, key, at)?;
    settings::positive(parsed)
        .map(Some)
        .map_err(|error| at.refused(value.span(), key, error))
}

#[cfg(test)]
mod tests;
