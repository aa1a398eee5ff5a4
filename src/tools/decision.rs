//! `check-config --request ... --header ... --token ...`: a sample request
//! decided by the service's own decision code, and explained: the check
//! request a proxy following the recipe sends for it, the answer, the rule,
//! the token configuration and the reason, and what each of the rule's
//! configurations said of each token found.
//!
//! What a proxy really sends is what the access log's `reason` and the
//! stderr notices show; this shows what it should send and what follows.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::authz::{Authorizer, AuthzOptions, Denials, Origin};
use crate::config::Loaded;
use crate::http::request::{HeadStatus, HeaderSlots, Limits, parse_head};
use crate::http::{Framing, OriginalRequest, RequestHead};
use crate::jwks::TokenKeys;
use crate::metrics::Face;
use crate::policy::{Forwarded, Found, PathBuffers, Route, TokenConfig, TokenSource};
use crate::snapshot::Snapshot;
use crate::{Outcome, Rejection, Scratch, Stage, UnixTime};

/// A sample request: `"GET https://api.example.com/v1/orders?x=1"` (or a
/// path alone), the client's headers (`"Name: value"`), and a token to put
/// where the rule it meets reads tokens.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Method and URL.
    pub request: &'a str,
    /// Headers of the client's request.
    pub headers: &'a [String],
    /// A token, placed in the first source of the rule's first configuration.
    pub token: Option<&'a str>,
}

/// The client's request, split.
struct Client<'a> {
    method: &'a str,
    host: &'a str,
    target: String,
}

impl<'a> Client<'a> {
    fn parse(request: &'a str) -> Client<'a> {
        let (method, url) = request
            .trim()
            .split_once(' ')
            .unwrap_or(("GET", request.trim()));
        let url = url.trim();
        let (host, target) = match url.split_once("://") {
            Some((_, rest)) => match rest.find(['/', '?']) {
                Some(at) => rest.split_at(at),
                None => (rest, "/"),
            },
            None => ("", url),
        };
        Client {
            method,
            host,
            target: if target.starts_with('?') {
                format!("/{target}")
            } else {
                target.to_owned()
            },
        }
    }
}

/// Headers the check request gets from `--request` (or from the recipe),
/// never from `--header`.
const SET_BY_THE_RECIPE: [&str; 9] = [
    "host",
    "x-original-method",
    "x-original-uri",
    "x-original-url",
    "x-forwarded-method",
    "x-forwarded-host",
    "x-forwarded-uri",
    "content-length",
    "transfer-encoding",
];

/// Why `sample` cannot be made into a request, if it cannot.
fn unfit(sample: &Sample<'_>) -> Option<String> {
    let mut texts = std::iter::once(sample.request)
        .chain(sample.headers.iter().map(String::as_str))
        .chain(sample.token);
    if texts.any(|text| text.contains(['\r', '\n'])) {
        return Some("a sample request, header or token holds a line break".to_owned());
    }
    for header in sample.headers {
        let name = header
            .split_once(':')
            .map(|(name, _)| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty() && !name.contains(' '));
        let Some(name) = name else {
            return Some(format!("--header {header:?} is not \"Name: value\""));
        };
        if SET_BY_THE_RECIPE.contains(&name.as_str()) {
            return Some(format!(
                "--header {name} is what --request and the forwarded style set; give it in --request"
            ));
        }
    }
    None
}

/// `text` with `token` cut short: a token is a credential, even in a
/// terminal.
fn abbreviated(text: &str, token: Option<&str>) -> String {
    match token.filter(|token| token.len() > 24) {
        Some(token) => {
            let shown: String = token.chars().take(16).collect();
            text.replace(token, &format!("{shown}...({} bytes)", token.len()))
        }
        None => text.to_owned(),
    }
}

/// `Name: value` lines of `sample.headers`, the token added where `loaded`
/// reads it for this request (a query source goes into `client.target`).
fn client_headers(loaded: &Loaded, sample: &Sample<'_>, client: &mut Client<'_>) -> String {
    let mut headers = String::new();
    for header in sample.headers {
        let _ = write!(headers, "{}\r\n", header.trim());
    }
    let Some(token) = sample.token else {
        return headers;
    };
    let source = first_source(loaded, client, token.as_bytes());
    match source {
        Some(TokenSource::Header { name, scheme }) => {
            let scheme = scheme
                .as_deref()
                .map(|s| format!("{s} "))
                .unwrap_or_default();
            let _ = write!(headers, "{name}: {scheme}{token}\r\n");
        }
        Some(TokenSource::Cookie { name }) => {
            let _ = write!(headers, "cookie: {name}={token}\r\n");
        }
        Some(TokenSource::Query { name }) => {
            let joiner = if client.target.contains('?') {
                '&'
            } else {
                '?'
            };
            let _ = write!(client.target, "{joiner}{name}={token}");
        }
        None => {
            let _ = write!(headers, "authorization: Bearer {token}\r\n");
        }
    }
    headers
}

/// The first token source of the configuration of the rule `client` meets
/// that accepts the token's algorithm and `typ` (else of its first), if it
/// meets a rule that checks tokens.
fn first_source<'p>(
    loaded: &'p Loaded,
    client: &Client<'_>,
    token: &[u8],
) -> Option<&'p TokenSource> {
    let policy = &loaded.policy;
    let original = OriginalRequest {
        method: client.method.as_bytes(),
        host: client.host.as_bytes(),
        path: client.target.as_bytes(),
    };
    let mut buffers = PathBuffers::default();
    let routed = policy
        .route_target(&original, None, false, &mut buffers)
        .ok()?;
    let Route::Check(rule) = routed.route else {
        return None;
    };
    let accepts = |&&index: &&usize| {
        loaded.keys.get(index).is_some_and(|keys| {
            let verifier = keys.verifier();
            verifier.screen(token, &mut verifier.scratch()).is_ok()
        })
    };
    let index = rule
        .token_configs
        .iter()
        .find(accepts)
        .or(rule.token_configs.first())?;
    policy.configs.get(*index)?.sources.first()
}

/// The check request a proxy following jwtgate's recipe for `forwarded`
/// sends for `client`.
fn check_request(forwarded: &Forwarded, client: &Client<'_>, headers: &str) -> String {
    let (method, host, target) = (client.method, client.host, &client.target);
    match forwarded {
        Forwarded::XOriginal => format!(
            "GET /_jwtgate HTTP/1.1\r\nhost: {host}\r\nx-original-method: {method}\r\n\
             x-original-uri: {target}\r\n{headers}\r\n"
        ),
        Forwarded::XOriginalUrl => format!(
            "GET /_jwtgate HTTP/1.1\r\nhost: jwtgate\r\nx-original-method: {method}\r\n\
             x-original-url: https://{host}{target}\r\n{headers}\r\n"
        ),
        Forwarded::XForwarded => format!(
            "GET / HTTP/1.1\r\nhost: jwtgate\r\nx-forwarded-method: {method}\r\n\
             x-forwarded-host: {host}\r\nx-forwarded-uri: {target}\r\n{headers}\r\n"
        ),
        Forwarded::RequestLine { path_prefix } => {
            format!("{method} {path_prefix}{target} HTTP/1.1\r\nhost: {host}\r\n{headers}\r\n")
        }
    }
}

fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::Read => "reading the token",
        Stage::Algorithm => "the algorithm allow-list",
        Stage::Type => "the typ",
        Stage::KeyLookup => "finding a key for its kid",
        Stage::KeySet => "the key set (none usable)",
        Stage::Signature => "the signature",
        Stage::Claims => "the claims",
        Stage::Revocation => "the revocations",
        _ => "a later check",
    }
}

/// What one configuration says of one token, as the service would check it.
fn config_verdict(keys: &TokenKeys, token: &[u8], now: UnixTime, scratch: &mut Scratch) -> String {
    let verifier = keys.verifier();
    let result: Result<(), Rejection> = if keys.available() {
        verifier.verify(token, now, scratch).map(|_| ())
    } else {
        verifier.screen(token, scratch).and(Err(Rejection::new(
            Outcome::KeysUnavailable,
            "the configuration has no usable key set (a fetched one is not fetched by check-config)",
        )))
    };
    match result {
        Ok(()) => "valid".to_owned(),
        Err(rejection) => format!(
            "{} at {}: {}",
            rejection.outcome().name(),
            stage_text(rejection.stage()),
            rejection.detail()
        ),
    }
}

/// Every token each of the rule's configurations finds, and what it says.
fn per_config(
    config: &TokenConfig,
    keys: &TokenKeys,
    head: &RequestHead<'_, '_>,
    query: &[u8],
    now: UnixTime,
    out: &mut String,
) {
    let mut scratch = keys.verifier().scratch();
    let mut found = false;
    for source in config.sources.iter() {
        let said = match source.find(head, query) {
            Found::Absent => continue,
            Found::Malformed(detail) => format!("malformed: {detail}"),
            Found::Token(token) => config_verdict(keys, token, now, &mut scratch),
        };
        found = true;
        let _ = writeln!(out, "      {}: {said}", config.name);
    }
    if !found {
        let _ = writeln!(out, "      {}: no token in its sources", config.name);
    }
}

/// The decision on `sample` under `loaded`, at `now`, explained.
pub fn explain(
    loaded: &Loaded,
    options: AuthzOptions,
    sample: &Sample<'_>,
    now: UnixTime,
) -> String {
    let policy = &loaded.policy;
    let sample = &Sample {
        token: sample.token.map(str::trim),
        ..*sample
    };
    if let Some(why) = unfit(sample) {
        return format!("  {}\n    refused: {why}\n", sample.request.escape_debug());
    }
    let mut client = Client::parse(sample.request);
    if client.host.is_empty() {
        return format!(
            "  {}\n    refused: give the URL with its host, as in \"GET https://api.example.com/v1/orders\"\n",
            sample.request
        );
    }
    let headers = client_headers(loaded, sample, &mut client);
    let request = check_request(&policy.forwarded, &client, &headers);
    let mut out = String::new();
    let _ = writeln!(out, "  {} {}{}", client.method, client.host, client.target);
    let _ = writeln!(out, "    check request as the recipe's proxy sends it:");
    for line in request.lines().filter(|line| !line.is_empty()) {
        let _ = writeln!(out, "      {}", abbreviated(line, sample.token));
    }
    let mut slots = HeaderSlots::default();
    let head = match parse_head(request.as_bytes(), &mut slots, Limits::default()) {
        Ok(HeadStatus::Complete(head)) => head,
        Ok(HeadStatus::Partial) => {
            let _ = writeln!(out, "    not a complete request");
            return out;
        }
        Err(error) => {
            let _ = writeln!(out, "    answer: {} ({error})", error.status());
            return out;
        }
    };
    let snapshot = Snapshot::new(loaded.policy.clone(), loaded.keys.clone());
    let shared = Arc::new(ArcSwap::from_pointee(snapshot));
    let options = AuthzOptions {
        clock: crate::authz::Clock::Fixed(now),
        ..options
    };
    let mut authorizer =
        Authorizer::new(Arc::clone(&shared), options, Arc::new(Denials::default()))
            .without_notices();
    // From a peer whose forwarded headers are believed, as the proxy's are.
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let peer = if policy.trusts(loopback) {
        loopback
    } else {
        policy
            .trusted_proxies
            .first()
            .map_or(loopback, |net| net.network())
    };
    let framing = Framing {
        peer,
        ..Framing::default()
    };
    let mut answer = Vec::new();
    let rule = authorizer.decide_from(
        Face::Http,
        &head,
        Origin::Forwarded,
        framing,
        &mut answer,
        |summary, bytes| {
            let text = String::from_utf8_lossy(bytes);
            let status = text.lines().next().unwrap_or_default().to_owned();
            let _ = writeln!(
                out,
                "    answer: {} (outcome {}, action {}{}{})",
                status.trim_start_matches("HTTP/1.1 "),
                summary.outcome_name(),
                summary.action_name(),
                summary
                    .rule()
                    .map(|rule| format!(", rule {}", rule.name))
                    .unwrap_or_default(),
                match summary.token_config() {
                    "" => String::new(),
                    name => format!(", token configuration {name}"),
                },
            );
            if !summary.reason().is_empty() {
                let _ = writeln!(out, "    reason: {}", summary.reason());
            }
            for line in text.lines().skip(1) {
                if line.starts_with("x-jwt") {
                    let _ = writeln!(out, "      {line}");
                }
            }
            summary.rule().map(|rule| rule.token_configs.clone())
        },
    );
    if let Some(configs) = rule {
        let query = client
            .target
            .split_once('?')
            .map_or(&b""[..], |(_, query)| query.as_bytes());
        let _ = writeln!(
            out,
            "    what each of the rule's token configurations says:"
        );
        let loaded_snapshot = shared.load();
        for index in configs {
            if let (Some(config), Some(keys)) = (
                loaded_snapshot.policy.configs.get(index),
                loaded_snapshot.keys.get(index),
            ) {
                per_config(config, keys, &head, query, now, &mut out);
            }
        }
    }
    out
}
