//! The live runner: follows the store's subscription from the stored checkpoint and folds
//! what arrives in batches, each batch one transaction with its checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use switchboard_store::{EventStore, RecordedEvent, Subscription};
use tokio::sync::watch;

use crate::ProjectionError;
use crate::db::{checkpoint, open_live, read_models_path};
use crate::fold::{Folded, fold_batch};
use crate::phone::PhoneBook;

/// The most events folded in one transaction: large enough to amortize the commit, small
/// enough that the read models never trail a busy store by a long transaction.
pub const DEFAULT_MAX_BATCH: usize = 1_000;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How far the read models trail the store, for /readyz and /metrics.
#[derive(Debug, Clone)]
pub struct ProjectionLag {
    checkpoint: watch::Receiver<u64>,
    head: watch::Receiver<u64>,
}

impl ProjectionLag {
    /// The global position of the last event folded into the read models.
    pub fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    /// The newest committed position of the store.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Positions between the store's head and the checkpoint (0 when caught up). Positions are
    /// not necessarily contiguous, so this is an upper bound on the events still to fold.
    pub fn behind(&self) -> u64 {
        self.head().saturating_sub(self.checkpoint())
    }

    /// Changes whenever a batch commits (tests and the server wait on it).
    pub fn watch_checkpoint(&self) -> watch::Receiver<u64> {
        self.checkpoint.clone()
    }
}

/// The connection and memo that fold batches; moved to a blocking thread for each batch.
struct Folder {
    conn: Connection,
    phones: PhoneBook,
}

/// Keeps `<data_dir>/read_models.sqlite` up to date with the store.
pub struct Projector {
    store: Arc<dyn EventStore>,
    path: PathBuf,
    folder: Option<Folder>,
    checkpoint: watch::Sender<u64>,
    lag: ProjectionLag,
    max_batch: usize,
}

impl Projector {
    /// Opens (creating when absent) the read models in `data_dir`.
    pub fn open(store: Arc<dyn EventStore>, data_dir: &Path) -> Result<Projector, ProjectionError> {
        let path = read_models_path(data_dir);
        let conn = open_live(&path)?;
        let position = checkpoint(&conn)?;
        let (checkpoint_tx, checkpoint_rx) = watch::channel(position);
        let lag = ProjectionLag {
            checkpoint: checkpoint_rx,
            head: store.watch_head(),
        };
        Ok(Projector {
            store,
            path,
            folder: Some(Folder {
                conn,
                phones: PhoneBook::default(),
            }),
            checkpoint: checkpoint_tx,
            lag,
            max_batch: DEFAULT_MAX_BATCH,
        })
    }

    /// Sets the most events per transaction (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    pub fn lag(&self) -> ProjectionLag {
        self.lag.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folds everything the store holds now, then returns the checkpoint reached: for
    /// commands that read the read models once (`export`) and for tests.
    pub async fn catch_up(&mut self) -> Result<u64, ProjectionError> {
        let mut position = self.stored_checkpoint().await?;
        loop {
            let batch = self.store.read_all(position + 1, self.max_batch).await?;
            if batch.is_empty() {
                self.checkpoint.send_replace(position);
                return Ok(position);
            }
            position = self.fold(batch).await?.checkpoint;
        }
    }

    /// Follows the store until `shutdown` turns true (or its sender is dropped). Trouble with
    /// the store or the read models is logged and retried with backoff from the stored
    /// checkpoint; a batch is never half-applied, so a retry is always safe.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            match self.follow(&mut shutdown).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "projections paused");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped(&mut shutdown) => return Ok(()),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn follow(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ProjectionError> {
        let start = self.stored_checkpoint().await?;
        self.checkpoint.send_replace(start);
        let mut subscription = Subscription::new(Arc::clone(&self.store), start + 1);
        let head = self.store.watch_head();
        loop {
            let first = tokio::select! {
                biased;
                _ = stopped(shutdown) => return Ok(()),
                event = subscription.next() => event?,
            };
            // Take what is already committed, up to a batch: never wait for more once the
            // head has been reached, so a quiet store is folded at once.
            let mut batch = vec![first];
            let known_head = *head.borrow();
            while batch.len() < self.max_batch
                && batch.last().is_some_and(|e| e.position < known_head)
            {
                batch.push(subscription.next().await?);
            }
            let folded = self.fold(batch).await?;
            self.checkpoint.send_replace(folded.checkpoint);
        }
    }

    async fn fold(&mut self, batch: Vec<RecordedEvent>) -> Result<Folded, ProjectionError> {
        let mut folder = self.take_folder()?;
        let (folder, result) = tokio::task::spawn_blocking(move || {
            let result = fold_batch(&mut folder.conn, &folder.phones, batch);
            (folder, result)
        })
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
        self.folder = Some(folder);
        result
    }

    /// The folder, or a fresh one when a panicked batch took the last one down with it.
    fn take_folder(&mut self) -> Result<Folder, ProjectionError> {
        match self.folder.take() {
            Some(folder) => Ok(folder),
            None => Ok(Folder {
                conn: open_live(&self.path)?,
                phones: PhoneBook::default(),
            }),
        }
    }

    async fn stored_checkpoint(&mut self) -> Result<u64, ProjectionError> {
        let folder = self.take_folder()?;
        let (folder, result) = tokio::task::spawn_blocking(move || {
            let result = checkpoint(&folder.conn);
            (folder, result)
        })
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
        self.folder = Some(folder);
        result
    }
}

/// Resolves once shutdown is asked for, or once nobody can ask any more.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
