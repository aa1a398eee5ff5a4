//! `policy::path::canonicalize` over arbitrary request targets, with each way
//! of reading `;` parameters. The invariants hold for any version of the
//! function: no panic; a canonical path starts with '/', holds no empty, "."
//! or ".." segment, no '?' and no '#'; and canonicalizing it again gives it
//! back (unless it holds '%': a decoded "%25" is a percent sign, which reads
//! as an escape the second time).
#![no_main]

use jwtgate::internals::{Params, canonicalize};
use libfuzzer_sys::fuzz_target;

/// The one call to adapt when the signature changes: `false` where the target is refused.
fn canonical(target: &[u8], params: Params, out: &mut Vec<u8>) -> bool {
    canonicalize(target, params, out).is_ok()
}

/// No empty (but a trailing one: "/a/" is kept), "." or ".." segment.
fn segments_ok(path: &[u8]) -> bool {
    let inner = path.strip_suffix(b"/").unwrap_or(path);
    inner.is_empty()
        || inner
            .split(|&b| b == b'/')
            .skip(1)
            .all(|s| !s.is_empty() && s != b"." && s != b"..")
}

fuzz_target!(|data: &[u8]| {
    for params in [Params::Strip, Params::Literal] {
        let mut out = Vec::new();
        if !canonical(data, params, &mut out) {
            continue;
        }
        assert_eq!(out.first(), Some(&b'/'), "{out:?}");
        assert!(segments_ok(&out), "{out:?}");
        assert!(!out.contains(&b'?') && !out.contains(&b'#'), "{out:?}");
        if out.contains(&b'%') {
            continue;
        }
        let mut again = Vec::new();
        assert!(canonical(&out, params, &mut again), "{out:?} refused");
        assert_eq!(again, out, "not idempotent");
    }
});
