//! A request's head, parsed in place: method, path and header values are
//! borrowed slices of the connection's read buffer, never copies, and the end
//! of the head is found across reads by [`HeadScan`]. A chunked body is
//! decoded by [`super::chunked`].
//!
//! "Need more bytes" is a state ([`HeadStatus::Partial`]), not an error. Every limit is checked before the bytes are trusted, and every
//! way the framing can be lost is a [`ProtocolError`] after which the connection
//! must close. Nothing here allocates or does I/O: [`crate::server`] owns the
//! buffer and calls in after each read.

use std::fmt;
use std::mem::MaybeUninit;

/// The most header fields a request may carry; more is answered 431.
pub(crate) const MAX_HEADERS: usize = 100;

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
/// `crate::http::response::error`; after any of them the connection closes,
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
    /// A `Transfer-Encoding` other than a single `chunked`, or one on an
    /// HTTP/1.0 request (400). RFC 9112 §6.1 suggests 501 for a coding the
    /// server does not know, but a 5xx lets the request through a proxy that
    /// fails open (Envoy's `failure_mode_allow`): input from a client never
    /// earns a 5xx here.
    BadTransferEncoding(&'static str),
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
            ProtocolError::BadRequest(_) | ProtocolError::BadTransferEncoding(_) => 400,
            ProtocolError::Timeout => 408,
            ProtocolError::BodyTooLarge => 413,
            ProtocolError::RequestLineTooLong => 414,
            ProtocolError::HeadersTooLarge => 431,
            ProtocolError::Internal => 500,
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
            ProtocolError::BadTransferEncoding(_) => "bad_transfer_encoding",
        }
    }

    /// A human explanation, safe to send and to log (it never quotes request bytes).
    pub const fn detail(self) -> &'static str {
        match self {
            ProtocolError::BadRequest(detail) | ProtocolError::BadTransferEncoding(detail) => {
                detail
            }
            ProtocolError::Timeout => "the request did not arrive in time",
            ProtocolError::BodyTooLarge => "the request body is longer than this endpoint accepts",
            ProtocolError::RequestLineTooLong => "the request line is too long",
            ProtocolError::HeadersTooLarge => "the request header block is too large",
            ProtocolError::Internal => "jwtgate failed to answer this request",
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

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// This many bytes follow the head: the `Content-Length`, or 0 without one.
    Length(u64),
    /// `Transfer-Encoding: chunked`: chunks follow the head, up to a zero-size
    /// one and the trailer section; [`super::chunked::ChunkedDecoder`] finds the end.
    Chunked,
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
    /// How the body that follows the head is delimited.
    pub body: BodyFraming,
    /// Bytes of the head, including the blank line; the body starts here.
    pub head_len: usize,
    headers: &'h [httparse::Header<'b>],
}

impl<'h, 'b> RequestHead<'h, 'b> {
    /// A head that arrived in another framing (the gRPC face's CheckRequest):
    /// `method`, `path` and `headers` as stated there, no body.
    pub fn stated(
        method: &'b str,
        path: &'b str,
        headers: &'h [httparse::Header<'b>],
    ) -> RequestHead<'h, 'b> {
        RequestHead {
            method,
            path,
            version: Version::Http11,
            keep_alive: true,
            body: BodyFraming::Length(0),
            head_len: 0,
            headers,
        }
    }
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

/// Checks that the `Transfer-Encoding` fields, read as one list, name exactly
/// one coding, `chunked`. jwtgate decodes no other coding (gzip, deflate,
/// compress), so a body with one could not be handed on decoded; `chunked`
/// twice is refused by RFC 9112 §6.1; and any coding after `chunked` makes
/// the body length unknowable (§6.3), which is 400 by the RFC. Empty list
/// elements are ignored (RFC 9110 §5.6.1).
fn transfer_codings(head: &RequestHead<'_, '_>) -> Result<(), ProtocolError> {
    let mut chunked = 0usize;
    for value in head.header_values("transfer-encoding") {
        for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(ProtocolError::BadTransferEncoding(
                    "the only transfer coding accepted is chunked",
                ));
            }
            chunked += 1;
        }
    }
    match chunked {
        1 => Ok(()),
        0 => Err(ProtocolError::BadTransferEncoding(
            "Transfer-Encoding names no coding",
        )),
        _ => Err(ProtocolError::BadTransferEncoding(
            "chunked is applied more than once",
        )),
    }
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
        body: BodyFraming::Length(0),
        head_len,
        headers,
    };
    if head.header_values("transfer-encoding").next().is_some() {
        // Both framings at once is the request-smuggling shape (RFC 9112 §6.1).
        if head.header_values("content-length").next().is_some() {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        // An HTTP/1.0 peer may not know chunked: RFC 9112 §6.1 has the framing
        // treated as faulty.
        if version == Version::Http10 {
            return Err(ProtocolError::BadTransferEncoding(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        transfer_codings(&head)?;
        head.body = BodyFraming::Chunked;
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
    if let Some(length) = length {
        head.body = BodyFraming::Length(length);
    }
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

/// Finds the end of a head as its bytes arrive, looking at each byte a
/// bounded number of times, and parses the head once its end is in.
///
/// Calling [`parse_head`] on everything received after every read costs
/// quadratic time for a head that arrives a few bytes at a time: httparse
/// starts from the first byte each time. This keeps how far the search got
/// and runs httparse once more only when the blank line that ends the head
/// has arrived. A scan is for one request: start a fresh one (`default()`)
/// for the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadScan {
    /// Bytes of the request searched for the end of the head without
    /// finding it, less the last two (a terminator may have begun there);
    /// `None` before the first look.
    searched: Option<usize>,
    /// Where the request line ends (its LF), once seen: the 414 check.
    line_end: Option<usize>,
    /// Line ends among the first `counted` bytes: more lines than a head may
    /// have fields is 431 before the head ends, as httparse finds it.
    lines: usize,
    counted: usize,
}

impl HeadScan {
    /// Looks at `buf`, every byte received for this request so far (as
    /// [`parse_head`] takes it), and parses the head once it is complete.
    ///
    /// The first look parses straight away, so a request that arrives whole
    /// costs one httparse pass, as before, and garbage such as a TLS
    /// ClientHello is refused at once. After that, only new bytes are
    /// searched; the request line and head limits are enforced on every call,
    /// as [`parse_head`] enforces them. A malformed head that is still
    /// incomplete is refused once its end arrives or a limit is passed.
    pub fn poll<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        slots: &'h mut HeaderSlots<'b>,
        limits: Limits,
    ) -> Result<HeadStatus<'h, 'b>, ProtocolError> {
        if self.searched.is_some() && !self.search(buf) {
            return self.partial(buf, limits);
        }
        let status = parse_head(buf, slots, limits);
        if let Ok(HeadStatus::Partial) = status {
            // The first look, or an end not whole yet (`\n\r` last): search
            // on from the last two bytes. httparse saw no end before them.
            if self.line_end.is_none() {
                self.line_end = memchr::memchr(b'\n', buf);
            }
            self.searched = Some(buf.len().saturating_sub(2));
            return self.partial(buf, limits);
        }
        status
    }

    /// Searches the bytes not searched yet for the end of the head: true if
    /// it may be there (httparse decides).
    ///
    /// httparse ends a line at LF (with or without CR before it) and ends the
    /// head at the first empty line: `\n\n` or `\n\r\n`. An LF followed by a
    /// CR and anything but LF is an error httparse reports, so it counts too.
    fn search(&mut self, buf: &[u8]) -> bool {
        let from = self.searched.unwrap_or(0).min(buf.len());
        let rest = buf.get(from..).unwrap_or_default();
        for lf in memchr::memchr_iter(b'\n', rest).map(|at| at + from) {
            self.line_end.get_or_insert(lf);
            if matches!(buf.get(lf + 1), Some(b'\n' | b'\r')) {
                return true;
            }
        }
        // A terminator may have begun in the last two bytes ("\n" or "\n\r").
        self.searched = Some(buf.len().saturating_sub(2));
        false
    }

    /// The limits on a head still incomplete, as [`parse_head`] checks them.
    fn partial<'h, 'b>(
        &mut self,
        buf: &[u8],
        limits: Limits,
    ) -> Result<HeadStatus<'h, 'b>, ProtocolError> {
        let len = buf.len();
        let new = buf.get(self.counted..).unwrap_or_default();
        self.lines += memchr::memchr_iter(b'\n', new).count();
        self.counted = len;
        // The request line, then at most MAX_HEADERS fields.
        if self.lines > MAX_HEADERS + 1 {
            return Err(ProtocolError::HeadersTooLarge);
        }
        match self.line_end {
            Some(end) if end > limits.max_request_line => Err(ProtocolError::RequestLineTooLong),
            None if len > limits.max_request_line => Err(ProtocolError::RequestLineTooLong),
            _ if len > limits.max_header_bytes => Err(ProtocolError::HeadersTooLarge),
            _ => Ok(HeadStatus::Partial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (String, String, Version, bool, BodyFraming, usize);

    fn parse(buf: &[u8]) -> Result<Option<Parsed>, ProtocolError> {
        let mut slots = HeaderSlots::default();
        Ok(match parse_head(buf, &mut slots, Limits::default())? {
            HeadStatus::Partial => None,
            HeadStatus::Complete(head) => Some((
                head.method.to_owned(),
                head.path.to_owned(),
                head.version,
                head.keep_alive,
                head.body,
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
        assert_eq!(
            (version, keep_alive, length),
            (Version::Http11, true, BodyFraming::Length(3))
        );
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
        let cases: [(&[u8], u16); 8] = [
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
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
        assert_eq!(
            parse(same_twice).unwrap().unwrap().4,
            BodyFraming::Length(2)
        );
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

    #[test]
    fn transfer_encoding_is_chunked_alone_or_refused_with_400() {
        let chunked = [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED \r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked,\r\n\r\n",
        ];
        for request in chunked {
            assert_eq!(parse(request).unwrap().unwrap().4, BodyFraming::Chunked);
        }
        let refused = [
            (&b"gzip"[..], "bad_transfer_encoding"),
            (b"gzip, chunked", "bad_transfer_encoding"),
            (b"chunked, gzip", "bad_transfer_encoding"),
            (b"chunked, chunked", "bad_transfer_encoding"),
            (
                b"chunked\r\nTransfer-Encoding: chunked",
                "bad_transfer_encoding",
            ),
            (b"identity", "bad_transfer_encoding"),
            (b"chunked;q=1", "bad_transfer_encoding"),
            (b"", "bad_transfer_encoding"),
            (b"chunked\r\nContent-Length: 0", "bad_request"),
        ];
        for (value, name) in refused {
            let mut request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".to_vec();
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n\r\n");
            let error = parse(&request).unwrap_err();
            assert_eq!((error.status(), error.name()), (400, name), "{value:?}");
        }
        let old = parse(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap_err();
        assert_eq!((old.status(), old.name()), (400, "bad_transfer_encoding"));
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn head_scan_agrees_with_parsing_everything_after_every_read(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just(&b"GET /a HTTP/1.1"[..]), Just(&b"Host: h"[..]), Just(&b"X: 1"[..]),
                    Just(&b""[..]), Just(&b"\r"[..]), Just(&b"bad line"[..]),
                    Just(&b"Transfer-Encoding: chunked"[..]), Just(&b"Content-Length: 2"[..]),
                    Just(&b"X-Long: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"[..]),
                ],
                1..12),
            endings in proptest::collection::vec(prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..])], 12),
            cuts in proptest::collection::vec(1usize..400, 0..30),
            tight in any::<bool>(),
        ) {
            let mut input = b"GET /x HTTP/1.1\r\n".to_vec();
            for (line, ending) in lines.iter().zip(&endings) {
                input.extend_from_slice(line);
                input.extend_from_slice(ending);
            }
            input.extend_from_slice(b"\r\nnext");
            let limits = if tight {
                Limits { max_request_line: 40, max_header_bytes: 120 }
            } else {
                Limits::default()
            };
            let mut ends: Vec<usize> = cuts.iter().map(|&cut| cut.min(input.len())).collect();
            ends.push(input.len());
            ends.sort_unstable();
            ends.dedup();
            let mut scan = HeadScan::default();
            let mut last_partial = true;
            for end in ends {
                let prefix = &input[..end];
                let mut slots = HeaderSlots::default();
                let scanned = scan.poll(prefix, &mut slots, limits);
                let mut slots = HeaderSlots::default();
                let whole = parse_head(prefix, &mut slots, limits);
                match (&scanned, &whole) {
                    (Ok(HeadStatus::Complete(a)), Ok(HeadStatus::Complete(b))) => {
                        prop_assert_eq!(
                            (a.method, a.path, a.head_len, a.body, a.keep_alive),
                            (b.method, b.path, b.head_len, b.body, b.keep_alive)
                        );
                    }
                    (Ok(HeadStatus::Partial), Ok(HeadStatus::Partial) | Err(_)) => {}
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "at {}: scan {:?}, whole {:?}", end, scanned, whole),
                }
                if !matches!(scanned, Ok(HeadStatus::Partial)) {
                    last_partial = false;
                    break;
                }
            }
            // An error still pending is found once the end of the head is in.
            let has_end = input.windows(2).any(|w| w[0] == b'\n' && matches!(w[1], b'\n' | b'\r'));
            prop_assert!(!(last_partial && has_end));
        }
    }
}
