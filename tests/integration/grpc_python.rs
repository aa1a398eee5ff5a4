//! The gRPC face (`--grpc-listen`) against a client that shares no code with
//! jwtgate: gRPC's Python stack (grpcio, grpcio-health-checking) with Envoy's
//! protos as PyPI ships them (xds-protos), driven by
//! `tests/grpc/envoy_client.py`. `grpc.rs` speaks to the face with a client
//! built from the crate the server is built on (envoy-types), so a field both
//! sides got wrong the same way would pass there; here the generated code,
//! the HTTP/2 and gRPC stack and the reading of the answer are all someone
//! else's. The script builds each `CheckRequest` as Envoy's ext_authz filter
//! does and prints what came back as JSON, one line per call.
//!
//! The interpreter is `JWTGATE_GRPC_PYTHON` when set; else the venv that
//! `scripts/grpc-python-venv.sh` makes at [`CI_VENV_PYTHON`] (`.ci/run` runs
//! it); else `python3` if it imports the packages. Without one the test fails
//! saying how to make it, unless `JWTGATE_SKIP_E2E=1` (then it prints a note
//! and passes, as the nginx tests do).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use common::{TempDir, mint, signing_key};
use jwtgate::Algorithm;
use serde_json::{Value, json};

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
const HOST: &str = "api.example.com";

/// Where `scripts/grpc-python-venv.sh` puts the venv by default.
const CI_VENV_PYTHON: &str = "/opt/jwtgate/grpc-python/bin/python";
/// Bound on importing the packages (a cold start on a loaded 2-core machine
/// takes a few seconds).
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one call in the script, connecting included.
const CALL_DEADLINE_SECONDS: u64 = 10;
/// Bound on the whole script: start-up plus every call at its deadline.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc/envoy_client.py")
}

/// `command` run to completion with `stdin` piped in, or an error once it
/// has run for `timeout` (then it is killed): a client that hangs fails the
/// test instead of hanging it.
fn run_bounded(mut command: Command, stdin: &[u8], timeout: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {command:?}: {e}"))?;
    // Written and read on threads, so that neither side can block the other
    // on a full pipe.
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            all
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{command:?} still running after {timeout:?}; stdout: {}; stderr: {}",
                String::from_utf8_lossy(&stdout.join().unwrap()),
                String::from_utf8_lossy(&stderr.join().unwrap())
            ));
        }
        // Polls the exit status; the output, not the time, is asserted on.
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

/// Whether `python` imports everything the script imports (the script's own
/// `--imports-only`, so the two cannot disagree): `Err` says why not.
fn imports_the_packages(python: &Path) -> Result<(), String> {
    let mut command = Command::new(python);
    command.arg(client_script()).arg("--imports-only");
    let output = run_bounded(command, b"", PROBE_TIMEOUT)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} ({}): {}",
            python.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The interpreter to run the script with, or `None` when `test` is to be
/// skipped; panics when there is none and skipping was not asked for.
#[allow(clippy::print_stderr)]
fn grpc_python(test: &str) -> Option<PathBuf> {
    let skip = std::env::var("JWTGATE_SKIP_E2E").is_ok_and(|v| v == "1");
    // A chosen interpreter is the only candidate: falling back from it would
    // test something other than what was asked for.
    let candidates = match std::env::var_os("JWTGATE_GRPC_PYTHON") {
        Some(chosen) => vec![PathBuf::from(chosen)],
        None => vec![PathBuf::from(CI_VENV_PYTHON), PathBuf::from("python3")],
    };
    let mut refusals = Vec::new();
    for candidate in candidates {
        match imports_the_packages(&candidate) {
            Ok(()) => return Some(candidate),
            Err(why) => refusals.push(why),
        }
    }
    let refusals = refusals.join("\n  ");
    if skip {
        eprintln!(
            "{test}: no Python with grpcio, grpcio-health-checking and xds-protos; \
             skipped because JWTGATE_SKIP_E2E=1\n  {refusals}"
        );
        return None;
    }
    panic!(
        "{test}: no Python with grpcio, grpcio-health-checking and xds-protos:\n  {refusals}\n\
         Make the venv the test looks for with scripts/grpc-python-venv.sh \
         (Debian needs python3-venv), or point JWTGATE_GRPC_PYTHON at an interpreter \
         that has tests/grpc/requirements.txt, or set JWTGATE_SKIP_E2E=1 to skip \
         the end-to-end tests."
    );
}

/// One token configuration over a key file; `/v1/**` needs a valid token,
/// `/admin/**` one with the `admin` scope; anything else is denied.
fn config() -> String {
    format!(
        r#"default_action = "deny"

[server]
shards = 1

[[token_config]]
name = "users"
jwks_file = "users.json"
issuer = "{ISS}"
audiences = ["{AUD}"]

[[rule]]
name = "admin"
paths = ["/admin/**"]
token_configs = ["users"]
require_claims = [ {{ claim = "scope", contains = "admin" }} ]

[[rule]]
name = "api"
paths = ["/v1/**"]
token_configs = ["users"]
"#
    )
}

fn bearer(extra_claims: &str, exp: i64) -> String {
    let claims = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","iat":{T},"exp":{exp}{extra_claims}}}"#
    );
    let token = mint(
        r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
        &claims,
        &signing_key("rsa2048-a", Algorithm::Rs256),
        Algorithm::Rs256,
    );
    format!("Bearer {token}")
}

/// A header as the script prints it: set by Envoy over any value the client
/// sent (never appended, the deprecated `append` left unset) and kept when
/// empty.
fn overwrite(key: &str, value: &str) -> Value {
    json!({
        "key": key,
        "value": value,
        "raw_value": "",
        "append": null,
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        "keep_empty_value": true,
    })
}

/// A denial, to compare with what the script prints.
struct Denial<'a> {
    check: &'a str,
    /// `CheckResponse.status.code`, the verdict Envoy acts on.
    code: i64,
    /// The HTTP status, challenge and outcome of the answer Envoy relays.
    status: i64,
    challenge: &'a str,
    outcome: &'a str,
    rule: &'a str,
    /// As the metrics label reads: empty when no token was read.
    token_config: &'a str,
}

impl Denial<'_> {
    fn record(&self) -> Value {
        let outcome = self.outcome;
        json!({
            "check": self.check,
            "code": self.code,
            "message": outcome,
            "http_response": "denied_response",
            "denied_status": self.status,
            "headers": [
                overwrite("content-type", "application/json"),
                overwrite("cache-control", "no-store"),
                overwrite("www-authenticate", self.challenge),
                overwrite("x-jwtgate-outcome", outcome),
            ],
            "headers_to_remove": [],
            "body": format!(r#"{{"error":"{outcome}"}}"#),
            "dynamic_metadata": {
                "outcome": outcome,
                "action": "block",
                "rule": self.rule,
                "token_config": self.token_config,
            },
        })
    }
}

#[test]
fn a_python_envoy_client_reads_the_answers_jwtgate_means() {
    const TEST: &str = "a_python_envoy_client_reads_the_answers_jwtgate_means";
    let Some(python) = grpc_python(TEST) else {
        return;
    };
    let dir = TempDir::new("grpc-python");
    dir.write(
        "users.json",
        format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk("k1")),
    );
    let config = dir.write("jwtgate.toml", config());
    let server = Server::start(&[
        "--config",
        config.to_str().unwrap(),
        "--now",
        NOW,
        "--grpc-listen",
        "127.0.0.1:0",
    ]);

    let valid = bearer(r#","scope":"read""#, T + 3600);
    let expired = bearer(r#","scope":"read""#, T - 3600);
    let calls = json!({
        "deadline_seconds": CALL_DEADLINE_SECONDS,
        "checks": [
            // The client's own x-jwt-sub must be replaced by the verified one.
            {"name": "valid", "method": "GET", "host": HOST, "path": "/v1/orders?page=2",
             "headers": [["Authorization", valid], ["X-Jwt-Sub", "mallory"]]},
            {"name": "expired", "method": "GET", "host": HOST, "path": "/v1/orders",
             "headers": [["authorization", expired]]},
            {"name": "missing", "method": "GET", "host": HOST, "path": "/v1/orders",
             "headers": []},
            {"name": "insufficient scope", "method": "POST", "host": HOST,
             "path": "/admin/users", "headers": [["authorization", valid]]},
        ],
        "health": ["", "envoy.service.auth.v3.Authorization"],
    });
    let mut command = Command::new(&python);
    command
        .arg(client_script())
        .arg(server.grpc_addr().unwrap().to_string());
    let output = run_bounded(command, calls.to_string().as_bytes(), CLIENT_TIMEOUT)
        .unwrap_or_else(|why| panic!("{why}\njwtgate: {}", server.stderr_text()));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} exited {}\nstdout:\n{stdout}\nstderr:\n{stderr}\njwtgate: {}",
        client_script().display(),
        output.status,
        server.stderr_text()
    );
    let records: Vec<Value> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line:?}"))
        })
        .collect();
    let record = |field: &str, name: &str| -> &Value {
        records
            .iter()
            .find(|record| record[field] == name)
            .unwrap_or_else(|| panic!("no {field} {name:?} in\n{stdout}\nstderr:\n{stderr}"))
    };

    // Allowed: OK with an ok_response whose headers overwrite the client's,
    // and the identity in the dynamic metadata Envoy hands to other filters.
    assert_eq!(
        record("check", "valid"),
        &json!({
            "check": "valid",
            "code": 0,
            "message": "valid",
            "http_response": "ok_response",
            "denied_status": null,
            "headers": [
                overwrite("x-jwtgate-outcome", "valid"),
                overwrite("x-jwt-sub", "alice"),
                overwrite("x-jwt-iss", ISS),
                overwrite("x-jwt-kid", "k1"),
                // Always sent, empty unless the rule forwards the payload, so
                // that a client's own copy never reaches the origin.
                overwrite("x-jwt-payload", ""),
            ],
            "headers_to_remove": [],
            "body": null,
            "dynamic_metadata": {
                "outcome": "valid",
                "action": "allow",
                "rule": "api",
                "token_config": "users",
                "iss": ISS,
                "sub": "alice",
                "kid": "k1",
            },
        }),
        "\n{stdout}"
    );
    // Denied: the gRPC status Envoy acts on, and the HTTP answer it relays.
    const UNAUTHENTICATED: i64 = 16;
    const PERMISSION_DENIED: i64 = 7;
    for denial in [
        Denial {
            check: "expired",
            code: UNAUTHENTICATED,
            status: 401,
            challenge: r#"Bearer realm="jwtgate", error="invalid_token", error_description="expired""#,
            outcome: "expired",
            rule: "api",
            token_config: "users",
        },
        Denial {
            check: "missing",
            code: UNAUTHENTICATED,
            status: 401,
            challenge: r#"Bearer realm="jwtgate""#,
            outcome: "missing",
            rule: "api",
            token_config: "",
        },
        Denial {
            check: "insufficient scope",
            code: PERMISSION_DENIED,
            status: 403,
            challenge: r#"Bearer realm="jwtgate", error="insufficient_scope", error_description="insufficient_scope""#,
            outcome: "insufficient_scope",
            rule: "admin",
            token_config: "users",
        },
    ] {
        assert_eq!(
            record("check", denial.check),
            &denial.record(),
            "\n{stdout}"
        );
    }
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        assert_eq!(
            record("health", service),
            &json!({"health": service, "status": "SERVING"}),
            "\n{stdout}"
        );
    }
    assert_eq!(records.len(), 6, "one line per call:\n{stdout}");
}
