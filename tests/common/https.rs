//! A local HTTPS server for tests that fetch over TLS (the remote JWKS tests):
//! a test CA made with `rcgen`, a leaf certificate for `127.0.0.1` and
//! `localhost` signed by it, and a `rustls` server on a std `TcpListener`
//! bound to `127.0.0.1:0`, one thread per connection, one request per
//! connection (`connection: close`).
//!
//! What it answers is set by the test while it runs: a [`Reply`] per path
//! (status, body, extra headers, an optional delay before answering), and it
//! counts the requests per path. [`HttpsServer::down`] closes the listener (a
//! client gets "connection refused"); [`HttpsServer::up`] binds the same port
//! again.
//!
//! Bounded and loopback only: every read and write has a timeout, a request
//! head is capped, a delay is cut short when the server is dropped, and the
//! drop joins every thread it started.
//!
//! Neighbours: `server.rs` runs the jwtgate binary; `mod.rs` has the key and
//! token helpers.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Bound on any read or write of a connection (a client that stalls cannot
/// keep a thread alive past the test).
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read; a longer one is dropped unanswered.
const MAX_HEAD: usize = 16 * 1024;
/// How often the acceptor looks at its stop flag, and a delay at the server's.
const POLL: Duration = Duration::from_millis(5);
/// How long [`HttpsServer::up`] keeps trying to bind the old port again.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate authority of the tests' own, trusted by nothing else.
pub struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA (a fresh P-256 key) named `name` in its subject.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("jwtgate test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Ca {
            pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM (what a client's `ca_file` holds).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `127.0.0.1` and `localhost` and its PKCS#8
    /// key, both PEM, for servers configured with files (redis-server).
    pub fn leaf_pem(&self) -> (String, String) {
        let (certificate, key) = self.leaf();
        let pem = |label: &str, der: &[u8]| {
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|line| std::str::from_utf8(line).unwrap())
                .collect();
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                lines.join("\n")
            )
        };
        (
            pem("CERTIFICATE", &certificate),
            pem("PRIVATE KEY", key.secret_der()),
        )
    }

    /// A server certificate for `127.0.0.1` (IP SAN) and `localhost`, and its key.
    fn leaf(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.use_authority_key_identifier_extension = true;
        params.key_usages.push(KeyUsagePurpose::DigitalSignature);
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (
            certificate.der().clone(),
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
    }
}

/// What the server answers on one path.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Sent after `content-type: application/json`, `content-length` and
    /// `connection: close`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Waited after the request head is read and counted, before answering.
    pub delay: Duration,
}

impl Reply {
    /// `200` with this body.
    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// This status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::json("")
        }
    }

    /// One more response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers only after `delay`.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// What the test controls and observes, shared with the server's threads.
#[derive(Default)]
struct State {
    replies: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
}

struct Shared {
    state: Mutex<State>,
    /// Replaced by [`HttpsServer::reissue`]; each connection takes the current one.
    tls: Mutex<Arc<ServerConfig>>,
    /// Set when the server is dropped: cuts delays short.
    closing: AtomicBool,
    /// Connection threads, joined on drop (finished ones pruned as new come).
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// The thread accepting on the listener, and its stop flag.
struct Acceptor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// A running local HTTPS server; stops, with all its threads, when dropped.
pub struct HttpsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<Acceptor>,
}

impl HttpsServer {
    /// Serves on `127.0.0.1:0` with a leaf certificate signed by `ca`.
    /// Every path answers 404 until [`HttpsServer::set`] says otherwise.
    pub fn start(ca: &Ca) -> HttpsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut server = HttpsServer {
            addr: listener.local_addr().unwrap(),
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                tls: Mutex::new(tls_config(ca)),
                closing: AtomicBool::new(false),
                connections: Mutex::new(Vec::new()),
            }),
            acceptor: None,
        };
        server.accept_on(listener);
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// From now on, connections get a new certificate, signed by `ca`.
    pub fn reissue(&self, ca: &Ca) {
        *self.shared.tls.lock().unwrap() = tls_config(ca);
    }

    /// From now on, `path` is answered with `reply`.
    pub fn set(&self, path: &str, reply: Reply) {
        self.lock().replies.insert(path.to_owned(), reply);
    }

    /// Requests for `path` so far (counted when the request head is read,
    /// before any delay).
    pub fn hits(&self, path: &str) -> usize {
        self.lock().hits.get(path).copied().unwrap_or(0)
    }

    /// Closes the listener: new connections are refused until [`HttpsServer::up`].
    /// Connections already accepted are answered.
    pub fn down(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.stop.store(true, Ordering::Release);
            acceptor.thread.join().unwrap();
        }
    }

    /// Listens on the same port again (retrying while the port is busy).
    pub fn up(&mut self) {
        assert!(self.acceptor.is_none(), "test bug: the server is up");
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                    std::thread::sleep(POLL);
                }
                Err(e) => panic!("binding {} again: {e}", self.addr),
            }
        };
        self.accept_on(listener);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Starts the acceptor thread. The listener is non-blocking and polled,
    /// so that [`HttpsServer::down`] can stop it and drop the socket.
    fn accept_on(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(&self.shared);
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let serving = Arc::clone(&shared);
                        let handle = std::thread::spawn(move || {
                            // A failed handshake or a client gone is the client's business.
                            let _ = answer(stream, &serving);
                        });
                        let mut connections = shared.connections.lock().unwrap();
                        connections.retain(|handle| !handle.is_finished());
                        connections.push(handle);
                    }
                    // Nothing pending, or a client gone before its accept
                    // (ECONNABORTED): not the server's failure.
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        self.acceptor = Some(Acceptor { stop, thread });
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.down();
        let connections = std::mem::take(&mut *self.shared.connections.lock().unwrap());
        for handle in connections {
            let _ = handle.join();
        }
    }
}

/// A server configuration (ring provider) with a new leaf certificate from `ca`.
fn tls_config(ca: &Ca) -> Arc<ServerConfig> {
    let (certificate, key) = ca.leaf();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate], key)
            .unwrap();
    Arc::new(config)
}

/// Serves one connection: TLS handshake, one request head, one answer, close.
fn answer(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let config = Arc::clone(&shared.tls.lock().unwrap());
    let connection = ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(connection, stream);
    let mut head = Vec::new();
    let mut chunk = [0_u8; 2048];
    while super::server::find(&head, b"\r\n\r\n").is_none() {
        if head.len() > MAX_HEAD {
            return Ok(());
        }
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    // `GET /path HTTP/1.1`: the target is the second word of the first line.
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let path = String::from_utf8_lossy(line)
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let reply = {
        let mut state = shared.state.lock().unwrap();
        *state.hits.entry(path.clone()).or_default() += 1;
        state
            .replies
            .get(&path)
            .cloned()
            .unwrap_or_else(|| Reply::status(404))
    };
    let until = Instant::now() + reply.delay;
    while Instant::now() < until && !shared.closing.load(Ordering::Acquire) {
        std::thread::sleep(POLL);
    }
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    tls.write_all(&bytes)?;
    tls.conn.send_close_notify();
    tls.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Other",
    }
}
