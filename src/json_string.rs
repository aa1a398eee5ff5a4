//! JSON string literals for the JSON the service writes: metrics labels and
//! `/stats`, batch output lines, and the headers and claims `jwtgate mint` signs.
//!
//! The engine only reads JSON (strictly); writing is the service's, and all of
//! it quotes text through [`quote_into`] so that one escaping rule holds.

/// Appends `s` as a JSON string literal, escaping quotes, backslashes and
/// control characters (for text that did not come from a validated document).
pub(crate) fn quote_into(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = std::io::Write::write_fmt(out, format_args!("\\u{:04x}", u32::from(c)));
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_json_requires_and_parses_back() {
        let original = "tab\there \u{1} \"q\" \\ é\n";
        let mut quoted = Vec::new();
        quote_into(&mut quoted, original);
        assert_eq!(
            String::from_utf8_lossy(&quoted),
            "\"tab\\there \\u0001 \\\"q\\\" \\\\ é\\n\""
        );
        let mut tape = jwtgate_engine::internals::json::Tape::new();
        let back = tape
            .parse(&quoted, 1)
            .ok()
            .and_then(|v| v.as_str())
            .map(|s| s.to_string());
        assert_eq!(back.as_deref(), Some(original));
    }
}
