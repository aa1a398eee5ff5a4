//! What a watched file looks like at one poll, to notice that it changed:
//! the configuration and its key files ([`crate::config`]'s reloader) and a
//! revocation file ([`crate::revocation`]) are watched this way.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::SystemTime;

/// What one file looked like (`None`: unreadable): its modification time and
/// size, and also its inode, device and change time, so that a file
/// replaced by one of the same size and modification time (`cp -p`,
/// `rsync -a`, then a rename over it) is still seen as changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(Option<(SystemTime, u64, u64, u64, i64, i64)>);

impl Stamp {
    /// A file that could not be read.
    pub(crate) const UNREADABLE: Stamp = Stamp(None);

    /// `file` as it is now. Take it before loading the file, so that a write
    /// during or right after the load is seen as a change.
    pub(crate) fn of(file: &Path) -> Stamp {
        Stamp(std::fs::metadata(file).ok().and_then(|meta| {
            Some((
                meta.modified().ok()?,
                meta.len(),
                meta.ino(),
                meta.dev(),
                meta.ctime(),
                meta.ctime_nsec(),
            ))
        }))
    }
}
