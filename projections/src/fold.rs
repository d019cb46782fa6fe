//! One batch of events into the read models: rows and checkpoint in one transaction, so the
//! effect of every event is applied exactly once however often a process stops and restarts.

use foldhash::HashMap;

use switchboard_store::RecordedEvent;

use crate::ProjectionError;
use crate::apply::{ApplyError, Batch, Decoded, FreshTables, Mode, apply, decode, phone_numbers};
use crate::db::{checkpoint, checkpoint_for_update, set_checkpoint};
use crate::generation::Generation;
use crate::phone::PhoneBook;
use crate::sql::Conn;

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Events folded, including those no read model uses (`DeliveryReceived`); events at or
    /// below the stored checkpoint are skipped, not counted.
    pub applied: usize,
    /// The checkpoint after the batch.
    pub checkpoint: u64,
}

/// Applies `events` (in global order) beyond the checkpoint stored in the file, and moves the
/// checkpoint, in one transaction. The checkpoint is read inside the transaction: a rebuild
/// that swapped newer tables in meanwhile makes the already-covered events no-ops.
///
/// The batch is first applied optimistically, without a savepoint per event; if one event
/// cannot be applied, the transaction is rolled back and the batch applied again with a
/// savepoint per event, so that event becomes an anomaly and the others still apply.
///
/// `folded_to` is the checkpoint this folder last saw: finding the stored one behind it means
/// the read models were emptied underneath (a newer build rebuilding an older layout), and the
/// batch is refused rather than applied on top of a gap. `generation` is the file a SQLite
/// connection opened: once a full rebuild has installed another, the batch is refused
/// ([`ProjectionError::Superseded`]) and the folder reopens the read models.
pub(crate) fn fold_batch(
    conn: &mut Conn,
    phones: &PhoneBook,
    events: impl IntoIterator<Item = RecordedEvent>,
    folded_to: u64,
    generation: Option<&Generation>,
) -> Result<Folded, ProjectionError> {
    fold_decoded(
        conn,
        phones,
        DecodedBatch::decode(events, phones),
        Some(folded_to),
        generation,
        Undo::Batch,
        None,
    )
}

/// How a batch can be undone when one of its events cannot be applied, so that it is applied
/// again with a savepoint per event and that event becomes an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undo {
    /// The batch is a transaction of its own (a savepoint when the caller has a SQLite
    /// transaction open): it is rolled back alone.
    Batch,
    /// The batch's statements belong to the caller's open SQLite transaction, with no
    /// savepoint: a failing batch ends the fold with [`ProjectionError::NotUndoable`], and the
    /// caller rolls back its whole transaction. A savepoint copies every page the batch
    /// changes into SQLite's journal before changing it; a rebuild's replay, whose pages
    /// almost never fail, folds ~10 % faster without (docs/benchmarks.md).
    Caller,
}

/// A batch decoded ahead of its transaction (the rebuild decodes on the reader's thread, so
/// the fold thread only writes).
pub(crate) struct DecodedBatch {
    /// Every event's position, including those no read model uses.
    positions: Vec<u64>,
    decoded: Vec<Decoded>,
    /// The batch's other phone numbers (attendees', requests', numbers being assigned),
    /// normalized ahead of the fold by another memo, for the fold's (see
    /// [`DecodedBatch::with_other_numbers`]); empty when the fold normalizes them itself.
    phones: HashMap<String, Option<String>>,
}

impl DecodedBatch {
    /// Decodes `events`, normalizing a call's numbers into each event through `phones`. The
    /// result is the same whichever memo does it (normalizing is a pure function): the live
    /// runner decodes with the fold's own memo; a rebuild decodes on the reader's thread with
    /// one of its own, so the work leaves the fold thread.
    pub(crate) fn decode(
        events: impl IntoIterator<Item = RecordedEvent>,
        phones: &PhoneBook,
    ) -> DecodedBatch {
        let mut positions = Vec::new();
        let decoded: Vec<Decoded> = events
            .into_iter()
            .filter_map(|event| {
                positions.push(event.position);
                decode(event, phones)
            })
            .collect();
        DecodedBatch {
            positions,
            decoded,
            phones: HashMap::default(),
        }
    }

    /// Normalizes the batch's other numbers through `phones`, a memo other than the fold's,
    /// and hands them to the fold's with the batch (a rebuild's reader thread).
    pub(crate) fn with_other_numbers(mut self, phones: &PhoneBook) -> DecodedBatch {
        for raw in self.decoded.iter().flat_map(phone_numbers) {
            if !self.phones.contains_key(raw) {
                self.phones
                    .insert(raw.to_owned(), phones.normalize(Some(raw)));
            }
        }
        self
    }
}

/// [`fold_batch`] for a batch decoded ahead, with `folded_to` optional (a rebuild's replay
/// has no earlier checkpoint to hold the file to) and `undo` saying how a failing batch is
/// undone: with [`Undo::Caller`] it is not retried here but refused with
/// [`ProjectionError::NotUndoable`], for the caller to roll back. `fresh`: the tables were
/// empty when the caller began to fold into them, and `fresh` has followed them since (a
/// replay into fresh tables), so rows it never saw written are not looked for.
pub(crate) fn fold_decoded(
    conn: &mut Conn,
    phones: &PhoneBook,
    batch: DecodedBatch,
    folded_to: Option<u64>,
    generation: Option<&Generation>,
    undo: Undo,
    fresh: Option<&FreshTables>,
) -> Result<Folded, ProjectionError> {
    let DecodedBatch {
        positions,
        decoded,
        phones: normalized,
    } = batch;
    phones.learn(normalized);
    let Some(&last) = positions.last() else {
        return Ok(Folded {
            applied: 0,
            checkpoint: checkpoint(conn)?,
        });
    };
    for mode in [Mode::Optimistic, Mode::Careful] {
        let tx = match undo {
            Undo::Batch => conn.transaction()?,
            Undo::Caller => conn.in_open_transaction().ok_or_else(|| {
                ProjectionError::Task(
                    "a batch without a savepoint needs an open transaction".into(),
                )
            })?,
        };
        let stored = checkpoint_for_update(&tx)?;
        // Looked at under the write lock, which an install holds while it moves the link: a
        // batch either commits before the switch or learns of it here.
        if let Some(generation) = generation
            && !generation.is_current()?
        {
            return Err(ProjectionError::Superseded(generation.file().to_path_buf()));
        }
        if let Some(expected) = folded_to.filter(|expected| stored < *expected) {
            return Err(ProjectionError::CheckpointMovedBack { expected, stored });
        }
        if last <= stored {
            return Ok(Folded {
                applied: 0,
                checkpoint: stored,
            });
        }
        let mut failed = None;
        let batch = fresh.map_or_else(Batch::default, Batch::replaying);
        for event in decoded.iter().filter(|e| e.position > stored) {
            match apply(&tx, phones, &batch, event, mode) {
                Ok(()) => {}
                Err(ApplyError::Fatal(error)) => return Err(error),
                Err(ApplyError::Event(message)) => {
                    failed = Some(message);
                    break;
                }
            }
        }
        if failed.is_none() {
            // A held row the database refuses fails the batch like an event would; the careful
            // pass writes each event's rows under its savepoint, so it finds the event.
            match batch.flush_rows(&tx).map_err(ApplyError::from) {
                Ok(()) => {}
                Err(ApplyError::Fatal(error)) => return Err(error),
                Err(ApplyError::Event(message)) => failed = Some(message),
            }
        }
        if let Some(message) = failed {
            if undo == Undo::Caller {
                return Err(ProjectionError::NotUndoable(message));
            }
            // Only the optimistic pass can get here; the careful one turns it into an anomaly.
            tracing::debug!(%message, "batch retried with a savepoint per event");
            tx.rollback()?;
            continue;
        }
        batch.counts.flush(&tx)?;
        set_checkpoint(&tx, last)?;
        tx.commit()?;
        return Ok(Folded {
            applied: positions.iter().filter(|p| **p > stored).count(),
            checkpoint: last,
        });
    }
    Err(ProjectionError::Task(
        "an event failed outside its savepoint".into(),
    ))
}
