//! The `jwtgate` command line: parses arguments (clap), builds the library's
//! option structs, calls the library, and maps results to exit codes.
//!
//! Exit codes, like grep: 0 all tokens valid, 1 some token not valid, 2 usage,
//! key or I/O error (one line on stderr naming the file and the problem).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line prints

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use jwtgate::batch::{self, BatchOptions, Input, Progress};
use jwtgate::tools::{self, ToolError, inspect, keygen, mint};
use jwtgate::{
    Algorithm, AlgorithmSet, ClaimName, Outcome, SubjectMatch, UnixTime, Validation, Verifier,
};

/// jwtgate: a strict, fast JWT verification tier.
#[derive(Parser)]
#[command(name = "jwtgate", version, about, max_term_width = 100)]
struct Cli {
    /// Without a command, `serve --demo`: the service on the built-in demo key.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
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
}

/// Key and claim settings shared by `verify` and `inspect`.
#[derive(Args)]
struct Settings {
    /// Keys: a JWKS, a single JWK, or PEM public keys (SPKI or PKCS#1).
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// Required issuer (exact match).
    #[arg(long, value_name = "ISS")]
    issuer: Option<String>,
    /// Accepted audience; repeat for several (any one must match).
    #[arg(long = "audience", value_name = "AUD")]
    audiences: Vec<String>,
    /// Algorithm allow-list, comma-separated [default: what the keys are bound to].
    #[arg(long, value_name = "ALGS")]
    algorithms: Option<String>,
    /// Clock-skew leeway for exp, nbf and iat, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    leeway: u64,
    /// Judge tokens at this Unix time instead of the clock.
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<i64>,
    /// Required header typ (media type, e.g. at+jwt).
    #[arg(long, value_name = "TYP")]
    typ: Option<String>,
    /// Claims that must be present, comma-separated [default: exp]; "none" for none.
    #[arg(long, value_name = "CLAIMS")]
    require: Option<String>,
    /// Longest accepted lifetime (exp minus iat), in seconds.
    #[arg(long, value_name = "SECONDS")]
    max_lifetime: Option<u64>,
    /// Required subject (exact match).
    #[arg(long, value_name = "SUB", conflicts_with = "subject_prefix")]
    subject: Option<String>,
    /// Required subject prefix.
    #[arg(long, value_name = "PREFIX")]
    subject_prefix: Option<String>,
    /// Longest accepted token, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = jwtgate::Validation::DEFAULT_MAX_TOKEN_LEN)]
    max_token_len: usize,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    settings: Settings,
    /// Take keys and claim checks from this configuration file's token configuration.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "jwks",
        requires = "token_config"
    )]
    config: Option<PathBuf>,
    /// The token configuration of --config to verify with.
    #[arg(long, value_name = "NAME", requires = "config")]
    token_config: Option<String>,
    /// Input file, one token per line; repeat for several; "-" or none reads stdin.
    #[arg(long = "input", value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Worker threads [default: one per available core].
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Exit 0 after a complete run even if some tokens are not valid.
    #[arg(long)]
    exit_zero: bool,
    /// Write the latency percentile distribution (HdrHistogram .hgrm text) here.
    #[arg(long, value_name = "FILE")]
    histogram: Option<PathBuf>,
    /// No live progress line, even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// No summary on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum IoArg {
    /// io_uring, or fail with the reason it is unavailable.
    Uring,
    /// epoll (tokio).
    Epoll,
    /// io_uring if available, else epoll with a warning.
    Auto,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
    /// Run on the built-in demo key set and print ready-to-paste curl lines.
    #[arg(long, conflicts_with_all = ["jwks", "config"])]
    demo: bool,
    /// Configuration file (TOML): token configurations, rules, [server]. It is
    /// reloaded on SIGHUP and when it or a key file changes. Command-line
    /// server flags given explicitly override its [server] table.
    #[arg(long, value_name = "FILE", conflicts_with = "jwks")]
    config: Option<PathBuf>,
    /// Data port: every request is a check request.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Batch port for POST /v1/verify (tokens in, JSON lines out) [default: off].
    #[arg(long, value_name = "ADDR")]
    verify_listen: Option<SocketAddr>,
    /// Admin port (GET /healthz).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9901",
        conflicts_with = "no_admin"
    )]
    admin_listen: SocketAddr,
    /// No admin port.
    #[arg(long)]
    no_admin: bool,
    /// Shard threads, each pinned to a core [default: one per available core].
    #[arg(long, value_name = "N", default_value_t = 0)]
    shards: usize,
    /// I/O runtime.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = IoArg::Auto)]
    io: IoArg,
    /// Put the verified payload (base64url) in x-jwt-payload.
    #[arg(long)]
    forward_payload: bool,
    /// Longest request head (request line and headers), in bytes; beyond it, 431.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Longest request line, in bytes; beyond it, 414.
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024)]
    max_request_line_bytes: usize,
    /// Longest check-request body (read and discarded), in bytes; beyond it, 413.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    max_body_bytes: u64,
    /// Longest POST /v1/verify body, in bytes; beyond it, 413.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_verify_body_bytes: u64,
    /// Most lines in one POST /v1/verify body; beyond it, 413.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_verify_lines: usize,
    /// Seconds from a request's first byte to its last; beyond it, 408.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds an idle keep-alive connection stays open (also the write timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    idle_timeout: f64,
    /// Seconds a shutdown waits for in-flight requests.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    drain_timeout: f64,
    /// Seconds between a shutdown signal and closing the listeners, while
    /// /healthz already answers 503 and requests are still served.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    drain_delay: f64,
    /// Open connections per shard before accepting pauses.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,
    /// Do not count or time check requests (/metrics keeps the gauges).
    #[arg(long)]
    no_metrics: bool,
    /// JSON-lines access log: a file, "stdout" or "stderr" [default: off].
    #[arg(long, value_name = "DEST")]
    access_log: Option<String>,
    /// Fraction of requests the access log records, above 0 and at most 1.
    #[arg(long, value_name = "RATE", default_value_t = 1.0)]
    access_log_sample: f64,
    /// Seconds between one-line summaries on stderr (0: none; one is always
    /// printed at shutdown).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    summary_interval: f64,
    /// Benchmarks only: answer 200 without verifying anything (the HTTP ceiling).
    #[arg(long, hide = true)]
    danger_no_verify: bool,
}

#[derive(Args)]
struct CheckConfigArgs {
    /// The configuration file.
    config: PathBuf,
    /// A sample request, e.g. "GET https://api.example.com/v1/users/7"; repeat for several.
    #[arg(long = "request", value_name = "REQUEST")]
    requests: Vec<String>,
}

#[derive(Args)]
struct KeygenArgs {
    /// Algorithm the key is for.
    #[arg(long, value_name = "ALG")]
    alg: String,
    /// Key id [default: <alg>-<random>].
    #[arg(long, value_name = "K")]
    kid: Option<String>,
    /// Directory for <kid>.pk8.pem and <kid>.jwks.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// RSA modulus size.
    #[arg(long, value_name = "BITS", default_value_t = 2048)]
    bits: usize,
}

#[derive(Args)]
struct MintArgs {
    /// Private key: PKCS#8 PEM, or for HS* a JWK/JWKS holding the secret.
    #[arg(long, value_name = "PRIVATE_KEY")]
    key: PathBuf,
    /// Signature algorithm.
    #[arg(long, value_name = "ALG")]
    alg: String,
    /// Header kid [default: the key file's kid, if any].
    #[arg(long, value_name = "K")]
    kid: Option<String>,
    /// iss claim.
    #[arg(long, value_name = "ISS")]
    iss: Option<String>,
    /// aud claim; repeat for an array.
    #[arg(long = "aud", value_name = "AUD")]
    aud: Vec<String>,
    /// sub claim.
    #[arg(long, value_name = "SUB")]
    sub: Option<String>,
    /// Seconds until exp.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    ttl: i64,
    /// Extra claims as a JSON object (its members override the flags).
    #[arg(long, value_name = "JSON")]
    claims: Option<String>,
    /// How many tokens (each with its own jti).
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: u64,
    /// Issue time as Unix seconds [default: now].
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<i64>,
    /// Signing threads [default: one per available core].
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    settings: Settings,
    /// The token, or "-" to read it from stdin.
    token: String,
}

/// A failure that ends the command with exit status 2.
type Failure = Box<dyn std::error::Error>;

fn algorithm(name: &str) -> Result<Algorithm, Failure> {
    Algorithm::from_name(name).map_err(|reason| format!("--alg {name}: {reason}").into())
}

/// The longest leeway accepted: past a day, clock skew is not what is being forgiven.
const MAX_LEEWAY_SECONDS: u64 = 86_400;

fn build_verifier(settings: &Settings) -> Result<Verifier, Failure> {
    let path = settings.jwks.as_deref().ok_or("--jwks FILE is required")?;
    if settings.max_token_len > jwtgate::Validation::MAX_TOKEN_LEN_CAP {
        return Err(format!(
            "--max-token-len: at most {} bytes",
            jwtgate::Validation::MAX_TOKEN_LEN_CAP
        )
        .into());
    }
    if settings.leeway > MAX_LEEWAY_SECONDS {
        return Err(format!("--leeway: at most {MAX_LEEWAY_SECONDS} seconds").into());
    }
    let keys = tools::load_key_set(path)?;
    for warning in keys.warnings() {
        eprintln!("jwtgate: {}: {warning}", path.display());
    }
    let algorithms = match &settings.algorithms {
        Some(list) => AlgorithmSet::parse_list(list).map_err(|e| format!("--algorithms: {e}"))?,
        None => keys.algorithms(),
    };
    let mut validation = Validation::new(algorithms)
        .leeway(Duration::from_secs(settings.leeway))
        .max_token_len(settings.max_token_len);
    if let Some(issuer) = &settings.issuer {
        validation = validation.issuer(issuer);
    }
    for audience in &settings.audiences {
        validation = validation.audience(audience);
    }
    if let Some(typ) = &settings.typ {
        validation = validation.typ(typ);
    }
    if let Some(require) = &settings.require {
        let claims: Vec<ClaimName> = if require == "none" {
            Vec::new()
        } else {
            require
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .filter_map(|name| name.parse().ok())
                .collect()
        };
        validation = validation.require(claims);
    }
    if let Some(seconds) = settings.max_lifetime {
        validation = validation.max_lifetime(Duration::from_secs(seconds));
    }
    if let Some(subject) = &settings.subject {
        validation = validation.subject(SubjectMatch::Exact(subject.as_str().into()));
    }
    if let Some(prefix) = &settings.subject_prefix {
        validation = validation.subject(SubjectMatch::Prefix(prefix.as_str().into()));
    }
    Verifier::new(keys, validation).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// The verifier of token configuration `name` in the configuration `file`
/// (keys fetched once if the configuration fetches them).
fn verifier_from_config(file: &Path, name: &str) -> Result<Arc<Verifier>, Failure> {
    let loaded = jwtgate::config::load(file)?;
    for warning in &loaded.warnings {
        eprintln!("jwtgate: {}: {warning}", file.display());
    }
    let known: Vec<String> = loaded
        .policy
        .configs
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    let shared = Arc::new(arc_swap::ArcSwap::from_pointee(loaded.policy));
    if shared
        .load()
        .configs
        .iter()
        .any(|config| config.remote.is_some())
    {
        let manager = jwtgate::jwks::Manager::start(Arc::clone(&shared))
            .map_err(|e| format!("cannot start the key manager: {e}"))?;
        let missing = manager.wait_for_keys(|| false).unwrap_or_default();
        manager.stop();
        if let Some(error) = missing.into_iter().find(|error| error.config == name) {
            return Err(error.to_string().into());
        }
    }
    let policy = shared.load();
    let config = policy.configs.iter().find(|config| &*config.name == name);
    if let Some(config) = config
        && !config.keys_available
    {
        return Err(format!("token_config {name:?}: no key set was fetched").into());
    }
    config
        .map(|config| Arc::clone(&config.verifier))
        .ok_or_else(|| {
            format!(
                "{}: no token configuration is named {name:?} (defined: {})",
                file.display(),
                known.join(", ")
            )
            .into()
        })
}

fn open_input(path: &Path) -> Result<Input, Failure> {
    if path == Path::new("-") {
        return Ok(Input {
            name: "-".into(),
            reader: Box::new(std::io::stdin()),
        });
    }
    let file = std::fs::File::open(path).map_err(|source| ToolError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(Input {
        name: path.display().to_string(),
        reader: Box::new(file),
    })
}

fn progress_line(progress: &Progress) -> String {
    let seconds = progress.elapsed.as_secs_f64().max(1e-9);
    let outcomes: Vec<String> = Outcome::ALL
        .iter()
        .copied()
        .filter_map(|outcome| {
            let count = progress.counts.get(outcome.index()).copied().unwrap_or(0);
            (count > 0).then(|| format!("{} {count}", outcome.name()))
        })
        .collect();
    format!(
        "\r\x1b[2K{} tokens, {:.0}/s, {}",
        progress.done,
        progress.done as f64 / seconds,
        outcomes.join(", ")
    )
}

fn run_verify(args: &VerifyArgs, explicit: Explicit<'_>) -> Result<ExitCode, Failure> {
    if args.threads > batch::MAX_THREADS {
        return Err(format!("--threads: at most {}", batch::MAX_THREADS).into());
    }
    let verifier = match (&args.config, &args.token_config) {
        (Some(file), Some(name)) => {
            refuse_token_flags(file, explicit)?;
            verifier_from_config(file, name)?
        }
        _ => Arc::new(build_verifier(&args.settings)?),
    };
    let paths: Vec<PathBuf> = if args.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.inputs.clone()
    };
    let inputs = paths
        .iter()
        .map(|path| open_input(path))
        .collect::<Result<Vec<_>, _>>()?;
    // Opened before the run, so a bad path fails in a second, not after an hour.
    let histogram = args
        .histogram
        .as_ref()
        .map(|path| {
            std::fs::File::create(path)
                .map(|file| (path, file))
                .map_err(|source| ToolError::Io {
                    path: path.clone(),
                    source,
                })
        })
        .transpose()?;
    let options = BatchOptions {
        threads: args.threads,
        now: args.settings.now.map(UnixTime),
        ..BatchOptions::default()
    };
    let show_progress = !args.no_progress && !args.quiet && std::io::stderr().is_terminal();
    let mut stderr = std::io::stderr();
    let mut progress = |progress: &Progress| {
        if show_progress {
            let _ = stderr.write_all(progress_line(progress).as_bytes());
        }
    };
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let summary = batch::run(&verifier, inputs, &mut output, &options, &mut progress)?;
    drop(output);
    if show_progress {
        eprint!("\r\x1b[2K");
    }
    if !args.quiet {
        eprint!("{}", summary.render());
    }
    if let Some((path, mut file)) = histogram {
        file.write_all(summary.latency.percentile_distribution().as_bytes())
            .map_err(|source| ToolError::Io {
                path: path.clone(),
                source,
            })?;
    }
    Ok(if summary.all_valid() || args.exit_zero {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_keygen(args: &KeygenArgs) -> Result<ExitCode, Failure> {
    let report = keygen::keygen(&keygen::KeygenOptions {
        algorithm: algorithm(&args.alg)?,
        kid: args.kid.clone(),
        out_dir: args.out.clone(),
        rsa_bits: args.bits,
    })?;
    if let Some(private_key) = &report.private_key {
        println!("private key: {}", private_key.display());
    }
    println!(
        "jwks:        {} (kid {})",
        report.jwks.display(),
        report.kid
    );
    Ok(ExitCode::SUCCESS)
}

fn run_mint(args: &MintArgs) -> Result<ExitCode, Failure> {
    let algorithm = algorithm(&args.alg)?;
    let (key, key_kid) = mint::load_signing_key(&args.key, algorithm)?;
    let options = mint::MintOptions {
        algorithm,
        kid: args.kid.clone(),
        issuer: args.iss.clone(),
        audiences: args.aud.clone(),
        subject: args.sub.clone(),
        ttl: args.ttl,
        claims: args.claims.clone(),
        count: args.count,
        now: args.now.map_or_else(UnixTime::now, UnixTime),
        threads: args.threads,
    };
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::new(stdout.lock());
    mint::mint(&key, key_kid.as_deref(), &options, &mut output)?;
    Ok(ExitCode::SUCCESS)
}

fn run_inspect(args: &InspectArgs) -> Result<ExitCode, Failure> {
    let token = if args.token == "-" {
        let mut token = Vec::new();
        std::io::stdin()
            .take(16 * 1024 * 1024)
            .read_to_end(&mut token)
            .map_err(|e| format!("reading the token from stdin: {e}"))?;
        token
    } else {
        args.token.clone().into_bytes()
    };
    let verifier = match args.settings.jwks {
        Some(_) => Some(build_verifier(&args.settings)?),
        None => None,
    };
    let now = args.settings.now.map_or_else(UnixTime::now, UnixTime);
    let inspection = inspect::inspect(&token, verifier.as_ref(), now);
    print!("{}", inspection.report);
    Ok(match inspection.outcome {
        Some(Outcome::Valid) | None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(1),
    })
}

impl ServeArgs {
    /// `serve --demo` with every other setting at its default.
    fn try_parse_demo() -> Result<ServeArgs, Failure> {
        #[derive(Parser)]
        struct Demo {
            #[command(flatten)]
            args: ServeArgs,
        }
        Ok(Demo::try_parse_from(["jwtgate", "--demo"])?.args)
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| format!("--{flag}: a positive number of seconds").into())
}

/// Single quotes for a POSIX shell; demo tokens are base64url, so this is a formality.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn print_demo_lines(addr: SocketAddr) -> Result<(), Failure> {
    let now = UnixTime::now();
    let token = jwtgate::demo::demo_token(now, 3600, "alice")?;
    let tampered = jwtgate::demo::tampered_token(&token, now)?;
    let url = format!("http://{addr}/");
    println!(
        "\nDemo mode: built-in demo keys (public in the repository; never trust them outside a laptop).\n\
         Issuer {iss}, audience {aud}.\n\n\
         Allowed, 200 with x-jwt-sub: alice (the token is valid for an hour):\n  \
         curl -i -H {valid} {url}\n\n\
         Denied, 401 bad_signature (the payload was swapped for one naming admin):\n  \
         curl -i -H {forged} {url}\n\n\
         Missing token, 401 with a bare Bearer challenge:\n  \
         curl -i {url}\n\n\
         Stop with Ctrl-C.",
        iss = jwtgate::demo::DEMO_ISSUER,
        aud = jwtgate::demo::DEMO_AUDIENCE,
        valid = shell_quoted(&format!("Authorization: Bearer {token}")),
        forged = shell_quoted(&format!("Authorization: Bearer {tampered}")),
    );
    Ok(())
}

/// The command line's server settings (defaults included).
fn serve_options(args: &ServeArgs) -> Result<jwtgate::server::ServeOptions, Failure> {
    use jwtgate::authz::{AuthzOptions, Clock};
    use jwtgate::server::{ConnectionLimits, IoMode, ServeOptions};
    if !(args.access_log_sample > 0.0 && args.access_log_sample <= 1.0) {
        return Err("--access-log-sample: a fraction above 0 and at most 1, such as 0.01".into());
    }
    Ok(ServeOptions {
        listen: args.listen,
        verify_listen: args.verify_listen,
        admin_listen: (!args.no_admin).then_some(args.admin_listen),
        shards: args.shards,
        io: match args.io {
            IoArg::Uring => IoMode::Uring,
            IoArg::Epoll => IoMode::Epoll,
            IoArg::Auto => IoMode::Auto,
        },
        limits: ConnectionLimits {
            head: jwtgate::http::Limits {
                max_request_line: args.max_request_line_bytes,
                max_header_bytes: args.max_header_bytes,
            },
            header_timeout: seconds("header-timeout", args.header_timeout)?,
            idle_timeout: seconds("idle-timeout", args.idle_timeout)?,
        },
        max_connections: args.max_connections,
        drain_timeout: seconds("drain-timeout", args.drain_timeout)?,
        authz: AuthzOptions {
            forward_payload: args.forward_payload,
            max_body: args.max_body_bytes,
            danger_skip_verification: args.danger_no_verify,
            clock: args
                .settings
                .now
                .map_or(Clock::System, |now| Clock::Fixed(UnixTime(now))),
        },
        drain_delay: match args.drain_delay {
            0.0 => Duration::ZERO,
            delay => seconds("drain-delay", delay)?,
        },
        batch: jwtgate::authz::BatchLimits {
            max_body: args.max_verify_body_bytes,
            max_lines: args.max_verify_lines,
        },
        metrics: !args.no_metrics,
        access_log: args.access_log.as_deref().map(|destination| {
            jwtgate::access_log::AccessLogOptions {
                destination: jwtgate::access_log::Destination::parse(destination),
                sample: args.access_log_sample,
            }
        }),
        summary_interval: match args.summary_interval {
            0.0 => None,
            interval => Some(seconds("summary-interval", interval)?),
        },
    })
}

/// Which flags the command line set explicitly (not by default).
type Explicit<'a> = &'a dyn Fn(&str) -> bool;

/// The server flags the command line gave explicitly, as settings that go
/// on top of the configuration file's `[server]` table.
fn explicit_settings(
    args: &ServeArgs,
    cli: &jwtgate::server::ServeOptions,
    explicit: Explicit<'_>,
) -> jwtgate::config::ServerSettings {
    use jwtgate::config::{AdminListen, ServerSettings};
    let given = |id: &str| explicit(id);
    ServerSettings {
        listen: given("listen").then_some(cli.listen),
        admin_listen: (given("admin_listen") || given("no_admin"))
            .then_some(cli.admin_listen.map_or(AdminListen::Off, AdminListen::At)),
        verify_listen: cli.verify_listen.filter(|_| given("verify_listen")),
        shards: given("shards").then_some(cli.shards),
        io: given("io").then_some(cli.io),
        forward_payload: given("forward_payload").then_some(args.forward_payload),
        max_header_bytes: given("max_header_bytes").then_some(args.max_header_bytes),
        max_request_line_bytes: given("max_request_line_bytes")
            .then_some(args.max_request_line_bytes),
        max_body_bytes: given("max_body_bytes").then_some(args.max_body_bytes),
        max_verify_body_bytes: given("max_verify_body_bytes").then_some(args.max_verify_body_bytes),
        max_verify_lines: given("max_verify_lines").then_some(args.max_verify_lines),
        max_connections: given("max_connections").then_some(args.max_connections),
        header_timeout: given("header_timeout").then_some(cli.limits.header_timeout),
        idle_timeout: given("idle_timeout").then_some(cli.limits.idle_timeout),
        drain_timeout: given("drain_timeout").then_some(cli.drain_timeout),
        drain_delay: given("drain_delay").then_some(cli.drain_delay),
        metrics: given("no_metrics").then_some(cli.metrics),
        access_log: cli
            .access_log
            .as_ref()
            .filter(|_| given("access_log"))
            .map(|log| log.destination.clone()),
        access_log_sample: given("access_log_sample").then_some(args.access_log_sample),
        summary_interval: given("summary_interval")
            .then_some(cli.summary_interval.unwrap_or(Duration::ZERO)),
    }
}

/// Token flags (argument id, flag) belong to a token configuration; with
/// --config they are in the file.
const TOKEN_FLAGS: [(&str, &str); 11] = [
    ("jwks", "--jwks"),
    ("issuer", "--issuer"),
    ("audiences", "--audience"),
    ("algorithms", "--algorithms"),
    ("leeway", "--leeway"),
    ("typ", "--typ"),
    ("require", "--require"),
    ("max_lifetime", "--max-lifetime"),
    ("subject", "--subject"),
    ("subject_prefix", "--subject-prefix"),
    ("max_token_len", "--max-token-len"),
];

/// Refuses token flags given together with --config FILE.
fn refuse_token_flags(file: &Path, explicit: Explicit<'_>) -> Result<(), Failure> {
    match TOKEN_FLAGS.iter().find(|(id, _)| explicit(id)) {
        Some((_, flag)) => Err(format!(
            "{flag} is a token setting: with --config, set it in a [[token_config]] of {}",
            file.display()
        )
        .into()),
        None => Ok(()),
    }
}

fn describe_reload(
    file: &Path,
    result: &Result<jwtgate::config::Reloaded, jwtgate::config::ConfigError>,
    why: &str,
    status: &jwtgate::status::Status,
) {
    match result {
        Ok(reloaded) => {
            status.reloaded();
            for warning in &reloaded.warnings {
                eprintln!("jwtgate: {}: {warning}", file.display());
            }
            eprintln!(
                "jwtgate: reloaded {} ({why}): {} token configurations, {} rules",
                file.display(),
                reloaded.token_configs,
                reloaded.rules
            );
            if reloaded.server_changed {
                eprintln!(
                    "jwtgate: warning: [server] settings changed; they take effect on restart"
                );
            }
        }
        Err(error) => {
            status.reload_failed();
            eprintln!("jwtgate: reload failed ({why}), keeping the running configuration: {error}")
        }
    }
}

fn run_serve(args: &ServeArgs, explicit: Explicit<'_>) -> Result<ExitCode, Failure> {
    use jwtgate::server::Server;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Registered before any thread starts, so a signal during start-up is not lost.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let cli_options = serve_options(args)?;
    let (policy, options, loaded) = match &args.config {
        Some(file) => {
            refuse_token_flags(file, explicit)?;
            let stamp = jwtgate::config::Stamp::of(file);
            let loaded = jwtgate::config::load(file)?;
            for warning in &loaded.warnings {
                eprintln!("jwtgate: {}: {warning}", file.display());
            }
            // Defaults, then the file's [server] table, then explicit flags.
            let mut options = cli_options.clone();
            loaded.server.apply(&mut options);
            explicit_settings(args, &cli_options, explicit).apply(&mut options);
            let jwtgate::config::Loaded {
                policy,
                server,
                key_files,
                ..
            } = loaded;
            let shared = Arc::new(arc_swap::ArcSwap::from_pointee(policy));
            (shared, options, Some((stamp, server, key_files)))
        }
        None => {
            let verifier = if args.demo {
                jwtgate::demo::demo_verifier()?
            } else {
                build_verifier(&args.settings)?
            };
            let policy = Arc::new(arc_swap::ArcSwap::from_pointee(
                jwtgate::policy::Policy::single(verifier),
            ));
            (policy, cli_options, None)
        }
    };
    if options.limits.head.max_request_line > options.limits.head.max_header_bytes {
        return Err("the request-line limit cannot exceed the header limit".into());
    }
    // Fetched key sets first: serving starts once they are in (or their
    // start-up timeout says to start without them).
    // With a configuration file the manager runs even without fetched keys
    // yet, so that a reload can add some.
    let keys = if args.config.is_some() {
        Some(
            jwtgate::jwks::Manager::start(Arc::clone(&policy))
                .map_err(|e| format!("cannot start the key manager: {e}"))?,
        )
    } else {
        None
    };
    if let Some(manager) = &keys {
        // A shutdown signal ends the wait: SIGTERM must not take startup_timeout.
        let stop_asked = || {
            signals
                .pending()
                .any(|signal| signal == SIGTERM || signal == SIGINT)
        };
        let Some(missing) = manager.wait_for_keys(stop_asked) else {
            manager.stop();
            eprintln!("jwtgate serve: stopped during start-up, before any key set arrived");
            return Ok(ExitCode::SUCCESS);
        };
        if !missing.is_empty() {
            manager.stop();
            let reasons: Vec<String> = missing.iter().map(ToString::to_string).collect();
            return Err(reasons.join("\njwtgate: ").into());
        }
        for config in policy.load().configs.iter() {
            if config.remote.is_some() && !config.keys_available {
                eprintln!(
                    "jwtgate: warning: token_config {:?} starts without keys (allow_start_without_keys): not ready, its tokens get keys_unavailable",
                    &*config.name
                );
            }
        }
    }
    let server = Server::start(Arc::clone(&policy), &options)?;
    // Watching starts before readiness is announced, so that a change made
    // as soon as the server is up is never missed.
    let mut reloader = match (&args.config, loaded) {
        (Some(file), Some((stamp, server, key_files))) => Some(
            jwtgate::config::Reloader::new(file, stamp, server, key_files, policy)
                .with_key_manager(keys.clone()),
        ),
        _ => None,
    };
    if let Some(reason) = server.uring_fallback() {
        eprintln!("jwtgate: warning: io_uring is unavailable ({reason}); serving with epoll");
    }
    if args.danger_no_verify {
        eprintln!("jwtgate: warning: --danger-no-verify: every request is allowed unverified");
    }
    let admin = server
        .admin_addr()
        .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    // One line, parsed by tests and scripts: the admin address stays last.
    let verify = server
        .verify_addr()
        .map(|addr| format!(", verify on {addr}"))
        .unwrap_or_default();
    println!(
        "jwtgate serve: listening on {} (shards {}, io {}){verify}, admin on {admin}",
        server.local_addr(),
        server.shard_count(),
        server.io()
    );
    if args.demo {
        print_demo_lines(server.local_addr())?;
    }
    let _ = std::io::stdout().flush();
    let summary_every = options.summary_interval.filter(|every| !every.is_zero());
    // Without summaries, counts are still collected now and then, so that
    // shards let go of what they counted under replaced configurations.
    let collect_every = summary_every.unwrap_or(Duration::from_secs(60));
    let mut next_collection = std::time::Instant::now() + collect_every;
    let stop = 'serving: loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => {
                    // Also the signal logrotate sends after moving the log away.
                    server.reopen_access_log();
                    match (&mut reloader, &args.config) {
                        (Some(reloader), Some(file)) => {
                            describe_reload(file, &reloader.reload(), "SIGHUP", server.status())
                        }
                        _ => eprintln!("jwtgate: SIGHUP: nothing to reload without --config"),
                    }
                }
                SIGINT => break 'serving "SIGINT",
                _ => break 'serving "SIGTERM",
            }
        }
        if let (Some(reloader), Some(file)) = (&mut reloader, &args.config)
            && let Some(result) = reloader.poll()
        {
            describe_reload(file, &result, "file changed", server.status());
        }
        if std::time::Instant::now() >= next_collection {
            if summary_every.is_some() {
                eprintln!("{}", server.summary());
            } else {
                server.collect();
            }
            next_collection += collect_every;
        }
        // Signals, file changes and summaries are noticed within this.
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("jwtgate serve: {stop}, draining");
    let summary = server.shutdown();
    if let Some(manager) = &keys {
        manager.stop();
    }
    eprintln!("{summary}");
    eprintln!("jwtgate serve: stopped");
    Ok(ExitCode::SUCCESS)
}

fn run_check_config(args: &CheckConfigArgs) -> Result<ExitCode, Failure> {
    let loaded = jwtgate::config::load(&args.config)?;
    let mut options = jwtgate::server::ServeOptions::default();
    loaded.server.apply(&mut options);
    print!(
        "{}",
        tools::check_config::report(&loaded, &args.config, &options, &args.requests)
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let command_matches = matches.subcommand().map(|(_, m)| m);
    let explicit = |id: &str| {
        command_matches.and_then(|m| {
            m.try_get_raw(id)
                .ok()
                .flatten()
                .and_then(|_| m.value_source(id))
        }) == Some(clap::parser::ValueSource::CommandLine)
    };
    let result = match &cli.command {
        None => ServeArgs::try_parse_demo().and_then(|args| run_serve(&args, &|_| false)),
        Some(Command::Serve(args)) => run_serve(args, &explicit),
        Some(Command::CheckConfig(args)) => run_check_config(args),
        Some(Command::Demo) => jwtgate::demo::run(UnixTime::now())
            .map(|report| {
                print!("{report}");
                ExitCode::SUCCESS
            })
            .map_err(Failure::from),
        Some(Command::Verify(args)) => run_verify(args, &explicit),
        Some(Command::Keygen(args)) => run_keygen(args),
        Some(Command::Mint(args)) => run_mint(args),
        Some(Command::Inspect(args)) => run_inspect(args),
    };
    result.unwrap_or_else(|error| {
        eprintln!("jwtgate: {error}");
        ExitCode::from(2)
    })
}
