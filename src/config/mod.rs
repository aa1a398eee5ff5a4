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
//! Neighbours: `crate::policy` is what this builds; [`KeySet`] (the engine) parses
//! the key files; the control plane ([`crate::control`]) merges the `[server]`
//! layer ([`crate::settings`]) and reloads.

mod error;
mod reload;
mod schema;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::access_log::Destination;
use crate::jwks::{
    AllowedHost, FetchError, FetchSettings, KeySource, Location, Origin, RemoteKeys,
    RemoteSettings, Schedule, Startup, TokenKeys,
};

pub use error::ConfigError;
pub use reload::Reloaded;
pub(crate) use reload::{Reloader, Stamp};

use crate::policy::{
    Action, ClaimRequirement, ClaimTest, DefaultAction, Endpoint, ForwardClaim, Forwarded,
    HostPattern, IpNet, Mode, PathPattern, Policy, Rule, TokenConfig, TokenSource,
};
use crate::server::IoMode;
use crate::settings::{self, AdminListen, ServerLayer};
use crate::{AlgorithmSet, ClaimName, KeySet, SubjectMatch, Validation, Verifier};
use error::Located;
use schema::{RawFile, RawRule, RawServer, RawSource, RawTokenConfig};

/// Headers a claim may not be forwarded as: they frame the response to the
/// proxy (a second `content-length` desynchronises a keep-alive connection),
/// are hop-by-hop, or carry state or authentication of their own.
const FORBIDDEN_FORWARD_HEADERS: [&str; 14] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "host",
    "content-type",
    "cache-control",
    "set-cookie",
    "www-authenticate",
    "location",
];

/// The identity headers every allowed answer carries anyway.
const RESERVED_HEADERS: [&str; 4] = ["x-jwt-sub", "x-jwt-iss", "x-jwt-kid", "x-jwt-payload"];

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
    let forwarded = forwarded(&raw.server, at)?;
    if matches!(forwarded, Forwarded::RequestLine { .. })
        && let Some(first) = raw.server.trusted_proxies.first()
    {
        return Err(at.at(
            first.span(),
            "server.trusted_proxies",
            "only applies with forwarded = \"x-original\" or \"x-forwarded\": the request line needs no trust",
        ));
    }
    let trusted_proxies = raw
        .server
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, net)| {
            IpNet::parse(net.get_ref()).map_err(|e| {
                at.at(
                    net.span(),
                    format!("server.trusted_proxies[{i}]"),
                    e.to_string(),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
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
    })
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

fn duration(value: &Spanned<String>, key: &str, at: Located<'_>) -> Result<Duration, ConfigError> {
    parse_duration(value.get_ref()).ok_or_else(|| {
        at.at(
            value.span(),
            key,
            "expected a duration such as \"500ms\", \"60s\", \"10m\" or \"1h\"",
        )
    })
}

fn positive_duration(
    value: &Option<Spanned<String>>,
    key: &str,
    at: Located<'_>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let parsed = duration(value, key, at)?;
    settings::positive(parsed)
        .map(Some)
        .map_err(|error| at.refused(value.span(), key, error))
}

fn address(
    value: &Option<Spanned<String>>,
    key: &str,
    at: Located<'_>,
) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .as_ref()
        .map(|value| {
            value.get_ref().parse().map_err(|_| {
                at.at(
                    value.span(),
                    key,
                    "expected an address such as \"127.0.0.1:8080\" or \"[::]:8080\"",
                )
            })
        })
        .transpose()
}

fn server_settings(raw: &RawServer, at: Located<'_>) -> Result<ServerLayer, ConfigError> {
    let admin_listen = match &raw.admin_listen {
        Some(value) if value.get_ref() == "off" => Some(AdminListen::Off),
        Some(_) => address(&raw.admin_listen, "server.admin_listen", at)?.map(AdminListen::At),
        None => None,
    };
    let io = match &raw.io {
        None => None,
        Some(value) => Some(match value.get_ref().as_str() {
            "uring" => IoMode::Uring,
            "epoll" => IoMode::Epoll,
            "auto" => IoMode::Auto,
            _ => {
                return Err(at.at(
                    value.span(),
                    "server.io",
                    "expected \"uring\", \"epoll\" or \"auto\"",
                ));
            }
        }),
    };
    let settings = ServerLayer {
        listen: address(&raw.listen, "server.listen", at)?,
        admin_listen,
        verify_listen: address(&raw.verify_listen, "server.verify_listen", at)?,
        shards: raw.shards,
        io,
        forward_payload: raw.forward_payload,
        max_header_bytes: raw.max_header_bytes,
        max_request_line_bytes: raw.max_request_line_bytes,
        max_body_bytes: raw.max_body_bytes,
        max_verify_body_bytes: raw.max_verify_body_bytes,
        max_verify_lines: raw.max_verify_lines,
        max_connections: raw.max_connections,
        header_timeout: positive_duration(&raw.header_timeout, "server.header_timeout", at)?,
        idle_timeout: positive_duration(&raw.idle_timeout, "server.idle_timeout", at)?,
        drain_timeout: positive_duration(&raw.drain_timeout, "server.drain_timeout", at)?,
        drain_delay: raw
            .drain_delay
            .as_ref()
            .map(|value| duration(value, "server.drain_delay", at))
            .transpose()?,
        metrics: raw.metrics,
        access_log: raw.access_log.as_ref().map(|value| {
            match Destination::parse(value.get_ref()) {
                Destination::File(path) if path.is_relative() => {
                    Destination::File(at.file.parent().unwrap_or(Path::new("")).join(path))
                }
                destination => destination,
            }
        }),
        access_log_sample: raw
            .access_log_sample
            .as_ref()
            .map(|sample| {
                settings::sample_rate(*sample.get_ref())
                    .map_err(|error| at.refused(sample.span(), "server.access_log_sample", error))
            })
            .transpose()?,
        summary_interval: raw
            .summary_interval
            .as_ref()
            .map(|value| duration(value, "server.summary_interval", at))
            .transpose()?,
    };
    // Checked against the defaults here, to point at the file; the command
    // line's flags can still change either, so the merged settings are
    // checked again by the same function when they are resolved.
    let defaults = ServerLayer::defaults();
    let line = settings
        .max_request_line_bytes
        .or(defaults.max_request_line_bytes);
    let head = settings.max_header_bytes.or(defaults.max_header_bytes);
    if let (Some(line), Some(head)) = (line, head) {
        settings::head_limits(line, head)
            .map_err(|error| at.whole("server.max_request_line_bytes", error.to_string()))?;
    }
    Ok(settings)
}

fn forwarded(raw: &RawServer, at: Located<'_>) -> Result<Forwarded, ConfigError> {
    let path_prefix: Box<str> = raw
        .path_prefix
        .as_ref()
        .map_or("", |prefix| prefix.get_ref().as_str())
        .into();
    if let Some(prefix) = &raw.path_prefix
        && !prefix.get_ref().is_empty()
        && (!prefix.get_ref().starts_with('/') || prefix.get_ref().ends_with('/'))
    {
        return Err(at.at(
            prefix.span(),
            "server.path_prefix",
            "expected a path such as \"/authz\" (leading slash, no trailing slash)",
        ));
    }
    let Some(style) = &raw.forwarded else {
        return Ok(Forwarded::RequestLine { path_prefix });
    };
    let forwarded = match style.get_ref().as_str() {
        "x-forwarded" => Forwarded::XForwarded,
        "x-original" => Forwarded::XOriginal,
        "request-line" => Forwarded::RequestLine { path_prefix },
        _ => {
            return Err(at.at(
                style.span(),
                "server.forwarded",
                "expected \"x-original\" (nginx auth_request), \"x-forwarded\" (Traefik, Caddy) or \"request-line\" (Envoy)",
            ));
        }
    };
    if !matches!(forwarded, Forwarded::RequestLine { .. })
        && let Some(prefix) = &raw.path_prefix
    {
        return Err(at.at(
            prefix.span(),
            "server.path_prefix",
            "only applies with forwarded = \"request-line\"",
        ));
    }
    Ok(forwarded)
}

fn source_of(
    raw: &Spanned<RawSource>,
    key: &str,
    at: Located<'_>,
) -> Result<TokenSource, ConfigError> {
    let source = raw.get_ref();
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
    };
    let built = match (&source.header, &source.cookie, &source.query) {
        (Some(_), None, None)
            if source.prefix.as_deref().is_some_and(|p| {
                p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }) =>
        {
            return Err(at.at(
                raw.span(),
                key,
                "a prefix is an auth scheme such as \"Bearer\"",
            ));
        }
        (Some(header), None, None) => TokenSource::Header {
            name: header.to_ascii_lowercase().into(),
            scheme: source.prefix.as_deref().map(Into::into),
        },
        (None, Some(cookie), None) if source.prefix.is_none() => TokenSource::Cookie {
            name: cookie.as_str().into(),
        },
        (None, None, Some(query)) if source.prefix.is_none() => TokenSource::Query {
            name: query.as_str().into(),
        },
        _ => {
            return Err(at.at(
                raw.span(),
                key,
                "a source is { header = \"...\", prefix = \"Bearer\" }, { cookie = \"...\" } or { query = \"...\" }",
            ));
        }
    };
    let name = match &built {
        TokenSource::Header { name, .. }
        | TokenSource::Cookie { name }
        | TokenSource::Query { name } => name,
    };
    if !name_ok(name) {
        return Err(at.at(
            raw.span(),
            key,
            "the name is not a valid header, cookie or parameter name",
        ));
    }
    Ok(built)
}

fn token_config(
    raw: &Spanned<RawTokenConfig>,
    index: usize,
    base: &Path,
    at: Located<'_>,
    key_files: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<(TokenConfig, TokenKeys), ConfigError> {
    let key = |field: &str| format!("token_config[{index}].{field}");
    let config = raw.get_ref();
    let name = config.name.get_ref().trim();
    if name.is_empty() {
        return Err(at.at(config.name.span(), key("name"), "must not be empty"));
    }
    let sources: Vec<TokenSource> = match &config.sources {
        None => vec![TokenSource::authorization_bearer()],
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(at.at(list.span(), key("sources"), "lists at least one source"));
            }
            list.get_ref()
                .iter()
                .enumerate()
                .map(|(i, source)| source_of(source, &key(&format!("sources[{i}]")), at))
                .collect::<Result<_, _>>()?
        }
    };
    let keys = match remote_of(config, raw.span(), &key, base, at, key_files)? {
        Some(remote) => {
            return remote_token_config(config, raw, name, sources, remote, &key, at);
        }
        None => keys_of(config, raw.span(), &key, base, at, key_files)?,
    };
    for warning in keys.warnings() {
        warnings.push(format!("token_config {name:?}: {warning}"));
    }
    if keys.is_symmetric() && !config.allow_symmetric_keys {
        return Err(at.at(
            raw.span(),
            key("allow_symmetric_keys"),
            "the keys are HMAC secrets; a gateway that holds the signing secret can also mint tokens. Set allow_symmetric_keys = true to accept that",
        ));
    }
    let algorithms = match &config.algorithms {
        None => keys.algorithms(),
        Some(list) => AlgorithmSet::parse_list(&list.get_ref().join(","))
            .map_err(|error| at.at(list.span(), key("algorithms"), error.to_string()))?,
    };
    let validation = validation_of(config, algorithms, &key, at)?;
    // The allow-list disagrees with the keys: point at the list if it was
    // written, else at the configuration whose keys imply it.
    let span = config
        .algorithms
        .as_ref()
        .map_or_else(|| raw.span(), Spanned::span);
    let verifier = Verifier::new(keys, validation)
        .map_err(|error| at.at(span, key("algorithms"), error.to_string()))?;
    Ok((TokenConfig::new(name, sources), TokenKeys::local(verifier)))
}

/// A token configuration whose keys are fetched: its allow-list must be
/// written out (a fetched key set must not widen it), and it starts without
/// keys until the key manager has fetched them.
fn remote_token_config(
    config: &RawTokenConfig,
    raw: &Spanned<RawTokenConfig>,
    name: &str,
    sources: Vec<TokenSource>,
    remote: RemoteSettings,
    key: &dyn Fn(&str) -> String,
    at: Located<'_>,
) -> Result<(TokenConfig, TokenKeys), ConfigError> {
    let Some(list) = &config.algorithms else {
        return Err(at.at(
            raw.span(),
            key("algorithms"),
            "a fetched key set needs the allow-list written out, such as [\"RS256\"]: keys published by the IdP must not decide which algorithms are accepted",
        ));
    };
    let algorithms = AlgorithmSet::parse_list(&list.get_ref().join(","))
        .map_err(|error| at.at(list.span(), key("algorithms"), error.to_string()))?;
    // As for local keys (`Verifier::new`), but here nothing would say so
    // until every fetch failed for want of a usable key.
    if algorithms.is_empty() {
        return Err(at.at(
            list.span(),
            key("algorithms"),
            format!(
                "{}: a fetched key set needs at least one algorithm, such as [\"RS256\"]",
                crate::VerifierError::NoAlgorithms
            ),
        ));
    }
    if algorithms.has_symmetric() {
        return Err(at.at(
            list.span(),
            key("algorithms"),
            "HMAC algorithms need a shared secret, which is never fetched from a URL",
        ));
    }
    if config.issuer.is_none() {
        return Err(at.at(
            raw.span(),
            key("issuer"),
            "fetched keys need the issuer checked: identity providers share key sets between tenants and applications, whose tokens would all pass",
        ));
    }
    let validation = validation_of(config, algorithms, key, at)?;
    let span = config
        .ca_file
        .as_ref()
        .map_or_else(|| raw.span(), Spanned::span);
    // `remote_of` has checked the URL already; a CA file is only read here.
    let field = match RemoteKeys::new(remote) {
        Ok(remote) => Ok(remote),
        Err(error @ FetchError::CaFile { .. }) => Err(("ca_file", span, error)),
        Err(error) => Err(("jwks_url", raw.span(), error)),
    };
    let remote =
        field.map_err(|(field, span, error)| at.at(span, key(field), error.to_string()))?;
    Ok((
        TokenConfig::new(name, sources),
        TokenKeys {
            verifier: std::sync::Arc::new(Verifier::without_keys(validation)),
            source: KeySource::Unavailable(std::sync::Arc::new(remote)),
        },
    ))
}

/// The claim checks of a token configuration.
fn validation_of(
    config: &RawTokenConfig,
    algorithms: AlgorithmSet,
    key: &dyn Fn(&str) -> String,
    at: Located<'_>,
) -> Result<Validation, ConfigError> {
    let mut validation = Validation::new(algorithms);
    if let Some(leeway) = &config.leeway {
        let leeway_value = settings::leeway(duration(leeway, &key("leeway"), at)?)
            .map_err(|error| at.refused(leeway.span(), key("leeway"), error))?;
        validation = validation.leeway(leeway_value);
    }
    if let Some(issuer) = &config.issuer {
        validation = validation.issuer(issuer);
    }
    for audience in &config.audiences {
        validation = validation.audience(audience);
    }
    if let Some(require) = &config.require {
        validation = validation.require(
            require
                .iter()
                .filter_map(|name| name.parse::<ClaimName>().ok()),
        );
    }
    if let Some(lifetime) = &config.max_lifetime {
        validation = validation.max_lifetime(duration(lifetime, &key("max_lifetime"), at)?);
    }
    if let Some(typ) = &config.typ {
        validation = validation.typ(typ);
    }
    match (&config.subject, &config.subject_prefix) {
        (Some(_), Some(prefix)) => {
            return Err(at.at(
                prefix.span(),
                key("subject_prefix"),
                "give subject or subject_prefix, not both",
            ));
        }
        (Some(subject), None) => {
            validation = validation.subject(SubjectMatch::Exact(subject.get_ref().as_str().into()))
        }
        (None, Some(prefix)) => {
            validation = validation.subject(SubjectMatch::Prefix(prefix.get_ref().as_str().into()))
        }
        (None, None) => {}
    }
    if let Some(limit) = &config.max_token_len {
        let bytes = settings::token_length(*limit.get_ref())
            .map_err(|error| at.refused(limit.span(), key("max_token_len"), error))?;
        validation = validation.max_token_len(bytes);
    }
    Ok(validation)
}

/// The remote key source of a token configuration, if it has one
/// (`jwks_url` or `issuer_discovery = true`); remote-only settings without
/// one are an error.
fn remote_of(
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
                format!("cannot read {}: {error}", path.display()),
            ));
        }
        key_files.push(path.clone());
        remote.fetch.ca_file = Some(path);
    }
    // Bounded both ways: below a second the IdP is hammered (a refetch per
    // unknown kid), beyond a year deadlines stop meaning anything.
    let positive = |value: &Option<Spanned<String>>, field: &str, default: Duration| {
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

fn keys_of(
    config: &RawTokenConfig,
    span: std::ops::Range<usize>,
    key: &dyn Fn(&str) -> String,
    base: &Path,
    at: Located<'_>,
    key_files: &mut Vec<PathBuf>,
) -> Result<KeySet, ConfigError> {
    let given = [
        config.jwks_file.as_ref().map(|v| ("jwks_file", v)),
        config.jwks.as_ref().map(|v| ("jwks", v)),
        config
            .public_key_file
            .as_ref()
            .map(|v| ("public_key_file", v)),
    ];
    let mut present = given.iter().flatten();
    let Some((field, value)) = present.next() else {
        return Err(at.at(
            span,
            key("jwks_file"),
            "a token configuration needs keys: jwks_file, jwks (inline) or public_key_file",
        ));
    };
    if let Some((other, value)) = present.next() {
        return Err(at.at(
            value.span(),
            key(other),
            format!("give one key source; {field} is already set"),
        ));
    }
    let bytes = if *field == "jwks" {
        value.get_ref().clone().into_bytes()
    } else {
        let file = base.join(value.get_ref());
        let bytes = std::fs::read(&file).map_err(|error| {
            at.at(
                value.span(),
                key(field),
                format!("cannot read {}: {error}", file.display()),
            )
        })?;
        key_files.push(file);
        bytes
    };
    KeySet::parse(&bytes).map_err(|error| at.at(value.span(), key(field), error.to_string()))
}

fn endpoint(text: &Spanned<String>, key: &str, at: Located<'_>) -> Result<Endpoint, ConfigError> {
    let value = text.get_ref().trim();
    let (method, path) = match value.split_once(' ') {
        Some((method, path)) => (Some(method), path.trim()),
        None => (None, value),
    };
    if let Some(method) = method
        && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(at.at(
            text.span(),
            key,
            "an endpoint is \"METHOD /path\" or \"/path\", the method in upper case",
        ));
    }
    let path =
        PathPattern::parse(path).map_err(|error| at.at(text.span(), key, error.to_string()))?;
    Ok(Endpoint {
        method: method.map(Into::into),
        path,
    })
}

fn rule_of(
    raw: &Spanned<RawRule>,
    index: usize,
    configs: &[TokenConfig],
    at: Located<'_>,
) -> Result<Rule, ConfigError> {
    let key = |field: &str| format!("rule[{index}].{field}");
    let rule = raw.get_ref();
    if rule.name.get_ref().trim().is_empty() {
        return Err(at.at(rule.name.span(), key("name"), "must not be empty"));
    }
    let hosts = rule
        .hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            HostPattern::parse(host.get_ref())
                .map_err(|e| at.at(host.span(), key(&format!("hosts[{i}]")), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let paths = rule
        .paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            PathPattern::parse(path.get_ref())
                .map_err(|e| at.at(path.span(), key(&format!("paths[{i}]")), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut methods: Vec<Box<str>> = Vec::with_capacity(rule.methods.len());
    for (i, method) in rule.methods.iter().enumerate() {
        let text = method.get_ref();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(at.at(
                method.span(),
                key(&format!("methods[{i}]")),
                "expected a method name such as \"GET\"",
            ));
        }
        methods.push(text.to_ascii_uppercase().into());
    }
    if rule.token_configs.is_empty() {
        return Err(at.at(
            raw.span(),
            key("token_configs"),
            "a rule names at least one token configuration",
        ));
    }
    let mut token_configs = Vec::with_capacity(rule.token_configs.len());
    for (i, name) in rule.token_configs.iter().enumerate() {
        let Some(position) = configs
            .iter()
            .position(|config| &*config.name == name.get_ref().as_str())
        else {
            let known: Vec<&str> = configs.iter().map(|config| &*config.name).collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(at.at(
                name.span(),
                key(&format!("token_configs[{i}]")),
                format!(
                    "no token configuration is named {:?} (defined: {})",
                    name.get_ref(),
                    known
                ),
            ));
        };
        token_configs.push(position);
    }
    let mode = match rule.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("any", _)) => Mode::Any,
        Some(("all", _)) => Mode::All,
        Some((_, span)) => return Err(at.at(span, key("mode"), "expected \"any\" or \"all\"")),
    };
    let action = match rule
        .action
        .as_ref()
        .map(|a| (a.get_ref().as_str(), a.span()))
    {
        None | Some(("block", _)) => Action::Block,
        Some(("log", _)) => Action::Log,
        Some((_, span)) => return Err(at.at(span, key("action"), "expected \"block\" or \"log\"")),
    };
    let allow_missing = match rule
        .on_missing
        .as_ref()
        .map(|m| (m.get_ref().as_str(), m.span()))
    {
        None | Some(("deny", _)) => false,
        Some(("allow", _)) => true,
        Some((_, span)) => {
            return Err(at.at(span, key("on_missing"), "expected \"deny\" or \"allow\""));
        }
    };
    let exclude = rule
        .exclude
        .iter()
        .enumerate()
        .map(|(i, text)| endpoint(text, &key(&format!("exclude[{i}]")), at))
        .collect::<Result<Vec<_>, _>>()?;
    let mut require_claims = Vec::with_capacity(rule.require_claims.len());
    for (i, requirement) in rule.require_claims.iter().enumerate() {
        let raw_requirement = requirement.get_ref();
        let bad_word = raw_requirement
            .contains
            .as_deref()
            .is_some_and(|word| word.is_empty() || word.contains(char::is_whitespace));
        if raw_requirement.claim.trim().is_empty() || bad_word {
            return Err(at.at(
                requirement.span(),
                key(&format!("require_claims[{i}]")),
                "claim is a claim name (or dotted path) and contains one word without spaces",
            ));
        }
        let test = match (&raw_requirement.contains, &raw_requirement.equals) {
            (Some(word), None) => ClaimTest::Contains(word.as_str().into()),
            (None, Some(value)) => ClaimTest::Equals(value.as_str().into()),
            _ => {
                return Err(at.at(
                    requirement.span(),
                    key(&format!("require_claims[{i}]")),
                    "a requirement is { claim = \"scope\", contains = \"read:orders\" } or { claim = \"class\", equals = \"admin\" }",
                ));
            }
        };
        require_claims.push(ClaimRequirement {
            claim: raw_requirement.claim.as_str().into(),
            test,
        });
    }
    let mut forward_claims = Vec::with_capacity(rule.forward_claims.len());
    for (claim, header) in &rule.forward_claims {
        let name = header.get_ref().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(at.at(
                header.span(),
                key(&format!("forward_claims.{claim}")),
                "expected a header name such as \"x-jwt-scope\"",
            ));
        }
        if FORBIDDEN_FORWARD_HEADERS.contains(&name.as_str()) {
            return Err(at.at(
                header.span(),
                key(&format!("forward_claims.{claim}")),
                "that header frames or routes the response (or sets state); forward claims in x-* headers",
            ));
        }
        if name.starts_with("x-jwtgate-") {
            return Err(at.at(
                header.span(),
                key(&format!("forward_claims.{claim}")),
                "x-jwtgate-* headers are jwtgate's own",
            ));
        }
        forward_claims.push(ForwardClaim {
            claim: claim.as_str().into(),
            header: name.into(),
        });
    }
    Ok(Rule {
        // Numbered by `Policy::new`.
        index: 0,
        name: rule.name.get_ref().as_str().into(),
        hosts: hosts.into(),
        paths: paths.into(),
        methods: methods.into(),
        token_configs: token_configs.into(),
        mode,
        action,
        exclude: exclude.into(),
        allow_missing,
        require_claims: require_claims.into(),
        forward_claims: forward_claims.into(),
        bypass_cors_preflight: rule.bypass_cors_preflight,
    })
}

#[cfg(test)]
pub(crate) mod tests;
