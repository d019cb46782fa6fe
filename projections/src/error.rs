//! The crate's one error type.

use std::path::PathBuf;

use switchboard_store::StoreError;

use crate::sql::SqlError;

/// Everything opening, folding, rebuilding, querying or exporting the read models can fail at.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read models database: {0}")]
    Sql(#[from] SqlError),

    /// Read models written by a newer build; this one leaves them alone.
    #[error(
        "{at}: read models of layout {found}, newer than this build's {supported}; run the newer \
         build, or point this one at other read models (--read-models, --data-dir)",
        supported = crate::db::LAYOUT_VERSION
    )]
    NewerLayout { at: String, found: i64 },

    /// The stored checkpoint went back behind what this folder had folded: the read models
    /// were emptied underneath it; it restarts from the stored checkpoint.
    #[error(
        "the read models' checkpoint went back from {expected} to {stored} (emptied by another \
         process?); folding restarts from {stored}"
    )]
    CheckpointMovedBack { expected: u64, stored: u64 },

    /// A full rebuild installed another read-models file since this connection opened its
    /// own; the connection's work is undone and it opens the new file.
    #[error("{}: a rebuild installed new read models; reopening them", .0.display())]
    Superseded(PathBuf),

    /// A batch folded in its caller's open transaction, without a savepoint of its own
    /// ([`crate::fold::Undo::Caller`]), met an event it could not apply: only the caller's
    /// rollback can undo the batch. A rebuild's replay then folds again with a savepoint per
    /// batch; no public function returns it.
    #[error("an event could not be applied in a batch without a savepoint: {0}")]
    NotUndoable(String),

    /// The live read models stand past the end of the store a rebuild reads: they were folded
    /// from another store (or the store lost events).
    #[error(
        "the live read models stand at position {read_models}, but the store ends at {store}: \
         are they the read models of another store (--store, --data-dir, --read-models)?"
    )]
    StoreBehind { read_models: u64, store: u64 },

    /// Another rebuild holds the lock on these read models.
    #[error("{}: another rebuild of these read models is running; wait for it to finish", .0.display())]
    RebuildRunning(PathBuf),

    /// The read models' database could not be reached or set up at start.
    #[error("{0}")]
    Connect(String),

    #[error("event store: {0}")]
    Store(#[from] StoreError),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// A paging cursor that this crate did not hand out (or that was damaged on the way).
    #[error("invalid cursor `{0}`: pass the `next` value of the previous page unchanged")]
    BadCursor(String),

    #[error("invalid limit {0}: must be between 1 and {max}", max = crate::query::MAX_LIMIT)]
    BadLimit(usize),

    #[error(
        "unknown projection `{0}`: expected one of calls, appointments, customers, tenants, anomalies"
    )]
    UnknownProjection(String),

    #[error("unknown export format `{0}`: expected jsonl or csv")]
    UnknownFormat(String),

    #[error("writing the export: {0}")]
    Export(std::io::Error),

    /// A query run by [`ReadModels::without_waiting`](crate::ReadModels::without_waiting)
    /// would have had to wait (for a connection to open, or for a lock) or met database
    /// trouble; it is run again where waiting is allowed. `without_waiting` itself never
    /// returns it.
    #[error("the read-model query would have had to wait")]
    WouldWait,

    #[error("the projection task stopped unexpectedly: {0}")]
    Task(String),
}

impl ProjectionError {
    /// The read models' database is out of reach or in trouble now (not the query's own
    /// fault): worth retrying, and a 503 rather than a 500 to whoever asked.
    pub fn is_database_trouble(&self) -> bool {
        match self {
            ProjectionError::Connect(_) => true,
            ProjectionError::Sql(error) => error.is_database_trouble(),
            _ => false,
        }
    }

    /// What the trouble is, in words an unauthenticated probe (`/readyz`) may be told: no
    /// paths, SQL or database messages (the log has the whole error).
    pub fn summary(&self) -> &'static str {
        match self {
            ProjectionError::NewerLayout { .. } => {
                "read models of a newer build: run that build, or point this one at other read models"
            }
            _ if self.is_database_trouble() => "the read-model database cannot be reached",
            ProjectionError::Sql(_) => "the read-model database refused a statement",
            ProjectionError::Io { .. } => "the read-model files cannot be opened or written",
            ProjectionError::Store(_) => "the event store cannot be read",
            ProjectionError::CheckpointMovedBack { .. } => {
                "the read models were emptied underneath; folding again from their checkpoint"
            }
            _ => "internal trouble; the log says what",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ProjectionError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<rusqlite::Error> for ProjectionError {
    fn from(error: rusqlite::Error) -> Self {
        ProjectionError::Sql(error.into())
    }
}
