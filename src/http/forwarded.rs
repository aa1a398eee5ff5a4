//! The request the client made to the proxy, as opposed to the check request
//! the proxy made to jwtgate. Each ext_authz proxy says it differently:
//!
//! | proxy | method | host | path |
//! |---|---|---|---|
//! | Traefik ForwardAuth, Caddy `forward_auth` | `X-Forwarded-Method` | `X-Forwarded-Host` | `X-Forwarded-Uri` |
//! | nginx `auth_request` (by convention) | `X-Original-Method` | `Host` | `X-Original-URI` |
//! | Envoy HTTP ext_authz | request line | `Host` | request line, `path_prefix` stripped |
//!
//! Everything is borrowed from the request head. A header that appears more
//! than once is ignored (treated as absent), so a client cannot smuggle a
//! second value past a proxy that appends rather than replaces.

use super::RequestHead;

/// Method, host and path of the client's original request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginalRequest<'b> {
    /// The original method, e.g. `GET`.
    pub method: &'b [u8],
    /// The original host (empty if none was sent).
    pub host: &'b [u8],
    /// The original path with its query, e.g. `/v1/orders?page=2`.
    pub path: &'b [u8],
}

impl<'b> OriginalRequest<'b> {
    /// Reads the original request from `head`; `path_prefix` is the prefix a
    /// proxy puts before the original path in the check request (Envoy's
    /// `path_prefix`), stripped when the path comes from the request line.
    pub fn from_head(head: &RequestHead<'_, 'b>, path_prefix: &str) -> OriginalRequest<'b> {
        let method = head
            .unique_header("x-forwarded-method")
            .or_else(|| head.unique_header("x-original-method"))
            .unwrap_or(head.method.as_bytes());
        let host = head
            .unique_header("x-forwarded-host")
            .or_else(|| head.unique_header("host"))
            .unwrap_or_default();
        let path = head
            .unique_header("x-forwarded-uri")
            .or_else(|| head.unique_header("x-original-uri"))
            .unwrap_or_else(|| {
                let path = head.path.as_bytes();
                match path.strip_prefix(path_prefix.as_bytes()) {
                    Some(rest) if rest.first() == Some(&b'/') => rest,
                    Some([]) => b"/",
                    _ => path,
                }
            });
        OriginalRequest { method, host, path }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{HeadStatus, HeaderSlots, Limits, parse_head};

    fn original(request: &[u8], prefix: &str) -> (String, String, String) {
        let mut slots = HeaderSlots::default();
        let HeadStatus::Complete(head) =
            parse_head(request, &mut slots, Limits::default()).unwrap()
        else {
            panic!("complete");
        };
        let o = OriginalRequest::from_head(&head, prefix);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        (text(o.method), text(o.host), text(o.path))
    }

    #[test]
    fn traefik_and_caddy_forwarded_headers() {
        let request = b"GET /auth HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Method: DELETE\r\nX-Forwarded-Host: api.example\r\nX-Forwarded-Uri: /v1/x?a=b\r\n\r\n";
        assert_eq!(
            original(request, ""),
            ("DELETE".into(), "api.example".into(), "/v1/x?a=b".into())
        );
    }

    #[test]
    fn nginx_original_headers() {
        let request = b"GET /_auth HTTP/1.0\r\nHost: api.example\r\nX-Original-URI: /orders\r\nX-Original-Method: POST\r\n\r\n";
        assert_eq!(
            original(request, ""),
            ("POST".into(), "api.example".into(), "/orders".into())
        );
    }

    #[test]
    fn envoy_request_line_with_prefix_stripped() {
        let request = b"PUT /authz/v1/items/7 HTTP/1.1\r\nHost: api.example\r\n\r\n";
        assert_eq!(
            original(request, "/authz"),
            ("PUT".into(), "api.example".into(), "/v1/items/7".into())
        );
        let bare = b"GET /authz HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(original(bare, "/authz").2, "/");
        // A prefix that only matches part of a segment is not a prefix.
        let other = b"GET /authzfoo HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(original(other, "/authz").2, "/authzfoo");
    }

    #[test]
    fn repeated_forwarded_headers_are_not_believed() {
        let request =
            b"GET /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-Uri: /a\r\nX-Forwarded-Uri: /admin\r\n\r\n";
        assert_eq!(original(request, "").2, "/p");
    }
}
