//! A revocation file (`revocation::file::parse`, what `serve` reads from a
//! file and, line by line, from Redis): JSON lines when the first byte is
//! even, TOML when it is odd; the rest is the text. What reads must write
//! back as itself: every revocation read is written in both forms (as
//! `jwtgate revoke` appends it, and as Redis values and `--list` show it)
//! and read again to the same revocation. The text is also read as an
//! instant (`revoke --before`, TOML date-times).
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
                for (format, name) in [
                    (file::Format::JsonLines, "revoked.jsonl"),
                    (file::Format::Toml, "revoked.toml"),
                ] {
                    let entry = file::entry_text(format, &revocation);
                    let back = file::parse(Path::new(name), &entry);
                    assert!(
                        matches!(back.as_deref(), Ok([read]) if *read == revocation),
                        "{entry} does not read back: {back:?}"
                    );
                }
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    let _ = jwtgate::tools::revoke::instant(text);
});
