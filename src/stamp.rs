//! What a watched file looks like at one poll, to notice that it changed:
//! the configuration and its key files ([`crate::config`]'s reloader) and a
//! revocation file ([`crate::revocation`]) are watched this way.

use std::path::Path;
use std::time::SystemTime;

/// What one file looked like: modification time and size (`None`: unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(Option<(SystemTime, u64)>);

impl Stamp {
    /// A file that could not be read.
    pub(crate) const UNREADABLE: Stamp = Stamp(None);

    /// `file` as it is now. Take it before loading the file, so that a write
    /// during or right after the load is seen as a change.
    pub(crate) fn of(file: &Path) -> Stamp {
        Stamp(
            std::fs::metadata(file)
                .ok()
                .and_then(|meta| Some((meta.modified().ok()?, meta.len()))),
        )
    }
}
