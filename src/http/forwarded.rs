//! The request the client made to the proxy, as opposed to the check request
//! the proxy made to jwtgate. Each ext_authz proxy says it differently, and
//! which one is in front is configuration, never guessed from the request:
//!
//! | [`ForwardedStyle`] | proxies | method | host | path |
//! |---|---|---|---|---|
//! | `XForwarded` | Traefik ForwardAuth, Caddy `forward_auth` | `X-Forwarded-Method` | `X-Forwarded-Host` | `X-Forwarded-Uri` |
//! | `XOriginal` | nginx `auth_request` (the usual recipe) | `X-Original-Method` | `Host` | `X-Original-URI` |
//! | `XOriginalUrl` | Kubernetes ingress-nginx (`auth-url`) | `X-Original-Method` | `X-Original-URL`'s authority | `X-Original-URL`'s path and query |
//! | `RequestLine` | Envoy HTTP ext_authz | request line | `Host` | request line, `path_prefix` stripped |
//!
//! There is no fallback from one source to another: nginx passes the client's
//! own headers into its `auth_request` subrequest, so a reader that preferred
//! `X-Forwarded-Uri` when present would let a client choose the path that
//! routing sees. A source header that is absent or repeated is a 400, so a
//! proxy that appends instead of replacing cannot smuggle a second value.

use super::{ProtocolError, RequestHead};

/// Which headers carry the original request (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedStyle<'c> {
    /// `X-Forwarded-Method`, `X-Forwarded-Host`, `X-Forwarded-Uri`.
    XForwarded,
    /// `X-Original-Method`, `Host`, `X-Original-URI`.
    XOriginal,
    /// `X-Original-Method` and the whole URL in `X-Original-URL`
    /// (`scheme://host[:port]/path?query`), as ingress-nginx sends them: its
    /// auth subrequest's `Host` is the auth service's, not the client's.
    XOriginalUrl,
    /// The check request's own method, `Host` and path, with this prefix
    /// (Envoy's `path_prefix`) stripped from the path.
    RequestLine {
        /// The prefix the proxy puts before the original path (may be empty).
        path_prefix: &'c str,
    },
}

/// Method, host and path of the client's original request, borrowed from the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginalRequest<'b> {
    /// The original method, e.g. `GET`.
    pub method: &'b [u8],
    /// The original host.
    pub host: &'b [u8],
    /// The original path with its query, e.g. `/v1/orders?page=2`.
    pub path: &'b [u8],
}

fn exactly_one<'b>(
    head: &RequestHead<'_, 'b>,
    name: &str,
    missing: &'static str,
) -> Result<&'b [u8], ProtocolError> {
    head.unique_header(name)
        .ok_or(ProtocolError::BadRequest(missing))
}

/// Host and path (with its query) of an absolute `http` or `https` URL. A
/// URL with credentials, without a host or of another scheme is refused:
/// readers disagree on where such an authority ends.
fn url_parts(url: &[u8]) -> Result<(&[u8], &[u8]), ProtocolError> {
    const NOT_A_URL: ProtocolError =
        ProtocolError::BadRequest("X-Original-URL is not an absolute http or https URL");
    let rest = [&b"https://"[..], b"http://"]
        .iter()
        .find_map(|scheme| {
            url.get(..scheme.len())
                .filter(|start| start.eq_ignore_ascii_case(scheme))
                .and_then(|_| url.get(scheme.len()..))
        })
        .ok_or(NOT_A_URL)?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    if host.is_empty() || host.contains(&b'@') || host.contains(&b'\\') {
        return Err(ProtocolError::BadRequest(
            "X-Original-URL has no host, or credentials or a backslash in its authority",
        ));
    }
    // ingress-nginx sends `$scheme://$http_host$request_uri`, whose path
    // always starts with `/`: anything else (`https://host?q`) is refused
    // rather than guessed at; a bare authority is the root.
    if path.is_empty() {
        return Ok((host, b"/"));
    }
    if path.first() != Some(&b'/') {
        return Err(ProtocolError::BadRequest(
            "X-Original-URL's path does not start with '/'",
        ));
    }
    Ok((host, path))
}

impl<'b> OriginalRequest<'b> {
    /// Reads the original request from `head` as `style` says.
    pub fn from_head(
        head: &RequestHead<'_, 'b>,
        style: ForwardedStyle<'_>,
    ) -> Result<OriginalRequest<'b>, ProtocolError> {
        const HOST: &str = "the original request needs exactly one Host header";
        Ok(match style {
            ForwardedStyle::XForwarded => OriginalRequest {
                method: exactly_one(
                    head,
                    "x-forwarded-method",
                    "exactly one X-Forwarded-Method is required",
                )?,
                host: exactly_one(
                    head,
                    "x-forwarded-host",
                    "exactly one X-Forwarded-Host is required",
                )?,
                path: exactly_one(
                    head,
                    "x-forwarded-uri",
                    "exactly one X-Forwarded-Uri is required",
                )?,
            },
            ForwardedStyle::XOriginal => OriginalRequest {
                method: exactly_one(
                    head,
                    "x-original-method",
                    "exactly one X-Original-Method is required",
                )?,
                host: exactly_one(head, "host", HOST)?,
                path: exactly_one(
                    head,
                    "x-original-uri",
                    "exactly one X-Original-URI is required",
                )?,
            },
            ForwardedStyle::XOriginalUrl => {
                let (host, path) = url_parts(exactly_one(
                    head,
                    "x-original-url",
                    "exactly one X-Original-URL is required",
                )?)?;
                OriginalRequest {
                    method: exactly_one(
                        head,
                        "x-original-method",
                        "exactly one X-Original-Method is required",
                    )?,
                    host,
                    path,
                }
            }
            ForwardedStyle::RequestLine { path_prefix } => {
                let path = head.path.as_bytes();
                let path = match path.strip_prefix(path_prefix.as_bytes()) {
                    Some(rest) if rest.first() == Some(&b'/') => rest,
                    Some([]) => b"/",
                    _ if path_prefix.is_empty() => path,
                    _ => {
                        return Err(ProtocolError::BadRequest(
                            "the request path does not start with the configured prefix",
                        ));
                    }
                };
                OriginalRequest {
                    method: head.method.as_bytes(),
                    host: exactly_one(head, "host", HOST)?,
                    path,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{HeadStatus, HeaderSlots, Limits, parse_head};

    fn original(
        request: &[u8],
        style: ForwardedStyle<'_>,
    ) -> Result<(String, String, String), u16> {
        let mut slots = HeaderSlots::default();
        let HeadStatus::Complete(head) =
            parse_head(request, &mut slots, Limits::default()).unwrap()
        else {
            panic!("complete");
        };
        let o = OriginalRequest::from_head(&head, style).map_err(|e| e.status())?;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        Ok((text(o.method), text(o.host), text(o.path)))
    }

    #[test]
    fn traefik_and_caddy_forwarded_headers() {
        let request = b"GET /auth HTTP/1.1\r\nHost: gate\r\nX-Forwarded-Method: DELETE\r\nX-Forwarded-Host: api.example\r\nX-Forwarded-Uri: /v1/x?a=b\r\n\r\n";
        assert_eq!(
            original(request, ForwardedStyle::XForwarded),
            Ok(("DELETE".into(), "api.example".into(), "/v1/x?a=b".into()))
        );
    }

    #[test]
    fn nginx_original_headers_ignore_client_forwarded_headers() {
        // A client's own X-Forwarded-Uri, passed through by nginx, changes nothing.
        let request = b"GET /_auth HTTP/1.0\r\nHost: api.example\r\nX-Forwarded-Uri: /public\r\nX-Original-URI: /orders\r\nX-Original-Method: POST\r\n\r\n";
        assert_eq!(
            original(request, ForwardedStyle::XOriginal),
            Ok(("POST".into(), "api.example".into(), "/orders".into()))
        );
    }

    #[test]
    fn ingress_nginx_original_url_gives_host_and_path() {
        let url = |value: &str| {
            format!(
                "GET /_external-auth HTTP/1.1\r\nHost: jwtgate.auth.svc\r\nX-Original-Method: PATCH\r\nX-Original-URL: {value}\r\nX-Original-URI: /public\r\n\r\n"
            )
        };
        let read = |value: &str| original(url(value).as_bytes(), ForwardedStyle::XOriginalUrl);
        assert_eq!(
            read("https://api.example:8443/v1/x?a=b"),
            Ok((
                "PATCH".into(),
                "api.example:8443".into(),
                "/v1/x?a=b".into()
            ))
        );
        assert_eq!(read("HTTP://api.example").unwrap().2, "/");
        for refused in [
            "/v1/x",
            "ftp://api.example/x",
            "https:///x",
            "https://user@api.example/x",
            "https://evil.example\\@api.example/x",
            "https://api.example?x=1",
        ] {
            assert_eq!(read(refused), Err(400), "{refused}");
        }
        let twice = b"GET / HTTP/1.1\r\nHost: h\r\nX-Original-Method: GET\r\nX-Original-URL: https://a/x\r\nX-Original-URL: https://b/admin\r\n\r\n";
        assert_eq!(original(twice, ForwardedStyle::XOriginalUrl), Err(400));
    }

    #[test]
    fn envoy_request_line_with_prefix_stripped() {
        let envoy = ForwardedStyle::RequestLine {
            path_prefix: "/authz",
        };
        let request = b"PUT /authz/v1/items/7 HTTP/1.1\r\nHost: api.example\r\n\r\n";
        assert_eq!(
            original(request, envoy),
            Ok(("PUT".into(), "api.example".into(), "/v1/items/7".into()))
        );
        let bare = b"GET /authz HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(original(bare, envoy).unwrap().2, "/");
        // A prefix that only matches part of a segment is not the prefix.
        let other = b"GET /authzfoo HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(original(other, envoy), Err(400));
        let no_prefix = ForwardedStyle::RequestLine { path_prefix: "" };
        assert_eq!(original(other, no_prefix).unwrap().2, "/authzfoo");
    }

    #[test]
    fn absent_or_repeated_sources_are_refused_not_replaced() {
        let repeated = b"GET /p HTTP/1.1\r\nHost: h\r\nX-Original-Method: GET\r\nX-Original-URI: /a\r\nX-Original-URI: /admin\r\n\r\n";
        assert_eq!(original(repeated, ForwardedStyle::XOriginal), Err(400));
        let absent = b"GET /p HTTP/1.1\r\nHost: h\r\nX-Original-URI: /a\r\n\r\n";
        assert_eq!(original(absent, ForwardedStyle::XForwarded), Err(400));
    }
}
