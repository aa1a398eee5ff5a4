//! A revocation file: one revocation per line ([`super::record`]), blank
//! lines and `#` comments allowed, for a single instance and for tests.
//! `jwtgate revoke` appends a line (one `write` on a file opened for
//! appending, so concurrent revokes never interleave); the service reads the
//! whole file again when its modification time or size has changed and
//! stayed so for one poll, like the key files.
//!
//! Neighbours: [`super::record`] (the line format), [`super::manager`] (the
//! thread that polls it).

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jwtgate_engine::internals::json::Tape;

use super::record::{RecordError, Revocation};

/// Largest revocation file read, in bytes: a million entries take about
/// 100 MB of lines.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Why a revocation file could not be read.
#[derive(Debug)]
pub enum FileError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// A line is not a revocation.
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// Why.
        error: RecordError,
    },
    /// Larger than [`MAX_FILE_BYTES`].
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            FileError::Line { path, line, error } => {
                write!(f, "{}:{line}: {error}", path.display())
            }
            FileError::TooLarge { path, bytes } => write!(
                f,
                "{}: {bytes} bytes, more than the {MAX_FILE_BYTES} a revocation file may hold",
                path.display()
            ),
        }
    }
}

impl std::error::Error for FileError {}

/// Every revocation in `path`, in file order.
pub fn read(path: &Path) -> Result<Vec<Revocation>, FileError> {
    let io = |error| FileError::Io {
        path: path.to_owned(),
        error,
    };
    let bytes = std::fs::metadata(path).map_err(io)?.len();
    if bytes > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            bytes,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse(path, &text)
}

/// The revocations in `text`, the contents of `path`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Revocation>, FileError> {
    let mut tape = Tape::new();
    let mut revocations = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let revocation = Revocation::parse(line, &mut tape).map_err(|error| FileError::Line {
            path: path.to_owned(),
            line: index + 1,
            error,
        })?;
        revocations.push(revocation);
    }
    Ok(revocations)
}

/// Appends `revocation` to `path` (created if missing) as one line.
pub fn append(path: &Path, revocation: &Revocation) -> Result<(), FileError> {
    let io = |error| FileError::Io {
        path: path.to_owned(),
        error,
    };
    let mut line = revocation.to_line();
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped_and_a_bad_line_is_named() {
        let path = Path::new("revoked.jsonl");
        let good = "# revoked on 2026-12-06\n\n\
                    {\"jti\":\"a\",\"iss\":\"i\",\"expires\":10}\n  \n\
                    {\"kid\":\"k\",\"token_config\":\"users\",\"expires\":10}\n";
        assert_eq!(parse(path, good).unwrap().len(), 2);
        let bad = format!("{good}{{\"jti\":\"b\",\"iss\":\"i\"}}\n");
        let message = parse(path, &bad).unwrap_err().to_string();
        assert!(
            message.starts_with("revoked.jsonl:6: needs expires"),
            "{message}"
        );
    }
}
