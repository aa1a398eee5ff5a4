//! Overload through the real binary: a shard sent more ES384 verifications
//! at once than it does within `--max-queue-delay` answers 429 `overloaded`
//! for the tokens it has not verified before, and keeps answering the ones
//! its cache holds; a forged token is never let through, whether it is
//! verified or shed; every shed answer is counted; and once the flood is
//! over, new tokens are verified again. Both runtimes.
//!
//! The flood is 32 connections each pipelining 48 requests, written before
//! any answer is read: about 1,300 P-384 verifications queued on one shard,
//! far more than 20 ms of work on any machine, so the test does not depend
//! on the machine's speed. What it asserts holds for every answer, whatever
//! the split between verified and shed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use jwtgate::Algorithm;
use jwtgate::internals::SigningKey;

use crate::common::server::{Conn, Response, Server, request_bytes};
use crate::common::{NOW, data_path, mint, signing_key};

const ISS: &str = "https://overload.test/";
const AUD: &str = "overload";
const CONNECTIONS: usize = 32;
const PER_CONNECTION: usize = 48;
/// How long the shard may be behind before it sheds: far below the flood.
const MAX_QUEUE_DELAY: &str = "0.02";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Verified before the flood: in the shard's cache.
    Cached,
    /// A valid token never seen before.
    Fresh,
    /// A valid token's signature with one character changed.
    Forged,
}

fn token(key: &SigningKey, sub: &str) -> String {
    let claims = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{sub}","iat":{},"exp":{}}}"#,
        NOW.0,
        NOW.0 + 3600
    );
    mint(r#"{"alg":"ES384"}"#, &claims, key, Algorithm::Es384)
}

fn forged(key: &SigningKey, sub: &str) -> String {
    let mut token = token(key, sub).into_bytes();
    let at = token.len() - 20;
    token[at] = if token[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(token).unwrap()
}

fn check(token: &str) -> Vec<u8> {
    request_bytes(
        "GET",
        "/",
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

fn outcome(response: &Response) -> &str {
    response.header("x-jwtgate-outcome").unwrap_or("")
}

/// The sum of `jwtgate_requests_total` over the series with `outcome`.
fn counted(server: &Server, outcome: &str) -> u64 {
    let mut conn = Conn::open(server.admin_addr());
    let response = conn.request(&request_bytes("GET", "/metrics", &[], b""));
    assert_eq!(response.status, 200);
    let label = format!("outcome=\"{outcome}\"");
    response
        .body_text()
        .lines()
        .filter(|line| line.starts_with("jwtgate_requests_total{") && line.contains(&label))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn floods_are_shed_and_cached_tokens_still_pass(io: &str) {
    let keys = data_path("p384.spki.pem");
    let now = NOW.0.to_string();
    let server = Server::start(&[
        "--jwks",
        keys.to_str().unwrap(),
        "--algorithms",
        "ES384",
        "--issuer",
        ISS,
        "--audience",
        AUD,
        "--now",
        &now,
        "--shards",
        "1",
        "--io",
        io,
        "--max-queue-delay",
        MAX_QUEUE_DELAY,
    ]);
    let key = signing_key("p384", Algorithm::Es384);
    let cached = token(&key, "cached");
    // Verified before the flood; retried if a busy test machine stalled the
    // shard past the bound even for this one.
    let mut conn = Conn::open(server.addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let first = conn.request(&check(&cached));
        match (first.status, outcome(&first)) {
            (200, "valid") => break,
            (429, "overloaded") if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("before the flood: {other:?}"),
        }
    }

    let mut batches = Vec::new();
    for connection in 0..CONNECTIONS {
        let mut kinds = Vec::new();
        let mut bytes = Vec::new();
        for index in 0..PER_CONNECTION {
            let sub = format!("user-{connection}-{index}");
            let (kind, token) = match index % 8 {
                0 => (Kind::Cached, cached.clone()),
                1 => (Kind::Forged, forged(&key, &sub)),
                _ => (Kind::Fresh, token(&key, &sub)),
            };
            kinds.push(kind);
            bytes.extend_from_slice(&check(&token));
        }
        batches.push((Conn::open(server.addr()), kinds, bytes));
    }
    for (conn, _, bytes) in &mut batches {
        conn.send(bytes);
    }
    let (mut shed, mut verified) = (0u64, 0u64);
    for (conn, kinds, _) in &mut batches {
        for kind in kinds.iter() {
            let response = conn.read_response();
            let answer = (response.status, outcome(&response));
            match (kind, answer) {
                (Kind::Cached, (200, "valid")) => {}
                (Kind::Fresh, (200, "valid")) => verified += 1,
                (Kind::Forged, (401, "bad_signature")) => verified += 1,
                (Kind::Fresh | Kind::Forged, (429, "overloaded")) => {
                    assert_eq!(response.header("retry-after"), Some("1"));
                    shed += 1;
                }
                _ => panic!("{kind:?} answered {answer:?}: {}", response.body_text()),
            }
        }
    }
    assert!(
        shed > 0,
        "{verified} verifications queued at once and none shed: the shard was never seen behind"
    );
    assert_eq!(counted(&server, "overloaded"), shed);

    // The flood answered, the shard catches up within a few heartbeats.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = Conn::open(server.addr());
    for attempt in 0.. {
        let response = conn.request(&check(&token(&key, &format!("after-{attempt}"))));
        match (response.status, outcome(&response)) {
            (200, "valid") => break,
            (429, "overloaded") if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("after the flood: {other:?}"),
        }
    }
}

#[test]
fn floods_are_shed_and_cached_tokens_still_pass_uring() {
    floods_are_shed_and_cached_tokens_still_pass("uring");
}

#[test]
fn floods_are_shed_and_cached_tokens_still_pass_epoll() {
    floods_are_shed_and_cached_tokens_still_pass("epoll");
}
