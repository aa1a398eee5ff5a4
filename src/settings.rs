//! Settings described once. Each server setting is declared here with its
//! type and default, exactly once; the configuration file's `[server]` table
//! and the command line's flags each produce a [`ServerLayer`] of the
//! settings they name, and the layers are merged field by field: defaults,
//! then the file, then flags ([`ServerLayer::over`]). Every cap a setting
//! has (and the token settings' caps: leeway, token length) is checked by one
//! function here, which the command line and the file both call, so that the
//! two cannot disagree about what is allowed.
//!
//! Neighbours: [`crate::config`] reads the `[server]` table into a layer and
//! locates errors in the file; `main.rs` maps flags to a layer; the control
//! plane ([`crate::control`]) merges and resolves them into
//! [`ServeOptions`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::CacheSettings;
use crate::access_log::{AccessLogOptions, Destination};
use crate::authz::{AuthzOptions, BatchLimits, Clock};
use crate::grpc::GrpcOptions;
use crate::http::Limits;
use crate::server::{ConnectionLimits, IoMode, ServeOptions, Sharing};

/// Why a setting's value is refused. The text reads after the setting's name
/// (`--idle-timeout: …`, `server.idle_timeout: …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingError {
    /// A timeout of zero would end every request or connection at once.
    #[error("must be longer than zero")]
    NotPositive,
    /// Not a number of seconds (negative, not finite, or too large).
    #[error("expected a number of seconds")]
    NotSeconds,
    /// A sampling rate outside (0, 1].
    #[error("expected a fraction of requests above 0 and at most 1, such as 0.01")]
    NotAFraction,
    /// A leeway over a day.
    #[error("at most a day: past that, clock skew is not what is being forgiven")]
    LeewayTooLong,
    /// A token length limit of zero or over the cap.
    #[error("between 1 and {cap} bytes", cap = crate::Validation::MAX_TOKEN_LEN_CAP)]
    TokenLength,
    /// A request line allowed to be longer than the whole head.
    #[error("cannot exceed server.max_header_bytes")]
    RequestLineOverHead,
    /// More batch worker threads than the batch verifier runs.
    #[error("at most {cap}", cap = crate::batch::MAX_THREADS)]
    TooManyThreads,
    /// A cache age that is not a whole number of seconds.
    #[error("expected whole seconds, at least 1s: cached entries are aged by the second")]
    NotWholeSeconds,
    /// A verified-token cache larger than a shard should hold.
    #[error("at most {MAX_CACHE_ENTRIES} entries per shard (0 turns the cache off)")]
    TooManyCacheEntries,
    /// A gRPC message limit too small for a real CheckRequest or too large to buffer.
    #[error("between {MIN_GRPC_MESSAGE_BYTES} and {MAX_GRPC_MESSAGE_BYTES} bytes")]
    GrpcMessageSize,
    /// A stream limit of zero (no check could run) or past HTTP/2's practical range.
    #[error("between 1 and {MAX_GRPC_STREAMS}")]
    GrpcStreams,
    /// Two faces on one port: their connections would be spread over both.
    #[error("is on the port of {other}; each face needs a port of its own")]
    SharedPort {
        /// The face already there.
        other: &'static str,
    },
}

/// A setting refused once the layers are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {error}")]
pub struct Refused {
    /// The setting, as the file names it.
    pub setting: &'static str,
    /// Why.
    pub error: SettingError,
}

impl SettingError {
    fn of(self, setting: &'static str) -> Refused {
        Refused {
            setting,
            error: self,
        }
    }
}

/// The longest leeway accepted: past a day, clock skew is not what is being forgiven.
pub const MAX_LEEWAY: Duration = Duration::from_secs(86_400);

/// A timeout that must be longer than zero.
pub fn positive(duration: Duration) -> Result<Duration, SettingError> {
    if duration.is_zero() {
        return Err(SettingError::NotPositive);
    }
    Ok(duration)
}

/// A number of seconds as the command line gives it (`0.5`, `10`).
pub fn seconds(value: f64) -> Result<Duration, SettingError> {
    Duration::try_from_secs_f64(value).map_err(|_| SettingError::NotSeconds)
}

/// The access log's sampling rate: above 0 and at most 1.
pub fn sample_rate(rate: f64) -> Result<f64, SettingError> {
    if rate > 0.0 && rate <= 1.0 {
        Ok(rate)
    } else {
        Err(SettingError::NotAFraction)
    }
}

/// A token configuration's clock-skew leeway.
pub fn leeway(leeway: Duration) -> Result<Duration, SettingError> {
    if leeway > MAX_LEEWAY {
        return Err(SettingError::LeewayTooLong);
    }
    Ok(leeway)
}

/// A token configuration's longest accepted token.
pub fn token_length(bytes: usize) -> Result<usize, SettingError> {
    if bytes == 0 || bytes > crate::Validation::MAX_TOKEN_LEN_CAP {
        return Err(SettingError::TokenLength);
    }
    Ok(bytes)
}

/// The batch verifier's worker threads (0: one per core).
pub fn batch_threads(threads: usize) -> Result<usize, SettingError> {
    if threads > crate::batch::MAX_THREADS {
        return Err(SettingError::TooManyThreads);
    }
    Ok(threads)
}

/// The most verified-token cache entries per shard: 4 GiB of entries at
/// their byte budget, far past any working set worth caching.
pub const MAX_CACHE_ENTRIES: usize = 1 << 20;

/// The verified-token cache's entries per shard (0: off).
pub fn cache_entries(entries: usize) -> Result<usize, SettingError> {
    if entries > MAX_CACHE_ENTRIES {
        return Err(SettingError::TooManyCacheEntries);
    }
    Ok(entries)
}

/// How long a cached verification may be used: whole seconds, at least one
/// (the clock a verification reads counts seconds, so a fraction would be
/// rounded away silently).
pub fn cache_max_age(age: Duration) -> Result<Duration, SettingError> {
    if age.subsec_nanos() != 0 || age.is_zero() {
        return Err(SettingError::NotWholeSeconds);
    }
    Ok(age)
}

/// The smallest gRPC message limit: an Envoy `CheckRequest` with a JWT and
/// ordinary headers is 2 to 4 KiB.
pub const MIN_GRPC_MESSAGE_BYTES: usize = 4 * 1024;

/// The largest gRPC message limit: every stream of a connection may buffer
/// one message this large.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The most gRPC streams in flight per connection.
pub const MAX_GRPC_STREAMS: u32 = 65_536;

/// The largest `CheckRequest` the gRPC face reads.
pub fn grpc_message_bytes(bytes: usize) -> Result<usize, SettingError> {
    if (MIN_GRPC_MESSAGE_BYTES..=MAX_GRPC_MESSAGE_BYTES).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(SettingError::GrpcMessageSize)
    }
}

/// Checks in flight on one gRPC connection.
pub fn grpc_streams(streams: u32) -> Result<u32, SettingError> {
    if (1..=MAX_GRPC_STREAMS).contains(&streams) {
        Ok(streams)
    } else {
        Err(SettingError::GrpcStreams)
    }
}

/// The request-line limit against the head limit it is part of.
pub fn head_limits(max_request_line: usize, max_header_bytes: usize) -> Result<(), SettingError> {
    if max_request_line > max_header_bytes {
        return Err(SettingError::RequestLineOverHead);
    }
    Ok(())
}

/// Refuses two faces on overlapping addresses: the same port on the same
/// address, or on any address when one of them is a wildcard (`0.0.0.0`,
/// `[::]`). Port 0 asks the kernel for a free port, so it never overlaps.
fn distinct_ports(faces: &[(&'static str, Option<SocketAddr>)]) -> Result<(), Refused> {
    let bound: Vec<(&'static str, SocketAddr)> = faces
        .iter()
        .filter_map(|&(name, addr)| Some((name, addr?)))
        .filter(|(_, addr)| addr.port() != 0)
        .collect();
    for (index, &(name, addr)) in bound.iter().enumerate() {
        let earlier = bound.iter().take(index).find(|(_, other)| {
            other.port() == addr.port()
                && (other.ip() == addr.ip()
                    || other.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        });
        if let Some(&(other, _)) = earlier {
            return Err(SettingError::SharedPort { other }.of(name));
        }
    }
    Ok(())
}

/// Where the admin listener goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    /// No admin listener.
    Off,
    /// This address.
    At(SocketAddr),
}

/// Declares [`ServerLayer`] from one table: every setting's name, type and
/// default, so that adding a setting is one line here plus its readers.
macro_rules! server_settings {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty = $default:expr, )*) => {
        /// Server settings, each present or not. A layer is what one source
        /// (defaults, the file's `[server]` table, the command line) says.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct ServerLayer {
            $( $(#[$doc])* pub $name: Option<$ty>, )*
        }

        impl ServerLayer {
            /// Every setting's default (`None` where the default is "off").
            pub fn defaults() -> ServerLayer {
                ServerLayer { $( $name: $default, )* }
            }

            /// This layer over `lower`: each setting this layer names wins.
            #[must_use]
            pub fn over(self, lower: ServerLayer) -> ServerLayer {
                ServerLayer { $( $name: self.$name.or(lower.$name), )* }
            }

            /// The names of the settings whose values differ from `other`'s,
            /// in the table's order.
            pub fn differences(&self, other: &ServerLayer) -> Vec<&'static str> {
                let mut names = Vec::new();
                $( if self.$name != other.$name { names.push(stringify!($name)); } )*
                names
            }
        }
    };
}

server_settings! {
    /// Data port [default: 127.0.0.1:8080].
    listen: SocketAddr = Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
    /// Admin port [default: 127.0.0.1:9901], or off.
    admin_listen: AdminListen = Some(AdminListen::At(SocketAddr::from(([127, 0, 0, 1], 9901)))),
    /// Batch port for `POST /v1/verify` [default: off].
    verify_listen: SocketAddr = None,
    /// gRPC ext_authz port (Envoy's `Authorization/Check`) [default: off].
    grpc_listen: SocketAddr = None,
    /// Largest gRPC `CheckRequest`, in bytes [default: 256 KiB].
    grpc_max_message_bytes: usize = Some(256 * 1024),
    /// gRPC checks in flight on one connection [default: 256].
    grpc_max_concurrent_streams: u32 = Some(256),
    /// Time between HTTP/2 PINGs on a gRPC connection [default: 60 s].
    grpc_keepalive_interval: Duration = Some(Duration::from_secs(60)),
    /// How long a PING may go unanswered [default: 20 s].
    grpc_keepalive_timeout: Duration = Some(Duration::from_secs(20)),
    /// A gRPC connection that starts no call for this long is closed [default: 300 s].
    grpc_idle_timeout: Duration = Some(Duration::from_secs(300)),
    /// Shard threads; 0 (the default) means one per available core.
    shards: usize = Some(0),
    /// I/O runtime [default: auto].
    io: IoMode = Some(IoMode::Auto),
    /// The verified payload in `x-jwt-payload` [default: off: it can be large,
    /// and not every upstream should see every claim].
    forward_payload: bool = Some(false),
    /// Longest request head, in bytes (431 beyond).
    max_header_bytes: usize = Some(Limits::default().max_header_bytes),
    /// Longest request line, in bytes (414 beyond).
    max_request_line_bytes: usize = Some(Limits::default().max_request_line),
    /// Longest check-request body, read and discarded [default: 64 KiB].
    max_body_bytes: u64 = Some(64 * 1024),
    /// Longest `POST /v1/verify` body [default: 1 MiB].
    max_verify_body_bytes: u64 = Some(1024 * 1024),
    /// Most lines in one `POST /v1/verify` body [default: 10,000]. Every
    /// line gets a result of up to a few hundred bytes, blank ones included,
    /// so without this a body of newlines would be answered with some 70
    /// times its size.
    max_verify_lines: usize = Some(10_000),
    /// Open connections per shard before accepting pauses [default: 10,000].
    max_connections: usize = Some(10_000),
    /// Longest a request may have waited for its shard and still be
    /// verified: past it, a token the shard's cache does not hold is answered
    /// 429 `overloaded` instead [default: 150 ms, under Envoy's default
    /// ext_authz timeout of 200 ms; 0: never].
    max_queue_delay: Duration = Some(Duration::from_millis(150)),
    /// From a request's first byte to its last (408 beyond) [default: 10 s].
    header_timeout: Duration = Some(Duration::from_secs(10)),
    /// Idle keep-alive connections, and each write [default: 60 s].
    idle_timeout: Duration = Some(Duration::from_secs(60)),
    /// How long a drain waits for in-flight requests [default: 10 s].
    drain_timeout: Duration = Some(Duration::from_secs(10)),
    /// Between a shutdown signal and closing the listeners [default: 0].
    drain_delay: Duration = Some(Duration::ZERO),
    /// Over how long a drain closes the keep-alive connections that stay
    /// idle, spread so that a client about to send gets its answer (with
    /// `connection: close`) instead of racing the close [default: 1 s].
    drain_close_spread: Duration = Some(Duration::from_secs(1)),
    /// Per-request counters and histograms [default: on].
    metrics: bool = Some(true),
    /// The JSON-lines access log [default: off]. A relative path in the file
    /// is relative to the file's folder.
    access_log: Destination = None,
    /// Fraction of requests the access log records [default: 1].
    access_log_sample: f64 = Some(1.0),
    /// Time between one-line summaries on stderr [default: 0, none].
    summary_interval: Duration = Some(Duration::ZERO),
    /// Verified tokens each shard keeps, to skip their signature check on a
    /// repeat [default: 4096, about 16 MiB per shard; 0: off].
    token_cache_entries: usize = Some(CacheSettings::DEFAULT.entries),
    /// How long a cached verification may be used [default: 5 min].
    token_cache_max_age: Duration = Some(CacheSettings::DEFAULT.max_age),
}

/// Settings of `serve` that are not server settings of the file: the
/// command line's clock, the benchmark switch, and a handover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// The verification clock.
    pub clock: Clock,
    /// Answer 200 without verifying: only to measure the HTTP ceiling.
    pub danger_skip_verification: bool,
    /// Join a running jwtgate's listening ports (`--handover`).
    pub sharing: Sharing,
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime {
            clock: Clock::System,
            danger_skip_verification: false,
            sharing: Sharing::Exclusive,
        }
    }
}

impl ServerLayer {
    /// The options `serve` runs with: this layer over the defaults, with the
    /// caps that span settings checked.
    // Every setting read with `expect` has a `Some` default in the table
    // above, so the layer merged over the defaults has it (tested below).
    #[allow(clippy::expect_used)]
    pub fn resolve(self, runtime: Runtime) -> Result<ServeOptions, Refused> {
        const DEFAULTED: &str = "a setting with a default";
        let all = self.over(ServerLayer::defaults());
        let head = Limits {
            max_request_line: all.max_request_line_bytes.expect(DEFAULTED),
            max_header_bytes: all.max_header_bytes.expect(DEFAULTED),
        };
        head_limits(head.max_request_line, head.max_header_bytes)
            .map_err(|error| error.of("server.max_request_line_bytes"))?;
        distinct_ports(&[
            ("server.listen", all.listen),
            ("server.grpc_listen", all.grpc_listen),
            ("server.verify_listen", all.verify_listen),
            (
                "server.admin_listen",
                match all.admin_listen {
                    Some(AdminListen::At(addr)) => Some(addr),
                    _ => None,
                },
            ),
        ])?;
        Ok(ServeOptions {
            listen: all.listen.expect(DEFAULTED),
            verify_listen: all.verify_listen,
            grpc: match all.grpc_listen {
                Some(listen) => Some(GrpcOptions {
                    listen,
                    max_message_bytes: grpc_message_bytes(
                        all.grpc_max_message_bytes.expect(DEFAULTED),
                    )
                    .map_err(|error| error.of("server.grpc_max_message_bytes"))?,
                    max_concurrent_streams: grpc_streams(
                        all.grpc_max_concurrent_streams.expect(DEFAULTED),
                    )
                    .map_err(|error| error.of("server.grpc_max_concurrent_streams"))?,
                    keepalive_interval: positive(all.grpc_keepalive_interval.expect(DEFAULTED))
                        .map_err(|error| error.of("server.grpc_keepalive_interval"))?,
                    keepalive_timeout: positive(all.grpc_keepalive_timeout.expect(DEFAULTED))
                        .map_err(|error| error.of("server.grpc_keepalive_timeout"))?,
                    idle_timeout: positive(all.grpc_idle_timeout.expect(DEFAULTED))
                        .map_err(|error| error.of("server.grpc_idle_timeout"))?,
                }),
                None => None,
            },
            admin_listen: match all.admin_listen.expect(DEFAULTED) {
                AdminListen::At(addr) => Some(addr),
                AdminListen::Off => None,
            },
            shards: all.shards.expect(DEFAULTED),
            io: all.io.expect(DEFAULTED),
            limits: ConnectionLimits {
                head,
                header_timeout: positive(all.header_timeout.expect(DEFAULTED))
                    .map_err(|error| error.of("server.header_timeout"))?,
                idle_timeout: positive(all.idle_timeout.expect(DEFAULTED))
                    .map_err(|error| error.of("server.idle_timeout"))?,
            },
            max_connections: all.max_connections.expect(DEFAULTED),
            drain_timeout: positive(all.drain_timeout.expect(DEFAULTED))
                .map_err(|error| error.of("server.drain_timeout"))?,
            drain_delay: all.drain_delay.expect(DEFAULTED),
            drain_close_spread: all.drain_close_spread.expect(DEFAULTED),
            authz: AuthzOptions {
                forward_payload: all.forward_payload.expect(DEFAULTED),
                max_body: all.max_body_bytes.expect(DEFAULTED),
                danger_skip_verification: runtime.danger_skip_verification,
                clock: runtime.clock,
                max_queue_delay: all.max_queue_delay.filter(|delay| !delay.is_zero()),
                token_cache: CacheSettings {
                    entries: cache_entries(all.token_cache_entries.expect(DEFAULTED))
                        .map_err(|error| error.of("server.token_cache_entries"))?,
                    max_age: cache_max_age(all.token_cache_max_age.expect(DEFAULTED))
                        .map_err(|error| error.of("server.token_cache_max_age"))?,
                },
            },
            batch: BatchLimits {
                max_body: all.max_verify_body_bytes.expect(DEFAULTED),
                max_lines: all.max_verify_lines.expect(DEFAULTED),
            },
            metrics: all.metrics.expect(DEFAULTED),
            access_log: match all.access_log {
                Some(destination) => Some(AccessLogOptions {
                    destination,
                    sample: sample_rate(all.access_log_sample.expect(DEFAULTED))
                        .map_err(|error| error.of("server.access_log_sample"))?,
                }),
                None => None,
            },
            summary_interval: all.summary_interval.filter(|every| !every.is_zero()),
            sharing: runtime.sharing,
        })
    }
}

impl Default for ServeOptions {
    /// Every setting at its default ([`ServerLayer::defaults`]).
    // The defaults pass every check: tests::every_default_resolves.
    #[allow(clippy::expect_used)]
    fn default() -> ServeOptions {
        ServerLayer::default()
            .resolve(Runtime::default())
            .expect("the defaults pass every check")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_faces_never_share_a_port() {
        let addr = |text: &str| Some(text.parse::<SocketAddr>().unwrap());
        let refused = |faces: &[(&'static str, Option<SocketAddr>)]| {
            distinct_ports(faces).map_err(|refused| refused.to_string())
        };
        assert_eq!(
            refused(&[("server.listen", addr("127.0.0.1:8080")), ("server.grpc_listen", addr("127.0.0.1:8080"))]),
            Err("server.grpc_listen: is on the port of server.listen; each face needs a port of its own".to_owned())
        );
        assert!(refused(&[("a", addr("0.0.0.0:8080")), ("b", addr("127.0.0.1:8080"))]).is_err());
        assert!(refused(&[("a", addr("127.0.0.1:8080")), ("b", addr("[::]:8080"))]).is_err());
        assert!(refused(&[("a", addr("127.0.0.1:8080")), ("b", addr("127.0.0.2:8080"))]).is_ok());
        assert!(refused(&[("a", addr("127.0.0.1:0")), ("b", addr("127.0.0.1:0"))]).is_ok());
        assert!(refused(&[("a", addr("127.0.0.1:8080")), ("b", None)]).is_ok());
    }

    #[test]
    fn every_default_resolves() {
        let options = ServerLayer::default().resolve(Runtime::default()).unwrap();
        assert_eq!(options.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(
            options.admin_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9901)))
        );
        assert_eq!(options.limits.head, Limits::default());
        assert_eq!(options.summary_interval, None);
        assert!(options.access_log.is_none());
        // Every field a layer can hold has a default or is off by default.
        let defaults = ServerLayer::defaults();
        assert!(defaults.verify_listen.is_none() && defaults.access_log.is_none());
    }

    #[test]
    fn flags_over_file_over_defaults() {
        let file = ServerLayer {
            shards: Some(3),
            idle_timeout: Some(Duration::from_secs(5)),
            access_log: Some(Destination::Stderr),
            access_log_sample: Some(0.5),
            ..ServerLayer::default()
        };
        let flags = ServerLayer {
            shards: Some(1),
            admin_listen: Some(AdminListen::Off),
            ..ServerLayer::default()
        };
        let options = flags.over(file).resolve(Runtime::default()).unwrap();
        assert_eq!(options.shards, 1, "a flag beats the file");
        assert_eq!(
            options.limits.idle_timeout,
            Duration::from_secs(5),
            "the file beats the default"
        );
        assert_eq!(options.admin_listen, None);
        assert_eq!(
            options.drain_timeout,
            Duration::from_secs(10),
            "the default fills the rest"
        );
        let log = options.access_log.unwrap();
        assert_eq!((log.destination, log.sample), (Destination::Stderr, 0.5));
    }

    #[test]
    fn caps_spanning_layers_are_checked_once_merged() {
        // Each layer alone is fine; together the request line outgrows the head.
        let file = ServerLayer {
            max_request_line_bytes: Some(12 * 1024),
            ..ServerLayer::default()
        };
        let flags = ServerLayer {
            max_header_bytes: Some(10 * 1024),
            ..ServerLayer::default()
        };
        assert_eq!(
            flags
                .over(file)
                .resolve(Runtime::default())
                .unwrap_err()
                .error,
            SettingError::RequestLineOverHead
        );
        let zero = ServerLayer {
            header_timeout: Some(Duration::ZERO),
            ..ServerLayer::default()
        };
        assert_eq!(
            zero.resolve(Runtime::default()).unwrap_err().to_string(),
            "server.header_timeout: must be longer than zero"
        );
        let rate = ServerLayer {
            access_log: Some(Destination::Stdout),
            access_log_sample: Some(1.5),
            ..ServerLayer::default()
        };
        assert_eq!(
            rate.resolve(Runtime::default()).unwrap_err().error,
            SettingError::NotAFraction
        );
    }

    #[test]
    fn token_caps() {
        assert_eq!(leeway(MAX_LEEWAY), Ok(MAX_LEEWAY));
        assert_eq!(
            leeway(MAX_LEEWAY + Duration::from_secs(1)),
            Err(SettingError::LeewayTooLong)
        );
        assert_eq!(token_length(0), Err(SettingError::TokenLength));
        assert_eq!(token_length(1), Ok(1));
        assert_eq!(
            token_length(crate::Validation::MAX_TOKEN_LEN_CAP + 1),
            Err(SettingError::TokenLength)
        );
        assert_eq!(
            SettingError::TokenLength.to_string(),
            format!(
                "between 1 and {} bytes",
                crate::Validation::MAX_TOKEN_LEN_CAP
            )
        );
    }
}
