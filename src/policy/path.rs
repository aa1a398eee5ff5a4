//! Request paths: the canonical form rules are matched against, and the
//! compiled path patterns of rules and exclusions.
//!
//! Patterns, compiled once at load time:
//! - `/v1/health`: exactly this path;
//! - `/users/{id}`: `{name}` is exactly one non-empty segment;
//! - `/v1/**`: `/v1` itself and anything below it (`**` only as the last segment).
//!
//! A proxy and the origin may normalise a path differently from the client's
//! spelling (`/v1/public/../admin`, `/v1//admin`, `/%61dmin`), so a path is
//! matched in canonical form: query cut off, percent-encoded unreserved
//! characters decoded, repeated slashes merged, dot-segments resolved. A path
//! that needed any of that, or that hides a slash or backslash in `%2F`/`%5C`,
//! is marked `rewritten`: it still meets every rule (so it cannot dodge one),
//! but it never matches an exclusion, which would let it pass without a token.

/// One compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Box<[Segment]>,
    /// `**` at the end: any further segments, or none.
    open_ended: bool,
    text: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<[u8]>),
    /// `{name}`: one non-empty segment.
    Any,
}

/// Why a path pattern is refused at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathPatternError {
    /// It does not start with `/`.
    #[error("a path pattern starts with '/'")]
    NotAbsolute,
    /// `**` somewhere but at the end.
    #[error("'**' may only be the last segment")]
    InnerDoubleStar,
    /// A `{` without a whole `{name}` segment, or `*` inside a segment.
    #[error("a template segment is written {{name}}, alone between slashes")]
    BadTemplate,
    /// A query, fragment, dot-segment or percent sign: patterns are canonical paths.
    #[error("a path pattern is a canonical path: no '?', '#', '%', '.' or '..' segments")]
    NotCanonical,
}

impl PathPattern {
    /// Compiles `pattern`.
    pub fn parse(pattern: &str) -> Result<PathPattern, PathPatternError> {
        let rest = pattern
            .strip_prefix('/')
            .ok_or(PathPatternError::NotAbsolute)?;
        if pattern.contains(['?', '#', '%']) {
            return Err(PathPatternError::NotCanonical);
        }
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut segments = Vec::with_capacity(parts.len());
        let mut open_ended = false;
        for (index, part) in parts.iter().enumerate() {
            if *part == "**" {
                if index + 1 != parts.len() {
                    return Err(PathPatternError::InnerDoubleStar);
                }
                open_ended = true;
            } else if *part == "." || *part == ".." {
                return Err(PathPatternError::NotCanonical);
            } else if part.starts_with('{') && part.ends_with('}') && part.len() > 2 {
                let name = part.get(1..part.len() - 1).unwrap_or_default();
                if name.contains(['{', '}', '*']) {
                    return Err(PathPatternError::BadTemplate);
                }
                segments.push(Segment::Any);
            } else if part.contains(['{', '}', '*']) {
                return Err(PathPatternError::BadTemplate);
            } else {
                segments.push(Segment::Literal(part.as_bytes().into()));
            }
        }
        Ok(PathPattern {
            segments: segments.into(),
            open_ended,
            text: pattern.into(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the canonical `path` (from [`canonicalize`]) matches exactly.
    /// Exclusions use this: only the exact spelling is left open.
    pub fn matches(&self, path: &[u8]) -> bool {
        self.matches_with(path, |part, literal| part == literal)
    }

    /// Whether `path` matches ignoring ASCII case. Rules use this: an origin
    /// that ignores case must not let `/Admin` dodge the rule for `/admin`.
    pub fn matches_ignoring_case(&self, path: &[u8]) -> bool {
        self.matches_with(path, <[u8]>::eq_ignore_ascii_case)
    }

    fn matches_with(&self, path: &[u8], same: impl Fn(&[u8], &[u8]) -> bool) -> bool {
        let body = path.strip_prefix(b"/").unwrap_or(path);
        // "/" has no segments at all; "/a/" has "a" and an empty last one.
        let mut parts = (!body.is_empty())
            .then(|| body.split(|&b| b == b'/'))
            .into_iter()
            .flatten();
        for segment in &self.segments {
            let Some(part) = parts.next() else {
                return false;
            };
            let fits = match segment {
                Segment::Literal(literal) => same(part, literal),
                Segment::Any => !part.is_empty(),
            };
            if !fits {
                return false;
            }
        }
        self.open_ended || parts.next().is_none()
    }
}

/// What [`canonicalize`] made of a request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canonical {
    /// The canonical path was not the path as sent (so it never matches an exclusion).
    pub rewritten: bool,
    /// The path hides a separator in `%2F` or `%5C`: origins disagree on
    /// whether that is a slash, so no rule can be chosen safely (answered 400).
    pub encoded_separator: bool,
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn upper_hex(nibble: u8) -> u8 {
    b"0123456789ABCDEF"
        .get(usize::from(nibble))
        .copied()
        .unwrap_or(b'0')
}

fn unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// The path of an absolute-form target (`http://host/path`), if it is one.
fn strip_absolute_form(target: &[u8]) -> Option<&[u8]> {
    let scheme_end = memchr::memmem::find(target, b"://")?;
    let scheme = target.get(..scheme_end)?;
    if scheme.is_empty() || !scheme.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let rest = target.get(scheme_end + 3..)?;
    Some(match memchr::memchr(b'/', rest) {
        Some(slash) => rest.get(slash..).unwrap_or(b"/"),
        None => b"/",
    })
}

/// Writes the canonical form of the path of `target` (an origin-form or
/// absolute-form request target, query allowed) into `out`, reusing its capacity.
///
/// Besides the rewrites in the module doc, path parameters (`;jsessionid=1`,
/// the `..;` of Tomcat and Spring) are removed from every segment, and a `#`
/// (never sent by a conforming client) stays a path byte: both, like control
/// characters in escapes, mark the path rewritten.
pub fn canonicalize(target: &[u8], out: &mut Vec<u8>) -> Canonical {
    out.clear();
    let end = memchr::memchr(b'?', target).unwrap_or(target.len());
    let mut path = target.get(..end).unwrap_or_default();
    let mut rewritten = false;
    let mut encoded_separator = false;
    if path.first() != Some(&b'/') {
        rewritten = true;
        match strip_absolute_form(path) {
            Some(absolute) => path = absolute,
            // `*` (OPTIONS) or garbage: read as a path below the root.
            None => out.push(b'/'),
        }
    }
    let mut i = 0;
    while let Some(&byte) = path.get(i) {
        match byte {
            b'%' => {
                let decoded = match (
                    path.get(i + 1).copied().and_then(hex),
                    path.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(high), Some(low)) => Some(high << 4 | low),
                    _ => None,
                };
                match decoded {
                    Some(byte) if unreserved(byte) => {
                        out.push(byte);
                        rewritten = true;
                    }
                    Some(byte) => {
                        encoded_separator |= matches!(byte, b'/' | b'\\');
                        rewritten |= byte < 0x20 || byte == 0x7f || byte == b';';
                        out.extend_from_slice(&[b'%', upper_hex(byte >> 4), upper_hex(byte & 15)]);
                    }
                    None => {
                        out.push(b'%');
                        rewritten = true;
                    }
                }
                i += if decoded.is_some() { 3 } else { 1 };
            }
            b';' => {
                // A path parameter runs to the end of its segment.
                rewritten = true;
                i = path
                    .get(i..)
                    .and_then(|rest| memchr::memchr(b'/', rest))
                    .map_or(path.len(), |slash| i + slash);
            }
            _ => {
                rewritten |= byte == b'\\' || byte == b'#';
                out.push(byte);
                i += 1;
            }
        }
    }
    rewritten |= resolve_segments(out);
    Canonical {
        rewritten,
        encoded_separator,
    }
}

/// Merges repeated slashes and resolves `.` and `..` in place; true if anything changed.
fn resolve_segments(path: &mut Vec<u8>) -> bool {
    let before = path.len();
    let mut changed = false;
    let mut write = 0;
    let mut read = 0;
    // Invariant: path[..write] is canonical and starts with '/'.
    while read < path.len() {
        // At a '/': find the next segment.
        let start = read + 1;
        let end = path
            .get(start..)
            .and_then(|rest| memchr::memchr(b'/', rest))
            .map_or(path.len(), |offset| start + offset);
        let segment_len = end - start;
        let is_last = end == path.len();
        let segment = path.get(start..end).unwrap_or_default();
        if segment.is_empty() && !is_last {
            changed = true; // "//"
        } else if segment == b"." {
            changed = true;
            if is_last {
                push_byte(path, &mut write, b'/');
            }
        } else if segment == b".." {
            changed = true;
            // Back to the previous '/' (never above the root).
            while write > 0 {
                write -= 1;
                if path.get(write) == Some(&b'/') {
                    break;
                }
            }
            if is_last {
                push_byte(path, &mut write, b'/');
            }
        } else {
            push_byte(path, &mut write, b'/');
            path.copy_within(start..end, write);
            write += segment_len;
        }
        read = end;
    }
    if write == 0 {
        push_byte(path, &mut write, b'/');
    }
    path.truncate(write);
    changed || path.len() != before
}

fn push_byte(path: &mut [u8], write: &mut usize, byte: u8) {
    if let Some(slot) = path.get_mut(*write) {
        *slot = byte;
        *write += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(target: &str) -> (String, bool) {
        let mut out = Vec::new();
        let c = canonicalize(target.as_bytes(), &mut out);
        (String::from_utf8(out).unwrap(), c.rewritten)
    }

    #[test]
    fn canonical_paths() {
        let cases = [
            ("/", "/", false),
            ("/v1/users/7?x=1", "/v1/users/7", false),
            ("/v1/users/", "/v1/users/", false),
            ("/v1//users", "/v1/users", true),
            ("/v1/public/../admin", "/v1/admin", true),
            ("/v1/./admin", "/v1/admin", true),
            ("/../../etc", "/etc", true),
            ("/v1/..", "/", true),
            ("/%61dmin", "/admin", true),
            ("/a%2Fb", "/a%2Fb", false),
            ("/a%2fb", "/a%2Fb", false),
            ("/a%20b", "/a%20b", false),
            ("/a\\b", "/a\\b", true),
            ("/bad%zz", "/bad%zz", true),
            ("*", "/*", true),
            ("/v1/public/..;/orders", "/v1/orders", true),
            ("/v1/public/x/..;/..;/admin", "/v1/admin", true),
            ("/a;jsessionid=1/b", "/a/b", true),
            ("/v1/public/..%00/x", "/v1/public/..%00/x", true),
            ("/v1/public/x#/../../orders", "/v1/orders", true),
            ("http://api.example.com/admin/users?x", "/admin/users", true),
            ("HTTPS://api.example.com", "/", true),
        ];
        for (target, path, rewritten) in cases {
            assert_eq!(canon(target), (path.to_owned(), rewritten), "{target}");
        }
    }

    #[test]
    fn encoded_separators_are_flagged() {
        let mut out = Vec::new();
        assert!(canonicalize(b"/admin%2Fusers", &mut out).encoded_separator);
        assert!(canonicalize(b"/admin%5cusers", &mut out).encoded_separator);
        assert!(!canonicalize(b"/admin/users", &mut out).encoded_separator);
    }

    #[test]
    fn rules_ignore_case_exclusions_do_not() {
        let pattern = PathPattern::parse("/admin/**").unwrap();
        assert!(pattern.matches_ignoring_case(b"/Admin/users"));
        assert!(!pattern.matches(b"/Admin/users"));
    }

    #[test]
    fn patterns_match_segments() {
        let cases: [(&str, &str, bool); 16] = [
            ("/v1/health", "/v1/health", true),
            ("/v1/health", "/v1/health/", false),
            ("/v1/health", "/v1/healthz", false),
            ("/v1/**", "/v1", true),
            ("/v1/**", "/v1/", true),
            ("/v1/**", "/v1/a/b/c", true),
            ("/v1/**", "/v10", false),
            ("/users/{id}", "/users/7", true),
            ("/users/{id}", "/users/", false),
            ("/users/{id}", "/users/7/x", false),
            ("/users/{id}/login", "/users/7/login", true),
            ("/", "/", true),
            ("/", "/a", false),
            ("/**", "/", true),
            ("/**", "/anything/at/all", true),
            ("/v1", "/", false),
        ];
        for (pattern, path, expected) in cases {
            let compiled = PathPattern::parse(pattern).unwrap();
            assert_eq!(
                compiled.matches(path.as_bytes()),
                expected,
                "{pattern} vs {path}"
            );
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(PathPattern::parse("v1"), Err(PathPatternError::NotAbsolute));
        assert_eq!(
            PathPattern::parse("/**/x"),
            Err(PathPatternError::InnerDoubleStar)
        );
        assert_eq!(
            PathPattern::parse("/a{id}"),
            Err(PathPatternError::BadTemplate)
        );
        assert_eq!(
            PathPattern::parse("/a/*"),
            Err(PathPatternError::BadTemplate)
        );
        assert_eq!(
            PathPattern::parse("/a/../b"),
            Err(PathPatternError::NotCanonical)
        );
        assert_eq!(
            PathPattern::parse("/a?b"),
            Err(PathPatternError::NotCanonical)
        );
    }
}
