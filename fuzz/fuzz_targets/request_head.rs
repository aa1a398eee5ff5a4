//! `http::request::parse_head` over arbitrary bytes, as the connection calls
//! it (leading empty lines skipped first), with the default limits and with
//! small ones; a complete head is then read through the header lookups and
//! every forwarded style, and the original request's host and method
//! overrides are read as routing reads them.
#![no_main]

use jwtgate::internals::{
    ForwardedStyle, HeadStatus, HeaderSlots, Limits, OriginalRequest, host, leading_empty_lines,
    method, parse_head,
};
use libfuzzer_sys::fuzz_target;

const SMALL: Limits = Limits {
    max_request_line: 64,
    max_header_bytes: 256,
};

const STYLES: [ForwardedStyle<'static>; 5] = [
    ForwardedStyle::XForwarded,
    ForwardedStyle::XOriginal,
    ForwardedStyle::XOriginalUrl,
    ForwardedStyle::RequestLine { path_prefix: "" },
    ForwardedStyle::RequestLine {
        path_prefix: "/authz",
    },
];

fuzz_target!(|data: &[u8]| {
    let buf = &data[leading_empty_lines(data)..];
    for limits in [Limits::default(), SMALL] {
        let mut slots = HeaderSlots::default();
        let Ok(HeadStatus::Complete(head)) = parse_head(buf, &mut slots, limits) else {
            continue;
        };
        assert!(head.head_len <= buf.len() && head.head_len <= limits.max_header_bytes);
        assert!(!head.method.is_empty() && !head.path.is_empty());
        // The head alone parses to the same head: nothing after it was read.
        let mut again = HeaderSlots::default();
        match parse_head(&buf[..head.head_len], &mut again, limits) {
            Ok(HeadStatus::Complete(same)) => assert_eq!(same.head_len, head.head_len),
            other => panic!("the head alone parsed as {other:?}"),
        }
        for name in [
            "host",
            "content-length",
            "authorization",
            "cookie",
            "x-original-uri",
            "x-original-url",
        ] {
            let values = head.header_values(name).count();
            assert_eq!(head.unique_header(name).is_some(), values == 1);
        }
        for style in STYLES {
            let Ok(original) = OriginalRequest::from_head(&head, style) else {
                continue;
            };
            if let ForwardedStyle::RequestLine { path_prefix } = style
                && !path_prefix.is_empty()
            {
                assert_eq!(original.path.first(), Some(&b'/'));
            }
            if style == ForwardedStyle::XOriginalUrl {
                // A URL's path starts at its `/`; its authority holds no
                // credentials.
                assert_eq!(original.path.first(), Some(&b'/'));
                assert!(!original.host.is_empty() && !original.host.contains(&b'@'));
            }
            if let Some(name) = host::host_name(original.host) {
                assert!(!name.is_empty() && name.len() <= original.host.len());
            }
            let query = original
                .path
                .iter()
                .position(|&b| b == b'?')
                .map_or(&b""[..], |q| &original.path[q + 1..]);
            if let Ok(Some(method)) = method::overriding_method(original.method, &head, query) {
                assert!(
                    !method.is_empty()
                        && method.iter().all(|&b| b.is_ascii_alphabetic() || b == b'-')
                );
            }
        }
    }
});
