//! Inputs found by the fuzz targets in `fuzz/`, pinned so that what was fixed
//! stays fixed. Each test names its target and says what went wrong; the
//! bytes are the minimized reproducer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use jwtgate::internals::{HeadScan, HeadStatus, HeaderSlots, Limits, ProtocolError, parse_head};
use jwtgate::internals::{Params, canonicalize};

/// `canonical_path`, against `canonicalize` as of b607d44: a '%' that began
/// no escape was kept, and the escape after it decoded, so `/%%32E` read as
/// `/%2E`, which is `/.`, that is `/`, when read once more (by the
/// canonicalizer itself, or a second decoding behind the proxy). One request
/// target had two canonical paths. A stray '%' is now refused, whatever
/// follows it.
#[test]
fn canonical_path_stray_percent_before_an_escape() {
    for target in [&b"/%%32E"[..], b"/%%341", b"/v1/%%32E%%32E/admin"] {
        for params in [Params::Strip, Params::Literal] {
            let mut out = Vec::new();
            assert!(
                canonicalize(target, params, &mut out).is_err(),
                "{:?} read as {:?}",
                String::from_utf8_lossy(target),
                String::from_utf8_lossy(&out)
            );
        }
    }
}

/// `head_scan`: a head that is still incomplete but already holds more than
/// `MAX_HEADERS` fields is refused by `parse_head` at once (431), while
/// `HeadScan` answered `Partial` until the blank line arrived or the byte limit
/// passed (it reruns httparse only when an end may be in). It now counts line
/// ends as it searches, and refuses the head as soon as `parse_head` would.
#[test]
fn head_scan_refuses_too_many_fields_before_the_head_ends() {
    let mut request = b"GET / HTTP/1.1\n".to_vec();
    for _ in 0..101 {
        request.extend_from_slice(b"s:\n");
    }
    let limits = Limits::default();
    let mut slots = HeaderSlots::default();
    let parsed = parse_head(&request, &mut slots, limits);
    assert!(
        matches!(parsed, Err(ProtocolError::HeadersTooLarge)),
        "{parsed:?}"
    );
    // Fed whole after a first look, and fed a byte at a time.
    for step in [request.len(), 1] {
        let mut scan = HeadScan::default();
        let mut slots = HeaderSlots::default();
        let first = scan.poll(&request[..16], &mut slots, limits);
        assert!(matches!(first, Ok(HeadStatus::Partial)), "{first:?}");
        let mut end = 16;
        let refused = loop {
            end = (end + step).min(request.len());
            let mut slots = HeaderSlots::default();
            match scan.poll(&request[..end], &mut slots, limits) {
                Ok(HeadStatus::Partial) if end < request.len() => {}
                Ok(HeadStatus::Partial) => break Ok(()),
                Ok(HeadStatus::Complete(_)) => break Err(None),
                Err(error) => break Err(Some(error)),
            }
        };
        assert_eq!(
            refused,
            Err(Some(ProtocolError::HeadersTooLarge)),
            "step {step}"
        );
    }
}
