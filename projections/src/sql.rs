//! One SQL connection over the two databases the read models live in: SQLite (a file in the
//! data dir) and PostgreSQL (a schema beside the events). The projections and queries are
//! written once, in the SQL both understand (`?N` placeholders, `ON CONFLICT`,
//! `COALESCE`); this module binds and reads values with SQLite's loose typing on both, so a
//! fold never cares which database it writes.
//!
//! Transactions are plain SQL (`BEGIN` … `COMMIT`), as are savepoints, so one connection type
//! serves the live runner, a rebuild and the query pool alike.

use std::cell::{OnceCell, RefCell, RefMut};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;

use bytes::BytesMut;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// Which database a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What a statement failed with.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", describe_postgres(.0))]
    Postgres(#[from] postgres::Error),
    #[error("the query returned no row")]
    NoRows,
    #[error("column {index}: {message}")]
    Column { index: usize, message: String },
}

impl SqlError {
    /// True when the database itself is in trouble (I/O, locks, a lost connection) rather
    /// than this statement's values (a constraint, a type): the former must be retried, the
    /// latter is the event's own fault.
    pub fn is_database_trouble(&self) -> bool {
        match self {
            SqlError::Sqlite(error) => {
                use rusqlite::ErrorCode::*;
                match error.sqlite_error_code() {
                    Some(code) => matches!(
                        code,
                        DatabaseBusy
                            | DatabaseLocked
                            | SystemIoFailure
                            | DiskFull
                            | CannotOpen
                            | OutOfMemory
                            | ReadOnly
                            | DatabaseCorrupt
                            | NotADatabase
                    ),
                    // Conversion errors and the like come from the values.
                    None => false,
                }
            }
            // The database's state, the connection or this build's SQL (classes 08
            // connection, 25 transaction state, 40 rollback/deadlock, 42 syntax or privilege,
            // 53 resources, 55 locks, 57 shutdown, 58 system, F0 config, XX internal) is
            // trouble to retry; everything else (22 data, 23 constraints, 54 limits such as an
            // over-long index entry) is about this statement's values.
            SqlError::Postgres(error) => {
                if error.is_closed() {
                    return true;
                }
                match error.code() {
                    Some(state) => matches!(
                        &state.code()[..2],
                        "08" | "25" | "40" | "42" | "53" | "55" | "57" | "58" | "F0" | "XX"
                    ),
                    // No SQLSTATE and not closed: the client refused a value (a conversion).
                    None => is_io(error),
                }
            }
            SqlError::NoRows | SqlError::Column { .. } => false,
        }
    }
}

pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    /// SQLite could not take a lock: `SQLITE_BUSY`, another connection holds it (the busy
    /// timeout ran out, or was 0), or `SQLITE_LOCKED`, a conflict within this connection or
    /// its shared cache, which no timeout waits for.
    pub fn is_busy(&self) -> bool {
        matches!(self, SqlError::Sqlite(error) if matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ))
    }

    /// PostgreSQL's `lock_timeout` ran out (SQLSTATE 55P03).
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, SqlError::Postgres(error)
            if error.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE))
    }
}

/// An I/O failure underneath the client (a socket error, a timeout).
fn is_io(error: &postgres::Error) -> bool {
    let mut source = StdError::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The server's message and SQLSTATE; the client's own Display says only "db error".
fn describe_postgres(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// `Ok(None)` for "no row", as rusqlite's extension of the same name.
pub trait OptionalExtension<T> {
    fn optional(self) -> SqlResult<Option<T>>;
}

impl<T> OptionalExtension<T> for SqlResult<T> {
    fn optional(self) -> SqlResult<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(SqlError::NoRows) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

// ------------------------------------------------------------------------------ parameters

/// A bound value, as SQLite types values: null, integer, real or text.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

/// A value that can be bound to a placeholder.
pub trait Param {
    fn arg(&self) -> Arg<'_>;
}

impl Param for str {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl Param for String {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl Param for std::borrow::Cow<'_, str> {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}
impl<T: Param + ?Sized> Param for &T {
    fn arg(&self) -> Arg<'_> {
        (**self).arg()
    }
}
impl<T: Param> Param for Option<T> {
    fn arg(&self) -> Arg<'_> {
        match self {
            Some(value) => value.arg(),
            None => Arg::Null,
        }
    }
}
impl Param for bool {
    fn arg(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}
impl Param for f64 {
    fn arg(&self) -> Arg<'_> {
        Arg::Real(*self)
    }
}
macro_rules! integer_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn arg(&self) -> Arg<'_> {
                // Read-model integers (positions, counts, amounts) are far below i64::MAX;
                // saturating keeps a corrupt value from wrapping into a negative one.
                Arg::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_param!(i64, i32, u32, u64, usize);

/// The parameters of one statement: `()`, an array of one type, or `params![…]`. They are
/// handed out as an iterator, so SQLite binds them without collecting them first (the folds
/// run several statements per event).
pub trait Params {
    fn args(&self) -> impl Iterator<Item = Arg<'_>>;
}

impl Params for () {
    fn args(&self) -> impl Iterator<Item = Arg<'_>> {
        std::iter::empty()
    }
}
impl<T: Param, const N: usize> Params for [T; N] {
    fn args(&self) -> impl Iterator<Item = Arg<'_>> {
        self.iter().map(Param::arg)
    }
}
impl Params for &[&dyn Param] {
    fn args(&self) -> impl Iterator<Item = Arg<'_>> {
        self.iter().map(|p| p.arg())
    }
}

/// Parameters of mixed types, as rusqlite's macro of the same name.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::sql::Param),*] as &[&dyn $crate::sql::Param]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Null => ValueRef::Null,
            Arg::Int(value) => ValueRef::Integer(value),
            Arg::Real(value) => ValueRef::Real(value),
            Arg::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

/// Binds with the type PostgreSQL inferred for the placeholder, converting as SQLite would
/// (an integer into a text column is its decimal text), so the projections bind the same
/// Rust values on both.
impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let mismatch = || -> Box<dyn StdError + Sync + Send> {
            format!("cannot bind {self:?} to a parameter of type {ty}").into()
        };
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(value)?.to_sql(ty, out),
                Type::FLOAT8 => (value as f64).to_sql(ty, out),
                Type::BOOL => (value != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    value.to_string().as_str().to_sql(&Type::TEXT, out)
                }
                _ => Err(mismatch()),
            },
            Arg::Real(value) => match *ty {
                Type::FLOAT8 => value.to_sql(ty, out),
                Type::FLOAT4 => (value as f32).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    value.to_string().as_str().to_sql(&Type::TEXT, out)
                }
                _ => Err(mismatch()),
            },
            Arg::Text(text) => match *ty {
                // Events reach the folds without NUL (see `apply::without_nul`), but a lookup
                // may carry one from outside them (`/api/calls/a%00b`, a function call's
                // service), which PostgreSQL's text cannot hold: it looks for U+FFFD in its
                // place rather than fail the query. SQLite looks for the NUL and finds no row,
                // as no stored text holds one; the two differ only for a value that holds
                // U+FFFD where the lookup has NUL. SQLite's binds are not checked: the fold
                // binds ~7 texts per event, and the check cost 2.7 % of its instructions.
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    switchboard_store::text_without_nul(text)
                        .as_ref()
                        .to_sql(&Type::TEXT, out)
                }
                _ => Err(mismatch()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

// ------------------------------------------------------------------------------------ rows

/// One column's value, borrowed from the row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> FromSql<'a> for Cell<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Cell::Real(f32::from_sql(ty, raw)?.into()),
            Type::BOOL => Cell::Int(bool::from_sql(ty, raw)?.into()),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
                Cell::Text(<&str>::from_sql(&Type::TEXT, raw)?)
            }
            _ => Cell::Blob(raw),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl<'a> From<ValueRef<'a>> for Cell<'a> {
    fn from(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(value) => Cell::Int(value),
            ValueRef::Real(value) => Cell::Real(value),
            ValueRef::Text(text) => std::str::from_utf8(text)
                .map(Cell::Text)
                .unwrap_or(Cell::Blob(text)),
            ValueRef::Blob(blob) => Cell::Blob(blob),
        }
    }
}

/// A Rust value read out of a column.
pub trait Column: Sized {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String>;
}

impl Column for i64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Int(value) => Ok(value),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}
impl Column for u64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        let value = i64::from_cell(cell)?;
        u64::try_from(value).map_err(|_| format!("expected a non-negative integer, found {value}"))
    }
}
impl Column for bool {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        Ok(i64::from_cell(cell)? != 0)
    }
}
impl Column for f64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Real(value) => Ok(value),
            Cell::Int(value) => Ok(value as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}
impl Column for String {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Text(text) => Ok(text.to_owned()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl<T: Column> Column for Option<T> {
    fn from_cell(cell: Cell<'_>) -> Result<Self, String> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// One row of a result.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    pub fn cell(&self, index: usize) -> SqlResult<Cell<'_>> {
        match self {
            Row::Sqlite(row) => Ok(row.get_ref(index)?.into()),
            Row::Postgres(row) => row.try_get::<_, Cell<'_>>(index).map_err(SqlError::from),
        }
    }

    pub fn get<T: Column>(&self, index: usize) -> SqlResult<T> {
        T::from_cell(self.cell(index)?).map_err(|message| SqlError::Column { index, message })
    }

    pub fn column_count(&self) -> usize {
        match self {
            Row::Sqlite(row) => row.as_ref().column_count(),
            Row::Postgres(row) => row.len(),
        }
    }
}

// ----------------------------------------------------------------------------- connections

/// A connection to the read models' database.
pub struct Conn {
    backend: Backend,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Pg>),
}

struct Pg {
    /// Always Some until dropped (see the Drop impl).
    client: RefCell<Option<postgres::Client>>,
    /// Statements prepared on this session, by the SQL text the caller gave (translated to
    /// PostgreSQL's placeholders once, when first prepared).
    statements: RefCell<HashMap<String, postgres::Statement>>,
}

impl Pg {
    fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |client| {
            client
                .as_mut()
                .expect("the client lives as long as the connection")
        })
    }
}

/// The synchronous client runs its own small runtime and closes the session by blocking on
/// it, which tokio forbids on a thread that drives async tasks. Read models are dropped from
/// such threads (a server stopping, a folder given up after an error), so the client is
/// closed on a thread of its own there.
impl Drop for Pg {
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("read-models-close".into())
                .spawn(move || drop(client));
        } else {
            drop(client);
        }
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("dialect", &self.dialect())
            .finish()
    }
}

impl From<rusqlite::Connection> for Conn {
    fn from(conn: rusqlite::Connection) -> Self {
        Conn {
            backend: Backend::Sqlite(conn),
        }
    }
}

impl From<postgres::Client> for Conn {
    fn from(client: postgres::Client) -> Self {
        Conn {
            backend: Backend::Postgres(Box::new(Pg {
                client: RefCell::new(Some(client)),
                statements: RefCell::new(HashMap::new()),
            })),
        }
    }
}

impl Conn {
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// How long a SQLite statement waits for a lock another connection holds before it fails
    /// with `SQLITE_BUSY`. PostgreSQL connections are left as they are.
    pub fn set_busy_timeout(&self, timeout: std::time::Duration) -> SqlResult<()> {
        if let Backend::Sqlite(conn) = &self.backend {
            conn.busy_timeout(timeout)?;
        }
        Ok(())
    }

    /// A statement, prepared once per connection and reused.
    pub fn prepare_cached(&self, sql: &str) -> SqlResult<Statement<'_>> {
        let inner = match &self.backend {
            Backend::Sqlite(conn) => Prepared::Sqlite(conn.prepare_cached(sql)?),
            Backend::Postgres(pg) => {
                let cached = pg.statements.borrow().get(sql).cloned();
                let statement = match cached {
                    Some(statement) => statement,
                    None => {
                        let statement = pg.client().prepare(&postgres_placeholders(sql))?;
                        pg.statements
                            .borrow_mut()
                            .insert(sql.to_owned(), statement.clone());
                        statement
                    }
                };
                Prepared::Postgres(pg, statement)
            }
        };
        Ok(Statement { inner })
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> SqlResult<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> SqlResult<T>,
    ) -> SqlResult<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Runs statements without parameters, one after the other (DDL, transaction control).
    pub fn execute_batch(&self, sql: &str) -> SqlResult<()> {
        match &self.backend {
            Backend::Sqlite(conn) => conn.execute_batch(sql)?,
            Backend::Postgres(pg) => pg.client().batch_execute(sql)?,
        }
        Ok(())
    }

    /// Starts a write transaction; it rolls back when dropped without [`Tx::commit`]. SQLite
    /// takes the write lock at once (`IMMEDIATE`), so a transaction never fails half-way on a
    /// lock another writer holds. Inside a SQLite transaction the caller opened itself, it is
    /// a savepoint: its commit keeps its changes in the outer transaction, its rollback undoes
    /// only them (a rebuild's replay, see `rebuild.rs`).
    pub fn transaction(&mut self) -> SqlResult<Tx<'_>> {
        let kind = if self.in_transaction() {
            TxKind::Savepoint
        } else {
            TxKind::Own
        };
        self.execute_batch(match (self.dialect(), kind) {
            (Dialect::Sqlite, TxKind::Savepoint) => "SAVEPOINT nested_tx",
            (Dialect::Sqlite, _) => "BEGIN IMMEDIATE",
            (Dialect::Postgres, _) => "BEGIN",
        })?;
        Ok(self.tx(kind))
    }

    /// A [`Tx`] for statements that belong to the SQLite transaction the caller opened on this
    /// connection, with nothing of their own to roll back to: its commit, rollback and drop
    /// do nothing, and only the caller's rollback undoes what it wrote. For work whose caller
    /// undoes its whole transaction when a part fails, and which is cheaper without a
    /// savepoint (SQLite copies every page a savepoint changes into its journal first).
    /// None when no SQLite transaction is open.
    pub(crate) fn in_open_transaction(&mut self) -> Option<Tx<'_>> {
        self.in_transaction().then(|| self.tx(TxKind::Unguarded))
    }

    /// Whether a SQLite transaction is open on this connection.
    pub(crate) fn in_transaction(&self) -> bool {
        matches!(&self.backend, Backend::Sqlite(conn) if !conn.is_autocommit())
    }

    fn tx(&self, kind: TxKind) -> Tx<'_> {
        Tx {
            conn: self,
            open: true,
            kind,
            statements: OnceCell::new(),
        }
    }

    /// Forgets prepared statements (after DDL replaced the tables they name).
    pub fn forget_statements(&self) {
        match &self.backend {
            Backend::Sqlite(conn) => conn.flush_prepared_statement_cache(),
            Backend::Postgres(pg) => pg.statements.borrow_mut().clear(),
        }
    }
}

/// Statements a transaction keeps at hand (more than the folds use).
const TX_STATEMENTS: usize = 128;

/// A transaction on a [`Conn`]; derefs to it.
pub struct Tx<'c> {
    conn: &'c Conn,
    open: bool,
    kind: TxKind,
    /// The statements [`Tx::prepare_cached`] prepared, found again by the address of their
    /// SQL text: an open-addressing table of fixed size, so a slot, once filled, stays put.
    /// Made by the first [`Tx::prepare_cached`] (transactions that run none need none).
    statements: OnceCell<Box<[OnceCell<KeptStatement<'c>>]>>,
}

/// What a [`Tx`]'s commit and rollback act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    /// A transaction of its own.
    Own,
    /// A savepoint in a SQLite transaction the connection's owner opened.
    Savepoint,
    /// Nothing: the statements belong to the owner's open transaction.
    Unguarded,
}

/// A statement [`Tx::prepare_cached`] keeps, with the text it was prepared from.
type KeptStatement<'c> = (&'static str, RefCell<Statement<'c>>);

impl<'c> Tx<'c> {
    /// Commits; a commit that fails leaves the transaction to be rolled back when dropped
    /// (an open one would make the connection's next transaction a savepoint).
    pub fn commit(mut self) -> SqlResult<()> {
        match self.kind {
            TxKind::Own => self.conn.execute_batch("COMMIT")?,
            TxKind::Savepoint => self.conn.execute_batch("RELEASE nested_tx")?,
            TxKind::Unguarded => {}
        }
        self.open = false;
        Ok(())
    }

    pub fn rollback(mut self) -> SqlResult<()> {
        self.open = false;
        self.undo()
    }

    fn undo(&self) -> SqlResult<()> {
        match self.kind {
            TxKind::Own => self.conn.execute_batch("ROLLBACK"),
            TxKind::Savepoint => self
                .conn
                .execute_batch("ROLLBACK TO nested_tx; RELEASE nested_tx"),
            TxKind::Unguarded => Ok(()),
        }
    }

    /// [`Conn::prepare_cached`] for the SQL a fold runs again and again. A statement the
    /// transaction has prepared is found by the address of its text, which a `'static` text
    /// keeps for good; the connection's own cache finds it by hashing the whole text, on the
    /// way out and again on the way back (measured at 8.7 % of a rebuild's fold
    /// instructions). A statement already in use (a fold running its own SQL while reading
    /// rows of it), or one beyond the table's size, comes from the connection's cache.
    pub fn prepare_cached(&self, sql: &'static str) -> SqlResult<TxStatement<'_, 'c>> {
        let statements = self.statements.get_or_init(|| {
            std::iter::repeat_with(OnceCell::new)
                .take(TX_STATEMENTS)
                .collect()
        });
        let slots = statements.len();
        // Fibonacci hashing of the address: literals sit close together, this spreads them.
        let start = ((sql.as_ptr() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize;
        for probe in 0..slots {
            let slot = &statements[(start + probe) % slots];
            let (text, statement) = match slot.get() {
                Some(entry) => entry,
                None => {
                    let statement = RefCell::new(self.conn.prepare_cached(sql)?);
                    slot.get_or_init(|| (sql, statement))
                }
            };
            if std::ptr::eq(*text, sql) {
                return Ok(match statement.try_borrow_mut() {
                    Ok(statement) => TxStatement::Kept(statement),
                    Err(_) => TxStatement::Own(self.conn.prepare_cached(sql)?),
                });
            }
        }
        Ok(TxStatement::Own(self.conn.prepare_cached(sql)?))
    }
}

/// A statement from [`Tx::prepare_cached`]; derefs to it.
pub enum TxStatement<'t, 'c> {
    Kept(RefMut<'t, Statement<'c>>),
    Own(Statement<'c>),
}

impl<'c> std::ops::Deref for TxStatement<'_, 'c> {
    type Target = Statement<'c>;
    fn deref(&self) -> &Statement<'c> {
        match self {
            TxStatement::Kept(statement) => statement,
            TxStatement::Own(statement) => statement,
        }
    }
}

impl<'c> std::ops::DerefMut for TxStatement<'_, 'c> {
    fn deref_mut(&mut self) -> &mut Statement<'c> {
        match self {
            TxStatement::Kept(statement) => statement,
            TxStatement::Own(statement) => statement,
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // The connection may be gone; a transaction that cannot roll back is rolled back
            // by the database when the session ends.
            let _ = self.undo();
        }
    }
}

/// A prepared statement.
pub struct Statement<'c> {
    inner: Prepared<'c>,
}

enum Prepared<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres(&'c Pg, postgres::Statement),
}

impl Statement<'_> {
    /// The names of the result's columns, in order.
    pub fn column_names(&self) -> Vec<String> {
        match &self.inner {
            Prepared::Sqlite(statement) => statement
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            Prepared::Postgres(_, statement) => statement
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect(),
        }
    }

    pub fn execute(&mut self, params: impl Params) -> SqlResult<usize> {
        match &mut self.inner {
            Prepared::Sqlite(statement) => {
                Ok(statement.execute(rusqlite::params_from_iter(params.args()))?)
            }
            Prepared::Postgres(pg, statement) => {
                let args: Vec<Arg<'_>> = params.args().collect();
                let refs = postgres_args(&args);
                Ok(pg.client().execute(&*statement, &refs)? as usize)
            }
        }
    }

    /// The first row's value; [`SqlError::NoRows`] when there is none.
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> SqlResult<T>,
    ) -> SqlResult<T> {
        let mut f = Some(f);
        let mut found = None;
        self.for_each_row(params, |row| {
            if let Some(f) = f.take() {
                found = Some(f(row)?);
            }
            Ok(false)
        })?;
        found.ok_or(SqlError::NoRows)
    }

    /// Every row, mapped.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> SqlResult<T>,
    ) -> SqlResult<std::vec::IntoIter<SqlResult<T>>> {
        let mut rows = Vec::new();
        self.for_each_row(params, |row| {
            rows.push(f(row));
            Ok(true)
        })?;
        Ok(rows.into_iter())
    }

    /// Streams the rows to `f` without collecting them; `f` answers whether it wants more.
    pub fn for_each_row(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> SqlResult<bool>,
    ) -> SqlResult<()> {
        match &mut self.inner {
            Prepared::Sqlite(statement) => {
                let mut rows = statement.query(rusqlite::params_from_iter(params.args()))?;
                while let Some(row) = rows.next()? {
                    if !f(&Row::Sqlite(row))? {
                        break;
                    }
                }
            }
            Prepared::Postgres(pg, statement) => {
                // Collected first: `f` may run statements of its own on this connection, and
                // a PostgreSQL session answers one statement at a time.
                let args: Vec<Arg<'_>> = params.args().collect();
                let rows = pg.client().query(&*statement, &postgres_args(&args))?;
                for row in &rows {
                    if !f(&Row::Postgres(row))? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Like [`Statement::for_each_row`], but PostgreSQL's rows stream from the socket rather
    /// than being collected, so `f` must not use this connection (exports of whole tables).
    pub fn stream_rows(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> SqlResult<bool>,
    ) -> SqlResult<()> {
        let Prepared::Postgres(pg, statement) = &mut self.inner else {
            return self.for_each_row(params, f);
        };
        let args: Vec<Arg<'_>> = params.args().collect();
        let mut client = pg.client();
        let mut rows = client.query_raw(&*statement, args.iter())?;
        while let Some(row) = rows.next()? {
            if !f(&Row::Postgres(&row))? {
                break;
            }
        }
        Ok(())
    }
}

fn postgres_args<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// `?N` (SQLite's numbered placeholder) → `$N` (PostgreSQL's), outside string literals.
fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_literal = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => in_literal = !in_literal,
            '?' if !in_literal && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Quotes an identifier (a schema or table name) for SQL text.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_dollars_outside_literals_only() {
        assert_eq!(
            postgres_placeholders("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12 OR c = ?"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12 OR c = ?"
        );
    }

    fn numbers_table() -> Conn {
        let conn = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch(
            "CREATE TABLE n (i INTEGER PRIMARY KEY);
             INSERT INTO n VALUES (1), (2), (3);",
        )
        .unwrap();
        conn
    }

    fn numbers(conn: &Conn) -> Vec<i64> {
        conn.prepare_cached("SELECT i FROM n ORDER BY i")
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .collect::<SqlResult<_>>()
            .unwrap()
    }

    /// A transaction opened inside one its owner opened (a replay's page, when the replay runs
    /// with a savepoint per page) is a savepoint: its rollback undoes it alone, its commit
    /// keeps it in the outer transaction, and the outer rollback undoes them all.
    #[test]
    fn a_transaction_inside_one_the_owner_opened_is_a_savepoint() {
        let mut conn = numbers_table();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute("INSERT INTO n VALUES (4)", ()).unwrap();
        tx.commit().unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute("INSERT INTO n VALUES (5)", ()).unwrap();
        tx.rollback().unwrap();
        {
            let tx = conn.transaction().unwrap();
            tx.execute("INSERT INTO n VALUES (6)", ()).unwrap();
            // Dropped without a commit: rolled back, like a rollback.
        }
        assert_eq!(numbers(&conn), [1, 2, 3, 4]);
        assert!(conn.in_transaction(), "the outer one is still open");
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(numbers(&conn), [1, 2, 3]);

        // Without an outer transaction, a commit is final.
        let tx = conn.transaction().unwrap();
        tx.execute("INSERT INTO n VALUES (4)", ()).unwrap();
        tx.commit().unwrap();
        assert!(!conn.in_transaction());
        assert_eq!(numbers(&conn), [1, 2, 3, 4]);
    }

    /// Statements run in the owner's open transaction with nothing of their own to undo:
    /// their rollback and drop leave the writes to the owner, whose rollback undoes them.
    #[test]
    fn an_unguarded_transaction_belongs_to_the_one_its_owner_opened() {
        let mut conn = numbers_table();
        assert!(
            conn.in_open_transaction().is_none(),
            "no transaction is open"
        );
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let tx = conn.in_open_transaction().unwrap();
        tx.execute("INSERT INTO n VALUES (4)", ()).unwrap();
        tx.rollback().unwrap();
        {
            let tx = conn.in_open_transaction().unwrap();
            tx.execute("INSERT INTO n VALUES (5)", ()).unwrap();
        }
        let tx = conn.in_open_transaction().unwrap();
        tx.execute("INSERT INTO n VALUES (6)", ()).unwrap();
        tx.commit().unwrap();
        assert_eq!(numbers(&conn), [1, 2, 3, 4, 5, 6]);
        assert!(conn.in_transaction(), "only the owner ends it");
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(numbers(&conn), [1, 2, 3]);
    }

    #[test]
    fn a_kept_statement_in_use_is_not_handed_out_again() {
        let mut conn = numbers_table();
        let tx = conn.transaction().unwrap();
        // One `static`, so every use has the same address (a `const` may not).
        static BELOW: &str = "SELECT i FROM n WHERE i < ?1 ORDER BY i";
        // While the kept statement streams its rows, the same SQL runs again (a fold running
        // its own lookup from inside a row callback): it gets a statement of its own.
        let mut pairs = Vec::new();
        tx.prepare_cached(BELOW)
            .unwrap()
            .for_each_row([3], |row| {
                let outer: i64 = row.get(0)?;
                let inner: Vec<i64> = tx
                    .prepare_cached(BELOW)?
                    .query_map([outer + 1], |r| r.get(0))?
                    .collect::<SqlResult<_>>()?;
                pairs.push((outer, inner));
                Ok(true)
            })
            .unwrap();
        assert_eq!(pairs, [(1, vec![1]), (2, vec![1, 2])]);
        // Kept across a rollback to a savepoint, it still answers from what the table holds.
        tx.execute_batch("SAVEPOINT s; INSERT INTO n VALUES (0); ROLLBACK TO s; RELEASE s")
            .unwrap();
        let below: Vec<i64> = tx
            .prepare_cached(BELOW)
            .unwrap()
            .query_map([3], |r| r.get(0))
            .unwrap()
            .collect::<SqlResult<_>>()
            .unwrap();
        assert_eq!(below, [1, 2]);
        tx.commit().unwrap();
    }

    #[test]
    fn more_statements_than_a_transaction_keeps_still_run() {
        let mut conn = numbers_table();
        let tx = conn.transaction().unwrap();
        // Distinct texts, each `'static` as the folds' are: the table fills, and the rest
        // come from the connection's cache.
        let texts: Vec<&'static str> = (0..TX_STATEMENTS as i64 + 10)
            .map(|k| &*Box::leak(format!("SELECT i + {k} FROM n WHERE i = 1").into_boxed_str()))
            .collect();
        for _ in 0..2 {
            for (k, sql) in texts.iter().enumerate() {
                let got: i64 = tx
                    .prepare_cached(sql)
                    .unwrap()
                    .query_row((), |r| r.get(0))
                    .unwrap();
                assert_eq!(got, 1 + k as i64, "{sql}");
            }
        }
    }

    #[test]
    fn sqlite_binds_and_reads_every_kind_of_value() {
        let conn = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch("CREATE TABLE t (i INTEGER, r REAL, s TEXT, n TEXT)")
            .unwrap();
        let none: Option<&str> = None;
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            params![7u64, 1.5, "é", none],
        )
        .unwrap();
        let row = conn
            .query_row("SELECT i, r, s, n FROM t", (), |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<f64>(1)?,
                    r.get::<String>(2)?,
                    r.get::<Option<String>>(3)?,
                ))
            })
            .unwrap();
        assert_eq!(row, (7, 1.5, "é".to_owned(), None));
        let missing = conn
            .query_row("SELECT i FROM t WHERE i = ?1", [8], |r| r.get::<i64>(0))
            .optional()
            .unwrap();
        assert_eq!(missing, None);
        let wrong = conn.query_row("SELECT s FROM t", (), |r| r.get::<i64>(0));
        assert!(matches!(wrong, Err(SqlError::Column { index: 0, .. })));
    }

    #[test]
    fn a_dropped_transaction_rolls_back() {
        let mut conn = Conn::from(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch("CREATE TABLE t (i INTEGER)").unwrap();
        {
            let tx = conn.transaction().unwrap();
            tx.execute("INSERT INTO t VALUES (1)", ()).unwrap();
        }
        let count = conn
            .query_row("SELECT COUNT(*) FROM t", (), |r| r.get::<i64>(0))
            .unwrap();
        assert_eq!(count, 0);
    }
}
