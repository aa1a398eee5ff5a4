//! Response bytes: status lines, and the one place where a [`ProtocolError`]
//! becomes its wire form.
//!
//! Responses are written into the connection's reusable output buffer; nothing
//! here allocates once that buffer has grown to its working size.

use std::io::Write as _;
use std::net::IpAddr;

use super::ProtocolError;

/// The status line for `status`, with its standard reason phrase.
pub(crate) const fn status_line(status: u16) -> &'static str {
    match status {
        200 => "HTTP/1.1 200 OK\r\n",
        400 => "HTTP/1.1 400 Bad Request\r\n",
        401 => "HTTP/1.1 401 Unauthorized\r\n",
        403 => "HTTP/1.1 403 Forbidden\r\n",
        404 => "HTTP/1.1 404 Not Found\r\n",
        405 => "HTTP/1.1 405 Method Not Allowed\r\n",
        408 => "HTTP/1.1 408 Request Timeout\r\n",
        413 => "HTTP/1.1 413 Content Too Large\r\n",
        414 => "HTTP/1.1 414 URI Too Long\r\n",
        429 => "HTTP/1.1 429 Too Many Requests\r\n",
        431 => "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        503 => "HTTP/1.1 503 Service Unavailable\r\n",
        _ => "HTTP/1.1 500 Internal Server Error\r\n",
    }
}

/// `connection: close`, sent on the last response of a connection.
pub(crate) const CONNECTION_CLOSE: &[u8] = b"connection: close\r\n";

/// How a response ends its exchange, and who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    /// This is the connection's last response: send `connection: close`.
    pub close: bool,
    /// The request was `HEAD`: send the headers (`content-length` included)
    /// but no body, or the body would be read as the start of the next response.
    pub head_only: bool,
    /// The peer's address (for ext_authz, the proxy's), to decide whether
    /// its forwarded headers are believed.
    pub peer: IpAddr,
}

impl Default for Framing {
    /// Keep-alive, with a body, from an unspecified address.
    fn default() -> Framing {
        Framing {
            close: false,
            head_only: false,
            peer: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// Writes a complete response: status line, content type and length, the
/// `connection: close` line when closing, `extra` header lines (each ending in
/// CRLF), then the body unless the request was `HEAD`.
pub(crate) fn write_simple(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[u8],
    body: &[u8],
    framing: Framing,
) {
    out.extend_from_slice(status_line(status).as_bytes());
    let _ = write!(
        out,
        "content-type: {content_type}\r\ncontent-length: {}\r\n",
        body.len()
    );
    out.extend_from_slice(extra);
    if framing.close {
        out.extend_from_slice(CONNECTION_CLOSE);
    }
    out.extend_from_slice(b"\r\n");
    if !framing.head_only {
        out.extend_from_slice(body);
    }
}

/// Writes the answer to a protocol error: its status, and a JSON body naming
/// it, always with `connection: close` because the framing is lost.
pub(crate) fn error(out: &mut Vec<u8>, error: ProtocolError) {
    let mut body = [0u8; 256];
    let len = {
        let mut cursor = std::io::Cursor::new(&mut body[..]);
        // Names and details are static ASCII without quotes or backslashes, and
        // the longest fits in the buffer (a unit test checks every variant).
        let _ = write!(
            cursor,
            "{{\"error\":\"{}\",\"detail\":\"{}\"}}",
            error.name(),
            error.detail()
        );
        usize::try_from(cursor.position()).unwrap_or(0)
    };
    write_simple(
        out,
        error.status(),
        "application/json",
        b"",
        body.get(..len).unwrap_or_default(),
        Framing {
            close: true,
            ..Framing::default()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_error_renders_its_status_and_a_whole_json_body() {
        let errors = [
            ProtocolError::BadRequest("an HTTP/1.1 request needs exactly one Host header"),
            ProtocolError::RequestLineTooLong,
            ProtocolError::HeadersTooLarge,
            ProtocolError::BodyTooLarge,
            ProtocolError::BadTransferEncoding("the only transfer coding accepted is chunked"),
            ProtocolError::Timeout,
            ProtocolError::Internal,
        ];
        for e in errors {
            let mut out = Vec::new();
            error(&mut out, e);
            let text = String::from_utf8(out).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", e.status())));
            assert!(head.ends_with("connection: close"));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"], e.name());
            assert_eq!(json["detail"], e.detail());
            assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        }
    }
}
