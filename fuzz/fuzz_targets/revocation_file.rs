//! A revocation file (`revocation::file::parse`, what `serve` reads from a
//! file and, line by line, from Redis): JSON lines when the first byte is
//! even, TOML when it is odd; the rest is the text. What reads must write
//! back as itself: the line of every revocation read is read again to the
//! same revocation, as `jwtgate revoke --list` and Redis values rely on.
#![no_main]

use std::path::Path;

use jwtgate::revocation::file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&form, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let path = Path::new(if form % 2 == 0 {
        "revoked.jsonl"
    } else {
        "revoked.toml"
    });
    match file::parse(path, text) {
        Ok(revocations) => {
            for revocation in revocations {
                let line = revocation.to_line();
                let back = file::parse(Path::new("revoked.jsonl"), &line);
                assert!(
                    matches!(back.as_deref(), Ok([read]) if *read == revocation),
                    "{line} does not read back: {back:?}"
                );
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
