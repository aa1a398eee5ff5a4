//! The `[server]` table: the settings it names (a [`ServerLayer`], merged
//! with defaults and flags by [`crate::settings`]), how the original request
//! is forwarded, and which proxies are trusted to forward it.
//!
//! Neighbours: the parent [`super`] calls these from `parse`; the types are
//! [`crate::settings`]' and [`crate::policy`]'s.

use std::net::SocketAddr;
use std::path::Path;

use toml::Spanned;

use super::error::Located;
use super::schema::RawServer;
use super::{ConfigError, duration, positive_duration};
use crate::access_log::Destination;
use crate::policy::{Forwarded, IpNet};
use crate::server::IoMode;
use crate::settings::{self, AdminListen, ServerLayer};

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

pub(super) fn server_settings(
    raw: &RawServer,
    at: Located<'_>,
) -> Result<ServerLayer, ConfigError> {
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
        grpc_listen: address(&raw.grpc_listen, "server.grpc_listen", at)?,
        grpc_max_message_bytes: raw
            .grpc_max_message_bytes
            .as_ref()
            .map(|bytes| {
                settings::grpc_message_bytes(*bytes.get_ref()).map_err(|error| {
                    at.refused(bytes.span(), "server.grpc_max_message_bytes", error)
                })
            })
            .transpose()?,
        grpc_max_concurrent_streams: raw
            .grpc_max_concurrent_streams
            .as_ref()
            .map(|streams| {
                settings::grpc_streams(*streams.get_ref()).map_err(|error| {
                    at.refused(streams.span(), "server.grpc_max_concurrent_streams", error)
                })
            })
            .transpose()?,
        grpc_keepalive_interval: positive_duration(
            &raw.grpc_keepalive_interval,
            "server.grpc_keepalive_interval",
            at,
        )?,
        grpc_keepalive_timeout: positive_duration(
            &raw.grpc_keepalive_timeout,
            "server.grpc_keepalive_timeout",
            at,
        )?,
        grpc_idle_timeout: positive_duration(
            &raw.grpc_idle_timeout,
            "server.grpc_idle_timeout",
            at,
        )?,
        shards: raw.shards,
        io,
        forward_payload: raw.forward_payload,
        max_header_bytes: raw.max_header_bytes,
        max_request_line_bytes: raw.max_request_line_bytes,
        max_body_bytes: raw.max_body_bytes,
        max_verify_body_bytes: raw.max_verify_body_bytes,
        max_verify_lines: raw.max_verify_lines,
        max_connections: raw.max_connections,
        max_queue_delay: raw
            .max_queue_delay
            .as_ref()
            .map(|value| duration(value, "server.max_queue_delay", at))
            .transpose()?,
        header_timeout: positive_duration(&raw.header_timeout, "server.header_timeout", at)?,
        idle_timeout: positive_duration(&raw.idle_timeout, "server.idle_timeout", at)?,
        drain_timeout: positive_duration(&raw.drain_timeout, "server.drain_timeout", at)?,
        drain_delay: raw
            .drain_delay
            .as_ref()
            .map(|value| duration(value, "server.drain_delay", at))
            .transpose()?,
        drain_close_spread: raw
            .drain_close_spread
            .as_ref()
            .map(|value| duration(value, "server.drain_close_spread", at))
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
        token_cache_entries: raw
            .token_cache_entries
            .as_ref()
            .map(|entries| {
                settings::cache_entries(*entries.get_ref()).map_err(|error| {
                    at.refused(entries.span(), "server.token_cache_entries", error)
                })
            })
            .transpose()?,
        token_cache_max_age: raw
            .token_cache_max_age
            .as_ref()
            .map(|value| {
                let age = duration(value, "server.token_cache_max_age", at)?;
                settings::cache_max_age(age)
                    .map_err(|error| at.refused(value.span(), "server.token_cache_max_age", error))
            })
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

pub(super) fn forwarded(raw: &RawServer, at: Located<'_>) -> Result<Forwarded, ConfigError> {
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
        "x-original-url" => Forwarded::XOriginalUrl,
        "request-line" => Forwarded::RequestLine { path_prefix },
        _ => {
            return Err(at.at(
                style.span(),
                "server.forwarded",
                "expected \"x-original\" (nginx auth_request), \"x-original-url\" (Kubernetes ingress-nginx), \"x-forwarded\" (Traefik, Caddy) or \"request-line\" (Envoy)",
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

/// The proxies whose forwarded headers are believed: only with a forwarding
/// style that reads them, or a gRPC face (whose peers state the whole
/// request). With the request-line style they concern only the gRPC face.
pub(super) fn trusted_proxies(
    raw: &RawServer,
    forwarded: &Forwarded,
    at: Located<'_>,
) -> Result<Vec<IpNet>, ConfigError> {
    if matches!(forwarded, Forwarded::RequestLine { .. })
        && raw.grpc_listen.is_none()
        && let Some(first) = raw.trusted_proxies.first()
    {
        return Err(at.at(
            first.span(),
            "server.trusted_proxies",
            "only applies with forwarded = \"x-original\", \"x-original-url\" or \"x-forwarded\", or to the gRPC face's peers with server.grpc_listen: the request line needs no trust",
        ));
    }
    raw.trusted_proxies
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
        .collect()
}
