#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The canonical reading of a request path, against a reference written the
//! slow and obvious way: decode everything into a list of segments first,
//! then refuse, strip, check and resolve one step at a time with strings and
//! vectors. The library does the same in one pass over a reused buffer; any
//! difference between the two, on any path, is a bug in one of them.

use jwtgate::internals::{Params, PathError, canonicalize};
use proptest::prelude::*;

/// The reference: the canonical path and whether it differs from the path as
/// sent, or the error. Only origin-form targets (`/...`) are generated.
fn reference(target: &[u8], params: Params) -> Result<(Vec<u8>, bool), PathError> {
    if target.contains(&b'#') {
        return Err(PathError::Fragment);
    }
    let path = match target.iter().position(|&b| b == b'?') {
        Some(q) => &target[..q],
        None => target,
    };
    assert_eq!(
        path.first(),
        Some(&b'/'),
        "the generator makes origin-form paths"
    );
    let hex = |b: u8| (b as char).to_digit(16);
    // Step 1: every byte decoded, with whether it was escaped.
    let mut decoded: Vec<(u8, bool)> = Vec::new();
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(PathError::BadEscape);
            };
            let value = (h * 16 + l) as u8;
            if value == b'/' || value == b'\\' {
                return Err(PathError::EncodedSeparator);
            }
            if value == b'?' || value == b'#' {
                return Err(PathError::EncodedDelimiter);
            }
            decoded.push((value, true));
            i += 3;
        } else {
            if b == b'\\' {
                return Err(PathError::Backslash);
            }
            decoded.push((b, false));
            i += 1;
        }
        // The first error in the path is the one reported.
        if decoded.last().is_some_and(|&(b, _)| b < 0x20 || b == 0x7f) {
            return Err(PathError::ControlCharacter);
        }
    }
    let plain = "-._~!$&'()*+,;=:@";
    let mut rewritten = decoded
        .iter()
        .any(|&(b, escaped)| escaped && (b.is_ascii_alphanumeric() || plain.contains(b as char)));
    rewritten |= decoded.iter().any(|&(b, _)| b == b';');
    // Step 2: segments on raw slashes (an escaped slash was refused above).
    let mut segments: Vec<Vec<u8>> = vec![Vec::new()];
    for &(b, _) in &decoded[1..] {
        if b == b'/' {
            segments.push(Vec::new());
        } else {
            segments.last_mut().unwrap().push(b);
        }
    }
    // Step 3: parameters.
    if params == Params::Strip {
        for segment in &mut segments {
            if let Some(semicolon) = segment.iter().position(|&b| b == b';') {
                segment.truncate(semicolon);
            }
        }
    }
    // Step 4: what the kept bytes say as a whole: a '%' that decodes again,
    // UTF-8, then characters that fold into ASCII.
    let kept = segments.join(&b'/');
    for (at, &b) in kept.iter().enumerate() {
        let hex_at = |i: usize| kept.get(i).copied().and_then(hex).is_some();
        if b == b'%' && hex_at(at + 1) && hex_at(at + 2) {
            return Err(PathError::DoubleEncoded);
        }
    }
    let Ok(text) = String::from_utf8(kept.clone()) else {
        return Err(PathError::NotUtf8);
    };
    let folds = |c: char| {
        ('\u{FF01}'..='\u{FF5E}').contains(&c) || "\u{2024}\u{2025}\u{2044}\u{2215}\u{2216}\u{29F5}\u{29F8}\u{FE52}\u{FE54}\u{FE56}\u{FE5F}\u{FE68}\u{FE6A}ıſª".contains(c)
    };
    if text.chars().any(folds) {
        return Err(PathError::Lookalike);
    }
    // Step 5: dot-segments and empty segments, with a stack.
    let mut stack: Vec<&[u8]> = Vec::new();
    let last = segments.len() - 1;
    for (index, segment) in segments.iter().enumerate() {
        let is_last = index == last;
        match segment.as_slice() {
            b"" if !is_last => {}
            b"." => {
                if is_last {
                    stack.push(b"");
                }
            }
            b".." => {
                stack.pop();
                if is_last {
                    stack.push(b"");
                }
            }
            other => stack.push(other),
        }
    }
    let mut canonical = b"/".to_vec();
    canonical.extend(stack.join(&b'/'));
    let mut before = b"/".to_vec();
    before.extend(&kept);
    rewritten |= canonical != before;
    Ok((canonical, rewritten))
}

/// Pieces that exercise every rule of the reading.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "/",
        "/",
        "a",
        "b",
        "admin",
        ".",
        "..",
        ";",
        ";x=1",
        "%2e",
        "%2E",
        "%2f",
        "%5C",
        "%3b",
        "%3F",
        "%23",
        "%25",
        "%2541",
        "%41",
        "%61",
        "%3A",
        "%20",
        "%00",
        "%0a",
        "%7f",
        "%C3%A9",
        "%C3",
        "%A9",
        "%FF",
        "é",
        "\\",
        "#",
        "%EF%BC%8F",
        "／",
        "ａ",
        "%E2%80%A5",
        "ı",
        "ſ",
        "%C2%AA",
        "ß",
        "%32",
        "%65",
        "4",
        "f",
        "?",
        "?x=1/../",
        "%",
        "%z",
        "%4",
        "~",
        ":",
        "@",
        "\t",
    ])
}

fn target() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(piece(), 0..14).prop_map(|pieces| {
        let mut target = b"/".to_vec();
        for piece in pieces {
            target.extend_from_slice(piece.as_bytes());
        }
        target
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn the_reading_equals_the_reference(target in target()) {
        for params in [Params::Strip, Params::Literal] {
            let mut out = Vec::new();
            let got = canonicalize(&target, params, &mut out).map(|c| (out.clone(), c.rewritten));
            prop_assert_eq!(
                &got,
                &reference(&target, params),
                "{:?} read with {:?}",
                String::from_utf8_lossy(&target),
                params
            );
            // A canonical path reads as itself, unless it holds a '%' or ';'
            // that was decoded from an escape (read again, they mean more).
            if let Ok((canonical, _)) = got.as_ref().map(|(c, r)| (c.clone(), *r))
                && !canonical.contains(&b'%')
                && !canonical.contains(&b';')
            {
                let mut again = Vec::new();
                let second = canonicalize(&canonical, Params::Literal, &mut again);
                prop_assert_eq!(
                    second.map(|c| (again.clone(), c.rewritten)),
                    Ok((canonical.clone(), false)),
                    "{:?}",
                    String::from_utf8_lossy(&canonical)
                );
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(target in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut out = Vec::new();
        for params in [Params::Strip, Params::Literal] {
            if canonicalize(&target, params, &mut out).is_ok() {
                prop_assert!(out.starts_with(b"/"));
                prop_assert!(std::str::from_utf8(&out).is_ok());
            }
        }
    }
}
