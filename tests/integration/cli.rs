//! End-to-end tests of the `jwtgate` command line: the real binary, run as a
//! user would run it, with its exit codes, stdout JSON lines and stderr messages
//! checked against the public contract of `verify`, `keygen`, `mint`, `inspect`
//! and `demo`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{NOW, TempDir, data_path, mint, signing_key};
use jwtgate::internals::SigningKey;
use jwtgate::{Algorithm, Outcome};
use jwtgate_engine::base64url;
use serde_json::{Value, json};

/// `NOW` as plain seconds.
const T: i64 = NOW.0;
/// The HMAC secret of the `k1` key in [`write_hs_jwks`].
const SECRET: &[u8] = b"jwtgate-cli-tests-hmac-secret-of-40-bytes";
/// Another secret: tokens signed with it carry a bad signature.
const OTHER_SECRET: &[u8] = b"a-different-secret-that-is-also-40-bytes!";

const NOT_COMPACT: &str = "not a compact JWS: expected three base64url segments separated by dots";
const TOO_LONG: &str = "line is longer than the token limit";

/// What one run of the binary produced.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }

    /// Every stdout line parsed as one JSON value; stdout must end with a newline.
    fn json_lines(&self) -> Vec<Value> {
        if self.stdout.is_empty() {
            return Vec::new();
        }
        assert_eq!(
            self.stdout.last(),
            Some(&b'\n'),
            "stdout must end with a newline"
        );
        self.stdout
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)))
            })
            .collect()
    }
}

/// Runs `jwtgate args...` with `stdin` piped in (written from a thread, so large
/// inputs cannot deadlock against a full stdout pipe).
fn jwtgate<I, S>(args: I, stdin: &[u8]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // The child may exit without reading (usage errors): a broken pipe is fine.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: output
            .status
            .code()
            .expect("jwtgate was killed by a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The arguments as owned strings (paths included), for building argument lists.
fn args(parts: &[&dyn AsRef<OsStr>]) -> Vec<std::ffi::OsString> {
    parts.iter().map(|part| part.as_ref().to_owned()).collect()
}

/// `{"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":<SECRET>}]}` in `dir`.
fn write_hs_jwks(dir: &TempDir) -> PathBuf {
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{}"}}]}}"#,
        base64url::encode(SECRET)
    );
    dir.write("hs.jwks.json", jwks)
}

/// An HS256 token with this header and claims, signed with `secret`.
fn hs_token(header: &str, claims: &str, secret: &[u8]) -> String {
    mint(header, claims, &SigningKey::hmac(secret), Algorithm::Hs256)
}

/// An HS256 token for key `k1` with these claims.
fn hs256(claims: &str) -> String {
    hs_token(r#"{"alg":"HS256","kid":"k1"}"#, claims, SECRET)
}

/// The result object of a refused line.
fn rejected(line: u64, error: &str, detail: &str) -> Value {
    json!({"line": line, "valid": false, "error": error, "detail": detail})
}

/// `value` with `"line": line` set (the expected objects are built without it).
fn at_line(value: &Value, line: u64) -> Value {
    let mut value = value.clone();
    value["line"] = json!(line);
    value
}

/// The summary's outcomes line for these counts, in `Outcome::ALL` order.
fn outcomes_line(counts: &[(Outcome, u64)]) -> String {
    let parts: Vec<String> = Outcome::ALL
        .iter()
        .copied()
        .filter_map(|outcome| {
            let count: u64 = counts
                .iter()
                .filter(|(o, _)| *o == outcome)
                .map(|(_, c)| c)
                .sum();
            (count > 0).then(|| format!("{} {count}", outcome.name()))
        })
        .collect();
    format!("  outcomes: {}", parts.join(", "))
}

/// The stderr line `jwtgate` prints for an I/O error opening `path`.
fn open_error_line(path: &Path) -> String {
    let error = std::fs::File::open(path).unwrap_err();
    format!("jwtgate: {}: {error}\n", path.display())
}

// ---------------------------------------------------------------------------
// verify: ordering under parallelism
// ---------------------------------------------------------------------------

/// One kind of input line and the result it must produce (without `line`).
struct Variant {
    bytes: Vec<u8>,
    outcome: Outcome,
    expected: Value,
}

fn variants() -> Vec<Variant> {
    let valid_a = hs256(&format!(r#"{{"sub":"u0","iat":{T},"exp":{}}}"#, T + 3600));
    let valid_b = hs256(&format!(
        r#"{{"iss":"https://idp.test/","sub":"u1","jti":"j1","nbf":{},"exp":{}}}"#,
        T - 10,
        T + 60
    ));
    let valid_a_expected = json!({"line": 0, "valid": true, "alg": "HS256", "kid": "k1", "sub": "u0", "iat": T, "exp": T + 3600});
    let line = |text: String| {
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        bytes
    };
    let refused = |outcome: Outcome, detail: &str| rejected(0, outcome.name(), detail);
    let non_utf8_header = format!(
        "{}.{}.{}",
        base64url::encode(b"\xff\xfe{}"),
        base64url::encode(b"{}"),
        base64url::encode(b"sig")
    );
    vec![
        Variant {
            bytes: line(valid_a.clone()),
            outcome: Outcome::Valid,
            expected: valid_a_expected.clone(),
        },
        Variant {
            bytes: line(valid_b),
            outcome: Outcome::Valid,
            expected: json!({"line": 0, "valid": true, "alg": "HS256", "kid": "k1", "iss": "https://idp.test/",
                "sub": "u1", "jti": "j1", "nbf": T - 10, "exp": T + 60}),
        },
        Variant {
            bytes: format!("{valid_a}\r\n").into_bytes(),
            outcome: Outcome::Valid,
            expected: valid_a_expected,
        },
        Variant {
            bytes: line(hs256(&format!(r#"{{"sub":"u2","exp":{}}}"#, T - 3600))),
            outcome: Outcome::Expired,
            expected: refused(Outcome::Expired, "exp has passed"),
        },
        Variant {
            bytes: line(hs_token(
                r#"{"alg":"HS256","kid":"k1"}"#,
                &format!(r#"{{"sub":"u0","exp":{}}}"#, T + 3600),
                OTHER_SECRET,
            )),
            outcome: Outcome::BadSignature,
            expected: refused(
                Outcome::BadSignature,
                "signature does not verify with the selected key",
            ),
        },
        Variant {
            bytes: line("not a token at all".into()),
            outcome: Outcome::Malformed,
            expected: refused(Outcome::Malformed, NOT_COMPACT),
        },
        Variant {
            bytes: b"\n".to_vec(),
            outcome: Outcome::Malformed,
            expected: refused(Outcome::Malformed, "empty token"),
        },
        Variant {
            bytes: line(hs_token(
                r#"{"alg":"HS256","kid":"k2"}"#,
                &format!(r#"{{"exp":{}}}"#, T + 3600),
                SECRET,
            )),
            outcome: Outcome::UnknownKid,
            expected: refused(Outcome::UnknownKid, "no key in the key set has this kid"),
        },
        Variant {
            bytes: line(mint(
                r#"{"alg":"HS384","kid":"k1"}"#,
                &format!(r#"{{"exp":{}}}"#, T + 3600),
                &SigningKey::hmac(SECRET),
                Algorithm::Hs384,
            )),
            outcome: Outcome::AlgNotAllowed,
            expected: refused(
                Outcome::AlgNotAllowed,
                "alg is not in this configuration's allow-list",
            ),
        },
        Variant {
            bytes: b"\x00\xff\xfe\x80\x01garbage\n".to_vec(),
            outcome: Outcome::Malformed,
            expected: refused(Outcome::Malformed, NOT_COMPACT),
        },
        Variant {
            bytes: line(hs256(&format!(
                r#"{{"nbf":{},"exp":{}}}"#,
                T + 3600,
                T + 7200
            ))),
            outcome: Outcome::NotYetValid,
            expected: refused(Outcome::NotYetValid, "nbf has not been reached"),
        },
        Variant {
            bytes: line(hs256(r#"{"sub":"u3"}"#)),
            outcome: Outcome::MissingClaim,
            expected: refused(Outcome::MissingClaim, "exp is required"),
        },
        Variant {
            bytes: line(hs256(&format!(r#"{{"aud":"api","exp":{}}}"#, T + 60))),
            outcome: Outcome::WrongAudience,
            expected: refused(
                Outcome::WrongAudience,
                "token has aud but no audience is configured",
            ),
        },
        Variant {
            // Longer than the --max-token-len 1024 of the ordering runs.
            bytes: line("A".repeat(1500)),
            outcome: Outcome::TokenTooLarge,
            expected: refused(Outcome::TokenTooLarge, TOO_LONG),
        },
        Variant {
            bytes: line("a.b.c.d.e".into()),
            outcome: Outcome::Malformed,
            expected: refused(Outcome::Malformed, "encrypted tokens are not supported"),
        },
        Variant {
            bytes: line("eyJhbGciOiJIUzI1NiJ9=.e30.eA".into()),
            outcome: Outcome::Malformed,
            expected: refused(Outcome::Malformed, "header is not strict base64url"),
        },
        Variant {
            bytes: line(non_utf8_header),
            outcome: Outcome::Malformed,
            expected: refused(Outcome::Malformed, "header is not UTF-8"),
        },
    ]
}

/// xorshift64*: a fixed, reproducible pseudo-random pattern.
struct Pattern(u64);

impl Pattern {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % bound
    }
}

#[test]
fn verify_keeps_input_order_under_parallelism() {
    const LINES: usize = 100_000;
    let dir = TempDir::new("order");
    let jwks = write_hs_jwks(&dir);
    let variants = variants();
    // Valid tokens are drawn more often than each failure; runs of cheap and
    // expensive lines make the workers finish batches out of order.
    let mut pattern = Pattern(0x9E37_79B9_7F4A_7C15);
    let mut chosen = Vec::with_capacity(LINES);
    let mut input = Vec::new();
    while chosen.len() < LINES {
        let pick = pattern.next(variants.len() + 8);
        let index = if pick >= variants.len() { 0 } else { pick };
        let long_run = pattern.next(10) == 0;
        let run = 1 + pattern.next(if long_run { 600 } else { 3 });
        for _ in 0..run.min(LINES - chosen.len()) {
            chosen.push(index);
            input.extend_from_slice(&variants[index].bytes);
        }
    }
    let used: HashSet<usize> = chosen.iter().copied().collect();
    assert_eq!(used.len(), variants.len(), "every kind of line occurs");
    let input_path = dir.write("tokens.txt", &input);
    let now = T.to_string();
    let common_args = [
        "verify",
        "--jwks",
        jwks.to_str().unwrap(),
        "--now",
        &now,
        "--max-token-len",
        "1024",
    ];

    let parallel = jwtgate(
        common_args.iter().copied().chain([
            "--threads",
            "2",
            "--input",
            input_path.to_str().unwrap(),
        ]),
        b"",
    );
    let serial = jwtgate(
        common_args.iter().copied().chain(["--threads", "1"]),
        &input,
    );

    assert_eq!(parallel.code, 1, "{}", parallel.stderr);
    assert_eq!(serial.code, 1, "{}", serial.stderr);
    let results = parallel.json_lines();
    assert_eq!(results.len(), LINES);
    for (position, (result, &index)) in results.iter().zip(&chosen).enumerate() {
        let expected = at_line(&variants[index].expected, position as u64 + 1);
        assert_eq!(result, &expected, "output line {}", position + 1);
    }
    assert!(
        parallel.stdout == serial.stdout,
        "--threads 2 and --threads 1 disagree"
    );

    let counts: Vec<(Outcome, u64)> = chosen
        .iter()
        .map(|&index| (variants[index].outcome, 1))
        .collect();
    for run in [&parallel, &serial] {
        let mut lines = run.stderr.lines();
        let head = lines.next().unwrap();
        assert!(
            head.starts_with(&format!("jwtgate verify: {LINES} tokens in ")),
            "{}",
            run.stderr
        );
        assert_eq!(
            lines.next().unwrap(),
            outcomes_line(&counts),
            "{}",
            run.stderr
        );
    }
    assert!(
        parallel.stderr.starts_with("jwtgate verify: ")
            && parallel.stderr.contains(", 2 threads)\n")
    );
    assert!(
        serial.stderr.contains(", 1 threads)\n"),
        "{}",
        serial.stderr
    );
}

// ---------------------------------------------------------------------------
// verify: exit codes and error messages
// ---------------------------------------------------------------------------

#[test]
fn verify_exit_codes_follow_grep() {
    let dir = TempDir::new("exit");
    let jwks = write_hs_jwks(&dir);
    let now = T.to_string();
    let good = hs256(&format!(r#"{{"sub":"a","exp":{}}}"#, T + 600));
    let expired = hs256(&format!(r#"{{"sub":"b","exp":{}}}"#, T - 600));
    let base = ["verify", "--jwks", jwks.to_str().unwrap(), "--now", &now];
    let valid_line = |line: u64, sub: &str, exp: i64| json!({"line": line, "valid": true, "alg": "HS256", "kid": "k1", "sub": sub, "exp": exp});

    let all_valid = jwtgate(base, format!("{good}\n{good}\n").as_bytes());
    assert_eq!(all_valid.code, 0, "{}", all_valid.stderr);
    assert_eq!(
        all_valid.json_lines(),
        [valid_line(1, "a", T + 600), valid_line(2, "a", T + 600)]
    );

    let one_invalid = format!("{good}\n{expired}\n{good}\n");
    let expected = [
        valid_line(1, "a", T + 600),
        rejected(2, "expired", "exp has passed"),
        valid_line(3, "a", T + 600),
    ];
    let some_invalid = jwtgate(base, one_invalid.as_bytes());
    assert_eq!(some_invalid.code, 1, "{}", some_invalid.stderr);
    assert_eq!(some_invalid.json_lines(), expected);

    let exit_zero = jwtgate(
        base.iter().copied().chain(["--exit-zero"]),
        one_invalid.as_bytes(),
    );
    assert_eq!(exit_zero.code, 0, "{}", exit_zero.stderr);
    assert_eq!(
        exit_zero.json_lines(),
        expected,
        "--exit-zero still writes every result"
    );
    assert_eq!(exit_zero.stdout, some_invalid.stdout);
}

#[test]
fn verify_output_is_one_compact_json_object_per_line() {
    let dir = TempDir::new("format");
    let jwks = write_hs_jwks(&dir);
    let token = hs256(&format!(
        r#"{{"iss":"https://idp/","sub":"u1","aud":["a","b"],"iat":{T},"exp":{}}}"#,
        T + 60
    ));
    let run = jwtgate(
        [
            "verify",
            "--jwks",
            jwks.to_str().unwrap(),
            "--now",
            &T.to_string(),
            "--audience",
            "b",
        ],
        format!("{token}\n\n").as_bytes(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout_text(),
        format!(
            "{{\"line\":1,\"valid\":true,\"alg\":\"HS256\",\"kid\":\"k1\",\"iss\":\"https://idp/\",\"sub\":\"u1\",\"aud\":[\"a\",\"b\"],\"iat\":{T},\"exp\":{}}}\n\
             {{\"line\":2,\"valid\":false,\"error\":\"malformed\",\"detail\":\"empty token\"}}\n",
            T + 60
        )
    );
}

#[test]
fn verify_output_stays_valid_json_for_escaped_claims_and_odd_file_names() {
    let dir = TempDir::new("escapes");
    let jwks = write_hs_jwks(&dir);
    // The kid is "k1" written with an escape; sub holds escapes and raw UTF-8.
    let token = hs_token(
        r#"{"alg":"HS256","kid":"k\u0031"}"#,
        &format!(
            r#"{{"sub":"q\"\\\/\u00e9é\u2028","aud":[ "a" , "b" ],"exp":{}}}"#,
            T + 60
        ),
        SECRET,
    );
    let odd = dir.write("we\"ird\nná\\me.txt", format!("{token}\n"));
    let plain = dir.write("plain.txt", format!("{token}\n"));
    let run = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &jwks,
            &"--now",
            &T.to_string(),
            &"--audience",
            &"b",
            &"--input",
            &odd,
            &"--input",
            &plain,
        ]),
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = |input: &Path| {
        json!({"input": input.to_str().unwrap(), "line": 1, "valid": true, "alg": "HS256", "kid": "k1",
            "sub": "q\"\\/\u{e9}\u{e9}\u{2028}", "aud": ["a", "b"], "exp": T + 60})
    };
    assert_eq!(run.json_lines(), [expected(&odd), expected(&plain)]);
}

#[test]
fn verify_usage_key_and_io_errors_exit_2_with_one_line_naming_the_file() {
    let dir = TempDir::new("errors");
    let jwks = write_hs_jwks(&dir);
    let token = format!("{}\n", hs256(&format!(r#"{{"exp":{}}}"#, T + 600)));

    let missing_jwks = jwtgate(["verify"], token.as_bytes());
    assert_eq!(missing_jwks.code, 2);
    assert_eq!(missing_jwks.stderr, "jwtgate: --jwks FILE is required\n");
    assert!(missing_jwks.stdout.is_empty());

    let absent = dir.path("absent.jwks.json");
    let run = jwtgate(args(&[&"verify", &"--jwks", &absent]), token.as_bytes());
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, open_error_line(&absent));
    assert!(run.stdout.is_empty());

    let invalid = dir.write("invalid.jwks.json", r#"{"keys":"#);
    let run = jwtgate(args(&[&"verify", &"--jwks", &invalid]), token.as_bytes());
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "jwtgate: {}: not a JWKS, JWK or PEM public key: invalid JSON: JSON syntax error\n",
            invalid.display()
        )
    );
    assert!(run.stdout.is_empty());

    let weak = data_path("rsa1024.spki.pem");
    let run = jwtgate(args(&[&"verify", &"--jwks", &weak]), token.as_bytes());
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "jwtgate: {}: key #0: RSA modulus has 1024 bits; at least 2048 are required\n",
            weak.display()
        )
    );

    let no_input = dir.path("absent-tokens.txt");
    let run = jwtgate(
        args(&[&"verify", &"--jwks", &jwks, &"--input", &no_input]),
        b"",
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, open_error_line(&no_input));
    assert!(run.stdout.is_empty());

    let run = jwtgate(
        args(&[&"verify", &"--jwks", &jwks, &"--algorithms", &"HS256,NOPE"]),
        token.as_bytes(),
    );
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "jwtgate: --algorithms: algorithm \"NOPE\" cannot be allowed: unknown JWS algorithm\n"
    );

    // A directory opens but cannot be read: an I/O error naming it, exit 2 even
    // with --exit-zero (the run is not complete).
    let run = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &jwks,
            &"--exit-zero",
            &"--input",
            &dir.root(),
        ]),
        b"",
    );
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "jwtgate: {}: {}\n",
            dir.root().display(),
            std::fs::read(dir.root()).unwrap_err()
        )
    );
    assert!(run.stdout.is_empty());
}

// ---------------------------------------------------------------------------
// verify: awkward lines
// ---------------------------------------------------------------------------

#[test]
fn verify_gives_every_odd_line_its_own_result() {
    let dir = TempDir::new("lines");
    let jwks = write_hs_jwks(&dir);
    let token = hs256(&format!(r#"{{"sub":"s","exp":{}}}"#, T + 600));
    let valid = |line: u64| json!({"line": line, "valid": true, "alg": "HS256", "kid": "k1", "sub": "s", "exp": T + 600});
    let mut input = Vec::new();
    input.extend_from_slice(format!("{token}\n").as_bytes()); // 1
    input.extend_from_slice(b"\n"); // 2 blank
    input.extend_from_slice(format!("{token}\r\n").as_bytes()); // 3 CRLF
    input.extend_from_slice("x".repeat(100 * 1024).as_bytes()); // 4 a 100 KB line
    input.extend_from_slice(b"\n");
    input.extend_from_slice(format!("{token}\r\n").as_bytes()); // 5 follows the long line
    input.extend_from_slice(b"\xff\xfe\x80\x00\xc3\x28\n"); // 6 invalid UTF-8 and NUL
    input.extend_from_slice(b"\r\n"); // 7 blank CRLF
    input.extend_from_slice(
        format!("{}.e30.eA\n", base64url::encode(b"{\"alg\":\"HS256\xff\"}")).as_bytes(),
    ); // 8
    input.extend_from_slice(token.as_bytes()); // 9 no final newline
    let expected = [
        valid(1),
        rejected(2, "malformed", "empty token"),
        valid(3),
        rejected(4, "token_too_large", TOO_LONG),
        valid(5),
        rejected(6, "malformed", NOT_COMPACT),
        rejected(7, "malformed", "empty token"),
        rejected(8, "malformed", "header is not UTF-8"),
        valid(9),
    ];
    let now = T.to_string();
    for threads in ["1", "2"] {
        let run = jwtgate(
            [
                "verify",
                "--jwks",
                jwks.to_str().unwrap(),
                "--now",
                &now,
                "--threads",
                threads,
            ],
            &input,
        );
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert_eq!(run.json_lines(), expected, "--threads {threads}");
    }

    // The same input with CRLF everywhere gives the same results.
    let mut crlf = Vec::new();
    for (index, line) in input.split(|&b| b == b'\n').enumerate() {
        if index > 0 {
            crlf.extend_from_slice(b"\r\n");
        }
        crlf.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    assert_eq!(crlf.iter().filter(|&&b| b == b'\r').count(), 8);
    let run = jwtgate(
        ["verify", "--jwks", jwks.to_str().unwrap(), "--now", &now],
        &crlf,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.json_lines(), expected, "CRLF input");

    let empty = jwtgate(
        ["verify", "--jwks", jwks.to_str().unwrap(), "--now", &now],
        b"",
    );
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert!(empty.stdout.is_empty());
    assert_eq!(
        empty.stderr.lines().nth(1),
        Some("  outcomes: none"),
        "{}",
        empty.stderr
    );
}

#[test]
fn verify_max_token_len_is_exact_and_tolerates_the_cr_of_crlf() {
    let dir = TempDir::new("limit");
    let jwks = write_hs_jwks(&dir);
    let token = hs256(&format!(r#"{{"exp":{}}}"#, T + 600));
    let length = token.len();
    let valid = |line: u64| json!({"line": line, "valid": true, "alg": "HS256", "kid": "k1", "exp": T + 600});
    let input = format!("{token}\n{token}\r\n{token}x\n{token}");
    let now = T.to_string();
    let run = |limit: usize| {
        jwtgate(
            [
                "verify",
                "--jwks",
                jwks.to_str().unwrap(),
                "--now",
                &now,
                "--max-token-len",
                &limit.to_string(),
            ],
            input.as_bytes(),
        )
    };
    let at_limit = run(length);
    assert_eq!(
        at_limit.json_lines(),
        [
            valid(1),
            valid(2),
            rejected(3, "token_too_large", TOO_LONG),
            valid(4)
        ]
    );
    let below = run(length - 1);
    assert_eq!(below.code, 1);
    assert_eq!(
        below.json_lines(),
        (1..=4)
            .map(|line| rejected(line, "token_too_large", TOO_LONG))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        below.stderr.lines().nth(1),
        Some("  outcomes: token_too_large 4"),
        "{}",
        below.stderr
    );
}

// ---------------------------------------------------------------------------
// verify: keys, clock and claim settings
// ---------------------------------------------------------------------------

#[test]
fn verify_accepts_pem_public_keys() {
    let claims = format!(r#"{{"sub":"pem","iat":{T},"exp":{}}}"#, T + 600);
    let now = T.to_string();
    let rsa_a = signing_key("rsa2048-a", Algorithm::Rs256);
    let rsa_b = signing_key("rsa2048-b", Algorithm::Rs256);
    let rs256 = mint(
        r#"{"alg":"RS256","typ":"JWT"}"#,
        &claims,
        &rsa_a,
        Algorithm::Rs256,
    );
    let ps256 = mint(
        r#"{"alg":"PS256"}"#,
        &claims,
        &signing_key("rsa2048-a", Algorithm::Ps256),
        Algorithm::Ps256,
    );
    let other_key = mint(r#"{"alg":"RS256"}"#, &claims, &rsa_b, Algorithm::Rs256);
    let valid = |line: u64, alg: &str| json!({"line": line, "valid": true, "alg": alg, "sub": "pem", "iat": T, "exp": T + 600});
    for pem in ["rsa2048-a.spki.pem", "rsa2048-a.pkcs1.pem"] {
        let run = jwtgate(
            args(&[&"verify", &"--jwks", &data_path(pem), &"--now", &now]),
            format!("{rs256}\n{ps256}\n{other_key}\n").as_bytes(),
        );
        assert_eq!(run.code, 1, "{pem}: {}", run.stderr);
        assert_eq!(
            run.json_lines(),
            [
                valid(1, "RS256"),
                valid(2, "PS256"),
                rejected(
                    3,
                    "bad_signature",
                    "signature does not verify with the selected key"
                ),
            ],
            "{pem}"
        );
    }
    for (name, algorithm) in [
        ("p256", Algorithm::Es256),
        ("p384", Algorithm::Es384),
        ("ed25519", Algorithm::EdDsa),
    ] {
        let token = mint(
            &format!(r#"{{"alg":"{algorithm}"}}"#),
            &claims,
            &signing_key(name, algorithm),
            algorithm,
        );
        let run = jwtgate(
            args(&[
                &"verify",
                &"--jwks",
                &data_path(&format!("{name}.spki.pem")),
                &"--now",
                &now,
            ]),
            format!("{token}\n").as_bytes(),
        );
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(run.json_lines(), [valid(1, algorithm.name())], "{name}");
    }
}

#[test]
fn verify_now_and_leeway_decide_expiry() {
    let dir = TempDir::new("now");
    let jwks = write_hs_jwks(&dir);
    let exp = T + 1000;
    let token = hs256(&format!(r#"{{"exp":{exp}}}"#));
    let valid = json!({"line": 1, "valid": true, "alg": "HS256", "kid": "k1", "exp": exp});
    let expired = rejected(1, "expired", "exp has passed");
    let check = |now: i64, leeway: Option<&str>, expected: &Value| {
        let now = now.to_string();
        let mut list = vec!["verify", "--jwks", jwks.to_str().unwrap(), "--now", &now];
        if let Some(leeway) = leeway {
            list.extend(["--leeway", leeway]);
        }
        let run = jwtgate(&list, format!("{token}\n").as_bytes());
        assert_eq!(
            run.json_lines(),
            std::slice::from_ref(expected),
            "--now {now} --leeway {leeway:?}"
        );
        assert_eq!(run.code, i32::from(expected["valid"] != json!(true)));
    };
    check(exp - 100, None, &valid);
    check(exp + 100, None, &expired);
    // Default leeway 60 s: expired once now >= exp + 60.
    check(exp + 30, None, &valid);
    check(exp + 59, None, &valid);
    check(exp + 60, None, &expired);
    check(exp + 30, Some("0"), &expired);
    check(exp - 1, Some("0"), &valid);
    check(exp, Some("0"), &expired);
    check(exp + 150, Some("200"), &valid);
}

#[test]
fn verify_issuer_audience_and_algorithm_mismatches_are_named() {
    let now = T.to_string();
    let spki = data_path("rsa2048-a.spki.pem");
    let key = signing_key("rsa2048-a", Algorithm::Rs256);
    let token = |claims: &str| mint(r#"{"alg":"RS256"}"#, claims, &key, Algorithm::Rs256);
    let exp = T + 600;
    let with_iss = token(&format!(r#"{{"iss":"https://idp.test/","exp":{exp}}}"#));
    let without_iss = token(&format!(r#"{{"exp":{exp}}}"#));
    let aud_api = token(&format!(r#"{{"aud":"api","exp":{exp}}}"#));
    let aud_list = token(&format!(r#"{{"aud":["a","b"],"exp":{exp}}}"#));
    let ps256 = mint(
        r#"{"alg":"PS256"}"#,
        &format!(r#"{{"exp":{exp}}}"#),
        &signing_key("rsa2048-a", Algorithm::Ps256),
        Algorithm::Ps256,
    );
    let run = |extra: &[&str], token: &str| {
        let mut list = args(&[&"verify", &"--jwks", &spki, &"--now", &now]);
        list.extend(extra.iter().map(Into::into));
        let run = jwtgate(list, format!("{token}\n").as_bytes());
        let mut lines = run.json_lines();
        assert_eq!(lines.len(), 1, "{extra:?}: {}", run.stderr);
        assert_eq!(
            run.code,
            i32::from(lines[0]["valid"] != json!(true)),
            "{extra:?}"
        );
        lines.remove(0)
    };

    assert_eq!(
        run(&["--issuer", "https://idp.test/"], &with_iss),
        json!({"line": 1, "valid": true, "alg": "RS256", "iss": "https://idp.test/", "exp": exp})
    );
    assert_eq!(
        run(&["--issuer", "https://other.test/"], &with_iss),
        rejected(1, "wrong_issuer", "iss differs from the configured issuer")
    );
    assert_eq!(
        run(&["--issuer", "https://idp.test/"], &without_iss),
        rejected(1, "missing_claim", "iss is required")
    );
    assert_eq!(
        run(&["--audience", "web"], &aud_api),
        rejected(1, "wrong_audience", "no aud value is a configured audience")
    );
    assert_eq!(
        run(&["--audience", "web", "--audience", "api"], &aud_api),
        json!({"line": 1, "valid": true, "alg": "RS256", "aud": "api", "exp": exp})
    );
    assert_eq!(
        run(&["--audience", "b"], &aud_list),
        json!({"line": 1, "valid": true, "alg": "RS256", "aud": ["a", "b"], "exp": exp})
    );
    assert_eq!(
        run(&["--audience", "api"], &without_iss),
        rejected(1, "missing_claim", "aud is required")
    );
    assert_eq!(
        run(&[], &aud_api),
        rejected(
            1,
            "wrong_audience",
            "token has aud but no audience is configured"
        )
    );
    assert_eq!(
        run(&["--algorithms", "RS256"], &ps256),
        rejected(
            1,
            "alg_not_allowed",
            "alg is not in this configuration's allow-list"
        )
    );
    assert_eq!(
        run(&["--algorithms", "PS256,RS256"], &ps256),
        json!({"line": 1, "valid": true, "alg": "PS256", "exp": exp})
    );
    assert_eq!(
        run(&["--algorithms", "PS256"], &without_iss),
        rejected(
            1,
            "alg_not_allowed",
            "alg is not in this configuration's allow-list"
        )
    );
}

// ---------------------------------------------------------------------------
// verify: several inputs, histogram, summary
// ---------------------------------------------------------------------------

#[test]
fn verify_names_each_input_and_restarts_line_numbers() {
    let dir = TempDir::new("inputs");
    let jwks = write_hs_jwks(&dir);
    let good = hs256(&format!(r#"{{"sub":"g","exp":{}}}"#, T + 600));
    let expired = hs256(&format!(r#"{{"sub":"e","exp":{}}}"#, T - 600));
    // The first file's last line has no newline; the empty file gives nothing.
    let first = dir.write("first.txt", format!("{good}\n{expired}"));
    let empty = dir.write("empty.txt", "");
    let second = dir.write("second.txt", format!("garbage\n{good}\n\n"));
    let run = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &jwks,
            &"--now",
            &T.to_string(),
            &"--input",
            &first,
            &"--input",
            &"-",
            &"--input",
            &empty,
            &"--input",
            &second,
        ]),
        good.as_bytes(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let first = first.display().to_string();
    let second = second.display().to_string();
    let valid = |input: &str, line: u64| json!({"input": input, "line": line, "valid": true, "alg": "HS256", "kid": "k1", "sub": "g", "exp": T + 600});
    let refused = |input: &str, line: u64, error: &str, detail: &str| json!({"input": input, "line": line, "valid": false, "error": error, "detail": detail});
    assert_eq!(
        run.json_lines(),
        [
            valid(&first, 1),
            refused(&first, 2, "expired", "exp has passed"),
            valid("-", 1),
            refused(&second, 1, "malformed", NOT_COMPACT),
            valid(&second, 2),
            refused(&second, 3, "malformed", "empty token"),
        ]
    );
    assert!(
        run.stdout_text()
            .lines()
            .all(|line| line.starts_with("{\"input\":")),
        "input leads each object"
    );
}

#[test]
fn verify_keeps_several_inputs_apart_across_batch_boundaries() {
    // Inputs of 700, 1 and 1300 lines: batches (512 lines) straddle the files.
    let dir = TempDir::new("inputs-batches");
    let jwks = write_hs_jwks(&dir);
    let good = hs256(&format!(r#"{{"exp":{}}}"#, T + 600));
    let bad = hs256(&format!(r#"{{"exp":{}}}"#, T - 600));
    let kind = |file: usize, line: usize| (file * 7 + line * line) % 5;
    let sizes = [700, 1, 1300];
    let mut paths = Vec::new();
    for (file, &size) in sizes.iter().enumerate() {
        let mut text = String::new();
        for line in 1..=size {
            text.push_str(match kind(file, line) {
                0 => "",
                1 | 2 => &good,
                3 => &bad,
                _ => "junk",
            });
            text.push('\n');
        }
        paths.push(dir.write(&format!("part{file}.txt"), text));
    }
    let mut list = args(&[
        &"verify",
        &"--jwks",
        &jwks,
        &"--now",
        &T.to_string(),
        &"--threads",
        &"2",
    ]);
    for path in &paths {
        list.extend(["--input".into(), path.clone().into_os_string()]);
    }
    let run = jwtgate(list, b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let results = run.json_lines();
    let mut expected = Vec::new();
    for (file, &size) in sizes.iter().enumerate() {
        let input = paths[file].display().to_string();
        for line in 1..=size {
            let mut value = match kind(file, line) {
                0 => rejected(0, "malformed", "empty token"),
                1 | 2 => {
                    json!({"line": 0, "valid": true, "alg": "HS256", "kid": "k1", "exp": T + 600})
                }
                3 => rejected(0, "expired", "exp has passed"),
                _ => rejected(0, "malformed", NOT_COMPACT),
            };
            value["input"] = json!(input);
            expected.push(at_line(&value, line as u64));
        }
    }
    assert_eq!(results.len(), expected.len());
    for (position, (result, expected)) in results.iter().zip(&expected).enumerate() {
        assert_eq!(result, expected, "output line {}", position + 1);
    }
}

#[test]
fn verify_refuses_an_unwritable_histogram_before_verifying_anything() {
    let dir = TempDir::new("histogram-unwritable");
    let jwks = write_hs_jwks(&dir);
    let good = hs256(&format!(r#"{{"exp":{}}}"#, T + 600));
    let histogram = dir.path("no-such-dir/latency.hgrm");
    let run = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &jwks,
            &"--now",
            &T.to_string(),
            &"--histogram",
            &histogram,
        ]),
        format!("{good}\n").as_bytes(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stdout.is_empty(),
        "no result before the histogram file is writable"
    );
    assert_eq!(
        run.stderr.lines().last().map(|line| format!("{line}\n")),
        Some(open_error_line(&histogram)),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_writes_the_histogram_and_a_summary() {
    let dir = TempDir::new("histogram");
    let jwks = write_hs_jwks(&dir);
    let good = hs256(&format!(r#"{{"exp":{}}}"#, T + 600));
    let histogram = dir.path("latency.hgrm");
    let input = format!("{good}\n{good}\nnope\n{good}\n");
    let run = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &jwks,
            &"--now",
            &T.to_string(),
            &"--threads",
            &"1",
            &"--histogram",
            &histogram,
        ]),
        input.as_bytes(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.json_lines().len(), 4);
    let text = std::fs::read_to_string(&histogram).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("       Value     Percentile TotalCount 1/(1-Percentile)"),
        "{text}"
    );
    assert!(text.contains("Total count    =            4]"), "{text}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    assert!(
        lines[0].starts_with("jwtgate verify: 4 tokens in "),
        "{}",
        run.stderr
    );
    assert!(
        lines[0].ends_with(" tokens/s, 1 threads)"),
        "{}",
        run.stderr
    );
    assert_eq!(lines[1], "  outcomes: valid 3, malformed 1");
    assert!(
        lines[2].starts_with("  verification latency: p50 "),
        "{}",
        run.stderr
    );
    for label in [", p90 ", ", p99 ", ", p99.9 ", ", max "] {
        assert!(lines[2].contains(label), "{}", run.stderr);
    }

    let quiet = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &jwks,
            &"--now",
            &T.to_string(),
            &"--quiet",
        ]),
        format!("{good}\n").as_bytes(),
    );
    assert_eq!(quiet.code, 0);
    assert_eq!(quiet.stderr, "");
    assert_eq!(quiet.json_lines().len(), 1);
}

// ---------------------------------------------------------------------------
// keygen -> mint -> verify
// ---------------------------------------------------------------------------

const ALGORITHMS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// Mints `count` tokens and verifies them; returns the verify results.
fn mint_and_verify(
    key: &Path,
    jwks: &Path,
    alg: &str,
    kid: Option<&str>,
    count: u64,
    verify_extra: &[&str],
) -> Vec<Value> {
    let now = T.to_string();
    let count = count.to_string();
    let mut mint_args = args(&[
        &"mint",
        &"--key",
        &key,
        &"--alg",
        &alg,
        &"--iss",
        &"https://issuer.test/",
        &"--aud",
        &"api",
        &"--sub",
        &"user-7",
        &"--ttl",
        &"600",
        &"--now",
        &now,
        &"--count",
        &count,
    ]);
    if let Some(kid) = kid {
        mint_args.extend(["--kid".into(), kid.into()]);
    }
    let minted = jwtgate(mint_args, b"");
    assert_eq!(minted.code, 0, "mint {alg}: {}", minted.stderr);
    assert_eq!(minted.stderr, "");
    let mut verify_args = args(&[
        &"verify",
        &"--jwks",
        &jwks,
        &"--now",
        &now,
        &"--issuer",
        &"https://issuer.test/",
        &"--audience",
        &"api",
    ]);
    verify_args.extend(verify_extra.iter().map(Into::into));
    let verified = jwtgate(verify_args, &minted.stdout);
    let results = verified.json_lines();
    assert_eq!(
        verified.code,
        i32::from(results.iter().any(|r| r["valid"] != json!(true))),
        "{alg}"
    );
    results
}

#[test]
fn keygen_mint_verify_round_trips_every_algorithm() {
    let dir = TempDir::new("roundtrip");
    let keys = dir.path("keys");
    for alg in ALGORITHMS {
        let kid = format!("k-{}", alg.to_ascii_lowercase());
        let run = jwtgate(
            args(&[&"keygen", &"--alg", &alg, &"--kid", &kid, &"--out", &keys]),
            b"",
        );
        assert_eq!(run.code, 0, "keygen {alg}: {}", run.stderr);
        let jwks = keys.join(format!("{kid}.jwks.json"));
        let private = keys.join(format!("{kid}.pk8.pem"));
        let symmetric = alg.starts_with("HS");
        let mut expected_stdout = String::new();
        if !symmetric {
            expected_stdout.push_str(&format!("private key: {}\n", private.display()));
        }
        expected_stdout.push_str(&format!("jwks:        {} (kid {kid})\n", jwks.display()));
        assert_eq!(run.stdout_text(), expected_stdout, "keygen {alg}");
        assert_eq!(
            private.exists(),
            !symmetric,
            "{alg}: a private key file only for asymmetric keys"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            let secret = if symmetric { &jwks } else { &private };
            assert_eq!(mode(secret), 0o600, "{alg}: secrets are private");
            if !symmetric {
                assert_eq!(mode(&jwks), 0o644, "{alg}: a public JWKS is readable");
            }
        }
        let document: Value = serde_json::from_slice(&std::fs::read(&jwks).unwrap()).unwrap();
        let jwk = &document["keys"][0];
        assert_eq!(
            (&jwk["alg"], &jwk["kid"]),
            (&json!(alg), &json!(kid)),
            "{alg}: {document}"
        );
        assert_eq!(document["keys"].as_array().map(Vec::len), Some(1));

        // HS*: the key file is the JWKS and its kid becomes the header kid by
        // default; the others get --kid on the mint command line.
        let (key_file, mint_kid) = if symmetric {
            (&jwks, None)
        } else {
            (&private, Some(kid.as_str()))
        };
        let results = mint_and_verify(key_file, &jwks, alg, mint_kid, 5, &[]);
        assert_eq!(results.len(), 5, "{alg}");
        let mut jtis = HashSet::new();
        for (index, mut result) in results.into_iter().enumerate() {
            let jti = result.as_object_mut().unwrap().remove("jti").unwrap();
            let jti = jti.as_str().unwrap().to_owned();
            assert_eq!(jti.len(), 22, "{alg}: a 16-byte base64url jti, got {jti:?}");
            assert!(jtis.insert(jti), "{alg}: duplicate jti");
            assert_eq!(
                result,
                json!({"line": index + 1, "valid": true, "alg": alg, "kid": kid, "iss": "https://issuer.test/",
                    "sub": "user-7", "aud": "api", "iat": T, "exp": T + 600}),
                "{alg}"
            );
        }
    }

    // One RSA key for every RSA algorithm, through a JWKS that does not bind it to one.
    let rsa_key = keys.join("k-rs256.pk8.pem");
    let bound = std::fs::read_to_string(keys.join("k-rs256.jwks.json")).unwrap();
    let unbound = bound.replace(r#""alg":"RS256","#, "");
    assert_ne!(bound, unbound, "keygen JWKS layout changed: {bound}");
    let unbound = dir.write("rsa-unbound.jwks.json", unbound);
    for &alg in &ALGORITHMS[..6] {
        let results = mint_and_verify(
            &rsa_key,
            &unbound,
            alg,
            Some("k-rs256"),
            1,
            &["--algorithms", alg],
        );
        assert_eq!(results.len(), 1);
        assert_eq!(
            (&results[0]["valid"], &results[0]["alg"]),
            (&json!(true), &json!(alg)),
            "{alg}: {results:?}"
        );
    }
    // The keygen JWKS binds the key to RS256: another algorithm is refused.
    let results = mint_and_verify(
        &rsa_key,
        &keys.join("k-rs256.jwks.json"),
        "PS256",
        Some("k-rs256"),
        1,
        &["--algorithms", "RS256,PS256"],
    );
    assert_eq!(
        results,
        [rejected(
            1,
            "alg_not_allowed",
            "the key with this kid is bound to a different algorithm"
        )]
    );
}

#[test]
fn keygen_never_overwrites_and_mint_count_gives_distinct_tokens() {
    let dir = TempDir::new("keygen-again");
    let out = dir.path("keys");
    let first = jwtgate(
        args(&[
            &"keygen", &"--alg", &"ES256", &"--kid", &"same", &"--out", &out,
        ]),
        b"",
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    let before = std::fs::read(out.join("same.pk8.pem")).unwrap();
    let again = jwtgate(
        args(&[
            &"keygen", &"--alg", &"ES256", &"--kid", &"same", &"--out", &out,
        ]),
        b"",
    );
    assert_eq!(again.code, 2);
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.stderr);
    assert!(
        again.stderr.starts_with(&format!(
            "jwtgate: {}: ",
            out.join("same.pk8.pem").display()
        )),
        "{}",
        again.stderr
    );
    assert_eq!(std::fs::read(out.join("same.pk8.pem")).unwrap(), before);

    let minted = jwtgate(
        args(&[
            &"mint",
            &"--key",
            &out.join("same.pk8.pem"),
            &"--alg",
            &"ES256",
            &"--count",
            &"5",
            &"--now",
            &T.to_string(),
        ]),
        b"",
    );
    assert_eq!(minted.code, 0, "{}", minted.stderr);
    let tokens: Vec<String> = minted.stdout_text().lines().map(str::to_owned).collect();
    assert_eq!(tokens.len(), 5);
    assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), 5);
    let verified = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &out.join("same.jwks.json"),
            &"--now",
            &T.to_string(),
        ]),
        &minted.stdout,
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    let results = verified.json_lines();
    let jtis: HashSet<&str> = results.iter().map(|r| r["jti"].as_str().unwrap()).collect();
    assert_eq!(jtis.len(), 5);
    // Without --kid the PEM key has none, so the header has none either.
    assert!(
        results.iter().all(|r| r.get("kid").is_none()),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r["exp"] == json!(T + 3600) && r["iat"] == json!(T)),
        "{results:?}"
    );
}

#[test]
fn mint_claims_override_flags_and_ttl_sets_exp() {
    let dir = TempDir::new("mint-claims");
    let jwks = write_hs_jwks(&dir);
    let minted = jwtgate(
        args(&[
            &"mint",
            &"--key",
            &jwks,
            &"--alg",
            &"HS256",
            &"--sub",
            &"flag",
            &"--ttl",
            &"90",
            &"--now",
            &T.to_string(),
            &"--claims",
            &r#"{"sub":"override","scope":"read write","jti":"fixed"}"#,
        ]),
        b"",
    );
    assert_eq!(minted.code, 0, "{}", minted.stderr);
    let verified = jwtgate(
        args(&[&"verify", &"--jwks", &jwks, &"--now", &T.to_string()]),
        &minted.stdout,
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert_eq!(
        verified.json_lines(),
        [
            json!({"line": 1, "valid": true, "alg": "HS256", "kid": "k1", "sub": "override", "jti": "fixed",
            "iat": T, "exp": T + 90})
        ]
    );

    let not_an_object = jwtgate(
        args(&[
            &"mint",
            &"--key",
            &jwks,
            &"--alg",
            &"HS256",
            &"--claims",
            &"[1]",
        ]),
        b"",
    );
    assert_eq!(not_an_object.code, 2);
    assert_eq!(
        not_an_object.stderr.lines().count(),
        1,
        "{}",
        not_an_object.stderr
    );
    assert!(not_an_object.stdout.is_empty());
}

// ---------------------------------------------------------------------------
// inspect and demo
// ---------------------------------------------------------------------------

fn demo_jwks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keys/demo.jwks.json")
}

#[test]
fn inspect_decodes_and_names_the_failing_check() {
    let token = jwtgate::demo::demo_token(NOW, 3600, "alice").unwrap();
    let issuer = jwtgate::demo::DEMO_ISSUER;
    let audience = jwtgate::demo::DEMO_AUDIENCE;
    let jwks = demo_jwks();

    let valid = jwtgate(
        args(&[
            &"inspect",
            &"--jwks",
            &jwks,
            &"--issuer",
            &issuer,
            &"--audience",
            &audience,
            &"--now",
            &(T + 10).to_string(),
            &token,
        ]),
        b"",
    );
    assert_eq!(valid.code, 0, "{}", valid.stderr);
    let expected = format!(
        "header (decoded, not trusted until verified):
  {{
    \"alg\": \"RS256\",
    \"typ\": \"JWT\",
    \"kid\": \"demo-rs256\"
  }}
claims (decoded, not trusted until verified):
  {{
    \"iss\": \"{issuer}\",
    \"aud\": \"{audience}\",
    \"sub\": \"alice\",
    \"iat\": 1700000000,
    \"exp\": 1700003600
  }}
signature: 256 bytes (base64url: 342 characters)
times (now 2023-11-14T22:13:30Z):
  iat 1700000000  2023-11-14T22:13:20Z  (10 s ago)
  exp 1700003600  2023-11-14T23:13:20Z  (in 59 min)
verdict: valid (alg RS256, key kid \"demo-rs256\": RSA-2048 for RS256)
"
    );
    assert_eq!(valid.stdout_text(), expected);

    let expired = jwtgate(
        args(&[
            &"inspect",
            &"--jwks",
            &jwks,
            &"--issuer",
            &issuer,
            &"--audience",
            &audience,
            &"--now",
            &(T + 7200).to_string(),
            &token,
        ]),
        b"",
    );
    assert_eq!(expired.code, 1, "{}", expired.stderr);
    let report = expired.stdout_text();
    assert!(
        report.contains("\n  exp 1700003600  2023-11-14T23:13:20Z  (60 min ago)\n"),
        "{report}"
    );
    assert_eq!(
        report.lines().last(),
        Some("verdict: expired (exp has passed)"),
        "{report}"
    );

    let wrong_audience = jwtgate(
        args(&[
            &"inspect",
            &"--jwks",
            &jwks,
            &"--audience",
            &"other",
            &"--now",
            &T.to_string(),
            &token,
        ]),
        b"",
    );
    assert_eq!(wrong_audience.code, 1);
    assert_eq!(
        wrong_audience.stdout_text().lines().last(),
        Some("verdict: wrong_audience (no aud value is a configured audience)")
    );

    let unverified = jwtgate(args(&[&"inspect", &"--now", &T.to_string(), &token]), b"");
    assert_eq!(unverified.code, 0);
    let report = unverified.stdout_text();
    assert!(report.contains("    \"sub\": \"alice\",\n"), "{report}");
    assert_eq!(
        report.lines().last(),
        Some("verdict: not verified (give --jwks to check the signature and claims)")
    );

    // "-" reads the token from stdin, surrounding whitespace and all.
    let from_stdin = jwtgate(
        args(&[&"inspect", &"--now", &T.to_string(), &"-"]),
        format!("{token}\n").as_bytes(),
    );
    assert_eq!(from_stdin.code, 0);
    assert_eq!(from_stdin.stdout, unverified.stdout);
}

#[test]
fn inspect_explains_alg_none() {
    let token = format!(
        "{}.{}.",
        base64url::encode(br#"{"alg":"none"}"#),
        base64url::encode(format!(r#"{{"sub":"admin","exp":{}}}"#, T + 60).as_bytes())
    );
    let note = "  - alg none: an unsigned token; jwtgate never accepts it";
    let unverified = jwtgate(["inspect", "--now", &T.to_string(), &token], b"");
    assert_eq!(unverified.code, 0);
    let report = unverified.stdout_text();
    assert!(report.contains(&format!("\nnotes:\n{note}\n")), "{report}");
    assert!(report.contains("signature: 0 bytes"), "{report}");

    let verified = jwtgate(
        args(&[
            &"inspect",
            &"--jwks",
            &demo_jwks(),
            &"--now",
            &T.to_string(),
            &token,
        ]),
        b"",
    );
    assert_eq!(verified.code, 1);
    let report = verified.stdout_text();
    assert!(report.contains(note), "{report}");
    assert_eq!(
        report.lines().last(),
        Some("verdict: alg_not_allowed (alg none is never accepted)")
    );
}

#[test]
fn demo_shows_valid_and_refused_tokens() {
    let run = jwtgate(["demo"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.stdout_text();
    for expected in [
        "  valid RS256 token                  -> valid (sub=alice, alg=RS256, kid=demo-rs256)",
        "  valid EdDSA token                  -> valid (sub=bob, alg=EdDSA, kid=demo-eddsa)",
        "  expired an hour ago                -> expired: exp has passed",
        "  alg none                           -> alg_not_allowed: alg none is never accepted",
        "  HS256 keyed with the public JWKS   -> alg_not_allowed: alg is not in this configuration's allow-list",
        "  unknown kid                        -> unknown_kid: no key in the key set has this kid",
    ] {
        assert!(
            report.lines().any(|line| line == expected),
            "missing {expected:?} in\n{report}"
        );
    }
    // The last line is a fresh token that `verify` accepts with the demo keys.
    let token = report.lines().last().unwrap();
    let run = jwtgate(
        args(&[
            &"verify",
            &"--jwks",
            &demo_jwks(),
            &"--issuer",
            &jwtgate::demo::DEMO_ISSUER,
            &"--audience",
            &jwtgate::demo::DEMO_AUDIENCE,
        ]),
        format!("{token}\n").as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let results = run.json_lines();
    assert_eq!(results.len(), 1);
    assert_eq!(
        (&results[0]["valid"], &results[0]["kid"], &results[0]["sub"]),
        (&json!(true), &json!("demo-rs256"), &json!("alice"))
    );
}

/// `verify` is a stream: each result comes out while the input is still open,
/// not when a batch fills or the input ends. The test writes one token, reads its
/// result back (a blocking read, no timing), and only then writes the next.
#[test]
fn verify_answers_each_line_while_the_input_stays_open() {
    use std::io::{BufRead as _, BufReader};
    let dir = TempDir::new("stream");
    let jwks = write_hs_jwks(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(args(&[
            &"verify",
            &"--jwks",
            &jwks,
            &"--now",
            &NOW.0.to_string(),
            &"--quiet",
        ]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A broken stream would leave the reads below blocked: after a minute the
    // watchdog kills the child, the read sees end of file, and the test fails.
    let (finished, watchdog) = std::sync::mpsc::channel::<()>();
    let pid = child.id().to_string();
    let watchdog = std::thread::spawn(move || {
        if watchdog
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    });
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let token = hs256(&format!(r#"{{"sub":"s","exp":{}}}"#, NOW.0 + 60));
    for line in 1..=3u64 {
        writeln!(input, "{token}").unwrap();
        input.flush().unwrap();
        let mut result = String::new();
        output.read_line(&mut result).unwrap();
        let result: Value = serde_json::from_str(&result).unwrap();
        assert_eq!(result["line"], json!(line));
        assert_eq!(result["valid"], json!(true));
    }
    drop(input);
    assert!(child.wait().unwrap().success());
    finished.send(()).unwrap();
    watchdog.join().unwrap();
}

/// The README's "Verifying tokens in bulk" commands, run as written (with
/// `jwtgate` the binary under test) in a scratch directory: each succeeds,
/// and `inspect` of the first minted token says it is valid.
#[test]
fn the_readme_bulk_walkthrough_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("## Verifying tokens in bulk")
        .map(|(_, rest)| rest)
        .unwrap();
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .unwrap();
    let dir = TempDir::new("readme-bulk");
    let bin = env!("CARGO_BIN_EXE_jwtgate");
    let script = format!("set -eu\njwtgate() {{ \"{bin}\" \"$@\"; }}\n{block}");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: valid (alg RS256"), "{stdout}");
    let results = std::fs::read_to_string(dir.path("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 1000);
    assert!(results.lines().all(|line| line.contains("\"valid\":true")));
}

/// `verify ... | head -1`: when the reader of stdout goes away, verify ends
/// the way Unix tools do (by SIGPIPE), without a word on stderr.
#[test]
fn verify_ends_quietly_when_its_reader_goes_away() {
    use std::io::{BufRead as _, BufReader};
    use std::os::unix::process::ExitStatusExt as _;
    let dir = TempDir::new("broken-pipe");
    let jwks = write_hs_jwks(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(["verify", "--jwks", jwks.to_str().unwrap(), "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 200,000 results of some 90 bytes: far more than the pipe and the
    // writer's buffer hold, so the writes meet the closed pipe.
    let writer = std::thread::spawn(move || {
        let lines = "not-a-token\n".repeat(200_000);
        let _ = stdin.write_all(lines.as_bytes());
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("{\"line\":1,"), "{first}");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert!(!stderr.contains("jwtgate:"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "{:?}: {stderr}", out.status);
}

/// `--version` names the commit the binary was built from (when built from a
/// checkout) and the crypto backends.
#[test]
fn version_names_the_commit_and_the_crypto_backends() {
    let out = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{version}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    let commit = head.unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        version.trim(),
        format!(
            "jwtgate {} (commit {commit}; crypto: aws-lc-rs for RSA, ECDSA and Ed25519, ring for HMAC)",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// `completions SHELL` prints a script the shell accepts, naming every
/// command and their flags; `man` prints the page, or one per command.
#[test]
fn completions_and_manual_pages_cover_every_command() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    for word in [
        "check-config",
        "serve",
        "verify",
        "--handover",
        "--log-format",
        "--max-queue-delay",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let dir = TempDir::new("completions");
    let script = dir.write("jwtgate.bash", &bash);
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(run(&["completions", "zsh"]).starts_with("#compdef jwtgate"));
    assert!(run(&["completions", "fish"]).contains("complete -c jwtgate"));

    let page = run(&["man"]);
    assert!(page.contains(".TH jwtgate 1"), "{page}");
    assert!(page.contains("check\\-config"), "{page}");
    let pages = dir.path("man");
    run(&["man", "--out", pages.to_str().unwrap()]);
    for command in [
        "",
        "-serve",
        "-verify",
        "-check-config",
        "-inspect",
        "-mint",
        "-keygen",
    ] {
        let page = std::fs::read_to_string(pages.join(format!("jwtgate{command}.1")))
            .unwrap_or_else(|e| panic!("jwtgate{command}.1: {e}"));
        assert!(page.starts_with(".ie"), "jwtgate{command}.1");
    }
    let serve = std::fs::read_to_string(pages.join("jwtgate-serve.1")).unwrap();
    assert!(serve.contains("handover"), "{serve}");
}
