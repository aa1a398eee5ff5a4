//! Harness for the `jwtgate serve` tests: starts the real binary on ephemeral
//! ports, waits for its readiness line (never a sleep), and speaks raw HTTP/1.1
//! over std `TcpStream`s with read and write timeouts, so that a server bug
//! fails a test instead of hanging it.
//!
//! Neighbours: `tests/integration/serve.rs` (integration tests over
//! loopback) and `tests/integration/e2e_nginx.rs` (behind a real nginx) use
//! everything here; the key and token helpers live in `common/mod.rs`.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead as _, BufReader, ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any single read or write on a test connection may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server may take to print its readiness line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between two polls of a child process's exit status. Polling an
/// exit status is not a readiness wait: the assertion is on the status.
const POLL: Duration = Duration::from_millis(10);

const READY_PREFIX: &str = "jwtgate serve: listening on ";

/// A running `jwtgate serve`, killed when dropped.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    verify: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
    shards: usize,
    io: String,
    ready_line: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Spawns `jwtgate serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 ARGS`,
    /// reads stdout until the readiness line (60 s deadline; panics with the
    /// child's stderr if it exits first), parses both addresses and confirms
    /// them by connecting.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            args,
        )
    }

    /// Spawns `jwtgate serve ARGS` with no listen flags of its own: for a
    /// configuration file whose `[server]` table names the (ephemeral) ports.
    /// Otherwise as [`Server::start`].
    pub fn start_without_listen_flags(args: &[&str]) -> Server {
        Server::start_with(&["serve"], args)
    }

    /// [`Server::start`] with these environment variables set for it.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            args,
            env,
        )
    }

    fn start_with(fixed: &[&str], args: &[&str]) -> Server {
        Server::spawn(fixed, args, &[])
    }

    fn spawn(fixed: &[&str], args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jwtgate"));
        command.args(fixed).envs(env.iter().copied());
        Server::start_command(command, args)
    }

    /// `command ARGS`, a jwtgate started some other way than the test binary
    /// directly (from a container image's filesystem, under `chroot`); `ARGS`
    /// include `serve` and every listen flag. Otherwise as [`Server::start`].
    pub fn start_command(mut command: Command, args: &[&str]) -> Server {
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jwtgate serve");

        // stderr is drained continuously so that a chatty server never blocks on
        // a full pipe; its text is kept for failure messages.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut stderr_pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        let stderr_thread = std::thread::spawn(move || {
            let mut chunk = [0_u8; 4096];
            loop {
                match stderr_pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });

        // stdout lines go through a channel so the wait has a deadline; the
        // thread keeps draining stdout after the readiness line.
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let stdout_pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Read to the end even once nobody listens: a pipe closed early
            // would make the server's next stdout write fail.
            for line in BufReader::new(stdout_pipe).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });

        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            verify: None,
            grpc: None,
            shards: 0,
            io: String::new(),
            ready_line: String::new(),
            stderr,
            stderr_thread: Some(stderr_thread),
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.starts_with(READY_PREFIX) => {
                    server.ready_line = line;
                    break;
                }
                Ok(line) => before.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = server.child.kill();
                    let _ = server.child.wait();
                    panic!(
                        "jwtgate serve {args:?}: no readiness line within {STARTUP_TIMEOUT:?}\n\
                         stdout so far: {before:?}\nstderr: {}",
                        server.stderr_text()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting. Collect its status
                    // and the whole of stderr for the message.
                    let status = server.wait_exit_quietly(Duration::from_secs(10));
                    if let Some(thread) = server.stderr_thread.take() {
                        let _ = thread.join();
                    }
                    panic!(
                        "jwtgate serve {args:?} exited before its readiness line ({status:?})\n\
                         stdout: {before:?}\nstderr: {}",
                        server.stderr_text()
                    );
                }
            }
        }
        let ready = parse_ready_line(&server.ready_line)
            .unwrap_or_else(|| panic!("unparsable readiness line {:?}", server.ready_line));
        server.addr = ready.addr;
        server.admin = ready.admin;
        server.verify = ready.verify;
        server.grpc = ready.grpc;
        server.shards = ready.shards;
        server.io = ready.io;
        for target in [
            Some(ready.addr),
            Some(ready.admin),
            ready.verify,
            ready.grpc,
        ]
        .into_iter()
        .flatten()
        {
            if let Err(e) = TcpStream::connect_timeout(&target, IO_TIMEOUT) {
                panic!(
                    "readiness line {:?} printed but {target} refuses connections: {e}\nstderr: {}",
                    server.ready_line,
                    server.stderr_text()
                );
            }
        }
        server
    }

    /// The data listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The batch listener (`, verify on ADDR` in the readiness line), if any.
    pub fn verify_addr(&self) -> Option<SocketAddr> {
        self.verify
    }

    /// The gRPC listener (`, grpc on ADDR` in the readiness line), if any.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
    }

    /// `N` of `(shards N, io …)` in the readiness line.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// `uring` or `epoll`, from the readiness line.
    pub fn io(&self) -> &str {
        &self.io
    }

    /// The readiness line, verbatim.
    pub fn ready_line(&self) -> &str {
        &self.ready_line
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Sends SIGTERM through `kill(1)` (no libc in the tests).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP (reload) through `kill(1)`.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Sends SIGINT (what Ctrl-C sends) through `kill(1)`.
    pub fn sigint(&self) {
        self.signal("INT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{name} {} failed: {status}",
            self.pid()
        );
    }

    /// The exit status, waiting at most `timeout`; panics (with stderr) after it.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit_quietly(timeout) {
            Some(status) => status,
            None => panic!(
                "jwtgate serve did not exit within {timeout:?}\nstderr: {}",
                self.stderr_text()
            ),
        }
    }

    fn wait_exit_quietly(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the readiness line says.
#[derive(Debug, PartialEq, Eq)]
pub struct Ready {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub verify: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
    pub shards: usize,
    pub io: String,
}

/// Parses `jwtgate serve: listening on A (shards N, io X), admin on B`, also
/// with `, grpc on G` and `, verify on V` before `, admin on` (the
/// `--grpc-listen` and `--verify-listen` ports).
pub fn parse_ready_line(line: &str) -> Option<Ready> {
    let rest = line.strip_prefix(READY_PREFIX)?;
    let (addr, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("(shards ")?;
    let (shards, rest) = rest.split_once(", io ")?;
    let (io, rest) = rest.split_once(')')?;
    let (mut grpc, mut verify, mut admin) = (None, None, None);
    for part in rest.trim_end().strip_prefix(", ")?.split(", ") {
        let (name, value) = part.split_once(" on ")?;
        let value = Some(value.parse().ok()?);
        match name {
            "grpc" => grpc = value,
            "verify" => verify = value,
            "admin" => admin = value,
            _ => return None,
        }
    }
    Some(Ready {
        addr: addr.parse().ok()?,
        admin: admin?,
        verify,
        grpc,
        shards: shards.parse().ok()?,
        io: io.to_owned(),
    })
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 over one connection
// ---------------------------------------------------------------------------

/// One parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Header names as received, values with surrounding blanks removed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status line and header block, verbatim, up to and including the blank line.
    pub head: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|_| panic!("body is not UTF-8: {:?}", self.body))
    }

    /// The status line and headers as text, for assertion messages.
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

/// What one bounded read of a connection produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(Vec<u8>),
    /// Orderly close (or a reset, which is how a close with unread data looks).
    Eof,
    TimedOut,
}

/// A client connection with a read buffer that keeps the bytes of pipelined
/// responses not yet parsed.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    /// Connects with [`IO_TIMEOUT`] on connect, read and write, `TCP_NODELAY` on.
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes all of `bytes` in one `write_all`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes: {e}", bytes.len()));
        self.stream.flush().unwrap();
    }

    /// Writes `bytes` one byte per write, flushing each (`TCP_NODELAY` makes
    /// each its own segment).
    pub fn send_bytewise(&mut self, bytes: &[u8]) {
        for (i, byte) in bytes.iter().enumerate() {
            self.stream
                .write_all(std::slice::from_ref(byte))
                .unwrap_or_else(|e| panic!("write byte {i}: {e}"));
            self.stream.flush().unwrap();
        }
    }

    /// Sends `bytes` and reads one response.
    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response()
    }

    /// Reads one full response; panics on EOF, reset, timeout or a malformed response.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads one full response, or says why there is none.
    pub fn try_read_response(&mut self) -> Result<Response, String> {
        loop {
            if let Some((response, used)) = parse_response(&self.buf, self.eof)? {
                self.buf.drain(..used);
                return Ok(response);
            }
            if self.eof {
                return Err(format!(
                    "connection closed after {} bytes of a response: {:?}",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            match self.fill() {
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "{e} with {} bytes buffered: {:?}",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf)
                    ));
                }
            }
        }
    }

    /// Asserts that the server closes the connection without sending another
    /// byte (within [`IO_TIMEOUT`]). A reset counts as a close: a server that
    /// closes with unread request bytes makes the kernel send RST.
    pub fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "expected EOF but {} unread bytes are buffered: {:?}",
            self.buf.len(),
            String::from_utf8_lossy(&self.buf)
        );
        match self.read_some(IO_TIMEOUT) {
            ReadOutcome::Eof => {}
            ReadOutcome::Data(data) => panic!(
                "expected EOF, got {} bytes: {:?}",
                data.len(),
                String::from_utf8_lossy(&data)
            ),
            ReadOutcome::TimedOut => {
                panic!("expected EOF, connection still open after {IO_TIMEOUT:?}")
            }
        }
    }

    /// One read bounded by `timeout`: whatever bytes arrive (buffered bytes first), EOF, or nothing.
    pub fn read_some(&mut self, timeout: Duration) -> ReadOutcome {
        if !self.buf.is_empty() {
            return ReadOutcome::Data(std::mem::take(&mut self.buf));
        }
        if self.eof {
            return ReadOutcome::Eof;
        }
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = vec![0_u8; 16 * 1024];
        let outcome = match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                ReadOutcome::Eof
            }
            Ok(n) => {
                chunk.truncate(n);
                ReadOutcome::Data(chunk)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                ReadOutcome::TimedOut
            }
            Err(e) if is_reset(&e) => {
                self.eof = true;
                ReadOutcome::Eof
            }
            Err(e) => panic!("read: {e}"),
        };
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        outcome
    }

    /// Reads once into the buffer: `Ok(false)` at EOF.
    fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0_u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(format!("no response within {IO_TIMEOUT:?}"))
            }
            Err(e) => Err(format!("read error: {e}")),
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Parses one response from the front of `buf`: `Ok(None)` when more bytes are
/// needed, `Ok(Some((response, bytes used)))` when complete. The body is
/// delimited by `content-length`, by chunked encoding, or (neither) by EOF.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(Response, usize)>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = &buf[..end + 4];
    let text = std::str::from_utf8(&buf[..end])
        .map_err(|_| format!("response head is not UTF-8: {:?}", &buf[..end]))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_owned();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or_default().to_owned();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line without a colon: {line:?} in {text:?}"))?;
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(format!("bad header name {name:?} in {text:?}"));
        }
        headers.push((
            name.to_owned(),
            value.trim_matches(|c| c == ' ' || c == '\t').to_owned(),
        ));
    }
    let mut response = Response {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
        head: head.to_vec(),
    };
    let rest = &buf[end + 4..];
    let content_length = response.header("content-length").map(str::to_owned);
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    if let Some(length) = content_length {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad content-length {length:?}"))?;
        if rest.len() < length {
            return Ok(None);
        }
        response.body = rest[..length].to_vec();
        Ok(Some((response, end + 4 + length)))
    } else if chunked {
        match dechunk(rest)? {
            None => Ok(None),
            Some((body, used)) => {
                response.body = body;
                Ok(Some((response, end + 4 + used)))
            }
        }
    } else if matches!(status, 100..=199 | 204 | 304) {
        Ok(Some((response, end + 4)))
    } else if eof {
        response.body = rest.to_vec();
        Ok(Some((response, buf.len())))
    } else {
        Ok(None)
    }
}

/// Decodes a chunked body (no trailers expected): `(body, bytes used)` or `None`
/// when incomplete.
fn dechunk(mut rest: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let total = rest.len();
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            if rest.len() < 2 {
                return Ok(None);
            }
            if &rest[..2] != b"\r\n" {
                return Err("trailers are not expected".to_owned());
            }
            return Ok(Some((body, total - rest.len() + 2)));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The bytes of one request: request line, `Host`, the given headers, a
/// `Content-Length` when there is a body, then the body.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: jwtgate.test\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A small ordinary keep-alive client: one connection, one request at a time.
pub struct Client {
    conn: Conn,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            conn: Conn::open(addr),
        }
    }

    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.conn.request(&request_bytes("GET", path, headers, b""))
    }

    pub fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.conn
            .request(&request_bytes("POST", path, headers, body))
    }

    /// `METHOD path` with `Host: host` and `headers` (`POST` with an empty body).
    pub fn request_with(
        &mut self,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if method == "POST" {
            out.push_str("Content-Length: 0\r\n");
        }
        out.push_str("\r\n");
        self.conn.request(out.as_bytes())
    }

    /// `GET path` with `Authorization: Bearer token`.
    pub fn get_bearer(&mut self, path: &str, token: &str) -> Response {
        let value = format!("Bearer {token}");
        self.get(path, &[("Authorization", &value)])
    }

    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// One `GET` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    Client::new(addr).get(path, headers)
}

// ---------------------------------------------------------------------------
// Scratch files and one-shot runs of the binary
// ---------------------------------------------------------------------------

/// Runs `jwtgate ARGS` to completion with `stdin` piped in (from a thread, so
/// a large input cannot deadlock against a full stdout pipe).
pub fn run_jwtgate(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jwtgate");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Runs `jwtgate ARGS` (stdin empty) and returns its output, killing it and
/// panicking if it is still running after `timeout`: for commands expected to
/// fail at startup, which must not hang a test if they start serving instead.
pub fn run_jwtgate_bounded(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jwtgate");
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
            panic!(
                "jwtgate {args:?} still running after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&stderr.join().unwrap())
            );
        }
        std::thread::sleep(POLL);
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
