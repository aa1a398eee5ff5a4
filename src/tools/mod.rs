//! The token tools behind `jwtgate keygen`, `mint` and `inspect`, plus loading
//! the files every command reads. Errors name the file and the problem, so the
//! command line can print them as they are.

pub mod check_config;
pub mod decision;
pub mod inspect;
pub mod keygen;
pub mod mint;
pub mod revoke;

use std::path::{Path, PathBuf};

use crate::KeySet;

/// A tool could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file was read but its contents are unusable.
    #[error("{path}: {reason}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The request itself is inconsistent (bad flag combination or value).
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(std::io::Error),
}

/// Reads a whole (small) file, naming it on failure.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ToolError> {
    std::fs::read(path).map_err(|source| ToolError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Loads a key set from a JWKS, JWK or PEM public key file.
pub fn load_key_set(path: &Path) -> Result<KeySet, ToolError> {
    KeySet::parse(&read_file(path)?).map_err(|error| ToolError::Content {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}
