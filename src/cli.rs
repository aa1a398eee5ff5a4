//! The command line's arguments (clap): every command, flag and its help.
//! Defaults of server settings are not given to clap: a flag left out is
//! `None`, so the layer it becomes says only what was typed, and the default
//! comes from [`jwtgate::settings::ServerLayer::defaults`] (the help's
//! `[default: …]` texts are checked against it by a test in `main.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `jwtgate --version`: the release, the commit it was built from, and the
/// crypto backends behind the one crypto seam.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("JWTGATE_GIT_COMMIT"),
    "; crypto: aws-lc-rs for RSA, ECDSA and Ed25519, ring for HMAC)"
);

/// jwtgate: a strict, fast JWT verification tier.
#[derive(Parser)]
#[command(name = "jwtgate", version = VERSION, about, max_term_width = 100)]
pub(crate) struct Cli {
    /// Without a command, `serve --demo`: the service on the built-in demo key.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check a configuration file: show it as it will run, and route sample requests.
    CheckConfig(CheckConfigArgs),
    /// Run the ext_authz verification service (per-core shards, io_uring or epoll).
    Serve(Box<ServeArgs>),
    /// Show the engine at work on the bundled demo keys, with no setup.
    Demo,
    /// Verify tokens, one per line, from files or stdin; one JSON result per line out.
    Verify(VerifyArgs),
    /// Generate a signing key (PKCS#8 PEM) and the JWKS that verifies it.
    Keygen(KeygenArgs),
    /// Sign tokens for demos, tests and benchmarks.
    Mint(MintArgs),
    /// Decode a token without trusting it, and (given keys) say which check fails.
    Inspect(InspectArgs),
    /// Revoke a token, a subject's tokens or a key in the configured store
    /// (a file, or Redis shared by every instance), or list what is in force.
    Revoke(RevokeArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one per command into a folder.
    Man(ManArgs),
}

#[derive(Args)]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .args(["jti", "subject", "kid", "list"])
))]
pub(crate) struct RevokeArgs {
    /// The configuration whose [revocation] table names the store.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Revoke the one token with this jti (with --issuer).
    // A jti or subject may start with "-" (base64url): taken as the value.
    #[arg(
        long,
        value_name = "ID",
        requires = "issuer",
        allow_hyphen_values = true
    )]
    pub(crate) jti: Option<String>,
    /// Revoke this subject's tokens issued before --before (with --issuer):
    /// "log out everywhere".
    #[arg(
        long,
        value_name = "SUB",
        requires = "issuer",
        allow_hyphen_values = true
    )]
    pub(crate) subject: Option<String>,
    /// The issuer of --jti or --subject (exactly as the tokens' iss).
    #[arg(long, value_name = "ISS")]
    pub(crate) issuer: Option<String>,
    /// With --subject: tokens issued before this instant, Unix seconds or
    /// RFC 3339 (2026-12-06T10:00:00Z) [default: the end of this second].
    #[arg(long, value_name = "TIME", requires = "subject")]
    pub(crate) before: Option<String>,
    /// Revoke every token --token-config verifies with this key.
    #[arg(
        long,
        value_name = "KID",
        requires = "token_config",
        allow_hyphen_values = true
    )]
    pub(crate) kid: Option<String>,
    /// The token configuration of --kid.
    #[arg(long, value_name = "NAME", requires = "kid")]
    pub(crate) token_config: Option<String>,
    /// How long the revocation lasts, e.g. "2h" [default: the longest a
    /// covered token can live: max_lifetime plus leeway of the token
    /// configurations concerned].
    #[arg(long, value_name = "DURATION")]
    pub(crate) ttl: Option<String>,
    /// Print the revocations in force (one JSON line each) instead.
    #[arg(long)]
    pub(crate) list: bool,
}

#[derive(Args)]
pub(crate) struct CompletionsArgs {
    /// The shell, e.g. `jwtgate completions bash > /etc/bash_completion.d/jwtgate`.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Args)]
pub(crate) struct ManArgs {
    /// Write jwtgate.1 and jwtgate-<command>.1 into this folder instead of
    /// printing jwtgate.1.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

/// Key and claim settings shared by `verify` and `inspect`.
#[derive(Args)]
pub(crate) struct Settings {
    /// Keys: a JWKS, a single JWK, or PEM public keys (SPKI or PKCS#1).
    #[arg(long, value_name = "FILE")]
    pub(crate) jwks: Option<PathBuf>,
    /// Required issuer (exact match).
    #[arg(long, value_name = "ISS")]
    pub(crate) issuer: Option<String>,
    /// Accepted audience; repeat for several (any one must match).
    #[arg(long = "audience", value_name = "AUD")]
    pub(crate) audiences: Vec<String>,
    /// Algorithm allow-list, comma-separated [default: what the keys are bound to].
    #[arg(long, value_name = "ALGS")]
    pub(crate) algorithms: Option<String>,
    /// Clock-skew leeway for exp, nbf and iat, in seconds [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) leeway: Option<u64>,
    /// Judge tokens at this Unix time instead of the clock.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub(crate) now: Option<i64>,
    /// Required header typ (media type, e.g. at+jwt).
    #[arg(long, value_name = "TYP")]
    pub(crate) typ: Option<String>,
    /// Claims that must be present, comma-separated [default: exp]; "none" for none.
    #[arg(long, value_name = "CLAIMS")]
    pub(crate) require: Option<String>,
    /// Longest accepted lifetime (exp minus iat), in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_lifetime: Option<u64>,
    /// Required subject (exact match).
    #[arg(long, value_name = "SUB", conflicts_with = "subject_prefix")]
    pub(crate) subject: Option<String>,
    /// Required subject prefix.
    #[arg(long, value_name = "PREFIX")]
    pub(crate) subject_prefix: Option<String>,
    /// Longest accepted token, in bytes [default: 16384].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_token_len: Option<usize>,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) settings: Settings,
    /// Take keys and claim checks from this configuration file's token configuration.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "jwks",
        requires = "token_config"
    )]
    pub(crate) config: Option<PathBuf>,
    /// The token configuration of --config to verify with; repeat for several
    /// (a token is valid for the first that accepts it, and each line then
    /// names the configuration).
    #[arg(long, value_name = "NAME", requires = "config")]
    pub(crate) token_config: Vec<String>,
    /// Input file, one token per line; repeat for several; "-" or none reads stdin.
    #[arg(long = "input", value_name = "FILE")]
    pub(crate) inputs: Vec<PathBuf>,
    /// Worker threads [default: one per available core].
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Exit 0 after a complete run even if some tokens are not valid.
    #[arg(long)]
    pub(crate) exit_zero: bool,
    /// Write the latency percentile distribution (HdrHistogram .hgrm text) here.
    #[arg(long, value_name = "FILE")]
    pub(crate) histogram: Option<PathBuf>,
    /// No live progress line, even on a terminal.
    #[arg(long)]
    pub(crate) no_progress: bool,
    /// No summary on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum IoArg {
    /// io_uring, or fail with the reason it is unavailable.
    Uring,
    /// epoll (tokio).
    Epoll,
    /// io_uring if available, else epoll with a warning.
    Auto,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormatArg {
    /// `jwtgate: message`, `jwtgate: warning: message`.
    Text,
    /// One JSON object per line: time, level, message.
    Json,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) settings: Settings,
    /// Run on the built-in demo key set and print ready-to-paste curl lines.
    #[arg(long, conflicts_with_all = ["jwks", "config"])]
    pub(crate) demo: bool,
    /// Configuration file (TOML): token configurations, rules, [server]. It is
    /// reloaded on SIGHUP and when it or a key file changes. Command-line
    /// server flags given explicitly override its [server] table.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks")]
    pub(crate) config: Option<PathBuf>,
    /// Data port: every request is a check request [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Batch port for POST /v1/verify (tokens in, JSON lines out) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub(crate) verify_listen: Option<SocketAddr>,
    /// gRPC ext_authz port: Envoy's envoy.service.auth.v3.Authorization/Check
    /// and grpc.health.v1.Health, HTTP/2 cleartext [default: off].
    #[arg(long, value_name = "ADDR")]
    pub(crate) grpc_listen: Option<SocketAddr>,
    /// Largest gRPC CheckRequest, in bytes [default: 262144].
    #[arg(long, value_name = "BYTES")]
    pub(crate) grpc_max_message_bytes: Option<usize>,
    /// gRPC checks in flight on one connection [default: 256].
    #[arg(long, value_name = "N")]
    pub(crate) grpc_max_concurrent_streams: Option<u32>,
    /// Seconds between HTTP/2 PINGs on a gRPC connection [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) grpc_keepalive_interval: Option<f64>,
    /// Seconds a PING may go unanswered before the connection closes [default: 20].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) grpc_keepalive_timeout: Option<f64>,
    /// Seconds a gRPC connection may start no call before it is closed [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) grpc_idle_timeout: Option<f64>,
    /// Admin port (GET /healthz) [default: 127.0.0.1:9901].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_admin")]
    pub(crate) admin_listen: Option<SocketAddr>,
    /// No admin port.
    #[arg(long)]
    pub(crate) no_admin: bool,
    /// Shard threads, each pinned to a core [default: one per available core].
    #[arg(long, value_name = "N")]
    pub(crate) shards: Option<usize>,
    /// I/O runtime [default: auto].
    #[arg(long, value_name = "MODE", value_enum)]
    pub(crate) io: Option<IoArg>,
    /// Put the verified payload (base64url) in x-jwt-payload.
    #[arg(long)]
    pub(crate) forward_payload: bool,
    /// Longest request head (request line and headers), in bytes; beyond it, 431 [default: 16384].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_header_bytes: Option<usize>,
    /// Longest request line, in bytes; beyond it, 414 [default: 8192].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_request_line_bytes: Option<usize>,
    /// Longest check-request body (read and discarded), in bytes; beyond it, 413 [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_body_bytes: Option<u64>,
    /// Longest POST /v1/verify body, in bytes; beyond it, 413 [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_verify_body_bytes: Option<u64>,
    /// Most lines in one POST /v1/verify body; beyond it, 413 [default: 10000].
    #[arg(long, value_name = "N")]
    pub(crate) max_verify_lines: Option<usize>,
    /// Seconds from a request's first byte to its last; beyond it, 408 [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) header_timeout: Option<f64>,
    /// Seconds an idle keep-alive connection stays open (also the write timeout) [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) idle_timeout: Option<f64>,
    /// Seconds a shutdown waits for in-flight requests [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) drain_timeout: Option<f64>,
    /// Seconds between a shutdown signal and closing the listeners, while
    /// /healthz already answers 503 and requests are still served [default: 0].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) drain_delay: Option<f64>,
    /// Seconds over which a drain closes keep-alive connections that stay
    /// idle: each is closed once idle for between half of this and all of
    /// it, unless it sends a request first, which is answered with
    /// `connection: close`; 0 closes them at once [default: 1].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) drain_close_spread: Option<f64>,
    /// Open connections per shard before accepting pauses [default: 10000].
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Seconds a request may wait for its shard and still be verified: an
    /// overloaded shard answers a token its cache does not hold with 429
    /// `overloaded` once requests wait longer; 0 never does [default: 0.15].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_queue_delay: Option<f64>,
    /// Do not count or time check requests (/metrics keeps the gauges).
    #[arg(long)]
    pub(crate) no_metrics: bool,
    /// JSON-lines access log: a file, "stdout" or "stderr" [default: off].
    #[arg(long, value_name = "DEST")]
    pub(crate) access_log: Option<String>,
    /// Fraction of requests the access log records, above 0 and at most 1 [default: 1].
    #[arg(long, value_name = "RATE")]
    pub(crate) access_log_sample: Option<f64>,
    /// Seconds between one-line summaries on stderr (0: none; one is always
    /// printed at shutdown) [default: 0].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) summary_interval: Option<f64>,
    /// Verified tokens each shard keeps, so that a repeated token skips its
    /// signature check (0: off) [default: 4096].
    #[arg(long, value_name = "N")]
    pub(crate) token_cache_entries: Option<usize>,
    /// Whole seconds a cached verification may be used before the token is
    /// verified again [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) token_cache_max_age: Option<f64>,
    /// Format of the lines on stderr (the access log has its own) [default: text].
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormatArg>,
    /// Join the listening ports of a jwtgate already running, for a binary
    /// upgrade without a refused connection: start the new one with this
    /// flag and an --admin-listen of its own, wait for its readiness, then
    /// send the old one SIGTERM. Without it, a port another process listens
    /// on is an error.
    #[arg(long)]
    pub(crate) handover: bool,
    /// Benchmarks only: answer 200 without verifying anything (the HTTP ceiling).
    #[arg(long, hide = true)]
    pub(crate) danger_no_verify: bool,
}

#[derive(Args)]
pub(crate) struct CheckConfigArgs {
    /// The configuration file.
    pub(crate) config: PathBuf,
    /// A sample request, e.g. "GET https://api.example.com/v1/users/7"; repeat for several.
    #[arg(long = "request", value_name = "REQUEST")]
    pub(crate) requests: Vec<String>,
    /// A header of the sample requests' client, e.g. "Cookie: session=..."; repeat
    /// for several. With it or --token, each --request is decided as `serve`
    /// would decide it (local keys only) and the decision explained.
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "requests")]
    pub(crate) headers: Vec<String>,
    /// A token for the sample requests, put where the rule each one meets reads
    /// tokens (its first token configuration's first source).
    #[arg(long, value_name = "JWT", requires = "requests")]
    pub(crate) token: Option<String>,
    /// Decide at this Unix time instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub(crate) now: Option<i64>,
    /// Fetch every remote key set (jwks_url, issuer_discovery) once and say
    /// what came back; exit 1 if one cannot be had. Sample decisions then use
    /// the fetched keys.
    #[arg(long)]
    pub(crate) fetch: bool,
}

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Algorithm the key is for.
    #[arg(long, value_name = "ALG")]
    pub(crate) alg: String,
    /// Key id [default: <alg>-<random>].
    #[arg(long, value_name = "K")]
    pub(crate) kid: Option<String>,
    /// Directory for <kid>.pk8.pem and <kid>.jwks.json.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// RSA modulus size.
    #[arg(long, value_name = "BITS", default_value_t = 2048)]
    pub(crate) bits: usize,
}

#[derive(Args)]
pub(crate) struct MintArgs {
    /// Private key: PKCS#8 PEM, or for HS* a JWK/JWKS holding the secret.
    #[arg(long, value_name = "PRIVATE_KEY")]
    pub(crate) key: PathBuf,
    /// Signature algorithm.
    #[arg(long, value_name = "ALG")]
    pub(crate) alg: String,
    /// Header kid [default: the key file's kid, if any].
    #[arg(long, value_name = "K")]
    pub(crate) kid: Option<String>,
    /// iss claim.
    #[arg(long, value_name = "ISS")]
    pub(crate) iss: Option<String>,
    /// aud claim; repeat for an array.
    #[arg(long = "aud", value_name = "AUD")]
    pub(crate) aud: Vec<String>,
    /// sub claim.
    #[arg(long, value_name = "SUB")]
    pub(crate) sub: Option<String>,
    /// Seconds until exp.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub(crate) ttl: i64,
    /// Extra claims as a JSON object (its members override the flags).
    #[arg(long, value_name = "JSON")]
    pub(crate) claims: Option<String>,
    /// How many tokens (each with its own jti).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) count: u64,
    /// Issue time as Unix seconds [default: now].
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub(crate) now: Option<i64>,
    /// Signing threads [default: one per available core].
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    pub(crate) settings: Settings,
    /// The token, or "-" to read it from stdin.
    pub(crate) token: String,
}
