//! Operational warnings from the library's background work (accept errors,
//! key rotation, access-log writes): one line each on stderr. A module of its
//! own at the bottom of the graph, so that any layer can warn without
//! reaching up into the server.

use std::fmt;

/// Writes a warning to stderr as one line.
#[allow(clippy::print_stderr)]
pub(crate) fn warn(message: fmt::Arguments<'_>) {
    eprintln!("jwtgate: warning: {message}");
}
