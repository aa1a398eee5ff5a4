//! The `[revocation]` table: where revocations are kept (a file, or Redis
//! shared by every instance) and what applies once that store has been
//! unreadable for too long. Checked here and handed to the revocation
//! manager as [`RevocationSettings`].
//!
//! ```toml
//! [revocation]
//! redis_url = "rediss://jwtgate:secret@redis.internal:6380/0"   # or file = "revoked.jsonl"
//! key_prefix = "jwtgate:revocation:"
//! max_stale = "60s"
//! on_unavailable = "deny"        # required: "deny" or "allow"
//! ```
//!
//! Neighbours: [`crate::revocation`] owns the types and keeps the set
//! current.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::error::Located;
use super::schema::RawRevocation;
use super::{ConfigError, positive_duration, resolve_file};
use crate::revocation::{OnUnavailable, RevocationSettings, Store};

/// How long a store's last set stays in force alone, unless configured.
pub(crate) const DEFAULT_MAX_STALE: Duration = Duration::from_secs(60);
/// How often the whole store is read again to repair anything a change
/// notification missed, unless configured.
pub(crate) const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(300);
/// The Redis key prefix, unless configured.
pub(crate) const DEFAULT_KEY_PREFIX: &str = "jwtgate:revocation:";

/// The `[revocation]` table's settings, if the file has one.
pub(super) fn revocation_settings(
    raw: Option<&Spanned<RawRevocation>>,
    base: &Path,
    at: Located<'_>,
) -> Result<Option<RevocationSettings>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let table = raw.get_ref();
    let store = match (&table.file, &table.redis_url) {
        (Some(_), Some(url)) => {
            return Err(at.at(
                url.span(),
                "revocation.redis_url",
                "give file or redis_url, not both",
            ));
        }
        (None, None) => {
            return Err(at.at(
                raw.span(),
                "revocation",
                "needs file (a local revocation file) or redis_url (Redis shared by every instance)",
            ));
        }
        (Some(file), None) => {
            for (value, name) in [
                (table.key_prefix.as_ref().map(Spanned::span), "key_prefix"),
                (table.ca_file.as_ref().map(Spanned::span), "ca_file"),
            ] {
                if let Some(span) = value {
                    return Err(at.at(
                        span,
                        format!("revocation.{name}"),
                        "applies to redis_url only",
                    ));
                }
            }
            Store::File(resolve_file(file, base, "revocation.file", at)?)
        }
        (None, Some(url)) => {
            let text = url.get_ref().trim();
            if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
                return Err(at.at(
                    url.span(),
                    "revocation.redis_url",
                    "expected a redis:// or rediss:// (TLS) URL",
                ));
            }
            let prefix = table
                .key_prefix
                .as_ref()
                .map_or(DEFAULT_KEY_PREFIX, |prefix| prefix.get_ref().as_str());
            if prefix.is_empty() || prefix.contains(['*', '?', '[', ']', '\\']) {
                let span = table.key_prefix.as_ref().map_or(url.span(), Spanned::span);
                return Err(at.at(
                    span,
                    "revocation.key_prefix",
                    "must be non-empty text without the pattern characters * ? [ ] \\",
                ));
            }
            let ca_file = match &table.ca_file {
                Some(file) => Some(resolve_file(file, base, "revocation.ca_file", at)?),
                None => None,
            };
            Store::Redis {
                url: text.to_owned(),
                prefix: prefix.to_owned(),
                ca_file,
            }
        }
    };
    let on_unavailable = match &table.on_unavailable {
        None => {
            return Err(at.at(
                raw.span(),
                "revocation.on_unavailable",
                "is required: \"deny\" (refuse every token once the store has been \
                 unreadable for max_stale) or \"allow\" (go on with the last revocations read); \
                 a choice between security and availability that only you can make",
            ));
        }
        Some(value) => match value.get_ref().as_str() {
            "deny" => OnUnavailable::Deny,
            "allow" => OnUnavailable::Allow,
            _ => {
                return Err(at.at(
                    value.span(),
                    "revocation.on_unavailable",
                    "expected \"deny\" or \"allow\"",
                ));
            }
        },
    };
    let max_stale = positive_duration(&table.max_stale, "revocation.max_stale", at)?
        .unwrap_or(DEFAULT_MAX_STALE);
    let resync_interval =
        positive_duration(&table.resync_interval, "revocation.resync_interval", at)?
            .unwrap_or(DEFAULT_RESYNC_INTERVAL);
    Ok(Some(RevocationSettings {
        store,
        max_stale,
        on_unavailable,
        resync_interval,
    }))
}
