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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `cp -p`, `rsync -a`, `install -p`, then a rename over the watched
    /// file: the same size and modification time, another file.
    #[test]
    fn a_file_replaced_by_one_of_the_same_size_and_time_is_seen_as_changed() {
        let dir = std::env::temp_dir().join(format!("jwtgate-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let watched = dir.join("revoked.jsonl");
        let replacement = dir.join("revoked.jsonl.new");
        std::fs::write(&watched, "old-0001\n").unwrap();
        let modified = std::fs::metadata(&watched).unwrap().modified().unwrap();
        let before = Stamp::of(&watched);
        std::fs::write(&replacement, "new-0002\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&replacement)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        std::fs::rename(&replacement, &watched).unwrap();
        let after = Stamp::of(&watched);
        assert_ne!(before, after);
        assert_eq!(
            after,
            Stamp::of(&watched),
            "a file left alone keeps its stamp"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Stamp::of(&watched), Stamp::UNREADABLE);
    }
}
