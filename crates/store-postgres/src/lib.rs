//! The PostgreSQL backend of the Switchboard event store: several stateless instances share
//! one database.
//!
//! * Schema: created and migrated by the store itself, versioned (`migrate.rs`); each store
//!   lives in one PostgreSQL schema, so one database can hold several (tests use one each).
//! * Appends: group commit in one transaction per batch (`append.rs`, decided in `batch.rs`),
//!   positions handed out in commit order under a single-row lock (`sql/schema_v1.sql`), which
//!   is how `$all` stays safe under concurrent writers in any number of processes.
//! * Reads: plain SQL by position or version (`read.rs`).
//! * `watch_head`: fed by LISTEN/NOTIFY (`notify.rs`), so subscriptions wake on commits made
//!   by other processes too.
//! * Connections: a small pool (`pool.rs`) that replaces dead connections, so the store
//!   reconnects by itself once the database is back. Errors: `error.rs`.

mod append;
mod batch;
mod error;
mod migrate;
mod notify;
mod pool;
mod read;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_store::{
    AppendOutcome, DEFAULT_MAX_EVENT_BYTES, EventStore, ExpectedVersion, NewEvent, RecordedEvent,
    StoreError,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use migrate::SCHEMA_VERSION;

use self::append::{AppendRequest, Writer};
use self::error::Target;
use self::pool::Pool;

/// How the PostgreSQL store behaves; `Default` is what `serve` uses.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The PostgreSQL schema holding the store's tables; created when absent. A plain
    /// identifier: lower-case letters, digits and `_`, not starting with a digit, at most 63
    /// bytes.
    pub schema: String,
    /// Connections kept for reads and appends (the listener has one more of its own).
    pub max_connections: usize,
    /// How long connecting may take before the database counts as unreachable.
    pub connect_timeout: Duration,
    /// Shown in `pg_stat_activity`, so an operator can tell the store's sessions apart.
    pub application_name: String,
    /// The largest event accepted: serialized data plus metadata, in bytes.
    pub max_event_bytes: usize,
    /// The most appends committed in one transaction.
    pub max_batch: usize,
    /// The most JSON (data plus metadata, in bytes) committed in one transaction; a batch
    /// with more is committed in parts. PostgreSQL refuses a message over 1 GB, which a full
    /// batch of large events could otherwise pass.
    pub max_batch_bytes: usize,
    /// Appends that may wait for the writer before `append` itself waits (back-pressure).
    pub queue_capacity: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "switchboard".to_owned(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            application_name: "switchboard".to_owned(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_batch: 512,
            max_batch_bytes: 64 << 20,
            queue_capacity: 4096,
        }
    }
}

/// The event store on PostgreSQL. Dropping it stops its writer (after the batch at hand) and
/// its listener.
pub struct PostgresStore {
    pool: Arc<Pool>,
    options: PostgresOptions,
    requests: mpsc::Sender<AppendRequest>,
    head: watch::Receiver<u64>,
    listener: JoinHandle<()>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database`),
    /// creates or migrates the store's schema, and starts the writer and the listener.
    ///
    /// Refused at once, with a message naming the problem (never the password): a URL that
    /// does not parse, an invalid schema name, a login the server refuses, missing privileges
    /// ([`StoreError::Backend`]); a server that cannot be reached
    /// ([`StoreError::Unavailable`]); a schema at a newer version than this build, or holding
    /// tables that are not a Switchboard store ([`StoreError::Corrupt`], left unaltered).
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            // The parser's message quotes no part of the URL, so no password can leak here.
            StoreError::Backend(format!("invalid PostgreSQL URL: {e}"))
        })?;
        check_schema_name(&options.schema)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        config.application_name(&options.application_name);
        let target = Target::new(&config, &options.schema);
        let pool = Arc::new(Pool::new(
            config,
            options.schema.clone(),
            target.clone(),
            options.max_connections,
        ));

        let mut client = pool.connect().await?;
        migrate::migrate(&mut client, &options.schema, &target).await?;
        drop(client);

        let head_tx = Arc::new(watch::channel(read::head_position(&pool).await?).0);
        let head = head_tx.subscribe();
        let listener = notify::spawn_listener(Arc::clone(&pool), Arc::clone(&head_tx));
        let (requests, requests_rx) = mpsc::channel(options.queue_capacity.max(1));
        tokio::spawn(
            Writer {
                pool: Arc::clone(&pool),
                requests: requests_rx,
                head: head_tx,
                max_batch: options.max_batch.max(1),
                max_batch_bytes: options.max_batch_bytes,
            }
            .run(),
        );
        Ok(PostgresStore {
            pool,
            options,
            requests,
            head,
            listener,
        })
    }

    /// The PostgreSQL schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.options.schema
    }

    /// Appends waiting for the writer right now (they will be committed together).
    pub fn pending_appends(&self) -> usize {
        self.requests.max_capacity() - self.requests.capacity()
    }
}

/// Schema names end up in SQL text (`CREATE SCHEMA`, `search_path`) and in notification
/// payloads; allowing only plain identifiers keeps quoting questions out of all three.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "invalid PostgreSQL schema name {schema:?}: use lower-case letters, digits and _, \
             not starting with a digit, at most 63 characters"
        )))
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let (request, answer) =
            AppendRequest::new(stream, expected, events, self.options.max_event_bytes)?;
        self.requests
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_stream(&self.pool, stream, from_version, limit).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_all(&self.pool, from_position, limit).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        read::stream_version(&self.pool, stream).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        read::head_position(&self.pool).await
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The writer stops by itself once `requests` is dropped with the store; the listener
        // would wait for notifications forever.
        self.listener.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["switchboard", "sb_test_0a1b", "_x", "a1"] {
            assert_eq!(check_schema_name(good), Ok(()), "{good}");
        }
        let too_long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "Upper",
            "semi;colon",
            "quo\"te",
            "sp ace",
            &too_long,
        ] {
            assert!(
                matches!(check_schema_name(bad), Err(StoreError::Backend(m)) if m.contains("schema name")),
                "{bad:?} must be refused"
            );
        }
    }
}
