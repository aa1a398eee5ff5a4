//! `http::request::HeadScan`, the incremental head search, fed the bytes of
//! a request as they might arrive (the first byte says how many reads, the
//! next bytes how long each is), checked against `parse_head` on the same
//! bytes: the scan finds a complete head exactly where the one-shot parser
//! does, and never lets a buffer past a byte limit the parser refuses.
#![no_main]

use jwtgate::internals::{
    HeadScan, HeadStatus, HeaderSlots, Limits, ProtocolError, leading_empty_lines, parse_head,
};
use libfuzzer_sys::fuzz_target;

const SMALL: Limits = Limits {
    max_request_line: 64,
    max_header_bytes: 256,
};

/// Whether `parse_head` refused `buf` for passing a byte limit. Too many
/// header fields is `HeadersTooLarge` too, but an incomplete head with too
/// many fields is refused by the scan only once its end arrives (or the byte
/// limit passes): that is its contract, and the byte limit still bounds it.
fn byte_limit_passed(
    buf: &[u8],
    limits: Limits,
    parsed: &Result<HeadStatus<'_, '_>, ProtocolError>,
) -> bool {
    match parsed {
        Err(ProtocolError::RequestLineTooLong) => true,
        Err(ProtocolError::HeadersTooLarge) => buf.len() > limits.max_header_bytes,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&reads, rest)) = data.split_first() else {
        return;
    };
    let reads = usize::from(reads % 16) + 1;
    let (lengths, request) = rest.split_at(reads.min(rest.len()));
    // As the connection does: empty lines before a request are skipped first.
    let request = &request[leading_empty_lines(request)..];
    for limits in [Limits::default(), SMALL] {
        let mut scan = HeadScan::default();
        let mut end = 0;
        let ends = lengths
            .iter()
            .map(|&length| {
                end = (end + usize::from(length) + 1).min(request.len());
                end
            })
            .chain([request.len()]);
        for end in ends {
            let buf = &request[..end];
            if buf.is_empty() {
                continue;
            }
            let mut slots = HeaderSlots::default();
            let scanned = scan.poll(buf, &mut slots, limits);
            let mut slots = HeaderSlots::default();
            let parsed = parse_head(buf, &mut slots, limits);
            match (&scanned, &parsed) {
                (Ok(HeadStatus::Complete(a)), Ok(HeadStatus::Complete(b))) => {
                    assert_eq!(
                        (a.head_len, a.method, a.path),
                        (b.head_len, b.method, b.path)
                    );
                    break;
                }
                (Ok(HeadStatus::Complete(_)), _) | (_, Ok(HeadStatus::Complete(_))) => {
                    panic!("at {end} bytes: scan {scanned:?}, parse {parsed:?}");
                }
                (Err(error), Ok(HeadStatus::Partial)) => {
                    panic!("at {end} bytes: scan refused ({error:?}) what parse_head waits on");
                }
                (Err(_), _) => break,
                (Ok(HeadStatus::Partial), _) => {
                    assert!(
                        !byte_limit_passed(buf, limits, &parsed),
                        "at {end} bytes: scan partial, parse {parsed:?}"
                    );
                }
            }
        }
    }
});
