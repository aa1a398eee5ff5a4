//! Request framing through the real `jwtgate serve` over loopback: chunked
//! request bodies (read and thrown away within `--max-body-bytes` on the data
//! port, decoded for `POST /v1/verify` on the batch port), the
//! `Transfer-Encoding` values that are refused with 400 (never a 5xx, which a
//! proxy failing open would let through), and heads that arrive a byte at a
//! time. Every scenario runs once per I/O backend; responses are compared as
//! exact bytes.
//!
//! Harness: `common/server.rs`. Unit and property tests of the decoder itself
//! (against a naive reference, under random reads) live in
//! `src/http/chunked.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use common::server::{Conn, Response, Server, request_bytes};
use common::{TempDir, mint, signing_key};
use jwtgate::Algorithm;

const NOW: &str = "1700000000";
const T: i64 = 1_700_000_000;
const ISS: &str = "https://idp.test/";
const AUD: &str = "api";

/// A running server and a valid token for it.
struct Fixture {
    server: Server,
    token: String,
    _dir: TempDir,
}

fn serve(io: &str, extra: &[&str]) -> Fixture {
    let dir = TempDir::new("http-framing");
    let jwks = dir.write(
        "keys.jwks.json",
        format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk("rsa-a")),
    );
    let mut args = vec![
        "--jwks",
        jwks.to_str().unwrap(),
        "--now",
        NOW,
        "--issuer",
        ISS,
        "--audience",
        AUD,
        "--io",
        io,
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    assert_eq!(server.io(), io, "{}", server.ready_line());
    let token = mint(
        r#"{"alg":"RS256","kid":"rsa-a","typ":"JWT"}"#,
        &format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","iat":{T},"exp":{}}}"#,
            T + 3600
        ),
        &signing_key("rsa2048-a", Algorithm::Rs256),
        Algorithm::Rs256,
    );
    Fixture {
        server,
        token,
        _dir: dir,
    }
}

impl Fixture {
    fn conn(&self) -> Conn {
        Conn::open(self.server.addr())
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// The answer to `bytes` sent alone on a fresh connection.
    fn answer(&self, bytes: &[u8]) -> Vec<u8> {
        raw(&self.conn().request(bytes))
    }
}

/// A response as the exact bytes received.
fn raw(r: &Response) -> Vec<u8> {
    [&r.head[..], &r.body[..]].concat()
}

/// A chunked request: the head with `Transfer-Encoding: chunked` and
/// `headers`, then `chunks` as sent.
fn chunked(method: &str, path: &str, headers: &[(&str, &str)], chunks: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: jwtgate.test\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Transfer-Encoding: chunked\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(chunks);
    out
}

/// `body` in chunks of `size` bytes, each with an extension, then a trailer.
fn encode(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(size) {
        out.extend_from_slice(format!("{:x};n=1\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Trailer: ignored\r\n\r\n");
    out
}

/// The exact bytes of a protocol error.
fn error_bytes(status_line: &str, name: &str, detail: &str) -> Vec<u8> {
    let body = format!(r#"{{"error":"{name}","detail":"{detail}"}}"#);
    format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn bad_request(detail: &str) -> Vec<u8> {
    error_bytes("HTTP/1.1 400 Bad Request", "bad_request", detail)
}

fn bad_transfer_encoding(detail: &str) -> Vec<u8> {
    error_bytes("HTTP/1.1 400 Bad Request", "bad_transfer_encoding", detail)
}

/// Sends `bytes` on a fresh connection: exactly `expected`, then the close.
fn expect_refused(f: &Fixture, bytes: &[u8], expected: &[u8]) {
    let mut conn = f.conn();
    conn.send(bytes);
    let r = conn.try_read_response().unwrap_or_else(|e| {
        panic!("{:?}: {e}", String::from_utf8_lossy(bytes));
    });
    assert_eq!(
        String::from_utf8_lossy(&raw(&r)),
        String::from_utf8_lossy(expected),
        "for {:?}",
        String::from_utf8_lossy(bytes)
    );
    conn.expect_eof();
}

macro_rules! for_each_io {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $( #[test] fn $name() { super::$name("uring"); } )*
        }
        mod epoll {
            $( #[test] fn $name() { super::$name("epoll"); } )*
        }
    };
}

for_each_io!(
    chunked_check_is_answered_and_the_pipelined_next_one_too,
    chunked_body_past_the_limit_is_413,
    malformed_chunking_is_400,
    transfer_encodings_other_than_chunked_are_400,
    chunked_batch_post_is_decoded,
    chunked_body_that_never_ends_is_408,
    head_sent_byte_by_byte_is_answered,
    a_client_that_expects_100_continue_gets_it_before_sending_a_body_that_is_read,
);

fn a_client_that_expects_100_continue_gets_it_before_sending_a_body_that_is_read(io: &str) {
    use std::io::Read as _;
    let f = serve(
        io,
        &["--verify-listen", "127.0.0.1:0", "--max-body-bytes", "100"],
    );
    let bearer = f.bearer();
    let auth = [
        ("Authorization", bearer.as_str()),
        ("Expect", "100-continue"),
    ];
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let read_interim = |conn: &mut Conn| {
        let mut got = [0_u8; 25];
        conn.stream().read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(interim)
        );
    };
    // A chunked check request is answered after its body: the client is
    // told to go on, once, then gets the answer.
    let mut conn = f.conn();
    conn.send(&chunked("POST", "/orders", &auth, b""));
    read_interim(&mut conn);
    conn.send(b"3\r\nabc\r\n");
    conn.send(b"0\r\n\r\n");
    let answer = raw(&conn.read_response());
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A Content-Length body is thrown away and its request answered from the
    // head: the final answer comes at once, no interim one.
    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: jwtgate.test\r\nAuthorization: {bearer}\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    );
    let head = head.into_bytes();
    conn.send(&head);
    let answer = raw(&conn.read_response());
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    conn.send(b"abc");
    // The batch endpoint buffers its body, so it says 100 Continue too.
    let mut batch = Conn::open(f.server.verify_addr().unwrap());
    let body = format!("{}\n", f.token);
    let head = format!(
        "POST /v1/verify HTTP/1.1\r\nHost: jwtgate.test\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    batch.send(&head);
    read_interim(&mut batch);
    batch.send(body.as_bytes());
    let answer = raw(&batch.read_response());
    assert!(
        answer.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

fn chunked_check_is_answered_and_the_pipelined_next_one_too(io: &str) {
    let f = serve(io, &["--max-body-bytes", "100"]);
    let bearer = f.bearer();
    let auth = [("Authorization", bearer.as_str())];
    // The answer a Content-Length body gets is the one a chunked body gets.
    let with_length = f.answer(&request_bytes("POST", "/orders", &auth, b"hello world"));
    assert!(with_length.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let missing = f.answer(&request_bytes("GET", "/", &[], b""));
    assert!(missing.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"));
    let missing_close = f.answer(&request_bytes("GET", "/", &[("Connection", "close")], b""));

    // The body looks like a request: it is decoded and skipped, never parsed.
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut batch = chunked("POST", "/orders", &auth, &encode(b"hello world", 4));
    batch.extend(chunked("POST", "/orders", &auth, &encode(smuggled, 7)));
    batch.extend(chunked("POST", "/orders", &auth, b"0\r\n\r\n"));
    batch.extend(request_bytes("GET", "/", &[], b""));
    batch.extend(request_bytes("GET", "/", &[("Connection", "close")], b""));
    let expected = [
        &with_length,
        &with_length,
        &with_length,
        &missing,
        &missing_close,
    ];
    // In one write, and in writes cut at every few bytes of the framing.
    for cut in [None, Some(3), Some(7), Some(13)] {
        let mut conn = f.conn();
        match cut {
            None => conn.send(&batch),
            Some(step) => {
                for piece in batch.chunks(step) {
                    conn.send(piece);
                }
            }
        }
        for (i, want) in expected.iter().enumerate() {
            let got = raw(&conn.read_response());
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "response {i}, writes of {cut:?} bytes"
            );
        }
        conn.expect_eof();
    }
}

fn chunked_body_past_the_limit_is_413(io: &str) {
    let f = serve(io, &["--max-body-bytes", "100"]);
    let bearer = f.bearer();
    let auth = [("Authorization", bearer.as_str())];
    let too_large = error_bytes(
        "HTTP/1.1 413 Content Too Large",
        "body_too_large",
        "the request body is longer than this endpoint accepts",
    );
    // At the limit: answered, the connection kept.
    let mut conn = f.conn();
    let at_limit = raw(&conn.request(&chunked("POST", "/", &auth, &encode(&[b'b'; 100], 30))));
    assert!(
        at_limit.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&at_limit)
    );
    assert_eq!(
        raw(&conn.request(&chunked("POST", "/", &auth, b"0\r\n\r\n"))),
        at_limit
    );
    // One byte over, in several chunks: the decoded length counts.
    expect_refused(
        &f,
        &chunked("POST", "/", &auth, &encode(&[b'b'; 101], 30)),
        &too_large,
    );
    // A chunk that would pass the limit is refused from its size line, before
    // its data is sent.
    expect_refused(&f, &chunked("POST", "/", &auth, b"65\r\n"), &too_large);
    expect_refused(
        &f,
        &chunked("POST", "/", &auth, b"ffffffffffffffff\r\n"),
        &too_large,
    );
}

fn malformed_chunking_is_400(io: &str) {
    let f = serve(io, &[]);
    let size = "malformed chunk size line";
    let data_end = "chunk data is not followed by CRLF";
    let trailer = "malformed trailer section";
    let long_line = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(1100));
    let cases: [(&[u8], &str); 14] = [
        (b"\r\n\r\n", size),
        (b"zz\r\nab\r\n0\r\n\r\n", size),
        (b"-1\r\nx\r\n0\r\n\r\n", size),
        (b" 1\r\nx\r\n0\r\n\r\n", size),
        (b"1\nx\r\n0\r\n\r\n", size),
        (b"1;a\nb\r\nx\r\n0\r\n\r\n", size),
        (b"11111111111111111\r\nx\r\n0\r\n\r\n", size),
        (b"3\r\nabcd\r\n0\r\n\r\n", data_end),
        (b"3\r\nabc\n0\r\n\r\n", data_end),
        (b"3\r\nabc0\r\n\r\n", data_end),
        (b"0\r\nX: y\n\r\n", trailer),
        (b"0\r\nno colon\r\n\r\n", trailer),
        (b"0\r\n folded: x\r\n\r\n", trailer),
        (long_line.as_bytes(), "chunk size line too long"),
    ];
    for (chunks, detail) in cases {
        expect_refused(&f, &chunked("POST", "/", &[], chunks), &bad_request(detail));
    }
    // Trailers are bounded like a head: a large trailer section is 431.
    let big_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(5000));
    expect_refused(
        &f,
        &chunked("POST", "/", &[], big_trailer.as_bytes()),
        &error_bytes(
            "HTTP/1.1 431 Request Header Fields Too Large",
            "headers_too_large",
            "the request header block is too large",
        ),
    );
}

fn transfer_encodings_other_than_chunked_are_400(io: &str) {
    let f = serve(io, &[]);
    let only_chunked = bad_transfer_encoding("the only transfer coding accepted is chunked");
    let cases: [(&str, Vec<u8>); 6] = [
        ("gzip", only_chunked.clone()),
        ("gzip, chunked", only_chunked.clone()),
        ("chunked, gzip", only_chunked.clone()),
        ("identity", only_chunked),
        (
            "chunked, chunked",
            bad_transfer_encoding("chunked is applied more than once"),
        ),
        (
            "chunked\r\nTransfer-Encoding: chunked",
            bad_transfer_encoding("chunked is applied more than once"),
        ),
    ];
    for (te, expected) in cases {
        let request = format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n");
        expect_refused(&f, request.as_bytes(), &expected);
    }
    // Both framings at once: the smuggling shape, in either order.
    let both = bad_request("both Content-Length and Transfer-Encoding");
    expect_refused(
        &f,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        &both,
    );
    expect_refused(
        &f,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        &both,
    );
    expect_refused(
        &f,
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        &bad_transfer_encoding("Transfer-Encoding in an HTTP/1.0 request"),
    );
}

fn chunked_batch_post_is_decoded(io: &str) {
    let f = serve(
        io,
        &[
            "--verify-listen",
            "127.0.0.1:0",
            "--max-verify-body-bytes",
            "4000",
        ],
    );
    let verify = f.server.verify_addr().unwrap();
    let body = format!("{}\ngarbage\n{}\n", f.token, f.token);
    let with_length = {
        let mut conn = Conn::open(verify);
        raw(&conn.request(&request_bytes("POST", "/v1/verify", &[], body.as_bytes())))
    };
    assert!(
        with_length.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&with_length)
    );
    assert!(with_length.ends_with(b"\n"));
    let mut conn = Conn::open(verify);
    for size in [1, 5, 100, 4000] {
        let request = chunked("POST", "/v1/verify", &[], &encode(body.as_bytes(), size));
        let mut pipelined = request.clone();
        pipelined.extend_from_slice(&request);
        conn.send(&pipelined);
        for _ in 0..2 {
            assert_eq!(
                String::from_utf8_lossy(&raw(&conn.read_response())),
                String::from_utf8_lossy(&with_length),
                "chunks of {size}"
            );
        }
    }
    // Sent a few bytes per write, the body is decoded all the same.
    let request = chunked("POST", "/v1/verify", &[], &encode(body.as_bytes(), 64));
    for piece in request.chunks(11) {
        conn.send(piece);
    }
    assert_eq!(raw(&conn.read_response()), with_length);
    // The decoded length counts against --max-verify-body-bytes.
    let mut conn = Conn::open(verify);
    conn.send(&chunked(
        "POST",
        "/v1/verify",
        &[],
        &encode(&[b'\n'; 4001], 1000),
    ));
    assert_eq!(
        String::from_utf8_lossy(&raw(&conn.read_response())),
        String::from_utf8_lossy(&error_bytes(
            "HTTP/1.1 413 Content Too Large",
            "body_too_large",
            "the request body is longer than this endpoint accepts",
        ))
    );
    conn.expect_eof();
}

fn chunked_body_that_never_ends_is_408(io: &str) {
    let f = serve(io, &["--header-timeout", "1"]);
    // Unlike a Content-Length body, a chunked one is read before the answer:
    // the whole request must arrive within the header timeout.
    let mut conn = f.conn();
    conn.send(&chunked("POST", "/", &[], b"5\r\nabc"));
    assert_eq!(
        String::from_utf8_lossy(&raw(&conn.read_response())),
        String::from_utf8_lossy(&error_bytes(
            "HTTP/1.1 408 Request Timeout",
            "request_timeout",
            "the request did not arrive in time",
        ))
    );
    conn.expect_eof();
}

fn head_sent_byte_by_byte_is_answered(io: &str) {
    let f = serve(io, &[]);
    let bearer = f.bearer();
    let filler = "v".repeat(200);
    let mut headers = vec![("Authorization", bearer.as_str())];
    for _ in 0..40 {
        headers.push(("X-Filler", filler.as_str()));
    }
    let request = request_bytes("GET", "/", &headers, b"");
    assert!(request.len() > 8 * 1024);
    let expected = f.answer(&request);
    assert!(expected.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let mut conn = f.conn();
    conn.send_bytewise(&request);
    assert_eq!(raw(&conn.read_response()), expected);
    // A head that ends in bare LFs, split between the two.
    let mut conn = f.conn();
    conn.send(b"GET / HTTP/1.1\nHost: x\n");
    conn.send(b"\n");
    assert!(raw(&conn.read_response()).starts_with(b"HTTP/1.1 401 Unauthorized\r\n"));
    // Still limited while incomplete: 431 before the end arrives.
    let mut conn = f.conn();
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n");
    let big = format!("X: {}\r\n", "v".repeat(1000));
    let mut refused = None;
    for _ in 0..20 {
        conn.send(big.as_bytes());
    }
    if let Ok(r) = conn.try_read_response() {
        refused = Some(raw(&r));
    }
    assert_eq!(
        String::from_utf8_lossy(&refused.unwrap_or_default()),
        String::from_utf8_lossy(&error_bytes(
            "HTTP/1.1 431 Request Header Fields Too Large",
            "headers_too_large",
            "the request header block is too large",
        ))
    );
}
