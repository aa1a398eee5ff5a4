//! A revocation file, for a single instance and for tests, in one of two
//! forms chosen by its name:
//!
//! - JSON lines (any name but `*.toml`): one revocation per line
//!   ([`super::record`]), blank lines and `#` comments allowed; suits large
//!   sets and tools;
//! - TOML (`*.toml`): a `[[revoked]]` table per revocation, with the same
//!   members, and `before`/`expires` as Unix seconds or as an RFC 3339
//!   date-time with an offset; suits files people edit.
//!
//! `jwtgate revoke` appends an entry (one `write` on a file opened for
//! appending, so concurrent revokes never interleave); the service reads the
//! whole file again when its modification time or size has changed and
//! stayed so for one poll, like the key files.
//!
//! Neighbours: [`super::record`] (the members and their rules),
//! [`super::manager`] (the thread that polls it).

use std::fmt;
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use jwtgate_engine::internals::json::Tape;
use serde::Deserialize;

use super::record::{self, Members, RecentScopes, RecordError, Revocation, Written};

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
    let mut revocations = Vec::new();
    read_each(path, &mut |revocation| revocations.push(revocation))?;
    Ok(revocations)
}

/// Hands every revocation in `path` to `each`, in file order, as it is
/// read: a file of JSON lines is read a line at a time, so that reading a
/// million revocations again never holds the file's text, or a list of
/// them, beside the set in force. On an error some revocations may have
/// been handed already; the caller drops them.
pub fn read_each(path: &Path, each: &mut dyn FnMut(Revocation)) -> Result<(), FileError> {
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
    match Format::of(path) {
        Format::JsonLines => {
            let file = std::fs::File::open(path).map_err(io)?;
            // Bounded like the file: a line never grows past the size read.
            let mut reader = std::io::BufReader::new(file.take(MAX_FILE_BYTES));
            let mut lines = Lines::new(path);
            let mut line = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                    return Ok(());
                }
                let text = std::str::from_utf8(&line).map_err(|_| FileError::Line {
                    path: path.to_owned(),
                    line: lines.number + 1,
                    error: record::error("not UTF-8"),
                })?;
                lines.next(text, each)?;
            }
        }
        Format::Toml => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            parse_toml(path, &text, each)
        }
    }
}

/// Reads a file of JSON lines a line at a time.
struct Lines<'a> {
    path: &'a Path,
    /// Lines read so far.
    number: usize,
    tape: Tape,
    scopes: RecentScopes,
}

impl<'a> Lines<'a> {
    fn new(path: &'a Path) -> Lines<'a> {
        Lines {
            path,
            number: 0,
            tape: Tape::new(),
            scopes: RecentScopes::default(),
        }
    }

    fn next(&mut self, line: &str, each: &mut dyn FnMut(Revocation)) -> Result<(), FileError> {
        self.number += 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let revocation = Revocation::parse_sharing(line, &mut self.tape, &mut self.scopes)
            .map_err(|error| FileError::Line {
                path: self.path.to_owned(),
                line: self.number,
                error,
            })?;
        each(revocation);
        Ok(())
    }
}

/// How a revocation file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// `[[revoked]]` tables.
    Toml,
}

impl Format {
    /// The form of the file at `path`: TOML for `*.toml`, else JSON lines.
    pub fn of(path: &Path) -> Format {
        if path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"))
        {
            Format::Toml
        } else {
            Format::JsonLines
        }
    }
}

/// The revocations in `text`, the contents of `path`, in the form its name
/// says.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Revocation>, FileError> {
    let mut revocations = Vec::new();
    let mut each = |revocation| revocations.push(revocation);
    match Format::of(path) {
        Format::JsonLines => {
            let mut lines = Lines::new(path);
            for line in text.lines() {
                lines.next(line, &mut each)?;
            }
        }
        Format::Toml => parse_toml(path, text, &mut each)?,
    }
    Ok(revocations)
}

/// A TOML revocation file: nothing but `[[revoked]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    revoked: Vec<toml::Spanned<toml::Table>>,
}

fn parse_toml(path: &Path, text: &str, each: &mut dyn FnMut(Revocation)) -> Result<(), FileError> {
    let at = |offset: usize, error: RecordError| FileError::Line {
        path: path.to_owned(),
        line: line_of(text, offset),
        error,
    };
    let file: TomlFile = toml::from_str(text).map_err(|e| {
        at(
            e.span().map_or(0, |span| span.start),
            record::error(e.message().to_owned()),
        )
    })?;
    let mut scopes = RecentScopes::default();
    for entry in &file.revoked {
        each(toml_entry(entry.get_ref(), &mut scopes).map_err(|e| at(entry.span().start, e))?);
    }
    Ok(())
}

fn toml_entry(table: &toml::Table, scopes: &mut RecentScopes) -> Result<Revocation, RecordError> {
    let mut members = Members::default();
    for (key, value) in table {
        let Some(slot) = members.slot(key) else {
            return Err(record::unknown_member(key));
        };
        let written = match (&*slot, value) {
            (Written::Text(_), toml::Value::String(text)) => Written::Text(text.clone()),
            (Written::Text(_), _) => {
                return Err(record::error(format!("{key} must be a string")));
            }
            (Written::Seconds(_), toml::Value::Integer(seconds)) => Written::Seconds(*seconds),
            (Written::Seconds(_), toml::Value::Datetime(datetime)) => Written::Seconds(
                crate::time::parse_instant(&datetime.to_string()).ok_or_else(|| {
                    record::error(format!(
                        "{key} = {datetime}: a date-time needs a date, a time and an offset (2026-12-07T10:00:00Z)"
                    ))
                })?,
            ),
            (Written::Seconds(_), _) => {
                return Err(record::error(format!(
                    "{key} must be Unix seconds or a date-time (2026-12-07T10:00:00Z)"
                )));
            }
        };
        *slot = written;
    }
    members.check(scopes)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.bytes().filter(|&b| b == b'\n').count() + 1
}

/// `revocation` as a `[[revoked]]` table of a TOML revocation file.
fn toml_entry_text(revocation: &Revocation) -> String {
    let (name_key, scope_key) = revocation.kind.member_names();
    let string = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let mut entry = format!(
        "\n[[revoked]]\n{name_key} = {}\n{scope_key} = {}\n",
        string(&revocation.name),
        string(&revocation.scope)
    );
    if let Some(before) = revocation.before {
        entry.push_str(&format!("before = {}\n", crate::time::rfc3339(before.0)));
    }
    entry.push_str(&format!(
        "expires = {}\n",
        crate::time::rfc3339(revocation.expires.0)
    ));
    entry
}

/// Appends `revocation` to `path` (created if missing) as one entry in the
/// file's form, after checking that the entry reads back as `revocation`.
pub fn append(path: &Path, revocation: &Revocation) -> Result<(), FileError> {
    let io = |error| FileError::Io {
        path: path.to_owned(),
        error,
    };
    let mut line = match Format::of(path) {
        Format::JsonLines => revocation.to_line(),
        Format::Toml => toml_entry_text(revocation),
    };
    let read_back = parse(path, &line)?;
    if read_back.as_slice() != std::slice::from_ref(revocation) {
        return Err(FileError::Line {
            path: path.to_owned(),
            line: 1,
            error: record::error(format!("{revocation} does not read back as itself")),
        });
    }
    if Format::of(path) == Format::JsonLines {
        line.push('\n');
    }
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

    #[test]
    fn a_toml_file_holds_the_same_revocations() {
        let path = Path::new("revoked.toml");
        let text = r#"# people edit this one
[[revoked]]
jti = "3f2a"
iss = "https://idp.example.com/"
expires = 2027-01-01T00:00:00Z

[[revoked]]
sub = "alice"
iss = "https://idp.example.com/"
before = 2026-12-07T11:00:00+01:00
expires = 1798761600

[[revoked]]
kid = "2024-07"
token_config = "users"
expires = 1798761600
"#;
        let lines: Vec<String> = parse(path, text)
            .unwrap()
            .iter()
            .map(Revocation::to_line)
            .collect();
        assert_eq!(
            lines,
            [
                r#"{"jti":"3f2a","iss":"https://idp.example.com/","expires":1798761600}"#,
                r#"{"sub":"alice","iss":"https://idp.example.com/","before":1796637600,"expires":1798761600}"#,
                r#"{"kid":"2024-07","token_config":"users","expires":1798761600}"#,
            ]
        );
        assert!(parse(path, "").unwrap().is_empty());
    }

    #[test]
    fn a_bad_toml_entry_is_named_by_its_line_and_key() {
        let path = Path::new("revoked.toml");
        let entry = "[[revoked]]\njti = \"a\"\niss = \"i\"\nexpires = 10\n\n";
        for (bad, line, wanted) in [
            (
                "[[revoked]]\njti = \"b\"\niss = \"i\"\n",
                6,
                "needs expires",
            ),
            (
                "[[revoked]]\njti = \"b\"\niss = \"i\"\nexpires = 2027-01-01T00:00:00\n",
                6,
                "needs a date, a time and an offset",
            ),
            (
                "[[revoked]]\njti = \"b\"\niss = \"i\"\nexpires = 2027-02-30T00:00:00Z\n",
                9,
                "invalid date",
            ),
            (
                "[[revoked]]\njti = 7\niss = \"i\"\nexpires = 10\n",
                6,
                "jti must be a string",
            ),
            (
                "[[revoked]]\njti = \"b\"\niss = \"i\"\nexpires = 1.5\n",
                6,
                "expires must be Unix seconds or a date-time",
            ),
            (
                "[[revoked]]\njti = \"b\"\niss = \"i\"\nwhy = \"x\"\nexpires = 10\n",
                6,
                "unknown member \"why\"",
            ),
            ("[[revoke]]\njti = \"b\"\n", 6, "unknown field `revoke`"),
            ("[[revoked]]\njti = \"b\n", 7, ""),
        ] {
            let text = format!("{entry}{bad}");
            let message = parse(path, &text).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("revoked.toml:{line}: ")) && message.contains(wanted),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn appended_entries_read_back_in_either_form() {
        let dir = std::env::temp_dir().join(format!("jwtgate-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let revocations = [
            Revocation {
                kind: super::super::Kind::Token,
                scope: "https://idp/\"quoted\"\n".into(),
                name: "a\\b\u{1}é".into(),
                before: None,
                expires: crate::UnixTime(1_798_761_600),
            },
            Revocation {
                kind: super::super::Kind::Subject,
                scope: "https://idp/".into(),
                name: "alice".into(),
                before: Some(crate::UnixTime(1_796_637_600)),
                expires: crate::UnixTime(1_798_761_600),
            },
            Revocation {
                kind: super::super::Kind::Key,
                scope: "users".into(),
                name: "2024-07".into(),
                before: None,
                expires: crate::UnixTime(1_798_761_600),
            },
        ];
        for name in ["revoked.jsonl", "revoked.toml"] {
            let path = dir.join(name);
            let _ = std::fs::remove_file(&path);
            for revocation in &revocations {
                append(&path, revocation).unwrap();
            }
            assert_eq!(read(&path).unwrap(), revocations, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
