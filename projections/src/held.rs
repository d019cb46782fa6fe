//! Rows a batch holds in memory, so that each is read and written once per batch rather than
//! once or more per event.
//!
//! A call's events come close together (started, an availability check, ended, analysed, its
//! booking linked), and each of them moved the call's row with one to three statements: about
//! a third of the fold's time on the 1M-event rebuild. Now a batch reads such a row at most once,
//! the folds change it in memory, and [`Held::flush`] writes each changed row with one
//! statement. Customers are held the same way: nearly every event of a call or booking merges
//! into its customer (the fold's instructions ~5 % fewer on the 100k-event rebuild history,
//! callgrind). Like the counts, live processing and rebuilds both fold through here, so both
//! write the same rows.
//!
//! When rows are written: on SQLite at the end of the batch, before the checkpoint, in the
//! batch's transaction; after each event when a batch is retried with a savepoint per event;
//! and on PostgreSQL after every event. SQL that finds held rows by anything but their key
//! must see the batch's changes. For the one other column a table's rows are found by (its
//! [`Record::secondary`]), the batch keeps an index of its held rows: a lookup takes the
//! table's rows the batch does not hold and the held ones [`Held::each_by`] visits, and a
//! change made in SQL by that column is made to the held rows too ([`Held::mirror_by`]).
//! Rarer lookups by other columns take the table's rows the batch does not hold and scan the
//! held ones ([`Held::found`]).
//!
//! On SQLite, then, a row written at the end of a batch skips the states it went through
//! within the batch. That gives the same rows wherever batches end only because SQLite cannot
//! refuse a held row for its values: keys come from the events, every NOT NULL column is
//! always set, and SQLite takes any text. PostgreSQL refuses some (over-long index entries),
//! which is why it writes after every event: an event that cannot be written fails on its own,
//! as when every statement went to the table. A table given a constraint a fold could
//! break must not be held.

use foldhash::HashMap;
use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sql::{OptionalExtension, Row, SqlResult, Statement, Tx};

/// A read-model row kept whole in memory, keyed by its text primary key.
pub(crate) trait Record: Sized {
    /// Every column of the row whose key is `?1`, in [`Record::from_row`]'s order.
    const SELECT: &'static str;

    fn from_row(row: &Row<'_>) -> SqlResult<Self>;

    /// Inserts the row whose columns are its parameters, or sets the stored one's columns that
    /// can change (never its key or `seq`; nor what its key is derived from, as a customer's).
    const UPSERT: &'static str;

    /// Runs [`Record::UPSERT`] with this row's columns.
    fn write(&self, upsert: &mut Statement<'_>) -> SqlResult<()>;

    /// The column other than the key that the folds find rows by, if any: the batch indexes
    /// its held rows by it.
    fn secondary(&self) -> Option<&str> {
        None
    }

    /// The global position of the event that created the row: the order rows are found in.
    fn seq(&self) -> i64;

    /// The row's primary key, as [`Record::UPSERT`] stores it.
    fn key(&self) -> &str;
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
    /// [`Record::secondary`] value → the keys of the held rows that had it when they were
    /// read or changed. A row may have moved on since: the row itself says.
    by_secondary: RefCell<HashMap<String, Vec<String>>>,
    /// The keys written to the table so far, when it was empty when the writing began (a
    /// replay into fresh tables): a key never written is looked up in no table.
    written: Option<Arc<WrittenKeys>>,
}

impl<R> Default for Held<R> {
    fn default() -> Self {
        Held {
            rows: RefCell::default(),
            changed: RefCell::default(),
            by_secondary: RefCell::default(),
            written: None,
        }
    }
}

/// The keys of the rows written to one table since it was empty, as a Bloom filter of fixed
/// size: a key the filter has not seen is the key of no row, so reading it is skipped. In a
/// replay into fresh tables most reads are of rows not written yet (about 44,300 of 49,400 on
/// the 100k-event history); a wrong "maybe" costs only the read, and the fixed size keeps
/// memory flat however long the history is (2 MiB a table: with 1.3 million keys, ten times
/// the calls of the 1M-event history, about 1 % of absent keys are still read, and with 5
/// million a fifth, by the Bloom filter's formula; not measured).
pub(crate) struct WrittenKeys {
    bits: Box<[AtomicU64]>,
}

impl WrittenKeys {
    /// log2 of the filter's bits.
    const BITS_LOG2: u32 = 24;
    /// Bits set per key.
    const PROBES: u64 = 3;

    pub(crate) fn new() -> Arc<WrittenKeys> {
        Arc::new(WrittenKeys {
            bits: (0..1usize << (Self::BITS_LOG2 - 6))
                .map(|_| AtomicU64::new(0))
                .collect(),
        })
    }

    /// The filter's bits for `key`, from one hash (double hashing).
    fn probes(key: &str) -> impl Iterator<Item = (usize, u64)> {
        let hash = foldhash::fast::FixedState::with_seed(0).hash_one(key);
        let step = hash.rotate_left(32) | 1;
        (0..Self::PROBES).map(move |i| {
            let bit = hash.wrapping_add(i.wrapping_mul(step)) >> (64 - Self::BITS_LOG2);
            ((bit >> 6) as usize, 1 << (bit & 63))
        })
    }

    fn insert(&self, key: &str) {
        for (word, mask) in Self::probes(key) {
            self.bits[word].fetch_or(mask, Ordering::Relaxed);
        }
    }

    /// False when `key` was never written.
    fn may_hold(&self, key: &str) -> bool {
        Self::probes(key).all(|(word, mask)| self.bits[word].load(Ordering::Relaxed) & mask != 0)
    }
}

impl<R: Record> Held<R> {
    /// Rows of a table that was empty when `written` began to collect its keys.
    pub(crate) fn written_since_empty(written: Arc<WrittenKeys>) -> Self {
        Held {
            written: Some(written),
            ..Held::default()
        }
    }

    /// Whether the row has been read into the batch already.
    pub(crate) fn holds(&self, key: &str) -> bool {
        self.rows.borrow().contains_key(key)
    }

    /// Reads the row into the batch the first time it is asked for.
    fn hold(&self, conn: &Tx<'_>, key: &str) -> SqlResult<()> {
        if self.holds(key) {
            return Ok(());
        }
        let row = if self.written.as_ref().is_some_and(|w| !w.may_hold(key)) {
            None
        } else {
            conn.prepare_cached(R::SELECT)?
                .query_row([key], R::from_row)
                .optional()?
        };
        if let Some(row) = &row {
            self.index(row, key);
        }
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
        conn: &Tx<'_>,
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
        conn: &Tx<'_>,
        key: &str,
        edit: impl FnOnce(&mut Option<R>) -> T,
    ) -> SqlResult<T> {
        self.hold(conn, key)?;
        let mut rows = self.rows.borrow_mut();
        let entry = rows
            .get_mut(key)
            .expect("hold() keeps every row it is asked for");
        let result = edit(&mut entry.row);
        if let Some(row) = &entry.row {
            self.index(row, key);
            if !entry.changed {
                entry.changed = true;
                self.changed.borrow_mut().push(key.to_owned());
            }
        }
        Ok(result)
    }

    /// Files the held row under its secondary value, once.
    fn index(&self, row: &R, key: &str) {
        let Some(value) = row.secondary() else {
            return;
        };
        let mut index = self.by_secondary.borrow_mut();
        match index.get_mut(value) {
            Some(keys) if keys.iter().any(|k| k == key) => {}
            Some(keys) => keys.push(key.to_owned()),
            None => {
                index.insert(value.to_owned(), vec![key.to_owned()]);
            }
        }
    }

    /// Visits the held rows whose secondary value is `value` now, in the order they were
    /// first filed under it. Neither `visit` nor the caller may use this table's held rows
    /// meanwhile (they are borrowed mutably, as for [`Held::mirror_by`]).
    pub(crate) fn each_by(&self, value: &str, mut visit: impl FnMut(&R)) {
        self.each_held_by(value, |row| visit(row));
    }

    /// [`Held::each_by`], with each row to change.
    fn each_held_by(&self, value: &str, mut visit: impl FnMut(&mut R)) {
        let index = self.by_secondary.borrow();
        let Some(keys) = index.get(value) else {
            return;
        };
        let mut rows = self.rows.borrow_mut();
        for key in keys {
            if let Some(row) = rows.get_mut(key).and_then(|e| e.row.as_mut())
                && row.secondary() == Some(value)
            {
                visit(row);
            }
        }
    }

    /// The keys a query by other columns finds once the batch's changes count, in `seq` order,
    /// without a flush: the table's rows (`stored`, as key and `seq`) the batch does not hold,
    /// and the held rows `matches` accepts (their held version is the current one; a row the
    /// table had may no longer match, one it lacked may match now). For lookups too rare to
    /// keep an index of held rows for, such as the waiting calls of a newly assigned number:
    /// a flush before them wrote each held row twice when the lookup changed it again.
    pub(crate) fn found<E>(
        &self,
        stored: impl IntoIterator<Item = Result<(String, i64), E>>,
        matches: impl Fn(&R) -> bool,
    ) -> Result<Vec<String>, E> {
        let mut found = Vec::new();
        for row in stored {
            let (key, seq) = row?;
            if !self.holds(&key) {
                found.push((seq, key));
            }
        }
        for (key, entry) in self.rows.borrow().iter() {
            if let Some(row) = &entry.row
                && matches(row)
            {
                found.push((row.seq(), key.clone()));
            }
        }
        found.sort_unstable();
        Ok(found.into_iter().map(|(_, key)| key).collect())
    }

    /// Changes the row if there is one; a no-op otherwise (as an UPDATE would be).
    pub(crate) fn update(
        &self,
        conn: &Tx<'_>,
        key: &str,
        edit: impl FnOnce(&mut R),
    ) -> SqlResult<()> {
        self.change(conn, key, |slot| {
            if let Some(row) = slot {
                edit(row);
            }
        })
    }

    /// Deletes the row with `delete` (SQL taking the key as `?1`) and holds it as absent, so
    /// the batch neither writes it back nor reads it again.
    pub(crate) fn delete(&self, conn: &Tx<'_>, key: &str, delete: &'static str) -> SqlResult<()> {
        conn.prepare_cached(delete)?.execute([key])?;
        self.rows.borrow_mut().insert(
            key.to_owned(),
            Entry {
                row: None,
                changed: false,
            },
        );
        Ok(())
    }

    /// Changes the held rows whose secondary value is `value` in place, without marking them
    /// for writing: for a change the caller has made in the table too.
    pub(crate) fn mirror_by(&self, value: &str, edit: impl Fn(&mut R)) {
        self.each_held_by(value, edit);
    }

    /// Writes every row changed since the last flush; the rows stay held, unchanged. When a
    /// write fails, the rows not yet written stay queued.
    pub(crate) fn flush(&self, conn: &Tx<'_>) -> SqlResult<()> {
        let changed = std::mem::take(&mut *self.changed.borrow_mut());
        let mut rows = self.rows.borrow_mut();
        for (done, key) in changed.iter().enumerate() {
            let Some(entry) = rows.get_mut(key) else {
                continue;
            };
            if let Some(row) = &entry.row {
                if let Some(written) = &self.written {
                    // The key the table stores, before the write: a key the filter holds in
                    // vain only costs a read.
                    debug_assert_eq!(row.key(), key, "a held row keeps the key it is held by");
                    written.insert(row.key());
                }
                if let Err(error) = conn
                    .prepare_cached(R::UPSERT)
                    .and_then(|mut upsert| row.write(&mut upsert))
                {
                    self.changed
                        .borrow_mut()
                        .extend_from_slice(&changed[done..]);
                    return Err(error);
                }
            }
            entry.changed = false;
        }
        Ok(())
    }

    /// Drops everything held, changed or not: the event that changed it was rolled back.
    pub(crate) fn forget(&self) {
        self.rows.borrow_mut().clear();
        self.changed.borrow_mut().clear();
        self.by_secondary.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Conn, params};

    /// A row of a two-column table found by its `owner` as well as its key.
    #[derive(Debug, Clone, PartialEq)]
    struct Pet {
        name: String,
        owner: Option<String>,
        seq: i64,
    }

    impl Record for Pet {
        const SELECT: &'static str = "SELECT name, owner, seq FROM pets WHERE name = ?1";

        fn from_row(row: &Row<'_>) -> SqlResult<Pet> {
            Ok(Pet {
                name: row.get(0)?,
                owner: row.get(1)?,
                seq: row.get(2)?,
            })
        }

        const UPSERT: &'static str = "INSERT INTO pets (name, owner, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner";

        fn write(&self, upsert: &mut Statement<'_>) -> SqlResult<()> {
            upsert.execute(params![self.name, self.owner, self.seq])?;
            Ok(())
        }

        fn secondary(&self) -> Option<&str> {
            self.owner.as_deref()
        }

        fn seq(&self) -> i64 {
            self.seq
        }

        fn key(&self) -> &str {
            &self.name
        }
    }

    fn table() -> Conn {
        let conn = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch(
            "CREATE TABLE pets (name TEXT PRIMARY KEY, owner TEXT, seq INTEGER NOT NULL);
             INSERT INTO pets VALUES ('rex', 'ann', 1), ('tom', 'ann', 2), ('kit', 'bob', 3);",
        )
        .unwrap();
        conn
    }

    fn pet(name: &str, seq: i64) -> Pet {
        Pet {
            name: name.into(),
            owner: None,
            seq,
        }
    }

    /// In a table that was empty when the filter began, a row written by one batch is read
    /// by the next, and a key never written is not looked up at all: once the table lacks a
    /// column the SELECT names, a lookup would fail.
    #[test]
    fn a_key_never_written_since_the_table_was_empty_is_not_looked_up() {
        let mut conn = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        let written = WrittenKeys::new();
        conn.execute_batch(
            "CREATE TABLE pets (name TEXT PRIMARY KEY, owner TEXT, seq INTEGER NOT NULL)",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let held = Held::<Pet>::written_since_empty(Arc::clone(&written));
        held.change(&tx, "rex", |p| *p = Some(pet("rex", 1)))
            .unwrap();
        held.flush(&tx).unwrap();
        tx.commit().unwrap();
        let tx = conn.transaction().unwrap();
        let held = Held::<Pet>::written_since_empty(Arc::clone(&written));
        assert_eq!(
            held.read(&tx, "rex", |p| p.cloned()).unwrap(),
            Some(pet("rex", 1))
        );
        // Without the filter the missing column would fail this lookup.
        tx.execute_batch("ALTER TABLE pets DROP COLUMN owner")
            .unwrap();
        assert_eq!(held.read(&tx, "tom", |p| p.cloned()).unwrap(), None);
        let looked_up = Held::<Pet>::default().read(&tx, "tom", |p| p.cloned());
        assert!(
            looked_up
                .as_ref()
                .is_err_and(|e| e.to_string().contains("owner")),
            "a held table without the filter looks the key up: {looked_up:?}"
        );
    }

    /// The filter never forgets a key, and says "maybe" for few keys it never saw.
    #[test]
    fn the_written_keys_filter_holds_every_key_and_few_others() {
        let written = WrittenKeys::new();
        let key = |i: u32| format!("call_{:08x}", i.wrapping_mul(2_654_435_761));
        for i in 0..200_000 {
            written.insert(&key(i));
        }
        assert!((0..200_000).all(|i| written.may_hold(&key(i))));
        let others = (200_000..300_000)
            .filter(|&i| written.may_hold(&key(i)))
            .count();
        // 3 bits of 2^24 per key, 200,000 keys: ~0.004 % expected.
        assert!(others < 100, "{others} of 100,000 absent keys said maybe");
    }

    fn owned_by(held: &Held<Pet>, owner: &str) -> Vec<String> {
        let mut names = Vec::new();
        held.each_by(owner, |pet| names.push(pet.name.clone()));
        names
    }

    #[test]
    fn the_index_follows_held_rows_to_their_current_secondary_value() {
        let mut conn = table();
        let conn = conn.transaction().unwrap();
        let held = Held::<Pet>::default();
        assert!(owned_by(&held, "ann").is_empty(), "nothing read yet");
        held.read(&conn, "rex", |_| ()).unwrap();
        held.read(&conn, "tom", |_| ()).unwrap();
        assert_eq!(owned_by(&held, "ann"), ["rex", "tom"]);

        // Given away: found under the new owner, no longer under the old one.
        held.update(&conn, "rex", |pet| pet.owner = Some("bob".into()))
            .unwrap();
        assert_eq!(owned_by(&held, "ann"), ["tom"]);
        assert_eq!(owned_by(&held, "bob"), ["rex"]);
        // Given back: filed once, not twice.
        held.update(&conn, "rex", |pet| pet.owner = Some("ann".into()))
            .unwrap();
        held.update(&conn, "rex", |pet| pet.owner = Some("ann".into()))
            .unwrap();
        assert_eq!(owned_by(&held, "ann"), ["rex", "tom"]);

        // Created in the batch, and deleted in it.
        held.change(&conn, "max", |slot| {
            *slot = Some(Pet {
                name: "max".into(),
                owner: Some("ann".into()),
                seq: 4,
            })
        })
        .unwrap();
        held.delete(&conn, "tom", "DELETE FROM pets WHERE name = ?1")
            .unwrap();
        assert_eq!(owned_by(&held, "ann"), ["rex", "max"]);

        // Rows never read are the table's to tell.
        assert!(owned_by(&held, "bob").is_empty());
        held.forget();
        assert!(owned_by(&held, "ann").is_empty(), "forgotten with the rows");
    }

    #[test]
    fn a_mirrored_change_reaches_only_rows_with_that_value_now() {
        let mut conn = table();
        let conn = conn.transaction().unwrap();
        let held = Held::<Pet>::default();
        held.read(&conn, "rex", |_| ()).unwrap();
        held.update(&conn, "tom", |pet| pet.owner = Some("bob".into()))
            .unwrap();
        held.mirror_by("ann", |pet| pet.name.make_ascii_uppercase());
        let name = |key| {
            held.read(&conn, key, |pet| pet.unwrap().name.clone())
                .unwrap()
        };
        assert_eq!(name("rex"), "REX");
        assert_eq!(name("tom"), "tom", "moved to bob before the change");
        // Mirrored changes are the table's already: the flush writes only what was changed.
        held.flush(&conn).unwrap();
        let names: Vec<(String, String)> = conn
            .prepare_cached("SELECT name, owner FROM pets ORDER BY name")
            .unwrap()
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = [("kit", "bob"), ("rex", "ann"), ("tom", "bob")];
        assert_eq!(names, expected.map(|(n, o)| (n.to_owned(), o.to_owned())));
    }

    /// What `SELECT name, seq FROM pets WHERE owner = ?1` finds in the table.
    fn stored_of(conn: &Tx<'_>, owner: &str) -> Vec<SqlResult<(String, i64)>> {
        conn.prepare_cached("SELECT name, seq FROM pets WHERE owner = ?1")
            .unwrap()
            .query_map([owner], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect()
    }

    #[test]
    fn found_rows_are_the_tables_unheld_ones_and_the_held_ones_that_match_now() {
        let mut conn = table();
        let conn = conn.transaction().unwrap();
        let held = Held::<Pet>::default();
        let owned_by_ann = |pet: &Pet| pet.owner.as_deref() == Some("ann");
        // Nothing held: the table answers.
        let found = held.found(stored_of(&conn, "ann"), owned_by_ann).unwrap();
        assert_eq!(found, ["rex", "tom"]);

        // Rex leaves Ann, Kit joins her, Max is born hers and Tom is gone, all in the batch,
        // none of it written: the table alone would still say rex and tom.
        held.update(&conn, "rex", |pet| pet.owner = Some("bob".into()))
            .unwrap();
        held.update(&conn, "kit", |pet| pet.owner = Some("ann".into()))
            .unwrap();
        held.change(&conn, "max", |slot| {
            *slot = Some(Pet {
                name: "max".into(),
                owner: Some("ann".into()),
                seq: 0,
            })
        })
        .unwrap();
        held.delete(&conn, "tom", "DELETE FROM pets WHERE name = ?1")
            .unwrap();
        let found = held.found(stored_of(&conn, "ann"), owned_by_ann).unwrap();
        assert_eq!(
            found,
            ["max", "kit"],
            "in seq order, as the query would list them"
        );

        // The same as a flush before the query finds.
        held.flush(&conn).unwrap();
        let flushed: Vec<String> = {
            let mut rows: Vec<(String, i64)> = stored_of(&conn, "ann")
                .into_iter()
                .collect::<SqlResult<_>>()
                .unwrap();
            rows.sort_by_key(|(_, seq)| *seq);
            rows.into_iter().map(|(name, _)| name).collect()
        };
        assert_eq!(flushed, found);
    }
}
