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

    /// Whether the `Host` value `host` matches.
    pub fn matches(&self, host: &[u8]) -> bool {
        self.matches_name(host_name(host))
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

/// The name part of a `Host` value: no port, no trailing dot.
pub fn host_name(host: &[u8]) -> &[u8] {
    let host = host.trim_ascii();
    let name = if host.first() == Some(&b'[') {
        // An IPv6 literal: up to the closing bracket.
        match memchr::memchr(b']', host) {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        }
    } else {
        match memchr::memrchr(b':', host) {
            Some(colon) => host.get(..colon).unwrap_or(host),
            None => host,
        }
    };
    name.strip_suffix(b".").unwrap_or(name)
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
}
