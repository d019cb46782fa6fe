//! Which file the live read models of an embedded deployment are, and how a full rebuild
//! replaces it without copying a row.
//!
//! `read_models.sqlite` is a plain file until the first full rebuild, and from then on a
//! symbolic link to the file the last full rebuild wrote (`read_models.<run>.sqlite`, beside
//! it). A full rebuild installs its file by renaming a new link over the old one: one step,
//! the same cost whatever the size of the read models, and nothing goes through the live
//! file's WAL. SQLite resolves links itself, so each file keeps its own `-wal` and `-shm`
//! beside it, and analysts open `read_models.sqlite` as before.
//!
//! Every live connection knows the file it opened (its [`Generation`]). The server's readers
//! look again before each query and the runner inside each of its transactions, and move to
//! the new file once the link names another; the runner then continues from that file's
//! checkpoint. The file a link named before an install is kept for the connections still
//! reading it; files older than that are removed by the next install.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::ProjectionError;
#[cfg(unix)]
use crate::db::{SQLITE_COMPANIONS, remove_if_present};

/// The file a live connection opened, and the link (or plain file) it was opened through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation {
    link: PathBuf,
    file: PathBuf,
}

impl Generation {
    /// The file `link` names now (the path itself while it is a plain file or absent).
    pub(crate) fn resolve(link: &Path) -> Result<Generation, ProjectionError> {
        Ok(Generation {
            link: link.to_path_buf(),
            file: resolve(link).map_err(|e| ProjectionError::io(link, e))?,
        })
    }

    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// Whether the link still names this file: false once a full rebuild installed another.
    pub(crate) fn is_current(&self) -> Result<bool, ProjectionError> {
        Ok(resolve(&self.link).map_err(|e| ProjectionError::io(&self.link, e))? == self.file)
    }
}

#[cfg(unix)]
fn resolve(link: &Path) -> io::Result<PathBuf> {
    match std::fs::read_link(link) {
        Ok(target) => Ok(link.parent().unwrap_or(Path::new("")).join(target)),
        // Not a link (a plain file from before the first full rebuild), or nothing there yet.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::NotFound
            ) =>
        {
            Ok(link.to_path_buf())
        }
        Err(e) => Err(e),
    }
}

/// Without symbolic links (see [`install`]) the live file is always the path itself.
#[cfg(not(unix))]
fn resolve(link: &Path) -> io::Result<PathBuf> {
    Ok(link.to_path_buf())
}

/// The file a full rebuild with this run id writes, to install it afterwards:
/// `read_models.<run>.sqlite` for `read_models.sqlite`.
#[cfg(unix)]
pub(crate) fn file_for_run(link: &Path, run: &str) -> PathBuf {
    let (stem, extension) = stem_and_extension(link);
    link.with_file_name(format!("{stem}.{run}{extension}"))
}

/// Points `link` at `file` (in the same directory) in one rename, and makes that durable.
/// Returns the file the link named before. The caller holds the write lock of that file, so
/// no commit lands in it between the caller's last look at its checkpoint and this switch.
/// Once the rename is done the switch has happened: a failure to sync the directory after it
/// is logged (the rename may not survive a power loss), not returned.
#[cfg(unix)]
pub(crate) fn install(link: &Path, file: &Path) -> Result<PathBuf, ProjectionError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| ProjectionError::io(path, e)
    };
    let previous = resolve(link).map_err(io(link))?;
    let name = file
        .file_name()
        .ok_or_else(|| ProjectionError::Task(format!("{} names no file", file.display())))?;
    let (stem, extension) = stem_and_extension(link);
    let pending = link.with_file_name(format!("{stem}.installing{extension}"));
    remove_if_present(&pending)?;
    // Relative, so the data dir can be moved or mounted elsewhere.
    std::os::unix::fs::symlink(name, &pending).map_err(io(&pending))?;
    std::fs::rename(&pending, link).map_err(io(link))?;
    if let Err(error) = sync_directory_of(link) {
        tracing::warn!(%error, dir = %directory_of(link).display(),
            "the read models' link was moved but the directory could not be synced; a power loss may undo the switch");
    }
    Ok(previous)
}

/// The directory that holds `path` (`.` for a bare file name).
pub(crate) fn directory_of(path: &Path) -> &Path {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    dir.unwrap_or(Path::new("."))
}

/// Syncs the directory that holds `path`, so that a rename into it survives a power loss.
pub(crate) fn sync_directory_of(path: &Path) -> io::Result<()> {
    File::open(directory_of(path)).and_then(|d| d.sync_all())
}

/// Removes what no connection should open any more once `current` is installed and
/// `previous` was the file before it: the files of older rebuilds (and of rebuilds that
/// stopped before installing theirs), and the `-wal` and `-shm` of the plain file the first
/// install replaced. Runs under the rebuild lock, so no other rebuild is writing one of them.
#[cfg(unix)]
pub(crate) fn remove_stale(
    link: &Path,
    current: &Path,
    previous: &Path,
) -> Result<Vec<PathBuf>, ProjectionError> {
    let (stem, extension) = stem_and_extension(link);
    let link_name = link.file_name().map(|n| n.to_string_lossy().into_owned());
    let kept: Vec<String> = [current, previous]
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    remove_files_beside(link, |name| {
        let (base, suffix) = split_sqlite_suffix(name);
        if Some(base) == link_name.as_deref() {
            // The plain file's companions, once the plain file is older than `previous`.
            !suffix.is_empty() && previous != link
        } else {
            is_rebuilt_file(base, &stem, &extension) && !kept.iter().any(|k| k == base)
        }
    })
}

/// Removes the files in the directory of `path` whose names `stale` picks; returns those it
/// removed.
pub(crate) fn remove_files_beside(
    path: &Path,
    mut stale: impl FnMut(&str) -> bool,
) -> Result<Vec<PathBuf>, ProjectionError> {
    let dir = directory_of(path);
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| ProjectionError::io(dir, e))? {
        let entry = entry.map_err(|e| ProjectionError::io(dir, e))?;
        if stale(&entry.file_name().to_string_lossy()) && remove_if_present(&entry.path())? {
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// The lock that lets one rebuild at a time replace the live read models (and remove files of
/// older ones), or build the read models of one moment (`<stem>.lock` beside the file it
/// names); held until dropped.
pub(crate) struct RebuildLock {
    _file: File,
}

impl RebuildLock {
    /// Takes `<stem>.lock` beside `file` (the live read models' link, or a `--until` file).
    pub(crate) fn take(file: &Path) -> Result<RebuildLock, ProjectionError> {
        let (stem, _) = stem_and_extension(file);
        let path = file.with_file_name(format!("{stem}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ProjectionError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RebuildLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ProjectionError::RebuildRunning(path)),
            Err(std::fs::TryLockError::Error(e)) => Err(ProjectionError::io(path, e)),
        }
    }
}

/// `("read_models", ".sqlite")` for `…/read_models.sqlite`.
fn stem_and_extension(link: &Path) -> (String, String) {
    let stem = link
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extension = link
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (stem, extension)
}

/// A database file's name without SQLite's companion suffix, and the suffix.
pub(crate) fn split_sqlite_suffix(name: &str) -> (&str, &str) {
    SQLITE_COMPANIONS
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix).map(|base| (base, *suffix)))
        .unwrap_or((name, ""))
}

/// `<stem>.<12 hex digits><extension>`: a file a full rebuild wrote.
#[cfg(unix)]
fn is_rebuilt_file(name: &str, stem: &str, extension: &str) -> bool {
    name.strip_prefix(stem)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(extension))
        .is_some_and(|run| run.len() == RUN_ID_LEN && run.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The length of a rebuild's run id (the first hex digits of a UUID).
pub(crate) const RUN_ID_LEN: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn only_files_of_rebuilds_match_the_rebuilt_file_pattern() {
        let ok = |name| is_rebuilt_file(name, "read_models", ".sqlite");
        assert!(ok("read_models.0123456789ab.sqlite"));
        assert!(!ok("read_models.sqlite"));
        assert!(!ok("read_models-until-42.sqlite"));
        assert!(!ok("read_models.rebuild-0123456789ab.sqlite"));
        assert!(!ok("read_models.0123456789ab.sqlite.bak"));
        assert!(!ok("read_models.0123456789xy.sqlite"));
    }

    #[test]
    fn a_plain_file_and_a_missing_one_are_their_own_generation() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("read_models.sqlite");
        assert_eq!(Generation::resolve(&link).unwrap().file(), link);
        std::fs::write(&link, b"").unwrap();
        let plain = Generation::resolve(&link).unwrap();
        assert_eq!(plain.file(), link);
        assert!(plain.is_current().unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn installing_moves_the_link_and_leaves_older_connections_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("read_models.sqlite");
        std::fs::write(&link, b"plain").unwrap();
        let plain = Generation::resolve(&link).unwrap();

        let first = file_for_run(&link, "0123456789ab");
        std::fs::write(&first, b"first").unwrap();
        assert_eq!(install(&link, &first).unwrap(), link);
        assert!(!plain.is_current().unwrap());
        let now = Generation::resolve(&link).unwrap();
        assert_eq!(now.file(), first);
        assert_eq!(std::fs::read(&link).unwrap(), b"first");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("read_models.0123456789ab.sqlite"),
            "a relative link"
        );

        let second = file_for_run(&link, "ba9876543210");
        std::fs::write(&second, b"second").unwrap();
        assert_eq!(install(&link, &second).unwrap(), first);
        assert!(!now.is_current().unwrap());
        assert_eq!(std::fs::read(&link).unwrap(), b"second");
    }

    #[cfg(unix)]
    #[test]
    fn stale_files_are_those_older_than_the_previous_install() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("read_models.sqlite");
        let names = [
            "read_models.sqlite-wal",
            "read_models.sqlite-shm",
            "read_models.000000000001.sqlite",
            "read_models.000000000001.sqlite-wal",
            "read_models.000000000002.sqlite",
            "read_models.000000000002.sqlite-shm",
            "read_models.000000000003.sqlite",
            "read_models.000000000003.sqlite-wal",
            "read_models-until-7.sqlite",
            "events.sqlite",
            "read_models.lock",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let current = dir.path().join("read_models.000000000003.sqlite");
        let previous = dir.path().join("read_models.000000000002.sqlite");
        let mut removed: Vec<String> = remove_stale(&link, &current, &previous)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            [
                "read_models.000000000001.sqlite",
                "read_models.000000000001.sqlite-wal",
                "read_models.sqlite-shm",
                "read_models.sqlite-wal",
            ]
        );
        // Right after the first install the plain file is the previous one: its WAL stays.
        std::fs::write(dir.path().join("read_models.sqlite-wal"), b"").unwrap();
        let removed = remove_stale(&link, &current, &link).unwrap();
        assert!(
            removed
                .iter()
                .all(|p| !p.ends_with("read_models.sqlite-wal")),
            "{removed:?}"
        );
        assert!(dir.path().join("read_models.sqlite-wal").exists());
    }
}
