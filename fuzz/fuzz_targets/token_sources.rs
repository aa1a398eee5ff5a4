//! A request head from arbitrary bytes, then `TokenSource::find` for a header
//! with a scheme (Bearer), a raw header, a cookie and a query parameter (the
//! query taken from the request target after '?'). A token found is never
//! empty and is borrowed from the request, never copied.
#![no_main]

use std::sync::LazyLock;

use jwtgate::internals::{Found, HeadStatus, HeaderSlots, Limits, TokenSource, parse_head};
use libfuzzer_sys::fuzz_target;

static SOURCES: LazyLock<[TokenSource; 4]> = LazyLock::new(|| {
    [
        TokenSource::authorization_bearer(),
        TokenSource::Header {
            name: "x-token".into(),
            scheme: None,
        },
        TokenSource::Cookie {
            name: "session".into(),
        },
        TokenSource::Query {
            name: "access_token".into(),
        },
    ]
});

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (start, end) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    inner.as_ptr() as usize >= start && inner.as_ptr() as usize + inner.len() <= end
}

fuzz_target!(|data: &[u8]| {
    let mut slots = HeaderSlots::default();
    let Ok(HeadStatus::Complete(head)) = parse_head(data, &mut slots, Limits::default()) else {
        return;
    };
    let query = head.path.split_once('?').map_or("", |(_, query)| query);
    for source in SOURCES.iter() {
        if let Found::Token(token) = source.find(&head, query.as_bytes()) {
            assert!(!token.is_empty());
            assert!(
                within(token, data),
                "the token is not a slice of the request"
            );
            if let TokenSource::Header { .. } = source {
                assert!(
                    !token.contains(&b' ') && !token.contains(&b'\t'),
                    "{token:?}"
                );
            }
        }
    }
});
