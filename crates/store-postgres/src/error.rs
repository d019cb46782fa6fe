//! How PostgreSQL's failures become [`StoreError`]s.
//!
//! The split matters to callers: `Unavailable` means "nothing was acknowledged, retry later"
//! (the server answers 503 and the provider redelivers); everything a human must fix (a wrong
//! URL, a refused login, missing privileges, a schema this build does not understand) is
//! `Backend` or `Corrupt` with a message naming the problem. Messages name the server as
//! `user@host:port/database`, never the password.

use std::fmt;

use switchboard_store::StoreError;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

/// The database a store talks to, described without its password.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    description: String,
}

impl Target {
    pub(crate) fn new(config: &tokio_postgres::Config, schema: &str) -> Self {
        let user = config.get_user().unwrap_or("(default user)");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let database = config.get_dbname().unwrap_or(user);
        Target {
            description: format!("PostgreSQL {user}@{host}:{port}/{database} (schema {schema})"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Maps an error met while talking to `target`.
pub(crate) fn from_pg(target: &Target, error: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let message = db.message();
        return match code.code() {
            // Connection exceptions, insufficient resources (too many connections, disk
            // full), server shutting down or starting, serialization failures, deadlocks:
            // nothing was written and the same request may succeed later.
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
                StoreError::Unavailable(format!("{target}: {message}"))
            }
            // A lock held past `lock_timeout` (set for the role or database by whoever runs
            // it): the transaction is rolled back, nothing was written, and the lock will go.
            // A statement cancelled by `statement_timeout` is not: the same statement would
            // be cancelled again, and its batch's other appends are retried one by one.
            _ if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE =>
            {
                StoreError::Unavailable(format!("{target}: {message}"))
            }
            _ if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                StoreError::Backend(format!("{target}: the server refused the login: {message}"))
            }
            _ if *code == SqlState::INVALID_CATALOG_NAME => {
                StoreError::Backend(format!("{target}: no such database: {message}"))
            }
            _ if *code == SqlState::INSUFFICIENT_PRIVILEGE => StoreError::Backend(format!(
                "{target}: the user lacks a privilege the event store needs: {message}"
            )),
            _ => StoreError::Backend(format!("{target}: {message} (SQLSTATE {})", code.code())),
        };
    }
    if error.is_closed() || caused_by_io(error) {
        return StoreError::Unavailable(format!("{target} is unreachable: {error}"));
    }
    StoreError::Backend(format!("{target}: {error}"))
}

/// True for PostgreSQL's "the data you sent is not acceptable" errors (class 22, data
/// exception: say a value out of a column's range; class 54, program limit: say a stream name
/// too long to index), which refuse one append rather than signal trouble with the store.
pub(crate) fn refuses_the_data(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| code.code().starts_with("22") || code.code().starts_with("54"))
}

/// Refused connections, resets and connect timeouts all surface as an `io::Error` beneath.
fn caused_by_io(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}
