//! Graceful shutdown under load loses no request: 16 keep-alive clients send
//! continuously while the server gets SIGTERM or SIGINT (with and without
//! `--drain-delay`), run after run, on both runtimes. Each client checks that
//! its connection is still open before every write, as a careful HTTP client
//! does; a request it writes must then be answered. A connect refused once
//! the listeners have closed is the only way for a client to stop, and the
//! server must exit 0 within its drain timeout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::indexing_slicing
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use jwtgate::Algorithm;

use crate::common::server::Server;
use crate::common::{NOW, TempDir, mint, rsa_jwk, signing_key};

const CLIENTS: usize = 16;
const ISS: &str = "https://drain.test/";
const AUD: &str = "drain";
/// Answers the clients must have had before the signal: the load is flowing.
const WARM: u64 = 500;
/// Longest wait for one answer; far beyond a drain.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_TIMEOUT: &str = "5";

#[derive(Debug, Clone, Copy)]
enum Signal {
    Term,
    Int,
}

/// What the clients of one run saw.
#[derive(Debug, Default)]
struct Tally {
    written: u64,
    answered: u64,
    /// Answers that carried `connection: close` (given during the drain).
    closing: u64,
    /// Requests written and never answered, and answers other than 200.
    lost: Vec<String>,
}

struct Load {
    request: Vec<u8>,
    answered: AtomicU64,
    signalled: AtomicBool,
    deadline: Instant,
}

/// One answer's status and whether it closes the connection; `Err` if the
/// connection ended (or timed out) before a whole answer.
fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(u16, bool), String> {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if buffer.len() >= end + 4 + length {
                let status = head
                    .get(9..12)
                    .and_then(|code| code.parse().ok())
                    .unwrap_or(0);
                return Ok((status, head.contains("\r\nconnection: close")));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("end of stream after {} bytes", buffer.len())),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error) => return Err(format!("{error} after {} bytes", buffer.len())),
        }
    }
}

/// Whether the server has closed `stream` (a careful client's check before
/// reusing a keep-alive connection).
fn closed_by_server(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let closed = match stream.peek(&mut [0u8; 1]) {
        Err(error) if error.kind() == ErrorKind::WouldBlock => false,
        // End of stream, a reset, or bytes nobody asked for.
        _ => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// One client: keep-alive requests back to back, reconnecting when the
/// server closes, until a connect is refused after the signal.
fn client(addr: SocketAddr, load: &Load) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<TcpStream> = None;
    let mut buffer = Vec::with_capacity(4096);
    while Instant::now() < load.deadline {
        let stream = match &mut connection {
            Some(stream) if !closed_by_server(stream) => stream,
            _ => match TcpStream::connect(addr) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                    stream.set_nodelay(true).unwrap();
                    connection.insert(stream)
                }
                Err(_) if load.signalled.load(Ordering::SeqCst) => return tally,
                Err(error) => {
                    tally
                        .lost
                        .push(format!("connect failed before the signal: {error}"));
                    return tally;
                }
            },
        };
        tally.written += 1;
        let answer = stream
            .write_all(&load.request)
            .map_err(|error| format!("write failed: {error}"))
            .and_then(|()| read_answer(stream, &mut buffer));
        match answer {
            Ok((status, close)) => {
                tally.answered += 1;
                load.answered.fetch_add(1, Ordering::SeqCst);
                if status != 200 {
                    tally.lost.push(format!("answered {status}"));
                }
                if close {
                    tally.closing += 1;
                    connection = None;
                }
            }
            Err(error) => {
                let when = if load.signalled.load(Ordering::SeqCst) {
                    "after"
                } else {
                    "before"
                };
                tally.lost.push(format!("{error} ({when} the signal)"));
                connection = None;
            }
        }
    }
    tally
        .lost
        .push("still running at the run's deadline".to_owned());
    tally
}

/// `serve` on two shards (or as `extra` says) with an RS256 JWKS, and a
/// request with a valid token for it.
fn start(io: &str, extra: &[&str]) -> (Server, Vec<u8>) {
    let dir = TempDir::new("drain");
    let jwks = dir.write("jwks.json", format!(r#"{{"keys":[{}]}}"#, rsa_jwk("k1")));
    let token = mint(
        r#"{"alg":"RS256","kid":"k1"}"#,
        &format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"user-1","iat":{},"exp":{}}}"#,
            NOW.0,
            NOW.0 + 3600
        ),
        &signing_key("rsa2048-a", Algorithm::Rs256),
        Algorithm::Rs256,
    );
    let now = NOW.0.to_string();
    let mut args = vec![
        "--jwks",
        jwks.to_str().unwrap(),
        "--now",
        &now,
        "--issuer",
        ISS,
        "--audience",
        AUD,
        "--io",
        io,
        "--drain-timeout",
        DRAIN_TIMEOUT,
        // Every request must be answered 200: a 429 from a shard stalled by
        // a busy test machine would be load shedding, not a lost request.
        "--max-queue-delay",
        "0",
    ];
    if !extra.contains(&"--shards") {
        args.extend(["--shards", "2"]);
    }
    args.extend_from_slice(extra);
    // The server has read the JWKS by its readiness line.
    let server = Server::start(&args);
    let request =
        format!("GET /orders HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\n\r\n")
            .into_bytes();
    (server, request)
}

fn run(label: &str, io: &str, signal: Signal, extra: &[&str]) -> Tally {
    let (mut server, request) = start(io, extra);
    let load = Arc::new(Load {
        request,
        answered: AtomicU64::new(0),
        signalled: AtomicBool::new(false),
        deadline: Instant::now() + Duration::from_secs(60),
    });
    let addr = server.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let load = Arc::clone(&load);
            thread::spawn(move || client(addr, &load))
        })
        .collect();
    while load.answered.load(Ordering::SeqCst) < WARM {
        assert!(
            Instant::now() < load.deadline,
            "{label}: the load never got going"
        );
        // Polling the count (not waiting for readiness): a spinning loop
        // would take a CPU from the 16 clients and the server on 2 cores.
        thread::sleep(Duration::from_millis(1));
    }
    load.signalled.store(true, Ordering::SeqCst);
    let signalled_at = Instant::now();
    match signal {
        Signal::Term => server.sigterm(),
        Signal::Int => server.sigint(),
    }
    let mut tally = Tally::default();
    for client in clients {
        let one = client.join().unwrap();
        tally.written += one.written;
        tally.answered += one.answered;
        tally.closing += one.closing;
        tally.lost.extend(one.lost);
    }
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "{label}: stderr: {}",
        server.stderr_text()
    );
    let delay: u64 = extra
        .iter()
        .position(|&arg| arg == "--drain-delay")
        .map_or(0, |at| extra[at + 1].parse().unwrap());
    let bound = Duration::from_secs(delay + DRAIN_TIMEOUT.parse::<u64>().unwrap());
    assert!(
        signalled_at.elapsed() < bound + Duration::from_secs(2),
        "{label}: exited {:?} after the signal, the drain allows {bound:?}",
        signalled_at.elapsed()
    );
    tally
}

#[test]
fn no_request_is_lost_through_sigterm_or_sigint_under_keep_alive_load() {
    let mut runs = Vec::new();
    for round in 0..10 {
        let io = if round % 2 == 0 { "uring" } else { "epoll" };
        let signal = if round % 4 < 2 {
            Signal::Term
        } else {
            Signal::Int
        };
        runs.push((
            format!("run {round} ({io}, {signal:?})"),
            io,
            signal,
            &[][..],
        ));
    }
    for round in 0..4 {
        let io = if round % 2 == 0 { "uring" } else { "epoll" };
        let signal = if round < 2 { Signal::Term } else { Signal::Int };
        runs.push((
            format!("run {round} with --drain-delay 1 ({io}, {signal:?})"),
            io,
            signal,
            &["--drain-delay", "1"][..],
        ));
    }
    let mut failures = Vec::new();
    for (label, io, signal, extra) in runs {
        let tally = run(&label, io, signal, extra);
        eprintln!(
            "{label}: {} written, {} answered ({} with connection: close), {} lost",
            tally.written,
            tally.answered,
            tally.closing,
            tally.lost.len()
        );
        // The drain was reached under load: some answers closed their connection.
        assert!(
            tally.closing > 0,
            "{label}: no answer closed its connection"
        );
        if !tally.lost.is_empty() {
            failures.push(format!("{label}: {:?}", tally.lost));
        }
    }
    assert!(
        failures.is_empty(),
        "requests lost:\n{}",
        failures.join("\n")
    );
}

/// Connections waiting in the listener's backlog when the drain begins (here
/// because the shard is at `--max-connections`) are served, each its one
/// request, not reset with the listener.
#[test]
fn the_backlog_is_served_at_the_drain() {
    for io in ["uring", "epoll"] {
        let (mut server, request) = start(io, &["--shards", "1", "--max-connections", "1"]);
        let mut held = TcpStream::connect(server.addr()).unwrap();
        held.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        held.write_all(&request).unwrap();
        let mut buffer = Vec::new();
        assert_eq!(
            read_answer(&mut held, &mut buffer),
            Ok((200, false)),
            "{io}"
        );
        // The shard holds its one connection: these wait in the backlog.
        let mut waiting: Vec<TcpStream> = (0..5)
            .map(|_| {
                let mut stream = TcpStream::connect(server.addr()).unwrap();
                stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                stream.write_all(&request).unwrap();
                stream
            })
            .collect();
        server.sigterm();
        for (index, stream) in waiting.iter_mut().enumerate() {
            assert_eq!(
                read_answer(stream, &mut buffer),
                Ok((200, true)),
                "{io}: connection {index} from the backlog"
            );
        }
        assert_eq!(
            server.wait_exit(Duration::from_secs(30)).code(),
            Some(0),
            "{io}"
        );
    }
}
