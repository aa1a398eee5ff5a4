//! The `jwtgate` command line: parses arguments (clap), builds the library's
//! option structs, calls the library, and maps results to exit codes.
//!
//! Exit codes, like grep: 0 all tokens valid, 1 some token not valid, 2 usage,
//! key or I/O error (one line on stderr naming the file and the problem).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line prints

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use jwtgate::access_log::Destination;
use jwtgate::authz::Clock;
use jwtgate::control::{self, Console, Launch, PolicySource};
use jwtgate::diagnostics::{Level, LogFormat};
use jwtgate::server::{IoMode, Sharing};
use jwtgate::settings::{self, AdminListen, Runtime, ServerLayer, SettingError};
use jwtgate::tools;
use jwtgate::{Algorithm, AlgorithmSet, ClaimName, SubjectMatch, UnixTime, Validation, Verifier};
use std::io::Write as _;

use cli::{
    CheckConfigArgs, Cli, Command, IoArg, LogFormatArg, ManArgs, RevokeArgs, ServeArgs, Settings,
};

mod cli;
mod commands;

/// A failure that ends the command with exit status 2.
pub(crate) type Failure = Box<dyn std::error::Error>;

pub(crate) fn algorithm(name: &str) -> Result<Algorithm, Failure> {
    Algorithm::from_name(name).map_err(|reason| format!("--alg {name}: {reason}").into())
}

/// `--flag: why`, for a value the settings refuse.
pub(crate) fn refused(flag: &str) -> impl Fn(SettingError) -> Failure + '_ {
    move |error| format!("--{flag}: {error}").into()
}

impl Settings {
    /// The first token flag given, if any: with --config, token settings come
    /// from the file's [[token_config]], and a flag would be silently ignored.
    fn first_token_flag(&self) -> Option<&'static str> {
        [
            (self.jwks.is_some(), "--jwks"),
            (self.issuer.is_some(), "--issuer"),
            (!self.audiences.is_empty(), "--audience"),
            (self.algorithms.is_some(), "--algorithms"),
            (self.leeway.is_some(), "--leeway"),
            (self.typ.is_some(), "--typ"),
            (self.require.is_some(), "--require"),
            (self.max_lifetime.is_some(), "--max-lifetime"),
            (self.subject.is_some(), "--subject"),
            (self.subject_prefix.is_some(), "--subject-prefix"),
            (self.max_token_len.is_some(), "--max-token-len"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// Refuses token flags given together with --config FILE.
    pub(crate) fn refuse_with_config(&self, file: &Path) -> Result<(), Failure> {
        match self.first_token_flag() {
            Some(flag) => Err(format!(
                "{flag} is a token setting: with --config, set it in a [[token_config]] of {}",
                file.display()
            )
            .into()),
            None => Ok(()),
        }
    }

    pub(crate) fn verifier(&self) -> Result<Verifier, Failure> {
        let path = self.jwks.as_deref().ok_or("--jwks FILE is required")?;
        let keys = tools::load_key_set(path)?;
        for warning in keys.warnings() {
            eprintln!("jwtgate: {}: {warning}", path.display());
        }
        let algorithms = match &self.algorithms {
            Some(list) => {
                AlgorithmSet::parse_list(list).map_err(|e| format!("--algorithms: {e}"))?
            }
            None => keys.algorithms(),
        };
        let mut validation = Validation::new(algorithms);
        if let Some(seconds) = self.leeway {
            validation = validation
                .leeway(settings::leeway(Duration::from_secs(seconds)).map_err(refused("leeway"))?);
        }
        if let Some(bytes) = self.max_token_len {
            validation = validation
                .max_token_len(settings::token_length(bytes).map_err(refused("max-token-len"))?);
        }
        if let Some(issuer) = &self.issuer {
            validation = validation.issuer(issuer);
        }
        for audience in &self.audiences {
            validation = validation.audience(audience);
        }
        if let Some(typ) = &self.typ {
            validation = validation.typ(typ);
        }
        if let Some(require) = &self.require {
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
        if let Some(seconds) = self.max_lifetime {
            validation = validation.max_lifetime(Duration::from_secs(seconds));
        }
        if let Some(subject) = &self.subject {
            validation = validation.subject(SubjectMatch::Exact(subject.as_str().into()));
        }
        if let Some(prefix) = &self.subject_prefix {
            validation = validation.subject(SubjectMatch::Prefix(prefix.as_str().into()));
        }
        Verifier::new(keys, validation).map_err(|e| format!("{}: {e}", path.display()).into())
    }
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

    /// The server settings the flags give: they go over the file's `[server]` table.
    fn layer(&self) -> Result<ServerLayer, Failure> {
        let seconds = |flag: &'static str, value: Option<f64>| {
            value
                .map(|value| settings::seconds(value).map_err(refused(flag)))
                .transpose()
        };
        let timeout = |flag: &'static str, value: Option<f64>| {
            seconds(flag, value)?
                .map(|duration| settings::positive(duration).map_err(refused(flag)))
                .transpose()
        };
        Ok(ServerLayer {
            listen: self.listen,
            admin_listen: match (self.no_admin, self.admin_listen) {
                (true, _) => Some(AdminListen::Off),
                (false, addr) => addr.map(AdminListen::At),
            },
            verify_listen: self.verify_listen,
            grpc_listen: self.grpc_listen,
            grpc_max_message_bytes: self
                .grpc_max_message_bytes
                .map(|bytes| {
                    settings::grpc_message_bytes(bytes).map_err(refused("grpc-max-message-bytes"))
                })
                .transpose()?,
            grpc_max_concurrent_streams: self
                .grpc_max_concurrent_streams
                .map(|streams| {
                    settings::grpc_streams(streams).map_err(refused("grpc-max-concurrent-streams"))
                })
                .transpose()?,
            grpc_keepalive_interval: timeout(
                "grpc-keepalive-interval",
                self.grpc_keepalive_interval,
            )?,
            grpc_keepalive_timeout: timeout("grpc-keepalive-timeout", self.grpc_keepalive_timeout)?,
            grpc_idle_timeout: timeout("grpc-idle-timeout", self.grpc_idle_timeout)?,
            shards: self.shards,
            io: self.io.map(|io| match io {
                IoArg::Uring => IoMode::Uring,
                IoArg::Epoll => IoMode::Epoll,
                IoArg::Auto => IoMode::Auto,
            }),
            forward_payload: self.forward_payload.then_some(true),
            max_header_bytes: self.max_header_bytes,
            max_request_line_bytes: self.max_request_line_bytes,
            max_body_bytes: self.max_body_bytes,
            max_verify_body_bytes: self.max_verify_body_bytes,
            max_verify_lines: self.max_verify_lines,
            max_connections: self.max_connections,
            max_queue_delay: seconds("max-queue-delay", self.max_queue_delay)?,
            header_timeout: timeout("header-timeout", self.header_timeout)?,
            idle_timeout: timeout("idle-timeout", self.idle_timeout)?,
            drain_timeout: timeout("drain-timeout", self.drain_timeout)?,
            drain_delay: seconds("drain-delay", self.drain_delay)?,
            drain_close_spread: seconds("drain-close-spread", self.drain_close_spread)?,
            metrics: self.no_metrics.then_some(false),
            access_log: self.access_log.as_deref().map(Destination::parse),
            access_log_sample: self
                .access_log_sample
                .map(|rate| settings::sample_rate(rate).map_err(refused("access-log-sample")))
                .transpose()?,
            summary_interval: seconds("summary-interval", self.summary_interval)?,
            token_cache_entries: self
                .token_cache_entries
                .map(|entries| {
                    settings::cache_entries(entries).map_err(refused("token-cache-entries"))
                })
                .transpose()?,
            token_cache_max_age: seconds("token-cache-max-age", self.token_cache_max_age)?
                .map(|age| settings::cache_max_age(age).map_err(refused("token-cache-max-age")))
                .transpose()?,
        })
    }
}

fn run_serve(args: &ServeArgs) -> Result<ExitCode, Failure> {
    jwtgate::diagnostics::set_format(match args.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) | None => LogFormat::Text,
    });
    let policy = match &args.config {
        Some(file) => {
            args.settings.refuse_with_config(file)?;
            PolicySource::File(file.clone())
        }
        None if args.demo => PolicySource::Single(Box::new(jwtgate::demo::demo_verifier()?)),
        None => PolicySource::Single(Box::new(args.settings.verifier()?)),
    };
    let runtime = Runtime {
        clock: args
            .settings
            .now
            .map_or(Clock::System, |now| Clock::Fixed(UnixTime(now))),
        danger_skip_verification: args.danger_no_verify,
        sharing: if args.handover {
            Sharing::Handover
        } else {
            Sharing::Exclusive
        },
    };
    let launch = Launch::new(policy, args.layer()?, runtime);
    control::run(launch, &mut Console { demo: args.demo })?;
    Ok(ExitCode::SUCCESS)
}

fn run_check_config(args: &CheckConfigArgs) -> Result<ExitCode, Failure> {
    let mut loaded = jwtgate::config::load(&args.config)?;
    let options = loaded.server.clone().resolve(Runtime::default())?;
    print!(
        "{}",
        tools::check_config::report(&loaded, &args.config, &options, &args.requests)
    );
    let fetched = if args.fetch {
        let (report, all_fetched) = tools::check_config::fetch_report(&mut loaded);
        print!("{report}");
        // The revocation store, read once as `serve` would at start.
        let revocations_read = match &loaded.revocation {
            None => true,
            Some(_) => match tools::revoke::list(&args.config, UnixTime::now()) {
                Ok((_, summary)) => {
                    println!("\nrevocations: {summary}");
                    true
                }
                Err(error) => {
                    println!("\nrevocations: cannot be read: {error}");
                    false
                }
            },
        };
        all_fetched && revocations_read
    } else {
        true
    };
    if !args.headers.is_empty() || args.token.is_some() {
        let now = args.now.map_or_else(UnixTime::now, UnixTime);
        println!("\ndecisions:");
        for request in &args.requests {
            let sample = tools::decision::Sample {
                request,
                headers: &args.headers,
                token: args.token.as_deref(),
            };
            print!(
                "{}",
                tools::decision::explain(&loaded, options.authz, &sample, now)
            );
        }
    }
    Ok(if fetched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_revoke(args: &RevokeArgs) -> Result<ExitCode, Failure> {
    use jwtgate::tools::revoke::{self, Target};
    let now = UnixTime::now();
    if args.list {
        let (lines, summary) = revoke::list(&args.config, now)?;
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            writeln!(stdout, "{line}")?;
        }
        eprintln!("jwtgate revoke: {summary}");
        return Ok(ExitCode::SUCCESS);
    }
    let ttl = match &args.ttl {
        Some(text) => Some(jwtgate::config::duration_text(text).ok_or_else(|| {
            format!("--ttl {text}: expected a duration such as \"30m\" or \"2h\"")
        })?),
        None => None,
    };
    let target = match (&args.jti, &args.subject, &args.kid) {
        (Some(jti), None, None) => Target::Token {
            issuer: args.issuer.clone().unwrap_or_default(),
            jti: jti.clone(),
        },
        (None, Some(subject), None) => Target::Subject {
            issuer: args.issuer.clone().unwrap_or_default(),
            subject: subject.clone(),
            before: match &args.before {
                Some(text) => Some(jwtgate::tools::revoke::instant(text).ok_or_else(|| {
                    format!(
                        "--before {text}: expected Unix seconds or RFC 3339 (2026-12-06T10:00:00Z)"
                    )
                })?),
                None => None,
            },
        },
        (None, None, Some(kid)) => Target::Key {
            kid: kid.clone(),
            config: args.token_config.clone().unwrap_or_default(),
        },
        _ => return Err("give one of --jti, --subject or --kid".into()),
    };
    let done = revoke::revoke(&args.config, target, ttl, now)?;
    println!("jwtgate revoke: {done}");
    Ok(ExitCode::SUCCESS)
}

fn run_man(args: &ManArgs) -> Result<ExitCode, Failure> {
    let command = Cli::command();
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(command, dir))
                .map_err(|source| tools::ToolError::Io {
                    path: dir.clone(),
                    source,
                })?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            std::io::stdout().write_all(&page)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => ServeArgs::try_parse_demo().and_then(|args| run_serve(&args)),
        Some(Command::Serve(args)) => run_serve(args),
        Some(Command::CheckConfig(args)) => run_check_config(args),
        Some(Command::Demo) => jwtgate::demo::run(UnixTime::now())
            .map(|report| {
                print!("{report}");
                ExitCode::SUCCESS
            })
            .map_err(Failure::from),
        Some(Command::Verify(args)) => commands::run_verify(args),
        Some(Command::Keygen(args)) => commands::run_keygen(args),
        Some(Command::Mint(args)) => commands::run_mint(args),
        Some(Command::Inspect(args)) => commands::run_inspect(args),
        Some(Command::Completions(args)) => {
            let mut command = Cli::command();
            clap_complete::generate(args.shell, &mut command, "jwtgate", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man(args)) => run_man(args),
        Some(Command::Revoke(args)) => run_revoke(args),
    };
    result.unwrap_or_else(|error| {
        // Through the diagnostics, so that it is JSON under `--log-format
        // json` and a quoted configuration cannot forge a line.
        jwtgate::diagnostics::line(Level::Error, &format!("jwtgate: {error}"));
        ExitCode::from(2)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::CommandFactory as _;
    use jwtgate::settings::{AdminListen, ServerLayer};

    use super::cli::Cli;

    /// The help of `serve --<flag>`.
    fn serve_help(flag: &str) -> String {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").expect("serve");
        let argument = serve
            .get_arguments()
            .find(|argument| argument.get_long() == Some(flag))
            .unwrap_or_else(|| panic!("no --{flag}"));
        argument
            .get_help()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Each flag of every command states its default once, or not at all,
    /// in the help as printed (clap's own `[default: ...]` included).
    #[test]
    fn no_flag_states_two_defaults() {
        let mut command = Cli::command();
        command.build();
        for sub in command.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            let mut flag = String::new();
            let mut defaults = 0;
            for line in help.lines() {
                let trimmed = line.trim_start();
                if trimmed.starts_with('-') && line.len() - trimmed.len() <= 6 {
                    flag = trimmed.to_owned();
                    defaults = 0;
                }
                defaults += line.matches("[default").count();
                assert!(defaults <= 1, "{}: {flag}\n{help}", sub.get_name());
            }
        }
    }

    #[test]
    fn the_help_states_the_defaults_the_settings_declare() {
        let defaults = ServerLayer::defaults();
        let Some(AdminListen::At(admin)) = defaults.admin_listen else {
            panic!("the admin port is on by default")
        };
        let seconds = |value: Option<std::time::Duration>| value.unwrap().as_secs_f64().to_string();
        let expected = [
            ("listen", defaults.listen.unwrap().to_string()),
            ("admin-listen", admin.to_string()),
            (
                "max-header-bytes",
                defaults.max_header_bytes.unwrap().to_string(),
            ),
            (
                "max-request-line-bytes",
                defaults.max_request_line_bytes.unwrap().to_string(),
            ),
            (
                "max-body-bytes",
                defaults.max_body_bytes.unwrap().to_string(),
            ),
            (
                "max-verify-body-bytes",
                defaults.max_verify_body_bytes.unwrap().to_string(),
            ),
            (
                "max-verify-lines",
                defaults.max_verify_lines.unwrap().to_string(),
            ),
            (
                "max-connections",
                defaults.max_connections.unwrap().to_string(),
            ),
            ("max-queue-delay", seconds(defaults.max_queue_delay)),
            ("header-timeout", seconds(defaults.header_timeout)),
            ("idle-timeout", seconds(defaults.idle_timeout)),
            ("drain-timeout", seconds(defaults.drain_timeout)),
            ("drain-delay", seconds(defaults.drain_delay)),
            ("drain-close-spread", seconds(defaults.drain_close_spread)),
            ("summary-interval", seconds(defaults.summary_interval)),
            (
                "token-cache-entries",
                defaults.token_cache_entries.unwrap().to_string(),
            ),
            ("token-cache-max-age", seconds(defaults.token_cache_max_age)),
            (
                "grpc-max-message-bytes",
                defaults.grpc_max_message_bytes.unwrap().to_string(),
            ),
            (
                "grpc-max-concurrent-streams",
                defaults.grpc_max_concurrent_streams.unwrap().to_string(),
            ),
            (
                "grpc-keepalive-interval",
                seconds(defaults.grpc_keepalive_interval),
            ),
            (
                "grpc-keepalive-timeout",
                seconds(defaults.grpc_keepalive_timeout),
            ),
            ("grpc-idle-timeout", seconds(defaults.grpc_idle_timeout)),
            (
                "access-log-sample",
                defaults.access_log_sample.unwrap().to_string(),
            ),
            (
                "leeway",
                jwtgate::Validation::DEFAULT_LEEWAY.as_secs().to_string(),
            ),
            (
                "max-token-len",
                jwtgate::Validation::DEFAULT_MAX_TOKEN_LEN.to_string(),
            ),
        ];
        for (flag, default) in expected {
            let help = serve_help(flag);
            assert!(
                help.ends_with(&format!("[default: {default}]")),
                "--{flag}: {help:?} should end with [default: {default}]"
            );
        }
    }
}
