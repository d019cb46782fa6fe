//! Rows a batch holds in memory and writes once at its end.
//!
//! A call's events come close together (started, an availability check, ended, analysed, its
//! booking linked), and each of them moved the call's row with one to three statements: about
//! 40 % of the fold's time on the 1M-event rebuild. Now a batch reads such a row at most once,
//! the folds change it in memory, and [`Held::flush`] writes each changed row with one
//! statement before the checkpoint, in the batch's transaction. Like the counts, live
//! processing and rebuilds both fold through here, so both write the same rows.
//!
//! SQL that finds held rows by anything but their key must see the batch's changes: it runs
//! after a flush, or changes the held rows as well as the table (see `call_rows.rs`).
//!
//! On SQLite a held row reaches the table in its state at the end of the batch (or, when a
//! batch is retried with a savepoint per event, at the end of each event), never in the states
//! between. That gives the same rows wherever batches end only because SQLite cannot refuse a
//! held row for its values: keys come from the events, every NOT NULL column is always set, and
//! SQLite takes any text. PostgreSQL refuses some (NUL in text, over-long index entries), so
//! there the rows are written after every event: an event that cannot be written fails on its
//! own, as when every statement went to the table. A table given a constraint a fold could
//! break must not be held.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::sql::{Conn, OptionalExtension, Row, SqlResult};

/// A read-model row kept whole in memory, keyed by its text primary key.
pub(crate) trait Record: Sized {
    /// Every column of the row whose key is `?1`, in [`Record::read`]'s order.
    const SELECT: &'static str;

    fn read(row: &Row<'_>) -> SqlResult<Self>;

    /// Inserts the row, or replaces every column of the stored one.
    fn write(&self, conn: &Conn) -> SqlResult<()>;
}

/// A row as the batch holds it: None when the table has no such row (yet), and whether the
/// table still lacks this version of it.
struct Entry<R> {
    row: Option<R>,
    changed: bool,
}

/// The rows of one table a batch has read or changed; one per transaction attempt, like the
/// counts.
pub(crate) struct Held<R> {
    rows: RefCell<HashMap<String, Entry<R>>>,
    /// The changed keys in the order they were first changed, so every run writes (and SQLite
    /// numbers) the rows alike.
    changed: RefCell<Vec<String>>,
}

impl<R> Default for Held<R> {
    fn default() -> Self {
        Held {
            rows: RefCell::default(),
            changed: RefCell::default(),
        }
    }
}

impl<R: Record> Held<R> {
    /// Whether the row has been read into the batch already.
    pub(crate) fn holds(&self, key: &str) -> bool {
        self.rows.borrow().contains_key(key)
    }

    /// Reads the row into the batch the first time it is asked for.
    fn hold(&self, conn: &Conn, key: &str) -> SqlResult<()> {
        if self.holds(key) {
            return Ok(());
        }
        let row = conn
            .prepare_cached(R::SELECT)?
            .query_row([key], R::read)
            .optional()?;
        self.rows.borrow_mut().insert(
            key.to_owned(),
            Entry {
                row,
                changed: false,
            },
        );
        Ok(())
    }

    /// What `look` makes of the row as it stands in this batch (None: no such row).
    pub(crate) fn read<T>(
        &self,
        conn: &Conn,
        key: &str,
        look: impl FnOnce(Option<&R>) -> T,
    ) -> SqlResult<T> {
        self.hold(conn, key)?;
        let rows = self.rows.borrow();
        Ok(look(rows.get(key).and_then(|e| e.row.as_ref())))
    }

    /// Lets `edit` change the row (or create it, from None); it is written at the next flush.
    pub(crate) fn change<T>(
        &self,
        conn: &Conn,
        key: &str,
        edit: impl FnOnce(&mut Option<R>) -> T,
    ) -> SqlResult<T> {
        self.hold(conn, key)?;
        let mut rows = self.rows.borrow_mut();
        let entry = rows
            .get_mut(key)
            .expect("hold() keeps every row it is asked for");
        let result = edit(&mut entry.row);
        if entry.row.is_some() && !entry.changed {
            entry.changed = true;
            self.changed.borrow_mut().push(key.to_owned());
        }
        Ok(result)
    }

    /// Changes held rows in place without marking them for writing: for a change the caller
    /// has made in the table too.
    pub(crate) fn mirror(&self, keys: &[String], edit: impl Fn(&mut R)) {
        let mut rows = self.rows.borrow_mut();
        for key in keys {
            if let Some(row) = rows.get_mut(key).and_then(|e| e.row.as_mut()) {
                edit(row);
            }
        }
    }

    /// Writes every row changed since the last flush; the rows stay held, unchanged.
    pub(crate) fn flush(&self, conn: &Conn) -> SqlResult<()> {
        let changed = std::mem::take(&mut *self.changed.borrow_mut());
        let mut rows = self.rows.borrow_mut();
        for key in changed {
            if let Some(entry) = rows.get_mut(&key) {
                if let Some(row) = &entry.row {
                    row.write(conn)?;
                }
                entry.changed = false;
            }
        }
        Ok(())
    }

    /// Drops everything held, changed or not: the event that changed it was rolled back.
    pub(crate) fn forget(&self) {
        self.rows.borrow_mut().clear();
        self.changed.borrow_mut().clear();
    }
}
