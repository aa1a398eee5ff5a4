//! Spellings of a request path that a proxy, jwtgate and an origin may read
//! differently, by class, for the dodge batteries: used by
//! `tests/integration/dodges.rs` (against the binary over loopback) and
//! `tests/integration/e2e_origin.rs` (through a real nginx in front of a real
//! origin), so both send exactly the same bytes.
//!
//! Every spelling generated for a base path is one the canonical reading
//! (README, "Routing") must either route to the base path's rule or refuse
//! with 400: percent escapes of unreserved and ordinary characters decoded,
//! dot-segments resolved, `//` merged, ASCII case ignored, one trailing
//! slash ignored, `;` parameters read both ways; raw `#`, raw `\`, `%2F`,
//! `%5C`, `%3F`, `%23`, `%25XX`, malformed escapes, controls and invalid
//! UTF-8 refused. So a spelling answered 200 without a token is a dodge.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

/// One spelling of a request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spelling {
    /// The class it belongs to (`raw #`, `..;`, ...), for failure messages.
    pub class: &'static str,
    /// The target bytes exactly as sent (path, maybe a query).
    pub target: Vec<u8>,
}

impl Spelling {
    /// The target with non-printable bytes escaped, for messages.
    pub fn shown(&self) -> String {
        self.target.escape_ascii().to_string()
    }
}

/// The host every absolute-form spelling names.
pub const HOST: &str = "api.example.com";

/// `%XX` of `byte`, upper-case hex.
fn escape(byte: u8) -> String {
    format!("%{byte:02X}")
}

/// Every dodge spelling of `base` (`/a` or `/a/b`, plain ASCII, no `%`), by class.
pub fn spellings(base: &str) -> Vec<Spelling> {
    assert!(
        base.starts_with('/') && base.len() > 1 && !base.contains(['%', '#', '\\', ';']),
        "test bug: base {base:?}"
    );
    // `pre` is everything before the last segment (empty for `/a`), `last`
    // the last segment, `first` the first segment and `rest` what follows it.
    let cut = base.rfind('/').unwrap();
    let (pre, last) = (&base[..cut], &base[cut + 1..]);
    let body = &base[1..];
    let (first, rest) = match body.find('/') {
        Some(slash) => (&body[..slash], &body[slash..]),
        None => (body, ""),
    };
    let mut out: Vec<Spelling> = Vec::new();
    let mut add = |class: &'static str, target: Vec<u8>| {
        let spelling = Spelling { class, target };
        if !out.contains(&spelling) {
            out.push(spelling);
        }
    };
    let s = |text: String| text.into_bytes();
    // `base` with `x` appended.
    let end = |x: &str| s(format!("{base}{x}"));
    // `x` at the end of the segment before the last one (none for `/a`).
    let mid = |x: &str| (!pre.is_empty()).then(|| s(format!("{pre}{x}/{last}")));
    // The slash before the last segment replaced by `x` (none for `/a`).
    let join = |x: &str| (!pre.is_empty()).then(|| s(format!("{pre}{x}{last}")));
    // `base` with raw bytes `x` appended.
    let end_raw = |x: &[u8]| {
        let mut target = base.as_bytes().to_vec();
        target.extend_from_slice(x);
        target
    };
    let first_byte = first.as_bytes()[0];

    // A raw `#`: a fragment to the origin, a path byte to a careless reader.
    let class = "raw #";
    add(class, end("#"));
    add(class, end("#frag"));
    add(class, end("/#"));
    add(class, s(format!("/#{base}")));
    add(class, s(format!("/x#/../..{base}")));
    add(class, s(format!("/{first}#{rest}")));
    if let Some(t) = mid("#x") {
        add(class, t);
    }

    // Escapes of reserved characters: separators, `?` and `#` (400), and
    // ordinary characters (decoded, then matched).
    let class = "%-encoded reserved";
    for x in ["%2F", "%2f", "%5C", "%5c"] {
        if let Some(t) = join(x) {
            add(class, t);
        }
        add(class, end(x));
    }
    add(class, end("%2F.."));
    for x in ["%3F", "%3f", "%3Fx=1", "%23", "%23x"] {
        add(class, end(x));
        if let Some(t) = mid(x) {
            add(class, t);
        }
    }
    add(class, s(format!("/{first}%3F{rest}")));
    add(class, s(format!("/{first}%23{rest}")));
    // Ordinary characters escaped: decoded, so still the protected path.
    add(
        class,
        s(format!("/{}{}{rest}", escape(first_byte), &first[1..])),
    );
    add(
        class,
        s(format!(
            "/{}{}{rest}",
            escape(first_byte).to_ascii_lowercase(),
            &first[1..]
        )),
    );
    let all: String = first.bytes().map(escape).collect();
    add(class, s(format!("/{all}{rest}")));
    let last_byte = *last.as_bytes().last().unwrap();
    add(
        class,
        s(format!(
            "{}{}",
            &base[..base.len() - 1],
            escape(last_byte).to_ascii_lowercase()
        )),
    );
    for (i, byte) in base.bytes().enumerate() {
        // `:` (as in `users:batchDelete`) and other sub-delims, escaped.
        if matches!(byte, b':' | b'@' | b'!' | b'$' | b'&' | b'+' | b',' | b'=') {
            add(
                class,
                s(format!("{}{}{}", &base[..i], escape(byte), &base[i + 1..])),
            );
            add(
                class,
                s(format!(
                    "{}{}{}",
                    &base[..i],
                    escape(byte).to_ascii_lowercase(),
                    &base[i + 1..]
                )),
            );
        }
    }

    // Double encoding: `%25XX` (400), which a second decoding would turn into
    // the protected path, an escaped separator or a dot-segment.
    let class = "double encoding";
    add(
        class,
        s(format!("/%25{:02X}{}{rest}", first_byte, &first[1..])),
    );
    add(class, end("%252F"));
    add(class, end("%2500"));
    add(class, end("%255C"));
    if let Some(t) = join("%252F") {
        add(class, t);
    }
    add(class, s(format!("/x/%252e%252e{base}")));

    // Malformed escapes (400).
    let class = "malformed escape";
    for x in ["%", "%zz", "%4", "%G1", "%%", "%2"] {
        add(class, end(x));
        if let Some(t) = mid(x) {
            add(class, t);
        }
    }
    add(class, s(format!("/%zz{base}")));
    add(class, s(format!("/{first}%{rest}")));

    // Non-ASCII: escaped or raw bytes that are not UTF-8 (overlong `.` and
    // `/`, a lone continuation byte, a surrogate): 400 once decoded.
    let class = "non-ASCII";
    add(class, s(format!("/x/%C0%AE%C0%AE{base}")));
    add(class, s(format!("/x/%c0%ae%c0%ae{base}")));
    add(class, s(format!("/x/%E0%80%AE%E0%80%AE{base}")));
    if let Some(t) = join("%C0%AF") {
        add(class, t);
    }
    if let Some(t) = join("%E0%80%AF") {
        add(class, t);
    }
    for x in [
        "%FF",
        "%80",
        "%C0%80",
        "%ED%A0%80",
        "%C0",
        "%F8%88%80%80%80",
    ] {
        add(class, end(x));
    }
    add(class, end_raw(b"\xFF"));
    add(class, end_raw(b"\xC0\xAF"));
    let mut raw = b"/x/\xC0\xAE\xC0\xAE".to_vec();
    raw.extend_from_slice(base.as_bytes());
    add(class, raw);

    // Escaped controls (400): a C origin stops at `%00`; `%0a` splits log
    // lines and, decoded by a careless proxy, headers.
    let class = "escaped control";
    for x in [
        "%00", "%00.json", "%0a", "%0A", "%0d%0a", "%09", "%7f", "%7F", "%1F", "%01",
    ] {
        add(class, end(x));
        if let Some(t) = mid(x) {
            add(class, t);
        }
    }
    add(class, s(format!("/x/..%00{base}")));
    add(class, s(format!("/{first}%00{rest}")));

    // Raw controls (400, or refused by the HTTP parser).
    let class = "raw control";
    add(class, end_raw(b"\t"));
    add(class, end_raw(b"\x01"));
    add(class, end_raw(b"\x7f"));
    add(class, end_raw(b"\x00"));
    add(class, s(format!("/{first}\t{rest}")));

    // A trailing slash (rules ignore one), and spellings that end in one.
    let class = "trailing slash";
    for x in ["/", "//", "/.", "/./", "/%2e", "/%2E/", "/x/.."] {
        add(class, end(x));
    }

    // A raw backslash (400): a separator to Windows origins and some proxies.
    let class = "raw backslash";
    if let Some(t) = join("\\") {
        add(class, t);
    }
    add(class, s(format!("\\{body}")));
    add(class, s(base.replace('/', "\\")));
    add(class, end("\\"));
    add(class, s(format!("/x\\..{base}")));
    add(class, s(format!("/x/..\\{body}")));
    add(class, s(format!("/{first}\\{rest}")));

    // Dot-segments (resolved before matching).
    let class = "dot-segment";
    add(class, s(format!("/x/..{base}")));
    add(class, s(format!("/.{base}")));
    add(class, s(format!("/..{base}")));
    add(class, s(format!("/../..{base}")));
    add(class, s(format!("/x/y/../..{base}")));
    add(class, s(format!("/x/./..{base}")));
    add(class, s(format!("/{first}/..{base}")));
    if !pre.is_empty() {
        add(class, s(format!("{pre}/./{last}")));
        add(class, s(format!("{pre}/x/../{last}")));
        add(class, s(format!("{pre}/../{body}")));
    }

    // Tomcat/Spring `..;`: a dot-segment to them, a plain name to others.
    let class = "..;";
    add(class, s(format!("/x/..;{base}")));
    add(class, s(format!("/x/y/..;/..;{base}")));
    add(class, s(format!("/..;{base}")));
    add(class, s(format!("/x/..;x{base}")));
    add(class, s(format!("/x/..;/x/..;{base}")));
    if !pre.is_empty() {
        add(class, s(format!("{pre}/x/..;/{last}")));
    }

    // Path parameters: stripped by Java servlet containers, literal elsewhere.
    let class = ";params";
    for x in [";", ";x", ";jsessionid=1", ";a=b;c=d"] {
        add(class, end(x));
        if let Some(t) = mid(x) {
            add(class, t);
        }
    }
    add(class, s(format!("/{first};x{rest}")));
    // An escaped `;`: decoded before matching, it is a parameter like a raw one.
    for x in ["%3B", "%3bx", "%3Bjsessionid=1"] {
        add(class, end(x));
        if let Some(t) = mid(x) {
            add(class, t);
        }
    }
    add(class, s(format!("/x;/..{base}")));
    add(class, s(format!("/;x{base}")));

    // Escaped dots (decoded, then resolved).
    let class = "%2e%2e";
    for dots in ["%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2E."] {
        add(class, s(format!("/x/{dots}{base}")));
    }
    add(class, s(format!("/%2e{base}")));
    add(class, s(format!("/x/%2e/%2e%2e{base}")));
    if !pre.is_empty() {
        add(class, s(format!("{pre}/%2e/{last}")));
        add(class, s(format!("{pre}/x/%2e%2e/{last}")));
    }

    // ASCII case (rules ignore it).
    let class = "case";
    add(class, s(base.to_ascii_uppercase()));
    add(
        class,
        s(format!(
            "/{}{}{rest}",
            first[..1].to_ascii_uppercase(),
            &first[1..]
        )),
    );
    add(class, s(format!("/{}{rest}", first.to_ascii_uppercase())));
    if !pre.is_empty() {
        add(class, s(format!("{pre}/{}", last.to_ascii_uppercase())));
    }

    // Repeated slashes (merged).
    let class = "//";
    add(class, s(format!("/{base}")));
    add(class, s(format!("///{body}")));
    if !pre.is_empty() {
        add(class, s(format!("{pre}//{last}")));
        add(class, s(format!("{pre}///{last}")));
    }
    add(class, s(format!("/{}", base.replace('/', "//"))));

    // Absolute-form targets: the path is what routes.
    let class = "absolute-form";
    add(class, s(format!("http://{HOST}{base}")));
    add(class, s(format!("HTTP://{HOST}{base}")));
    add(class, s(format!("hTTpS://{HOST}{base}")));
    add(class, s(format!("https://{HOST}:443{base}")));
    add(class, s(format!("http://{HOST}:8080{base}?x=1")));
    add(class, s(format!("http://user@{HOST}{base}")));
    add(class, s(format!("http://{HOST}/x/..{base}")));
    add(class, s(format!("http://{HOST}//{body}")));
    out
}

/// Spellings that try to leave `/v1/**` through one of its exclusions
/// (`GET /v1/health`, `/v1/public/**`) while an origin reads a checked path.
/// None may be answered as excluded: exclusions match only the exact spelling.
pub fn exclusion_escapes() -> Vec<Spelling> {
    let list: &[(&'static str, &str)] = &[
        ("trailing slash", "/v1/health/"),
        ("trailing slash", "/v1/health//"),
        ("trailing slash", "/v1/health/."),
        ("//", "/v1//health"),
        ("//", "//v1/health"),
        ("dot-segment", "/v1/./health"),
        ("dot-segment", "/v1/x/../health"),
        ("dot-segment", "/v1/public/../orders"),
        ("dot-segment", "/v1/public/x/../../orders"),
        ("dot-segment", "/v1/public/./../orders"),
        ("%-encoded reserved", "/v1/%68ealth"),
        ("%-encoded reserved", "/v1/healt%68"),
        ("%-encoded reserved", "/v1%2Fhealth"),
        ("%-encoded reserved", "/v1/public%2F..%2Forders"),
        ("%-encoded reserved", "/v1/public/..%2Forders"),
        ("%-encoded reserved", "/v1/public/..%5Corders"),
        ("%-encoded reserved", "/v1/health%3F"),
        ("%-encoded reserved", "/v1/health%23"),
        ("%-encoded reserved", "/v1/public%3F/../orders"),
        ("%2e%2e", "/v1/public/%2e%2e/orders"),
        ("%2e%2e", "/v1/public/%2E%2E/orders"),
        ("%2e%2e", "/v1/public/.%2e/orders"),
        ("%2e%2e", "/v1/public/%2e%2e%2Forders"),
        ("%2e%2e", "/v1/%2e/health"),
        ("double encoding", "/v1/public/%252e%252e/orders"),
        ("double encoding", "/v1/public/..%252Forders"),
        ("double encoding", "/v1/%2568ealth"),
        ("escaped control", "/v1/health%00"),
        ("escaped control", "/v1/public/..%00/orders"),
        ("escaped control", "/v1/health%0a"),
        ("escaped control", "/v1/health%09"),
        ("malformed escape", "/v1/health%"),
        ("malformed escape", "/v1/health%zz"),
        ("malformed escape", "/v1/public/..%/orders"),
        ("non-ASCII", "/v1/public/%C0%AE%C0%AE/orders"),
        ("non-ASCII", "/v1/public%C0%AF..%C0%AForders"),
        ("raw #", "/v1/health#"),
        ("raw #", "/v1/public/x#/../../orders"),
        ("raw #", "/v1/public#/../orders"),
        ("raw backslash", "/v1/public\\..\\orders"),
        ("raw backslash", "/v1/public/..\\orders"),
        ("raw backslash", "/v1\\health"),
        ("raw backslash", "/v1/health\\"),
        ("..;", "/v1/public/..;/orders"),
        ("..;", "/v1/public/x/..;/..;/orders"),
        ("..;", "/v1/health/..;/orders"),
        (";params", "/v1/health;x"),
        (";params", "/v1/health;"),
        (";params", "/v1;x/health"),
        (";params", "/v1/public;x/../orders"),
        (";params", "/v1/health;/../orders"),
        ("case", "/V1/HEALTH"),
        ("case", "/v1/Health"),
        ("case", "/V1/public/docs"),
        ("case", "/v1/PUBLIC/docs"),
        (
            "absolute-form",
            "http://api.example.com/v1/public/../orders",
        ),
    ];
    let mut out: Vec<Spelling> = list
        .iter()
        .map(|&(class, target)| Spelling {
            class,
            target: target.as_bytes().to_vec(),
        })
        .collect();
    // A raw control inside the path (at the very end of a header value it
    // would be optional whitespace, not part of the value).
    out.push(Spelling {
        class: "raw control",
        target: b"/v1/public/..\t/orders".to_vec(),
    });
    out.push(Spelling {
        class: "raw control",
        target: b"/v1/public/\t/../../orders".to_vec(),
    });
    out.push(Spelling {
        class: "non-ASCII",
        target: b"/v1/health\xFF".to_vec(),
    });
    out
}

/// Whether the contract refuses `target` with 400 whatever the rules: a raw
/// `#` anywhere; in the path (before the first `?`), a raw `\`, an escaped
/// `/`, `\`, `?` or `#`, `%25` before two hex digits (double encoding), a
/// malformed escape, or, once decoded, a control character or bytes that are
/// not UTF-8. A reference for the refusals only (not for routing).
pub fn must_refuse(target: &[u8]) -> bool {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte)
            .to_digit(16)
            .map(|d| u8::try_from(d).unwrap())
    }
    if target.contains(&b'#') {
        return true;
    }
    let end = target
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(target.len());
    let path = &target[..end];
    if path.contains(&b'\\') {
        return true;
    }
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] != b'%' {
            decoded.push(path[i]);
            i += 1;
            continue;
        }
        let (Some(high), Some(low)) = (
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        ) else {
            return true;
        };
        let byte = high << 4 | low;
        if matches!(byte, b'/' | b'\\' | b'?' | b'#') {
            return true;
        }
        if byte == b'%'
            && path.get(i + 3).copied().and_then(hex).is_some()
            && path.get(i + 4).copied().and_then(hex).is_some()
        {
            return true;
        }
        decoded.push(byte);
        i += 3;
    }
    decoded.iter().any(|&b| b < 0x20 || b == 0x7f) || std::str::from_utf8(&decoded).is_err()
}
