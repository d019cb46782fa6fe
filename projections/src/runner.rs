//! The live runner: follows the store's subscription from the stored checkpoint and folds
//! what arrives in batches, each batch one transaction with its checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_store::{EventStore, RecordedEvent, Subscription};
use tokio::sync::watch;

use crate::ProjectionError;
use crate::db::{ReadModelsAt, checkpoint, open_live_generation};
use crate::fold::{Folded, fold_batch};
use crate::generation::Generation;
use crate::phone::PhoneBook;
use crate::sql::{Conn, Dialect};

/// The most events folded in one transaction: large enough to amortize the commit, small
/// enough that the read models never trail a busy store by a long transaction.
pub const DEFAULT_MAX_BATCH: usize = 1_000;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// While events keep arriving, batches start at least this far apart (see `follow`): the
/// read models trail a busy store by about this much more, a quiet one not at all.
pub const FOLD_INTERVAL: Duration = Duration::from_millis(20);

/// How often an instance that is not the projections' leader asks again: the bound on how
/// long the read models stand still after a leader dies.
pub const LEADER_RETRY: Duration = Duration::from_secs(1);

/// How far the read models trail the store, for /readyz and /metrics.
#[derive(Debug, Clone)]
pub struct ProjectionLag {
    checkpoint: watch::Receiver<u64>,
    head: watch::Receiver<u64>,
    paused: watch::Receiver<Option<String>>,
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

    /// Why the projections stand still, while they do: the trouble the runner is retrying
    /// after (read models it cannot open or write, a store it cannot read), summarized
    /// ([`ProjectionError::summary`]; the log has the whole error). A lag that only grows
    /// says that they stopped; this says why, in the same request (/readyz).
    pub fn paused(&self) -> Option<String> {
        self.paused.borrow().clone()
    }

    /// Changes when the runner pauses or goes on.
    pub fn watch_paused(&self) -> watch::Receiver<Option<String>> {
        self.paused.clone()
    }
}

/// The connection and memo that fold batches; moved to a blocking thread for each batch.
struct Folder {
    conn: Conn,
    /// The file the connection opened (SQLite): a full rebuild may install another.
    generation: Option<Generation>,
    phones: PhoneBook,
    /// This connection's session holds the projections' lock (PostgreSQL).
    leader: bool,
}

/// Keeps the read models up to date with the store.
///
/// On PostgreSQL several instances share one set of read models; only the one whose session
/// holds an advisory lock folds. The lock lives on the folding connection itself, so a leader
/// whose session is gone can neither fold nor keep the lock, and another instance takes over
/// within [`LEADER_RETRY`], from the checkpoint. (The checkpoint row is also locked by every
/// fold, so even two folders at once would apply each event once.)
pub struct Projector {
    store: Arc<dyn EventStore>,
    at: ReadModelsAt,
    folder: Option<Folder>,
    checkpoint: watch::Sender<u64>,
    paused: watch::Sender<Option<String>>,
    lag: ProjectionLag,
    max_batch: usize,
}

impl Projector {
    /// Opens (creating when absent) the read models in `data_dir`.
    pub fn open(store: Arc<dyn EventStore>, data_dir: &Path) -> Result<Projector, ProjectionError> {
        Self::open_at(store, ReadModelsAt::data_dir(data_dir))
    }

    /// Opens (creating when absent) the read models wherever they live.
    pub fn open_at(
        store: Arc<dyn EventStore>,
        at: ReadModelsAt,
    ) -> Result<Projector, ProjectionError> {
        let (conn, generation) = open_live_generation(&at)?;
        let position = checkpoint(&conn)?;
        let (checkpoint_tx, checkpoint_rx) = watch::channel(position);
        let (paused_tx, paused_rx) = watch::channel(None);
        let lag = ProjectionLag {
            checkpoint: checkpoint_rx,
            head: store.watch_head(),
            paused: paused_rx,
        };
        Ok(Projector {
            store,
            at,
            folder: Some(Folder {
                conn,
                generation,
                phones: PhoneBook::default(),
                leader: false,
            }),
            checkpoint: checkpoint_tx,
            paused: paused_tx,
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

    pub fn at(&self) -> &ReadModelsAt {
        &self.at
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
            position = self.fold(batch, position).await?.checkpoint;
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
                Err(ProjectionError::Superseded(file)) => {
                    // Not trouble: the folder is reopened on the installed file and follows
                    // on from its checkpoint.
                    tracing::info!(replaced = %file.display(), "a rebuild installed new read models; folding into them");
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "projections paused");
                    self.paused.send_replace(Some(error.summary().to_owned()));
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
        if !self.lead(shutdown).await? {
            return Ok(());
        }
        let start = self.stored_checkpoint().await?;
        self.checkpoint.send_replace(start);
        // The read models answer again: whatever paused the runner is over (a store that
        // cannot be read pauses it again at the next read).
        self.paused
            .send_if_modified(|paused| paused.take().is_some());
        let mut subscription = Subscription::new(Arc::clone(&self.store), start + 1);
        let head = self.store.watch_head();
        let mut last_fold: Option<Instant> = None;
        loop {
            let first = tokio::select! {
                biased;
                _ = stopped(shutdown) => return Ok(()),
                event = subscription.next() => event?,
            };
            // At most one batch per FOLD_INTERVAL while events keep coming: under load each
            // commit of the read models then carries many deliveries instead of a few, and the
            // rows they share are written once. After a quiet spell the first event is folded
            // at once.
            if let Some(due) = last_fold.map(|at| at + FOLD_INTERVAL)
                && Instant::now() < due
            {
                tokio::select! {
                    biased;
                    _ = stopped(shutdown) => return Ok(()),
                    _ = tokio::time::sleep_until(due.into()) => {}
                }
            }
            last_fold = Some(Instant::now());
            // Take what is already committed, up to a batch: never wait for more once the
            // head has been reached, so a quiet store is folded at once.
            let mut batch = vec![first];
            let known_head = *head.borrow();
            while batch.len() < self.max_batch
                && batch.last().is_some_and(|e| e.position < known_head)
            {
                batch.push(subscription.next().await?);
            }
            let folded_to = *self.checkpoint.borrow();
            let folded = self.fold(batch, folded_to).await?;
            self.checkpoint.send_replace(folded.checkpoint);
        }
    }

    /// Waits until this instance leads the projections (at once on SQLite, whose file only
    /// this process writes); false when shutdown came first. Meanwhile the lag follows the
    /// leader's checkpoint.
    async fn lead(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, ProjectionError> {
        let mut waiting_said = false;
        loop {
            let (leader, stored) = self
                .with_folder(|folder| {
                    if !folder.leader && folder.conn.dialect() == Dialect::Postgres {
                        // The lock is freed when the server sees this session end: let it
                        // probe a silent client within seconds rather than the OS's two hours.
                        // Best effort: a server too old for one of them still works.
                        if let Err(error) = folder.conn.execute_batch(
                            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;
                             SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000",
                        ) {
                            tracing::debug!(%error, "keepalive settings not taken");
                        }
                        folder.leader = folder.conn.query_row(
                            "SELECT pg_try_advisory_lock(hashtext('switchboard projections'),
                                                         hashtext(current_schema()))",
                            (),
                            |r| r.get::<bool>(0),
                        )?;
                    }
                    let leader = folder.leader || folder.conn.dialect() == Dialect::Sqlite;
                    Ok((leader, checkpoint(&folder.conn)?))
                })
                .await?;
            self.checkpoint.send_replace(stored);
            if leader {
                if waiting_said {
                    tracing::info!(read_models = %self.at, "this instance now leads the projections");
                }
                return Ok(true);
            }
            if !waiting_said {
                tracing::info!(read_models = %self.at,
                    "another instance leads the projections; standing by");
                waiting_said = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(LEADER_RETRY) => {}
                _ = stopped(shutdown) => return Ok(false),
            }
        }
    }

    async fn fold(
        &mut self,
        batch: Vec<RecordedEvent>,
        folded_to: u64,
    ) -> Result<Folded, ProjectionError> {
        self.with_folder(move |folder| {
            fold_batch(
                &mut folder.conn,
                &folder.phones,
                batch,
                folded_to,
                folder.generation.as_ref(),
            )
        })
        .await
    }

    /// Runs `work` with the folder on the blocking pool. A folder whose work failed is not
    /// kept: its connection may be broken, and on PostgreSQL its session may have lost the
    /// lock; the next attempt connects (and asks for the lock) afresh.
    async fn with_folder<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Folder) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let kept = self.folder.take();
        let at = self.at.clone();
        // Opening and dropping happen on the blocking thread too: PostgreSQL's synchronous
        // client may not connect or close on an async one.
        let (folder, result) = tokio::task::spawn_blocking(move || {
            let mut folder = match kept {
                Some(folder) => folder,
                None => match open_live_generation(&at) {
                    Ok((conn, generation)) => Folder {
                        conn,
                        generation,
                        phones: PhoneBook::default(),
                        leader: false,
                    },
                    Err(error) => return (None, Err(error)),
                },
            };
            let result = work(&mut folder);
            (result.is_ok().then_some(folder), result)
        })
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
        self.folder = folder;
        result
    }

    async fn stored_checkpoint(&mut self) -> Result<u64, ProjectionError> {
        self.with_folder(|folder| checkpoint(&folder.conn)).await
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
