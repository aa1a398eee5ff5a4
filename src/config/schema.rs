//! The file's shape for serde: every table refuses unknown keys (a typo is an
//! error, not a silently ignored setting), and values that later checks may
//! refuse keep their spans for the error message.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A duration as written: a string with a unit (`"60s"`). A bare number is
/// refused with the string to write instead, since its unit is anyone's guess.
#[derive(Debug)]
pub(crate) struct DurationText(pub(crate) String);

impl std::ops::Deref for DurationText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"500ms\", \"60s\", \"10m\" or \"1h\"")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DurationText, E> {
                Ok(DurationText(text.to_owned()))
            }

            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<DurationText, E> {
                Err(bare_number(number))
            }

            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<DurationText, E> {
                Err(bare_number(number))
            }

            fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<DurationText, E> {
                Err(bare_number(number))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

fn bare_number<E: serde::de::Error>(number: impl std::fmt::Display) -> E {
    E::custom(format_args!(
        "a duration is a string with its unit, such as \"{number}s\" or \"{number}ms\", not a bare {number}"
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) default_action: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) token_config: Vec<Spanned<RawTokenConfig>>,
    #[serde(default)]
    pub(crate) rule: Vec<Spanned<RawRule>>,
    pub(crate) revocation: Option<Spanned<RawRevocation>>,
}

/// `[revocation]`: see `config/revocation.rs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRevocation {
    pub(crate) file: Option<Spanned<String>>,
    pub(crate) redis_url: Option<Spanned<String>>,
    pub(crate) key_prefix: Option<Spanned<String>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) max_stale: Option<Spanned<DurationText>>,
    pub(crate) on_unavailable: Option<Spanned<String>>,
    pub(crate) resync_interval: Option<Spanned<DurationText>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) listen: Option<Spanned<String>>,
    pub(crate) admin_listen: Option<Spanned<String>>,
    pub(crate) verify_listen: Option<Spanned<String>>,
    pub(crate) grpc_listen: Option<Spanned<String>>,
    pub(crate) grpc_max_message_bytes: Option<Spanned<usize>>,
    pub(crate) grpc_max_concurrent_streams: Option<Spanned<u32>>,
    pub(crate) grpc_keepalive_interval: Option<Spanned<DurationText>>,
    pub(crate) grpc_keepalive_timeout: Option<Spanned<DurationText>>,
    pub(crate) grpc_idle_timeout: Option<Spanned<DurationText>>,
    pub(crate) shards: Option<usize>,
    pub(crate) io: Option<Spanned<String>>,
    pub(crate) forwarded: Option<Spanned<String>>,
    pub(crate) path_prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<Spanned<String>>,
    pub(crate) forward_payload: Option<bool>,
    pub(crate) max_header_bytes: Option<usize>,
    pub(crate) max_request_line_bytes: Option<usize>,
    pub(crate) max_body_bytes: Option<u64>,
    pub(crate) max_verify_body_bytes: Option<u64>,
    pub(crate) max_verify_lines: Option<usize>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_queue_delay: Option<Spanned<DurationText>>,
    pub(crate) header_timeout: Option<Spanned<DurationText>>,
    pub(crate) idle_timeout: Option<Spanned<DurationText>>,
    pub(crate) drain_timeout: Option<Spanned<DurationText>>,
    pub(crate) drain_delay: Option<Spanned<DurationText>>,
    pub(crate) drain_close_spread: Option<Spanned<DurationText>>,
    pub(crate) metrics: Option<bool>,
    pub(crate) access_log: Option<Spanned<String>>,
    pub(crate) access_log_sample: Option<Spanned<f64>>,
    pub(crate) summary_interval: Option<Spanned<DurationText>>,
    pub(crate) token_cache_entries: Option<Spanned<usize>>,
    pub(crate) token_cache_max_age: Option<Spanned<DurationText>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub(crate) header: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) cookie: Option<String>,
    pub(crate) query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokenConfig {
    pub(crate) name: Spanned<String>,
    pub(crate) sources: Option<Spanned<Vec<Spanned<RawSource>>>>,
    pub(crate) jwks_file: Option<Spanned<String>>,
    pub(crate) jwks: Option<Spanned<String>>,
    pub(crate) public_key_file: Option<Spanned<String>>,
    pub(crate) algorithms: Option<Spanned<Vec<String>>>,
    pub(crate) issuer: Option<String>,
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: Option<Spanned<DurationText>>,
    pub(crate) require: Option<Vec<String>>,
    pub(crate) max_lifetime: Option<Spanned<DurationText>>,
    pub(crate) typ: Option<String>,
    pub(crate) subject: Option<Spanned<String>>,
    pub(crate) subject_prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) allow_symmetric_keys: bool,
    pub(crate) max_token_len: Option<Spanned<usize>>,
    pub(crate) jwks_url: Option<Spanned<String>>,
    pub(crate) issuer_discovery: Option<Spanned<bool>>,
    pub(crate) danger_allow_http: Option<Spanned<bool>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) connect_timeout: Option<Spanned<DurationText>>,
    pub(crate) fetch_timeout: Option<Spanned<DurationText>>,
    pub(crate) max_response_bytes: Option<Spanned<u64>>,
    pub(crate) refresh_interval: Option<Spanned<DurationText>>,
    pub(crate) min_refresh_interval: Option<Spanned<DurationText>>,
    pub(crate) max_refresh_interval: Option<Spanned<DurationText>>,
    pub(crate) min_refetch_interval: Option<Spanned<DurationText>>,
    pub(crate) max_stale: Option<Spanned<DurationText>>,
    pub(crate) startup_timeout: Option<Spanned<DurationText>>,
    pub(crate) allow_start_without_keys: Option<Spanned<bool>>,
    pub(crate) jwks_allowed_hosts: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequirement {
    pub(crate) claim: String,
    pub(crate) contains: Option<String>,
    pub(crate) equals: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) methods: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) token_configs: Vec<Spanned<String>>,
    pub(crate) mode: Option<Spanned<String>>,
    pub(crate) action: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) exclude: Vec<Spanned<String>>,
    pub(crate) on_missing: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) require_claims: Vec<Spanned<RawRequirement>>,
    #[serde(default)]
    pub(crate) forward_claims: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(crate) bypass_cors_preflight: bool,
    #[serde(default)]
    pub(crate) strip_authorization: bool,
}
