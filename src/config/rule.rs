//! A `[[rule]]`: which requests it covers (hosts, paths, methods,
//! exclusions), which token configurations it accepts and how, the claims it
//! requires and the claims it forwards as headers.
//!
//! Neighbours: the parent [`super`] calls [`rule_of`] from `parse`, once the
//! token configurations it names are built; [`crate::policy`] owns the types.

use toml::Spanned;

use super::ConfigError;
use super::error::Located;
use super::schema::RawRule;
use crate::policy::{
    Action, ClaimRequirement, ClaimTest, Endpoint, ForwardClaim, HostPattern, Mode, PathPattern,
    Rule, TokenConfig,
};

/// Headers a claim may not be forwarded as: they frame the response to the
/// proxy (a second `content-length` desynchronises a keep-alive connection),
/// are hop-by-hop, or carry state or authentication of their own.
pub(super) const FORBIDDEN_FORWARD_HEADERS: [&str; 14] = [
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
pub(super) const RESERVED_HEADERS: [&str; 4] =
    ["x-jwt-sub", "x-jwt-iss", "x-jwt-kid", "x-jwt-payload"];

/// The methods of IANA's HTTP Method Registry (those without a `-`, which
/// method names here cannot hold), and PURGE, which caches use. A method
/// outside it is a typo far more often than a custom method, and a typo
/// silently drops an exclusion or a rule's coverage.
const KNOWN_METHODS: [&str; 39] = [
    "ACL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "CONNECT",
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "OPTIONS",
    "ORDERPATCH",
    "PATCH",
    "POST",
    "PRI",
    "PROPFIND",
    "PROPPATCH",
    "PURGE",
    "PUT",
    "QUERY",
    "REBIND",
    "REPORT",
    "SEARCH",
    "TRACE",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
];

/// Refuses a method name outside [`KNOWN_METHODS`], naming the closest one.
fn known_method(method: &str) -> Result<(), String> {
    if KNOWN_METHODS.contains(&method) {
        return Ok(());
    }
    let closest = KNOWN_METHODS
        .iter()
        .filter(|_| method.len() <= super::error::MAX_SUGGESTED_LEN)
        .map(|known| (super::error::edit_distance(method, known), known))
        .min_by_key(|&(distance, _)| distance)
        .filter(|&(distance, _)| distance <= 2)
        .map(|(_, known)| format!(" (did you mean \"{known}\"?)"))
        .unwrap_or_default();
    Err(format!(
        "\"{method}\" is not an HTTP method{closest}; methods are those of IANA's registry \
         (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, ...) and PURGE"
    ))
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
    if let Some(method) = method {
        known_method(method).map_err(|message| at.at(text.span(), key, message))?;
    }
    let path =
        PathPattern::parse(path).map_err(|error| at.at(text.span(), key, error.to_string()))?;
    Ok(Endpoint {
        method: method.map(Into::into),
        path,
    })
}

pub(super) fn rule_of(
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
        let upper = text.to_ascii_uppercase();
        known_method(&upper)
            .map_err(|message| at.at(method.span(), key(&format!("methods[{i}]")), message))?;
        methods.push(upper.into());
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
        strip_authorization: rule.strip_authorization,
    })
}
