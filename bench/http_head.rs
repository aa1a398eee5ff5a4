//! What finding and parsing a request head costs as the connection loop
//! drives it: the head fed in reads of `step` bytes, the loop's call made
//! after every read, as `src/server/conn.rs` makes it ([`HeadScan::poll`] on
//! everything received for the request). A head sent one byte at a time must
//! cost time linear in its length (calling `parse_head` after every read, as
//! the loop once did, cost quadratic time: 231 M instructions for 16 KiB), and
//! a head that arrives whole (the usual case) must cost one parse.
//!
//! `cargo bench --bench http_head` (pin it with `taskset -c 0` for stable
//! numbers). For instruction counts, which are repeatable on a shared machine:
//! `JWTGATE_BENCH_ONCE=bytewise:16384 valgrind --tool=callgrind <bench binary>`
//! runs one feed and nothing else (`bytewise:N` or `whole:N` with N head bytes,
//! or `whole-x100000:300` for many repetitions of the one-read case).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use jwtgate::internals::{HeadScan, HeadStatus, HeaderSlots, Limits, leading_empty_lines};

/// A head of exactly `len` bytes: a request line, `Host`, `Authorization`,
/// then filler fields of about 200 bytes (so that 16 KiB stays within the
/// 100-field limit), the last one padded to land on `len`.
fn head_of(len: usize) -> Vec<u8> {
    let mut head = b"GET /api/orders?page=2 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl\r\n".to_vec();
    let mut i = 0;
    while head.len() + 2 < len {
        let room = len - 2 - head.len();
        let line = format!("X-Filler-{i:03}: ");
        let value = (room.min(200)).saturating_sub(line.len() + 2).max(1);
        head.extend_from_slice(line.as_bytes());
        head.extend(std::iter::repeat_n(b'v', value));
        head.extend_from_slice(b"\r\n");
        i += 1;
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(head.len(), len, "head of {len} bytes");
    head
}

/// Feeds `head` to the connection loop's parse call in reads of `step` bytes;
/// the head length once complete.
fn feed(head: &[u8], step: usize) -> usize {
    let limits = Limits::default();
    let mut scan = HeadScan::default();
    let mut received = 0;
    loop {
        received = (received + step).min(head.len());
        let pending = head.get(..received).unwrap();
        let pending = pending.get(leading_empty_lines(pending)..).unwrap();
        let mut slots = HeaderSlots::default();
        match scan.poll(pending, &mut slots, limits) {
            Ok(HeadStatus::Complete(parsed)) => return parsed.head_len,
            Ok(HeadStatus::Partial) => assert!(received < head.len(), "complete head is partial"),
            Err(error) => panic!("{error}"),
        }
    }
}

fn once(spec: &str) {
    let (mode, len) = spec.split_once(':').expect("MODE:LEN");
    let head = head_of(len.parse().expect("a length"));
    let (step, rounds) = match mode {
        "bytewise" => (1, 1),
        "whole" => (head.len(), 1),
        "whole-x100000" => (head.len(), 100_000),
        _ => panic!("unknown mode {mode}"),
    };
    for _ in 0..rounds {
        assert_eq!(black_box(feed(black_box(&head), step)), head.len());
    }
}

fn main() {
    if let Ok(spec) = std::env::var("JWTGATE_BENCH_ONCE") {
        return once(&spec);
    }
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("head_bytewise");
    group.sample_size(10);
    for len in [4096, 8192, 16384] {
        let head = head_of(len);
        group.bench_with_input(BenchmarkId::from_parameter(len), &head, |b, head| {
            b.iter(|| feed(black_box(head), 1));
        });
    }
    group.finish();
    let mut group = criterion.benchmark_group("head_whole");
    for len in [300, 4096] {
        let head = head_of(len);
        group.bench_with_input(BenchmarkId::from_parameter(len), &head, |b, head| {
            b.iter(|| feed(black_box(head), head.len()));
        });
    }
    group.finish();
    criterion.final_summary();
}
