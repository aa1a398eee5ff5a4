//! A `[[token_config]]`: where its tokens are read from (sources), the
//! claim checks (validation), and its keys, local (read here) or fetched
//! (settings from [`super::remote`], keys later from the key manager).
//!
//! Neighbours: the parent [`super`] calls [`token_config`] from `parse`;
//! [`KeySet`] and [`Verifier`] (the engine) parse keys and build verifiers.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::Located;
use super::remote::remote_of;
use super::schema::{RawSource, RawTokenConfig};
use super::{ConfigError, duration};
use crate::jwks::{FetchError, KeySource, RemoteKeys, RemoteSettings, TokenKeys};
use crate::policy::{TokenConfig, TokenSource};
use crate::settings;
use crate::{AlgorithmSet, ClaimName, KeySet, SubjectMatch, Validation, Verifier};

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

pub(super) fn token_config(
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
        TokenKeys::new(
            std::sync::Arc::new(Verifier::without_keys(validation)),
            KeySource::Unavailable(std::sync::Arc::new(remote)),
        ),
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
                format!(
                    "cannot read {}: {error}",
                    super::shown_path(&file, value.get_ref())
                ),
            )
        })?;
        key_files.push(file);
        bytes
    };
    KeySet::parse(&bytes).map_err(|error| at.at(value.span(), key(field), error.to_string()))
}
