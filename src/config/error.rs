//! Configuration errors that say where: file, line, column and key, then what
//! was expected. Positions come from TOML spans; the key path
//! (`rule[2].paths[0]`) is named by the check that failed, or, for a syntax or
//! type error, reconstructed from the text around the span.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line (0 when the error is about the file as a whole).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The key path, e.g. `token_config[0].leeway` (empty if none applies).
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of byte `offset` in `source`.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = source
        .get(line_start..offset)
        .map_or(1, |text| text.chars().count() + 1);
    (line, column)
}

/// Builds errors against one source text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located<'s> {
    pub(crate) file: &'s Path,
    pub(crate) source: &'s str,
}

impl Located<'_> {
    /// An error at `span` about `key`.
    pub(crate) fn at(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = line_column(self.source, span.start);
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A setting at `span` whose value [`crate::settings`] refused.
    pub(crate) fn refused(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        error: crate::settings::SettingError,
    ) -> ConfigError {
        self.at(span, key, error.to_string())
    }

    /// An error about the whole file.
    pub(crate) fn whole(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: 0,
            column: 0,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A TOML syntax or type error, with the key path read from the text.
    pub(crate) fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let message = suggest_field(error.message().trim());
        match error.span() {
            Some(span) => {
                let key = key_path_at(self.source, span.start);
                self.at(span, key, message)
            }
            None => self.whole("", message),
        }
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`, ..." with the list
/// (some 30 names for a token configuration) replaced by the one name the
/// typo most likely meant, when one is close enough.
fn suggest_field(message: &str) -> String {
    let Some((unknown, expected)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    else {
        return message.to_owned();
    };
    // A name longer than any real key is no typo of one: no suggestion,
    // and no quadratic comparison of a hostile file's megabyte-long key.
    if unknown.len() > MAX_SUGGESTED_LEN {
        return message.to_owned();
    }
    let known = expected.split('`').skip(1).step_by(2);
    let nearest = known
        .map(|name| (edit_distance(unknown, name), name))
        .min_by_key(|&(distance, _)| distance);
    match nearest {
        Some((distance, name)) if distance <= (unknown.len() / 3).max(1) => {
            format!("unknown field `{unknown}`: did you mean `{name}`?")
        }
        _ => message.to_owned(),
    }
}

/// The longest name a suggestion is looked for (keys and methods are short).
pub(super) const MAX_SUGGESTED_LEN: usize = 64;

/// Levenshtein distance over bytes (key and method names are ASCII).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.as_bytes().iter().enumerate() {
        let mut diagonal = i;
        let mut left = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let cost = diagonal + usize::from(x != y);
            let next = cost.min(above + 1).min(left + 1);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = next;
            }
            left = next;
        }
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
    }
    row.last().copied().unwrap_or(0)
}

/// The dotted key path of the line holding `offset`: the enclosing table
/// header (with the index of an array-of-tables entry) and the line's key.
fn key_path_at(source: &str, offset: usize) -> String {
    let before = source.get(..offset.min(source.len())).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = source
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("");
    let key = line
        .split_once('=')
        .filter(|(name, _)| !name.trim_start().starts_with('['))
        .map(|(name, _)| name.trim().trim_matches('"').to_owned());
    let mut table = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for header in source
        .get(..line_start)
        .unwrap_or("")
        .lines()
        .map(str::trim)
    {
        if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
            let name = name.trim().to_owned();
            let index = match counts.iter_mut().find(|(seen, _)| *seen == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    counts.push((name.clone(), 1));
                    0
                }
            };
            table = format!("{name}[{index}]");
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
            table = name.trim().to_owned();
        }
    }
    match (table.is_empty(), key) {
        (true, Some(key)) => key,
        (false, Some(key)) => format!("{table}.{key}"),
        (_, None) => table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_key_paths() {
        let source = "default_action = \"deny\"\n[server]\nshards = \"x\"\n[[rule]]\nname = \"a\"\n[[rule]]\nname = \"b\"\npaths = 3\n";
        let offset = source.find("\"x\"").unwrap();
        assert_eq!(line_column(source, offset), (3, 10));
        assert_eq!(key_path_at(source, offset), "server.shards");
        let offset = source.find('3').unwrap();
        assert_eq!(key_path_at(source, offset), "rule[1].paths");
        assert_eq!(key_path_at(source, 0), "default_action");
    }

    #[test]
    fn an_unknown_field_names_the_one_it_most_likely_meant() {
        let serde = |unknown: &str| {
            format!(
                "unknown field `{unknown}`, expected one of `name`, `issuer`, `audiences`, `leeway`, `jwks_url`"
            )
        };
        for (typo, meant) in [
            ("audience", "audiences"),
            ("isuer", "issuer"),
            ("jwks_uri", "jwks_url"),
            ("Leeway", "leeway"),
        ] {
            assert_eq!(
                suggest_field(&serde(typo)),
                format!("unknown field `{typo}`: did you mean `{meant}`?")
            );
        }
        // Nothing close: the whole list stays.
        assert_eq!(suggest_field(&serde("colour")), serde("colour"));
        let long = "audiences".repeat(100);
        assert_eq!(suggest_field(&serde(&long)), serde(&long));
        assert_eq!(suggest_field("expected a string"), "expected a string");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
