//! `config::parse` (the loader without the file read) over arbitrary text.
//!
//! Key files named by the text are read relative to the configuration's
//! folder, here `fuzz/keys/`, which holds a few public key files so that
//! configurations get past their keys to the rules. So that no input reads
//! anything else (`/dev/zero` would be an endless read, `/dev/stdin` a
//! hang), a document whose file fields (`jwks_file`, `public_key_file`,
//! `ca_file`) name anything but a plain file name is skipped. A text that is
//! not TOML is still parsed: the loader refuses it before any file access.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

const FILE_FIELDS: [&str; 3] = ["jwks_file", "public_key_file", "ca_file"];

/// Whether every file field in `value` names a plain file inside the folder.
fn files_confined(value: &toml::Value) -> bool {
    match value {
        toml::Value::Table(table) => table.iter().all(|(key, value)| {
            let plain = |name: &str| {
                !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
            };
            let ok = !FILE_FIELDS.contains(&key.as_str()) || value.as_str().is_some_and(plain);
            ok && files_confined(value)
        }),
        toml::Value::Array(values) => values.iter().all(files_confined),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(document) = text.parse::<toml::Table>()
        && !files_confined(&toml::Value::Table(document))
    {
        return;
    }
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/jwtgate.toml"));
    match jwtgate::config::parse(text, path) {
        Ok(loaded) => {
            let _ = (
                loaded.policy.rules.len(),
                loaded.key_files.len(),
                loaded.warnings.len(),
            );
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
