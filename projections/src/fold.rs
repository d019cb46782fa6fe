//! One batch of events into the read models: rows and checkpoint in one transaction, so the
//! effect of every event is applied exactly once however often a process stops and restarts.

use rusqlite::{Connection, TransactionBehavior};
use switchboard_store::RecordedEvent;

use crate::ProjectionError;
use crate::apply::apply_event;
use crate::db::{checkpoint, set_checkpoint};
use crate::phone::PhoneBook;

/// What a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Events applied (events at or below the stored checkpoint are skipped, not counted).
    pub applied: usize,
    /// The checkpoint after the batch.
    pub checkpoint: u64,
}

/// Applies `events` (in global order) beyond the checkpoint stored in the file, and moves the
/// checkpoint, in one transaction. The checkpoint is read inside the transaction: a rebuild
/// that swapped newer tables in meanwhile makes the already-covered events no-ops.
pub(crate) fn fold_batch(
    conn: &mut Connection,
    phones: &PhoneBook,
    events: impl IntoIterator<Item = RecordedEvent>,
) -> Result<Folded, ProjectionError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut position = checkpoint(&tx)?;
    let mut applied = 0;
    for event in events {
        if event.position <= position {
            continue;
        }
        position = event.position;
        apply_event(&tx, phones, event)?;
        applied += 1;
    }
    if applied > 0 {
        set_checkpoint(&tx, position)?;
    }
    tx.commit()?;
    Ok(Folded {
        applied,
        checkpoint: position,
    })
}
