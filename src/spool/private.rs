//! The spool and its dead letters hold message text and account ids, so its
//! directories are created 0700 and its files 0600 whatever the umask, and anything
//! looser found at start (an older version, a volume's fsGroup) is tightened.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents, each 0700.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Options that create a file 0600.
pub(crate) fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// What [`tighten`] changed and what it could not.
#[derive(Debug, Default)]
pub(crate) struct Tightened {
    pub changed: Vec<PathBuf>,
    pub refused: Vec<(PathBuf, io::Error)>,
}

/// Takes group and other permissions away from `dir` and everything under it.
pub(crate) fn tighten(dir: &Path) -> Tightened {
    let mut done = Tightened::default();
    tighten_into(dir, &mut done);
    done
}

fn tighten_into(path: &Path, done: &mut Tightened) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        let wanted = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
        match fs::set_permissions(path, fs::Permissions::from_mode(wanted)) {
            Ok(()) => done.changed.push(path.to_owned()),
            Err(error) => done.refused.push((path.to_owned(), error)),
        }
    }
    if meta.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                tighten_into(&entry.path(), done);
            }
        }
    }
}

/// Tightens `dir` and says so in the log.
pub(crate) fn tighten_and_log(dir: &Path) {
    let Tightened { changed, refused } = tighten(dir);
    if !changed.is_empty() {
        tracing::warn!(
            dir = %dir.display(),
            files = changed.len(),
            "Found spool files others could read; they hold message text, so they are now owner-only (directories 0700, files 0600)."
        );
    }
    for (path, error) in refused {
        tracing::warn!(
            path = %path.display(),
            error = %error,
            "Cannot make this spool path owner-only; others may read what it holds: fix its owner or mode."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looser_modes_are_tightened_and_owner_only_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("dead");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        let file = sub.join("letters.log");
        fs::write(&file, "text").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();

        let done = tighten(dir.path());
        assert_eq!(done.changed, vec![sub.clone(), file.clone()]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&sub), mode(&file)), (0o700, 0o600));
        assert!(tighten(dir.path()).changed.is_empty());
    }
}
