//! The gRPC load generator of scripts/bench-grpc.sh: Envoy's
//! `envoy.service.auth.v3.Authorization/Check` over HTTP/2 cleartext (prior
//! knowledge), with a different token in each call, every answer checked.
//!
//! ```text
//! jwtgate-grpc-load --addr HOST:PORT --tokens FILE [--connections 8] [--streams 16]
//!                   [--seconds 10 | --calls N] [--timeout 5] [--expect-code 0]
//!                   [--host 127.0.0.1]
//! ```
//!
//! Each non-empty line of FILE is a token; each becomes one gRPC-framed
//! `CheckRequest` before the run (`GET /` on `--host` with
//! `authorization: Bearer <token>`), and the calls send them in turn, over
//! and over, so that a call costs the generator little more than the
//! HTTP/2 frames. `--connections` × `--streams` calls are in flight at any
//! time. An answer counts when it is HTTP 200 with `grpc-status: 0` and a
//! `CheckResponse` whose status code is `--expect-code`, with an
//! `ok_response` for 0 and a `denied_response` otherwise; anything else
//! stops the run. Prints one JSON line:
//!
//! ```text
//! {"requests":N,"seconds":S,"rps":R,"p50_us":A,"p99_us":B,"errors":E,...}
//! ```
//!
//! with `"first_error"` when E > 0, and exits 1 then. One thread (a
//! current-thread tokio runtime), to be pinned to a CPU of its own.
//!
//! Layout: `bodies` (the pre-encoded requests), `load` (connections,
//! streams, counts), `verdict` (reading an answer).

mod bodies;
mod load;
mod verdict;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use load::{Outcome, Plan, Until};
use verdict::Expected;

const USAGE: &str = "usage: jwtgate-grpc-load --addr HOST:PORT --tokens FILE \
[--connections 8] [--streams 16] [--seconds 10 | --calls N] [--timeout 5] \
[--expect-code 0] [--host 127.0.0.1]";

/// The command line, parsed.
struct Options {
    plan: Plan,
    tokens: String,
    host: String,
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|error| format!("{flag} {value}: {error}"))
}

fn positive(flag: &str, value: &str) -> Result<u64, String> {
    match parse::<u64>(flag, value)? {
        0 => Err(format!("{flag} must be at least 1")),
        n => Ok(n),
    }
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let seconds: f64 = parse(flag, value)?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| format!("{flag} must be a positive number of seconds"))
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut addr = None;
    let mut tokens = None;
    let mut host = "127.0.0.1".to_owned();
    let mut connections = 8;
    let mut streams = 16;
    let mut until = Until::Elapsed(Duration::from_secs(10));
    let mut call_timeout = Duration::from_secs(5);
    let mut expected = Expected { code: 0 };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let too_many = |n: u64| {
            usize::try_from(n).map_err(|_| format!("{flag} {n}: more than this machine can hold"))
        };
        match flag.as_str() {
            "--addr" => addr = Some(parse::<SocketAddr>(flag, value)?),
            "--tokens" => tokens = Some(value.clone()),
            "--host" => host.clone_from(value),
            "--connections" => connections = too_many(positive(flag, value)?)?,
            "--streams" => streams = too_many(positive(flag, value)?)?,
            "--seconds" => until = Until::Elapsed(seconds(flag, value)?),
            "--calls" => until = Until::Calls(positive(flag, value)?),
            "--timeout" => call_timeout = seconds(flag, value)?,
            "--expect-code" => expected.code = parse(flag, value)?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    let (Some(addr), Some(tokens)) = (addr, tokens) else {
        return Err(format!("--addr and --tokens are required\n{USAGE}"));
    };
    Ok(Options {
        plan: Plan {
            addr,
            connections,
            streams,
            until,
            call_timeout,
            expected,
        },
        tokens,
        host,
    })
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn summary(outcome: &Outcome, plan: &Plan, bodies: usize) -> String {
    let seconds = outcome.elapsed.as_secs_f64();
    let rps = if seconds > 0.0 {
        outcome.answered as f64 / seconds
    } else {
        0.0
    };
    let mut line = format!(
        "{{\"requests\":{},\"seconds\":{seconds:.6},\"rps\":{rps:.1},\"p50_us\":{},\"p99_us\":{},\
\"errors\":{},\"connections\":{},\"streams\":{},\"bodies\":{bodies}",
        outcome.answered,
        outcome.latency.value_at_quantile(0.5),
        outcome.latency.value_at_quantile(0.99),
        outcome.failed,
        plan.connections,
        plan.streams,
    );
    if let Some(failure) = &outcome.first_failure {
        line.push_str(",\"first_error\":");
        line.push_str(&json_string(&failure.to_string()));
    }
    line.push('}');
    line
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let options = options(args)?;
    let tokens = std::fs::read_to_string(&options.tokens)
        .map_err(|error| format!("{}: {error}", options.tokens))?;
    let bodies = bodies::from_tokens(&tokens, &options.host)?;
    if bodies.is_empty() {
        return Err(format!("{}: no tokens", options.tokens));
    }
    let count = bodies.len();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("runtime: {error}"))?;
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&runtime, load::run(options.plan, bodies))?;
    println!("{}", summary(&outcome, &options.plan, count));
    Ok(if outcome.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("jwtgate-grpc-load: {error}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a \"b\" \\ c\n"), r#""a \"b\" \\ c\u000a""#);
    }

    #[test]
    fn flags_override_the_defaults_and_unknown_ones_are_refused() {
        let args = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let parsed = options(&args(
            "--addr 127.0.0.1:1 --tokens t --streams 4 --calls 2 --expect-code 16",
        ))
        .unwrap();
        assert_eq!((parsed.plan.connections, parsed.plan.streams), (8, 4));
        assert!(matches!(parsed.plan.until, Until::Calls(2)));
        assert_eq!(parsed.plan.expected, Expected { code: 16 });
        assert!(options(&args("--addr 127.0.0.1:1 --tokens t --streams 0")).is_err());
        assert!(options(&args("--addr 127.0.0.1:1 --tokens t --seconds 0")).is_err());
        assert!(options(&args("--addr 127.0.0.1:1 --tokens t --bogus 1")).is_err());
        assert!(options(&args("--tokens t")).is_err());
    }
}
