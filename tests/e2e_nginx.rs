//! End-to-end test behind a real nginx: `auth_request` asks a real
//! `jwtgate serve` about every request, and a tiny upstream on a std thread
//! echoes the request head it receives, so the test sees exactly what the API
//! behind nginx would see. The shape of the nginx configuration is the one in
//! the README (and `examples/nginx/jwtgate.conf`).
//!
//! nginx is the Debian package (`/usr/sbin/nginx`, or `nginx` on the PATH). A
//! machine without it fails these tests with a message saying so, unless
//! `JWTGATE_SKIP_E2E=1` is set (then they print a note and pass).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TempDir;
use common::server::{Conn, IO_TIMEOUT, Response, Server, find, request_bytes};
use common::{data_path, mint, signing_key};
use jwtgate::Algorithm;

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";
/// How long nginx may take to answer its readiness probe.
const NGINX_START: Duration = Duration::from_secs(30);
/// Attempts at starting nginx on a fresh port.
const NGINX_ATTEMPTS: usize = 5;

// ---------------------------------------------------------------------------
// Finding and running nginx
// ---------------------------------------------------------------------------

/// The nginx binary, or `None` when the test is to be skipped; panics when
/// nginx is missing and skipping was not asked for.
#[allow(clippy::print_stderr)]
fn nginx_binary() -> Option<PathBuf> {
    let skip = std::env::var("JWTGATE_SKIP_E2E").is_ok_and(|v| v == "1");
    let candidates = std::iter::once(PathBuf::from("/usr/sbin/nginx")).chain(
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("nginx"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if skip {
        eprintln!("e2e_nginx: nginx not found; skipped because JWTGATE_SKIP_E2E=1");
        return None;
    }
    panic!(
        "e2e_nginx: nginx not found (looked for /usr/sbin/nginx and nginx on PATH). \
         Install it (Debian: apt-get install nginx-light or nginx) or set JWTGATE_SKIP_E2E=1 \
         to skip the end-to-end tests."
    );
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A running nginx (master and one worker) in its own temp prefix.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Dropped after the process is gone (fields drop after `Drop::drop`).
    _dir: TempDir,
}

impl Nginx {
    /// Starts nginx in front of `jwtgate` and `upstream`. nginx cannot listen
    /// on an ephemeral port and report it, so a free port is found by binding
    /// 127.0.0.1:0 and dropping the listener; another process may take it in
    /// between, hence up to [`NGINX_ATTEMPTS`] tries on fresh ports.
    fn start(binary: &PathBuf, jwtgate: SocketAddr, upstream: SocketAddr) -> Nginx {
        let mut failures = Vec::new();
        for attempt in 1..=NGINX_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            match Nginx::try_start(binary, port, jwtgate, upstream) {
                Ok(nginx) => return nginx,
                Err(why) => failures.push(format!("attempt {attempt} (port {port}): {why}")),
            }
        }
        panic!("nginx did not start:\n{}", failures.join("\n"));
    }

    fn try_start(
        binary: &PathBuf,
        port: u16,
        jwtgate: SocketAddr,
        upstream: SocketAddr,
    ) -> Result<Nginx, String> {
        let dir = TempDir::new("e2e-nginx");
        let root = dir.root().display().to_string();
        let user = if running_as_root() {
            // The workers would otherwise drop to `nobody`; keeping root keeps
            // the temp prefix writable for them.
            "user root;\n"
        } else {
            ""
        };
        let conf = format!(
            r#"{user}daemon off;
master_process on;
worker_processes 1;
error_log stderr;
pid {root}/nginx.pid;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /_ready {{
            return 204;
        }}
        location / {{
            auth_request /_jwtgate;
            auth_request_set $jwt_sub $upstream_http_x_jwt_sub;
            proxy_set_header X-Jwt-Sub $jwt_sub;
            proxy_pass http://{upstream};
        }}
        location = /_jwtgate {{
            internal;
            proxy_pass http://{jwtgate};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
}}
"#
        );
        let conf_path = dir.write("nginx.conf", conf);
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir.root())
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0_u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let mut nginx = Nginx {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stderr,
            _dir: dir,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    /// Ready when `GET /_ready` on the port is answered `204` by nginx itself
    /// (a `Server: nginx` header: not some other process that took the port).
    /// Fails early when nginx exits (a port taken in between, typically).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + NGINX_START;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr thread catch the last words.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!("nginx exited ({status}): {}", self.stderr_text()));
            }
            if let Ok(mut stream) = TcpStream::connect(self.addr) {
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                stream
                    .write_all(b"GET /_ready HTTP/1.1\r\nHost: ready\r\nConnection: close\r\n\r\n")
                    .map_err(|e| format!("probe write: {e}"))?;
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
                if text.starts_with("http/1.1 204") && text.contains("\r\nserver: nginx") {
                    return Ok(());
                }
                return Err(format!("the port answered, but not as our nginx: {text:?}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no answer within {NGINX_START:?}; stderr: {}",
                    self.stderr_text()
                ));
            }
            // Poll interval of the readiness probe (nginx cannot say when it
            // listens); the probe's answer, not the time, decides.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its workers and exit; a SIGKILL to
        // the master alone would leave the worker orphaned on the port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The upstream: echoes the request head it received
// ---------------------------------------------------------------------------

/// A std-thread HTTP server on 127.0.0.1:0 answering every request `200` with
/// the request head as its body; counts the requests it served.
fn start_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || echo(stream, &counter));
        }
    });
    (addr, hits)
}

fn echo(mut stream: TcpStream, hits: &AtomicUsize) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut head = Vec::new();
    let mut chunk = [0_u8; 4096];
    while find(&head, b"\r\n\r\n").is_none() && head.len() < 64 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        head.len()
    )
    .into_bytes();
    answer.extend_from_slice(&head);
    let _ = stream.write_all(&answer);
}

/// The `(name, value)` header lines of an echoed request head.
fn echoed_headers(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// The stack: upstream, jwtgate, nginx
// ---------------------------------------------------------------------------

struct Stack {
    // Declared first: nginx goes before jwtgate.
    nginx: Nginx,
    _jwtgate: Server,
    upstream_hits: Arc<AtomicUsize>,
}

impl Stack {
    fn start() -> Option<Stack> {
        let binary = nginx_binary()?;
        let (upstream, upstream_hits) = start_upstream();
        let jwks = data_path("rsa2048-a.spki.pem");
        let jwtgate = Server::start(&[
            "--jwks",
            jwks.to_str().unwrap(),
            "--now",
            NOW,
            "--issuer",
            ISS,
            "--audience",
            AUD,
            "--shards",
            "1",
        ]);
        let nginx = Nginx::start(&binary, jwtgate.addr(), upstream);
        Some(Stack {
            nginx,
            _jwtgate: jwtgate,
            upstream_hits,
        })
    }

    /// `GET /api/orders` through nginx with these extra headers.
    fn get(&self, headers: &[(&str, &str)]) -> Response {
        let mut all = vec![("Connection", "close")];
        all.extend_from_slice(headers);
        let mut conn = Conn::open(self.nginx.addr);
        conn.send(&request_bytes("GET", "/api/orders?id=7", &all, b""));
        conn.try_read_response().unwrap_or_else(|e| {
            panic!(
                "no answer from nginx: {e}\nnginx stderr: {}",
                self.nginx.stderr_text()
            )
        })
    }

    fn hits(&self) -> usize {
        self.upstream_hits.load(Ordering::SeqCst)
    }
}

fn token(key: &str, sub: &str) -> String {
    mint(
        r#"{"alg":"RS256","typ":"JWT"}"#,
        &format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{sub}","iat":{T},"exp":{}}}"#,
            T + 3600
        ),
        &signing_key(key, Algorithm::Rs256),
        Algorithm::Rs256,
    )
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn valid_token_reaches_upstream_with_sub_header() {
    let Some(stack) = Stack::start() else { return };
    let auth = format!("Bearer {}", token("rsa2048-a", "alice"));
    // The client tries to pass itself off as admin: the header is overwritten.
    let r = stack.get(&[("Authorization", &auth), ("X-Jwt-Sub", "admin")]);
    assert_eq!(
        r.status,
        200,
        "{}{}\nnginx stderr: {}",
        r.head_text(),
        String::from_utf8_lossy(&r.body),
        stack.nginx.stderr_text()
    );
    assert_eq!(stack.hits(), 1);
    let seen = echoed_headers(&r.body);
    let subs: Vec<&str> = seen
        .iter()
        .filter(|(n, _)| n == "x-jwt-sub")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        subs,
        ["alice"],
        "upstream saw:\n{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        String::from_utf8_lossy(&r.body).starts_with("GET /api/orders?id=7 HTTP/1."),
        "upstream saw:\n{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn invalid_token_gets_401_with_jwtgate_challenge() {
    let Some(stack) = Stack::start() else { return };
    // Signed with another key than the one jwtgate trusts.
    let auth = format!("Bearer {}", token("rsa2048-b", "alice"));
    let r = stack.get(&[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(
        r.header_all("www-authenticate"),
        [r#"Bearer realm="jwtgate", error="invalid_token", error_description="bad_signature""#],
        "{}",
        r.head_text()
    );
    assert_eq!(stack.hits(), 0, "the upstream was reached");
}

#[test]
fn missing_token_gets_401_with_realm_only() {
    let Some(stack) = Stack::start() else { return };
    let r = stack.get(&[]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(
        r.header_all("www-authenticate"),
        [r#"Bearer realm="jwtgate""#],
        "{}",
        r.head_text()
    );
    // Another scheme is no token either.
    let r = stack.get(&[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(r.status, 401, "{}", r.head_text());
    assert_eq!(
        r.header_all("www-authenticate"),
        [r#"Bearer realm="jwtgate""#]
    );
    assert_eq!(stack.hits(), 0, "the upstream was reached");
}
