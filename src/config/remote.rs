//! The remote key source of a token configuration: `jwks_url` or issuer
//! discovery, the TLS and fetch settings, the refresh schedule and start-up
//! policy, all checked here and handed to the key manager as
//! [`RemoteSettings`].
//!
//! Neighbours: [`super::token`] asks for it; [`crate::jwks`] owns the types
//! and does the fetching.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::Located;
use super::schema::{DurationText, RawTokenConfig};
use super::{ConfigError, positive_duration};
use crate::jwks::{
    AllowedHost, FetchSettings, Location, Origin, RemoteSettings, Schedule, Startup,
};

/// The remote key source of a token configuration, if it has one
/// (`jwks_url` or `issuer_discovery = true`); remote-only settings without
/// one are an error.
pub(super) fn remote_of(
    config: &RawTokenConfig,
    span: std::ops::Range<usize>,
    key: &dyn Fn(&str) -> String,
    base: &Path,
    at: Located<'_>,
    key_files: &mut Vec<PathBuf>,
) -> Result<Option<RemoteSettings>, ConfigError> {
    let discovery = config
        .issuer_discovery
        .as_ref()
        .filter(|flag| *flag.get_ref());
    let allow_http = config
        .danger_allow_http
        .as_ref()
        .is_some_and(|flag| *flag.get_ref());
    let location = match (&config.jwks_url, discovery) {
        (Some(_), Some(flag)) => {
            return Err(at.at(
                flag.span(),
                key("issuer_discovery"),
                "give jwks_url or issuer_discovery, not both",
            ));
        }
        (Some(url), None) => {
            let text = url.get_ref().trim();
            let scheme_ok =
                text.starts_with("https://") || (allow_http && text.starts_with("http://"));
            let authority = text.split_once("://").map_or("", |(_, rest)| {
                rest.split(['/', '?', '#']).next().unwrap_or("")
            });
            if authority.contains('@') {
                return Err(at.at(
                    url.span(),
                    key("jwks_url"),
                    "credentials in the URL would be written to every log line that names it",
                ));
            }
            if !scheme_ok || text.len() < "https://x".len() {
                return Err(at.at(
                    url.span(),
                    key("jwks_url"),
                    "an https:// URL (http:// only with danger_allow_http = true: anyone on the path could swap the keys)",
                ));
            }
            // Its origin is where redirects may lead: it must be one.
            if let Err(error) = Origin::of_url(text) {
                return Err(at.at(url.span(), key("jwks_url"), error.to_string()));
            }
            Location::Url(text.to_owned())
        }
        (None, Some(flag)) => {
            let Some(issuer) = &config.issuer else {
                return Err(at.at(
                    flag.span(),
                    key("issuer"),
                    "issuer_discovery needs the issuer: its discovery document is fetched from <issuer>/.well-known/openid-configuration",
                ));
            };
            if !(issuer.starts_with("https://") || (allow_http && issuer.starts_with("http://"))) {
                return Err(at.at(
                    flag.span(),
                    key("issuer"),
                    "issuer_discovery needs an https:// issuer (http:// only with danger_allow_http = true)",
                ));
            }
            if let Err(error) = Origin::of_url(issuer) {
                return Err(at.at(
                    flag.span(),
                    key("issuer"),
                    format!("issuer_discovery needs an issuer that is a URL: {error}"),
                ));
            }
            Location::Discovery {
                issuer: issuer.clone(),
            }
        }
        (None, None) => {
            let remote_only = [
                config.ca_file.as_ref().map(|v| ("ca_file", v.span())),
                config
                    .connect_timeout
                    .as_ref()
                    .map(|v| ("connect_timeout", v.span())),
                config
                    .fetch_timeout
                    .as_ref()
                    .map(|v| ("fetch_timeout", v.span())),
                config
                    .refresh_interval
                    .as_ref()
                    .map(|v| ("refresh_interval", v.span())),
                config
                    .min_refresh_interval
                    .as_ref()
                    .map(|v| ("min_refresh_interval", v.span())),
                config
                    .max_refresh_interval
                    .as_ref()
                    .map(|v| ("max_refresh_interval", v.span())),
                config
                    .min_refetch_interval
                    .as_ref()
                    .map(|v| ("min_refetch_interval", v.span())),
                config.max_stale.as_ref().map(|v| ("max_stale", v.span())),
                config
                    .startup_timeout
                    .as_ref()
                    .map(|v| ("startup_timeout", v.span())),
                config
                    .max_response_bytes
                    .as_ref()
                    .map(|v| ("max_response_bytes", v.span())),
                config
                    .allow_start_without_keys
                    .as_ref()
                    .map(|v| ("allow_start_without_keys", v.span())),
                config
                    .danger_allow_http
                    .as_ref()
                    .map(|v| ("danger_allow_http", v.span())),
                config
                    .jwks_allowed_hosts
                    .as_ref()
                    .map(|v| ("jwks_allowed_hosts", v.span())),
            ];
            if let Some((field, span)) = remote_only.into_iter().flatten().next() {
                return Err(at.at(
                    span,
                    key(field),
                    "applies to fetched keys only: set jwks_url or issuer_discovery = true",
                ));
            }
            return Ok(None);
        }
    };
    let local = [
        config.jwks_file.as_ref().map(|v| ("jwks_file", v.span())),
        config.jwks.as_ref().map(|v| ("jwks", v.span())),
        config
            .public_key_file
            .as_ref()
            .map(|v| ("public_key_file", v.span())),
    ];
    if let Some((field, span)) = local.into_iter().flatten().next() {
        return Err(at.at(
            span,
            key(field),
            "give one key source: the keys are already fetched (jwks_url or issuer_discovery)",
        ));
    }
    let defaults = RemoteSettings {
        location,
        fetch: FetchSettings::default(),
        schedule: Schedule::default(),
        startup: Startup::default(),
    };
    let mut remote = defaults;
    remote.fetch.allow_http = allow_http;
    for (i, entry) in config
        .jwks_allowed_hosts
        .as_ref()
        .map_or(&[][..], |list| list.get_ref().as_slice())
        .iter()
        .enumerate()
    {
        let host = AllowedHost::parse(entry.get_ref()).map_err(|error| {
            at.at(
                entry.span(),
                key(&format!("jwks_allowed_hosts[{i}]")),
                format!(
                    "expected a host such as \"keys.example.com\" or \"keys.example.com:8443\": {error}"
                ),
            )
        })?;
        remote.fetch.allowed_hosts.push(host);
    }
    if let Some(file) = &config.ca_file {
        let path = base.join(file.get_ref());
        if let Err(error) = std::fs::metadata(&path) {
            return Err(at.at(
                file.span(),
                key("ca_file"),
                format!(
                    "cannot read {}: {error}",
                    super::shown_path(&path, file.get_ref())
                ),
            ));
        }
        key_files.push(path.clone());
        remote.fetch.ca_file = Some(path);
    }
    // Bounded both ways: below a second the IdP is hammered (a refetch per
    // unknown kid), beyond a year deadlines stop meaning anything.
    let positive = |value: &Option<Spanned<DurationText>>, field: &str, default: Duration| {
        let parsed = positive_duration(value, &key(field), at)?;
        if let (Some(value), Some(parsed)) = (value, parsed)
            && !(Duration::from_secs(1)..=Duration::from_secs(365 * 86_400)).contains(&parsed)
        {
            return Err(at.at(value.span(), key(field), "between 1s and 365 days"));
        }
        Ok(parsed.unwrap_or(default))
    };
    remote.fetch.connect_timeout = positive(
        &config.connect_timeout,
        "connect_timeout",
        remote.fetch.connect_timeout,
    )?;
    remote.fetch.timeout = positive(&config.fetch_timeout, "fetch_timeout", remote.fetch.timeout)?;
    if let Some(limit) = &config.max_response_bytes {
        if *limit.get_ref() < 64 {
            return Err(at.at(limit.span(), key("max_response_bytes"), "at least 64 bytes"));
        }
        remote.fetch.max_bytes = *limit.get_ref();
    }
    let schedule = &mut remote.schedule;
    schedule.refresh_interval = positive(
        &config.refresh_interval,
        "refresh_interval",
        schedule.refresh_interval,
    )?;
    schedule.min_refresh_interval = positive(
        &config.min_refresh_interval,
        "min_refresh_interval",
        schedule.min_refresh_interval,
    )?;
    schedule.max_refresh_interval = positive(
        &config.max_refresh_interval,
        "max_refresh_interval",
        schedule.max_refresh_interval,
    )?;
    schedule.min_refetch_interval = positive(
        &config.min_refetch_interval,
        "min_refetch_interval",
        schedule.min_refetch_interval,
    )?;
    schedule.max_stale = positive(&config.max_stale, "max_stale", schedule.max_stale)?;
    if schedule.min_refresh_interval > schedule.max_refresh_interval {
        // Point at whichever of the two was written.
        let (field, span) = match (&config.min_refresh_interval, &config.max_refresh_interval) {
            (Some(min), _) => ("min_refresh_interval", min.span()),
            (None, Some(max)) => ("max_refresh_interval", max.span()),
            (None, None) => ("min_refresh_interval", span),
        };
        return Err(at.at(
            span,
            key(field),
            "min_refresh_interval cannot exceed max_refresh_interval",
        ));
    }
    remote.startup.timeout = positive(
        &config.startup_timeout,
        "startup_timeout",
        remote.startup.timeout,
    )?;
    remote.startup.allow_without_keys = config
        .allow_start_without_keys
        .as_ref()
        .is_some_and(|flag| *flag.get_ref());
    Ok(Some(remote))
}
