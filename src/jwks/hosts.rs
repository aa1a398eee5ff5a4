//! Where a key source's requests may go. Keys are fetched from the origin
//! the configuration names (the `jwks_url`'s, or the issuer's with
//! discovery): a redirect, or the `jwks_uri` of a discovery document, that
//! leads to any other origin is refused unless `jwks_allowed_hosts` lists
//! its host. Otherwise whoever can make the IdP (or a path on its host, or
//! its discovery document) answer a redirect decides which keys jwtgate
//! trusts, and TLS would only prove that the attacker's host is the
//! attacker's.
//!
//! An origin is scheme, host and port (RFC 6454): the port counts, because
//! another port of the same host is often another service (a metrics or
//! admin listener, a tenant's app on a shared host) that may echo a body
//! its caller chooses. A listed host without a port means the configured
//! scheme's default port; `host:port` lists another one.
//!
//! Neighbours: `fetch` asks [`Destinations::check`] before every request it
//! sends (the first one and each redirect it follows itself);
//! `crate::config` parses `jwks_allowed_hosts` with [`AllowedHost::parse`].

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ureq::http::Uri;

/// The canonical spelling of a URL's host, for comparison: lower case, an
/// IPv4 address in plain dotted decimal, an IPv6 address in brackets in its
/// shortest form. Two spellings that differ here may still resolve to the
/// same address (`127.1`, a trailing dot): that only ever refuses a request,
/// never lets one through.
fn canonical_host(host: &str) -> Box<str> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
        && let Ok(address) = inner.parse::<Ipv6Addr>()
    {
        return format!("[{address}]").into();
    }
    if let Ok(address) = host.parse::<Ipv4Addr>() {
        return address.to_string().into();
    }
    host.to_ascii_lowercase().into()
}

/// `https` or `http` (the latter only with `danger_allow_http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    const fn name(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    const fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }
}

/// Why a configured URL (`jwks_url`, or the issuer for discovery) cannot be
/// fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// It does not parse as an absolute URL.
    #[error("not a URL such as \"https://idp.example.com/keys\"")]
    NotAUrl,
    /// Neither `https` nor `http`.
    #[error("the scheme is neither https nor http")]
    Scheme,
    /// No host in it.
    #[error("the URL names no host")]
    NoHost,
    /// `user:password@` in it.
    #[error("the URL holds credentials")]
    Credentials,
}

/// A URL's scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    host: Box<str>,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http(s)://` URL.
    pub fn of_url(url: &str) -> Result<Origin, UrlError> {
        let uri: Uri = url.trim().parse().map_err(|_| UrlError::NotAUrl)?;
        Origin::of_uri(&uri)
    }

    fn of_uri(uri: &Uri) -> Result<Origin, UrlError> {
        let scheme = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(_) => return Err(UrlError::Scheme),
            None => return Err(UrlError::NotAUrl),
        };
        let authority = uri.authority().ok_or(UrlError::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        Ok(Origin {
            scheme,
            host: canonical_host(host),
            port: authority.port_u16().unwrap_or(scheme.default_port()),
        })
    }

    /// `host:port`, as log lines name it.
    fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.name(), self.host, self.port)
    }
}

/// Why an entry of `jwks_allowed_hosts` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An empty string.
    #[error("empty")]
    Empty,
    /// `https://…`: the scheme is the configured one, always.
    #[error("a host, not a URL: no scheme (the configured one applies)")]
    Scheme,
    /// `/path`, `?query` or `#fragment`.
    #[error("a host, not a URL: no path, query or fragment")]
    Path,
    /// `user@host`.
    #[error("a host, not a URL: no credentials")]
    Credentials,
    /// `*.example.com`.
    #[error("no wildcards: list each host")]
    Wildcard,
    /// Not a DNS name, an IPv4 address or a bracketed IPv6 address.
    #[error("not a host name or IP address (IPv6 in brackets: \"[::1]\")")]
    NotAHost,
    /// `:0`, `:99999`, `:https`.
    #[error("the port is not a number from 1 to 65535")]
    Port,
}

/// Whether `name` is a DNS host name: dot-separated labels of letters,
/// digits and inner hyphens, 1 to 63 bytes each, 253 in all, and a last
/// label that is not all digits (that would be a mistyped IPv4 address).
fn is_dns_name(name: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    name.len() <= 253
        && name.split('.').all(label_ok)
        && name
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

/// An entry of `jwks_allowed_hosts`: a host, and its port when it is not the
/// configured scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: Box<str>,
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `keys.example.com`, `keys.example.com:8443`, `192.0.2.7`,
    /// `[2001:db8::7]:8443`. Case does not matter.
    pub fn parse(text: &str) -> Result<AllowedHost, HostError> {
        if text.is_empty() {
            return Err(HostError::Empty);
        }
        if text.contains("://") {
            return Err(HostError::Scheme);
        }
        if text.contains(['/', '?', '#']) {
            return Err(HostError::Path);
        }
        if text.contains('@') {
            return Err(HostError::Credentials);
        }
        if text.contains('*') {
            return Err(HostError::Wildcard);
        }
        let (host, port) = if text.starts_with('[') {
            let close = text.find(']').ok_or(HostError::NotAHost)?;
            let (host, rest) = text.split_at(close + 1);
            match rest {
                "" => (host, None),
                _ => (host, Some(rest.strip_prefix(':').ok_or(HostError::Port)?)),
            }
        } else {
            match text.split_once(':') {
                // A second colon: an IPv6 address without its brackets.
                Some((_, port)) if port.contains(':') => return Err(HostError::NotAHost),
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = port
            .map(|digits| match digits.parse::<u16>() {
                Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
                _ => Err(HostError::Port),
            })
            .transpose()?;
        let bracketed_v6 = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|inner| inner.parse::<Ipv6Addr>().is_ok());
        if !(bracketed_v6 || host.parse::<Ipv4Addr>().is_ok() || is_dns_name(host)) {
            return Err(HostError::NotAHost);
        }
        Ok(AllowedHost {
            host: canonical_host(host),
            port,
        })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an absolute `http(s)` URL with a host.
    #[error("{0}")]
    Url(UrlError),
    /// Another scheme than the configured one (`http` from `https`).
    #[error("the scheme is not the configured {wanted}")]
    Scheme {
        /// The configured scheme.
        wanted: &'static str,
    },
    /// Another host or port than the configured one, and not listed.
    #[error("host {host} is neither the configured host {home} nor listed in jwks_allowed_hosts")]
    Host {
        /// `host:port` asked for.
        host: String,
        /// `host:port` configured.
        home: String,
    },
}

/// Where one key source's requests may go: its configured origin, and the
/// listed hosts under the same scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    home: Origin,
    /// `jwks_allowed_hosts`, each with its port resolved.
    also: Vec<Origin>,
}

impl Destinations {
    /// The configured origin `home` and the hosts listed beside it.
    pub fn new(home: Origin, allowed: &[AllowedHost]) -> Destinations {
        let also = allowed
            .iter()
            .map(|entry| Origin {
                scheme: home.scheme,
                host: entry.host.clone(),
                port: entry.port.unwrap_or(home.scheme.default_port()),
            })
            .collect();
        Destinations { home, also }
    }

    /// Whether a request to `uri` may be sent.
    pub fn check(&self, uri: &Uri) -> Result<(), Refusal> {
        let origin = Origin::of_uri(uri).map_err(Refusal::Url)?;
        if origin.scheme != self.home.scheme {
            return Err(Refusal::Scheme {
                wanted: self.home.scheme.name(),
            });
        }
        if origin == self.home || self.also.contains(&origin) {
            return Ok(());
        }
        Err(Refusal::Host {
            host: origin.host_port(),
            home: self.home.host_port(),
        })
    }

    /// For `check-config`: every origin a request may go to.
    pub fn describe(&self) -> String {
        let mut text = format!("{} (configured)", self.home);
        for origin in &self.also {
            text.push_str(&format!(", {origin} (jwks_allowed_hosts)"));
        }
        text
    }
}

/// The absolute URL a `Location` header value names, relative to `base`
/// (RFC 9110 §10.2.2, RFC 3986 §5.2): an absolute URL, `//host/path`,
/// `/path` or a path relative to `base`'s. The fragment is dropped. Dot
/// segments are left to the server: they cannot change the authority,
/// which is all that is checked.
pub(crate) fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.split('#').next().unwrap_or("").trim();
    if location.is_empty() {
        return None;
    }
    if let Ok(uri) = location.parse::<Uri>()
        && uri.scheme().is_some()
    {
        return Some(uri);
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let text = if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let directory = path
            .rfind('/')
            .and_then(|end| path.get(..=end))
            .unwrap_or("/");
        format!("{scheme}://{authority}{directory}{location}")
    };
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    fn destinations(home: &str, allowed: &[&str]) -> Destinations {
        let allowed: Vec<AllowedHost> = allowed
            .iter()
            .map(|entry| AllowedHost::parse(entry).unwrap())
            .collect();
        Destinations::new(Origin::of_url(home).unwrap(), &allowed)
    }

    #[test]
    fn only_the_configured_origin_without_a_list() {
        let d = destinations("https://idp.example/.well-known/jwks.json", &[]);
        for ok in [
            "https://idp.example/keys",
            "https://IDP.Example:443/other?x=1",
            "HTTPS://idp.example/",
        ] {
            assert_eq!(d.check(&uri(ok)), Ok(()), "{ok}");
        }
        let host = |host: &str| Refusal::Host {
            host: host.to_owned(),
            home: "idp.example:443".to_owned(),
        };
        assert_eq!(
            d.check(&uri("https://evil.example/keys")),
            Err(host("evil.example:443"))
        );
        assert_eq!(
            d.check(&uri("https://idp.example:8443/keys")),
            Err(host("idp.example:8443"))
        );
        assert_eq!(
            d.check(&uri("https://idp.example.evil.example/")),
            Err(host("idp.example.evil.example:443"))
        );
        // The host is what follows the last `@`, as the client connects.
        assert_eq!(
            d.check(&uri("https://idp.example@evil.example/")),
            Err(Refusal::Url(UrlError::Credentials))
        );
        assert_eq!(
            d.check(&uri("http://idp.example/keys")),
            Err(Refusal::Scheme { wanted: "https" })
        );
        assert_eq!(
            d.check(&uri("/relative")),
            Err(Refusal::Url(UrlError::NotAUrl))
        );
        assert_eq!(
            host("a:1").to_string(),
            "host a:1 is neither the configured host idp.example:443 nor listed in jwks_allowed_hosts"
        );
    }

    #[test]
    fn listed_hosts_on_their_ports() {
        let d = destinations(
            "https://127.0.0.1:8443/jwks.json",
            &[
                "Keys.Example.com",
                "localhost:8443",
                "[::1]:8443",
                "192.0.2.7",
            ],
        );
        for ok in [
            "https://127.0.0.1:8443/a",
            "https://keys.example.com/a",
            "https://keys.example.com:443/a",
            "https://localhost:8443/a",
            "https://[0:0::1]:8443/a",
            "https://192.0.2.7/a",
        ] {
            assert_eq!(d.check(&uri(ok)), Ok(()), "{ok}");
        }
        for refused in [
            "https://127.0.0.1/a",
            "https://keys.example.com:8443/a",
            "https://localhost/a",
            "https://[::1]/a",
            "https://127.0.0.2:8443/a",
            "https://sub.keys.example.com/a",
        ] {
            assert!(
                matches!(d.check(&uri(refused)), Err(Refusal::Host { .. })),
                "{refused}"
            );
        }
        assert_eq!(
            d.describe(),
            "https://127.0.0.1:8443 (configured), https://keys.example.com:443 (jwks_allowed_hosts), \
             https://localhost:8443 (jwks_allowed_hosts), https://[::1]:8443 (jwks_allowed_hosts), \
             https://192.0.2.7:443 (jwks_allowed_hosts)"
        );
    }

    #[test]
    fn allowed_host_entries_are_hosts() {
        for (text, shown) in [
            ("keys.example.com", "keys.example.com"),
            ("KEYS.example.com:8443", "keys.example.com:8443"),
            ("localhost", "localhost"),
            ("127.0.0.2", "127.0.0.2"),
            ("[2001:DB8::7]:8443", "[2001:db8::7]:8443"),
            ("[::1]", "[::1]"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(
                AllowedHost::parse(text).map(|h| h.to_string()),
                Ok(shown.to_owned()),
                "{text}"
            );
        }
        for (text, error) in [
            ("", HostError::Empty),
            ("https://keys.example.com", HostError::Scheme),
            ("keys.example.com/jwks", HostError::Path),
            ("keys.example.com?x", HostError::Path),
            ("user@keys.example.com", HostError::Credentials),
            ("*.example.com", HostError::Wildcard),
            ("keys example.com", HostError::NotAHost),
            ("keys_example.com", HostError::NotAHost),
            ("-keys.example.com", HostError::NotAHost),
            ("keys.example.com.", HostError::NotAHost),
            ("bücher.example", HostError::NotAHost),
            ("10.0.0.256", HostError::NotAHost),
            ("::1", HostError::NotAHost),
            ("[::1", HostError::NotAHost),
            ("[nope]", HostError::NotAHost),
            ("keys.example.com:0", HostError::Port),
            ("keys.example.com:65536", HostError::Port),
            ("keys.example.com:+443", HostError::Port),
            ("keys.example.com:", HostError::Port),
            ("[::1]8443", HostError::Port),
        ] {
            assert_eq!(AllowedHost::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn configured_urls_give_their_origin() {
        let origin = Origin::of_url("https://IdP.example:8443/realms/x").unwrap();
        assert_eq!(origin.to_string(), "https://idp.example:8443");
        assert_eq!(
            Origin::of_url("http://idp.example/").unwrap().to_string(),
            "http://idp.example:80"
        );
        assert_eq!(Origin::of_url("idp.example/keys"), Err(UrlError::NotAUrl));
        assert_eq!(Origin::of_url("ftp://idp.example/"), Err(UrlError::Scheme));
        assert_eq!(Origin::of_url("https://a b/"), Err(UrlError::NotAUrl));
        assert_eq!(
            Origin::of_url("https://u:p@idp.example/"),
            Err(UrlError::Credentials)
        );
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let base = uri("https://idp.example:8443/a/b/jwks.json?x=1");
        for (location, want) in [
            ("https://other.example/k", "https://other.example/k"),
            ("//other.example/k", "https://other.example/k"),
            ("/k?y=2", "https://idp.example:8443/k?y=2"),
            ("k.json", "https://idp.example:8443/a/b/k.json"),
            ("../k.json", "https://idp.example:8443/a/b/../k.json"),
            ("/k#frag", "https://idp.example:8443/k"),
        ] {
            assert_eq!(
                resolve(&base, location).map(|u| u.to_string()),
                Some(want.to_owned()),
                "{location}"
            );
        }
        assert_eq!(resolve(&base, ""), None);
        assert_eq!(resolve(&base, "/a b"), None);
    }
}
