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
use std::io::{BufRead as _, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use jwtgate_engine::internals::json::Tape;
use serde::Deserialize;

use super::record::{self, Members, RecentScopes, RecordError, Revocation, Written};

/// Largest file of JSON lines read, in bytes: a million entries take about
/// 100 MB of lines.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Largest TOML revocation file read, in bytes: it is read whole, and
/// becomes several times its size as a document while it is.
pub const MAX_TOML_BYTES: u64 = 16 << 20;
/// Longest line of a file of JSON lines: five fields of 1 KiB, each
/// character escaped, with room to spare.
pub const MAX_LINE_BYTES: usize = 64 << 10;

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
    /// Larger than its form's limit ([`Format::max_bytes`]).
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            FileError::Line { path, line, error } => {
                write!(f, "{}:{line}: {error}", path.display())
            }
            FileError::TooLarge { path, bytes, limit } => write!(
                f,
                "{}: {bytes} bytes, more than the {limit} a revocation file of its form may hold",
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
    let format = Format::of(path);
    let file = std::fs::File::open(path).map_err(io)?;
    // The size of what was opened, and no more of it: an append while it is
    // read (a `revoke`) waits for the next read, never half read.
    let bytes = file.metadata().map_err(io)?.len();
    if bytes > format.max_bytes() {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            bytes,
            limit: format.max_bytes(),
        });
    }
    let mut reader = std::io::BufReader::new(file.take(bytes));
    match format {
        Format::JsonLines => {
            let mut lines = Lines::new(path);
            let mut line = Vec::new();
            loop {
                line.clear();
                let read = (&mut reader)
                    .take(MAX_LINE_BYTES as u64 + 1)
                    .read_until(b'\n', &mut line)
                    .map_err(io)?;
                if read == 0 {
                    return Ok(());
                }
                let at = |error| FileError::Line {
                    path: path.to_owned(),
                    line: lines.number + 1,
                    error,
                };
                if line.len() > MAX_LINE_BYTES {
                    return Err(at(record::error(format!(
                        "a line longer than {MAX_LINE_BYTES} bytes"
                    ))));
                }
                let text =
                    std::str::from_utf8(&line).map_err(|_| at(record::error("not UTF-8")))?;
                lines.next(text, each)?;
            }
        }
        Format::Toml => {
            let mut text = String::new();
            reader.read_to_string(&mut text).map_err(io)?;
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
        // A byte-order mark is what some editors start a UTF-8 file with.
        let line = if self.number == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_ascii();
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
    /// The largest file of this form read: a million JSON lines take about
    /// 100 MB; TOML is for files people write, and is read whole.
    pub const fn max_bytes(self) -> u64 {
        match self {
            Format::JsonLines => MAX_FILE_BYTES,
            Format::Toml => MAX_TOML_BYTES,
        }
    }

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
                        "{key} = {datetime}: not an offset date-time between 1970 and 9999 (2026-12-07T10:00:00Z)"
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
    let format = Format::of(path);
    let mut entry = entry_text(format, revocation);
    let read_back = parse(path, &entry)?;
    if read_back.as_slice() != std::slice::from_ref(revocation) {
        return Err(FileError::Line {
            path: path.to_owned(),
            line: 1,
            error: record::error(format!("{revocation} does not read back as itself")),
        });
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let mut before = String::new();
    match format {
        Format::JsonLines => {
            // A last line without its newline would be glued to this one.
            let length = file.metadata().map_err(io)?.len();
            if length > 0 {
                let mut last = [0_u8];
                file.seek(std::io::SeekFrom::Start(length - 1))
                    .and_then(|_| file.read_exact(&mut last))
                    .map_err(io)?;
                if last != *b"\n" {
                    entry.insert(0, '\n');
                }
            }
        }
        Format::Toml => {
            // The file as it will be must still read (an inline `revoked =
            // [...]` array cannot be followed by a `[[revoked]]` table).
            (&file)
                .take(MAX_TOML_BYTES)
                .read_to_string(&mut before)
                .map_err(io)?;
            before.push_str(&entry);
            parse(path, &before)?;
        }
    }
    file.write_all(entry.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

/// `revocation` as the file form writes it: a JSON line with its newline,
/// or a `[[revoked]]` table.
pub fn entry_text(format: Format, revocation: &Revocation) -> String {
    match format {
        Format::JsonLines => {
            let mut line = revocation.to_line();
            line.push('\n');
            line
        }
        Format::Toml => toml_entry_text(revocation),
    }
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
                "not an offset date-time",
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
    fn what_editors_and_tools_leave_in_a_file_is_read_or_named() {
        let dir = std::env::temp_dir().join(format!("jwtgate-file-odd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let entry = r#"{"jti":"a","iss":"i","expires":10}"#;
        // A byte-order mark and CRLF line ends, as Windows editors write.
        let path = dir.join("bom.jsonl");
        std::fs::write(&path, format!("\u{feff}{entry}\r\n{entry}\r\n")).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
        // A mark anywhere else is not one.
        std::fs::write(&path, format!("{entry}\n\u{feff}{entry}\n")).unwrap();
        assert!(
            read(&path)
                .unwrap_err()
                .to_string()
                .contains("bom.jsonl:2:")
        );
        // A line past the limit is named, not read whole.
        let long = format!("{{{}{entry}", " ".repeat(MAX_LINE_BYTES));
        std::fs::write(&path, format!("{entry}\n{long}\n")).unwrap();
        let message = read(&path).unwrap_err().to_string();
        assert!(
            message.contains("bom.jsonl:2: a line longer than"),
            "{message}"
        );
        // A last line without its newline gets one before the next entry.
        let path = dir.join("unterminated.jsonl");
        std::fs::write(&path, entry).unwrap();
        let revocation = parse(&path, entry).unwrap().remove(0);
        append(&path, &revocation).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
        // A TOML file the entry could not follow is left as it is.
        let path = dir.join("inline.toml");
        let inline = "revoked = [ { jti = \"a\", iss = \"i\", expires = 10 } ]\n";
        std::fs::write(&path, inline).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        assert!(append(&path, &revocation).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), inline);
        // Too large for its form.
        let big = dir.join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_TOML_BYTES as usize + 1]).unwrap();
        assert!(matches!(read(&big), Err(FileError::TooLarge { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
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
