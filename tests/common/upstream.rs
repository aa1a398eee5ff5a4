//! An API stand-in for the end-to-end tests behind real proxies
//! (`e2e_nginx.rs`, `e2e_caddy.rs`): it answers every request 200 with the
//! request head it received as the body, so a test sees exactly what the
//! origin behind the proxy would see.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::server::{IO_TIMEOUT, find};

/// A std-thread HTTP server on 127.0.0.1:0 answering every request `200` with
/// the request head as its body; counts the requests it served.
pub fn start_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
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
pub fn echoed_headers(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}
