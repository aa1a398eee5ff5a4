//! Host patterns of rules: `api.example.com` (exact) and `*.example.com` (any
//! subdomain, at any depth, but not `example.com` itself). Matching ignores
//! case, a port and a trailing dot, and borrows the request's bytes.

/// One compiled host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host (lower case).
    Exact(Box<[u8]>),
    /// Ends with this suffix, which starts with a dot (lower case).
    Subdomains(Box<[u8]>),
}

/// Why a host pattern is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a host pattern is a host name or *.domain, without port, scheme or path")]
pub struct HostPatternError;

impl HostPattern {
    /// Compiles `pattern`.
    pub fn parse(pattern: &str) -> Result<HostPattern, HostPatternError> {
        let lower = pattern.to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !valid {
            return Err(HostPatternError);
        }
        Ok(if wildcard {
            HostPattern::Subdomains(format!(".{name}").into_bytes().into())
        } else {
            HostPattern::Exact(name.as_bytes().into())
        })
    }

    /// The pattern as it would be written.
    pub fn text(&self) -> String {
        match self {
            HostPattern::Exact(name) => String::from_utf8_lossy(name).into_owned(),
            HostPattern::Subdomains(suffix) => format!("*{}", String::from_utf8_lossy(suffix)),
        }
    }

    /// Whether the `Host` value `host` is well formed and matches.
    pub fn matches(&self, host: &[u8]) -> bool {
        host_name(host).is_some_and(|name| self.matches_name(name))
    }

    /// Whether `name`, a host already reduced by [`host_name`], matches.
    pub fn matches_name(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Subdomains(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// The name part of a `Host` value (no port, no trailing dot), or `None`
/// when the value is not `host[:port]`.
///
/// Strict, because proxies and origins disagree on everything else: nginx
/// cuts `api.example.com:x:y` at the first colon and others at the last, and
/// `user@host`, `a.example.com, b.example.com`, `host/x` or `%2E` have no
/// agreed host at all. A name is letters, digits, `-`, `_` and `.` (no empty
/// label but one trailing dot); an IPv6 literal is bracketed; a port is 1 to
/// 5 digits.
pub fn host_name(host: &[u8]) -> Option<&[u8]> {
    let host = host.trim_ascii();
    let (name, port) = if host.first() == Some(&b'[') {
        let end = memchr::memchr(b']', host)?;
        let literal = host.get(1..end)?;
        let valid = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return None;
        }
        (host.get(..=end)?, host.get(end + 1..)?)
    } else {
        let colon = memchr::memchr(b':', host).unwrap_or(host.len());
        let name = host.get(..colon)?;
        let name = name.strip_suffix(b".").unwrap_or(name);
        let valid = !name.is_empty()
            && name.split(|&b| b == b'.').all(|label| !label.is_empty())
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return None;
        }
        (name, host.get(colon..)?)
    };
    match port.strip_prefix(b":") {
        None if port.is_empty() => Some(name),
        Some(digits)
            if (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            Some(name)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_hosts() {
        let exact = HostPattern::parse("API.example.com").unwrap();
        let wild = HostPattern::parse("*.example.com").unwrap();
        for (host, e, w) in [
            ("api.example.com", true, true),
            ("Api.Example.Com:8443", true, true),
            ("api.example.com.", true, true),
            ("a.b.example.com", false, true),
            ("example.com", false, false),
            ("evil-example.com", false, false),
            ("api.example.com.evil", false, false),
        ] {
            assert_eq!(exact.matches(host.as_bytes()), e, "{host}");
            assert_eq!(wild.matches(host.as_bytes()), w, "{host}");
        }
        assert!(
            HostPattern::parse("[::1]").is_err(),
            "IPv6 literals are not host patterns"
        );
        for bad in ["", "*.", "a/b", "https://a", "a:80", ".a"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_host_is_read_one_way_or_not_at_all() {
        for (host, name) in [
            ("api.example.com", "api.example.com"),
            (" Api.Example.com:8443 ", "Api.Example.com"),
            ("api.example.com.", "api.example.com"),
            ("api.example.com.:443", "api.example.com"),
            ("my_host", "my_host"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[2001:db8::1]:443", "[2001:db8::1]"),
        ] {
            assert_eq!(host_name(host.as_bytes()), Some(name.as_bytes()), "{host}");
        }
        for bad in [
            "",
            ":80",
            "api.example.com:443:80",
            "api.example.com:x",
            "api.example.com:",
            "api.example.com:123456",
            "api.example.com..",
            "api..example.com",
            ".api.example.com",
            "user@api.example.com",
            "api.example.com, evil.com",
            "api.example.com/x",
            "api.example.com;",
            "api%2Eexample.com",
            "api\u{3002}example\u{3002}com",
            "[api.example.com]",
            "[::1",
            "[]",
            "[::1]x",
        ] {
            assert_eq!(host_name(bad.as_bytes()), None, "{bad}");
        }
    }
}
