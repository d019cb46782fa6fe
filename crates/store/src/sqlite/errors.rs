//! How SQLite's failures become [`StoreError`]s.
//!
//! The split matters to callers: `Unavailable` means "nothing was written, retry later" (the
//! server answers 503 and the provider redelivers), `Corrupt` means "a human must look at this
//! file", and `Backend` is everything we did not expect.

use std::path::Path;

use rusqlite::ErrorCode;

use crate::StoreError;

/// Maps a SQLite error met while working on the store file at `path`.
pub(crate) fn from_sqlite(path: &Path, error: rusqlite::Error) -> StoreError {
    let code = error.sqlite_error_code();
    let file = path.display();
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(
            format!("{file} is locked by another connection past the busy timeout ({error})"),
        ),
        Some(ErrorCode::DiskFull) => {
            StoreError::Unavailable(format!("{file}: the disk is full ({error})"))
        }
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable(format!("{file}: {error}")),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: error.to_string(),
        },
        _ => StoreError::Backend(format!("{file}: {error}")),
    }
}

/// True when the error leaves the write transaction unusable, so the whole batch must be
/// rolled back (as opposed to a constraint failure local to one append: its savepoint, or its
/// one INSERT statement, is undone and the batch goes on).
pub(crate) fn aborts_batch(error: &rusqlite::Error) -> bool {
    !matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation)
    )
}
