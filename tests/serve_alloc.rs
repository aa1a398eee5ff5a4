//! Proves the server allocates nothing per request in steady state: the whole
//! path (read, parse, extract, verify, render, write) on warm keep-alive
//! connections, in both runtimes, watched by a counting global allocator.
//!
//! The server runs in this process (`Server::start`), so its shard threads use
//! the counting allocator too. The counter is process-wide; this file holds a
//! single test so that no other test thread allocates during the measurement,
//! and the client only uses pre-sized buffers and `std` socket calls, which do
//! not allocate. Per-connection costs (a task, a tracking entry) are outside
//! the measured window; aws-lc's C allocations are invisible here, as in
//! `steady_state_alloc.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use jwtgate::authz::{AuthzOptions, Clock};
use jwtgate::server::{IoMode, ServeOptions, Server};
use jwtgate::{Algorithm, Validation};

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates every call to the system allocator unchanged; counting is one
// relaxed atomic add, which cannot allocate or re-enter the allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const CONNECTIONS: usize = 4;
const ROUNDS: usize = 250;

/// One pipelined batch: a valid token, a forged one, an expired one, none.
fn batch() -> Vec<u8> {
    let key = signing_key("rsa2048-a", Algorithm::Rs256);
    let header = r#"{"alg":"RS256"}"#;
    let valid = mint(
        header,
        r#"{"sub":"alice","iss":"https://idp/","exp":1700003600}"#,
        &key,
        Algorithm::Rs256,
    );
    let expired = mint(
        header,
        r#"{"sub":"bob","exp":1600000000}"#,
        &key,
        Algorithm::Rs256,
    );
    let forged = {
        let (head, _) = valid.rsplit_once('.').unwrap();
        format!("{head}.{}", "A".repeat(342))
    };
    let mut requests = Vec::new();
    for token in [Some(&valid), Some(&forged), Some(&expired), None] {
        requests.extend_from_slice(b"GET /api/orders HTTP/1.1\r\nHost: api.example\r\n");
        if let Some(token) = token {
            requests.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        requests.extend_from_slice(b"\r\n");
    }
    requests
}

/// Bytes of the responses to one batch, learned from a warm-up exchange (the
/// last response is the `missing` denial, whose body ends the batch).
fn response_len(stream: &mut TcpStream) -> usize {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.ends_with(b"{\"error\":\"missing\"}") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed during warm-up");
        seen.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(seen.windows(12).filter(|w| w == b"HTTP/1.1 200").count(), 1);
    assert_eq!(seen.windows(12).filter(|w| w == b"HTTP/1.1 401").count(), 3);
    seen.len()
}

fn steady_state_allocations(io: IoMode) -> (u64, usize) {
    let keys = public_keys("rsa2048-a");
    let verifier = verifier_with(
        keys,
        Validation::new(jwtgate::AlgorithmSet::parse_list("RS256").unwrap()),
    );
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
        shards: 2,
        io,
        authz: AuthzOptions {
            clock: Clock::Fixed(NOW),
            ..AuthzOptions::default()
        },
        ..ServeOptions::default()
    };
    let policy = Arc::new(arc_swap::ArcSwap::from_pointee(
        jwtgate::policy::Policy::single(verifier),
    ));
    let server = Server::start(policy, &options).unwrap();
    let requests = batch();
    let mut streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    let mut expected = 0;
    for stream in &mut streams {
        for _ in 0..3 {
            stream.write_all(&requests).unwrap();
            expected = response_len(stream);
        }
    }
    let mut responses = vec![0u8; expected];
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        for stream in &mut streams {
            stream.write_all(&requests).unwrap();
        }
        for stream in &mut streams {
            stream.read_exact(&mut responses).unwrap();
        }
    }
    let during = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(responses.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(responses.ends_with(b"{\"error\":\"missing\"}"));

    // The counter sees the shard threads: a new connection costs its task.
    let before_connect = ALLOCATIONS.load(Ordering::Relaxed);
    let mut fresh = TcpStream::connect(server.local_addr()).unwrap();
    fresh.write_all(&requests).unwrap();
    fresh.read_exact(&mut responses).unwrap();
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > before_connect,
        "{io:?}: the counter did not see the server accept a connection"
    );
    drop((streams, fresh));
    server.shutdown();
    (during, ROUNDS * CONNECTIONS * 4)
}

#[test]
fn serving_allocates_nothing_per_request_once_warm() {
    for io in [IoMode::Uring, IoMode::Epoll] {
        let (allocations, requests) = steady_state_allocations(io);
        assert_eq!(
            allocations, 0,
            "{io:?}: {allocations} allocations over {requests} requests"
        );
    }
}
