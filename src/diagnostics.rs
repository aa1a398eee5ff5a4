//! Operational lines on stderr (start-up, reloads, key rotation, accept
//! errors, access-log writes): one line each, with a level. A module of its
//! own at the bottom of the graph, so that any layer can speak without
//! reaching up into the server.
//!
//! Two formats, chosen once at start (`serve --log-format`):
//! - `text` (the default): `jwtgate: <message>` for information and
//!   `jwtgate: warning: <message>` for what may need a person; the service
//!   manager (journald, the container runtime) adds the time;
//! - `json`: `{"time":"…","level":"info"|"warning","message":"…"}`, one
//!   object per line, for log collectors.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// How serious a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What happened, for the record (a reload, a key rotation).
    Info,
    /// What may need a person (a failing fetch, a refused reload).
    Warning,
    /// Why the command stopped.
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// The format of stderr lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `jwtgate: [warning: ]message`.
    #[default]
    Text,
    /// One JSON object per line, with time and level.
    Json,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses the format of every later line.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// Writes one line at `level` to stderr.
pub fn log(level: Level, message: fmt::Arguments<'_>) {
    emit(&render(level, message, JSON.load(Ordering::Relaxed)));
}

/// Writes `text` and a newline to stderr. A stderr that is closed or full
/// loses the line; it never stops the server (`eprintln!` would panic).
fn emit(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

/// Writes `line`, as the text format has it (`jwtgate: ...`, `jwtgate
/// serve: ...`), at `level`: as is in the text format, as the message of
/// one object in the JSON format (its `jwtgate: ` and `warning: ` prefixes
/// dropped, since the object says both).
pub fn line(level: Level, line: &str) {
    if !JSON.load(Ordering::Relaxed) {
        emit(&printable(line));
        return;
    }
    let message = ["jwtgate: ", "jwtgate serve: "]
        .iter()
        .find_map(|prefix| line.strip_prefix(prefix))
        .unwrap_or(line);
    let message = message.strip_prefix("warning: ").unwrap_or(message);
    emit(&render(level, format_args!("{message}"), true));
}

/// Writes a warning to stderr as one line.
pub(crate) fn warn(message: fmt::Arguments<'_>) {
    log(Level::Warning, message);
}

/// Writes an informational line to stderr.
pub(crate) fn info(message: fmt::Arguments<'_>) {
    log(Level::Info, message);
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): a message
/// may quote a configuration file or a peer, and one line must stay one line,
/// with no terminal escapes.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn render(level: Level, message: fmt::Arguments<'_>, json: bool) -> String {
    if !json {
        let message = message.to_string();
        let message = printable(&message);
        return match level {
            Level::Info => format!("jwtgate: {message}"),
            Level::Warning => format!("jwtgate: warning: {message}"),
            Level::Error => format!("jwtgate: error: {message}"),
        };
    }
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
    let mut line = Vec::with_capacity(128);
    let _ = write!(
        line,
        "{{\"time\":\"{}\",\"level\":\"{}\",\"message\":",
        crate::time::rfc3339(seconds),
        level.name()
    );
    crate::json_string::quote_into(&mut line, &message.to_string());
    line.push(b'}');
    String::from_utf8_lossy(&line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_their_level_in_either_format() {
        assert_eq!(
            render(Level::Info, format_args!("reloaded {}", "x.toml"), false),
            "jwtgate: reloaded x.toml"
        );
        assert_eq!(
            render(Level::Warning, format_args!("fetch failed"), false),
            "jwtgate: warning: fetch failed"
        );
        assert_eq!(
            render(
                Level::Warning,
                format_args!("key `a\u{1b}[31m\nFAKE`"),
                false
            ),
            "jwtgate: warning: key `a\\u{1b}[31m\\nFAKE`"
        );
        let line = render(Level::Warning, format_args!("a \"quoted\"\nline"), true);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["level"], "warning", "{line}");
        assert_eq!(value["message"], "a \"quoted\"\nline", "{line}");
        let time = value["time"].as_str().unwrap_or_default();
        assert!(time.ends_with('Z') && time.len() >= 20, "{line}");
    }
}
