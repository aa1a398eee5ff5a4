//! The request head, parsed in place: method, path and header values are
//! borrowed slices of the connection's read buffer, never copies.
//!
//! "Need more bytes" is a state ([`HeadStatus::Partial`]), not an error. Every
//! limit is checked before the bytes are trusted, and every way the framing can
//! be lost is a [`ProtocolError`] after which the connection must close.

use std::fmt;
use std::mem::MaybeUninit;

/// The most header fields a request may carry; more is answered 431.
pub const MAX_HEADERS: usize = 100;

/// Size limits for a request head, each with the answer it earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version), in bytes: beyond it, 414.
    pub max_request_line: usize,
    /// Longest head (request line and header block), in bytes: beyond it, 431.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    /// 8 KiB request line and 16 KiB head, the defaults of nginx's large buffers
    /// and Envoy's header limit respectively.
    fn default() -> Limits {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: answered, then the connection closes.
    Http10,
    /// HTTP/1.1: persistent unless the client says `Connection: close`.
    Http11,
}

/// Why a request cannot be served. Each variant maps to one status code in
/// [`crate::http::response::error`]; after any of them the connection closes,
/// because the position of the next request in the stream is no longer known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// The request line or a header is not HTTP/1.x syntax (400).
    BadRequest(&'static str),
    /// The request line is longer than [`Limits::max_request_line`] (414).
    RequestLineTooLong,
    /// The head is longer than [`Limits::max_header_bytes`], or has too many fields (431).
    HeadersTooLarge,
    /// The declared body is longer than the route accepts (413).
    BodyTooLarge,
    /// A `Transfer-Encoding` header: jwtgate reads only `Content-Length` bodies (501).
    TransferEncoding,
    /// The head or body did not arrive within the header timeout (408).
    Timeout,
    /// jwtgate failed on its own account (500).
    Internal,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

impl ProtocolError {
    /// The status code sent for this error.
    pub const fn status(self) -> u16 {
        match self {
            ProtocolError::BadRequest(_) => 400,
            ProtocolError::Timeout => 408,
            ProtocolError::BodyTooLarge => 413,
            ProtocolError::RequestLineTooLong => 414,
            ProtocolError::HeadersTooLarge => 431,
            ProtocolError::Internal => 500,
            ProtocolError::TransferEncoding => 501,
        }
    }

    /// The stable snake_case name sent in the JSON body.
    pub const fn name(self) -> &'static str {
        match self {
            ProtocolError::BadRequest(_) => "bad_request",
            ProtocolError::Timeout => "request_timeout",
            ProtocolError::BodyTooLarge => "body_too_large",
            ProtocolError::RequestLineTooLong => "request_line_too_long",
            ProtocolError::HeadersTooLarge => "headers_too_large",
            ProtocolError::Internal => "internal_error",
            ProtocolError::TransferEncoding => "transfer_encoding_not_supported",
        }
    }

    /// A human explanation, safe to send and to log (it never quotes request bytes).
    pub const fn detail(self) -> &'static str {
        match self {
            ProtocolError::BadRequest(detail) => detail,
            ProtocolError::Timeout => "the request did not arrive in time",
            ProtocolError::BodyTooLarge => "the request body is longer than this endpoint accepts",
            ProtocolError::RequestLineTooLong => "the request line is too long",
            ProtocolError::HeadersTooLarge => "the request header block is too large",
            ProtocolError::Internal => "jwtgate failed to answer this request",
            ProtocolError::TransferEncoding => {
                "Transfer-Encoding is not supported; send the body with Content-Length"
            }
        }
    }
}

/// Storage for the parsed header fields: uninitialised slots that httparse
/// fills, so that parsing neither allocates nor clears 3 KiB per request.
#[derive(Debug)]
pub struct HeaderSlots<'b>([MaybeUninit<httparse::Header<'b>>; MAX_HEADERS]);

impl Default for HeaderSlots<'_> {
    fn default() -> Self {
        HeaderSlots([const { MaybeUninit::uninit() }; MAX_HEADERS])
    }
}

/// A complete request head, borrowing the read buffer (`'b`) and the header slots (`'h`).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'h, 'b> {
    /// The method, e.g. `GET`.
    pub method: &'b str,
    /// The request target as sent (origin form for ext_authz).
    pub path: &'b str,
    /// The protocol version.
    pub version: Version,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// Body length from `Content-Length` (0 without one).
    pub content_length: u64,
    /// Bytes of the head, including the blank line; the body starts here.
    pub head_len: usize,
    headers: &'h [httparse::Header<'b>],
}

impl<'b> RequestHead<'_, 'b> {
    /// Values of every field named `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value)
    }

    /// Values of every field whose name `same` accepts, in order.
    pub fn header_values_where<'s>(
        &'s self,
        same: impl Fn(&str) -> bool + 's,
    ) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |header| same(header.name))
            .map(|header| header.value)
    }

    /// The value of the field `name`, if it appears exactly once.
    pub fn unique_header(&self, name: &str) -> Option<&'b [u8]> {
        let mut values = self.header_values(name);
        let first = values.next()?;
        values.next().is_none().then_some(first)
    }
}

/// What the buffer holds so far.
#[derive(Debug)]
pub enum HeadStatus<'h, 'b> {
    /// The head is not complete yet; read more (within the limits, already checked).
    Partial,
    /// A whole head.
    Complete(RequestHead<'h, 'b>),
}

fn bad(detail: &'static str) -> ProtocolError {
    ProtocolError::BadRequest(detail)
}

fn httparse_error(error: httparse::Error) -> ProtocolError {
    match error {
        httparse::Error::TooManyHeaders => ProtocolError::HeadersTooLarge,
        httparse::Error::HeaderName => bad("malformed header name"),
        httparse::Error::HeaderValue => bad("malformed header value"),
        httparse::Error::NewLine => bad("malformed line ending"),
        httparse::Error::Status => bad("malformed status"),
        httparse::Error::Token => bad("malformed method or header token"),
        httparse::Error::Version => bad("unsupported HTTP version"),
    }
}

/// Strict `Content-Length`: 1*DIGIT, optional surrounding whitespace, at most 19 digits.
fn content_length(value: &[u8]) -> Result<u64, ProtocolError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("Content-Length is not a decimal number"));
    }
    Ok(digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Whether a `Connection` header value lists `token` (comma-separated, case-insensitive).
fn lists_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Bytes of empty lines (CRLF or LF) at the start of `buf`, which a server
/// ignores before a request line (RFC 9112 §2.2); some clients send one after
/// a body.
pub fn leading_empty_lines(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Parses the head at the start of `buf`, checking the limits first.
///
/// `buf` holds every byte received for this request so far. The request line
/// limit is enforced even before the line is complete, so a client cannot make
/// the server buffer an endless first line.
pub fn parse_head<'h, 'b>(
    buf: &'b [u8],
    slots: &'h mut HeaderSlots<'b>,
    limits: Limits,
) -> Result<HeadStatus<'h, 'b>, ProtocolError> {
    match memchr::memchr(b'\n', buf) {
        Some(end) if end > limits.max_request_line => {
            return Err(ProtocolError::RequestLineTooLong);
        }
        None if buf.len() > limits.max_request_line => {
            return Err(ProtocolError::RequestLineTooLong);
        }
        _ => {}
    }
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, &mut slots.0) {
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_header_bytes {
                Err(ProtocolError::HeadersTooLarge)
            } else {
                Ok(HeadStatus::Partial)
            };
        }
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Err(error) => return Err(httparse_error(error)),
    };
    if head_len > limits.max_header_bytes {
        return Err(ProtocolError::HeadersTooLarge);
    }
    let method = request.method.ok_or(bad("no method"))?;
    let path = request.path.ok_or(bad("no request target"))?;
    let version = match request.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(bad("unsupported HTTP version")),
    };
    let headers: &'h [httparse::Header<'b>] = request.headers;
    let mut head = RequestHead {
        method,
        path,
        version,
        keep_alive: version == Version::Http11,
        content_length: 0,
        head_len,
        headers,
    };
    if head.header_values("transfer-encoding").next().is_some() {
        // Both framings at once is the request-smuggling shape (RFC 9112 §6.1).
        if head.header_values("content-length").next().is_some() {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        return Err(ProtocolError::TransferEncoding);
    }
    let mut length = None;
    for value in head.header_values("content-length") {
        let this = content_length(value)?;
        // Repeated identical values are tolerated (RFC 9112 §6.3); differing ones are smuggling.
        if length.is_some_and(|first| first != this) {
            return Err(bad("conflicting Content-Length headers"));
        }
        length = Some(this);
    }
    head.content_length = length.unwrap_or(0);
    if version == Version::Http11 && head.unique_header("host").is_none() {
        return Err(bad("an HTTP/1.1 request needs exactly one Host header"));
    }
    if head
        .header_values("connection")
        .any(|value| lists_token(value, "close"))
    {
        head.keep_alive = false;
    }
    Ok(HeadStatus::Complete(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (String, String, Version, bool, u64, usize);

    fn parse(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
        let mut slots = HeaderSlots::default();
        Ok(match parse_head(buf, &mut slots, Limits::default())? {
            HeadStatus::Partial => None,
            HeadStatus::Complete(head) => Some((
                head.method.to_owned(),
                head.path.to_owned(),
                head.version,
                head.keep_alive,
                head.content_length,
                head.head_len,
            )),
        })
    }

    #[test]
    fn complete_head_borrows_method_path_and_framing() {
        let request = b"GET /api/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
        let (method, path, version, keep_alive, length, head_len) =
            parse(request).unwrap().unwrap();
        assert_eq!((method.as_str(), path.as_str()), ("GET", "/api/x?y=1"));
        assert_eq!((version, keep_alive, length), (Version::Http11, true, 3));
        assert_eq!(&request[head_len..head_len + 3], b"abc");
    }

    #[test]
    fn every_prefix_of_a_head_is_partial() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x.y.z\r\n\r\n";
        for end in 0..request.len() {
            assert_eq!(
                parse(&request[..end]).unwrap(),
                None,
                "prefix of {end} bytes"
            );
        }
        assert!(parse(request).unwrap().is_some());
    }

    #[test]
    fn connection_close_and_http10_end_the_connection() {
        let close = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(!close.unwrap().unwrap().3);
        let old = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!((old.2, old.3), (Version::Http10, false));
    }

    #[test]
    fn framing_errors_are_refused() {
        let cases: [(&[u8], u16); 9] = [
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                400,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        ];
        for (request, status) in cases {
            let error = parse(request).unwrap_err();
            assert_eq!(
                error.status(),
                status,
                "{:?}",
                String::from_utf8_lossy(request)
            );
        }
        let same_twice =
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse(same_twice).unwrap().unwrap().4, 2);
    }

    #[test]
    fn limits_are_checked_before_the_head_completes() {
        let limits = Limits {
            max_request_line: 32,
            max_header_bytes: 64,
        };
        let mut slots = HeaderSlots::default();
        let long_line = [b'a'; 40];
        assert_eq!(
            parse_head(&long_line, &mut slots, limits).unwrap_err(),
            ProtocolError::RequestLineTooLong
        );
        let mut big_head = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        big_head.resize(70, b'v');
        assert_eq!(
            parse_head(&big_head, &mut slots, limits).unwrap_err(),
            ProtocolError::HeadersTooLarge
        );
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        let generous = Limits {
            max_request_line: 100,
            max_header_bytes: 1 << 20,
        };
        assert_eq!(
            parse_head(&many, &mut slots, generous).unwrap_err(),
            ProtocolError::HeadersTooLarge
        );
    }

    #[test]
    fn unique_header_refuses_repeats() {
        let mut slots = HeaderSlots::default();
        let request = b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nauthorization: b\r\n\r\n";
        let HeadStatus::Complete(head) =
            parse_head(request, &mut slots, Limits::default()).unwrap()
        else {
            panic!("complete");
        };
        assert_eq!(head.unique_header("authorization"), None);
        assert_eq!(head.header_values("AUTHORIZATION").count(), 2);
        assert_eq!(head.unique_header("host"), Some(&b"a"[..]));
    }
}
